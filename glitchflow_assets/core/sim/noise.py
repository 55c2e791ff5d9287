"""Coloured Gaussian noise as a continuous, seekable stream.

White noise is drawn in fixed blocks, each seeded by ``(seed, stream, block index)``, and coloured by
a linear-phase FIR whose amplitude response is sqrt(PSD * fs / 2). Any sample range can therefore be
generated on its own and matches the same range cut from a longer simulation bit for bit, so frames can
be written in any order and a simulation can be extended later.
"""

from collections.abc import Callable

import numpy as np
from scipy.signal import oaconvolve

PsdFunction = Callable[[np.ndarray], np.ndarray]
"""One-sided PSD [unit^2/Hz] evaluated at an array of frequencies [Hz]."""

BLOCK_SECONDS = 16


def lal_psd(name: str, f_low: float) -> PsdFunction:
    """A lalsimulation detector PSD (e.g. ``SimNoisePSDAdVO3LowT1800545``), flat below ``f_low``."""
    import lal
    import lalsimulation

    psd_fill = getattr(lalsimulation, name)

    def psd(freqs: np.ndarray) -> np.ndarray:
        df = float(freqs[1] - freqs[0])
        series = lal.CreateREAL8FrequencySeries("psd", 0, 0.0, df, lal.DimensionlessUnit, len(freqs))
        psd_fill(series, f_low)
        values = np.array(series.data.data)
        values[freqs < f_low] = values[np.searchsorted(freqs, f_low)]
        values[values <= 0] = values[values > 0][-1]  # lal leaves the Nyquist bin empty
        return values

    return psd


def power_law_psd(level: float, knee_hz: float, slope: float, f_min: float = 0.1) -> PsdFunction:
    """``level * (1 + (knee/f)^slope)``: white above the knee, steep below (a typical aux spectrum)."""

    def psd(freqs: np.ndarray) -> np.ndarray:
        f = np.maximum(freqs, f_min)
        return level * (1.0 + (knee_hz / f) ** slope)

    return psd


def colouring_fir(psd: PsdFunction, sample_rate: float, seconds: float = 4.0) -> np.ndarray:
    """Linear-phase FIR taps ``[n]`` turning unit-variance white noise into noise with PSD ``psd``."""
    n = int(seconds * sample_rate)
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    amplitude = np.sqrt(psd(freqs) * sample_rate / 2.0)
    amplitude[0] = 0.0  # no DC offset
    taps = np.fft.irfft(amplitude, n)
    return np.roll(taps, n // 2) * np.hanning(n)


class NoiseStream:
    """Samples ``[start, start + n)`` (indices counted from GPS 0 at ``sample_rate``) of coloured noise."""

    def __init__(self, psd: PsdFunction, sample_rate: float, seed: int, stream: int):
        self.sample_rate = sample_rate
        self.seed = seed
        self.stream = stream
        self.taps = colouring_fir(psd, sample_rate)
        self.block = int(BLOCK_SECONDS * sample_rate)

    def _white(self, start: int, stop: int) -> np.ndarray:
        first, last = start // self.block, (stop - 1) // self.block
        blocks = [np.random.default_rng([self.seed, self.stream, k]).standard_normal(self.block) for k in range(first, last + 1)]
        joined = np.concatenate(blocks)
        offset = start - first * self.block
        return joined[offset : offset + (stop - start)]

    def samples(self, start: int, n: int) -> np.ndarray:
        """Coloured noise ``[n]`` (float64)."""
        white = self._white(start - len(self.taps) + 1, start + n)
        return oaconvolve(white, self.taps, mode="valid")
