"""The original's glitch metrics, computed on physical tiles (SNR^2).

A *cluster* at threshold T is an 8-connected region of pixels >= T with an area > 1 pixel.

* denoising accuracy(T): fraction of tiles whose residual ``|generated - real|`` has no cluster at T;
* veto accuracy(T): fraction of tiles where "generated has a cluster at T" == "real has a cluster at T".
"""

import numpy as np
import pandas as pd
from scipy import ndimage

THRESHOLDS = tuple(range(1, 51))
REPORT_THRESHOLD = 16  # the original's training-time threshold (SNR 4)

# 8-connected within each tile, never across tiles of the stack.
_IN_PLANE = np.zeros((3, 3, 3), dtype=bool)
_IN_PLANE[1] = True


def cluster_area(images: np.ndarray, threshold: float) -> np.ndarray:
    """``[tile, freq, time]`` -> ``[tile]`` pixels in clusters (area > 1) at ``threshold``; 0 means no cluster."""
    labels, n = ndimage.label(images >= threshold, structure=_IN_PLANE)
    if n == 0:
        return np.zeros(len(images), dtype=np.int64)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    sizes[0] = 0
    in_cluster = sizes[labels] > 1  # [tile, freq, time]: pixel belongs to a cluster of area > 1
    return in_cluster.reshape(len(images), -1).sum(axis=1)


def has_cluster(images: np.ndarray, threshold: float) -> np.ndarray:
    """``[tile, freq, time]`` -> ``[tile]`` bool: whether each tile has a cluster (area > 1) at ``threshold``."""
    return cluster_area(images, threshold) > 0


def cluster_flags(generated: np.ndarray, real: np.ndarray, thresholds=THRESHOLDS) -> dict[str, np.ndarray]:
    """``generated``/``real`` ``[tile, freq, time]`` -> ``[tile, threshold]`` flags: residual, real and generated have a cluster.
    Flags of successive batches concatenate, so the curves of a split need never hold its tiles."""
    if generated.shape != real.shape:
        raise ValueError(f"generated {generated.shape} and real {real.shape} tiles differ in shape")
    residual = np.abs(generated - real)
    return {
        name: np.stack([has_cluster(images, t) for t in thresholds], axis=1)
        for name, images in (("residual", residual), ("real", real), ("generated", generated))
    }


def accuracy_curves(flags: dict[str, np.ndarray], thresholds=THRESHOLDS) -> pd.DataFrame:
    """One row per threshold: denoising and veto accuracy, and the fraction of real and generated tiles with a cluster."""
    if len(flags["real"]) == 0:
        raise ValueError("no tiles to evaluate")
    return pd.DataFrame(
        {
            "threshold": list(thresholds),
            "denoising_accuracy": 1.0 - flags["residual"].mean(axis=0),
            "veto_accuracy": (flags["real"] == flags["generated"]).mean(axis=0),
            "real_glitch_fraction": flags["real"].mean(axis=0),
            "generated_glitch_fraction": flags["generated"].mean(axis=0),
        }
    )


def tile_residuals(generated: np.ndarray, real: np.ndarray, event_gps: np.ndarray, threshold: float = REPORT_THRESHOLD) -> pd.DataFrame:
    """Per tile: its event, residual cluster area (pixels) and largest residual (SNR^2) at ``threshold``, and
    whether the real and generated tiles have a cluster."""
    residual = np.abs(generated - real)
    return pd.DataFrame(
        {
            "gps": event_gps,
            "residual_area": cluster_area(residual, threshold),
            "max_residual_snr2": residual.reshape(len(residual), -1).max(axis=1),
            "real_glitch": has_cluster(real, threshold),
            "generated_glitch": has_cluster(generated, threshold),
        }
    )


def veto_table(tiles: pd.DataFrame) -> pd.DataFrame:
    """Per event (all its tiles, from :func:`tile_residuals`): cleaned (no residual cluster), total residual area,
    largest residual, and whether the real and the generated tiles flag a glitch."""
    table = tiles.groupby("gps", sort=True).agg(
        tiles=("residual_area", "size"),
        residual_area=("residual_area", "sum"),
        max_residual_snr2=("max_residual_snr2", "max"),
        real_glitch=("real_glitch", "any"),
        generated_glitch=("generated_glitch", "any"),
    )
    table.insert(0, "cleaned", table["residual_area"] == 0)
    return table.reset_index()
