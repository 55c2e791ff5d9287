"""Benchmark the window-ingest step against plain gwpy reading of the same data.

Compared, on the same simulated SIM frames (5-minute windows, 60 s GWF frames, 11 channels at
256-16384 Hz), window by window:

* **gwpy** - ``TimeSeriesDict.read`` of the window's frames, all channels at their native rates, nothing
  else. This is the floor: any ingest has to decode the frames at least once.
* **ingest** - ``ingest_window`` as the pipeline runs it: scan the frame directory, read the tables of
  contents, read the window padded by ``MARGIN_S + PAD_S`` on both sides (so it also decodes the neighbouring
  frames), anti-alias resample every channel to 4096 Hz, quality checks, sha256 of every frame read,
  atomic HDF5 write, read-back of the summary. Timed with the default ``channel_batch=16`` and with
  ``channel_batch=4``, which trades re-reading frames for a smaller peak memory.

Timings are the best of ``--repeat`` runs after one warm-up, so frames come from the page cache and MB/s
is decoding throughput, not disk speed. "Frames read" counts each file once per window that reads it.
The ingest time is then split into stages by wrapping ingest's helpers with timers.

Peak memory is measured in a fresh interpreter per case: the peak RSS (Linux ``VmHWM``, restarted after
imports and a 1 s warm-up read) minus the RSS at that point. ``ru_maxrss`` would not do: Linux carries it
across ``exec``, so a spawned child reports the benchmark parent's peak. Compared: gwpy holding ``k``
consecutive windows from one read call, against ingest processing the same ``k`` windows one after
another, for k = 1, 2, 4, ... up to ``--windows``.

Frames are simulated once into ``bench/out/frames`` (git-ignored) and reused by later runs.

    .venv/bin/python bench/bench_ingest.py --windows 4 --repeat 3
"""

import argparse
import dataclasses
import multiprocessing
import os
import platform
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from unittest import mock

import gwpy
import h5py
import lalframe
import numpy as np
import scipy
from gwpy.timeseries import TimeSeriesDict

from glitchflow_assets.core.artifacts.raw_strain_segments import MARGIN_S, PAD_S, RawSegmentWriter
from glitchflow_assets.core.ingest import assemble
from glitchflow_assets.core.ingest.assemble import IngestOptions, ingest_window
from glitchflow_assets.core.io import decoder
from glitchflow_assets.core.io.decoded_cache import DecodedFrames
from glitchflow_assets.core.io.frames import FrameFile, frames_overlapping, scan_frame_dir
from glitchflow_assets.core.runs.registry import ObservingRun, load_registry
from glitchflow_assets.core.runs.windows import Window, windows_overlapping
from glitchflow_assets.core.sim import simulate

OUT = Path(__file__).resolve().parent / "out"
REACH_S = MARGIN_S + PAD_S  # read beyond each window edge: the margins kept in the file, and the filter pad
FRAME_S = 60
MIB = 2**20
SMALL_BATCH = IngestOptions(channel_batch=4)


def prepare(n_windows: int) -> tuple[ObservingRun, list[Window]]:
    """The SIM run pointed at ``bench/out/frames``, and its first ``n_windows`` windows, simulated.

    One extra frame is simulated on each side: in a continuous run every window has neighbours, and
    ingest reads ``MARGIN_S + PAD_S`` seconds from them.
    """
    shipped = load_registry()["SIM"]
    run = dataclasses.replace(shipped, frames=dataclasses.replace(shipped.frames, path=OUT / "frames"))
    windows = windows_overlapping(run.gps_start, run.gps_start + n_windows * run.cadence.seconds, run.cadence)
    span = windows[-1].gps_end - windows[0].gps_start
    simulate(run.frames.path, windows[0].gps_start - FRAME_S, span + 2 * FRAME_S, frame_length=FRAME_S)
    return run, windows


def channels(run: ObservingRun) -> list[str]:
    return [run.strain_channel, *run.aux_channels]


