import numpy as np
import pytest

from glitchflow_assets.core.signal.resample import edge_seconds, rate_ratio, resample


def _tone(freq, rate, seconds=8):
    t = np.arange(int(seconds * rate)) / rate
    return np.sin(2 * np.pi * freq * t)


def _amplitude(y, freq, rate):
    """The amplitude of the ``freq`` sinusoid in ``y`` (least squares: exact over any number of periods)."""
    t = np.arange(y.size) / rate
    basis = np.stack([np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t)], axis=1)
    return np.hypot(*np.linalg.lstsq(basis, y, rcond=None)[0])


@pytest.mark.parametrize(("rate_in", "rate_out"), [(16384, 4096), (8192, 4096), (16384, 128), (4096, 128), (16384, 1024)])
def test_downsampling_keeps_the_band_and_rejects_aliases_by_90_db(rate_in, rate_out):
    nyquist = rate_out / 2
    mid = slice(rate_out * 2, -rate_out * 2)
    inside = resample(_tone(0.9 * nyquist, rate_in), rate_in, rate_out)
    assert _amplitude(inside[mid], 0.9 * nyquist, rate_out) == pytest.approx(1.0, abs=1e-4)
    # just above the output Nyquist frequency (the sharp filter's job), and where a two-stage decimation's first stage
    # would fold onto the same 0.9 x Nyquist (4 x the output rate, less it: the short filter's job)
    for freq in [f for f in (1.1 * nyquist, 4 * rate_out - 0.9 * nyquist) if f < rate_in / 2]:
        alias = resample(_tone(freq, rate_in), rate_in, rate_out)
        assert 20 * np.log10(np.std(alias[mid]) * np.sqrt(2)) < -90, freq


@pytest.mark.parametrize(("rate_in", "rate_out"), [(16384, 128), (4096, 128), (16384, 1024)])
def test_two_stage_decimation_equals_one_sharp_filter(rate_in, rate_out):
    """The short first stage changes the output by no more than the filters' 90 dB ripple, and the transient at the
    edges stays within what edge_seconds trims."""
    from scipy.signal import resample_poly

    from glitchflow_assets.core.signal.resample import antialias_taps

    x = np.random.default_rng(3).standard_normal(rate_in * 16)
    down = rate_in // rate_out
    reference = resample_poly(x, 1, down, window=antialias_taps(1, down), padtype="line")
    edge = int(np.ceil(edge_seconds(rate_in, rate_out) * rate_out))
    difference = (resample(x, rate_in, rate_out) - reference)[edge:-edge]
    assert np.abs(difference).max() < 1e-3 * np.std(reference) and np.std(difference) < 1e-4 * np.std(reference)


def test_upsampling_a_slow_channel_adds_no_images():
    out = resample(_tone(50.0, 256), 256, 4096)
    spectrum = np.abs(np.fft.rfft(out[4096:-4096] * np.hanning(out.size - 8192)))
    freqs = np.fft.rfftfreq(out.size - 8192, 1 / 4096)
    peak = spectrum.max()
    assert freqs[np.argmax(spectrum)] == pytest.approx(50.0, abs=0.5)
    assert spectrum[freqs > 130].max() < 1e-4 * peak  # images of 50 Hz at 206, 306, ... Hz are gone


def test_resampling_keeps_timing():
    # an impulse at t = 1 s stays at t = 1 s at the new rate
    x = np.zeros(16384 * 2)
    x[16384] = 1.0
    y = resample(x, 16384, 4096)
    assert np.argmax(y) == 4096


def test_rates_and_edges():
    assert rate_ratio(16384, 4096) == 0.25 and rate_ratio(256, 4096) == 16
    assert edge_seconds(4096, 4096) == 0.0 and 0 < edge_seconds(16384, 4096) < edge_seconds(256, 4096) < 1.0
    with pytest.raises(ValueError, match="cannot resample"):
        rate_ratio(4096 * np.pi, 4096)


@pytest.mark.parametrize(("rate_in", "n"), [(16384, 16384 * 3 + 5), (8192, 8192 * 2 + 3)])
def test_fft_decimation_equals_polyphase_filtering(rate_in, n):
    from scipy.signal import resample_poly

    from glitchflow_assets.core.signal.resample import _decimate_fft, antialias_taps

    x = np.random.default_rng(1).standard_normal(n).cumsum()
    down = rate_in // 4096
    reference = resample_poly(x, 1, down, window=antialias_taps(1, down), padtype="line")
    np.testing.assert_allclose(resample(x, rate_in, 4096), reference, rtol=0, atol=1e-9 * np.abs(reference).max())
    blockwise = _decimate_fft(x, antialias_taps(1, down), down, block=1001)  # many blocks, not a multiple of down
    np.testing.assert_allclose(blockwise, reference, rtol=0, atol=1e-9 * np.abs(reference).max())


@pytest.mark.parametrize(("rate_in", "n"), [(2048, 2048 * 3 + 5), (256, 256 * 7 + 3), (512, 9)])
def test_fft_interpolation_equals_polyphase_filtering(rate_in, n):
    from scipy.signal import resample_poly

    from glitchflow_assets.core.signal.resample import antialias_taps

    x = np.random.default_rng(2).standard_normal(n).cumsum() + 50.0  # a trend and an offset: the line padding matters
    up = 4096 // rate_in
    reference = resample_poly(x, up, 1, window=antialias_taps(up, 1), padtype="line")
    np.testing.assert_allclose(resample(x, rate_in, 4096), reference, rtol=0, atol=1e-9 * np.abs(reference).max())
