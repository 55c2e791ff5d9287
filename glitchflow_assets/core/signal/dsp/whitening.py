"""PSD estimation and whitening for batches of channels in torch, giving gwpy's results.

:func:`psd_median` uses ml4gw's ``SpectralDensity(average="median")``. That is the estimate of
``scipy.signal.welch(average="median")``, which gwpy's ``TimeSeries.psd(method="median")`` calls: the same
per-segment mean removal, periodic Hann window, density scaling and median bias correction.

:func:`whiten` ports gwpy's ``TimeSeries.whiten`` instead of using ``ml4gw.transforms.Whiten``, because
the two outputs differ:

- ml4gw crops ``fduration / 2`` from both ends. gwpy keeps the full length and tapers the edges.
- ml4gw resamples the PSD by index with ``torch.nn.functional.interpolate``. gwpy interpolates the ASD
  linearly in frequency.
- ml4gw filters by circular multiplication with ``1 / sqrt(psd)`` taken from a truncated PSD. gwpy
  designs a Hann-truncated FIR from ``1 / ASD`` and applies it by linear convolution.
"""

import math

import torch
from ml4gw.transforms import SpectralDensity
from scipy.fft import next_fast_len
from torch import Tensor

TRANSFER_TAPER = 5  # bins tapered at each end of the whitening transfer function (gwpy's _truncate_transfer)


def psd_median(x: Tensor, sample_rate: float, fftlength: float, overlap: float | None = None) -> Tensor:
    """One-sided median-averaged Welch PSD ``[..., time] -> [..., fftlength * sample_rate // 2 + 1]``, float64.

    It equals gwpy's ``TimeSeries.psd(fftlength, overlap, method="median")``, with ``overlap=None`` meaning
    ``fftlength / 2`` (gwpy's default for Hann). Agreement is ~2e-8 relative, because ml4gw computes the
    median bias factor in float32. The result is float64 even for float32 input, because a strain PSD
    (~1e-46 / Hz) is below float32's normal range.
    """
    nperseg = int(fftlength * sample_rate)
    window = torch.hann_window(nperseg, dtype=torch.float64, device=x.device)  # periodic, as scipy's
    density = SpectralDensity(sample_rate, fftlength, overlap, average="median", window=window)
    return density(x.reshape(-1, x.shape[-1])).reshape(*x.shape[:-1], -1)


def psd_of_segments(
    row: Tensor, t0: float, sample_rate: float, segments: list[tuple[float, float]], fftlength: float, max_seconds: float | None = None
) -> Tensor | None:
    """:func:`psd_median` of the valid stretches of ``row[time]`` (starting at GPS ``t0``) long enough for two
    averages, concatenated and cut to ``max_seconds``; ``None`` when no stretch is long enough."""
    pieces = [row[round((s - t0) * sample_rate) : round((e - t0) * sample_rate)] for s, e in segments if e - s >= 2 * fftlength]
    if not pieces:
        return None
    data = torch.cat(pieces)
    return psd_median(data if max_seconds is None else data[: int(max_seconds * sample_rate)], sample_rate, fftlength)


def whiten(
    x: Tensor,
    sample_rate: float,
    psd: Tensor | None = None,
    fftlength: float = 2.0,
    fduration: float = 2.0,
    highpass: float | None = None,
) -> Tensor:
    """gwpy's ``TimeSeries.whiten(asd=psd ** 0.5, fduration, highpass)`` for ``x`` ``[batch, channel, time]``.

    The data are mean-subtracted and their edges Hann-tapered over ``fduration / 2``. They are then
    convolved ("same" mode) with a ``fduration``-long Hann-truncated FIR built from ``1 / ASD``, and scaled
    by ``sqrt(2 / sample_rate)`` so that white Gaussian noise comes out with unit variance.

    ``psd`` ``[batch | 1, channel, freq]`` is one-sided on the grid ``k * sample_rate / (2 (freq - 1))``,
    for example from :func:`psd_median`, and may be estimated from other data than ``x``. When it is None,
    it is estimated from ``x`` with ``fftlength`` and half overlap, as gwpy's ``q_transform(whiten=True)``
    does. The output has ``x``'s shape, dtype and device.

    The filtering runs in ``x``'s dtype. Raw strain spans ~1e4 in amplitude between low and high
    frequencies, so in float32 its whitened output (unit variance) is only good to ~1e-2. Whiten raw strain
    in float64 and cast the output.
    """
    ntaps = int(fduration * sample_rate)
    if x.shape[-1] < ntaps:
        raise ValueError(f"{x.shape[-1]} samples is shorter than fduration ({ntaps} samples)")
    if psd is None:
        psd = psd_median(x, sample_rate, fftlength)
    fir = whitening_filter(psd.to(x.device), sample_rate, x.shape[-1], ntaps, highpass).to(x.dtype)
    data = x - x.mean(-1, keepdim=True)  # gwpy's detrend("constant")
    return _convolve_same(data * _edge_taper(x.shape[-1], ntaps, data), fir)


