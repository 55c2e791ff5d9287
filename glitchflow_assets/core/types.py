"""The one vocabulary of array shapes (jaxtyping), used in signatures and in docstrings as ``[batch, channel, ...]``.

Dimensions: ``event`` (glitch events), ``tile`` (dataset items), ``batch`` (items processed together), ``channel``
(the strain first, then the witnesses), ``witness`` (auxiliary channels only), ``freq`` (spectrogram rows),
``time`` (samples, or spectrogram columns). A tile is ``[channel, freq, time]`` with 64 x 64 pixels in SNR^2."""

import numpy as np
import torch
from jaxtyping import Float

Series = Float[np.ndarray, "time"]
ChannelSeries = Float[np.ndarray, "channel time"]
EventSeries = Float[np.ndarray, "event time"]
EventChannelSeries = Float[np.ndarray, "event channel time"]
Spectrograms = Float[np.ndarray, "event channel freq time"]
Tiles = Float[np.ndarray, "batch channel freq time"]
StrainTiles = Float[np.ndarray, "batch freq time"]
Batch = Float[torch.Tensor, "batch channel time"]
PSD = Float[torch.Tensor, "channel freq"]
