"""Figures of the time-domain twin (PNG bytes in the house style of :mod:`glitchflow_assets.core.plots`): predicted
glitches against the truth (simulated runs) or the strain, one representative held-out glitch per family."""

import numpy as np
import pandas as pd

from glitchflow_assets.core.plots import pyplot, to_png
from glitchflow_assets.core.twin.event_segments import EventSegments


def representative_events(table: pd.DataFrame, family: pd.Series, min_true_snr: float = 8.0) -> dict[str, int]:
    """Per family (``family`` ``[event]``: morphology or class; "" for none), the row of ``table`` whose score is its
    family's median: the glitch of median mismatch among those of true SNR >= ``min_true_snr`` (simulated runs), else
    the glitch of median predicted SNR among those predicted."""
    if "mismatch" in table:
        score, eligible = table["mismatch"], table["true_snr"] >= min_true_snr
    else:
        score, eligible = table["predicted_snr"], table["amplitude"] > 0
    keep = eligible.to_numpy() & (family.to_numpy() != "")
    frame = pd.DataFrame({"score": score.to_numpy()[keep], "family": family.to_numpy()[keep]}, index=table.index[keep])
    chosen = {}
    for name, rows in frame.groupby("family"):
        order = rows["score"].sort_values(kind="stable")
        chosen[str(name)] = int(order.index[(len(order) - 1) // 2])
    return chosen


def _span(*waves: np.ndarray, rate: float, pad_s: float = 0.1) -> slice:
    """The samples where any of ``waves`` holds a tenth of its peak, padded by ``pad_s``."""
    loud = np.zeros(waves[0].size, bool)
    for wave in waves:
        peak = np.max(np.abs(wave))
        if peak > 0:
            loud |= np.abs(wave) >= 0.1 * peak
    where = np.flatnonzero(loud)
    if where.size == 0:
        return slice(0, waves[0].size)
    pad = int(pad_s * rate)
    return slice(max(0, where[0] - pad), min(waves[0].size, where[-1] + pad + 1))


def waveforms_png(segments: EventSegments, fitted: np.ndarray, table: pd.DataFrame, chosen: dict[str, int], title: str) -> bytes:
    """One panel per family in ``chosen`` (family -> event row): the twin's glitch as fitted on the strain (``fitted``
    ``[event, time]``, whitened) against the simulator's true glitch (``segments.truth``) or, without a truth, the
    whitened strain itself, around the event."""
    rows = len(chosen)
    fig, axes = pyplot().subplots(rows, 1, figsize=(7.5, 1.9 * rows + 0.8), squeeze=False, layout="constrained")
    rate = segments.sample_rate
    for ax, (family, i) in zip(axes[:, 0], sorted(chosen.items()), strict=True):
        reference = segments.truth[i] if segments.truth is not None else segments.strain[i]
        label = "true glitch" if segments.truth is not None else "whitened strain"
        span = _span(reference if segments.truth is not None else fitted[i], fitted[i], rate=rate)
        times = (segments.t0[i] + np.arange(reference.size) / rate - segments.gps[i])[span]
        ax.plot(times, reference[span], color="0.55", lw=1.2, label=label)
        ax.plot(times, fitted[i][span], color="tab:red", lw=1, label="twin, from the witnesses")
        score = table.loc[i]
        if "mismatch" in table:
            detail = f"mismatch {score['mismatch']:.3f}, true SNR {score['true_snr']:.0f}"
        else:
            detail = f"predicted SNR {score['predicted_snr']:.0f}"
        ax.set_title(f"{family}: GPS {segments.gps[i]:.3f} ({detail})")
        ax.set_ylabel("whitened")
    axes[0, 0].legend(loc="upper right")
    axes[-1, 0].set_xlabel("time from event [s]")
    fig.suptitle(title)
    return to_png(fig)
