"""Model figures as PNG bytes: training curves, evaluation curves, generated vs real tiles on their true axes."""

import numpy as np
import pandas as pd

from glitchflow_assets.core.plots import pyplot, to_png

FONT = 10
DPI = 150


def training_curves_png(history: list[dict], best_epoch: int) -> bytes:
    fig, ax = pyplot().subplots(figsize=(6, 3.6))
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["train_loss"] for h in history], label="train")
    ax.plot(epochs, [h["validation_loss"] for h in history], label="validation")
    ax.axvline(best_epoch, color="k", ls="--", lw=1, label=f"best (epoch {best_epoch})")
    ax.set_xlabel("epoch", fontsize=FONT)
    ax.set_ylabel("loss (glitch-weighted L1)", fontsize=FONT)
    ax.tick_params(labelsize=FONT)
    ax.legend(fontsize=FONT)
    fig.tight_layout()
    return to_png(fig, DPI)


def accuracy_curves_png(curves: pd.DataFrame, title: str, n_events: int, n_tiles: int) -> bytes:
    """The original's denoising/veto accuracy against the cluster threshold (SNR^2 1..50)."""
    fig, ax = pyplot().subplots(figsize=(6.5, 4))
    for column in ("denoising_accuracy", "veto_accuracy", "real_glitch_fraction", "generated_glitch_fraction"):
        ax.plot(curves["threshold"], curves[column], label=column.replace("_", " "))
    ax.set_xlabel("cluster threshold [SNR$^2$]", fontsize=FONT)
    ax.set_ylabel("fraction of tiles", fontsize=FONT)
    ax.set_ylim(0, 1.02)
    ax.tick_params(labelsize=FONT)
    ax.set_title(f"{title}\n{n_tiles} tiles of {n_events} events", fontsize=FONT)
    ax.legend(fontsize=FONT - 1)
    fig.tight_layout()
    return to_png(fig, DPI)


def roc_png(curves: dict[str, tuple[np.ndarray, np.ndarray, float]], title: str) -> bytes:
    """ROC curves ``name -> (false positive rate, true positive rate, AUC)`` of glitch detection from the generated tile."""
    fig, ax = pyplot().subplots(figsize=(5, 4.5))
    for name, (fpr, tpr, auc) in curves.items():
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], color="0.6", ls=":", lw=1)
    ax.set_xlabel("false positive rate (background tiles)", fontsize=FONT)
    ax.set_ylabel("true positive rate (glitch tiles)", fontsize=FONT)
    ax.tick_params(labelsize=FONT)
    ax.set_title(title, fontsize=FONT)
    ax.legend(fontsize=FONT - 1, loc="lower right")
    fig.tight_layout()
    return to_png(fig, DPI)


def generated_vs_real_png(generated: np.ndarray, real: np.ndarray, titles: list[str], frequencies: np.ndarray, times: np.ndarray) -> bytes:
    """Rows of (real, generated) ``[H, W]`` tile pairs on their true axes (``frequencies`` ``[H]`` in Hz on a log
    axis, ``times`` ``[row, W]`` in s from the event GPS), one logarithmic colour scale per pair (energies span 1 to
    10^4 SNR^2) with its colour bar, the pair's title above it."""
    from matplotlib.colors import LogNorm

    fig = pyplot().figure(figsize=(10, 3.6 * len(real)), layout="constrained")
    for row, (g, r, title, subfig) in enumerate(
        zip(generated, real, titles, fig.subfigures(len(real), 1, squeeze=False)[:, 0], strict=True)
    ):
        norm = LogNorm(vmin=1.0, vmax=max(25.0, float(np.nanmax(r)), float(np.nanmax(g))))
        axes = subfig.subplots(1, 2)
        for ax, image, name in ((axes[0], r, "real"), (axes[1], g, "generated")):
            mesh = ax.pcolormesh(times[row], frequencies, np.clip(image, 1.0, None), shading="nearest", norm=norm, cmap="viridis")
            ax.set_yscale("log")
            ax.set_title(name, fontsize=FONT)
            ax.set_xlabel("time from event GPS [s]", fontsize=FONT)
            ax.set_ylabel("frequency [Hz]", fontsize=FONT)
            ax.tick_params(labelsize=FONT)
        subfig.colorbar(mesh, ax=list(axes)).set_label("strain energy [SNR$^2$]", fontsize=FONT)
        subfig.suptitle(title, fontsize=FONT + 1)
    return to_png(fig, DPI)