def frames_between(run: ObservingRun, gps_start: float, gps_end: float) -> list[FrameFile]:
    found, _ = scan_frame_dir(run.frames.path, run.frames.extension)
    return frames_overlapping([f for f, _ in found], gps_start, gps_end)


def gwpy_read(run: ObservingRun, gps_start: int, gps_end: int) -> TimeSeriesDict:
    files = [str(f.path) for f in frames_between(run, gps_start, gps_end)]
    return TimeSeriesDict.read(files, channels(run), start=gps_start, end=gps_end, format="gwf")


def gwpy_windows(run: ObservingRun, windows: list[Window]) -> None:
    for window in windows:
        gwpy_read(run, window.gps_start, window.gps_end)


def gwpy_span(run: ObservingRun, windows: list[Window]) -> None:
    """All of ``windows`` in one read call, so their data is held at once."""
    gwpy_read(run, windows[0].gps_start, windows[-1].gps_end)


def ingest_windows(run: ObservingRun, windows: list[Window], options: IngestOptions | None = None) -> None:
    """The windows one after another, as a run's backfill does; no frame decoded by an earlier repetition is kept."""
    assemble.DECODED = DecodedFrames(decoder.read, parallel=None)
    for window in windows:
        ingest_window(run, window, OUT / "ingest" / f"{run.name}-{window.gps_start}.h5", options=options or IngestOptions())


def frame_bytes(run: ObservingRun, windows: list[Window], pad: float) -> int:
    """Bytes of the frame files read for ``windows``, each window padded by ``pad`` seconds."""
    return sum(f.path.stat().st_size for w in windows for f in frames_between(run, w.gps_start - pad, w.gps_end + pad))


def best_wall(fn: Callable[[], None], repeat: int) -> float:
    fn()  # warm-up: page cache, lazily imported backends, cached filter designs
    walls = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - start)
    return min(walls)


def ingest_stages(run: ObservingRun, windows: list[Window]) -> tuple[dict[str, list], float]:
    """{stage: [calls, seconds]} for one ingest of ``windows``, and the total wall time."""
    spent: dict[str, list] = defaultdict(lambda: [0, 0.0])

    def timed(fn: Callable, label: Callable[..., str]) -> Callable:
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                entry = spent[label(*args)]
                entry[0] += 1
                entry[1] += time.perf_counter() - start

        return wrapper

    decoder_stages = {
        "probe": lambda *_: "tables of contents (child decoder)",
        "read": lambda *_: "gwpy read (child decoder), whole frames",
    }
    stages = {
        "_inspect_piece": lambda *_: "flat-line / non-finite checks",
        "resample": lambda _data, rate_in, rate_out: f"resample {rate_in:g} Hz -> {rate_out:g} Hz",
        "sha256sum": lambda *_: "sha256 of frames read",
        "read_summary": lambda *_: "read back summary",
    }
    with ExitStack() as patches:
        for name, label in stages.items():
            patches.enter_context(mock.patch.object(assemble, name, timed(getattr(assemble, name), label)))
        for name, label in decoder_stages.items():
            patches.enter_context(mock.patch.object(decoder, name, timed(getattr(decoder, name), label)))
        for name in ("write_channel", "finish"):
            patches.enter_context(
                mock.patch.object(RawSegmentWriter, name, timed(getattr(RawSegmentWriter, name), lambda *_: "HDF5 write"))
            )
        start = time.perf_counter()
        ingest_windows(run, windows)
        total = time.perf_counter() - start
    return dict(spent), total


def _status_kib(field: str) -> int:
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith(f"{field}:"))
    return int(line.split()[1])


def _peak_rss_above_imports(workload: Callable, run: ObservingRun, windows: list[Window], *extra) -> float:
    """MiB by which ``workload`` raises this (fresh) process's peak RSS above its post-import RSS."""
    gwpy_read(run, windows[0].gps_start, windows[0].gps_start + 1)  # loads the lazily imported GWF backend
    Path("/proc/self/clear_refs").write_text("5")  # restart the peak (VmHWM) from the current RSS
    baseline = _status_kib("VmRSS")
    workload(run, windows, *extra)
    return (_status_kib("VmHWM") - baseline) / 1024


