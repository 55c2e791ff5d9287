"""Figures rendered off-screen to PNG bytes (for asset metadata and MLflow artifacts)."""

import io


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend (workers have no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def to_png(fig, dpi: int = 80) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    pyplot().close(fig)
    return buffer.getvalue()
