"""The simulator: realistic noise, glitches where the ground truth says, reproducible and extendable."""

import itertools

import numpy as np
import pytest
from gwpy.timeseries import TimeSeries, TimeSeriesDict
from scipy.signal import welch

from glitchflow_assets.core.io.frames import parse_frame_name
from glitchflow_assets.core.sim import VIRGO_SCENARIO, load_truth, simulate, with_locks
from glitchflow_assets.core.sim.simulator import make_renderers, plan_glitches
from glitchflow_assets_tests.conftest import SIM_SEED


def _frames(directory):
    return sorted(directory.glob("*.gwf"))


def test_frames_are_named_gwf_files_with_every_channel_at_its_rate(sim_frames):
    files = _frames(sim_frames)
    assert len(files) == 12
    spans = [parse_frame_name(f) for f in files]
    assert all(s.observatory == "V" and s.tag == "V1SIM" and s.duration == 60 for s in spans)
    assert all(b.gps_start == a.gps_end for a, b in itertools.pairwise(spans))
    data = TimeSeriesDict.read(str(files[0]), [c.name for c in VIRGO_SCENARIO.channels])
    for spec in VIRGO_SCENARIO.channels:
        assert data[spec.name].sample_rate.value == spec.sample_rate
        assert np.isfinite(data[spec.name].value).all()


def test_strain_noise_follows_the_virgo_psd(sim_frames):
    spec = VIRGO_SCENARIO.channel(VIRGO_SCENARIO.strain)
    strain = TimeSeries.read([str(f) for f in _frames(sim_frames)[:4]], spec.name)
    freqs, measured = welch(strain.value, fs=spec.sample_rate, nperseg=4 * spec.sample_rate)
    band = (freqs >= 20) & (freqs <= 2000)
    ratio = measured[band] / spec.psd(freqs)[band]
    assert 0.85 < np.median(ratio) < 1.15
    assert np.percentile(ratio, 5) > 0.5 and np.percentile(ratio, 95) < 2.0


def test_the_line_channel_has_its_50hz_line(sim_frames):
    spec = VIRGO_SCENARIO.channel("V1:ENV_CEB_UPS_CURR_R")
    data = TimeSeries.read(str(_frames(sim_frames)[0]), spec.name).value
    freqs, psd = welch(data, fs=spec.sample_rate, nperseg=4 * spec.sample_rate)
    at = lambda f: psd[np.argmin(abs(freqs - f))]  # noqa: E731
    assert at(50) > 100 * np.median(psd) and at(150) > 10 * np.median(psd)


def test_ground_truth_round_trips_through_gwf(sim_frames):
    """Frame data minus the (deterministic) background is exactly the glitches the truth table lists."""
    truth = load_truth(sim_frames)
    renderers = {r.spec.name: r for r in make_renderers(VIRGO_SCENARIO, SIM_SEED)}
    checked = 0
    for path in _frames(sim_frames)[1:4]:
        frame = parse_frame_name(path)
        rows = truth[(truth.gps + truth.half_length > frame.gps_start) & (truth.gps - truth.half_length < frame.gps_end)]
        planned = plan_glitches(VIRGO_SCENARIO, SIM_SEED, frame.gps_start, frame.gps_end)
        listed = [g for g in planned if (g.event_id, g.channel) in set(zip(rows.event_id, rows.channel, strict=True))]
        for channel in (VIRGO_SCENARIO.strain, "V1:LSC_DARM_ERR", "V1:SDB2_B1_PD1", "V1:ENV_CEB_MIC_V"):
            r = renderers[channel]
            fs = r.spec.sample_rate
            data = TimeSeries.read(str(path), channel).value
            residual = data - r.background(frame.gps_start * fs, frame.duration * fs)
            expected = r.glitches(frame.gps_start * fs, frame.duration * fs, listed)
            scale = max(np.abs(expected).max(), r.rms)
            np.testing.assert_allclose(residual, expected, atol=1e-5 * scale)  # aux channels are float32
            for g in listed:
                if g.channel == channel and frame.gps_start + 0.1 < g.gps < frame.gps_end - 0.1 and g.snr >= 10:
                    t = frame.gps_start + np.argmax(np.abs(residual)) / fs
                    checked += abs(t - g.gps) <= g.half_length
    assert checked >= 2


def test_injected_snr_is_what_a_whitened_search_recovers(sim_frames):
    """Median recovered/injected SNR of loud short glitches (whitened excess energy) is ~1."""
    truth = load_truth(sim_frames)
    ratios = []
    for channel in (VIRGO_SCENARIO.strain, "V1:LSC_DARM_ERR", "V1:ENV_CEB_MIC_V"):
        series = TimeSeries.read([str(f) for f in _frames(sim_frames)], channel).whiten(fftlength=4, overlap=2)
        x, fs, t0 = series.value, series.sample_rate.value, series.t0.value
        rows = truth[(truth.channel == channel) & (truth.snr >= 12) & (truth.half_length <= 0.3)]
        for _, r in rows.iterrows():
            i0, i1 = int((r.gps - r.half_length - t0) * fs), int((r.gps + r.half_length + 0.02 - t0) * fs)
            if 8 * fs < i0 and i1 < len(x) - 8 * fs:
                seg = x[i0:i1]
                ratios.append(np.sqrt(max(float((seg**2).sum()) - seg.size, 0.0)) / r.snr)
    assert len(ratios) >= 8
    assert 0.8 < np.median(ratios) < 1.25


