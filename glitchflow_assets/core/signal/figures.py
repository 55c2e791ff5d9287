"""Figures of the signal stages (PNG bytes in the house style of :mod:`glitchflow_assets.core.plots`): the witness
selection's statistics against their thresholds, and one event's spectrograms."""

import numpy as np
import pandas as pd

from glitchflow_assets.core.plots import pyplot, to_png
from glitchflow_assets.core.signal.annalisa import AnnalisaConfig


def selection_png(table: pd.DataFrame, config: AnnalisaConfig, run: str, not_shown: str = "") -> bytes:
    """The two statistics the run's selection rule uses, each with its threshold, for the channels of ``table`` (the top
    ones of a wide run: ``not_shown`` says what the rest were); selected channels in green."""
    if config.selection == "significance":
        panels = [("significance", "coincidence significance  -log10 p", config.significance_threshold), ("mean_corr", "mean corr", None)]
    else:
        panels = [
            ("mean_corr", "mean corr (fraction of strain peaks witnessed)", config.corr_threshold),
            ("mean_iou", "mean IoU", config.iou_threshold),
        ]
    fig, axes = pyplot().subplots(1, 2, figsize=(8, 0.3 * len(table) + 2), sharey=True, layout="constrained")  # 1200 px wide
    colours = ["tab:green" if s else "tab:grey" for s in table["selected"]]
    for ax, (column, label, threshold) in zip(axes, panels, strict=True):
        ax.barh(table["channel"], table[column], color=colours)
        ax.set_xlabel(label)
        if column == "significance":  # true witnesses reach hundreds: linear to 10, then logarithmic, so 5 stays visible
            ax.set_xscale("symlog", linthresh=10)
        if threshold is not None:
            ax.axvline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold:g}")
            ax.legend(loc="lower right")
    axes[0].invert_yaxis()
    fig.suptitle(f"{run} witness selection (green): {config.rule}")
    if not_shown:
        fig.supxlabel(not_shown, fontsize="small")
    return to_png(fig)


def spectrogram_png(spectrogram: np.ndarray, channels: list[str], frequencies: np.ndarray, times: np.ndarray, title: str) -> bytes:
    """PNG of ``spectrogram[channel, freq, time]`` with its true axes and one colour scale for all channels."""
    fig, axes = pyplot().subplots(1, len(channels), figsize=(3.4 * len(channels) + 1, 3.4), squeeze=False, layout="constrained")
    top = max(25.0, float(spectrogram.max()))
    for ax, image, name in zip(axes[0], spectrogram, channels, strict=True):
        mesh = ax.pcolormesh(times, frequencies, image, shading="nearest", vmin=0, vmax=top)
        ax.set_yscale("log")
        ax.set_title(name)
        ax.set_xlabel("time from event [s]")
    axes[0][0].set_ylabel("frequency [Hz]")
    fig.colorbar(mesh, ax=axes[0], shrink=0.9).set_label("normalised energy [SNR$^2$]")
    fig.suptitle(title)
    return to_png(fig)
