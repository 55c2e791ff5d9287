"""Does the twin put glitches where the strain has them? Scores of generated strain tiles against the real ones.

Everything is in physical units (strain SNR^2) and computed per tile first (:func:`tile_scores`), so any generator -
the model, or a baseline - is scored by the same code, and headline numbers (:func:`headline`) can be recomputed on
bootstrap resamples of *events* (:func:`with_intervals`): tiles of one event are not independent.

* detection: "has a glitch" = generated tile maximum >= a threshold chosen on the validation split
  (:func:`choose_threshold`), scored against the real tile's label: ROC AUC (threshold-free), balanced accuracy,
  precision, recall. A constant generator scores AUC 0.5 and balanced accuracy 0.5.
* loudness and place, on glitch tiles: median generated/real ratio of the tile maximum; distance between the
  peak pixels (time bins, frequency rows); Pearson correlation of log(1 + E) over the tile.
* L1 / SSIM separately for glitch and background tiles.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

HEADLINE = (
    "roc_auc",
    "balanced_accuracy",
    "precision",
    "recall",
    "loudness_ratio",
    "peak_distance_time_bins",
    "peak_distance_freq_rows",
    "log_correlation",
    "l1_glitch",
    "l1_background",
    "ssim_glitch",
    "ssim_background",
)


def ssim(generated: np.ndarray, real: np.ndarray, data_range: float) -> np.ndarray:
    """Per-tile SSIM of ``[tile, freq, time]`` stacks."""
    g, r = (torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[:, None] for a in (generated, real))
    from torchmetrics.functional.image import structural_similarity_index_measure  # torchmetrics: ~1 s of import

    return structural_similarity_index_measure(g, r, data_range=data_range, reduction="none").numpy()


def tile_scores(generated: np.ndarray, real: np.ndarray, ssim_range: float) -> pd.DataFrame:
    """``generated``/``real`` ``[tile, freq, time]`` (SNR^2) -> one row per tile: maxima, peak-pixel distance, log-energy
    correlation, L1 and SSIM."""
    if generated.shape != real.shape:
        raise ValueError(f"generated {generated.shape} and real {real.shape} tiles differ in shape")
    n, h, w = real.shape
    g, r = generated.reshape(n, -1).astype(np.float64), real.reshape(n, -1).astype(np.float64)
    gi, ri = g.argmax(axis=1), r.argmax(axis=1)
    lg, lr = np.log1p(np.clip(g, 0, None)), np.log1p(np.clip(r, 0, None))
    varies = (np.ptp(lg, axis=1) > 0) & (np.ptp(lr, axis=1) > 0)  # a flat tile correlates with nothing
    lg, lr = lg - lg.mean(axis=1, keepdims=True), lr - lr.mean(axis=1, keepdims=True)
    norm = np.sqrt((lg**2).sum(axis=1) * (lr**2).sum(axis=1))
    corr = np.divide((lg * lr).sum(axis=1), norm, out=np.zeros(n), where=varies & (norm > 0))
    return pd.DataFrame(
        {
            "generated_max": g.max(axis=1),
            "real_max": r.max(axis=1),
            "peak_distance_time_bins": np.abs(gi % w - ri % w),
            "peak_distance_freq_rows": np.abs(gi // w - ri // w),
            "log_correlation": corr,
            "l1": np.abs(g - r).mean(axis=1),
            "ssim": ssim(generated, real, ssim_range),
        }
    )


def roc_auc(score: np.ndarray, label: np.ndarray) -> float:
    """Probability that a random glitch tile scores above a random background tile (ties count half):
    the Mann-Whitney form of the ROC area. NaN when a class is missing."""
    positive, negative = score[label == 1], score[label == 0]
    if not len(positive) or not len(negative):
        return float("nan")
    ranks = pd.Series(np.concatenate([positive, negative])).rank(method="average").to_numpy()
    return float((ranks[: len(positive)].sum() - len(positive) * (len(positive) + 1) / 2) / (len(positive) * len(negative)))


def roc_curve(score: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) over every threshold on ``score``, from (0, 0) to (1, 1)."""
    order = np.argsort(-score, kind="stable")
    s, y = score[order], label[order] == 1
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # the last index of each distinct score
    tp, fp = np.cumsum(y)[last], np.cumsum(~y)[last]
    return np.r_[0.0, fp / max(fp[-1], 1)], np.r_[0.0, tp / max(tp[-1], 1)]


