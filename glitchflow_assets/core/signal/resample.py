"""Sample-rate conversion with a proper anti-alias (and anti-image) filter.

Every channel is brought to the run's analysis rate by polyphase filtering with a Kaiser-window FIR
designed for >= 90 dB stop-band attenuation, pass band up to 95 % of the *lower* Nyquist frequency.
The filter is designed per (input, output) rate pair, so a 256 Hz seismometer and a 16384 Hz strain
channel each get their own (the original reused the strain's filter for every channel). A decimation by 8 or more
runs in two stages: a short filter to 4x the output rate that only has to keep aliases out of the output band, then
the sharp filter above at the low rate, ~10-50x cheaper than one sharp filter at the input rate (16384 Hz to 128 Hz:
243 + 917 taps instead of 29,263) with the same pass band and the same 90 dB alias rejection.
"""

from fractions import Fraction
from functools import lru_cache

import numpy as np
from scipy.signal import firwin, kaiserord, oaconvolve, resample_poly

STOPBAND_DB = 90.0
TRANSITION = 0.05  # transition width as a fraction of the lower Nyquist frequency
POLYPHASE_TAPS_PER_OUTPUT = 64  # up to this, polyphase filtering beats FFT convolution (measured: 16384 Hz, 245 taps, by 32)


def rate_ratio(rate_in: float, rate_out: float) -> Fraction:
    """Exact up/down ratio; raises for rates whose ratio is not a small rational."""
    ratio = Fraction(rate_out / rate_in).limit_denominator(4096)
    if abs(float(ratio) * rate_in - rate_out) > 1e-9 * rate_out:
        raise ValueError(f"cannot resample {rate_in} Hz to {rate_out} Hz exactly")
    return ratio


@lru_cache(maxsize=64)
def antialias_taps(up: int, down: int) -> np.ndarray:
    """Low-pass FIR ``[taps]`` at the intermediate rate (input rate x up), unit DC gain."""
    band = 1.0 / max(up, down)  # lower Nyquist, relative to the intermediate Nyquist
    numtaps, beta = kaiserord(STOPBAND_DB, TRANSITION * band)
    numtaps |= 1  # odd: integer group delay, the output stays on the input's time grid
    return firwin(numtaps, (1.0 - TRANSITION / 2) * band, window=("kaiser", beta))


@lru_cache(maxsize=64)
def prefilter_taps(first: int, down: int) -> np.ndarray:
    """Low-pass FIR ``[taps]`` of a decimation's first stage (by ``first`` of the whole ``down``), unit DC gain.

    It passes the final output band whole (to 1/down of the input Nyquist) and stops, by the same 90 dB, only what the
    first stage would fold into that band (from 2/first - 1/down): a wide transition, so a short filter."""
    width = 2.0 / first - 2.0 / down
    numtaps, beta = kaiserord(STOPBAND_DB + 6.0, width)  # Kaiser's formula lands within a dB of its target: keep a margin
    return firwin(numtaps | 1, 1.0 / first, window=("kaiser", beta))


def _decimation_stages(down: int) -> list[tuple[np.ndarray, int]]:
    """(taps, factor) of each stage of a decimation by ``down``: one sharp stage, or a short first one by the largest
    factor leaving at least 4 for the sharp second one (so the first stage's transition band is wide)."""
    first = max((d for d in range(2, down // 4 + 1) if down % d == 0), default=1)
    if first == 1:
        return [(antialias_taps(1, down), down)]
    return [(prefilter_taps(first, down), first), (antialias_taps(1, down // first), down // first)]


def _decimate_fft(data: np.ndarray, taps: np.ndarray, down: int, block: int = 1 << 18) -> np.ndarray:
    """Same output as ``resample_poly(data, 1, down, window=taps, padtype="line")``, by overlap-add FFT
    convolution: ~5x faster for the long filters of 16384 Hz channels (polyphase costs taps/down per
    output sample, FFT convolution ~log(taps)). ``block`` input samples are detrended and convolved at a
    time, so the working memory stays small whatever the window length."""
    n, half = data.size, len(taps) // 2
    slope = (data[-1] - data[0]) / (n - 1) if n > 1 else 0.0
    line = lambda idx: data[0] + slope * idx  # noqa: E731  padtype="line": filter the detrended data
    block -= block % down
    out = np.empty(-(-n // down))
    for start in range(0, n, block):
        stop = min(start + block, n)
        lo, hi = max(start - half, 0), min(stop + half, n)
        segment = np.zeros(stop - start + 2 * half)  # zeros beyond the data, as resample_poly pads
        segment[lo - (start - half) : hi - (start - half)] = data[lo:hi] - line(np.arange(lo, hi))
        kept = np.arange(start, stop, down)
        out[start // down : start // down + kept.size] = oaconvolve(segment, taps, mode="valid")[::down] + line(kept)
    return out


def _decimate(data: np.ndarray, taps: np.ndarray, down: int) -> np.ndarray:
    """``data`` filtered by ``taps`` and kept every ``down``-th sample: polyphase where the filter is short for its
    factor (a first stage: a few multiplications per output sample), FFT convolution where it is long."""
    if len(taps) <= POLYPHASE_TAPS_PER_OUTPUT * down:
        return resample_poly(data, 1, down, window=taps, padtype="line")
    return _decimate_fft(data, taps, down)


def _interpolate_fft(data: np.ndarray, taps: np.ndarray, up: int) -> np.ndarray:
    """Same output as ``resample_poly(data, up, 1, window=taps, padtype="line")``, by one FFT convolution of the
    zero-stuffed data: 2-9x faster for the slow auxiliary channels (polyphase costs taps/up per output sample). As
    ``padtype="line"`` does, the data are extended beyond both ends by the line through the first and last samples."""
    n, half = data.size, len(taps) // 2
    pad = half // up + 1  # input samples the filter reaches past either end
    slope = (data[-1] - data[0]) / (n - 1) if n > 1 else 0.0
    extended = np.concatenate([data[0] + slope * np.arange(-pad, 0), data, data[0] + slope * np.arange(n, n + pad)])
    stuffed = np.zeros(extended.size * up)
    stuffed[::up] = extended
    start = pad * up + half  # output sample 0 sits at input sample 0, the filter's centre
    return oaconvolve(stuffed, taps * up, mode="full")[start : start + n * up]


def resample(data: np.ndarray, rate_in: float, rate_out: float) -> np.ndarray:
    """``data[time]`` at ``rate_in`` -> ``[time * rate_out / rate_in]`` at ``rate_out`` (float64)."""
    ratio = rate_ratio(rate_in, rate_out)
    data = np.asarray(data, dtype=np.float64)
    if ratio == 1:
        return data.copy()
    up, down = ratio.numerator, ratio.denominator
    if up == 1:
        for stage_taps, factor in _decimation_stages(down):
            data = _decimate(data, stage_taps, factor)
        return data
    taps = antialias_taps(up, down)
    if down == 1:
        return _interpolate_fft(data, taps, up)
    return resample_poly(data, up, down, window=taps, padtype="line")


def edge_seconds(rate_in: float, rate_out: float) -> float:
    """How far (s) from a data edge the filter transient reaches: trimmed from the valid segments."""
    ratio = rate_ratio(rate_in, rate_out)
    if ratio == 1:
        return 0.0
    if ratio.numerator > 1:
        return (len(antialias_taps(ratio.numerator, ratio.denominator)) // 2) / (rate_in * ratio.numerator)
    seconds, rate = 0.0, rate_in
    for taps, factor in _decimation_stages(ratio.denominator):
        seconds, rate = seconds + (len(taps) // 2) / rate, rate / factor
    return seconds
