"""Training the spectrogram model: glitch-weighted L1 (+ optional 1 - SSIM) loss, AdamW, ReduceLROnPlateau on the
validation split and time-shift augmentation, through the shared loop (:mod:`.loop`: clipping, early stopping,
best-checkpoint restore, seeded and deterministic on CPU, :class:`TrainingDiverged` on a non-finite loss).
"""

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from glitchflow_assets.core.ml.data import REPRESENTATIONS, TileSet
from glitchflow_assets.core.ml.loop import LoopConfig, TrainResult, batches, deterministic, fit
from glitchflow_assets.core.ml.model import AttentionUNet

MODEL_SIZES = ("auto", "small", "original")


@dataclass(frozen=True)
class TrainConfig:
    """Defaults: log-energy representation, L1 with glitch pixels (strain SNR^2 >= ``glitch_pixel_snr2``) weighted
    ``glitch_pixel_weight`` times, random time shifts of up to ``shift_bins``; AdamW, plateau x0.5 after 7 epochs down
    to 1e-7, clip 5 as the original, with a larger learning rate and batch for the small CPU model and early stopping.
    :meth:`original` is the original's configuration (linear units, 0.8 L1 + 0.2 (1 - SSIM) with data range 21,
    lr 1e-4, batch 10), kept for comparison: on SIM it learns the noise floor (see bench/RESULTS.md)."""

    model_size: str = "auto"  # auto: the original's size on CUDA, the small one on CPU
    representation: str = "log"
    epochs: int = 100
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    plateau_factor: float = 0.5
    plateau_patience: int = 7
    min_learning_rate: float = 1e-7
    grad_clip: float = 5.0
    early_stopping_patience: int = 15
    l1_weight: float = 1.0
    ssim_data_range: float = 1.0
    glitch_pixel_weight: float = 4.0
    glitch_pixel_snr2: float = 10.0
    shift_bins: int = 8
    seed: int = 0
    mixed_precision: bool = True  # bf16 autocast, CUDA only
    channels_last: bool = True
    compile: bool = False
    time_budget_s: float = 0.0  # >0: stop after the epoch that crosses it (the best checkpoint is kept)

    def loop(self) -> LoopConfig:
        return LoopConfig(self.epochs, self.early_stopping_patience, self.grad_clip, self.time_budget_s, self.seed)

    def __post_init__(self) -> None:
        if self.model_size not in MODEL_SIZES:
            raise ValueError(f"model_size {self.model_size!r} is not one of {MODEL_SIZES}")
        if self.representation not in REPRESENTATIONS:
            raise ValueError(f"representation {self.representation!r} is not one of {REPRESENTATIONS}")
        if self.epochs < 1 or self.batch_size < 2:
            raise ValueError(f"epochs ({self.epochs}) must be >= 1 and batch_size ({self.batch_size}) >= 2 (batch norm)")
        if not 0.0 <= self.l1_weight <= 1.0 or self.learning_rate <= 0 or self.ssim_data_range <= 0:
            raise ValueError("l1_weight must be in [0, 1]; learning_rate and ssim_data_range must be positive")
        if self.glitch_pixel_weight < 0 or self.shift_bins < 0:
            raise ValueError("glitch_pixel_weight and shift_bins must be >= 0")

    @classmethod
    def original(cls, **changes) -> "TrainConfig":
        """The original GlitchFlow's training setup."""
        values = dict(
            representation="linear",
            l1_weight=0.8,
            ssim_data_range=21.0,
            learning_rate=1e-4,
            batch_size=10,
            glitch_pixel_weight=0.0,
            shift_bins=0,
        )
        return cls(**{**values, **changes})


