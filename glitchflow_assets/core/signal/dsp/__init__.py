"""Signal processing in torch for batches of channels: gwpy-compatible whitening and Q-transforms."""

from .qtransform import MultiQTransform, QTiling, SingleQTransform, q_scan, q_transform, q_values
from .whitening import colour, psd_median, psd_of_segments, whiten, whitening_filter

__all__ = [
    "MultiQTransform",
    "QTiling",
    "SingleQTransform",
    "psd_median",
    "psd_of_segments",
    "q_scan",
    "q_transform",
    "colour",
    "q_values",
    "whiten",
    "whitening_filter",
]
