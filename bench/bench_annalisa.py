"""ANNALISA scan throughput: channel-seconds of event data scored per second, at a real detector's channel counts.

The original's figure: 8,740 events x 26 channels x 6 s scored in 28 s on one A100-40GB, i.e. about 49,000
channel-seconds per second. Here: ``score_window`` (whitening against each channel's PSD from the whole window,
single-Q transform, 2-D peak masks, coincidence counts) on Gaussian noise for the strain at 4096 Hz and
``--channels`` auxiliary channels held at ANNALISA's scan rate (as the window file holds them: 128 Hz for a new
run's 8-50 Hz, 1024 Hz for SIM's 8-256 Hz), in blocks of the window file's byte budget, ``--events`` events in a
300 s window, on the chosen device. ``--compare-cpu`` scores the same data on the CPU too and says whether the
counts are identical: the check that the GPU path computes what the CPU path does.

    .venv/bin/python bench/bench_annalisa.py --events 64 --repeat 3 [--device cuda --compare-cpu] [--channels 1000 --config sim]
"""

import argparse
import dataclasses
import platform
import time

import numpy as np
import torch

from glitchflow_assets.core.artifacts.raw_strain_segments import SCAN_BLOCK_BYTES, ScanBlock
from glitchflow_assets.core.signal.annalisa import AnnalisaConfig, score_window

RATE, WINDOW_S = 4096, 300
CONFIGS = {  # a new run's defaults, and SIM's registry entry
    "default": AnnalisaConfig(),
    "sim": AnnalisaConfig(frange=(8.0, 256.0), rows=64, logf=True, row_tolerance=2, time_tolerance=0.1, significance_threshold=3.0),
}


def _blocks(n_aux: int, scan_rate: int, rng: np.random.Generator) -> list[ScanBlock]:
    """``n_aux`` channels of noise at ``scan_rate``, in blocks as ``scan_blocks`` reads them from a window file."""
    per_block = max(1, SCAN_BLOCK_BYTES // (WINDOW_S * scan_rate * 8))
    blocks = []
    for b0 in range(0, n_aux, per_block):
        names = [f"AUX{i:04d}" for i in range(b0, min(b0 + per_block, n_aux))]
        data = rng.standard_normal((len(names), WINDOW_S * scan_rate)).astype(np.float32)
        blocks.append(ScanBlock(names, data, 0.0, scan_rate, [[(0.0, float(WINDOW_S))]] * len(names), [float(RATE)] * len(names)))
    return blocks


def _timed(run, device: torch.device, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = run(device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=64)
    parser.add_argument("--channels", type=int, default=26, help="auxiliary channels")
    parser.add_argument("--config", choices=list(CONFIGS), default="default")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compare-cpu", action="store_true", help="score on the CPU too; say whether the counts are identical")
    parser.add_argument("--batch", type=int, default=4, help="events transformed at once")
    args = parser.parse_args()
    device = torch.device(args.device)
    config = dataclasses.replace(CONFIGS[args.config], batch=args.batch)
    scan_rate = config.scan_rate(RATE)
    rng = np.random.default_rng(0)
    strain = rng.standard_normal(WINDOW_S * RATE).astype(np.float32)
    blocks = _blocks(args.channels, scan_rate, rng)
    events = np.linspace(10, WINDOW_S - 10, args.events)
    segments = [(0.0, float(WINDOW_S))]

    def run(on: torch.device):
        return score_window(strain, 0.0, RATE, segments, blocks, scan_rate, events, config, on)

    run(device)  # warm-up: kernels, plans, caches
    best, scores = _timed(run, device, args.repeat)
    channel_seconds = args.events * args.channels * config.duration
    machine = platform.processor() or platform.machine()
    print(f"machine: {machine}, torch {torch.__version__}, threads {torch.get_num_threads()}, device {device}")
    row = f"| {args.config} ({scan_rate} Hz) | {args.events} | {args.channels} | {len(blocks)} | {best:.2f} "
    row += f"| {channel_seconds / best:,.0f} |"
    if args.compare_cpu:
        cpu_best, cpu_scores = _timed(run, torch.device("cpu"), 1)
        equal = [np.array_equal(scores.counts[k], cpu_scores.counts[k]) for k in scores.counts]
        same = np.mean([np.mean(scores.counts[k] == cpu_scores.counts[k]) for k in scores.counts])
        row += f" {cpu_best:.2f} | {cpu_best / best:.1f}x | {all(equal)} ({same:.4%} of counts equal) |"
    header = "| config (scan rate) | events | channels | blocks | wall s (best) | channel-s/s |"
    print(header + (" CPU s | speed-up | identical to CPU |" if args.compare_cpu else ""))
    print(row)


if __name__ == "__main__":
    main()
