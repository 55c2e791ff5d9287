"""The learned time-domain twin: a 1-D convolutional U-Net that corrects the Wiener twin.

A linear filter cannot tell glitch families apart: DARM witnesses all of them, each reaching the strain through its own
transfer function, and the Wiener filter fits one compromise; its time-frequency mask also throws away the quiet
pixels of long glitches. The network sees what the Wiener filter sees (the whitened witnesses, not denoised) plus the
Wiener prediction and the event's gate, decimated to ``sample_rate / decimation`` (512 Hz: most glitch power in the
whitened strain lies below 256 Hz), and outputs a *correction*: prediction = (Wiener + correction) x gate, the
correction brought back to the analysis rate by FFT interpolation. Its output layer starts at zero, so training starts
from the Wiener twin, and the epoch kept is the one with the lowest validation loss: on validation it can only match
or improve on its baseline.

The target is the gated whitened strain itself (glitch + unit-variance noise): minimising the squared error estimates
the glitch that the witnesses explain, with no truth needed, as for the Wiener filter. Each event's error counts
relative to its strain energy (events count alike, as in a median), and each event is scaled by its witnesses' rms
(the couplings are linear in amplitude). Training is seeded and deterministic on CPU; sign flips (every channel and the
target together) double the training events. ``members`` networks are trained from successive seeds and their
corrections averaged: with a few hundred training events one network's error depends on its seed; the ensemble's
varies less and is lower (bench/RESULTS.md).

Stored as HDF5 (each member's weights as float32 datasets under ``weights/<member>/``, the Wiener filter it corrects in
group ``wiener``, settings as attributes): nothing pickled. Schema version 1 (one network under ``weights/``) is read.
"""

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from glitchflow_assets.core.artifacts.storage import open_artifact, write_artifact
from glitchflow_assets.core.device import select_device
from glitchflow_assets.core.ml.loop import LoopConfig, batches, deterministic, fit
from glitchflow_assets.core.twin.event_segments import EventSegments
from glitchflow_assets.core.twin.wiener import WienerFilter

SCHEMA = "glitchflow.convnet_twin"
SCHEMA_VERSION = 2  # 2: an ensemble of networks (1: one network)
METHOD = "convnet"


@dataclass(frozen=True)
class ConvNetConfig:
    decimation: int = 8  # 4096 Hz -> 512 Hz inside the network: the correction stays below 256 Hz, the Wiener part does not
    widths: tuple[int, ...] = (16, 32, 64)  # channels per U-Net level; each level is 4x coarser in time
    kernel: int = 9
    epochs: int = 60
    batch_size: int = 8
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    grad_clip: float = 1.0  # gradient-norm clip
    gain_jitter: float = 0.4  # augmentation: each witness scaled by exp(U(-j, j)) per event (coupling gains vary)
    early_stopping_patience: int = 10  # epochs without a better validation loss before stopping
    # > 0: each network stops after the epoch crossing this wall time (best epoch kept). Off by default: a wall-clock
    # stop makes the result depend on the machine's load, and 60 epochs with early stopping take ~2 min per network
    time_budget_s: float = 0.0
    seed: int = 0  # of the first network; member k is trained from seed + k
    members: int = 3  # networks whose corrections are averaged

    def to_dict(self) -> dict:
        return {**asdict(self), "widths": list(self.widths)}

    @classmethod
    def from_dict(cls, values: dict) -> "ConvNetConfig":
        """Also reads files written before ensembles (one network) and before the shared loop's option names."""
        renamed = {_OLD_NAMES.get(k, k): v for k, v in values.items()}
        return cls(**{"members": 1, **renamed, "widths": tuple(values["widths"])})


_OLD_NAMES = {"gradient_clip": "grad_clip", "patience": "early_stopping_patience"}


