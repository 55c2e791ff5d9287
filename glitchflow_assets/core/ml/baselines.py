"""What a model is judged against: generators that map physical tiles ``[batch, channel, freq, time]`` (strain first) to
strain tiles ``[batch, freq, time]`` in SNR^2, exactly like :meth:`GlitchModel.generate`.

* :class:`ZeroTile` - predicts nothing;
* :class:`MeanTile` - the training split's mean strain tile, whatever the witnesses say;
* :class:`LinearWitness` - the classical answer: per frequency row, a ridge regression of the strain energy on the
  witnesses' energies in the same pixel (a per-frequency coupling |H(f)|^2 for each witness), fitted on the
  training split. It is what a linear transfer-function estimate gets from the witnesses.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from glitchflow_assets.core.artifacts.dataset_split import iter_split
from glitchflow_assets.core.types import StrainTiles, Tiles


class Generator(Protocol):
    name: str

    def generate(self, tiles: Tiles, device: torch.device, batch_size: int = 64) -> StrainTiles:
        """Physical tiles ``[batch, channel, freq, time]`` -> strain ``[batch, freq, time]`` (SNR^2)."""
        ...


@dataclass
class ZeroTile:
    name: str = "zero"

    def generate(self, tiles: Tiles, device: torch.device, batch_size: int = 64) -> StrainTiles:
        return np.zeros((len(tiles), *tiles.shape[-2:]), dtype=np.float32)


@dataclass
class MeanTile:
    mean: np.ndarray  # [freq, time]
    name: str = "mean_tile"

    def generate(self, tiles: Tiles, device: torch.device, batch_size: int = 64) -> StrainTiles:
        return np.broadcast_to(self.mean.astype(np.float32), (len(tiles), *self.mean.shape)).copy()


@dataclass
class LinearWitness:
    weights: np.ndarray  # [H, n_aux + 1]: per frequency row, one coefficient per witness and an intercept
    name: str = "linear_witness"

    def generate(self, tiles: Tiles, device: torch.device, batch_size: int = 64) -> StrainTiles:
        features = np.concatenate([tiles[:, 1:], np.ones_like(tiles[:, :1])], axis=1).astype(np.float64)  # [batch, channel, freq, time]
        return np.clip(np.einsum("bchw,hc->bhw", features, self.weights), 0.0, None).astype(np.float32)


def mean_strain_tile(dataset: str | Path, split: str = "train", batch_size: int = 256) -> np.ndarray:
    """``[freq, time]`` mean strain tile of a split, streamed."""
    total, n = None, 0
    for batch in iter_split(dataset, split, batch_size):
        s = batch.tiles[:, 0].astype(np.float64).sum(axis=0)
        total, n = (s if total is None else total + s), n + len(batch.tiles)
    if not n:
        raise ValueError(f"{dataset}: split {split!r} is empty")
    return total / n


def fit_linear_witness(dataset: str | Path, ridge: float = 1.0, split: str = "train", batch_size: int = 256) -> LinearWitness:
    """Per-row ridge regression on ``split``, streamed: accumulates ``X^T X`` ``[H, C+1, C+1]`` and ``X^T y``
    ``[H, C+1]`` batch by batch, so the split never has to fit in memory. ``ridge`` is relative to the mean diagonal
    of ``X^T X`` (scale-free); the intercept is not penalised."""
    xtx = xty = None
    for batch in iter_split(dataset, split, batch_size):
        t = batch.tiles.astype(np.float64)
        x = np.concatenate([t[:, 1:], np.ones_like(t[:, :1])], axis=1)  # [B, C+1, H, W]
        xtx = (0 if xtx is None else xtx) + np.einsum("bchw,bdhw->hcd", x, x)
        xty = (0 if xty is None else xty) + np.einsum("bchw,bhw->hc", x, t[:, 0])
    if xtx is None:
        raise ValueError(f"{dataset}: split {split!r} is empty: nothing to fit the linear witness baseline on")
    k = xtx.shape[-1]
    penalty = np.eye(k)
    penalty[-1, -1] = 0.0
    scale = np.trace(xtx, axis1=1, axis2=2)[:, None, None] / k
    weights = np.linalg.solve(xtx + ridge * 1e-3 * scale * penalty, xty[..., None])[..., 0]
    return LinearWitness(weights)
