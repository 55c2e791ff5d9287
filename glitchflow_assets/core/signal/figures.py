"""Figures of the signal stages (PNG bytes in the house style of :mod:`glitchflow_assets.core.plots`): the witness
selection's statistics against their thresholds, one event's spectrograms, and versions of one strain stretch
(original, cleaned, glitch-free) as Q-transforms on one colour scale."""

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


def spectrogram_png(
    spectrogram: np.ndarray, channels: list[str], frequencies: np.ndarray, times: np.ndarray, title: str, top: float | None = None
) -> bytes:
    """PNG of ``spectrogram[channel, freq, time]`` with its true axes and one colour scale for all channels, up to
    ``top`` (default: the largest value, at least 25); at most three panels a row, 1200 px wide at most."""
    columns = min(3, len(channels))
    rows = -(-len(channels) // columns)
    fig, axes = pyplot().subplots(
        rows, columns, figsize=(2.3 * columns + 0.9, 2.3 * rows + 0.8), squeeze=False, sharex=True, sharey=True, layout="constrained"
    )
    top = max(25.0, float(spectrogram.max())) if top is None else top
    for ax, image, name in zip(axes.flat, spectrogram, channels, strict=False):
        mesh = ax.pcolormesh(times, frequencies, image, shading="nearest", vmin=0, vmax=top)
        ax.set_yscale("log")
        ax.set_title(name.split(":")[-1])
    for ax in axes.flat[len(channels) :]:
        ax.set_visible(False)
    fig.supxlabel("time from event [s]")
    fig.supylabel("frequency [Hz]")
    fig.colorbar(mesh, ax=axes, shrink=0.9).set_label("normalised energy [SNR$^2$]")
    fig.suptitle(title)
    return to_png(fig)


def strain_versions_png(
    versions: dict[str, np.ndarray], t0: float, sample_rate: float, gps: float, title: str, before_s: float = 3.0, after_s: float = 0.5
) -> bytes:
    """Q-transforms of versions of one strain stretch (label -> ``[time]`` from GPS ``t0``; the first one's ASD whitens
    them all; one Q, 12, for all) over ``gps - before_s`` .. ``gps + after_s``, side by side on one colour scale: energy normalised by each
    frequency row's median (the noise floor, the same in every version: glitches and chirps are brief), 0-25, where
    a chirp's track shows beside a glitch thousands of times louder."""
    from gwpy.timeseries import TimeSeries

    series = {label: TimeSeries(np.asarray(data, dtype=np.float64), t0=t0, sample_rate=sample_rate) for label, data in versions.items()}
    asd = next(iter(series.values())).asd(4, 2, method="median")
    maps = [
        s.q_transform(qrange=(12, 12), frange=(20, 500), outseg=(gps - before_s, gps + after_s), whiten=asd, norm="median", logf=True)
        for s in series.values()
    ]
    times = maps[0].times.value - gps
    stack = np.stack([m.value.T for m in maps])  # [version, freq, time]
    return spectrogram_png(stack, list(versions), maps[0].frequencies.value, times, title, top=25.0)


def strain_asd_png(strain: np.ndarray, sample_rate: float, title: str) -> bytes:
    """The amplitude spectral density of ``strain`` ``[time]`` (median Welch, 4 s segments), from 10 Hz to 90 % of
    Nyquist (above, the resampling filter's roll-off would set the scale)."""
    from scipy.signal import welch

    n = int(4 * sample_rate)
    frequencies, psd = welch(np.nan_to_num(strain.astype(np.float64)), fs=sample_rate, nperseg=min(n, len(strain)), average="median")
    band = (frequencies >= 10) & (frequencies <= 0.45 * sample_rate) & (psd > 0)  # a window all gap (zeros) has none
    fig, ax = pyplot().subplots(figsize=(7, 3.2), layout="constrained")
    if band.any():
        ax.loglog(frequencies[band], np.sqrt(psd[band]), lw=1)
    else:
        ax.text(0.5, 0.5, "no valid strain data in this window", transform=ax.transAxes, ha="center")
    ax.set_xlabel("frequency [Hz]")
    ax.set_ylabel("strain ASD [1/$\\sqrt{\\mathrm{Hz}}$]")
    ax.set_title(title)
    return to_png(fig)


def events_png(events: pd.DataFrame, gps_start: float, gps_end: float, title: str) -> bytes:
    """One window's events as time against frequency (log), coloured and sized by SNR, as Omicron triggers are shown."""
    from matplotlib.colors import LogNorm

    fig, ax = pyplot().subplots(figsize=(7, 3.2), layout="constrained")
    if len(events):
        snr = events["snr"].to_numpy()
        points = ax.scatter(
            events["gps"] - gps_start,
            events["frequency"],
            c=snr,
            s=8 + 4 * np.sqrt(snr),
            cmap="viridis",
            norm=LogNorm(vmin=max(snr.min(), 1.0), vmax=max(snr.max(), 2.0)),
            edgecolors="none",
        )
        fig.colorbar(points, ax=ax).set_label("SNR")
        ax.set_yscale("log")
    else:
        ax.text(0.5, 0.5, "no events", transform=ax.transAxes, ha="center")
    ax.set_xlim(0, gps_end - gps_start)
    ax.set_xlabel(f"time from GPS {gps_start:.0f} [s]")
    ax.set_ylabel("frequency [Hz]")
    ax.set_title(title)
    return to_png(fig)