def decimate(x: torch.Tensor, factor: int) -> torch.Tensor:
    """``[..., time]`` -> ``[..., time / factor]`` by truncating the spectrum (an ideal low-pass); sample values kept."""
    n = x.shape[-1]
    spectrum = torch.fft.rfft(x, dim=-1)[..., : n // factor // 2 + 1]
    return torch.fft.irfft(spectrum, n // factor, dim=-1) / factor


def interpolate(x: torch.Tensor, factor: int) -> torch.Tensor:
    """The inverse of :func:`decimate` for band-limited ``x`` ``[..., time]`` -> ``[..., time x factor]``."""
    n = x.shape[-1] * factor
    return torch.fft.irfft(torch.fft.rfft(x, dim=-1), n, dim=-1) * factor


class _Block(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int):
        super().__init__(
            nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2),
            nn.GELU(),
            nn.Conv1d(c_out, c_out, kernel, padding=kernel // 2),
            nn.GELU(),
        )


class GlitchUNet(nn.Module):
    """``[batch, n_in, time]`` -> ``[batch, time]``; ``time`` must be a multiple of ``4 ** (len(widths) - 1)``."""

    def __init__(self, n_in: int, widths: tuple[int, ...], kernel: int):
        super().__init__()
        self.down = nn.ModuleList(_Block(c_in, c, kernel) for c_in, c in zip((n_in, *widths[:-1]), widths, strict=True))
        self.up = nn.ModuleList(_Block(c + c_skip, c_skip, kernel) for c, c_skip in zip(widths[:0:-1], widths[-2::-1], strict=True))
        self.out = nn.Conv1d(widths[0], 1, 1)
        nn.init.zeros_(self.out.weight)  # training starts from the Wiener prediction exactly
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.avg_pool1d(x, 4))
            skips.append(x)
        for block, skip in zip(self.up, skips[-2::-1], strict=True):
            x = block(torch.cat([F.interpolate(x, scale_factor=4.0, mode="linear"), skip], dim=1))
        return self.out(x)[:, 0]


@dataclass
class Inputs:
    """The network's view of events at the decimated rate, each event divided by its ``scale`` ``[event, 1, 1]`` (the
    rms of its gated witnesses, at least the noise's): ``x`` ``[event, n_witness + 2, time]`` (witnesses, the Wiener
    prediction, the gate), ``gate`` ``[event, time]``; ``wiener`` ``[event, time]`` at the full rate, not scaled.

    The couplings are linear in the glitch amplitude, so one scale per event lets the same weights serve glitches of
    SNR 5 and 500."""

    x: torch.Tensor
    gate: torch.Tensor
    scale: torch.Tensor
    wiener: np.ndarray

    def to(self, device: torch.device) -> "Inputs":
        return Inputs(self.x.to(device), self.gate.to(device), self.scale.to(device), self.wiener)


def network_inputs(wiener: WienerFilter, segments: EventSegments, decimation: int) -> Inputs:
    """The network's :class:`Inputs` for ``segments``: the whitened witnesses, the Wiener prediction and the gate, decimated by
    ``decimation``, witnesses and prediction divided by each event's gated witness rms."""
    baseline = wiener.predict(segments)
    full = np.concatenate([segments.witness, baseline[:, None], segments.gate[:, None]], axis=1)
    x = decimate(torch.as_tensor(full, dtype=torch.float64), decimation).float()
    gate = x[:, -1].clamp(0.0, 1.0)
    gated = x[:, :-2] * gate[:, None]
    scale = torch.sqrt((gated**2).sum(dim=(1, 2)) / (gate.sum(-1) * gated.shape[1] / decimation).clamp(min=1.0)).clamp(min=1.0)
    x[:, :-1] /= scale[:, None, None]
    return Inputs(x, gate, scale[:, None, None], baseline)


@dataclass
class TrainedNetwork:
    """One member of the ensemble: the network restored to its best epoch, and how long it trained."""

    network: GlitchUNet
    epochs_trained: int = 0
    best_epoch: int = 0


@dataclass
class ConvNetTwin:
    """The Wiener twin plus the members' mean correction; ``predict`` has the Wiener filter's contract."""

    wiener: WienerFilter
    members: list[TrainedNetwork]
    config: ConvNetConfig

    @property
    def channels(self) -> list[str]:
        return self.wiener.channels

    @property
    def training_events(self) -> int:
        return self.wiener.training_events

    @property
    def witness_rates(self) -> dict[str, float]:
        return self.wiener.witness_rates

    def _correction(self, inputs: Inputs, batch_size: int = 64) -> torch.Tensor:
        """The members' mean correction at the decimated rate ``[event, time]``, gated."""
        total = torch.zeros_like(inputs.gate)
        for member in self.members:
            member.network.eval()
            with torch.no_grad():
                out = [member.network(inputs.x[idx]) for idx in batches(len(inputs.x), batch_size, None)]
            total += torch.cat(out) if out else 0.0
        return total / len(self.members) * inputs.gate * inputs.scale[:, 0]

    def predict(self, segments: EventSegments) -> np.ndarray:
        """The whitened strain glitch ``[event, time]`` predicted from the witnesses alone, zero outside each gate."""
        inputs = network_inputs(self.wiener, segments, self.config.decimation)
        correction = interpolate(self._correction(inputs).double(), self.config.decimation).numpy()
        return (inputs.wiener + correction) * segments.gate

    def save(self, path, attrs: dict) -> None:
        with write_artifact(path, SCHEMA, SCHEMA_VERSION) as f:
            self.wiener.write(f.create_group("wiener"))
            for k, member in enumerate(self.members):
                for name, tensor in member.network.state_dict().items():
                    f.create_dataset(f"weights/{k}/{name}", data=tensor.numpy())
            f.attrs.update(
                {
                    "method": METHOD,
                    "config": json.dumps(self.config.to_dict()),
                    "epochs_trained": json.dumps([m.epochs_trained for m in self.members]),
                    "best_epoch": json.dumps([m.best_epoch for m in self.members]),
                    **attrs,
                }
            )

    @staticmethod
    def load(path) -> "ConvNetTwin":
        with open_artifact(path, SCHEMA, (1, SCHEMA_VERSION)) as f:
            wiener, config = WienerFilter.read(f["wiener"]), ConvNetConfig.from_dict(json.loads(f.attrs["config"]))
            single = f.attrs["schema_version"] == 1  # one network, its weights directly under weights/
            epochs = [json.loads(str(f.attrs[k])) if not single else [int(f.attrs[k])] for k in ("epochs_trained", "best_epoch")]
            members = []
            for k in range(config.members):
                network = GlitchUNet(len(wiener.channels) + 2, config.widths, config.kernel)
                group = f["weights"] if single else f[f"weights/{k}"]
                network.load_state_dict({name: torch.as_tensor(group[name][()]) for name in network.state_dict()})
                members.append(TrainedNetwork(network, epochs[0][k], epochs[1][k]))
        return ConvNetTwin(wiener, members, config)


def _loss(
    network: GlitchUNet, inputs: Inputs, target: torch.Tensor, idx: torch.Tensor, sign: float = 1.0, gains: torch.Tensor | None = None
) -> torch.Tensor:
    """The squared error of (Wiener + correction) against the strain ``target`` ``[event, time]`` inside the gates, over
    the gated strain's energy, averaged over events: every event counts alike, as in the median mismatch. Training
    flips the sign of everything but the gate and may scale each witness by ``gains`` ``[event, witness]``."""
    x, gate = inputs.x[idx].clone(), inputs.gate[idx]
    x[:, :-1] *= sign  # the gate channel keeps its sign
    if gains is not None:
        x[:, :-2] *= gains[..., None]
    y = sign * target[idx] * gate / inputs.scale[idx, 0]
    error = ((y - (x[:, -2] + network(x)) * gate) ** 2).sum(-1)
    return (error / (y**2).sum(-1).clamp(min=1e-12)).mean()


def train_convnet(
    wiener: WienerFilter,
    train: EventSegments,
    validation: EventSegments,
    config: ConvNetConfig = ConvNetConfig(),
    on_epoch: Callable[[dict], None] = lambda metrics: None,
    device: torch.device | None = None,
) -> ConvNetTwin:
    """Train ``config.members`` correction networks on ``train`` events (seeds ``config.seed + k``), each kept at its
    epoch of lowest loss on ``validation`` events. Trains on ``device`` (default: CUDA when present, else the CPU); the
    networks returned live on the CPU. ``on_epoch`` sees each epoch's losses with the member's index."""
    device = device or select_device()
    block = 4 ** (len(config.widths) - 1) * config.decimation
    if train.witness.shape[-1] % block:
        raise ValueError(f"segments of {train.witness.shape[-1]} samples are not a multiple of {block} (decimation x U-Net depth)")
    tr, va = (network_inputs(wiener, s, config.decimation).to(device) for s in (train, validation))
    y_tr, y_va = (decimate(torch.as_tensor(s.strain), config.decimation).float().to(device) for s in (train, validation))
    members = [
        _train_member(tr, va, y_tr, y_va, config, config.seed + k, lambda metrics, k=k: on_epoch({"member": k, **metrics}), device)
        for k in range(config.members)
    ]
    return ConvNetTwin(wiener, members, config)


def _train_member(
    tr: Inputs,
    va: Inputs,
    y_tr: torch.Tensor,
    y_va: torch.Tensor,
    config: ConvNetConfig,
    seed: int,
    on_epoch: Callable[[dict], None],
    device: torch.device,
) -> TrainedNetwork:
    with deterministic(seed):
        network = GlitchUNet(tr.x.shape[1], config.widths, config.kernel).to(device)
        optimizer = torch.optim.AdamW(network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)

        def batch_losses(generator: torch.Generator):
            for idx in batches(len(y_tr), config.batch_size, generator):
                sign = 1.0 if torch.rand(1, generator=generator).item() < 0.5 else -1.0
                jitter = (2 * torch.rand(len(idx), tr.x.shape[1] - 2, generator=generator) - 1) * config.gain_jitter
                yield _loss(network, tr, y_tr, idx.to(device), sign, torch.exp(jitter).to(device)), len(idx)

        def validation_loss() -> float:
            network.eval()
            with torch.no_grad():
                return float(sum(_loss(network, va, y_va, i.to(device)) * len(i) for i in batches(len(y_va), 64, None)) / len(y_va))

        loop = LoopConfig(config.epochs, config.early_stopping_patience, config.grad_clip, config.time_budget_s, seed)
        # the baseline (epoch 0) is the untrained network: a correction must beat the Wiener filter alone to be kept
        result = fit(network, optimizer, batch_losses, validation_loss, loop, on_epoch, first_epoch=1, baseline=True)
    return TrainedNetwork(network.cpu(), len(result.history), result.best_epoch)
