"""The torch Q-transform against gwpy 4.1 on the same (already whitened) input."""

import numpy as np
import pytest
import torch
from gwpy.signal.qtransform import QPlane
from gwpy.signal.qtransform import QTiling as GwpyQTiling
from gwpy.timeseries import TimeSeries

from glitchflow_assets.core.signal.dsp import MultiQTransform, QTiling, SingleQTransform, q_scan, q_transform, whiten
from glitchflow_assets.core.signal.dsp.qtransform import _module, nonnegative_median
from glitchflow_assets_tests.conftest import real_file

RATE = 4096
DURATION = 4.0
SHAPE = (64, 256)
GW150914 = 1126259462.4
# Measured: float64 is within 1.2e-7 relative of gwpy, which is gwpy's own float32 rounding of the
# normalised energies. float32 is within 1.2e-6 relative.
RTOL = {torch.float64: 1e-6, torch.float32: 2e-5}


def _sine_gaussian(t: np.ndarray, t0: float, f0: float, q: float, amplitude: float) -> np.ndarray:
    tau = q / (np.sqrt(2) * np.pi * f0)
    return amplitude * np.exp(-(((t - t0) / tau) ** 2)) * np.sin(2 * np.pi * f0 * (t - t0))


def _noise_with_glitch(seed: int, t0: float = 2.3, f0: float = 120.0, q: float = 12.0, amplitude: float = 4.0) -> np.ndarray:
    """White unit-variance noise ``[time]`` (already "whitened") with a sine-Gaussian glitch."""
    t = np.arange(int(DURATION * RATE)) / RATE
    return np.random.default_rng(seed).normal(size=t.size) + _sine_gaussian(t, t0, f0, q, amplitude)


def _gwpy_qgram(data: np.ndarray, qrange=(12, 12), outseg=None, logf=True, frange=(8, 500)) -> tuple[np.ndarray, float]:
    """gwpy's interpolated normalised energy ``[freq, time]`` on the SingleQTransform grid and its Q (input starts at t=0)."""
    series = TimeSeries(data, sample_rate=RATE, t0=0)
    start, stop = outseg or (0, series.duration.value)
    fres = SHAPE[0] if logf else (frange[1] - frange[0]) / SHAPE[0]
    kwargs = {"tres": (stop - start) / SHAPE[1], "fres": fres, "logf": logf, "outseg": outseg}
    qgram = series.q_transform(qrange=qrange, frange=frange, whiten=False, norm="median", **kwargs)
    return qgram.value.T, qgram.q


def _assert_matches_gwpy(ours: np.ndarray, gwpy: np.ndarray, rtol: float) -> None:
    """Same peak pixel; every pixel within rtol (energies are ~1 in noise); relative error within rtol (median
    10x tighter) where gwpy's energy exceeds 10."""
    np.testing.assert_allclose(ours, gwpy, rtol=rtol, atol=rtol)
    loud = gwpy > 10
    assert loud.sum() > 20
    error = np.abs(ours - gwpy)[loud] / gwpy[loud]
    assert np.median(error) < rtol / 10 and error.max() < rtol
    assert np.unravel_index(ours.argmax(), ours.shape) == np.unravel_index(gwpy.argmax(), gwpy.shape)


def _transform(module: torch.nn.Module, data: np.ndarray, dtype: torch.dtype = torch.float64, device: str = "cpu") -> np.ndarray:
    x = torch.as_tensor(data, dtype=dtype, device=device)[None, None]
    return module.to(device=device, dtype=dtype)(x)[0, 0].double().cpu().numpy()


@pytest.mark.parametrize(
    ("q", "frange", "duration"), [(12, (8, 500), 6.0), (4, (10, 1000), 4.0), (45.25, (20, 300), 8.0), (12, (0, np.inf), 4.0)]
)
def test_tiling_is_gwpys_exactly(q, frange, duration):
    ours = QTiling(duration, RATE, q, frange)
    plane = next(iter(GwpyQTiling(duration, RATE, qrange=(q, q), frange=frange)))
    assert ours.frange == plane.frange
    np.testing.assert_array_equal(ours.frequencies, plane.frequencies)
    tiles = list(plane)
    assert ours.ntiles.tolist() == [tile.ntiles for tile in tiles]
    for row, tile in enumerate(tiles):
        np.testing.assert_array_equal(ours.data_indices(row), tile.get_data_indices())
        np.testing.assert_array_equal(ours.window(row), tile.get_window())
        np.testing.assert_allclose(ours.tile_times(row), np.arange(tile.ntiles) * duration / tile.ntiles)
    assert [g.stop - g.start for g in ours.row_groups()] == np.unique(ours.ntiles, return_counts=True)[1].tolist()


