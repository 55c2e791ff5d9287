"""The registered model as MLflow sees it (models-from-code): this file is stored with every model version, and
``mlflow.pyfunc.load_model("models:/glitchflow-SIM@champion")`` runs it to rebuild the network from the version's
pickle-free bundle (safetensors weights + JSON, its SHA-256 checked) - no object is ever unpickled.

``predict`` takes physical tiles ``[batch, channel, freq, time]`` (float32, 64x64) - either every channel of the
dataset, strain first (the strain is ignored), or the witnesses only - and returns the generated strain tiles
``[batch, freq, time]`` in SNR^2.
"""

import mlflow
import numpy as np
from mlflow.pyfunc import PythonModel

BUNDLE = "bundle"  # the model version's artifact that holds weights.safetensors + glitchflow_model.json


class GlitchflowGenerator(PythonModel):
    def load_context(self, context) -> None:
        from glitchflow_assets.core.device import select_device
        from glitchflow_assets.core.ml.bundle import load_bundle

        self.device = select_device()
        self.model = load_bundle(context.artifacts[BUNDLE], self.device)

    def predict(self, context, model_input, params=None) -> np.ndarray:
        tiles = np.asarray(model_input, dtype=np.float32)
        channels = len(self.model.normalisation.channels)
        if tiles.ndim != 4 or tiles.shape[1] not in (channels, channels - 1):
            raise ValueError(
                f"expected tiles [batch, channel, freq, time] with {channels} channels ({', '.join(self.model.normalisation.channels)}) "
                f"or {channels - 1} (the witnesses only); got shape {tiles.shape}"
            )
        if tiles.shape[1] == channels - 1:  # witnesses only: an empty strain slot, which the network never reads
            tiles = np.concatenate([np.zeros_like(tiles[:, :1]), tiles], axis=1)
        return self.model.generate(tiles, self.device)


mlflow.models.set_model(GlitchflowGenerator())
