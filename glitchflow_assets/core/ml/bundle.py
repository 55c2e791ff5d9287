"""A self-contained, pickle-free model: ``weights.safetensors`` + ``glitchflow_model.json`` in one directory.

The JSON holds the architecture (:class:`ModelConfig`), the dataset's normalisation (channel names, scales and
representation, strain first), the SHA-256 of the weights file, the detection threshold chosen on validation and
provenance; loading checks the digest, rebuilds the network with our code and fills it from safetensors, so a model
file can never execute anything and swapped or damaged weights are refused.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from glitchflow_assets.core.artifacts.storage import sha256sum
from glitchflow_assets.core.ml.data import Normalisation
from glitchflow_assets.core.ml.model import AttentionUNet, ModelConfig
from glitchflow_assets.core.ml.training import TrainConfig, predict
from glitchflow_assets.core.types import StrainTiles, Tiles

FORMAT = "glitchflow.model"
FORMAT_VERSION = 2  # 2: representation, weights digest, detection threshold
WEIGHTS, MANIFEST = "weights.safetensors", "glitchflow_model.json"
MODEL = "model"  # the model's name in evaluation reports, beside the baselines'


@dataclass
class GlitchModel:
    """A trained network with the normalisation it was trained under; ``detection_threshold`` is the generated
    tile maximum (SNR^2) from which a tile counts as holding a glitch (chosen on validation)."""

    network: AttentionUNet
    normalisation: Normalisation
    provenance: dict
    detection_threshold: float = float("nan")
    name: str = MODEL

    def generate(self, tiles: Tiles, device: torch.device, batch_size: int = 64) -> StrainTiles:
        """Physical tiles ``[batch, channel, freq, time]`` (strain first; only the witnesses are used) -> generated strain
        ``[batch, freq, time]`` in SNR^2."""
        aux, _ = self.normalisation.split(torch.from_numpy(np.ascontiguousarray(tiles, dtype=np.float32)))
        out = predict(self.network.to(device), aux, device, batch_size, TrainConfig(mixed_precision=device.type == "cuda"))
        return self.normalisation.strain_to_physical(out)[:, 0].numpy()


def save_bundle(directory: str | Path, model: GlitchModel) -> Path:
    """Write ``model`` into ``directory`` (created if needed): the weights as safetensors and the manifest JSON (architecture,
    normalisation, weights SHA-256, detection threshold, provenance); returns ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.network.state_dict().items()}
    save_file(state, directory / WEIGHTS)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": model.network.config.to_dict(),
        "normalisation": model.normalisation.to_dict(),
        "weights_sha256": sha256sum(directory / WEIGHTS),
        "detection_threshold_snr2": model.detection_threshold,
        "provenance": model.provenance,
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return directory


def load_bundle(directory: str | Path, device: torch.device | str = "cpu") -> GlitchModel:
    """The model in a bundle directory, on ``device`` and in eval mode; refuses a directory without a bundle, another format version, or
    weights whose SHA-256 is not the manifest's."""
    directory = Path(directory)
    manifest_path = directory / MANIFEST
    if not manifest_path.exists() or not (directory / WEIGHTS).exists():
        raise FileNotFoundError(f"{directory} is not a glitchflow model: expected {MANIFEST} and {WEIGHTS}")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{manifest_path} is not valid JSON: {exc}") from exc
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{manifest_path}: format {manifest.get('format')!r} v{manifest.get('format_version')} is not {FORMAT} v{FORMAT_VERSION} "
            "(the only version this release reads; retrain to get one)"
        )
    if (digest := sha256sum(directory / WEIGHTS)) != manifest["weights_sha256"]:
        raise ValueError(f"{directory / WEIGHTS}: SHA-256 {digest} is not the {manifest['weights_sha256']} its manifest records")
    network = AttentionUNet(ModelConfig.from_dict(manifest["model"]))
    network.load_state_dict(load_file(directory / WEIGHTS, device=str(device)))
    return GlitchModel(
        network.to(device).eval(),
        Normalisation.from_dict(manifest["normalisation"]),
        manifest["provenance"],
        float(manifest["detection_threshold_snr2"]),
    )
