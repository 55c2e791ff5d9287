"""Signal processing in torch for batches of channels: gwpy-compatible whitening and Q-transforms."""

from .qtransform import MultiQTransform, QTiling, SingleQTransform, q_scan, q_transform, q_values
from .whitening import psd_median, whiten, whitening_filter

__all__ = [
    "MultiQTransform",
    "QTiling",
    "SingleQTransform",
    "psd_median",
    "q_scan",
    "q_transform",
    "q_values",
    "whiten",
    "whitening_filter",
]
