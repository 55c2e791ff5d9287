"""Matched filtering (core/signal/matched_filter.py) and the gravitational-wave signals injected to test cleaning's
safety (core/sim/signals.py)."""

import dataclasses

import numpy as np
import pytest

from glitchflow_assets.core.io.decoder import read_file
from glitchflow_assets.core.signal.matched_filter import inner_product, optimal_snr, recovered_snr
from glitchflow_assets.core.sim import VIRGO_SCENARIO, load_signals, simulate
from glitchflow_assets.core.sim.noise import NoiseStream
from glitchflow_assets.core.sim.signals import Signal, add_signals, draw_signals, waveform

RATE = 4096
STRAIN_PSD = next(c.psd for c in VIRGO_SCENARIO.channels if c.role == "strain")


def _psd_on(n: int) -> np.ndarray:
    return STRAIN_PSD(np.fft.rfftfreq(n, 1.0 / RATE))


@pytest.mark.parametrize(
    "signal",
    [Signal("bbh", 0.0, 12.0, 35.0, 30.0), Signal("bns", 0.0, 9.0, 1.4, 1.3), Signal("burst", 0.0, 20.0, frequency=150.0, q=9.0)],
    ids=["bbh", "bns", "burst"],
)
def test_a_signal_has_the_snr_it_was_given_and_peaks_at_its_gps(signal):
    wave, at = waveform(signal, RATE, STRAIN_PSD)
    n = 1 << int(np.ceil(np.log2(wave.size)))
    padded = np.zeros(n)
    padded[: wave.size] = wave
    assert optimal_snr(padded, RATE, _psd_on(n)) == pytest.approx(signal.snr, rel=1e-9)
    if signal.kind == "bns":
        assert 40 < wave.size / RATE < 80  # from 30 Hz
    placed = add_signals(np.zeros(120 * RATE), 1000.0, RATE, [Signal(**{**signal.__dict__, "gps": 1100.0})], STRAIN_PSD)
    assert abs(np.argmax(np.abs(placed)) - 100 * RATE) <= 0.01 * RATE  # the merger (or the burst's peak) at its GPS


def test_the_recovered_snr_is_the_optimal_snr_plus_unit_normal_noise():
    """In noise of the PSD the product is weighted by, the statistic has unit variance around 0 without the signal and
    around its optimal SNR with it: what makes 'the cleaned strain keeps the signal's SNR' a measurement."""
    n, signal = 8 * RATE, Signal("bbh", 6.0, 10.0, 30.0, 30.0)
    template = add_signals(np.zeros(n), 0.0, RATE, [signal], STRAIN_PSD)
    psd = _psd_on(n)
    noise_only, with_signal = [], []
    for seed in range(60):
        noise = NoiseStream(STRAIN_PSD, RATE, seed, 0).samples(1000 * RATE, n)  # from GPS 1000: past the colouring filter
        noise_only.append(recovered_snr(noise, template, RATE, psd))
        with_signal.append(recovered_snr(noise + template, template, RATE, psd))
    assert abs(np.mean(noise_only)) < 0.4 and 0.75 < np.std(noise_only) < 1.25
    assert np.mean(with_signal) == pytest.approx(10.0, abs=0.4) and optimal_snr(template, RATE, psd) == pytest.approx(10.0, rel=0.02)
    # a quarter of the signal taken away is a quarter of its SNR gone
    assert recovered_snr(0.75 * template, template, RATE, psd) == pytest.approx(0.75 * optimal_snr(template, RATE, psd))
    assert inner_product(template, -template, RATE, psd) == pytest.approx(-(optimal_snr(template, RATE, psd) ** 2))
    # strain as window files hold it (float32, ~1e-21): the same SNR (computed in float32 it came out 1.6 for 15)
    assert optimal_snr(template.astype(np.float32), RATE, psd) == pytest.approx(optimal_snr(template, RATE, psd), rel=1e-5)


def test_bad_shapes_and_a_zero_waveform_are_refused():
    with pytest.raises(ValueError, match="PSD of 5 bins"):
        inner_product(np.ones(8), np.ones(8), RATE, np.ones(4))
    with pytest.raises(ValueError, match="one length"):
        inner_product(np.ones(8), np.ones(6), RATE, np.ones(5))
    with pytest.raises(ValueError, match="zero"):
        recovered_snr(np.ones(8), np.zeros(8), RATE, np.ones(5))
    with pytest.raises(ValueError, match="signal kind"):
        Signal("cosmic_string", 0.0, 10.0)


