"""Measuring what cleaning does to known signals (core/twin/safety.py) and to each glitch class (core/twin/coverage.py),
without Dagster: each measure is shown rejecting a cleaning that harms a signal, or a twin that predicts nothing."""

import numpy as np
import pandas as pd
import pytest

from glitchflow_assets.core.sim import VIRGO_SCENARIO
from glitchflow_assets.core.sim.noise import NoiseStream
from glitchflow_assets.core.sim.signals import Signal
from glitchflow_assets.core.twin.coverage import coverage_lines, wilson, witness_coverage
from glitchflow_assets.core.twin.safety import StrainVersions, burst_excess_power_snr, safety_summary, signal_in_strain, signal_recovery
from glitchflow_assets.core.twin.scoring import fitted_amplitude

RATE, NATIVE = 4096, 16384
STRAIN = VIRGO_SCENARIO.channel(VIRGO_SCENARIO.strain)
T0, SECONDS = 1000.0, 40


def _versions(signals: list[Signal], take: dict[int, float]) -> StrainVersions:
    """Noise of the strain PSD plus ``signals`` over 40 s; the cleaned version subtracts ``take[i]`` of signal ``i``
    (what a cleaning that leaks signal into its prediction does), and nothing else. No glitch: truth = original."""
    n = SECONDS * RATE
    noise = NoiseStream(STRAIN.psd, RATE, 3, 0).samples(round(T0 * RATE), n)
    waves = [signal_in_strain(s, T0, n, RATE, NATIVE, STRAIN.psd) for s in signals]
    original = noise + sum(waves)
    synthetic = sum((take.get(i, 0.0) * w for i, w in enumerate(waves)), np.zeros(n))
    return StrainVersions(T0, RATE, original, original - synthetic, original, synthetic, synthetic_without_signals=np.zeros(n))


NO_GLITCH = pd.DataFrame({"gps": [], "half_length": []})
SIGNALS = [Signal("bbh", T0 + 20.0, 15.0, 30.0, 25.0), Signal("burst", T0 + 30.0, 20.0, frequency=120.0, q=8.0)]


def test_a_signal_is_measured_at_its_snr_and_a_cleaning_that_takes_part_of_it_is_caught():
    kept = signal_recovery(SIGNALS, _versions(SIGNALS, {}), NATIVE, STRAIN.psd, NO_GLITCH)
    assert list(kept.kind) == ["bbh", "burst"] and not kept.on_glitch.any() and not kept.touched.any()
    assert kept.snr_original.to_numpy() == pytest.approx(kept.snr.to_numpy(), abs=3.0)  # optimal SNR + unit-normal noise
    assert (kept.snr_cleaned == kept.snr_original).all()
    assert kept.ep_original.iloc[1] == pytest.approx(20.0, rel=0.2)  # a burst search's excess power sees it too
    assert safety_summary(kept)["off_glitch_within_1pc"] == 1.0 and safety_summary(kept)["bursts_subtracted"] == 0
    # 3 % of the chirp and all of the burst taken: both seen, and the goals fail
    harmed = signal_recovery(SIGNALS, _versions(SIGNALS, {0: 0.03, 1: 1.0}), NATIVE, STRAIN.psd, NO_GLITCH)
    assert harmed.snr_cleaned.iloc[0] == pytest.approx(harmed.snr_original.iloc[0] - 0.03 * SIGNALS[0].snr, abs=0.05)
    assert harmed.snr_taken_by_fit.iloc[0] == pytest.approx(0.03 * SIGNALS[0].snr, abs=0.05) and kept.snr_taken_by_fit.eq(0).all()
    assert abs(harmed.snr_cleaned.iloc[1]) < 3 and harmed.ep_cleaned.iloc[1] < 5 and harmed.touched.all()
    summary = safety_summary(harmed)
    assert summary["off_glitch_within_1pc"] == 0.0 and summary["bursts_subtracted"] == 1


def test_excess_power_is_zero_mean_without_a_burst():
    signal = Signal("burst", 10.0, 0.0, frequency=200.0, q=6.0)
    psd = STRAIN.psd(np.fft.rfftfreq(20 * RATE, 1.0 / RATE))
    snrs = [
        burst_excess_power_snr(NoiseStream(STRAIN.psd, RATE, s, 0).samples(1000 * RATE, 20 * RATE), RATE, psd, signal, 10.0)
        for s in range(20)
    ]
    assert np.median(snrs) < 3.0  # noise alone: E - dof scatters around 0 (clipped at 0)