def test_tiling_rejects_rows_past_nyquist_and_warns_on_capped_fmax():
    with pytest.warns(UserWarning, match="too high"):
        assert QTiling(4.0, RATE, 12, (8, 3000)).frange[1] == pytest.approx(RATE / 2 / (1 + 11**0.5 / 12))
    with pytest.raises(ValueError, match="more window bins than tiles"):
        QTiling(4.0, RATE, 12, (8, 500), mismatch=5.0)


def test_native_tile_energies_match_gwpy():
    data = _noise_with_glitch(seed=1)
    fseries = TimeSeries(data, sample_rate=RATE, t0=0).fft()
    ours = SingleQTransform(DURATION, RATE).tiles(torch.from_numpy(data)[None, None])
    rows = list(QPlane(12, (8, 500), DURATION, RATE))
    assert len(ours) == len(rows)
    for energy, row in zip(ours, rows, strict=True):
        expected = row.transform(fseries, norm="median", epoch=0).value
        np.testing.assert_allclose(energy[0, 0].numpy(), expected, rtol=1e-6, atol=1e-9 * expected.max())


def test_a_tiles_only_plane_gives_the_same_tiles_and_refuses_to_interpolate():
    """What the event search builds: no interpolation grid, the same native tiles bit for bit."""
    x = torch.from_numpy(_noise_with_glitch(seed=2))[None, None]
    full, tiles_only = SingleQTransform(DURATION, RATE, 20.0), SingleQTransform(DURATION, RATE, 20.0, interpolated=False)
    for a, b in zip(full.tiles(x), tiles_only.tiles(x), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(RuntimeError, match="interpolated=False"):
        tiles_only(x)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_spectrogram_matches_gwpy_on_a_sine_gaussian(dtype):
    data = _noise_with_glitch(seed=2)
    module = SingleQTransform(DURATION, RATE, spectrogram_shape=SHAPE)
    ours, (gwpy, _) = _transform(module, data, dtype), _gwpy_qgram(data)
    _assert_matches_gwpy(ours, gwpy, RTOL[dtype])
    peak_row, peak_bin = np.unravel_index(ours.argmax(), ours.shape)
    assert module.times[peak_bin] == pytest.approx(2.3, abs=0.02)
    assert module.output_frequencies[peak_row] == pytest.approx(120, rel=0.1)


def test_outseg_and_linear_frequencies_match_gwpy():
    data = _noise_with_glitch(seed=3, f0=300.0)
    zoom = SingleQTransform(DURATION, RATE, spectrogram_shape=SHAPE, outseg=(2.0, 2.6))
    _assert_matches_gwpy(_transform(zoom, data), _gwpy_qgram(data, outseg=(2.0, 2.6))[0], RTOL[torch.float64])
    linear = SingleQTransform(DURATION, RATE, spectrogram_shape=SHAPE, logf=False)
    _assert_matches_gwpy(_transform(linear, data), _gwpy_qgram(data, logf=False)[0], RTOL[torch.float64])


@pytest.fixture(scope="module")
def gw150914() -> TimeSeries:
    """8 s of H1 strain around GW150914 whitened with a PSD of the whole 32 s file."""
    strain = TimeSeries.read(real_file("H-H1_LOSC_4_V2-1126259446-32.hdf5"), format="hdf5.gwosc")
    white = whiten(torch.from_numpy(strain.value)[None, None], RATE)[0, 0].numpy()
    return TimeSeries(white, t0=strain.t0, sample_rate=RATE).crop(GW150914 - 4.4, GW150914 + 3.6)


def test_gw150914_matches_gwpy(gw150914):
    start = gw150914.t0.value
    outseg = (GW150914 - 0.4 - start, GW150914 + 0.4 - start)
    module = SingleQTransform(8.0, RATE, spectrogram_shape=SHAPE, outseg=outseg)
    ours = _transform(module, gw150914.value)
    # gwpy gets the same samples starting at t=0. At GPS ~1e9 s, float64 rounds gwpy's time grids to
    # 2.4e-7 s. That shifts its spline nodes and changes its energies by up to 3e-3 relative.
    _assert_matches_gwpy(ours, _gwpy_qgram(gw150914.value, outseg=outseg)[0], RTOL[torch.float64])
    peak_row, peak_bin = np.unravel_index(ours.argmax(), ours.shape)
    assert start + module.times[peak_bin] == pytest.approx(GW150914, abs=0.05)
    assert 30 < module.output_frequencies[peak_row] < 300


def test_q_scan_picks_gwpys_plane_per_channel():
    """A short glitch (low Q) and a long one (high Q) in one batch: each channel gets gwpy's plane."""
    short = _noise_with_glitch(seed=4, q=5.0, f0=200.0, amplitude=6.0)
    long = _noise_with_glitch(seed=5, q=60.0, f0=80.0, amplitude=2.0)
    batch = np.stack([short, long])
    scan = MultiQTransform(DURATION, RATE, qrange=(4, 64), spectrogram_shape=SHAPE)
    assert scan.qs.tolist() == list(GwpyQTiling(DURATION, RATE, qrange=(4, 64)).qs)
    spectrograms, qs = scan(torch.from_numpy(batch)[None])
    assert qs.shape == (1, 2) and qs[0, 0] < qs[0, 1]
    for channel, data in enumerate(batch):
        gwpy, gwpy_q = _gwpy_qgram(data, qrange=(4, 64))
        assert qs[0, channel].item() == pytest.approx(gwpy_q)
        _assert_matches_gwpy(spectrograms[0, channel].numpy(), gwpy, RTOL[torch.float64])


def test_batch_items_are_independent():
    batch = np.stack([np.stack([_noise_with_glitch(seed=10 * b + c, f0=60.0 + 100 * c) for c in range(2)]) for b in range(3)])
    module = SingleQTransform(DURATION, RATE, spectrogram_shape=SHAPE)
    together = module(torch.from_numpy(batch))
    assert together.shape == (3, 2, *SHAPE)
    for b in range(3):
        for c in range(2):
            alone = module(torch.from_numpy(batch[b, c])[None, None])[0, 0]
            torch.testing.assert_close(together[b, c], alone, rtol=1e-12, atol=1e-12)


def test_functional_api_caches_and_follows_the_input_dtype():
    data = torch.from_numpy(_noise_with_glitch(seed=6))[None, None]
    _module.cache_clear()
    double = q_transform(data, RATE)
    single = q_transform(data.float(), RATE)
    q_transform(data, RATE)
    assert _module.cache_info().hits == 1 and _module.cache_info().currsize == 2
    assert double.dtype == torch.float64 and single.dtype == torch.float32
    torch.testing.assert_close(single.double(), double, rtol=2e-5, atol=2e-5)
    torch.testing.assert_close(double, SingleQTransform(DURATION, RATE)(data))
    spectrogram, q = q_scan(data, RATE, qrange=(12, 12))
    assert q.item() == 12 and torch.equal(spectrogram, double)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_median_matches_numpy_with_ties(dtype):
    rng = np.random.default_rng(7)
    values = np.concatenate([rng.integers(0, 4, size=(50, 16)), rng.exponential(size=(50, 16)), np.zeros((1, 16))])
    for width in (16, 15):
        x = torch.from_numpy(values[:, :width]).to(dtype)
        expected = np.median(x.double().numpy(), axis=-1, keepdims=True)
        np.testing.assert_allclose(nonnegative_median(x).double().numpy(), expected, rtol=1e-7)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_cuda_matches_gwpy(dtype):
    data = _noise_with_glitch(seed=2)
    module = SingleQTransform(DURATION, RATE, spectrogram_shape=SHAPE)
    _assert_matches_gwpy(_transform(module, data, dtype, device="cuda"), _gwpy_qgram(data)[0], RTOL[dtype])
    spectrogram, _ = q_scan(torch.as_tensor(data, dtype=dtype, device="cuda")[None, None], RATE)
    assert spectrogram.device.type == "cuda" and spectrogram.dtype == dtype
