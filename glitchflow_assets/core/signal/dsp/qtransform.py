"""Batched Q-transform in torch that gives gwpy's results (CPU or CUDA, float32 or float64).

This ports ``gwpy.signal.qtransform`` (gwpy 4.1): the ``QPlane``/``QTile`` tiling, the tile energies with
``norm="median"``, ``q_scan``'s choice of the loudest plane, and ``QGram.interpolate``'s cubic splines
(exact operators, see :mod:`.spline`). It runs on a whole ``[batch, channel, time]`` tensor at once. The
input must already be whitened (:func:`.whitening.whiten`), as for gwpy's ``q_transform(whiten=False)``.

``ml4gw.transforms.SingleQTransform`` is not used here. It runs one gather and one ifft per row from a
Python loop, and it takes medians with ``torch.quantile``, which sorts every row. Its default bicubic
interpolation is not gwpy's spline, and its ``"spline"`` mode solves the spline system again on every
call. In this module, all rows with the same number of tiles share one gather and one batched ifft, and
the splines are operators that are computed once.

Tensors are created on the input's device with the input's dtype, and the FFTs use the matching complex
dtype. gwpy casts the normalised energies to float32, but this module keeps float64 input in float64.
"""

import math
import warnings
from dataclasses import dataclass
from functools import cached_property, lru_cache
from itertools import pairwise

import numpy as np
import torch
from torch import Tensor, nn

from .spline import banded, spline_matrix

DEFAULT_MISMATCH = 0.2
DEFAULT_QRANGE = (4.0, 64.0)


def deltam(mismatch: float) -> float:
    """gwpy's fractional mismatch step between neighbouring tiles."""
    return 2 * (mismatch / 3.0) ** (1 / 2.0)


def q_values(qrange: tuple[float, float], mismatch: float = DEFAULT_MISMATCH) -> list[float]:
    """The Q of each plane that gwpy's ``QTiling`` builds for ``qrange`` (log-spaced plane centres)."""
    cumum = math.log(qrange[1] / qrange[0]) / 2 ** (1 / 2.0)
    nplanes = int(max(math.ceil(cumum / deltam(mismatch)), 1))
    step = cumum / nplanes
    return [qrange[0] * math.exp(2 ** (1 / 2.0) * step * (i + 0.5)) for i in range(nplanes)]


def normalise_frange(frange: tuple[float, float], qs: tuple[float, ...], duration: float, sample_rate: float) -> tuple[float, float]:
    """Apply gwpy's ``QTiling`` rules. ``fmin=0`` becomes ``50 max(q) / (2 pi duration)``. ``fmax`` is capped at the
    highest frequency that the lowest Q can tile below Nyquist, and ``inf`` means that cap."""
    fmin, fmax = float(frange[0]), float(frange[1])
    if fmin == 0:
        fmin = 50 * max(qs) / (2 * math.pi * duration)
    cap = sample_rate / 2 / (1 + 11 ** (1 / 2.0) / min(qs))
    if math.isfinite(fmax) and fmax > cap:
        warnings.warn(f"upper frequency {fmax} Hz is too high for Q >= {min(qs)}, using {cap} Hz", stacklevel=3)
    return fmin, min(fmax, cap)


