"""The one training loop of glitchflow's networks (the spectrogram model, the twin's correction networks): seeded with
deterministic kernels, gradients clipped, stopped on a non-finite loss, on early stopping or a time budget, the best
validation epoch's weights restored, each epoch's metrics handed to a callback."""

import contextlib
import copy
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

import torch


class TrainingDiverged(RuntimeError):
    """A training or validation loss became NaN or infinite: nothing trained this way may be kept."""


@dataclass(frozen=True)
class LoopConfig:
    epochs: int
    early_stopping_patience: int  # epochs without a better validation loss before stopping
    grad_clip: float  # gradient-norm clip
    time_budget_s: float = 0.0  # > 0: stop after the epoch that crosses it (the best epoch is kept)
    seed: int = 0


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)  # each epoch's metrics: epoch, train_loss, validation_loss, ...
    best_epoch: int = -1
    best_validation_loss: float = math.inf
    stopped: str = "epochs"  # epochs | early stopping | time budget
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


@contextlib.contextmanager
def deterministic(seed: int):
    """Seed torch and ask for deterministic kernels for the duration (restoring the caller's setting)."""
    previous, previous_warn = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)  # CUDA has no deterministic bilinear backward: warn there
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=previous_warn)


def batches(n: int, batch_size: int, generator: torch.Generator | None) -> list[torch.Tensor]:
    """Index batches (shuffled when a generator is given); a trailing batch of one joins the previous (batch norm)."""
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    parts = list(order.split(batch_size))
    if len(parts) > 1 and len(parts[-1]) == 1:
        parts[-2:] = [torch.cat(parts[-2:])]
    return parts


BatchLosses = Callable[[torch.Generator], Iterator[tuple[torch.Tensor, int]]]
"""One epoch's training batches: for each, the loss (a scalar tensor to back-propagate) and the items it covers;
draws its shuffling and augmentation from the generator it is given."""


def _train_epoch(
    network: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batch_losses: BatchLosses,
    generator: torch.Generator,
    grad_clip: float,
    epoch: int,
) -> float:
    """One epoch of optimizer steps; the mean training loss over the items seen."""
    network.train()
    total, seen = 0.0, 0
    for loss, n in batch_losses(generator):
        if not torch.isfinite(loss):
            raise TrainingDiverged(
                f"training loss became {float(loss.detach())} at epoch {epoch} (lr {optimizer.param_groups[0]['lr']:.1e})"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(network.parameters(), grad_clip)
        optimizer.step()
        total, seen = total + float(loss.detach()) * n, seen + n
    return total / max(seen, 1)


def _validate(validation_loss: Callable[[], float], epoch: int) -> float:
    """The validation loss, which must be finite."""
    current = validation_loss()
    if not math.isfinite(current):
        raise TrainingDiverged(f"validation loss became {current} at epoch {epoch}")
    return current


def _stop_reason(config: LoopConfig, epochs_since_best: int, seconds: float) -> str | None:
    """Why training stops after this epoch (early stopping, the time budget), None to go on."""
    if epochs_since_best >= config.early_stopping_patience:
        return "early stopping"
    if config.time_budget_s and seconds >= config.time_budget_s:
        return "time budget"
    return None


def fit(
    network: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batch_losses: BatchLosses,
    validation_loss: Callable[[], float],
    config: LoopConfig,
    on_epoch: Callable[[dict], None] = lambda metrics: None,
    after_validation: Callable[[float], None] = lambda loss: None,
    first_epoch: int = 0,
    baseline: bool = False,
) -> TrainResult:
    """Train ``network`` in place for up to ``config.epochs`` epochs numbered from ``first_epoch`` and leave it at its
    best validation epoch. ``baseline``: the untrained network's validation loss counts as epoch ``first_epoch - 1``
    (a correction that never beats doing nothing stays at nothing). ``after_validation`` gets each validation loss (a
    learning-rate schedule). Raises :class:`TrainingDiverged` on a non-finite loss. Call inside :func:`deterministic`
    when the network's initialisation must be seeded too."""
    result, start = TrainResult(), time.monotonic()
    generator = torch.Generator().manual_seed(config.seed)
    best_state = copy.deepcopy(network.state_dict())
    if baseline:
        result.best_validation_loss, result.best_epoch = validation_loss(), first_epoch - 1
    for epoch in range(first_epoch, first_epoch + config.epochs):
        train_loss = _train_epoch(network, optimizer, batch_losses, generator, config.grad_clip, epoch)
        current = _validate(validation_loss, epoch)
        after_validation(current)
        if current < result.best_validation_loss:
            result.best_validation_loss, result.best_epoch = current, epoch
            best_state = copy.deepcopy(network.state_dict())
        metrics = {
            "epoch": epoch,
            "train_loss": train_loss,
            "validation_loss": current,
            "best_epoch": result.best_epoch,
            "learning_rate": optimizer.param_groups[0]["lr"],
            "seconds": time.monotonic() - start,
        }
        result.history.append(metrics)
        on_epoch(metrics)
        if stop := _stop_reason(config, epoch - result.best_epoch, metrics["seconds"]):
            result.stopped = stop
            break
    network.load_state_dict(best_state)
    result.seconds = time.monotonic() - start
    return result
