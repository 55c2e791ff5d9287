"""Spectrogram dataset throughput and the memory of building a split from many windows.

1. ``build_spectrograms`` throughput in events per second: 1 strain + ``--witnesses`` channels of Gaussian noise
   in a 300 s window at 4096 Hz, events every few seconds (PSD estimate, float64 whitening, Q=12 8-500 Hz
   64x256 transform in float32), on ``--device``.
2. Peak memory of ``DatasetWriter`` fed window by window (as ``dataset_split`` does), in a fresh process per
   case, for k = 2, 8, 32 windows of 30 events x 6 channels of 64x256 float32 spectrograms (11.8 MB each):
   the peak (Linux ``VmHWM`` above the RSS after imports) should not grow with k.

    .venv/bin/python bench/bench_dataset.py [--device cuda]
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from glitchflow_assets.core.dataset.spectrograms import build_spectrograms

RATE, WINDOW_S = 4096, 300


def throughput(device: torch.device, witnesses: int, events: int) -> float:
    data = np.random.default_rng(0).standard_normal((witnesses + 1, WINDOW_S * RATE))
    gps = np.linspace(10, WINDOW_S - 10, events)
    segments = [[(0.0, float(WINDOW_S))]] * (witnesses + 1)
    build_spectrograms(data, 0.0, RATE, segments, gps[:2], device=device)  # warm-up
    start = time.perf_counter()
    build_spectrograms(data, 0.0, RATE, segments, gps, device=device)
    return events / (time.perf_counter() - start)


def _vm_hwm_kib() -> int:
    return int(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM")))


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def writer_peak(windows: int, directory: str) -> None:
    """Child process: stream ``windows`` synthetic windows into a DatasetWriter; print the peak MiB above baseline."""
    from glitchflow_assets.core.dataset.splits import DatasetConfig, DatasetWriter

    rng = np.random.default_rng(1)
    _reset_peak()
    base = _vm_hwm_kib()
    writer = DatasetWriter(Path(directory) / f"d{windows}.h5", [f"C{i}" for i in range(6)], DatasetConfig())
    writer.set_axes(np.geomspace(8, 500, 64), np.linspace(-3, 3, 256, endpoint=False))
    for k in range(windows):
        spectrograms = rng.exponential(1.44, (30, 6, 64, 256)).astype(np.float32)  # one window, as read from its file
        spectrograms[:, :, 20:40, 120:136] += 60.0
        writer.add_window(f"w{k}", spectrograms, 1e9 + 300 * k + np.arange(30) * 9.0)
        del spectrograms
    writer.close({})
    print((_vm_hwm_kib() - base) / 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--witnesses", type=int, default=5)
    parser.add_argument("--events", type=int, default=64)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--dir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        writer_peak(args.child, args.dir)
        return
    rate = throughput(torch.device(args.device), args.witnesses, args.events)
    print(
        f"spectrograms: {rate:.1f} events/s ({args.witnesses + 1} channels, device {args.device}, torch threads {torch.get_num_threads()})"
    )
    print("| windows streamed | tiles written | peak MiB above baseline |\n|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for k in (2, 8, 32):
            out = subprocess.run([sys.executable, __file__, "--child", str(k), "--dir", tmp], capture_output=True, text=True, check=True)
            print(f"| {k} | {k * 30 * 5} | {float(out.stdout.strip()):.1f} |")


if __name__ == "__main__":
    main()