def balanced_accuracy(flag: np.ndarray, label: np.ndarray) -> float:
    """Mean of glitch recall and background specificity of ``flag`` (``label`` 1: glitch, 0: background); NaN unless both classes occur."""
    glitch, background = label == 1, label == 0
    if not glitch.any() or not background.any():
        return float("nan")
    return 0.5 * (flag[glitch].mean() + (~flag[background]).mean())


def choose_threshold(score: np.ndarray, label: np.ndarray) -> float:
    """The detection threshold on the generated maximum that maximises balanced accuracy (on validation tiles).
    Candidates are midpoints between distinct scores, so the chosen threshold separates them."""
    values = np.unique(score[np.isfinite(score)])
    if len(values) < 2:
        return float(values[0]) if len(values) else float("nan")
    candidates = np.concatenate([[values[0]], 0.5 * (values[1:] + values[:-1])])
    accuracy = [balanced_accuracy(score >= c, label) for c in candidates]
    return float(candidates[int(np.nanargmax(accuracy))])


def headline(tiles: pd.DataFrame, threshold: float) -> dict[str, float]:
    """Headline numbers of one generator on one split from its per-tile rows (needs ``label`` and the columns of
    :func:`tile_scores`)."""
    label = tiles["label"].to_numpy()
    score = tiles["generated_max"].to_numpy()
    flag = score >= threshold
    glitch, background = tiles[label == 1], tiles[label == 0]
    true_positive = int((flag & (label == 1)).sum())
    return {
        "roc_auc": roc_auc(score, label),
        "balanced_accuracy": balanced_accuracy(flag, label),
        "precision": true_positive / flag.sum() if flag.any() else float("nan"),
        "recall": true_positive / (label == 1).sum() if (label == 1).any() else float("nan"),
        "loudness_ratio": float(np.median(glitch["generated_max"] / glitch["real_max"])) if len(glitch) else float("nan"),
        "peak_distance_time_bins": float(glitch["peak_distance_time_bins"].median()) if len(glitch) else float("nan"),
        "peak_distance_freq_rows": float(glitch["peak_distance_freq_rows"].median()) if len(glitch) else float("nan"),
        "log_correlation": float(glitch["log_correlation"].median()) if len(glitch) else float("nan"),
        "l1_glitch": float(glitch["l1"].mean()) if len(glitch) else float("nan"),
        "l1_background": float(background["l1"].mean()) if len(background) else float("nan"),
        "ssim_glitch": float(glitch["ssim"].mean()) if len(glitch) else float("nan"),
        "ssim_background": float(background["ssim"].mean()) if len(background) else float("nan"),
    }


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"


def with_intervals(tiles: pd.DataFrame, threshold: float, resamples: int = 500, level: float = 0.95, seed: int = 0) -> dict[str, Interval]:
    """:func:`headline` with percentile bootstrap intervals over events (``event_gps``): every resample draws events
    with replacement and keeps all their tiles. Seeded: the same tiles give the same intervals."""
    value = headline(tiles, threshold)
    groups = list(tiles.groupby("event_gps", sort=True).indices.values())
    rng = np.random.default_rng(seed)
    draws = {k: [] for k in value}
    for _ in range(resamples):
        picked = rng.integers(0, len(groups), len(groups))
        sample = tiles.iloc[np.concatenate([groups[i] for i in picked])]
        for k, v in headline(sample, threshold).items():
            draws[k].append(v)
    tail = 100 * (1 - level) / 2
    out = {}
    for k, v in value.items():
        d = np.asarray(draws[k], dtype=np.float64)
        d = d[np.isfinite(d)]
        low, high = np.percentile(d, [tail, 100 - tail]) if len(d) else (np.nan, np.nan)
        out[k] = Interval(v, float(low), float(high))
    return out


def event_counts(tiles: pd.DataFrame) -> dict[str, int]:
    """Events behind a split's tiles: all of them, and those with at least one glitch tile."""
    per_event = tiles.groupby("event_gps")["label"].max()
    return {"events": int(len(per_event)), "glitch_events": int((per_event == 1).sum()), "tiles": int(len(tiles))}
