"""Reading a ``dataset_split`` file for the model: normalised auxiliary inputs and strain targets.

Channel 0 of every tile is the strain (the target), channels 1.. are the selected witnesses (the inputs). The model
works in normalised units built from the training split's per-channel scale ``s`` (the mean glitch-tile maximum,
stored in the dataset and, later, in the model); ``Normalisation.strain_to_physical`` brings its output back to SNR^2.

Representations:

* ``log`` (default): ``log(1 + E) / log(1 + s)``. Tile energies span 1 (noise) to 10^4 (loud glitches); on that
  scale an L1 fit is pulled to the noise median and a glitch costs as little as a few noise pixels - the model that
  outputs the noise floor everywhere. In log energy a glitch is an O(1) feature the loss cannot ignore.
* ``linear``: ``E / s``, the original's.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from glitchflow_assets.core.artifacts.dataset_split import read_info, read_split

REPRESENTATIONS = ("log", "linear")


@dataclass(frozen=True)
class Normalisation:
    """Per-channel scales ``[channel]`` (strain first) from the training split, and the representation."""

    channels: tuple[str, ...]
    scale: tuple[float, ...]
    representation: str = "log"

    def __post_init__(self) -> None:
        if self.representation not in REPRESENTATIONS:
            raise ValueError(f"representation {self.representation!r} is not one of {REPRESENTATIONS}")

    @property
    def aux_channels(self) -> tuple[str, ...]:
        return self.channels[1:]

    def _divisor(self, like: torch.Tensor) -> torch.Tensor:
        scale = torch.as_tensor(self.scale, dtype=like.dtype, device=like.device).view(1, -1, 1, 1)
        return torch.log1p(scale) if self.representation == "log" else scale

    def split(self, tiles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Physical ``[batch, channel, freq, time]`` -> normalised (aux ``[batch, witness, freq, time]``, strain
        ``[batch, 1, freq, time]``)."""
        values = torch.log1p(tiles.clamp(min=0)) if self.representation == "log" else tiles
        normalised = values / self._divisor(tiles)
        return normalised[:, 1:], normalised[:, :1]

    def strain_to_physical(self, strain: torch.Tensor) -> torch.Tensor:
        """Normalised ``[batch, 1, freq, time]`` -> SNR^2."""
        values = strain * self._divisor(strain)[:, :1]
        return torch.expm1(values) if self.representation == "log" else values

    def physical_snr2(self, snr2: float) -> float:
        """An SNR^2 level in the strain's normalised units."""
        return float(self.split(torch.full((1, len(self.scale), 1, 1), snr2, dtype=torch.float64))[1].item())

    def to_dict(self) -> dict:
        return {"channels": list(self.channels), "scale": list(self.scale), "representation": self.representation}

    @classmethod
    def from_dict(cls, values: dict) -> "Normalisation":
        # bundles written before representations existed were linear
        return cls(tuple(values["channels"]), tuple(float(v) for v in values["scale"]), values.get("representation", "linear"))


@dataclass(frozen=True)
class TileSet:
    """One split in memory: aux ``[tile, witness, 64, 64]`` and strain ``[tile, 1, 64, 64]`` (normalised), label ``[tile]``."""

    aux: torch.Tensor
    strain: torch.Tensor
    label: torch.Tensor

    def __len__(self) -> int:
        return len(self.label)


def read_normalisation(path: str | Path, representation: str = "log") -> Normalisation:
    """The normalisation a dataset file records (channels, strain first, and their training scales), in ``representation``."""
    info = read_info(path)
    return Normalisation(tuple(info.channels), tuple(float(v) for v in info.channel_scale), representation)


def load_split(path: str | Path, split: str, normalisation: Normalisation) -> TileSet:
    """A whole split in memory (``N * channels * 16 KiB``): for training, which revisits every tile each epoch."""
    tiles, label = read_split(path, split)
    aux, strain = normalisation.split(torch.from_numpy(tiles))
    return TileSet(aux.contiguous(), strain.contiguous(), torch.from_numpy(label.astype(np.int64)))
