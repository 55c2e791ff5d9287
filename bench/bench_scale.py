"""The window stages at a real detector's channel counts: 11, 100, 300 and 1,000 auxiliary channels.

For each size, SIM's ten auxiliary channels plus ``glitchflow simulate --aux-extra`` distractors (plain noise, lines,
channels with glitches of their own, sporadic ones; 256-16384 Hz, mostly slow) are simulated at 4 glitches a minute
(shorter spans for the larger sizes), and one ``glitchflow materialize SIM ... --through channel_selection`` runs on a
fresh Dagster instance, as a user would run it. Reported per size:

* **channel-seconds per second** and the multiple of real time: (auxiliary channels + strain) x seconds of data, over
  the wall time of the window job's runs (``raw_strain_segments``, ``glitch_events``, ``annalisa_scores``: ingest,
  event search and ANNALISA, as the goal names them); beside it the seconds of the run's ``channel_selection`` (once
  per command, whatever the span: aggregation and its plot) and the rate over the whole command (with its start-up,
  imports and instance);
* **the decoder's own rate on the same frames**, measured just before in the same process: every channel of every
  frame the span reads, through the platform's decoder in one process (one core), and the pipeline's rate over it;
* **peak memory**: the largest summed RSS of the command's process tree (the command, its decoder processes);
* **bytes stored per byte of frames read**: ``raw_strain_segments``, ``glitch_events`` and ``annalisa_scores`` files
  over the frame files the span reads;
* **whether the selection was exact**: the selected channels are exactly SIM's true witnesses.

    .venv/bin/python bench/bench_scale.py                       # 11, 100, 300, 1000 channels
    .venv/bin/python bench/bench_scale.py --sizes 100 --minutes 20 --annalisa default   # a new run's ANNALISA band
"""

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import psutil
import yaml

from glitchflow_assets.core.io import decoder
from glitchflow_assets.core.io.frames import decode_channels, scan_frame_dir
from glitchflow_assets.core.runs.registry import SHIPPED_REGISTRY, load_registry
from glitchflow_assets.core.runs.windows import windows_overlapping
from glitchflow_assets.core.sim import VIRGO_SCENARIO, simulate, with_extra_channels
from glitchflow_assets.lib.names import EVENTS, RAW, SCORES, SELECTION, job_name
from glitchflow_assets.lib.resources import GlitchflowStorage

OUT = Path(__file__).resolve().parent / "out" / "scale"
GLITCHFLOW = Path(sys.executable).with_name("glitchflow")
MINUTES = {11: 30, 100: 20, 300: 10, 1000: 5}  # shorter spans for the larger sizes
GLITCHES_PER_MIN = 4.0  # as the demo: enough events in a short span to judge the selection


def _frames(n_aux: int, minutes: int, seed: int) -> tuple[Path, int, int]:
    """Frames of the first ``minutes`` of SIM with ``n_aux`` auxiliary channels, and a minute either side; made once."""
    sim = load_registry()["SIM"]
    frames = OUT / f"{n_aux}ch" / "frames"
    start, duration = sim.gps_start - 60, minutes * 60 + 120
    scenario = dataclasses.replace(VIRGO_SCENARIO, glitch_rate_per_min=GLITCHES_PER_MIN)
    scenario = with_extra_channels(scenario, n_aux - (len(VIRGO_SCENARIO.channels) - 1), seed=seed)
    if len(scan_frame_dir(frames, ".gwf")[0]) < duration // 60:
        simulate(frames, start, duration, frame_length=60, seed=seed, scenario=scenario, workers=2)
    return frames, sim.gps_start, sim.gps_start + minutes * 60


def _read_files(frames: Path, start: int, end: int) -> list:
    """The frame files the span's windows read (the windows, their margins and the resampler's pad)."""
    return [f for f, _ in scan_frame_dir(frames, ".gwf")[0] if f.gps_start < end + 9 and f.gps_end > start - 9]


def _decoder_rate(files: list) -> tuple[float, int]:
    """Channel-seconds per second of the platform's decoder on every channel of ``files``, in this process."""
    names = sorted(decoder.probe(files[0], "gwf", load_registry()["SIM"].strain_channel).channels)
    decode_channels(files[0].path, names, "gwf", files[0].gps_start, files[0].gps_end)  # imports, page cache
    t0 = time.perf_counter()
    for f in files:
        decode_channels(f.path, names, "gwf", f.gps_start, f.gps_end)
    return len(names) * sum(f.duration for f in files) / (time.perf_counter() - t0), len(names)


