"""The time-domain twin applied to events: the witness-only prediction, its amplitude fitted on the strain, and the
glitch in strain units."""

from dataclasses import dataclass

import numpy as np
import torch

from glitchflow_assets.core.signal.dsp import colour
from glitchflow_assets.core.twin.convnet import ConvNetTwin
from glitchflow_assets.core.twin.event_segments import EventSegments
from glitchflow_assets.core.twin.scoring import fitted_amplitude
from glitchflow_assets.core.twin.wiener import WienerFilter

TwinModel = WienerFilter | ConvNetTwin
"""A fitted twin: ``.channels``, ``.witness_rates``, ``.predict(segments)`` -> the whitened glitch ``[event, time]``, ``.save``."""


@dataclass
class Prediction:
    """``whitened`` ``[event, time]`` from the witnesses alone; ``strain`` ``[event, time]`` the same in strain units;
    ``amplitude`` ``[event]`` fitted on the strain (0 where no glitch is predicted)."""

    whitened: np.ndarray
    strain: np.ndarray
    amplitude: np.ndarray

    def glitches(self) -> np.ndarray:
        """The glitches as they sit in the data, strain units ``[event, time]``."""
        return self.amplitude[:, None] * self.strain


def predict(model: TwinModel, segments: EventSegments) -> Prediction:
    """The twin's prediction for ``segments``: whitened from the witnesses alone, re-coloured to strain units by the strain PSD and gated,
    with its amplitude fitted on the strain."""
    whitened = model.predict(segments)
    coloured = colour(torch.as_tensor(whitened), torch.as_tensor(segments.strain_psd), segments.sample_rate).numpy()
    # gated again: re-colouring spreads low frequencies beyond the gate, and nothing may change outside it
    return Prediction(whitened, coloured * segments.gate, fitted_amplitude(whitened, segments.strain, segments.gate))
