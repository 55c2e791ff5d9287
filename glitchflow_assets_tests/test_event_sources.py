"""A run's event source: the registry's ``events`` field, and ``glitch_events`` of a SIM window from a Gravity Spy list
instead of the search and beside it, with its Omicron export read by hveto."""

import dataclasses

import dagster as dg
import numpy as np
import pytest
from gwpy.segments import Segment, SegmentList
from hveto.triggers import get_triggers

from glitchflow_assets.core.artifacts.glitch_events import read_events
from glitchflow_assets.core.runs.registry import EventSource, RegistryError, load_registry
from glitchflow_assets.core.signal.event_sources import MATCH_S
from glitchflow_assets.core.twin.coverage import witness_coverage
from glitchflow_assets.defs.cleaning_evaluation import classify
from glitchflow_assets.defs.families import build_definitions
from glitchflow_assets_tests.conftest import sim_run
from glitchflow_assets_tests.test_io_gravityspy import gravityspy_table

WINDOW = "2024-05-17T17:00"


def _registry(tmp_path, events: str):
    (user := tmp_path / "runs.yaml").write_text(
        "runs:\n  T:\n    gps_start: 1400000000\n    gps_end: 1400003600\n    window: 5min\n    strain_channel: V1:STRAIN\n"
        f"    frames: {{kind: gwf, path: /nowhere}}\n    events: {events}\n"
    )
    return load_registry(user, follow_frames=False)["T"], user


def test_registry_events_field(tmp_path, isolated_home):
    assert load_registry(follow_frames=False)["SIM"].events == EventSource()  # default: the built-in search alone
    run, _ = _registry(tmp_path, "{source: gravityspy, path: '${GLITCHFLOW_HOME}/gspy.csv', mode: add, min_snr: 7, classes: [Blip]}")
    assert run.events == EventSource("gravityspy", isolated_home / "gspy.csv", "add", 7.0, ("Blip",))
    for events, problem in [
        ("{source: omicron}", "field events.path: omicron needs a path"),
        ("{source: builtin, path: x.h5}", "field events.path: the built-in search reads no file"),
        ("{source: gravityspy, path: g.csv, classes: [Blip, Glitchy_Blob]}", "field events.classes: unknown class"),
        ("{source: omicron, path: o.h5, classes: [Blip]}", "field events.classes: only a gravityspy list has class labels"),
        ("{source: snax, path: o.h5}", "field events.source: Input should be 'builtin', 'omicron' or 'gravityspy'"),
        ("{source: omicron, path: o.h5, mode: merge}", "field events.mode"),
    ]:
        with pytest.raises(RegistryError, match=r"runs.yaml: run 'T': " + problem):
            _registry(tmp_path, events)


def _window_events(run) -> tuple:
    defs = build_definitions({"SIM": run})
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("SIM_ingest").execute_in_process(instance=instance, partition_key=WINDOW)
    assert result.success
    (mat,) = result.asset_materializations_for_node("SIM__glitch_events")
    return read_events(mat.metadata["path"].value), mat.metadata


def test_glitch_events_from_a_gravityspy_list(sim_frames, tmp_path):
    run = sim_run(sim_frames)
    table = gravityspy_table(sim_frames)
    table = table[table.event_time >= run.gps_start]  # the simulated minute before the run is not in it
    table.to_csv(path := tmp_path / "gspy.csv", index=False)

    classes = ("Blip", "Scattered_Light")
    listed, meta = _window_events(dataclasses.replace(run, events=EventSource("gravityspy", path, "replace", 0.0, classes)))
    events, attrs = listed.events, listed.attrs
    v1 = table[(table.ifo == "V1") & table.ml_label.isin(classes)]
    mine = v1[(v1.event_time >= attrs["gps_start"]) & (v1.event_time < attrs["gps_end"])].sort_values("event_time")
    assert len(events) == len(mine) > 0  # the listed triggers of the window, of the classes asked for, and no others
    np.testing.assert_allclose(events.gps, mine.event_time)
    assert list(events.label) == list(mine.ml_label)
    assert meta["n_events_per_class"].value == mine.ml_label.value_counts().to_dict()

    # the Omicron export beside it, read by hveto as strain triggers
    omicron = meta["omicron_path"].value
    gps = attrs["gps_start"]
    assert omicron.endswith(f"/SIM/omicron/V1/Hrec_hoft_16384Hz_OMICRON/{str(gps)[:5]}/V1-Hrec_hoft_16384Hz_OMICRON-{gps}-300.h5")
    hveto = get_triggers(run.strain_channel, "omicron", SegmentList([Segment(attrs["gps_start"], attrs["gps_end"])]), cache=[omicron])
    np.testing.assert_allclose(np.asarray(hveto["time"]), events.gps)

    both, _ = _window_events(dataclasses.replace(run, events=EventSource("gravityspy", path, "add")))
    window_list = table[(table.ifo == "V1") & (table.event_time >= attrs["gps_start"]) & (table.event_time < attrs["gps_end"])]
    matched = both.events[(both.events.n_tiles > 0) & (both.events.label != "")]  # the search's events that took a class
    added = both.events[both.events.n_tiles == 0]  # listed triggers the search did not find
    assert len(matched) > 0 and len(matched) + len(added) == len(window_list)
    for _, event in matched.iterrows():
        nearest = window_list.iloc[int(np.argmin(np.abs(window_list.event_time - event.gps)))]
        assert abs(nearest.event_time - event.gps) <= MATCH_S
        assert event.label == nearest.ml_label and event.confidence == nearest.ml_confidence
    assert set(added.gps) <= set(window_list.event_time)

    # the cleaning evaluation's coverage per class, on a labelled run: each event's class is its list label
    held_out = both.events.assign(predicted=both.events.snr > 10, removed=False)[["gps", "snr", "predicted", "removed"]]
    classes = dict(zip(np.round(both.events.gps, 6).tolist(), both.events.label, strict=True))  # as the dataset keeps them
    classified = classify(held_out, run, [], simulated=False, classes=classes)
    expected = both.events.label.replace("", "unlabelled")
    assert list(classified["class"]) == list(expected)
    coverage = witness_coverage(classified, min_snr=0.0).set_index("class")
    assert coverage.loc["all", "glitches"] == len(both.events)
    for name, count in expected.value_counts().items():
        assert coverage.loc[name, "glitches"] == count
        assert coverage.loc[name, "predicted_fraction"] == pytest.approx((both.events.snr[expected == name] > 10).mean())
    unlabelled = classify(held_out, run, [], simulated=False, classes={})  # a run without labels: one class
    assert set(unlabelled["class"]) == {"all (no Gravity Spy labels)"}