def test_witnesses_see_the_strain_glitch_and_self_glitches_stay_local(sim_frames):
    truth = load_truth(sim_frames)
    strain_events = set(truth[truth.role == "strain"].event_id)
    witness_rows = truth[truth.role == "witness"]
    assert set(witness_rows.event_id) <= strain_events
    assert set(truth[truth.role == "self"].event_id).isdisjoint(strain_events)
    roles = VIRGO_SCENARIO.roles()
    assert {roles[c] for c in witness_rows.channel} == {"witness"}
    assert {roles[c] for c in truth[truth.role == "self"].channel} == {"self_glitching"}
    # coupling: the strain sees each event delay_s after its witnesses
    for _event_id, rows in truth[truth.event_id.isin(strain_events)].groupby("event_id"):
        strain = rows[rows.role == "strain"].iloc[0]
        for _, w in rows[rows.role == "witness"].iterrows():
            assert strain.gps - w.gps == pytest.approx(strain.delay_s, abs=1e-6)  # GPS float64 ulp ~2e-7 s


def test_glitch_population_over_six_hours():
    start = 1400000118
    rows = [g for g in plan_glitches(VIRGO_SCENARIO, SIM_SEED, start, start + 6 * 3600) if start <= g.gps < start + 6 * 3600]
    strain = [g for g in rows if g.role == "strain"]
    assert 0.85 < len(strain) / 360 < 1.15  # ~1 per minute
    # the random process keeps glitches apart; scripted ones (SIM's GW170817 blip) are placed on top of it, wherever asked
    random = [g for g in strain if "-x" not in g.event_id]
    assert len(strain) - len(random) == len(VIRGO_SCENARIO.scripted)
    gaps = np.diff([g.gps for g in random])
    assert gaps.min() >= VIRGO_SCENARIO.min_separation_s - VIRGO_SCENARIO.morphologies[0].delay_s - 0.011
    counts = {m.name: sum(g.morphology == m.name for g in strain) for m in VIRGO_SCENARIO.morphologies}
    for m in VIRGO_SCENARIO.morphologies:
        assert counts[m.name] / len(strain) == pytest.approx(m.weight, abs=0.08)
    assert all(g.snr >= VIRGO_SCENARIO.snr_min for g in strain)
    darm = {g.event_id for g in rows if g.channel == "V1:LSC_DARM_ERR"}
    assert darm == {g.event_id for g in strain}  # DARM witnesses every glitch


def test_same_seed_same_data_and_extension_is_seamless(tmp_path):
    one, two, other = tmp_path / "one", tmp_path / "two", tmp_path / "other"
    simulate(one, 1400000118, 120, frame_length=60, seed=3)
    simulate(two, 1400000118, 60, frame_length=60, seed=3)
    simulate(two, 1400000178, 60, frame_length=60, seed=3)  # continue later
    simulate(other, 1400000118, 60, frame_length=60, seed=4)
    channels = [c.name for c in VIRGO_SCENARIO.channels]
    for a, b in zip(_frames(one), _frames(two), strict=True):
        assert a.name == b.name
        da, db = TimeSeriesDict.read(str(a), channels), TimeSeriesDict.read(str(b), channels)
        for c in channels:
            np.testing.assert_array_equal(da[c].value, db[c].value)
    first = TimeSeries.read(str(_frames(one)[0]), VIRGO_SCENARIO.strain).value
    assert not np.array_equal(first, TimeSeries.read(str(_frames(other)[0]), VIRGO_SCENARIO.strain).value)
    assert load_truth(one).equals(load_truth(two))


def test_rerun_keeps_existing_frames(tmp_path):
    first = simulate(tmp_path, 1400000118, 60, frame_length=60, seed=1)
    mtime = first.frames[0].stat().st_mtime_ns
    again = simulate(tmp_path, 1400000118, 120, frame_length=60, seed=1)
    assert first.frames[0].stat().st_mtime_ns == mtime and len(again.frames) == 2
    assert not list(tmp_path.glob(".*tmp*"))


def test_locks_make_acquisitions_glitchier_and_keep_every_other_glitch():
    """With locks (core/sim/locks.py): the random glitches are those of the scenario without them, and the extra ones
    lie in the minutes after each lock acquisition only, about ``acquisition_rate_factor - 1`` times the base rate."""
    start = 1400000118
    locked = with_locks(VIRGO_SCENARIO, start, first_lock_s=600, unlock_s=(300, 300), lock_s=(7200, 7200))
    base = plan_glitches(VIRGO_SCENARIO, 3, start, start + 3600)
    with_acq = plan_glitches(locked, 3, start, start + 3600)
    extra = [g for g in with_acq if g not in base]
    assert set(base) <= set(with_acq) and all("-a" in g.event_id for g in extra)
    acquired = start + 900  # 600 s locked, 300 s unlocked
    strain = [g for g in extra if g.role == "strain"]
    assert all(acquired <= g.gps - g.delay_s < acquired + locked.locks.acquisition_s for g in strain)
    assert 15 <= len(strain) <= 45  # 3 more a minute for 10 minutes


def test_locked_frames_hold_the_state_vector_and_a_loud_strain_while_unlocked(tmp_path):
    start = 1400000118
    scenario = with_locks(VIRGO_SCENARIO, start, first_lock_s=30, unlock_s=(60, 60), lock_s=(7200, 7200))
    (frame,) = simulate(tmp_path, start, 60, frame_length=60, seed=1, scenario=scenario).frames
    data = TimeSeriesDict.read(str(frame), ["V1:DQ_ANALYSIS_STATE_VECTOR", VIRGO_SCENARIO.strain])
    bits = data["V1:DQ_ANALYSIS_STATE_VECTOR"]
    assert bits.sample_rate.value == 16 and set(bits.value[: 30 * 16]) == {7} and set(bits.value[30 * 16 :]) == {0}
    strain = data[VIRGO_SCENARIO.strain].value
    assert strain[-16384 * 20 :].std() > 20 * strain[: 16384 * 20].std()
