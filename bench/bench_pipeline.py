"""Throughput of the window stages - ingest, event search, ANNALISA - as a multiple of real time, on an hour of SIM.

Measured on the same simulated frames (1 h by default: 12 five-minute windows, 60 s GWF frames, 11 channels), in
one run of this script:

* **gwpy read** - ``TimeSeriesDict.read`` of all the hour's frames, every channel at its native rate: the floor,
  any pipeline has to decode the frames once; also with ``nproc`` = the number of cores (gwpy's own parallel read),
  and the same files through the platform's own decoder (``frames.decode_channels``: gwframe / frameCPP) in one process.
* **stages in process** - the per-window stage functions the assets wrap (``raw_of_window``, ``events_of_window``,
  ``scores_of_window``), timed one by one: the per-stage breakdown, no Dagster.
* **Dagster in process** - the run's ``SIM_ingest`` job in in-process runs of ``backfill_batch`` windows, as a backfill
  batches them (``runner.materialize_span``).
* **`glitchflow materialize`** - the command a user runs, a fresh process on a fresh Dagster instance (imports,
  instance, every window), wall clock from start to exit.

Each figure is hours of data per hour of wall time ("x real time"); the Dagster overhead is the run's wall time over
the sum of its steps' work. The frames are simulated into ``bench/out/pipeline`` (git-ignored) and reused.

    .venv/bin/python bench/bench_pipeline.py --minutes 60
"""

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import torch
import yaml
from gwpy.io.gwf import get_channel_names
from gwpy.timeseries import TimeSeriesDict

from glitchflow_assets.core.ingest.assemble import IngestOptions
from glitchflow_assets.core.io.frames import decode_channels, scan_frame_dir
from glitchflow_assets.core.runs.registry import SHIPPED_REGISTRY, load_registry
from glitchflow_assets.core.runs.windows import windows_overlapping
from glitchflow_assets.core.sim import simulate
from glitchflow_assets.defs.families import build_definitions
from glitchflow_assets.defs.ingest import events_of_window, raw_of_window, scores_of_window
from glitchflow_assets.lib.inputs import Inputs
from glitchflow_assets.lib.names import EVENTS, RAW, SCORES
from glitchflow_assets.lib.resources import GlitchflowStorage
from glitchflow_assets.runner import materialize_span, stage_groups

OUT = Path(__file__).resolve().parent / "out" / "pipeline"
GLITCHFLOW = Path(sys.executable).with_name("glitchflow")


def _frames(minutes: int, seed: int) -> tuple[Path, int, int]:
    """Frames of the first ``minutes`` of SIM plus one minute either side (the margins), simulated once."""
    sim = load_registry()["SIM"]
    frames = OUT / "frames"
    start, duration = sim.gps_start - 60, minutes * 60 + 120
    if len(scan_frame_dir(frames, ".gwf")[0]) < duration // 60:
        simulate(frames, start, duration, frame_length=60, seed=seed, workers=2)
    return frames, sim.gps_start, sim.gps_start + minutes * 60


def _registry(frames: Path) -> Path:
    doc = yaml.safe_load(SHIPPED_REGISTRY.read_text())
    sim = doc["runs"]["SIM"]
    sim["frames"]["path"], sim["watch"] = str(frames), False
    path = OUT / "runs.yaml"
    path.write_text(yaml.safe_dump({"runs": {"SIM": sim}}))
    return path


def _gwpy_read(frames: Path, start: int, end: int, channels: list[str], nproc: int = 1) -> float:
    files = [str(f.path) for f, _ in scan_frame_dir(frames, ".gwf")[0] if f.gps_start < end and f.gps_end > start]
    t0 = time.perf_counter()
    TimeSeriesDict.read(files, channels, start=start, end=end, nproc=nproc)
    return time.perf_counter() - t0


def _decoder_read(frames: Path, start: int, end: int, channels: list[str]) -> float:
    """The same files decoded in this process by the platform's decoder (gwframe / frameCPP, whole frames)."""
    files = [f for f, _ in scan_frame_dir(frames, ".gwf")[0] if f.gps_start < end and f.gps_end > start]
    t0 = time.perf_counter()
    for f in files:
        decode_channels(f.path, channels, "gwf", f.gps_start, f.gps_end)
    return time.perf_counter() - t0


def _stages(run, windows, root: Path) -> dict[str, float]:
    """Each window stage's own work, called directly per window in the asset graph's order (no Dagster run)."""
    storage = GlitchflowStorage(root=str(root))
    per_window = {
        RAW: lambda w: raw_of_window(Inputs(storage, run, None), w, IngestOptions()),
        EVENTS: lambda w: events_of_window(Inputs(storage, run, None), w),
        SCORES: lambda w: scores_of_window(Inputs(storage, run, None), w),
    }
    ((_, keys),) = stage_groups(build_definitions({"SIM": run}), "SIM", through=SCORES)
    seconds = {k.path[-1]: 0.0 for k in keys}
    for window in windows:
        for name in seconds:
            t0 = time.perf_counter()
            per_window[name](window)
            seconds[name] += time.perf_counter() - t0
    return seconds


