"""Model figures as PNG bytes: training curves, accuracy curves, generated vs real tiles."""

import numpy as np
import pandas as pd

from glitchflow_assets.core.plots import pyplot, to_png


def training_curves_png(history: list[dict], best_epoch: int) -> bytes:
    fig, ax = pyplot().subplots(figsize=(5, 3))
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["train_loss"] for h in history], label="train")
    ax.plot(epochs, [h["validation_loss"] for h in history], label="validation")
    ax.axvline(best_epoch, color="k", ls="--", lw=1, label=f"best (epoch {best_epoch})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("0.8 L1 + 0.2 (1 - SSIM)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return to_png(fig)


def accuracy_curves_png(curves: pd.DataFrame, title: str) -> bytes:
    fig, ax = pyplot().subplots(figsize=(5, 3))
    for column in ("denoising_accuracy", "veto_accuracy", "real_glitch_fraction"):
        ax.plot(curves["threshold"], curves[column], label=column.replace("_", " "))
    ax.set_xlabel("threshold [SNR$^2$]")
    ax.set_ylim(0, 1.02)
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return to_png(fig)


def generated_vs_real_png(generated: np.ndarray, real: np.ndarray, labels: list[str], frequencies: np.ndarray) -> bytes:
    """Rows of (real, generated) ``[H, W]`` tile pairs, frequencies on the y axis."""
    fig, axes = pyplot().subplots(len(real), 2, figsize=(5, 2.2 * len(real)), squeeze=False)
    for row, (g, r, label) in enumerate(zip(generated, real, labels, strict=True)):
        vmax = max(25.0, float(r.max()), float(g.max()))
        for ax, image, name in ((axes[row][0], r, "real"), (axes[row][1], g, "generated")):
            ax.imshow(image, origin="lower", aspect="auto", vmin=0, vmax=vmax, extent=(0, image.shape[1], frequencies[0], frequencies[-1]))
            ax.set_title(f"{name}: {label}", fontsize=7)
            ax.set_ylabel("Hz", fontsize=7)
    fig.tight_layout()
    return to_png(fig)