def peak_memory(workload: Callable, run: ObservingRun, windows: list[Window], *extra) -> float:
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as fresh:
        return fresh.submit(_peak_rss_above_imports, workload, run, windows, *extra).result()


def machine() -> list[str]:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), platform.processor())
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return [
        f"- CPU: {model}, {os.cpu_count()} logical cores, {ram:.0f} GiB RAM",
        f"- Python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, gwpy {gwpy.__version__}"
        f" (LALFrame {lalframe.__version__}), h5py {h5py.__version__}",
        f"- OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(not set)')}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--windows", type=int, default=4, help="consecutive 5-minute windows per measurement (default 4)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs after the warm-up; the best is reported (default 3)")
    args = parser.parse_args()
    if args.windows < 1 or args.repeat < 1:
        parser.error("--windows and --repeat must be at least 1")

    run, windows = prepare(args.windows)
    n_channels = len(channels(run))
    channel_seconds = n_channels * sum(w.duration for w in windows)
    print(f"## Ingest benchmark: {len(windows)} x {run.cadence.text} SIM window(s), {n_channels} channels, best of {args.repeat}\n")
    print("\n".join(machine()), "\n")

    cases = [
        ("gwpy `TimeSeriesDict.read` (native rates)", lambda: gwpy_windows(run, windows), 0.0),
        ("`ingest_window`, channel_batch=16 (default)", lambda: ingest_windows(run, windows), REACH_S),
        ("`ingest_window`, channel_batch=4", lambda: ingest_windows(run, windows, SMALL_BATCH), REACH_S),
    ]
    print("| step | frames read (MB) | wall (s) | channel-s/s | MB/s | x gwpy |")
    print("|---|---:|---:|---:|---:|---:|")
    baseline = None
    for name, fn, pad in cases:
        wall = best_wall(fn, args.repeat)
        baseline = baseline or wall
        mb = frame_bytes(run, windows, pad) / 1e6
        print(f"| {name} | {mb:.0f} | {wall:.2f} | {channel_seconds / wall:.0f} | {mb / wall:.0f} | {wall / baseline:.2f} |")

    spent, total = ingest_stages(run, windows)
    print(f"\n### Where `ingest_window` spends its time ({total:.2f} s, one run)\n")
    print("| stage | calls | s | % |")
    print("|---|---:|---:|---:|")
    for stage, (calls, seconds) in sorted(spent.items(), key=lambda item: -item[1][1]):
        print(f"| {stage} | {calls} | {seconds:.2f} | {100 * seconds / total:.0f} |")
    other = total - sum(seconds for _, seconds in spent.values())
    print(f"| other (directory scan, assembly, masks, file setup) | | {other:.2f} | {100 * other / total:.0f} |")

    spans = [2**i for i in range(len(windows).bit_length())]  # 1, 2, 4, ... up to --windows
    native = sum(ts.value.nbytes for ts in gwpy_read(run, windows[0].gps_start, windows[0].gps_end).values()) / MIB
    output = n_channels * windows[0].duration * run.sample_rate * np.dtype("f4").itemsize / MIB
    print("\n### Peak RSS above post-import RSS (MiB), fresh process per cell\n")
    print("| workload | " + " | ".join(f"{k} window{'s' * (k > 1)}" for k in spans) + " |")
    print("|---|" + "---:|" * len(spans))
    memory_cases = [
        ("gwpy, k windows in one read call", gwpy_span, ()),
        ("`ingest_window` x k, channel_batch=16", ingest_windows, ()),
        ("`ingest_window` x k, channel_batch=4", ingest_windows, (SMALL_BATCH,)),
    ]
    for name, workload, extra in memory_cases:
        cells = [peak_memory(workload, run, windows[:k], *extra) for k in spans]
        print(f"| {name} | " + " | ".join(f"{mib:.0f}" for mib in cells) + " |")
    print(f"\nOne window: {native:.0f} MiB of native samples, {output:.0f} MiB of float32 output at {run.sample_rate} Hz.")


if __name__ == "__main__":
    main()
