"""Glitch events and ANNALISA against the simulator's ground truth, on 30 minutes of SIM (6 windows), and ANNALISA
among a hundred distractor channels."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from glitchflow_assets.core.artifacts.raw_strain_segments import read_strain, read_summary
from glitchflow_assets.core.ingest.assemble import ingest_window
from glitchflow_assets.core.runs.registry import load_registry
from glitchflow_assets.core.runs.windows import windows_overlapping
from glitchflow_assets.core.signal.annalisa import AnnalisaConfig, channel_table, score_window_file
from glitchflow_assets.core.signal.events import find_events
from glitchflow_assets.core.sim import VIRGO_SCENARIO, load_truth, simulate
from glitchflow_assets.core.sim.scenario import with_extra_channels
from glitchflow_assets_tests.conftest import sim_run

MINUTES = 30


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    """Simulate, ingest and search 30 minutes of SIM once: (truth, [(summary, events, searched)])."""
    root = tmp_path_factory.mktemp("truth")
    start = load_registry()["SIM"].gps_start
    simulate(root / "frames", start - 60, MINUTES * 60 + 120, seed=11)
    run = sim_run(root / "frames")
    out = []
    for window in windows_overlapping(start, start + MINUTES * 60, run.cadence):
        summary = ingest_window(run, window, root / f"{window.gps_start}.h5")
        strain, t0 = read_strain(summary.path)
        events, searched = find_events(strain, t0, run.sample_rate, summary.strain.segments)
        out.append((read_summary(summary.path), events, searched))
    return load_truth(root / "frames"), out


def _inside(gps, segments):
    return any(s <= gps < e for s, e in segments)


def test_glitch_events_recall_and_false_rate(analysed):
    truth, windows = analysed
    strain = truth[truth.role == "strain"]
    events = pd.concat([w[1] for w in windows])
    searched = [s for w in windows for s in w[2]]
    loud = strain[(strain.snr >= 8) & strain.gps.map(lambda g: _inside(g, searched))]
    found = [((events.start - 0.1 <= g) & (events.end + 0.1 >= g)).any() for g in loud.gps]
    recall = float(np.mean(found))
    near_truth = [((strain.gps - strain.half_length - 0.2 <= g) & (strain.gps + strain.half_length + 0.2 >= g)).any() for g in events.gps]
    livetime = sum(e - s for s, e in searched)
    false_per_hour = (len(events) - sum(near_truth)) / livetime * 3600
    print(f"\nrecall(SNR>=8) = {recall:.3f} over {len(loud)} glitches; false events {false_per_hour:.1f}/h over {livetime:.0f} s")
    assert len(loud) >= 15
    assert recall >= 0.95
    assert false_per_hour < 20  # measured 9.7/h here (seed 11) with time-frequency clustering, at event SNR >= 5.5


def test_event_times_and_frequencies_match_the_truth(analysed):
    truth, windows = analysed
    strain = truth[(truth.role == "strain") & (truth.snr >= 12) & (truth.morphology != "scattered_light")]
    events = pd.concat([w[1] for w in windows])
    checked = 0
    for _, g in strain.iterrows():
        match = events[(events.start - 0.1 <= g.gps) & (events.end + 0.1 >= g.gps)]
        if len(match):
            best = match.loc[match.snr.idxmax()]
            assert abs(best.gps - g.gps) < max(0.1, g.half_length)
            assert 0.5 * g.frequency < best.frequency < 2.0 * g.frequency
            checked += 1
    assert checked >= 5


def test_annalisa_selects_exactly_the_true_witnesses(analysed):
    truth, windows = analysed
    config = load_registry()["SIM"].annalisa_config()
    scores = [score_window_file(s, events.gps.to_numpy(), config) for s, events, _ in windows]
    table = channel_table(scores, config).set_index("channel")
    print("\n" + table.to_string())
    roles = VIRGO_SCENARIO.roles()
    witnesses = {c for c, r in roles.items() if r == "witness"}
    assert set(table.index[table.selected]) == witnesses
    for role in ("driver", "self_glitching", "line", "quiet"):
        for channel in (c for c, r in roles.items() if r == role):
            assert table.loc[channel, "significance"] < config.significance_threshold, channel


# Two glitch families with disjoint witnesses and weak couplings (a witness sees a glitch at 0.8-3x its strain SNR),
# among the ten SIM channels (now distractors but for the two witnesses) and 100 more: noise, lines, channels that
# glitch often, or rarely at random times (slow ones, to keep the test short). Four glitches a minute.
BLIP, _, BURST = VIRGO_SCENARIO.morphologies
TWO_FAMILIES = dataclasses.replace(
    with_extra_channels(VIRGO_SCENARIO, 100, seed=5, rates=(256, 512)),
    morphologies=(
        dataclasses.replace(BLIP, weight=0.5, witnesses=(("V1:LSC_MICH_ERR", 1.0),)),
        dataclasses.replace(BURST, weight=0.5, witnesses=(("V1:ENV_NEB_MAG_N", 1.0),)),
    ),
    witness_gain_range=(0.8, 3.0),
    glitch_rate_per_min=4.0,
)


@pytest.mark.parametrize("annalisa", [{}, None], ids=["a new run's defaults", "SIM's settings"])
def test_annalisa_selects_exactly_two_families_witnesses_among_a_hundred_distractors(tmp_path, annalisa):
    """The trials-corrected significance keeps each family's witness however the other family dilutes its mean
    corr, and none of the 108 distractors."""
    start = load_registry()["SIM"].gps_start
    simulate(tmp_path / "frames", start, 600, seed=11, scenario=TWO_FAMILIES)
    sim = load_registry()["SIM"]
    run = sim_run(tmp_path / "frames", annalisa=sim.annalisa if annalisa is None else {})  # SIM's channels pick up SIMX_*
    config = run.annalisa_config()
    scores = []
    for window in windows_overlapping(start, start + 600, run.cadence):
        summary = ingest_window(run, window, tmp_path / f"{window.gps_start}.h5")
        strain, t0 = read_strain(summary.path)
        events, _ = find_events(strain, t0, run.sample_rate, summary.strain.segments)
        scores.append(score_window_file(summary, events.gps.to_numpy(), config))
    table = channel_table(scores, config)
    print("\n" + table.head(6).to_string())
    assert len(table) == 110 and table.n_events.min() >= 25
    assert set(table.channel[table.selected]) == {"V1:LSC_MICH_ERR", "V1:ENV_NEB_MAG_N"}
    if annalisa == {}:  # the original's rule, the default before: the blips' witness falls below its mean corr threshold
        original = AnnalisaConfig(selection="corr_iou")
        kept = set(table.channel[(table.mean_corr > original.corr_threshold) & (table.mean_iou > original.iou_threshold)])
        assert "V1:LSC_MICH_ERR" not in kept, table.head(3)
