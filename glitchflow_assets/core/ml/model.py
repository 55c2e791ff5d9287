"""Residual attention U-Net: auxiliary-channel tiles ``[batch, witness, 64, 64]`` -> strain tile ``[batch, 1, 64, 64]``.

The original GlitchFlow architecture (encoder 64/128/256, bottleneck 512, residual conv3x3-BN-LeakyReLU(0.01) blocks,
bilinear upsampling, non-local attention gates on the skip connections with query/key at C/8, Softplus output).

Attention is computed by :func:`torch.nn.functional.scaled_dot_product_attention`: fused kernels that never hold the
``[H*W, H*W]`` matrix (4096 x 4096 per sample at 64x64; 670 MB per gate for a batch of 10). ``attention="naive"`` is
the original's explicit matrix, kept as the faithful baseline for tests and benchmarks: the same function of the
same weights. ``key_pool`` > 1 max-pools keys and values (as SAGAN/BigGAN do), cutting the attention cost by
``key_pool**2`` - what makes the model train in minutes on a CPU, where fused attention saves memory but not FLOPs.
"""

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

ATTENTION_MODES = ("sdpa", "naive")


@dataclass(frozen=True)
class ModelConfig:
    n_aux: int
    widths: tuple[int, ...] = (64, 128, 256)
    bottleneck: int = 512
    blocks: int = 2  # residual blocks per stage
    attention: str = "sdpa"
    key_pool: int = 1
    negative_slope: float = 0.01
    # an extra input channel holding each pixel's frequency row (-1..1): convolutions are blind to where they are,
    # but the witness-to-strain coupling |H(f)|^2 depends on frequency
    frequency_channel: bool = True

    def __post_init__(self) -> None:
        if self.n_aux < 1:
            raise ValueError(f"the model needs at least one auxiliary channel (n_aux={self.n_aux})")
        if not self.widths or min(self.widths) < 8 or self.bottleneck < 8:
            raise ValueError(f"widths {self.widths} / bottleneck {self.bottleneck}: every width must be >= 8 (query/key are C/8)")
        if self.blocks < 1 or self.key_pool < 1:
            raise ValueError(f"blocks ({self.blocks}) and key_pool ({self.key_pool}) must be >= 1")
        if self.attention not in ATTENTION_MODES:
            raise ValueError(f"attention {self.attention!r} is not one of {ATTENTION_MODES}")

    @classmethod
    def original(cls, n_aux: int, attention: str = "sdpa") -> "ModelConfig":
        """The original's widths (15.4 M parameters for 8 inputs; the reference quotes ~16.8 M): for GPUs."""
        return cls(n_aux=n_aux, attention=attention)

    @classmethod
    def small(cls, n_aux: int) -> "ModelConfig":
        """A quarter of the widths, one block per stage, keys pooled 4x4 (0.5 M parameters): minutes on a laptop CPU."""
        return cls(n_aux=n_aux, widths=(16, 32, 64), bottleneck=128, blocks=1, key_pool=4)

    def to_dict(self) -> dict:
        return {**asdict(self), "widths": list(self.widths)}

    @classmethod
    def from_dict(cls, values: dict) -> "ModelConfig":
        return cls(**{**values, "widths": tuple(values["widths"])})


class ResidualBlock(nn.Module):
    """conv3x3-BN-LeakyReLU-conv3x3-BN plus a (1x1-projected) identity, then LeakyReLU:
    ``[batch, cin, freq, time] -> [batch, cout, freq, time]``."""

    def __init__(self, cin: int, cout: int, negative_slope: float):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.LeakyReLU(negative_slope),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.skip = nn.Identity() if cin == cout else nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.act = nn.LeakyReLU(negative_slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.skip(x))


def stage(cin: int, cout: int, config: ModelConfig) -> nn.Sequential:
    """``config.blocks`` residual blocks from ``cin`` to ``cout`` channels: one level of the U-Net (encoder, bottleneck or decoder)."""
    return nn.Sequential(*(ResidualBlock(cin if i == 0 else cout, cout, config.negative_slope) for i in range(config.blocks)))


