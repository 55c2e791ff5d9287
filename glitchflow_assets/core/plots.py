"""Figures rendered off-screen to PNG bytes (for asset metadata and MLflow artifacts), in one house style:
150 dpi, text at 10 pt or more, no grid lines (they would cross images)."""

import io

FONT_PT = 10
DPI = 150
_STYLE = {
    "font.size": FONT_PT,
    "axes.titlesize": FONT_PT + 1,
    "axes.labelsize": FONT_PT,
    "xtick.labelsize": FONT_PT,
    "ytick.labelsize": FONT_PT,
    "legend.fontsize": FONT_PT,
    "figure.titlesize": FONT_PT + 2,
    "axes.grid": False,
}


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend (workers have no display), in the house style."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(_STYLE)
    return plt


def to_png(fig, dpi: int = DPI) -> bytes:
    """``fig`` rendered to PNG bytes at ``dpi``, then closed (pyplot would otherwise keep every figure)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    pyplot().close(fig)
    return buffer.getvalue()