def test_a_signal_on_a_glitch_is_judged_against_the_truth():
    """On a glitch the cleaned strain must hold what the glitch-free truth holds; a glitch left in is caught."""
    v = _versions(SIGNALS[:1], {})
    chirp = signal_in_strain(SIGNALS[0], T0, v.original.size, RATE, NATIVE, STRAIN.psd)
    merger = round((SIGNALS[0].gps - T0) * RATE)
    glitch = np.zeros_like(chirp)  # a glitch on the merger's last quarter second, in band with it
    glitch[merger - RATE // 4 : merger] = 0.5 * chirp[merger - RATE // 4 : merger]
    left_in = StrainVersions(T0, RATE, v.original + glitch, v.original + glitch, v.original, np.zeros_like(glitch))
    removed = StrainVersions(T0, RATE, v.original + glitch, v.original, v.original, glitch)
    for versions, within in ((left_in, 0.0), (removed, 1.0)):
        table = signal_recovery(SIGNALS[:1], versions, NATIVE, STRAIN.psd, pd.DataFrame({"gps": [T0 + 19.9], "half_length": [0.25]}))
        summary = safety_summary(table)
        assert table.on_glitch.all() and summary["on_glitch_needing_cleaning"] == 1 and summary["on_glitch_within_5pc"] == within


def test_coverage_per_class_reports_a_family_without_witness_as_not_witnessed():
    rng = np.random.default_rng(0)
    n = 60
    events = pd.DataFrame(
        {
            "class": np.repeat(["blip", "tomte", "koi_fish"], n),
            "snr": rng.uniform(5, 40, 3 * n),
            "predicted": np.r_[np.ones(n, bool), np.zeros(n, bool), rng.random(n) < 0.5],
            "witnessed": np.r_[np.ones(n, bool), np.zeros(n, bool), np.ones(n, bool)],
        }
    )
    events["removed"] = events.predicted & (rng.random(3 * n) < 0.8)
    table = witness_coverage(events).set_index("class")
    loud = events[events.snr >= 8]
    assert table.loc["all", "glitches"] == len(loud) and table.loc["blip", "predicted_fraction"] == 1.0
    assert table.loc["tomte", "status"] == "not witnessed" and table.loc["blip", "status"] == table.loc["koi_fish", "status"] == "witnessed"
    koi = loud[loud["class"] == "koi_fish"]
    assert table.loc["koi_fish", "removed_fraction"] == pytest.approx(koi.removed.mean())
    low, high = table.loc["koi_fish", "predicted_95"]
    assert low < koi.predicted.mean() < high and high - low < 0.4
    assert any(line.startswith("tomte:") and "not witnessed" in line for line in coverage_lines(witness_coverage(events)))
    # without the truth of who saw what, a class the twin never predicts for is reported as not witnessed
    unknown = witness_coverage(events.assign(witnessed=pd.NA)).set_index("class")
    assert unknown.loc["tomte", "status"] == "not witnessed" and unknown.loc["koi_fish", "status"] == "witnessed"


def test_the_wilson_interval():
    assert wilson(0, 0) != wilson(0, 0)  # nan: no trials, no share
    low, high = wilson(10, 10)
    assert high == pytest.approx(1.0) and 0.6 < low < 0.8
    low, high = wilson(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-3) and high == pytest.approx(0.5962, abs=1e-3)


def test_the_amplitude_fit_subtracts_only_what_the_strain_confirms():
    """The fit of the twin's amplitude on the strain is where a signal could leak into cleaning: a prediction made of
    witness noise is never subtracted, a signal no witness sees is never subtracted, a witnessed glitch is."""
    rng = np.random.default_rng(1)
    events, n = 300, 4096
    predictions = rng.normal(size=(events, n))
    predictions *= 10.0 / np.linalg.norm(predictions, axis=-1, keepdims=True)  # witness noise through the twin: SNR 10
    noise, gate = rng.normal(size=(events, n)), np.ones(n)
    t = (np.arange(n) - n / 2) / RATE
    burst = np.cos(2 * np.pi * 150 * t) * np.exp(-((t / 0.02) ** 2))
    burst *= 20.0 / np.linalg.norm(burst)  # whitened SNR 20, in the strain alone
    for strain in (noise, noise + burst):
        assert (fitted_amplitude(predictions, strain, gate) == 0).mean() > 0.99
        # unconstrained, the least-squares fit takes a positive share of about half of them
        least_squares = np.sum(predictions * strain, axis=-1) / 100.0
        assert 0.3 < (least_squares > 0).mean() < 0.7
    glitch = fitted_amplitude(predictions, noise + 0.8 * predictions, gate)  # the glitch as predicted, 0.8 of its scale
    assert (glitch > 0).all() and np.abs(glitch - 0.8).max() < 0.5
