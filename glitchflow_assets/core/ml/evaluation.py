"""Held-out evaluation and synthetic glitch sets: the model streamed over a split, batch by batch.

Everything here is in physical units (strain SNR^2). Baselines: an all-zero tile and the training split's mean
strain tile - what a model that ignores the witnesses could do at best without them.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import torch
from torchmetrics.functional.image import structural_similarity_index_measure

from glitchflow_assets.core.ml.bundle import GlitchModel
from glitchflow_assets.core.ml.data import TileBatch, iter_split
from glitchflow_assets.core.ml.metrics import REPORT_THRESHOLD, THRESHOLDS, accuracy_curves, cluster_flags, tile_residuals, veto_table
from glitchflow_assets.core.storage import atomic_path

SYNTHETIC_SCHEMA = "glitchflow.synthetic_glitches"


def generated_batches(
    model: GlitchModel, dataset: str | Path, split: str, device: torch.device, batch_size: int = 64
) -> Iterator[tuple[TileBatch, np.ndarray]]:
    """(stored batch, generated strain ``[B, H, W]`` in SNR^2) over one split, in stored order."""
    with h5py.File(dataset, "r") as f:
        channels = tuple(f["channels"].asstr()[()])
    if channels != model.normalisation.channels:
        raise ValueError(f"{dataset} has channels {list(channels)}, the model was trained on {list(model.normalisation.channels)}")
    for batch in iter_split(dataset, split, batch_size):
        yield batch, model.generate(batch.tiles, device, batch_size)


def mean_strain_tile(dataset: str | Path, split: str = "train", batch_size: int = 256) -> np.ndarray:
    """``[H, W]`` mean strain tile of a split (the mean-tile baseline), streamed."""
    total, n = None, 0
    for batch in iter_split(dataset, split, batch_size):
        s = batch.tiles[:, 0].astype(np.float64).sum(axis=0)
        total, n = (s if total is None else total + s), n + len(batch.tiles)
    if not n:
        raise ValueError(f"{dataset}: split {split!r} is empty")
    return total / n


def _ssim(generated: np.ndarray, real: np.ndarray, data_range: float) -> np.ndarray:
    g, r = (torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[:, None] for a in (generated, real))
    return structural_similarity_index_measure(g, r, data_range=data_range, reduction="none").numpy()


def _l1(a: np.ndarray, b: np.ndarray | float) -> np.ndarray:
    return np.abs(a - b).reshape(len(a), -1).mean(axis=1)


@dataclass
class Evaluation:
    curves: pd.DataFrame  # one row per SNR^2 threshold 1..50
    tiles: pd.DataFrame  # one row per tile: provenance, label, L1 / SSIM, baseline L1s
    vetoes: pd.DataFrame  # one row per event

    def summary(self) -> dict[str, float]:
        at = self.curves.set_index("threshold").loc[REPORT_THRESHOLD]
        return {
            "n_tiles": float(len(self.tiles)),
            "n_events": float(len(self.vetoes)),
            f"denoising_accuracy_snr2_{REPORT_THRESHOLD}": float(at["denoising_accuracy"]),
            f"veto_accuracy_snr2_{REPORT_THRESHOLD}": float(at["veto_accuracy"]),
            "l1": float(self.tiles["l1"].mean()),
            "ssim": float(self.tiles["ssim"].mean()),
            "l1_zero_baseline": float(self.tiles["l1_zero"].mean()),
            "l1_mean_tile_baseline": float(self.tiles["l1_mean_tile"].mean()),
            "events_cleaned_fraction": float(self.vetoes["cleaned"].mean()),
        }


def evaluate(model: GlitchModel, dataset: str | Path, device: torch.device, split: str = "test", batch_size: int = 64) -> Evaluation:
    """Denoising/veto curves, per-tile L1/SSIM (+ baselines) and the per-event veto table on one split."""
    mean_tile = mean_strain_tile(dataset)
    data_range = float(model.normalisation.scale[0])  # SSIM over the strain's training glitch scale
    flags, rows, per_tile = [], [], []
    for batch, generated in generated_batches(model, dataset, split, device, batch_size):
        real = batch.tiles[:, 0]
        flags.append(cluster_flags(generated, real, THRESHOLDS))
        per_tile.append(tile_residuals(generated, real, batch.event_gps))
        rows.append(
            pd.DataFrame(
                {
                    "event_gps": batch.event_gps,
                    "window": batch.window,
                    "tile_offset": batch.tile_offset,
                    "label": batch.label,
                    "l1": _l1(generated, real),
                    "ssim": _ssim(generated, real, data_range),
                    "l1_zero": _l1(real, 0.0),
                    "l1_mean_tile": _l1(real, mean_tile),
                }
            )
        )
    if not rows:
        raise ValueError(f"{dataset}: split {split!r} is empty: nothing to evaluate on")
    merged = {k: np.concatenate([f[k] for f in flags]) for k in flags[0]}
    return Evaluation(accuracy_curves(merged, THRESHOLDS), pd.concat(rows, ignore_index=True), veto_table(pd.concat(per_tile)))


def write_synthetic(
    path: str | Path,
    model: GlitchModel,
    dataset: str | Path,
    splits: tuple[str, ...],
    device: torch.device,
    attrs: dict,
    batch_size: int = 64,
) -> dict[str, int]:
    """Generate strain tiles for every tile of ``splits`` into ``path`` (atomic), batch by batch.

    Layout: ``/generated``, ``/real`` ``[N, H, W]`` (SNR^2), per item ``event_gps``, ``window``, ``tile_offset``,
    ``label``, ``split``; ``/axes/frequencies`` (Hz, the tile's rows) and ``/axes/times`` (s from the event GPS;
    item ``i`` covers ``times[tile_offset[i]:tile_offset[i] + W]``); channels and provenance in attributes.
    """
    with h5py.File(dataset, "r") as f:
        frequencies, times, (h, w) = f["axes/frequencies"][()], f["axes/times"][()], f["train/tiles"].shape[-2:]
    counts = {}
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as out:
        columns = {
            "generated": ((h, w), "f4"),
            "real": ((h, w), "f4"),
            "event_gps": ((), "f8"),
            "tile_offset": ((), "i4"),
            "label": ((), "i1"),
            "window": ((), h5py.string_dtype()),
            "split": ((), h5py.string_dtype()),
        }
        for name, (shape, dtype) in columns.items():
            out.create_dataset(name, (0, *shape), maxshape=(None, *shape), dtype=dtype, chunks=(64, *shape))
        out["generated"].attrs["units"] = out["real"].attrs["units"] = "SNR^2 (whitened Q-transform energy)"
        for split in splits:
            counts[split] = 0
            for batch, generated in generated_batches(model, dataset, split, device, batch_size):
                n0, n = out["label"].shape[0], len(generated)
                values = {
                    "generated": generated,
                    "real": batch.tiles[:, 0],
                    "event_gps": batch.event_gps,
                    "tile_offset": batch.tile_offset,
                    "label": batch.label,
                    "window": batch.window,
                    "split": [split] * n,
                }
                for name, value in values.items():
                    out[name].resize(n0 + n, axis=0)
                    out[name][n0:] = value
                counts[split] += n
        out.create_dataset("axes/frequencies", data=frequencies).attrs["units"] = "Hz"
        out.create_dataset("axes/times", data=times).attrs["units"] = "s from event GPS (item: times[tile_offset:tile_offset+W])"
        out.attrs.update(
            {
                "schema": SYNTHETIC_SCHEMA,
                "schema_version": 1,
                "channels": json.dumps(list(model.normalisation.channels)),
                "strain_channel": model.normalisation.channels[0],
                "aux_channels": json.dumps(list(model.normalisation.aux_channels)),
                "counts": json.dumps(counts),
                **attrs,
            }
        )
    return counts