class _PeakMemory:
    """The largest summed RSS of a process and its descendants, sampled every ``interval`` s in a thread."""

    def __init__(self, pid: int, interval: float = 0.1):
        self.peak, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, args=(psutil.Process(pid), interval), daemon=True)
        self._thread.start()

    def _sample(self, process: psutil.Process, interval: float) -> None:
        while not self._stop.is_set():
            try:
                tree = [process, *process.children(recursive=True)]
                self.peak = max(self.peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass  # a process ended between listing and reading
            self._stop.wait(interval)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def _materialize(frames: Path, start: int, end: int, root: Path, annalisa: str) -> tuple[float, int]:
    """Wall seconds and peak memory of ``glitchflow materialize`` through channel_selection on a fresh home, with SIM's
    ANNALISA settings (``annalisa="sim"``) or a new run's defaults (``"default"``)."""
    doc = yaml.safe_load(SHIPPED_REGISTRY.read_text())
    sim = doc["runs"]["SIM"]
    sim["frames"]["path"], sim["watch"] = str(frames), False
    if annalisa == "default":
        del sim["annalisa"]
    root.mkdir(parents=True)
    (root / "runs.yaml").write_text(yaml.safe_dump({"runs": {"SIM": sim}}))
    env = dict(os.environ, GLITCHFLOW_RUNS=str(root / "runs.yaml"), GLITCHFLOW_HOME=str(root), DAGSTER_HOME=str(root / "dagster"))
    command = [str(GLITCHFLOW), "materialize", "SIM", "--gps-start", str(start), "--gps-end", str(end), "--through", SELECTION]
    t0 = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    memory = _PeakMemory(process.pid)
    out, _ = process.communicate()
    wall, peak = time.perf_counter() - t0, memory.stop()
    if process.returncode:
        raise SystemExit(f"glitchflow materialize failed ({process.returncode}):\n{out}")
    return wall, peak


def _run_seconds(dagster_home: Path) -> tuple[float, float]:
    """Wall seconds of the command's window-job runs and of its other runs (start to end, as the UI shows them)."""
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        records = instance.get_run_records()
    window = sum(r.end_time - r.start_time for r in records if r.dagster_run.job_name == job_name("SIM", "ingest"))
    return window, sum(r.end_time - r.start_time for r in records) - window


def _stored_bytes(root: Path, start: int, end: int) -> int:
    storage, cadence = GlitchflowStorage(root=str(root / "storage")), load_registry()["SIM"].cadence
    return sum(
        storage.window_file("SIM", a, w).stat().st_size for w in windows_overlapping(start, end, cadence) for a in (RAW, EVENTS, SCORES)
    )


def measure(n_aux: int, minutes: int, seed: int, annalisa: str) -> dict:
    frames, start, end = _frames(n_aux, minutes, seed)
    files = _read_files(frames, start, end)
    decoder_rate, n_channels = _decoder_rate(files)
    root = OUT / f"{n_aux}ch" / f"home-{annalisa}-{os.getpid()}"
    wall, peak = _materialize(frames, start, end, root, annalisa)
    window_s, selection_s = _run_seconds(root / "dagster")
    selection = json.loads(GlitchflowStorage(root=str(root / "storage")).run_file("SIM", SELECTION, ".json").read_text())
    witnesses = {c for c, role in VIRGO_SCENARIO.roles().items() if role == "witness"}
    data_s, read_bytes = end - start, sum(f.path.stat().st_size for f in files)
    return {
        "annalisa": annalisa,
        "aux_channels": n_channels - 1,
        "minutes": minutes,
        "window_job_s": round(window_s, 1),
        "selection_s": round(selection_s, 1),
        "command_s": round(wall, 1),
        "channel_s_per_s": round(n_channels * data_s / window_s),
        "x_real_time": round(data_s / window_s, 1),
        "channel_s_per_s_command": round(n_channels * data_s / wall),
        "decoder_channel_s_per_s": round(decoder_rate),
        "of_decoder_rate": round(n_channels * data_s / window_s / decoder_rate, 3),
        "peak_memory_gb": round(peak / 2**30, 2),
        "frames_read_gb": round(read_bytes / 2**30, 3),
        "stored_per_read": round(_stored_bytes(root, start, end) / read_bytes, 4),
        "selected": selection["selected"],
        "exact": set(selection["selected"]) == witnesses,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(MINUTES), help="auxiliary channel counts")
    parser.add_argument("--minutes", type=int, default=None, help="minutes of SIM for every size (default: per size)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--annalisa", choices=["sim", "default"], default="sim", help="SIM's ANNALISA settings (8-256 Hz) or a new run's (8-50 Hz)"
    )
    args = parser.parse_args()
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB"
    results = []
    for n in args.sizes:
        results.append(measure(n, args.minutes or MINUTES.get(n, 5), args.seed, args.annalisa))
        print(json.dumps(results[-1]), flush=True)
    (OUT / f"results-{args.annalisa}.json").write_text(json.dumps({"machine": machine, "results": results}, indent=2))
    print(f"\n{machine}\n")
    columns = ["aux channels", "minutes", "ch-s/s (window job)", "x real time", "decoder ch-s/s (1 core)", "of decoder"]
    columns += ["selection s", "command s (ch-s/s)", "peak GB", "stored / read", "exact"]
    print("| " + " | ".join(columns) + " |\n" + "|---" * len(columns) + "|")
    for r in results:
        print(
            f"| {r['aux_channels']} | {r['minutes']} | {r['channel_s_per_s']:,} | {r['x_real_time']} | {r['decoder_channel_s_per_s']:,} | "
            f"{r['of_decoder_rate']:.0%} | {r['selection_s']} | {r['command_s']} ({r['channel_s_per_s_command']:,}) | "
            f"{r['peak_memory_gb']} | {r['stored_per_read']} | {r['exact']} |"
        )


if __name__ == "__main__":
    main()
