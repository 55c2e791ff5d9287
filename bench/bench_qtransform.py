"""Q-transform throughput: glitchflow's torch Q-transform against gwpy and ml4gw on the same input.

The setting is the one the original system used for its spectrograms: a single Q = 12 plane, 8-500 Hz, a
64 x 256 (frequency x time) log-frequency output, and 6 s at 4096 Hz per channel. The input is whitened
Gaussian noise ``[events, channels, time]``, for example 64 events x 26 channels. The slow baselines
transform only the first ``--baseline-events`` events. Every figure is a rate, in channel-seconds of input
per second of wall time, so the baseline rates do not need scaling. Each timing is the best of
``--repeat`` runs after one warm-up, so that load from other processes on a shared machine counts as little
as possible.

- ours: ``glitchflow_assets.core.signal.dsp.SingleQTransform``, run on ``batch`` events
  (``batch x channels`` series) per call, in float32 and float64, with all torch threads and with one.
- gwpy: ``TimeSeries.q_transform(qrange=(12, 12), frange=(8, 500), whiten=False, tres=6/256, fres=64,
  logf=True)``, in one process and in one forked process per core (the input is shared, not pickled).
- ml4gw: ``ml4gw.transforms.SingleQTransform(duration=6, sample_rate=4096, spectrogram_shape=(64, 256),
  q=12, frange=[8, 500])``, float32, with its default ``"bicubic"`` interpolation and with ``"spline"``.

The "error vs gwpy" column is the median and maximum of |E - E_gwpy| / E_gwpy over all pixels of the first
``ACCURACY_CHANNELS`` channels. Run with ``--device cuda`` to time ours and ml4gw on a GPU (gwpy stays on CPU).
"""

import argparse
import multiprocessing
import os
import platform
import subprocess
import time
from collections.abc import Callable

import gwpy
import ml4gw
import numpy as np
import scipy
import torch
from gwpy.timeseries import TimeSeries
from ml4gw.transforms import SingleQTransform as Ml4gwSingleQTransform

from glitchflow_assets.core.signal.dsp import SingleQTransform

RATE = 4096
DURATION = 6.0
Q = 12.0
FRANGE = (8.0, 500.0)
SHAPE = (64, 256)
ACCURACY_CHANNELS = 4

_SHARED: np.ndarray | None = None  # [series, time] for forked gwpy workers: inherited, never pickled


def gwpy_qtransform(values: np.ndarray) -> np.ndarray:
    """gwpy's spectrogram ``[freq, time]`` of one whitened series ``[time]``."""
    series = TimeSeries(values, sample_rate=RATE, t0=0)
    qgram = series.q_transform(
        qrange=(Q, Q), frange=FRANGE, whiten=False, tres=DURATION / SHAPE[1], fres=SHAPE[0], logf=True, norm="median"
    )
    return qgram.value.T


def _gwpy_worker(rows: range) -> None:
    for row in rows:
        gwpy_qtransform(_SHARED[row])


def best_seconds(run: Callable[[], object], repeat: int) -> float:
    """Best wall time of ``repeat`` calls after a warm-up."""
    run()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def time_gwpy(series: np.ndarray, processes: int, repeat: int) -> float:
    """Seconds for gwpy to transform every row of ``series`` ``[series, time]`` using ``processes`` processes."""
    global _SHARED
    _SHARED = series
    if processes == 1:
        return best_seconds(lambda: _gwpy_worker(range(len(series))), repeat)
    chunks = [range(i, len(series), processes) for i in range(processes)]
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        return best_seconds(lambda: pool.map(_gwpy_worker, chunks), repeat)


def time_batches(module: torch.nn.Module, data: torch.Tensor, batch: int, repeat: int) -> float:
    """Seconds for ``module`` to transform all of ``data`` ``[events, channels, time]``, ``batch`` events per call."""

    def run() -> None:
        with torch.inference_mode():
            for start in range(0, len(data), batch):
                module(data[start : start + batch])
        if data.device.type == "cuda":
            torch.cuda.synchronize()

    return best_seconds(run, repeat)


def relative_error(ours: torch.Tensor, reference: np.ndarray) -> tuple[float, float]:
    """(median, max) of |ours - gwpy| / gwpy over ``[channels, freq, time]`` (ml4gw squeezes its batch axis)."""
    error = np.abs(ours.reshape(reference.shape).double().cpu().numpy() - reference) / reference
    return float(np.median(error)), float(error.max())