def test_signals_are_drawn_from_their_seed_on_top_of_or_away_from_glitches():
    glitches = np.array([1010.0, 1100.0, 1250.0])
    on = draw_signals(3, (1000.0, 1300.0), 9, glitches, on_glitch=True)
    off = draw_signals(3, (1000.0, 1300.0), 9, glitches, on_glitch=False)
    assert on == draw_signals(3, (1000.0, 1300.0), 9, glitches, on_glitch=True)
    assert on != draw_signals(4, (1000.0, 1300.0), 9, glitches, on_glitch=True)
    assert [s.kind for s in on] == ["bbh", "bns", "burst"] * 3
    assert all(np.min(np.abs(glitches - s.gps)) <= 1.0 for s in on)
    assert all(np.min(np.abs(glitches - s.gps)) >= 4.0 and 1000 <= s.gps <= 1300 for s in off)
    assert all(8.0 <= s.snr <= 30.0 for s in on + off) and all(s.mass1 >= s.mass2 for s in on + off)


def test_a_simulated_signal_is_in_the_strain_alone_at_its_snr(tmp_path):
    """SIM with a BBH chirp: every auxiliary channel is bit for bit the run without it, the strain differs by the chirp
    alone, whose matched-filter SNR in the strain frames is its own (noise and all), and the truth lists it."""
    quiet = dataclasses.replace(VIRGO_SCENARIO, glitch_rate_per_min=0.001)  # no glitch near the chirp
    chirp = Signal("bbh", 1_400_000_100.0, 20.0, 30.0, 25.0)
    simulate(tmp_path / "with", 1_400_000_000, 180, seed=5, scenario=dataclasses.replace(quiet, signals=(chirp,)))
    simulate(tmp_path / "without", 1_400_000_000, 180, seed=5, scenario=quiet)
    name = "V-V1SIM-1400000060-60.gwf"  # the frame holding the merger
    with_chirp, without = read_file(tmp_path / "with" / name), read_file(tmp_path / "without" / name)
    for channel in with_chirp:
        if channel != VIRGO_SCENARIO.strain:
            np.testing.assert_array_equal(with_chirp[channel].data, without[channel].data)
    strain = VIRGO_SCENARIO.channel(VIRGO_SCENARIO.strain)
    rate = strain.sample_rate
    span = slice(28 * rate, 44 * rate)  # 16 s ending 4 s after the merger (at 40 s into the frame)
    data, template = with_chirp[strain.name].data[span], (with_chirp[strain.name].data - without[strain.name].data)[span]
    psd = strain.psd(np.fft.rfftfreq(template.size, 1.0 / rate))
    assert np.all((with_chirp[strain.name].data - without[strain.name].data)[: 20 * rate] == 0)  # the chirp starts after
    assert optimal_snr(template, rate, psd) == pytest.approx(20.0, rel=0.02)
    assert recovered_snr(data, template, rate, psd) == pytest.approx(20.0, abs=3.0)  # noise: unit normal
    assert abs(recovered_snr(without[strain.name].data[span], template, rate, psd)) < 4.0
    assert load_signals(tmp_path / "with") == [chirp] and load_signals(tmp_path / "without") == []


def test_events_whose_gates_overlap_are_cleaned_as_one():
    """A signal on a glitch can split the search's event in two; the witnesses see one glitch, so the twin must predict
    and subtract it once: the loudest event's row with the union of their extents. Events apart stay apart."""
    import pandas as pd

    from glitchflow_assets.core.twin.event_segments import merge_overlapping_events

    events = pd.DataFrame(
        {
            "gps": [100.000, 100.007, 130.0],
            "snr": [80.0, 9.6, 12.0],
            "start": [99.4, 99.9, 129.95],
            "end": [100.6, 100.1, 130.05],
        }
    )
    merged = merge_overlapping_events(events)
    assert merged.gps.tolist() == [100.0, 130.0] and merged.snr.tolist() == [80.0, 12.0]
    assert merged.start.tolist() == [99.4, 129.95] and merged.end.tolist() == [100.6, 130.05]
    assert merge_overlapping_events(events.iloc[[2]]).equals(events.iloc[[2]].reset_index(drop=True))