def _dagster_in_process(run, keys: list[str], root: Path) -> float:
    defs = build_definitions({"SIM": run}, {"storage": GlitchflowStorage(root=str(root / "storage"))})
    with dg.DagsterInstance.ephemeral() as instance:
        t0 = time.perf_counter()
        assert materialize_span(defs, "SIM", keys, instance, through=SCORES).success
        return time.perf_counter() - t0


def _cli(registry: Path, start: int, end: int, root: Path) -> float:
    env = dict(os.environ, GLITCHFLOW_RUNS=str(registry), GLITCHFLOW_HOME=str(root), DAGSTER_HOME=str(root / "dagster"))
    t0 = time.perf_counter()
    subprocess.run([str(GLITCHFLOW), "materialize", "SIM", "--gps-start", str(start), "--gps-end", str(end)], env=env, check=True)
    return time.perf_counter() - t0


def _runs_and_steps(dagster_home: Path) -> tuple[float, float]:
    """The wall time of the runs a command launched (start to end, as the UI shows them) and their steps' own work
    (the steps' durations in the event log), read back from its Dagster instance."""
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        records = instance.get_run_records()
        runs_s = sum(r.end_time - r.start_time for r in records)
        steps_s = sum(
            e.dagster_event.event_specific_data.duration_ms / 1000
            for r in records
            for e in instance.all_logs(r.dagster_run.run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)
        )
    return runs_s, steps_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=int, default=60, help="minutes of SIM (whole 5-minute windows)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    frames, start, end = _frames(args.minutes, args.seed)
    run = dataclasses.replace(load_registry()["SIM"], frames=dataclasses.replace(load_registry()["SIM"].frames, path=frames))
    windows = windows_overlapping(start, end, run.cadence)
    data_s = float(end - start)
    first_frame = scan_frame_dir(frames, ".gwf")[0][0][0].path
    channels = [run.strain_channel, *run.resolve_aux_channels(get_channel_names(str(first_frame)))]  # patterns expanded, as ingest does
    scratch = OUT / f"scratch-{os.getpid()}"

    _gwpy_read(frames, start, start + 60, channels)  # warm the page cache and the imports
    gwpy_s = _gwpy_read(frames, start - 9, end + 9, channels)  # the span ingest reads (window + margins + pad)
    cores = os.cpu_count() or 1
    gwpy_parallel_s = _gwpy_read(frames, start - 9, end + 9, channels, nproc=cores)
    decoder_s = _decoder_read(frames, start - 9, end + 9, channels)
    stages = _stages(run, windows, scratch / "stages")
    dagster_s = _dagster_in_process(run, [w.key for w in windows], scratch / "dagster-in-process")
    cli_s = _cli(_registry(frames), start, end, scratch / "cli")
    cli_runs_s, cli_steps_s = _runs_and_steps(scratch / "cli" / "dagster")
    work = sum(stages.values())
    results = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads",
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "data_s": data_s,
        "windows": len(windows),
        "gwpy_read_s": round(gwpy_s, 2),
        "gwpy_read_nproc": cores,
        "gwpy_read_parallel_s": round(gwpy_parallel_s, 2),
        "decoder_read_s": round(decoder_s, 2),
        "stages_s": {k: round(v, 2) for k, v in stages.items()},
        "stages_total_s": round(work, 2),
        "dagster_in_process_s": round(dagster_s, 2),
        "glitchflow_materialize_s": round(cli_s, 2),
        "glitchflow_materialize_runs_s": round(cli_runs_s, 2),
        "glitchflow_materialize_steps_s": round(cli_steps_s, 2),
    }
    (OUT / "results.json").write_text(json.dumps(results, indent=2))
    print(f"\n{len(windows)} windows, {data_s / 3600:.2f} h of SIM, {results['machine']}\n")
    print("| path | wall s | x real time |\n|---|---|---|")
    rows = [("bare gwpy read of the frames", gwpy_s), (f"bare gwpy read, nproc={cores}", gwpy_parallel_s)]
    rows += [("the same files through the platform's decoder (gwframe), one process", decoder_s)]
    rows += [(f"  stage {k}", v) for k, v in stages.items()]
    rows += [("stages in process (sum)", work), ("Dagster in process (SIM_ingest runs)", dagster_s), ("`glitchflow materialize`", cli_s)]
    for name, seconds in rows:
        print(f"| {name} | {seconds:.1f} | {data_s / seconds:.0f} |")
    print(f"\nDagster in process / work: {dagster_s / work:.2f}; glitchflow materialize / work: {cli_s / work:.2f}")
    print(f"glitchflow materialize: its runs {cli_runs_s:.1f} s for {cli_steps_s:.1f} s of step work ({cli_runs_s / cli_steps_s:.2f}x)")
    ingest_s = stages["raw_strain_segments"]
    print(f"ingest / gwpy read: {ingest_s / gwpy_s:.2f}; ingest / gwpy read with nproc={cores}: {ingest_s / gwpy_parallel_s:.2f}")
    print(f"decoder (gwframe) / gwpy read (LALFrame): {decoder_s / gwpy_s:.2f}")


if __name__ == "__main__":
    main()
