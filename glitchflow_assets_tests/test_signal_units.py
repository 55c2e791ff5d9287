"""Event finding and ANNALISA on small synthetic inputs (fast)."""

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import poisson

from glitchflow_assets.core.artifacts.raw_strain_segments import ScanBlock
from glitchflow_assets.core.runs.registry import load_registry
from glitchflow_assets.core.signal.annalisa import AnnalisaConfig, WindowScores, channel_table, coincidence_counts, peak_mask, score_window
from glitchflow_assets.core.signal.events import cluster_tiles, find_events
from glitchflow_assets.core.sim.waveforms import sine_gaussian

RATE = 4096


def _white_noise(seconds, seed=0, channels=1):
    return np.random.default_rng(seed).standard_normal((channels, int(seconds * RATE)))


def _inject(x, t0, gps, f0, q, snr):
    """Add a sine-Gaussian of optimal SNR ``snr`` in unit white noise (PSD 2/RATE) at GPS ``gps``."""
    t = np.arange(x.size) / RATE + t0 - gps
    wave = sine_gaussian(t, f0, q)
    x += wave * snr / np.sqrt(2.0 * np.sum(wave**2))  # white noise: snr^2 = 2 sum(h^2) for unit variance


def test_cluster_tiles_merges_in_time_and_frequency_and_keeps_the_loudest_tile():
    tiles = np.array(
        [
            [10.00, 10.05, 100.0, 20.0, 49.0, 8.0],
            [10.04, 10.10, 120.0, 25.0, 81.0, 8.0],  # overlaps the first: same event, louder
            [10.15, 10.20, 130.0, 50.0, 36.0, 16.0],  # 0.05 s later, overlapping band: joins (cluster_dt 0.1)
            [10.15, 10.20, 400.0, 50.0, 30.0, 16.0],  # same time, far above in frequency: its own event
            [12.00, 12.10, 40.0, 10.0, 30.0, 4.0],  # far away in time: its own event
        ]
    )
    events = cluster_tiles(tiles, cluster_dt=0.1)
    assert len(events) == 3
    first = events.iloc[0]
    assert first.snr == pytest.approx(9.0) and first.frequency == 120.0 and first.n_tiles == 3
    assert (first.start, first.end) == (10.0, 10.2)
    assert first.fmin == pytest.approx(100 - 10) and first.fmax == pytest.approx(130 + 25)
    assert sorted(events.frequency) == [40.0, 120.0, 400.0]


def test_cluster_tiles_keeps_two_peaks_apart_where_a_weak_long_tile_bridges_them():
    tiles = np.array(
        [
            [10.00, 10.04, 100.0, 40.0, 900.0, 4.0],  # glitch A, SNR 30
            [10.53, 10.57, 60.0, 30.0, 625.0, 4.0],  # glitch B 0.53 s later, SNR 25
            [9.90, 10.70, 80.0, 60.0, 30.0, 4.0],  # a weak, long low-Q tile spanning both
        ]
    )
    events = cluster_tiles(tiles, cluster_dt=0.1)
    assert events.snr.round(6).tolist() == [30.0, 25.0]  # time-only clustering made one event of SNR 30


def test_find_events_recovers_an_injection_and_stays_quiet_in_noise():
    x = _white_noise(64, seed=1)[0]
    t0 = 1000.0
    _inject(x, t0, gps=1030.0, f0=120.0, q=8.0, snr=15.0)
    events, searched = find_events(x, t0, RATE, [(t0, t0 + 64)])
    assert searched == [(t0 + 4, t0 + 60)]
    loud = events[events.snr > 8]
    assert len(loud) == 1
    event = loud.iloc[0]
    assert abs(event.gps - 1030.0) < 0.05 and 90 < event.frequency < 160 and 10 < event.snr < 20
    assert len(events) - 1 <= 2  # at most a couple of noise events in 56 s at SNR >= 5.5


def test_find_events_skips_invalid_data():
    x = _white_noise(64, seed=2)[0]
    _inject(x, 0.0, gps=40.0, f0=100.0, q=8.0, snr=30.0)
    events, searched = find_events(x, 0.0, RATE, [(0.0, 30.0)])  # the glitch lies in a gap
    assert (events.gps < 30).all() and searched == [(4.0, 26.0)]


def test_peak_masks_are_per_channel_and_two_dimensional():
    energy = torch.zeros(1, 2, 4, 5)
    energy[0, 0, 3, 4] = 30.0  # corner of channel 0
    energy[0, 1, 0, 0] = 25.0  # corner of channel 1: a flattened tensor would make these neighbours
    energy[0, 1, 2, 2] = 40.0
    energy[0, 1, 2, 3] = 39.0  # a shoulder next to a higher pixel is not a peak
    energy[0, 1, 1, 1] = 15.0  # a peak below threshold
    mask = peak_mask(energy, 20.0)
    assert torch.nonzero(mask).tolist() == [[0, 0, 3, 4], [0, 1, 0, 0], [0, 1, 2, 2]]