@dataclass(frozen=True)
class QTiling:
    """The tiling of a gwpy ``QPlane`` at one Q. It has the rows (central frequencies), the number of tiles per
    row, and each row's bisquare window over the rfft bins. It follows gwpy's rounding rules exactly.

    ``frange`` is normalised as gwpy's ``q_transform(qrange=(q, q))`` does (:func:`normalise_frange`).
    Geometry is float64 numpy; times are seconds from the start of the input.
    """

    duration: float
    sample_rate: float
    q: float
    frange: tuple[float, float] = (0.0, math.inf)
    mismatch: float = DEFAULT_MISMATCH

    def __post_init__(self) -> None:
        frange = normalise_frange(self.frange, (self.q,), self.duration, self.sample_rate)
        object.__setattr__(self, "frange", frange)  # frozen dataclass: normalised once, at construction
        for row in range(self.frequencies.size):
            if np.any(np.diff(self.data_indices(row)) != 1):  # frequencies are multiples of 1 / duration
                raise ValueError(f"row {row}'s window bins are not consecutive")
            if self.data_indices(row).max() > self.nsamples // 2:
                raise ValueError(f"frange {frange} reaches past Nyquist for q={self.q}")
            if self.data_indices(row).size > self.ntiles[row]:
                raise ValueError(f"row {row} has more window bins than tiles (mismatch {self.mismatch} too large)")

    @property
    def nsamples(self) -> int:
        return round(self.duration * self.sample_rate)

    @property
    def qprime(self) -> float:
        return self.q / 11 ** (1 / 2.0)

    @cached_property
    def frequencies(self) -> np.ndarray:
        """Row central frequencies ``[rows]`` (Hz): log-spaced, floored to multiples of 1/duration, unique."""
        fmin, fmax = self.frange
        root = (2 + self.q**2) ** (1 / 2.0)
        fcum_mismatch = math.log(fmax / fmin) * root / 2.0
        nfreq = int(max(1, math.ceil(fcum_mismatch / deltam(self.mismatch))))
        fstep = fcum_mismatch / nfreq
        fstepmin = 1 / self.duration
        freqs = [fmin * math.exp(2 / root * (i + 0.5) * fstep) // fstepmin * fstepmin for i in range(nfreq)]
        return np.array([f for i, f in enumerate(freqs) if i == 0 or f != freqs[i - 1]])

    @cached_property
    def ntiles(self) -> np.ndarray:
        """Tiles per row ``[rows]``: a power of two, non-decreasing with frequency."""
        tcum_mismatch = self.duration * 2 * math.pi * self.frequencies / self.q
        return np.array([2 ** math.ceil(math.log(t / deltam(self.mismatch), 2)) for t in tcum_mismatch])

    def tile_times(self, row: int) -> np.ndarray:
        """Time of each tile of ``row`` ``[ntiles]``, as stamped by gwpy: ``k * duration / ntiles`` from the input start."""
        ntiles = self.ntiles[row]
        return np.arange(ntiles) * (self.duration / ntiles)

    def _offsets(self, row: int) -> np.ndarray:
        half = int(self.frequencies[row] / self.qprime * self.duration)  # gwpy's windowsize = 2 half + 1
        return np.arange(-half, half + 1)

    def data_indices(self, row: int) -> np.ndarray:
        """rfft bins ``[windowsize]`` under ``row``'s window (gwpy's +1 offset included)."""
        return np.round(self._offsets(row) + 1 + self.frequencies[row] * self.duration).astype(np.int64)

    def window(self, row: int) -> np.ndarray:
        """Bisquare window ``[windowsize]`` of ``row``, with gwpy's normalisation."""
        frequency = self.frequencies[row]
        x = self._offsets(row) / self.duration * self.qprime / frequency
        norm = self.ntiles[row] / (self.duration * self.sample_rate) * (315 * self.qprime / (128 * frequency)) ** (1 / 2.0)
        return (1 - x**2) ** 2 * norm

    def stacked_windows(self, rows: range) -> tuple[np.ndarray, np.ndarray]:
        """``(start, weight)``: the first rfft bin ``[rows]`` of each row's window and the windows
        ``[rows, max windowsize]``, zero-padded on the right. The bins under a window are consecutive."""
        weight = np.zeros((len(rows), max(self.data_indices(row).size for row in rows)))
        for i, row in enumerate(rows):
            weight[i, : self.data_indices(row).size] = self.window(row)
        return np.array([self.data_indices(row)[0] for row in rows]), weight

    def row_groups(self) -> list[range]:
        """Consecutive runs of rows with the same number of tiles (ntiles grows with frequency)."""
        edges = [0, *(np.flatnonzero(np.diff(self.ntiles)) + 1), self.ntiles.size]
        return [range(start, stop) for start, stop in pairwise(edges)]


_SAME_ORDER_INT = {torch.float32: torch.int32, torch.float64: torch.int64}


def nonnegative_median(x: Tensor) -> Tensor:
    """``numpy.median`` of non-negative floats over the last dimension, ``[..., n] -> [..., 1]``. gwpy uses it to
    normalise, and for an even count it is the mean of the two middle values.

    ``torch.median`` returns only the lower middle value. The middle values are the largest of the
    ``n // 2 + 1`` smallest, and repeated values count separately, so ties come out exact. An unsorted
    ``topk`` is a selection, not a sort, and costs about one ``torch.median``. It runs on the bit patterns,
    which sort like the values for non-negative IEEE floats and are ~15% faster to compare.
    """
    size = x.shape[-1]
    smallest = x.view(_SAME_ORDER_INT[x.dtype]).topk(size // 2 + 1, largest=False, sorted=False).values
    return smallest.topk(2 - size % 2).values.view(x.dtype).mean(-1, keepdim=True)


def gwpy_fft(x: Tensor) -> Tensor:
    """gwpy's ``TimeSeries.fft`` scaling: rfft / N with non-DC bins doubled. ``[..., time] -> [..., freq]`` complex."""
    fseries = torch.fft.rfft(x, norm="forward")
    fseries[..., 1:] *= 2
    return fseries


def output_times(outseg: tuple[float, float], size: int) -> np.ndarray:
    """gwpy's ``arange(start, stop, (stop - start) / size)`` ``[size]``, in seconds from the input start."""
    start, stop = outseg
    return start + np.arange(size) * ((stop - start) / size)


def output_frequencies(frange: tuple[float, float], size: int, logf: bool) -> np.ndarray:
    """gwpy's output rows ``[size]``: ``geomspace(fmin, fmax, size)``, or, linear, ``arange(fmin, fmax, (fmax - fmin) / size)``."""
    fmin, fmax = frange
    return np.geomspace(fmin, fmax, size) if logf else fmin + np.arange(size) * ((fmax - fmin) / size)


class _Resample(nn.Module):
    """Applies an ``[out, in]`` interpolation operator along the last dimension: ``[..., in] -> [..., out]``.

    A banded gather (:func:`.spline.banded`) when it needs far fewer taps than a dense product, which is
    when tile and output times line up. Otherwise a dense matmul: on CPU a gathered tap costs about as
    much as DENSE_RATIO multiply-adds in a matmul.
    """

    DENSE_RATIO = 32

    def __init__(self, matrix: np.ndarray) -> None:
        super().__init__()
        index, weight = banded(matrix)
        dense = matrix.shape[1] <= self.DENSE_RATIO * index.shape[1]
        self.register_buffer("index", None if dense else torch.from_numpy(index))  # [out, taps]
        self.register_buffer("weight", torch.from_numpy(matrix.T.copy() if dense else weight))  # [in, out] | [out, taps]

    def forward(self, x: Tensor) -> Tensor:
        weight = self.weight.to(x.device, x.dtype)
        if self.index is None:
            return x @ weight
        return (x[..., self.index.to(x.device)] * weight).sum(-1)


class _RowGroup(nn.Module):
    """Rows of one plane that have the same number of tiles. They use one gather, one batched ifft and one time spline."""

    def __init__(self, tiling: QTiling, rows: range, times: np.ndarray | None) -> None:
        super().__init__()
        start, window = tiling.stacked_windows(rows)
        self.ntiles = int(tiling.ntiles[rows[0]])
        self.register_buffer("start", torch.from_numpy(start))  # [rows]
        self.register_buffer("window", torch.from_numpy(window))  # [rows, bins]
        if times is not None:  # gwpy's spline in time
            self.interpolate = _Resample(spline_matrix(tiling.tile_times(rows[0]), times))

    def energies(self, fseries: Tensor) -> Tensor:
        """gwpy-scaled rfft ``[..., freq]`` -> median-normalised tile energies ``[..., rows, ntiles]``."""
        window = self.window.to(fseries.device, fseries.real.dtype)
        rows, size = window.shape
        bins = fseries.unfold(-1, size, 1)[..., self.start.to(fseries.device), :]  # [..., rows, bins]
        # gwpy zero-pads each windowed row to ntiles and ifftshifts it. A circular shift of the ifft input only
        # changes the phase of the output, so padding after the bins gives the same energies.
        padded = fseries.new_empty(*fseries.shape[:-1], rows, self.ntiles)
        torch.mul(bins, window, out=padded[..., :size])
        padded[..., size:] = 0
        tiles = torch.fft.ifft(padded)
        energy = tiles.real.square().addcmul_(tiles.imag, tiles.imag)
        return energy.div_(nonnegative_median(energy))


class SingleQTransform(nn.Module):
    """The Q-transform at one Q, interpolated like gwpy's ``q_transform(qrange=(q, q), norm="median")``.

    ``forward``: whitened ``[batch, channel, time]`` -> normalised energy ``[batch, channel, freq, time]``,
    where ``freq = spectrogram_shape[0]`` (:func:`output_frequencies`, gwpy's ``fres`` grid) and
    ``time = spectrogram_shape[1]`` samples starting at ``outseg[0]``, spaced ``(outseg[1] - outseg[0]) / time``.
    ``outseg`` is given in seconds from the input start, and the default is the whole input. Any leading
    dimensions work. Values are gwpy's normalised energies E: tile energy / its row's median, so noise sits
    near 1, and gwpy's tile SNR is ``sqrt(2 E)``.

    The splines are exact up to ``1e-10`` relative (:func:`.spline.spline_matrix`). Across frequency the spline is
    the same not-a-knot cubic in linear Hz that gwpy uses. Output rows outside the tiled rows take the
    edge row's value, as FITPACK's bivariate evaluation does.
    """

    def __init__(
        self,
        duration: float,
        sample_rate: float,
        q: float = 12.0,
        frange: tuple[float, float] = (8.0, 500.0),
        mismatch: float = DEFAULT_MISMATCH,
        spectrogram_shape: tuple[int, int] = (64, 256),
        logf: bool = True,
        outseg: tuple[float, float] | None = None,
        interpolated: bool = True,
    ) -> None:
        super().__init__()
        self.tiling = QTiling(float(duration), float(sample_rate), float(q), tuple(frange), mismatch)
        self.outseg = outseg or (0.0, self.tiling.duration)
        self.times = output_times(self.outseg, spectrogram_shape[1])
        self.output_frequencies = output_frequencies(self.tiling.frange, spectrogram_shape[0], logf)
        # interpolated=False: native tiles only (tiles, tile_energies), no output grid - the spline matrices are
        # ~99 % of the construction time and an excess-power search never needs them
        self.groups = nn.ModuleList(_RowGroup(self.tiling, rows, self.times if interpolated else None) for rows in self.tiling.row_groups())
        if interpolated:
            rows = self.tiling.frequencies
            freq_weight = spline_matrix(rows, np.clip(self.output_frequencies, rows[0], rows[-1]))
            self.register_buffer("freq_weight", torch.from_numpy(freq_weight))  # [freq_out, rows]

    def fseries(self, x: Tensor) -> Tensor:
        """Check the length of ``x`` ``[..., time]`` and return its gwpy-scaled rfft ``[..., freq]``."""
        if x.shape[-1] != self.tiling.nsamples:
            raise ValueError(f"expected {self.tiling.nsamples} samples, got {x.shape[-1]}")
        return gwpy_fft(x)

    def tile_energies(self, x: Tensor) -> list[Tensor]:
        """Native-resolution normalised energies, one ``[batch, channel, rows, ntiles]`` per :meth:`QTiling.row_groups` group."""
        fseries = self.fseries(x)
        return [group.energies(fseries) for group in self.groups]

    def tiles(self, x: Tensor) -> list[Tensor]:
        """One ``[batch, channel, ntiles_row]`` per row, in ``self.tiling.frequencies`` order.

        The row's tile times are ``self.tiling.tile_times(row)``."""
        return [row for energy in self.tile_energies(x) for row in energy.unbind(-2)]

    def scan(self, fseries: Tensor) -> tuple[Tensor, Tensor]:
        """gwpy-scaled rfft ``[..., freq]`` -> (spectrogram ``[..., freq_out, time_out]``, peak tile energy ``[...]``)."""
        if not hasattr(self, "freq_weight"):
            raise RuntimeError("this SingleQTransform was built with interpolated=False: native tiles only (tiles, tile_energies)")
        rows, peaks = [], []
        for group in self.groups:  # per group so that only one group's tiles are held at a time
            energy = group.energies(fseries)
            peaks.append(energy.amax(dim=(-2, -1)))
            rows.append(group.interpolate(energy))
        freq_weight = self.freq_weight.to(fseries.device, fseries.real.dtype)
        return freq_weight @ torch.cat(rows, dim=-2), torch.stack(peaks).amax(0)

    def forward(self, x: Tensor) -> Tensor:
        return self.scan(self.fseries(x))[0]


class MultiQTransform(nn.Module):
    """gwpy's ``q_scan``. It transforms the planes of ``q_values(qrange)`` and, for each ``[batch, channel]``, keeps
    the plane whose loudest native tile is largest. On a tie, the lowest Q wins, as with gwpy's strict ``>``.

    ``forward``: ``[batch, channel, time]`` -> (spectrogram ``[batch, channel, freq, time]``, chosen q
    ``[batch, channel]``). Every plane shares the grid of :class:`SingleQTransform`, with ``frange``
    normalised over all Qs as gwpy's ``QTiling`` does.
    """

    def __init__(
        self,
        duration: float,
        sample_rate: float,
        qrange: tuple[float, float] = DEFAULT_QRANGE,
        frange: tuple[float, float] = (8.0, 500.0),
        mismatch: float = DEFAULT_MISMATCH,
        spectrogram_shape: tuple[int, int] = (64, 256),
        logf: bool = True,
        outseg: tuple[float, float] | None = None,
    ) -> None:
        super().__init__()
        qs = q_values(qrange, mismatch)
        frange = normalise_frange(frange, tuple(qs), duration, sample_rate)
        self.planes = nn.ModuleList(
            SingleQTransform(duration, sample_rate, q, frange, mismatch, spectrogram_shape, logf, outseg) for q in qs
        )
        self.register_buffer("qs", torch.tensor(qs, dtype=torch.float64))  # [planes]

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        fseries = self.planes[0].fseries(x)
        spectrograms, peaks = zip(*(plane.scan(fseries) for plane in self.planes), strict=True)
        loudest = torch.stack(peaks).argmax(0)  # [...]; argmax returns the first maximum
        spectrogram = torch.take_along_dim(torch.stack(spectrograms), loudest[None, ..., None, None], dim=0)[0]
        return spectrogram, self.qs.to(x.device, x.dtype)[loudest]


@lru_cache(maxsize=32)
def _module(cls: type[nn.Module], device: torch.device, dtype: torch.dtype, *args: object) -> nn.Module:
    """Build each transform once per parameter set, device and dtype. The tiling and splines cost milliseconds."""
    return cls(*args).to(device=device, dtype=dtype)


def _args(x: Tensor, sample_rate: float, spectrogram_shape: tuple[int, int], outseg: tuple | None) -> tuple:
    return x.shape[-1] / sample_rate, float(sample_rate), tuple(spectrogram_shape), None if outseg is None else tuple(outseg)


def q_transform(
    x: Tensor,
    sample_rate: float,
    q: float = 12.0,
    frange: tuple[float, float] = (8.0, 500.0),
    spectrogram_shape: tuple[int, int] = (64, 256),
    logf: bool = True,
    mismatch: float = DEFAULT_MISMATCH,
    outseg: tuple[float, float] | None = None,
) -> Tensor:
    """:class:`SingleQTransform` of whitened ``x`` ``[batch, channel, time]`` -> ``[batch, channel, freq, time]``.

    The module is cached for ``x``'s device and dtype."""
    duration, rate, shape, seg = _args(x, sample_rate, spectrogram_shape, outseg)
    module = _module(SingleQTransform, x.device, x.dtype, duration, rate, float(q), tuple(frange), mismatch, shape, logf, seg)
    return module(x)


def q_scan(
    x: Tensor,
    sample_rate: float,
    qrange: tuple[float, float] = DEFAULT_QRANGE,
    frange: tuple[float, float] = (8.0, 500.0),
    spectrogram_shape: tuple[int, int] = (64, 256),
    logf: bool = True,
    mismatch: float = DEFAULT_MISMATCH,
    outseg: tuple[float, float] | None = None,
) -> tuple[Tensor, Tensor]:
    """:class:`MultiQTransform` of whitened ``x`` ``[batch, channel, time]`` -> (``[batch, channel, freq, time]``,
    q ``[batch, channel]``). The module is cached for ``x``'s device and dtype."""
    duration, rate, shape, seg = _args(x, sample_rate, spectrogram_shape, outseg)
    module = _module(MultiQTransform, x.device, x.dtype, duration, rate, tuple(qrange), tuple(frange), mismatch, shape, logf, seg)
    return module(x)
