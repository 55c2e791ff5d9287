"""Gravity Spy CSV lists: the simulator's true strain glitches written as a Gravity Spy release table, with class labels
and confidences, read back; bad lists refused naming the file, the data row and the column."""

import numpy as np
import pandas as pd
import pytest

from glitchflow_assets.core.io.gravityspy import GRAVITY_SPY_CLASSES, SIM_CLASSES, read_gravityspy
from glitchflow_assets.core.io.triggers import TriggerListError
from glitchflow_assets.core.sim.simulator import load_truth
from glitchflow_assets_tests.conftest import sim_run


def gravityspy_table(frames, seed: int = 3) -> pd.DataFrame:
    """The simulator's strain glitches as a Gravity Spy release table (O3 column names), V1 rows then one H1 row."""
    strain = load_truth(frames).query("role == 'strain'").reset_index(drop=True)
    rng = np.random.default_rng(seed)
    table = pd.DataFrame(
        {
            "event_time": strain.gps,
            "ifo": "V1",
            "peak_frequency": strain.frequency,
            "snr": strain.snr,
            "duration": 0.25,
            "bandwidth": 40.0,
            "q_value": strain.q.fillna(8.0),
            "ml_label": strain.morphology.map(SIM_CLASSES),
            "ml_confidence": rng.uniform(0.5, 1.0, len(strain)).round(3),
        }
    )
    other = table.iloc[:1].assign(ifo="H1", event_time=1.0)  # another detector's row, even outside the run: left out
    return pd.concat([table, other], ignore_index=True)


@pytest.fixture
def listed(sim_frames, tmp_path):
    run = sim_run(sim_frames)
    return gravityspy_table(sim_frames), (run.gps_start - 60, run.gps_end), tmp_path


def test_gravityspy_list_reads_labels_and_confidences(listed):
    table, span, tmp = listed
    table.to_csv(path := tmp / "gspy.csv", index=False)
    events = read_gravityspy(path, span, "V1")
    v1 = table[table.ifo == "V1"].sort_values("event_time")
    assert len(events) == len(v1) > 5
    np.testing.assert_allclose(events.gps, v1.event_time)
    assert list(events.label) == list(v1.ml_label) and set(events.label) <= GRAVITY_SPY_CLASSES
    assert {"Blip", "Scattered_Light"} <= set(events.label)
    np.testing.assert_allclose(events.confidence, v1.ml_confidence)
    np.testing.assert_allclose(events.end - events.start, 0.25)
    np.testing.assert_allclose(events.fmax - events.fmin, 40.0)

    # the training set's names: GPStime and a volunteer label without confidence
    v1.rename(columns={"event_time": "GPStime", "ml_label": "label"}).drop(columns="ml_confidence").to_csv(path, index=False)
    events = read_gravityspy(path, span, "V1")
    assert list(events.label) == list(v1.ml_label) and events.confidence.isna().all()


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t: t.drop(columns="ml_label"), r"missing column\(s\) ml_label"),
        (
            lambda t: t.assign(ml_label=t.ml_label.where(t.index != 2, "Glitchy_Blob")),
            r"row 3: column 'ml_label': unknown class 'Glitchy_Blob'",
        ),
        (lambda t: t.assign(snr=t.snr.where(t.index != 4, np.nan)), r"row 5: column 'snr': nan is not a finite number"),
        (
            lambda t: t.assign(event_time=t.event_time.where(t.index != 1, 2.0e9)),
            r"row 2: column 'event_time': GPS 2000000000.000 is outside",
        ),
        (
            lambda t: t.assign(ml_confidence=t.ml_confidence.where(t.index != 0, 1.5)),
            r"row 1: column 'ml_confidence': 1.5 is not a confidence",
        ),
        (lambda t: t.assign(ifo="L1"), r"no triggers of V1 \(ifo column has L1\)"),
    ],
)
def test_bad_gravityspy_lists_name_the_file_and_row(listed, change, message):
    table, span, tmp = listed
    change(table).to_csv(path := tmp / "bad.csv", index=False)
    with pytest.raises(TriggerListError, match=rf"{path}: {message}"):
        read_gravityspy(path, span, "V1")


def test_an_empty_gravityspy_file_is_refused(listed):
    _, span, tmp = listed
    (path := tmp / "empty.csv").write_text("")
    with pytest.raises(TriggerListError, match=rf"{path}: no triggers \(an empty file\)"):
        read_gravityspy(path, span, "V1")
    (path := tmp / "header.csv").write_text("event_time,ifo,peak_frequency,snr,duration,ml_label,ml_confidence\n")
    with pytest.raises(TriggerListError, match=rf"{path}: no triggers of V1"):
        read_gravityspy(path, span, "V1")
