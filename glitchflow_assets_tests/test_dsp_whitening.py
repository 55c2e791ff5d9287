"""psd_median and whiten against gwpy 4.1 on the same input."""

import numpy as np
import pytest
import torch
from gwpy.frequencyseries import FrequencySeries
from gwpy.timeseries import TimeSeries
from scipy.signal import butter, sosfilt

from glitchflow_assets.core.signal.dsp import psd_median, whiten
from glitchflow_assets_tests.conftest import real_file

RATE = 1024
EDGE = 2 * RATE  # fduration: whitening is only compared away from the tapered edges


def _coloured_noise(seed: int, shape: tuple[int, ...], seconds: float = 16.0) -> np.ndarray:
    """Gaussian noise ``[*shape, time]`` with a steep red spectrum plus a white floor (dynamic range ~1e4)."""
    rng = np.random.default_rng(seed)
    white = rng.normal(size=(*shape, int(seconds * RATE)))
    return 100 * sosfilt(butter(4, 30, fs=RATE, output="sos"), white) + white


@pytest.fixture(scope="module")
def h1() -> TimeSeries:
    return TimeSeries.read(real_file("H-H1_LOSC_4_V2-1126259446-32.hdf5"), format="hdf5.gwosc")


@pytest.mark.parametrize(("fftlength", "overlap"), [(1.0, None), (2.0, 0.0), (0.5, 0.125)])  # 31, 8 and 43 segments
def test_psd_median_matches_gwpy(fftlength, overlap):
    data = _coloured_noise(seed=1, shape=(2, 3))
    ours = psd_median(torch.from_numpy(data), RATE, fftlength, overlap)
    assert ours.shape == (2, 3, int(fftlength * RATE) // 2 + 1) and ours.dtype == torch.float64
    for index in np.ndindex(2, 3):
        expected = TimeSeries(data[index], sample_rate=RATE).psd(fftlength, overlap, method="median").value
        # ml4gw computes the median bias correction in float32: agreement is ~2e-8, not 1e-15
        np.testing.assert_allclose(ours[index].numpy(), expected, rtol=1e-7)


def test_psd_median_of_float32_strain_does_not_underflow(h1):
    strain = torch.from_numpy(h1.value).float()  # PSD ~1e-46 / Hz: below float32's smallest normal, 1e-38
    single = psd_median(strain, h1.sample_rate.value, 2.0)
    assert single.dtype == torch.float64 and single.min() > 0
    torch.testing.assert_close(single, psd_median(strain.double(), h1.sample_rate.value, 2.0), rtol=1e-12, atol=0)


def test_white_noise_with_its_true_psd_comes_out_with_unit_variance():
    """gwpy's sqrt(2 / rate) normalisation: the one-sided PSD of N(0, sigma^2) noise is 2 sigma^2 / rate."""
    data = 3.0 * torch.from_numpy(np.random.default_rng(4).normal(size=(4, 2, 16 * RATE)))
    white = whiten(data, RATE, torch.full((1, 2, RATE + 1), 2 * 3.0**2 / RATE, dtype=torch.float64))
    assert white[..., EDGE:-EDGE].var(-1).mean().item() == pytest.approx(1.0, abs=0.01)
    assert white[..., EDGE:-EDGE].var(-1).mean().item() != pytest.approx(1.0, abs=0.001)  # not just a rescaling


def test_whitened_noise_has_unit_variance_with_a_psd_from_other_data():
    # The PSD comes from 128 s of other data: a noisy estimate inflates the whitened variance. With 16 s the
    # median of 15 segments gives +5% in gwpy too, because E[1 / PSD estimate] > 1 / PSD.
    reference, data = _coloured_noise(seed=2, shape=(1, 2), seconds=128), _coloured_noise(seed=3, shape=(3, 2))
    psd = psd_median(torch.from_numpy(reference), RATE, 2.0)  # [1, channel, freq]: shared by the batch
    white = whiten(torch.from_numpy(data), RATE, psd)
    assert white.shape == data.shape
    variance = white[..., EDGE:-EDGE].var(-1)
    torch.testing.assert_close(variance, torch.ones_like(variance), atol=0.04, rtol=0)
    assert variance.mean().item() == pytest.approx(1.0, abs=0.02)
    output = psd_median(white[..., EDGE:-EDGE], RATE, 1.0)  # 1 Hz bins
    low, high = output[..., 10:30].mean().item(), output[..., 200:450].mean().item()  # ~1e4 apart at the input
    assert low / high == pytest.approx(1.0, abs=0.15)
    for b, c in np.ndindex(3, 2):  # broadcasting the PSD equals whitening each series alone
        torch.testing.assert_close(white[b, c], whiten(torch.from_numpy(data[b, c]), RATE, psd[0, c]))


def test_whiten_matches_gwpy_on_gw150914(h1):
    """Unlike ml4gw's Whiten, this is the full-length gwpy result, tapered edges included."""
    ours = whiten(torch.from_numpy(h1.value)[None, None], h1.sample_rate.value)[0, 0].numpy()
    expected = h1.whiten(2, 1, method="median").value
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-7)
    edge = 2 * int(h1.sample_rate.value)
    assert np.corrcoef(ours[edge:-edge], expected[edge:-edge])[0, 1] > 0.999999


def test_whiten_a_stretch_with_the_surrounding_psd_and_a_highpass(h1):
    rate = h1.sample_rate.value
    psd = psd_median(torch.from_numpy(h1.value), rate, 4.0)
    stretch = h1.crop(1126259458, 1126259466)
    ours = whiten(torch.from_numpy(stretch.value), rate, psd, fduration=1.0, highpass=20.0).numpy()
    asd = FrequencySeries(psd.sqrt().numpy(), f0=0, df=0.25)
    expected = stretch.whiten(asd=asd, fduration=1.0, highpass=20.0).value
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-7)
    # float32 raw strain: its ~1e4 low/high-frequency dynamic range leaves float32 FFT rounding at ~1e-2
    single = whiten(torch.from_numpy(stretch.value).float(), rate, psd, fduration=1.0, highpass=20.0)
    assert single.dtype == torch.float32
    np.testing.assert_allclose(single.numpy(), expected, rtol=0, atol=0.05)
    assert np.corrcoef(single.numpy(), expected)[0, 1] > 0.9999


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_whitening_matches_gwpy(h1):
    strain = torch.from_numpy(h1.value).cuda()
    ours = whiten(strain[None, None], h1.sample_rate.value)[0, 0]
    assert ours.device.type == "cuda"
    np.testing.assert_allclose(ours.cpu().numpy(), h1.whiten(2, 1, method="median").value, rtol=0, atol=1e-7)
