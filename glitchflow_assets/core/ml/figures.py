"""Model figures as PNG bytes: training curves, evaluation curves, generated vs real tiles on their true axes."""

import numpy as np
import pandas as pd

from glitchflow_assets.core.plots import pyplot, to_png


def training_curves_png(history: list[dict], best_epoch: int) -> bytes:
    """Train and validation loss per epoch, the best epoch marked (PNG)."""
    fig, ax = pyplot().subplots(figsize=(6, 3.6))
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["train_loss"] for h in history], label="train")
    ax.plot(epochs, [h["validation_loss"] for h in history], label="validation")
    ax.axvline(best_epoch, color="k", ls="--", lw=1, label=f"best (epoch {best_epoch})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (glitch-weighted L1)")
    ax.legend()
    fig.tight_layout()
    return to_png(fig)


def accuracy_curves_png(curves: pd.DataFrame, title: str, n_events: int, n_tiles: int) -> bytes:
    """The original's denoising/veto accuracy against the cluster threshold (SNR^2 1..50)."""
    fig, ax = pyplot().subplots(figsize=(6.5, 4))
    for column in ("denoising_accuracy", "veto_accuracy", "real_glitch_fraction", "generated_glitch_fraction"):
        ax.plot(curves["threshold"], curves[column], label=column.replace("_", " "))
    ax.set_xlabel("cluster threshold [SNR$^2$]")
    ax.set_ylabel("fraction of tiles")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{title}\n{n_tiles} tiles of {n_events} events")
    ax.legend()
    fig.tight_layout()
    return to_png(fig)


def roc_png(curves: dict[str, tuple[np.ndarray, np.ndarray, float]], title: str) -> bytes:
    """ROC curves ``name -> (false positive rate, true positive rate, AUC)`` of glitch detection from the generated tile."""
    fig, ax = pyplot().subplots(figsize=(5, 4.5))
    for name, (fpr, tpr, auc) in curves.items():
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], color="0.6", ls=":", lw=1)
    ax.set_xlabel("false positive rate (background tiles)")
    ax.set_ylabel("true positive rate (glitch tiles)")
    ax.set_title(title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return to_png(fig)


def generated_vs_real_png(generated: np.ndarray, real: np.ndarray, titles: list[str], frequencies: np.ndarray, times: np.ndarray) -> bytes:
    """Rows of (real, generated) ``[freq, time]`` tile pairs on their true axes (``frequencies`` ``[freq]`` in Hz on a log
    axis, ``times`` ``[row, time]`` in s from the event GPS), one logarithmic colour scale for the whole figure (energies
    span 1 to 10^4 SNR^2) with a colour bar per pair, the pair's title above it."""
    from matplotlib.colors import LogNorm

    norm = LogNorm(vmin=1.0, vmax=max(25.0, float(np.nanmax(real)), float(np.nanmax(generated))))  # one scale: tiles compare
    fig = pyplot().figure(figsize=(8, 3.2 * len(real)), layout="constrained")  # 1200 px wide
    for row, (g, r, title, subfig) in enumerate(
        zip(generated, real, titles, fig.subfigures(len(real), 1, squeeze=False)[:, 0], strict=True)
    ):
        axes = subfig.subplots(1, 2)
        for ax, image, name in ((axes[0], r, "real"), (axes[1], g, "generated")):
            mesh = ax.pcolormesh(times[row], frequencies, np.clip(image, 1.0, None), shading="nearest", norm=norm, cmap="viridis")
            ax.set_yscale("log")
            ax.set_title(name)
            ax.set_xlabel("time from event GPS [s]")
            ax.set_ylabel("frequency [Hz]")
        subfig.colorbar(mesh, ax=list(axes)).set_label("strain energy [SNR$^2$]")
        subfig.suptitle(title)
    return to_png(fig)


def dataset_tiles_png(examples: list[dict], channels: list[str], title: str) -> bytes:
    """Dataset tiles as the model sees them: one row per example (``tile`` ``[channel, freq, time]`` with its
    ``frequencies`` and ``times`` axes), one column per channel (named once, above), each row labelled with its label
    and event time (UTC); one logarithmic colour scale for the whole figure, at most ~1200 px wide."""
    from matplotlib.colors import LogNorm

    from glitchflow_assets.core.runs.windows import gps_to_utc

    top = max(25.0, *(float(np.nanmax(e["tile"])) for e in examples))
    norm = LogNorm(vmin=1.0, vmax=top)
    side = min(2.4, 6.4 / len(channels))
    fig, axes = pyplot().subplots(
        len(examples),
        len(channels),
        figsize=(side * len(channels) + 1.6, 1.25 * side * len(examples) + 1.0),
        squeeze=False,
        sharey=True,
        layout="constrained",
    )
    for r, (row, example) in enumerate(zip(axes, examples, strict=True)):
        for ax, image, name in zip(row, example["tile"], channels, strict=True):
            mesh = ax.pcolormesh(example["times"], example["frequencies"], np.clip(image, 1.0, None), shading="nearest", norm=norm)
            ax.set_yscale("log")
            ends = (example["times"][0], example["times"][-1])  # two ticks: the tile's first and last time
            ax.set_xticks(ends, [f"{round(t, 1) + 0.0:.1f}" for t in ends])  # + 0.0: no "-0.0"
            if r == 0:  # the subsystem prefix dropped when the names must share ~1200 px
                short = name.split(":")[-1]
                ax.set_title(short.split("_", 1)[-1] if len(channels) > 4 and "_" in short else short)
        kind = f"{example['label']} ({example['event_class']})" if example.get("event_class") else example["label"]
        row[0].set_ylabel(f"{kind}\n{gps_to_utc(example['gps']):%H:%M:%S}")
    fig.supxlabel("time from the event [s]; rows: tile label (event class) and event time (UTC); frequency 10-500 Hz, log")
    fig.colorbar(mesh, ax=axes, shrink=0.8).set_label("energy [SNR$^2$]")
    fig.suptitle(title)
    return to_png(fig)