def glitch_loss(predicted: torch.Tensor, target: torch.Tensor, config: TrainConfig, glitch_level: float = math.inf) -> torch.Tensor:
    """``l1_weight * L1 + (1 - l1_weight) * (1 - SSIM)`` on ``[batch, 1, freq, time]`` tiles, in float32. Pixels whose target
    reaches ``glitch_level`` (normalised units) count ``1 + glitch_pixel_weight`` times in the L1 mean: they are a few
    percent of the pixels but all of the twin."""
    predicted, target = predicted.float(), target.float()
    weight = 1.0 + config.glitch_pixel_weight * (target >= glitch_level).float()
    l1 = ((predicted - target).abs() * weight).sum() / weight.sum()
    if config.l1_weight == 1.0:
        return l1
    from torchmetrics.functional.image import structural_similarity_index_measure  # torchmetrics: ~1 s of import

    ssim = structural_similarity_index_measure(predicted, target, data_range=config.ssim_data_range)
    return config.l1_weight * l1 + (1.0 - config.l1_weight) * (1.0 - ssim)


def _autocast(device: torch.device, config: TrainConfig):
    if config.mixed_precision and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def predict(
    model: torch.nn.Module, aux: torch.Tensor, device: torch.device, batch_size: int = 64, config: TrainConfig | None = None
) -> torch.Tensor:
    """Normalised ``[tile, witness, freq, time] -> [tile, 1, freq, time]`` on the CPU, computed in batches on ``device``."""
    config = config or TrainConfig()
    model.eval()
    out = []
    for idx in batches(len(aux), batch_size, None):
        x = aux[idx].to(device)
        if config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with _autocast(device, config):
            out.append(model(x).float().cpu())
    return torch.cat(out) if out else torch.zeros((0, 1, *aux.shape[-2:]))


def validation_loss(
    model: torch.nn.Module, data: TileSet, device: torch.device, config: TrainConfig, glitch_level: float = math.inf
) -> float:
    """The training loss (:func:`glitch_loss`) of ``model`` over a whole split: what early stopping and checkpoint selection go by."""
    return float(glitch_loss(predict(model, data.aux, device, config=config), data.strain, config, glitch_level))


def time_shift(x: torch.Tensor, y: torch.Tensor, max_bins: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The same random circular shift in time (last axis) of inputs and target: a glitch may sit anywhere in a tile."""
    if not max_bins:
        return x, y
    shift = int(torch.randint(-max_bins, max_bins + 1, (1,), generator=generator))
    return torch.roll(x, shift, -1), torch.roll(y, shift, -1)


def _prepared(model: AttentionUNet, train_set: TileSet, device: torch.device, config: TrainConfig) -> torch.nn.Module:
    """``model`` initialised for ``train_set`` and moved to ``device`` in place; what the training steps call (compiled or itself)."""
    model.init_output(float(train_set.strain.mean()))
    model.to(device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    return torch.compile(model) if config.compile else model


def train(
    model: AttentionUNet,
    train_set: TileSet,
    validation_set: TileSet,
    config: TrainConfig,
    device: torch.device,
    on_epoch: Callable[[dict], None] = lambda metrics: None,
    glitch_level: float = math.inf,
) -> TrainResult:
    """Train ``model`` in place and leave it at its best validation epoch (:func:`loop.fit`). ``on_epoch`` gets each
    epoch's metrics; ``glitch_level`` is ``config.glitch_pixel_snr2`` in normalised units."""
    if len(train_set) < 2 or len(validation_set) == 0:
        raise ValueError(
            f"need >= 2 training and >= 1 validation tiles, got {len(train_set)} and {len(validation_set)}: "
            "materialize more windows, or raise dataset_split's validation_fraction"
        )
    with deterministic(config.seed):
        step_model = _prepared(model, train_set, device, config)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, factor=config.plateau_factor, patience=config.plateau_patience, min_lr=config.min_learning_rate
        )

        def batch_losses(generator: torch.Generator):
            for idx in batches(len(train_set), config.batch_size, generator):
                x, y = time_shift(train_set.aux[idx], train_set.strain[idx], config.shift_bins, generator)
                x, y = x.to(device), y.to(device)
                if config.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                with _autocast(device, config):
                    predicted = step_model(x)
                yield glitch_loss(predicted, y, config, glitch_level), len(idx)

        return fit(
            model,
            optimizer,
            batch_losses,
            lambda: validation_loss(model, validation_set, device, config, glitch_level),
            config.loop(),
            on_epoch,
            after_validation=plateau.step,
        )