def machine() -> str:
    lscpu = dict(line.split(":", 1) for line in subprocess.check_output(["lscpu"], text=True).splitlines() if ":" in line)
    model = lscpu["Model name"].strip()
    gpu = f", GPU: {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (
        f"CPU: {model} (`lscpu`), {os.cpu_count()} logical cores{gpu}; Python {platform.python_version()}, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), gwpy {gwpy.__version__}, ml4gw {ml4gw.__version__}, "
        f"numpy {np.__version__}, scipy {scipy.__version__}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=64)
    parser.add_argument("--channels", type=int, default=26)
    parser.add_argument("--batches", default="1,4,16,64", help="events per call for ours (comma-separated)")
    parser.add_argument("--baseline-events", type=int, default=2, help="events transformed by gwpy and ml4gw")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    cores = os.cpu_count()
    device = torch.device(args.device)
    noise = np.random.default_rng(args.seed).standard_normal((args.events, args.channels, int(DURATION * RATE)))
    baseline = noise[: args.baseline_events]
    rows: list[tuple[str, int, float, tuple[float, float] | None]] = []  # (what, channels, seconds, error)

    reference = np.stack([gwpy_qtransform(series) for series in baseline.reshape(-1, noise.shape[-1])[:ACCURACY_CHANNELS]])
    n_baseline = baseline.shape[0] * baseline.shape[1]
    for processes in sorted({1, cores}):
        rows.append(
            (
                f"gwpy, {processes} process{'es' if processes > 1 else ''}",
                n_baseline,
                time_gwpy(baseline.reshape(n_baseline, -1), processes, args.repeat),
                None,
            )
        )

    accuracy_input = torch.from_numpy(baseline.reshape(-1, noise.shape[-1])[:ACCURACY_CHANNELS])[None]
    for mode in ("bicubic", "spline"):
        module = Ml4gwSingleQTransform(DURATION, RATE, SHAPE, q=Q, frange=list(FRANGE), interpolation_method=mode).to(device)
        data = torch.from_numpy(baseline).to(device, torch.float32)
        with torch.inference_mode():
            error = relative_error(module(accuracy_input.to(device, torch.float32)), reference)
        rows.append((f"ml4gw `{mode}`, float32, batch 1", n_baseline, time_batches(module, data, 1, args.repeat), error))

    threads = torch.get_num_threads()
    for dtype in (torch.float32, torch.float64):
        module = SingleQTransform(DURATION, RATE, Q, FRANGE, spectrogram_shape=SHAPE).to(device, dtype)
        data = torch.from_numpy(noise).to(device, dtype)
        with torch.inference_mode():
            error = relative_error(module(accuracy_input.to(device, dtype)), reference)
        for batch in map(int, args.batches.split(",")):
            seconds = time_batches(module, data, batch, args.repeat)
            rows.append((f"ours, {str(dtype)[6:]}, batch {batch}, {threads} threads", noise.shape[0] * noise.shape[1], seconds, error))
        if device.type == "cpu":
            torch.set_num_threads(1)
            seconds = time_batches(module, data, 4, args.repeat)
            rows.append((f"ours, {str(dtype)[6:]}, batch 4, 1 thread", noise.shape[0] * noise.shape[1], seconds, error))
            torch.set_num_threads(threads)

    rates = {what: channels * DURATION / seconds for what, channels, seconds, _ in rows}
    gwpy_one, gwpy_all = rates["gwpy, 1 process"], rates[f"gwpy, {cores} process{'es' if cores > 1 else ''}"]
    ml4gw_rate = rates["ml4gw `bicubic`, float32, batch 1"]
    print(machine())
    print(
        f"device: {device}; input {args.events} events x {args.channels} channels x {DURATION:g} s at {RATE} Hz; "
        f"baselines on {args.baseline_events} events; best of {args.repeat}\n"
    )
    columns = [
        "run",
        "channels",
        "best wall (s)",
        "channel-s/s",
        "x gwpy 1 process",
        "x gwpy all cores",
        "x ml4gw bicubic",
        "error vs gwpy (median / max)",
    ]
    print("| " + " | ".join(columns) + " |\n|---|" + "---:|" * 6 + "---|")
    for what, channels, seconds, error in rows:
        rate = rates[what]
        cells = [
            what,
            channels,
            f"{seconds:.3f}",
            f"{rate:.0f}",
            f"{rate / gwpy_one:.1f}",
            f"{rate / gwpy_all:.1f}",
            f"{rate / ml4gw_rate:.1f}",
            "-" if error is None else f"{error[0]:.1e} / {error[1]:.1e}",
        ]
        print("| " + " | ".join(map(str, cells)) + " |")


if __name__ == "__main__":
    main()
