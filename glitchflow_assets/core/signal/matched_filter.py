"""Matched filtering against a known waveform: how much of a signal a strain series holds.

The noise-weighted inner product ``<a, b> = 4 Re sum a(f) b*(f) / S(f) df`` (one-sided PSD ``S``, DC left out), the
optimal SNR of a waveform ``sqrt(<h, h>)``, and the SNR recovered from data at the waveform's known time and phase,
``<d, h> / sqrt(<h, h>)``: for data = noise + h it scatters around the optimal SNR with unit standard deviation, and
it drops where cleaning took part of the signal away. Series are ``[time]`` at one rate (computed in float64 whatever
their dtype); the PSD is given on ``numpy.fft.rfftfreq`` of their length.
"""

import numpy as np


def _spectra(*series: np.ndarray, sample_rate: float, psd: np.ndarray) -> tuple[list[np.ndarray], float]:
    """The rfft of each series ``[time]`` (same length) in strain/Hz, and the frequency step; checks the PSD's grid."""
    n = series[0].size
    if any(s.shape != (n,) for s in series) or psd.shape != (n // 2 + 1,):
        raise ValueError(f"series of {[s.shape for s in series]} samples need one length and a PSD of {n // 2 + 1} bins, got {psd.shape}")
    # float64 whatever the input: strain squared over its PSD (~1e-42 / 1e-46) is below float32's normal range
    return [np.fft.rfft(np.asarray(s, dtype=np.float64)) / sample_rate for s in series], sample_rate / n


def inner_product(a: np.ndarray, b: np.ndarray, sample_rate: float, psd: np.ndarray) -> float:
    """``<a, b>`` of two series ``[time]`` (same length) against the one-sided ``psd`` ``[freq]`` on their rfft grid."""
    (fa, fb), df = _spectra(a, b, sample_rate=sample_rate, psd=psd)
    return float(4.0 * np.sum((fa[1:] * np.conj(fb[1:])).real / psd[1:]) * df)


def optimal_snr(waveform: np.ndarray, sample_rate: float, psd: np.ndarray) -> float:
    """``sqrt(<h, h>)``: the SNR a perfect matched filter gets from ``waveform`` ``[time]`` in noise of ``psd``."""
    (spectrum,), df = _spectra(waveform, sample_rate=sample_rate, psd=psd)
    return float(np.sqrt(4.0 * np.sum(np.abs(spectrum[1:]) ** 2 / psd[1:]) * df))


def recovered_snr(data: np.ndarray, waveform: np.ndarray, sample_rate: float, psd: np.ndarray) -> float:
    """``<d, h> / sqrt(<h, h>)``: the matched-filter SNR of ``waveform`` in ``data`` (both ``[time]``, aligned)."""
    norm = optimal_snr(waveform, sample_rate, psd)
    if norm == 0:
        raise ValueError("the waveform is zero: it has no SNR to recover")
    return inner_product(data, waveform, sample_rate, psd) / norm
