"""ANNALISA scan throughput: channel-seconds of event data scored per second.

The original's figure: 8,740 events x 26 channels x 6 s scored in 28 s on one A100-40GB, i.e. about 49,000
channel-seconds per second. Here: ``score_window`` (whitening against each channel's PSD from the whole window,
single-Q transform Q=12 8-50 Hz on the 0.5 Hz x 0.1 s grid, 2-D peak masks, coincidence counts) on Gaussian noise
for 1 strain + 26 auxiliary channels, ``--events`` events in a 300 s window, on the chosen device.

    .venv/bin/python bench/bench_annalisa.py --events 64 --repeat 3 [--device cuda]
"""

import argparse
import platform
import time

import numpy as np
import torch

from glitchflow_assets.core.artifacts.raw_strain_segments import ScanBlock
from glitchflow_assets.core.signal.annalisa import AnnalisaConfig, score_window

RATE, WINDOW_S, N_AUX = 4096, 300, 26


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=4, help="events transformed at once")
    args = parser.parse_args()
    device = torch.device(args.device)
    rng = np.random.default_rng(0)
    data = rng.standard_normal((N_AUX + 1, WINDOW_S * RATE)).astype(np.float32)
    channels = ["STRAIN"] + [f"AUX{i:02d}" for i in range(N_AUX)]
    segments = [[(0.0, float(WINDOW_S))]] * len(channels)
    events = np.linspace(10, WINDOW_S - 10, args.events)
    config = AnnalisaConfig(batch=args.batch)
    blocks = [ScanBlock(channels[1:], data[1:], 0.0, RATE, segments[1:], [RATE] * N_AUX)]  # one block: the transforms alone
    score_window(data[0], 0.0, RATE, segments[0], blocks, RATE, events[:2], config, device)  # warm-up
    times = []
    for _ in range(args.repeat):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        score_window(data[0], 0.0, RATE, segments[0], blocks, RATE, events, config, device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    best = min(times)
    channel_seconds = args.events * N_AUX * config.duration
    print(
        f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}, device {device}"
    )
    print(f"| events | channels | wall (s, best of {args.repeat}) | channel-s/s | vs original A100 (49,000/s) |")
    print("|---|---|---|---|---|")
    print(f"| {args.events} | {N_AUX} | {best:.2f} | {channel_seconds / best:,.0f} | {channel_seconds / best / 49_000:.2f}x |")


if __name__ == "__main__":
    main()
