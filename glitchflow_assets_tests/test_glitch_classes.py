"""Glitch classes, one vocabulary from the event list to the evaluations: an event's list label first, the simulated
morphology (in Gravity Spy's names) where the list gave none, and per-class numbers that count each event once."""

import numpy as np
import pandas as pd
import pytest

from glitchflow_assets.core.io.gravityspy import GRAVITY_SPY_CLASSES, SIM_CLASSES
from glitchflow_assets.core.ml.evaluation import PER_CLASS, Report
from glitchflow_assets.core.ml.scoring import headline
from glitchflow_assets.core.signal.glitch_classes import UNLABELLED, event_classes, shown
from glitchflow_assets.core.sim import load_truth
from glitchflow_assets.core.twin.scoring import WaveformScores, per_class


def test_sim_morphologies_are_gravity_spy_classes():
    assert set(SIM_CLASSES.values()) <= GRAVITY_SPY_CLASSES


def test_a_list_label_wins_and_the_simulation_names_the_rest(sim_frames, tmp_path):
    truth = load_truth(sim_frames)
    strain = truth[truth.role == "strain"].sort_values("gps").iloc[:6]
    every = np.sort(truth[truth.role == "strain"].gps.to_numpy())
    quiet = float(every[np.argmax(np.diff(every))] + np.diff(every).max() / 2)  # the middle of the longest quiet stretch
    events = pd.DataFrame({"gps": [*strain.gps, quiet], "label": ["Koi_Fish", *[""] * 5, ""]})
    classes = event_classes(events, sim_frames)
    assert classes[0] == "Koi_Fish"  # the list's label, whatever the simulation says
    assert classes[1:6].tolist() == [SIM_CLASSES[m] for m in strain.morphology.iloc[1:]]
    assert classes[6] == ""  # no simulated glitch within 0.1 s: no class
    # real frames (no truth) and a search without labels: nothing is invented
    assert event_classes(events, tmp_path).tolist() == ["Koi_Fish", *[""] * 6]
    assert event_classes(events[["gps"]], tmp_path).tolist() == [""] * 7
    assert shown(np.array(["Blip", ""])).tolist() == ["Blip", UNLABELLED]


def _tiles(rng, classes_per_event: list[str], tiles_per_event: int = 4) -> pd.DataFrame:
    """Per-tile scores of one generator: each event's tiles alternate glitch/background."""
    n = len(classes_per_event) * tiles_per_event
    label = np.tile(np.arange(tiles_per_event) % 2, len(classes_per_event))
    real = np.where(label == 1, rng.uniform(50, 200, n), rng.uniform(5, 20, n))
    return pd.DataFrame(
        {
            "generator": "model",
            "event_gps": np.repeat(1e9 + 10.0 * np.arange(len(classes_per_event)), tiles_per_event),
            "event_class": np.repeat(classes_per_event, tiles_per_event),
            "label": label,
            "generated_max": real * rng.uniform(0.5, 1.5, n),
            "real_max": real,
            "peak_distance_time_bins": rng.integers(0, 5, n),
            "peak_distance_freq_rows": rng.integers(0, 5, n),
            "log_correlation": rng.uniform(0, 1, n),
            "l1": rng.uniform(0, 1, n),
            "ssim": rng.uniform(0, 1, n),
        }
    )


def test_model_evaluation_per_class_counts_each_event_once():
    rng = np.random.default_rng(1)
    classes = ["Blip"] * 7 + ["Scattered_Light"] * 5 + [""] * 3
    tiles = _tiles(rng, classes)
    report = Report("test", tiles, {"model": 40.0})
    table = report.per_class().set_index("class")
    assert table.events.to_dict() == {"Blip": 7, "Scattered_Light": 5, UNLABELLED: 3, "all": 15}
    assert (table.glitch_events == table.events).all() and (table.tiles == 4 * table.events).all()
    for name, raw in [("Blip", "Blip"), (UNLABELLED, ""), ("all", None)]:
        mine = tiles if raw is None else tiles[tiles.event_class == raw]
        expected = headline(mine, 40.0)
        for k in PER_CLASS:
            assert table.loc[name, k] == pytest.approx(expected[k])
            assert table.loc[name, f"{k}_low"] <= table.loc[name, k] <= table.loc[name, f"{k}_high"]
    assert Report("test", _tiles(rng, [""] * 5), {"model": 40.0}).per_class().empty  # no classes: no table


def test_twin_scores_per_class():
    rng = np.random.default_rng(2)
    truth = rng.normal(0, 1, (9, 256)) * 3
    scores = WaveformScores.of(truth + rng.normal(0, 0.3, truth.shape), truth + rng.normal(0, 1, truth.shape), np.ones_like(truth), truth)
    classes = np.array(["Blip"] * 4 + ["Tomte"] * 3 + [""] * 2)
    table = per_class(scores.table, classes).set_index("class")
    assert table.events.to_dict() == {"Blip": 4, "Tomte": 3, UNLABELLED: 2, "all": 9}
    blip = WaveformScores(scores.table.iloc[:4]).summary()
    assert table.loc["Blip", "median_mismatch"] == pytest.approx(blip["median_mismatch"], abs=1e-4)
    assert per_class(scores.table, np.full(9, "")).empty