def test_coincidences_exact_and_with_tolerance():
    strain = torch.zeros(1, 8, 10, dtype=torch.bool)
    strain[0, 4, 5] = strain[0, 1, 1] = True
    aux = torch.zeros(1, 2, 8, 10, dtype=torch.bool)
    aux[0, 0, 4, 5] = True  # same pixel
    aux[0, 1, 5, 6] = True  # one row and one column away
    exact = coincidence_counts(strain, aux)
    assert exact["intersection"].tolist() == [[1, 0]] and exact["union"].tolist() == [[2, 3]]
    loose = coincidence_counts(strain, aux, tolerance=(1, 1))
    assert loose["intersection"].tolist() == [[1, 1]]


def _score(x, names, segments, rates, events, config=None, t0=0.0) -> WindowScores:
    """``score_window`` on ``x[channel, time]`` at RATE (row 0 the strain), its auxiliary channels in one block."""
    block = ScanBlock(names[1:], x[1:], t0, RATE, segments[1:], rates[1:])
    return score_window(x[0], t0, RATE, segments[0], [block], RATE, np.asarray(events, dtype=float), config or AnnalisaConfig())


def test_no_credit_when_the_strain_has_no_peaks():
    counts = {k: np.zeros((3, 1), dtype=int) for k in ("intersection", "strain", "aux", "union", "aux_area")}
    silent = WindowScores(["V1:QUIET"], np.array([1.0, 2.0, 3.0]), counts, np.zeros((3, 1), dtype=bool), 100)
    row = channel_table([silent]).iloc[0]
    assert row.n_events == 0 and row.mean_corr == 0 and not row.selected  # the original scored 1.0 here


def test_channels_that_come_go_and_change_rate_between_windows_are_aggregated_and_named():
    """A later window without one channel and with a new one (a pattern-listed run); a channel at another rate there."""

    def window(channels, rates, witnessed):
        counts = {k: np.full((2, len(channels)), 4, dtype=int) for k in ("strain", "union", "aux_area", "aux")}
        counts["intersection"] = np.array([[4 * w for w in witnessed]] * 2)
        return WindowScores(channels, np.array([1.0, 2.0]), counts, np.ones((2, len(channels)), dtype=bool), 100, rates)

    early = window(["GONE", "SLOWED"], [256.0, 256.0], [1, 1])
    late = window(["SLOWED", "NEW"], [128.0, 512.0], [0, 1])
    table = channel_table([early, late]).set_index("channel")
    assert list(table.index) == ["GONE", "NEW", "SLOWED"]  # by mean corr: SLOWED witnessed one window of two
    assert table.loc["GONE", "windows_scored"] == 1 and table.loc["NEW", "windows_scored"] == 1 and table.loc["GONE", "n_events"] == 2
    assert table.loc["SLOWED", "native_rate_hz"] == 256 and table.loc["SLOWED", "other_rates"] == "128 Hz in 1 window"
    assert table.loc["SLOWED", "mean_corr"] == 0.5 and table.loc["NEW", "other_rates"] == ""


def test_a_witness_is_selected_and_an_independent_channel_is_not():
    duration, t0 = 64, 0.0
    x = _white_noise(duration, seed=3, channels=4)
    times = [10.0, 20.0, 30.0, 40.0, 50.0]
    for k, gps in enumerate(times):
        _inject(x[0], t0, gps, 30.0, 8.0, 12.0)  # strain
        _inject(x[1], t0, gps - 0.005, 30.0, 8.0, 15.0)  # witness, 5 ms earlier
        _inject(x[2], t0, gps + 3.0 + 0.5 * k, 35.0, 8.0, 15.0)  # self-glitching, never at the strain's time
    segments = [[(t0, t0 + duration)]] * 4
    scores = _score(x, ["S", "WITNESS", "SELF", "QUIET"], segments, [RATE] * 4, times, t0=t0)
    table = channel_table([scores]).set_index("channel")
    assert table.loc["WITNESS", "selected"] and table.loc["WITNESS", "mean_corr"] >= 0.5
    assert not table.loc["SELF", "selected"] and not table.loc["QUIET", "selected"]
    assert table.loc["WITNESS", "significance"] > 3 > table.loc["SELF", "significance"]


def test_channels_blind_to_the_band_are_not_scored_there():
    config = AnnalisaConfig()
    x = _white_noise(16, seed=4, channels=2)
    _inject(x[0], 0.0, 8.0, 30.0, 8.0, 20.0)
    _inject(x[1], 0.0, 8.0, 30.0, 8.0, 20.0)
    seen = _score(x, ["S", "A"], [[(0.0, 16.0)]] * 2, [RATE, RATE], [8.0], config)
    blind = _score(x, ["S", "A"], [[(0.0, 16.0)]] * 2, [RATE, 32.0], [8.0], config)
    assert seen.counts["aux"][0, 0] > 0 and blind.counts["aux"][0, 0] == 0  # 32 Hz native: nothing above 15 Hz


def test_registry_annalisa_blocks_are_valid_and_bad_keys_are_named():
    for run in load_registry().values():
        AnnalisaConfig.from_mapping(run.annalisa)
    with pytest.raises(ValueError, match="unknown setting.*snr_treshold"):
        AnnalisaConfig.from_mapping({"snr_treshold": 20})
    with pytest.raises(ValueError, match="selection"):
        AnnalisaConfig.from_mapping({"selection": "vibes"})


