"""hveto's own rounds on our triggers (core/signal/hveto_rounds.py), on 5 minutes of SIM with distractor channels."""

import dataclasses

import pytest
from astropy.table import vstack

from glitchflow_assets.core.artifacts.raw_strain_segments import read_strain
from glitchflow_assets.core.ingest.assemble import ingest_window
from glitchflow_assets.core.runs.registry import load_registry
from glitchflow_assets.core.runs.windows import windows_overlapping
from glitchflow_assets.core.signal.events import EventSearchConfig, window_events
from glitchflow_assets.core.signal.hveto_rounds import (
    HvetoConfig,
    NoTriggers,
    channel_search_config,
    hveto_rounds,
    trigger_table,
    window_triggers,
)
from glitchflow_assets.core.sim import VIRGO_SCENARIO, simulate, with_extra_channels
from glitchflow_assets_tests.conftest import sim_run

MINUTES = 5  # one window: ~20 strain glitches, enough for a significant first round
SCENARIO = with_extra_channels(dataclasses.replace(VIRGO_SCENARIO, glitch_rate_per_min=4.0), 4, seed=3, rates=(256, 512))
WITNESSES = {c for m in SCENARIO.morphologies for c, _ in m.witnesses}


@pytest.fixture(scope="module")
def triggers(tmp_path_factory):
    """Strain triggers (glitch_events' search), every auxiliary channel's triggers and the searched segments."""
    root = tmp_path_factory.mktemp("hveto")
    start = load_registry()["SIM"].gps_start
    simulate(root / "frames", start - 60, MINUTES * 60 + 120, seed=5, scenario=SCENARIO)
    run = sim_run(root / "frames")
    primary, auxiliary, searched = [], {}, []
    for window in windows_overlapping(start, start + MINUTES * 60, run.cadence):
        summary = ingest_window(run, window, root / f"{window.gps_start}.h5")
        strain, t0 = read_strain(summary.path)
        events, segments = window_events(strain, t0, summary.sample_rate, summary.strain.segments, summary.window_span)
        primary.append(trigger_table(events, run.strain_channel))
        searched += segments
        for channel, table in window_triggers(summary).items():
            auxiliary.setdefault(channel, []).append(table)
    return vstack(primary), {c: vstack(t) for c, t in auxiliary.items()}, searched


def test_first_winner_is_a_true_witness_and_no_distractor_ever_wins(triggers):
    primary, auxiliary, searched = triggers
    assert len(auxiliary) == len(SCENARIO.channels) - 1 and any(c.startswith("V1:SIMX_") and len(t) for c, t in auxiliary.items())
    for config in (HvetoConfig(), HvetoConfig(unsafe=("V1:LSC_DARM_ERR",))):
        result = hveto_rounds(primary, auxiliary, searched, config)
        print("\n" + result.table().to_string() + "\n" + result.stop)
        assert result.rounds, result.stop
        assert result.rounds[0].channel in WITNESSES
        assert {r.channel for r in result.rounds} <= WITNESSES  # no SIMX_*, line, driver or self-glitching channel
        assert not set(config.unsafe) & {r.channel for r in result.rounds}
        assert result.rounds[-1].remaining == result.primary - sum(r.vetoed for r in result.rounds)
        assert result.rounds[0].efficiency == pytest.approx(100 * result.rounds[0].vetoed / result.primary)
        assert result.rounds[0].significance >= config.minimum_significance and result.rounds[0].coincident >= 5
        assert "< 5" in result.stop or "left to veto" in result.stop


def test_no_triggers_means_no_rounds_with_a_clear_message(triggers):
    primary, auxiliary, searched = triggers
    with pytest.raises(NoTriggers, match=r"no strain triggers at SNR >= 1000 in 300 s of livetime"):
        hveto_rounds(primary, auxiliary, searched, HvetoConfig(primary_snr=1000))
    with pytest.raises(NoTriggers, match=r"none of the 14 auxiliary channels has triggers .*unsafe, left out: V1:ASC_NE_TX_CORR"):
        hveto_rounds(primary, auxiliary, searched, HvetoConfig(unsafe=tuple(auxiliary)))


def test_a_channel_is_searched_only_in_the_band_its_rate_holds():
    config = EventSearchConfig()
    assert channel_search_config(1024, 16384, config).frange == (10.0, pytest.approx(512 / 1.8292, rel=1e-3))
    assert channel_search_config(1024, 256, config).frange[1] == pytest.approx(0.95 * 128 / 1.8292, rel=1e-3)  # below its Nyquist
    assert channel_search_config(1024, 32, config) is None  # nothing of 10-1024 Hz left