def colour(w: Tensor, psd: Tensor, sample_rate: float) -> Tensor:
    """Inverse of :func:`whiten` for data ``w`` ``[..., time]`` that are zero at both ends (a gated glitch):
    multiplication by ``ASD * sqrt(sample_rate / 2)`` in the frequency domain, zero-padded so that nothing wraps
    around. ``psd`` ``[..., freq]`` is on :func:`whiten`'s grid; the result is in the data's units (float64)."""
    size = w.shape[-1]
    nfft = 1 << (2 * size - 1).bit_length()  # even, so the ASD grid below has exactly nfft / 2 + 1 bins
    asd = _interpolate(psd.to(torch.float64).sqrt(), sample_rate / (2 * (psd.shape[-1] - 1)), sample_rate / nfft)
    spectrum = torch.fft.rfft(w.to(torch.float64), nfft) * asd * math.sqrt(sample_rate / 2)
    return torch.fft.irfft(spectrum, nfft)[..., :size]


def whitening_filter(psd: Tensor, sample_rate: float, nsamples: int, ntaps: int, highpass: float | None = None) -> Tensor:
    """FIR ``[..., ntaps]`` (float64) that whitens ``nsamples``-long data with one-sided ``psd`` ``[..., freq]``.

    This is gwpy's ``fir_from_transfer(1 / asd)`` with the ``sqrt(2 / sample_rate)`` output scaling folded in.
    """
    df = sample_rate / nsamples
    transfer = 1 / _interpolate(psd.to(torch.float64).sqrt(), sample_rate / (2 * (psd.shape[-1] - 1)), df)
    impulse = torch.fft.irfft(_taper_transfer(transfer, int(highpass / df) if highpass else 0))
    fir = torch.roll(_truncate_impulse(impulse, ntaps), int(ntaps / 2 - 1), dims=-1)[..., :ntaps]
    return fir * math.sqrt(2 / sample_rate)


def _taper_transfer(transfer: Tensor, ncorner: int) -> Tensor:
    """gwpy's ``_truncate_transfer`` on ``[..., freq]``. It zeroes the first ``ncorner`` bins (a hard highpass)
    and Hann-tapers TRANSFER_TAPER bins at each end."""
    taper = torch.hann_window(2 * TRANSFER_TAPER, periodic=False, dtype=transfer.dtype, device=transfer.device)
    transfer[..., :ncorner] = 0
    transfer[..., ncorner : ncorner + TRANSFER_TAPER] *= taper[:TRANSFER_TAPER]
    transfer[..., -TRANSFER_TAPER:] *= taper[TRANSFER_TAPER:]
    return transfer


def _truncate_impulse(impulse: Tensor, ntaps: int) -> Tensor:
    """gwpy's ``_truncate_impulse`` on ``[..., time]``. It keeps the zero-phase impulse's first and last ``ntaps / 2``
    samples, under the two halves of a Hann window."""
    half = int(ntaps / 2)
    window = _hann(ntaps, impulse)
    truncation = impulse.new_zeros(impulse.shape[-1])
    truncation[:half] = window[half:]
    truncation[-half:] = window[:half]
    return impulse * truncation


def _interpolate(asd: Tensor, step_in: float, step_out: float) -> Tensor:
    """Linear interpolation ``[..., freq_in] -> [..., freq_out]`` from the grid ``k step_in`` onto ``k step_out``.

    It matches gwpy's ``FrequencySeries.interpolate``: ``numpy.interp``, holding the last value past the end.
    """
    size = asd.shape[-1]
    count = round((size - 1) * (step_in / step_out) + 1)
    position = torch.arange(count, dtype=torch.float64, device=asd.device) * step_out / step_in
    lower = position.floor().clamp(max=size - 2).long()
    return torch.lerp(asd[..., lower], asd[..., lower + 1], (position - lower).clamp(max=1.0))


def _hann(size: int, like: Tensor) -> Tensor:
    """Periodic Hann window ``[size]`` (scipy's ``get_window("hann", size)``) on ``like``'s device and dtype."""
    return torch.hann_window(size, dtype=like.dtype, device=like.device)


def _edge_taper(size: int, ntaps: int, like: Tensor) -> Tensor:
    """``[size]``: Hann ramps over ``ceil(ntaps / 2)`` samples at both ends, as gwpy's ``convolve`` applies."""
    pad = math.ceil(ntaps / 2)
    window = _hann(ntaps, like)
    taper = torch.ones(size, dtype=like.dtype, device=like.device)
    taper[:pad] = window[:pad]
    taper[-pad:] = window[-pad:]
    return taper


def _convolve_same(data: Tensor, fir: Tensor) -> Tensor:
    """Linear convolution, centred like ``scipy.signal.fftconvolve(mode="same")``: ``[..., time]`` * ``[..., ntaps]``."""
    size, ntaps = data.shape[-1], fir.shape[-1]
    nfft = next_fast_len(size + ntaps - 1, real=True)
    full = torch.fft.irfft(torch.fft.rfft(data, nfft) * torch.fft.rfft(fir, nfft), nfft)
    start = (ntaps - 1) // 2
    return full[..., start : start + size]