class NonLocalGate(nn.Module):
    """Non-local attention gate on a skip connection: queries from the decoder's gating signal, keys/values from the
    skip features (query/key at C/8, SAGAN-style unscaled dot product, learnt residual weight starting at 0).

    ``skip [batch, channel, freq, time]``, ``gate [batch, gate_channel, freq, time]`` -> ``[batch, channel, freq, time]``.
    """

    def __init__(self, channels: int, gate_channels: int, mode: str, key_pool: int):
        super().__init__()
        self.mode, self.key_pool = mode, key_pool
        self.query = nn.Conv2d(gate_channels, channels // 8, 1)
        self.key = nn.Conv2d(channels, channels // 8, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, skip: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        b, c, h, w = skip.shape
        pooled = F.max_pool2d(skip, self.key_pool) if self.key_pool > 1 else skip
        q = self.query(gate).flatten(2).transpose(1, 2)  # [B, HW, C/8]
        k = self.key(pooled).flatten(2).transpose(1, 2)  # [B, HW / key_pool^2, C/8]
        v = self.value(pooled).flatten(2).transpose(1, 2)  # [B, HW / key_pool^2, C]
        if self.mode == "sdpa":
            out = F.scaled_dot_product_attention(q, k, v, scale=1.0)  # fused: no [HW, HW] matrix in memory
        else:
            out = torch.softmax(q @ k.transpose(1, 2), dim=-1) @ v  # the original's explicit [batch, freq * time, freq * time]
        return skip + self.gamma * out.transpose(1, 2).reshape(b, c, h, w)


class AttentionUNet(nn.Module):
    """``[batch, witness, freq, time] -> [batch, 1, freq, time]`` (non-negative: Softplus), freq and time divisible
    by ``2**len(widths)``."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        widths = config.widths
        n_in = config.n_aux + int(config.frequency_channel)
        self.encoders = nn.ModuleList(stage(cin, cout, config) for cin, cout in zip((n_in, *widths[:-1]), widths, strict=True))
        self.bottleneck = stage(widths[-1], config.bottleneck, config)
        below = (*widths[1:], config.bottleneck)[::-1]
        self.reducers = nn.ModuleList(nn.Conv2d(cin, cout, 1) for cin, cout in zip(below, widths[::-1], strict=True))
        self.gates = nn.ModuleList(NonLocalGate(w, w, config.attention, config.key_pool) for w in widths[::-1])
        self.decoders = nn.ModuleList(stage(2 * w, w, config) for w in widths[::-1])
        self.head = nn.Sequential(nn.Conv2d(widths[0], 1, 1), nn.Softplus())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.config.frequency_channel:
            b, _, h, w = x.shape
            rows = torch.linspace(-1.0, 1.0, h, dtype=x.dtype, device=x.device).view(1, 1, h, 1).expand(b, 1, h, w)
            x = torch.cat([x, rows], dim=1)
        skips = []
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottleneck(x)
        for reduce, gate, decode, skip in zip(self.reducers, self.gates, self.decoders, skips[::-1], strict=True):
            x = reduce(F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False))
            x = decode(torch.cat([gate(skip, x), x], dim=1))
        return self.head(x)

    def init_output(self, mean: float) -> None:
        """Start from a flat prediction of ``mean`` (the mean target): Softplus(0) = 0.69 is far above the
        normalised noise floor, and learning that offset away would cost the first epochs."""
        with torch.no_grad():
            self.head[0].weight.mul_(0.01)
            self.head[0].bias.fill_(float(torch.log(torch.expm1(torch.tensor(max(mean, 1e-6))))))


def parameter_count(model: nn.Module) -> int:
    """The number of parameters of ``model`` (trainable or not)."""
    return sum(p.numel() for p in model.parameters())
