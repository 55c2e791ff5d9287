"""The new-frame sensor's evaluation against the number of frame files: scan + plan, from an empty cursor and
from a cursor that has seen everything, for 1-minute windows (the densest cadence), 1-s to 60-s files.

Files are real (empty-but-one-byte files named like frames, with distinct mtimes): the sensor reads names,
sizes and mtimes only, so their content does not matter. Reports seconds per evaluation and files per second;
the issue's goal is <= 10 s for 100,000 files.

    .venv/bin/python bench/bench_sensor.py --files 10000 30000 100000
"""

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from glitchflow_assets.core.io.frames import scan_frame_dir
from glitchflow_assets.core.io.watch import WatchCursor, plan_window_requests
from glitchflow_assets.core.runs.registry import load_registry
from glitchflow_assets.core.runs.windows import Cadence


def _fill(directory: Path, n: int, start: int, length: int) -> None:
    for k in range(n):
        path = directory / f"V-V1SIM-{start + length * k}-{length}.gwf"
        path.write_bytes(b"x")
        os.utime(path, (1000.0 + k, 1000.0 + k))


def evaluate(directory: Path, cursor: WatchCursor, cadence: Cadence, span: tuple[int, int]) -> tuple[float, float, int, WatchCursor]:
    t0 = time.perf_counter()
    found, _ = scan_frame_dir(directory)
    t1 = time.perf_counter()
    plan = plan_window_requests(found, cursor, cadence, span, now=time.time())
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, len(plan.requests), plan.cursor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, nargs="+", default=[10_000, 30_000, 100_000])
    parser.add_argument("--file-seconds", type=int, default=8, help="duration of each frame file (s)")
    args = parser.parse_args()
    run = load_registry()["SIM"]
    cadence = Cadence.parse("1min")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print("| files | windows | scan (s) | plan, empty cursor (s) | requests | plan, cursor seen all (s) | cursor (MB) |")
    print("|---|---|---|---|---|---|---|")
    for n in args.files:
        directory = Path(tempfile.mkdtemp(prefix="glitchflow-sensor-"))
        try:
            _fill(directory, n, run.gps_start, args.file_seconds)
            span = (run.gps_start, run.gps_end + 10**8)  # a run long enough to hold every file
            scan_s, plan_s, requests, cursor = evaluate(directory, WatchCursor(), cadence, span)
            _, again_s, again, _ = evaluate(directory, cursor, cadence, span)
            assert again == 0
            size = len(cursor.dumps()) / 1e6
            print(f"| {n:,} | {n * args.file_seconds // 60:,} | {scan_s:.2f} | {plan_s:.2f} | {requests:,} | {again_s:.2f} | {size:.2f} |")
        finally:
            shutil.rmtree(directory)


if __name__ == "__main__":
    main()
