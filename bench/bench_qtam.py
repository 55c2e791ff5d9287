"""Would the spectrogram model plus an invertible Q-transform (the PyPI package ``qtam``) give glitch waveforms?

Issue 13 asks to evaluate the route "spectrogram model + invertible transform" next to the Wiener filter and the
network. The spectrogram model predicts tile *energies* on the dataset's grid (Q 12, 8-500 Hz, 64 rows, 256 time
bins over 6 s): no phase. So the question is how much of a glitch survives a round trip through QTAM on that band and
grid, with the true phase and without it, measured on the held-out test glitches of the README main job (true SNR
>= 8, the simulator's own whitened strain glitch, the same 8 s segments the twin is scored on):

* **full resolution, energy + phase**: QTAM's own invertibility on the band (what is lost outside 8-500 Hz);
* **full resolution, zero phase**: the best an energy-only prediction could do (a perfect spectrogram model);
* **the dataset's time resolution** (~43 bins/s), energy + phase and zero phase.

The score is the whitened mismatch ``1 - <a, b>/(|a||b|)`` the twin's goal is stated in (goal <= 0.05).

qtam is GPL-3.0 and not a dependency of the platform; install it into the venv for this script only:

    uv pip install --python .venv/bin/python --no-deps qtam==0.3.1
    GLITCHFLOW_HOME=~/.glitchflow .venv/bin/python bench/bench_qtam.py
"""

import importlib.metadata
import importlib.util
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from glitchflow_assets.core.artifacts.dataset_split import dataset_events
from glitchflow_assets.core.dataset.spectrograms import SpectrogramConfig
from glitchflow_assets.core.runs.registry import load_registry
from glitchflow_assets.core.sim.truth import StrainTruth
from glitchflow_assets.core.twin.event_segments import SegmentConfig, event_segments
from glitchflow_assets.core.twin.scoring import mismatch
from glitchflow_assets.defs.twin import window_files
from glitchflow_assets.lib.inputs import Inputs
from glitchflow_assets.lib.names import SPLIT
from glitchflow_assets.lib.resources import GlitchflowStorage

SNR_MIN = 8.0


def _import_qtam():
    spec = importlib.util.find_spec("qtam")
    if spec is None:
        raise SystemExit("qtam is not installed: uv pip install --python .venv/bin/python --no-deps qtam==0.3.1")
    sys.path.insert(0, str(Path(spec.origin).parent))  # qtam 0.3.1 imports its own spline module by a top-level name
    warnings.filterwarnings("ignore", module="qtam")
    import qtam

    return qtam


def _test_truth() -> tuple[np.ndarray, float]:
    """The whitened true glitches ``[event, time]`` of the held-out test events of true SNR >= 8, and the rate."""
    run, storage = load_registry()["SIM"], GlitchflowStorage()
    test = dataset_events(storage.run_file("SIM", SPLIT))["test"]
    truth = StrainTruth(run.frames.path).glitch
    parts = []
    for w in window_files(Inputs(storage, run, None), sorted(test)):
        wanted = w.events[np.isin(w.events.gps.to_numpy(), test[w.key])]
        segments, _ = event_segments(w.channels([]), w.key, wanted, SegmentConfig(), truth)
        if segments is not None:
            parts.append((segments.truth, segments.sample_rate))
    glitches = np.concatenate([p for p, _ in parts])
    return glitches[np.linalg.norm(glitches, axis=-1) >= SNR_MIN], parts[0][1]


def _round_trip(transform, x: torch.Tensor, num_time: int | None, keep_phase: bool) -> np.ndarray:
    """``x`` ``[event, time]`` through QTAM (energy and phase tiles) and back; the phase zeroed unless ``keep_phase``."""
    out = []
    for batch in x.split(8):
        tiles = transform(batch[:, None], num_time=num_time)  # [event, 1, (energy, phase), freq, time]
        if not keep_phase:
            tiles[:, :, 1] = 0.0
        out.append(transform.invert_qtransform(tiles).reshape(len(batch), -1)[:, : x.shape[-1]])
    return torch.cat(out).numpy()


def main() -> None:
    qtam = _import_qtam()
    glitches, rate = _test_truth()
    duration = glitches.shape[-1] / rate
    grid = SpectrogramConfig()
    per_s = grid.time_bins / grid.span  # the dataset's time bins per second
    x = torch.tensor(glitches, dtype=torch.float32)
    rows = {}
    transform = qtam.SingleQTransform(duration=duration, sample_rate=rate, q=grid.q, frange=list(grid.frange))
    for label, num_time in (("full resolution", None), (f"{per_s:.0f} bins/s", int(round(per_s * duration)))):
        for keep_phase in (True, False):
            t0 = time.perf_counter()
            m = mismatch(_round_trip(transform, x, num_time, keep_phase), glitches)
            name = f"{label}, {'energy + phase' if keep_phase else 'energy only (zero phase)'}"
            quartiles = np.quantile(m, [0.25, 0.5, 0.75])
            rows[name] = {"median_mismatch": quartiles[1], "quartiles": [quartiles[0], quartiles[2]], "seconds": time.perf_counter() - t0}
            print(f"{name:40s} median mismatch {quartiles[1]:.3f} (quartiles {quartiles[0]:.3f}, {quartiles[2]:.3f})", flush=True)
    results = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "qtam": importlib.metadata.version("qtam"),
        "events": len(glitches),
        "segment_s": duration,
        "q": grid.q,
        "frange_hz": list(grid.frange),
        "rows": rows,
    }
    out = Path(__file__).resolve().parent / "out" / "qtam.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=float))
    print(f"{len(glitches)} held-out glitches of true SNR >= {SNR_MIN:g}; results in {out}")


if __name__ == "__main__":
    main()