def test_windows_without_aux_channels_or_events_score_nothing():
    x = _white_noise(16, seed=5, channels=2)
    strain_only = _score(x[:1], ["S"], [[(0.0, 16.0)]], [RATE], [8.0])
    no_events = _score(x, ["S", "A"], [[(0.0, 16.0)]] * 2, [RATE] * 2, [])
    assert strain_only.channels == [] and strain_only.scored.shape == (1, 0)
    assert no_events.channels == ["A"] and no_events.scored.shape == (0, 1)
    assert channel_table([no_events]).iloc[0].n_events == 0


def test_the_significance_carries_the_trials_factor_of_the_channels_scored():
    """The same coincidences mean less among many channels: a channel's -log10 p drops by log10 K (K channels scored)
    while p is small, so a distractor that passes alone fails among hundreds, and a true witness stays far above."""

    def table(n_distractors: int, coincidences: int, aux_area: int = 10) -> pd.DataFrame:
        channels = ["CANDIDATE", *(f"D{i}" for i in range(n_distractors))]
        counts = {k: np.full((10, len(channels)), 20, dtype=int) for k in ("strain", "union", "aux")}
        counts["aux_area"] = np.full((10, len(channels)), aux_area, dtype=int)  # 20 strain peaks x 10 / 1000 pixels: 0.2 per event
        counts["intersection"] = np.zeros((10, len(channels)), dtype=int)
        counts["intersection"][:coincidences, 0] = 1
        scored = np.ones((10, len(channels)), dtype=bool)
        window = WindowScores(channels, np.arange(10.0), counts, scored, 1000, [256.0] * len(channels))
        return channel_table([window], AnnalisaConfig(significance_threshold=3)).set_index("channel")

    alone, among = table(0, 10).loc["CANDIDATE"], table(299, 10).loc["CANDIDATE"]  # 10 coincidences where 2 are expected
    assert alone.expected == among.expected == pytest.approx(2.0)
    assert alone.significance == pytest.approx(-np.log10(poisson.sf(9, 2.0)))
    assert alone.significance - among.significance == pytest.approx(np.log10(300), abs=0.01)
    assert alone.selected and not among.selected
    witness = table(999, 10, aux_area=1).loc["CANDIDATE"]  # every event, 0.2 expected, among 1,000 channels
    assert witness.selected and witness.significance > 10
    assert table(0, 0).loc["CANDIDATE", "significance"] == 0.0


def test_a_witness_of_hundreds_of_glitches_keeps_a_finite_significance():
    """Over hours a true witness coincides hundreds of times where ~10 are expected: P(N >= n) underflows float64, and
    -log10 p must stay a finite number that grows with n (an infinite one drew no bar and broke the JSON): from the
    Poisson tail's first term, which matches scipy's tail where that is finite."""
    from glitchflow_assets.core.signal.annalisa import _significance

    assert _significance(145, 2.0, 1) == pytest.approx(-poisson.logsf(144, 2.0) / np.log(10), rel=1e-6)  # finite both ways
    values = [_significance(n, 9.857, 10) for n in (300, 417, 1000)]
    assert all(np.isfinite(values)) and values == sorted(values) and values[1] > 400


def test_scores_do_not_depend_on_how_the_channels_are_blocked():
    """ANNALISA scores a window a block of channels at a time (bounded memory): one channel per block, or all in one,
    gives the same counts."""
    x = _white_noise(32, seed=6, channels=5)
    for gps in (8.0, 16.0, 24.0):
        _inject(x[0], 0.0, gps, 30.0, 8.0, 12.0)
        _inject(x[2], 0.0, gps, 30.0, 8.0, 15.0)  # a witness at the same instant
    names, segments, rates = ["S", "A", "B", "C", "D"], [[(0.0, 32.0)]] * 5, [RATE] * 5
    config = AnnalisaConfig(time_tolerance=0.1, row_tolerance=2)  # as SIM: a peak a pixel off still coincides
    whole = _score(x, names, segments, rates, [8.0, 16.0, 24.0], config)
    singles = [ScanBlock([names[i]], x[i : i + 1], 0.0, RATE, [segments[i]], [RATE]) for i in range(1, 5)]
    blocked = score_window(x[0], 0.0, RATE, segments[0], singles, RATE, np.array([8.0, 16.0, 24.0]), config)
    assert blocked.channels == whole.channels and (blocked.scored == whole.scored).all() and whole.scored.any()
    assert all((blocked.counts[k] == whole.counts[k]).all() for k in whole.counts)
    assert whole.counts["intersection"][:, 1].tolist() == [1, 0, 1]  # B witnesses two events within the tolerance
    with pytest.raises(ValueError, match="auxiliary channels held at 64 Hz; ANNALISA's band up to 50 Hz needs 128 Hz"):
        score_window(x[0], 0.0, RATE, segments[0], singles, 64, np.array([8.0]), AnnalisaConfig())
