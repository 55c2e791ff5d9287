"""Artifact formats (one core module each) and the per-window stage functions, without running Dagster."""

import json
from pathlib import Path

import dagster as dg
import h5py
import numpy as np
import pandas as pd
import pytest

from glitchflow_assets.core.artifacts.annalisa_scores import read_scores
from glitchflow_assets.core.artifacts.channel_selection import ChannelSelection, read_selection, selection_of, write_selection
from glitchflow_assets.core.artifacts.glitch_events import read_events, write_events
from glitchflow_assets.core.artifacts.raw_strain_segments import read_summary
from glitchflow_assets.core.artifacts.spectrograms import read_spectrograms
from glitchflow_assets.core.artifacts.storage import ContentDigest, SchemaError, open_artifact, write_artifact
from glitchflow_assets.core.ingest.assemble import IngestOptions, window_channels
from glitchflow_assets.core.runs.windows import window_for_key
from glitchflow_assets.core.signal.annalisa import channel_table
from glitchflow_assets.core.signal.events import EventSearchConfig
from glitchflow_assets.core.twin.cleaning import read_cleaning_report
from glitchflow_assets.core.twin.event_segments import event_segments
from glitchflow_assets.core.twin.pipeline import TwinConfig
from glitchflow_assets.core.twin.wiener import WienerAccumulator
from glitchflow_assets.defs.ingest import events_of_window, raw_of_window, scores_of_window
from glitchflow_assets.defs.spectrograms import spectrograms_of_window
from glitchflow_assets.defs.twin import clean_of_window
from glitchflow_assets.lib.inputs import TWIN_SUFFIX, Inputs, cleaning_report_path, selection_file
from glitchflow_assets.lib.names import EVENTS, RAW, SCORES, SPECTROGRAMS, WAVEFORMS
from glitchflow_assets.lib.resources import GlitchflowStorage
from glitchflow_assets_tests.conftest import sim_run

WINDOW = window_for_key("2024-05-17T16:55", sim_run(".").cadence)


def _set_version(path, version: int) -> None:
    with h5py.File(path, "r+") as f:
        f.attrs["schema_version"] = version


def test_events_round_trip_and_an_unknown_schema_version_is_refused_by_name(tmp_path):
    events = pd.DataFrame({"gps": [1.4e9 + 10.5, 1.4e9 + 20.25], "snr": [9.0, 12.0]})
    path = tmp_path / "e.h5"
    write_events(path, "SIM", WINDOW, events, [(1.4e9, 1.4e9 + 300.0)], EventSearchConfig())
    back = read_events(path)
    pd.testing.assert_frame_equal(back.events, events)
    assert back.livetime == 300.0 and back.searched == [(1.4e9, 1.4e9 + 300.0)]
    assert back.data_version() == read_events(path).data_version()  # stable
    write_events(tmp_path / "f.h5", "SIM", WINDOW, events.assign(snr=[9.0, 13.0]), back.searched, EventSearchConfig())
    assert read_events(tmp_path / "f.h5").data_version() != back.data_version()  # and it follows the content
    _set_version(path, 7)
    with pytest.raises(SchemaError, match=rf"{path}: glitchflow.glitch_events schema version 7; this glitchflow reads version\(s\) 1"):
        read_events(path)
    with pytest.raises(SchemaError, match="not a glitchflow.glitch_events file"):
        read_events(_other_file(tmp_path))


def test_one_writer_for_every_artifact_stamps_the_schema_and_publishes_only_a_finished_file(tmp_path):
    path = tmp_path / "out" / "a.h5"
    with write_artifact(path, "glitchflow.test", 3) as f:
        f.create_dataset("x", data=np.arange(4))
    with open_artifact(path, "glitchflow.test", {3}) as f:
        assert f["x"][()].tolist() == [0, 1, 2, 3]
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match="disk"), write_artifact(path, "glitchflow.test", 3) as f:
        f.create_dataset("x", data=np.zeros(4))
        raise RuntimeError("disk full")
    assert path.read_bytes() == before and [p.name for p in path.parent.iterdir()] == ["a.h5"]  # no temporary left
    # data versions: the content, its dtype and shape count; strings by value
    x = np.arange(6, dtype=np.float32)
    assert ContentDigest(x, ["a", "b"]).hexdigest() == ContentDigest(x.copy(), np.array(["a", "b"], dtype=object)).hexdigest()
    assert len({ContentDigest(v).hexdigest() for v in (x, x.astype(np.float64), x.reshape(2, 3), x + 1)}) == 4


def _other_file(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f.attrs["schema"] = "glitchflow.spectrograms"
        f.create_group("table").attrs["columns"] = []
    return path


def test_selection_files_of_before_the_schema_field_are_read_and_newer_ones_refused(tmp_path):
    selection = ChannelSelection("SIM", ["V1:A"], ["2024-05-17T16:55"], {"selection": "corr_iou"}, [{"channel": "V1:A"}])
    path = tmp_path / "s.json"
    write_selection(path, selection)
    assert read_selection(path) == selection
    document = json.loads(path.read_text())
    del document["schema"], document["schema_version"]  # as written before the field existed
    path.write_text(json.dumps(document))
    assert read_selection(path).selected == ["V1:A"]
    path.write_text(json.dumps({**document, "schema": "glitchflow.channel_selection", "schema_version": 2}))
    with pytest.raises(SchemaError, match="schema version 2"):
        read_selection(path)
    assert selection.version != ChannelSelection("SIM", ["V1:B"], [], selection.config, []).version
    assert selection.version == ChannelSelection("SIM", ["V1:A"], ["later"], selection.config, []).version  # windows do not count


def test_the_per_window_stage_functions_alone(sim_frames, isolated_home, tmp_path):
    """raw -> events -> scores -> spectrograms -> cleaned strain for one window, calling the stage functions the assets
    wrap, with no Dagster run; each records the data version its file's reader computes."""
    run, storage = sim_run(sim_frames), GlitchflowStorage(root=str(tmp_path / "storage"))
    inputs = Inputs(storage, run, None)  # no instance: the files are read unchecked
    raw = raw_of_window(inputs, WINDOW, IngestOptions())
    summary = read_summary(storage.window_file(run.name, RAW, WINDOW))
    assert raw.data_version.value == summary.data_version() and raw.metadata["n_frames"] == len(summary.frames) > 0
    assert {c.check_name for c in raw.check_results} >= {"no_nonfinite_samples", "gap_fraction"}
    events = events_of_window(inputs, WINDOW)
    table = read_events(storage.window_file(run.name, EVENTS, WINDOW))
    assert events.metadata["n_events"] == len(table.events) > 0 and events.data_version.value == table.data_version()
    assert np.all((table.events.gps >= WINDOW.gps_start) & (table.events.gps < WINDOW.gps_end))
    scores = scores_of_window(inputs, WINDOW)
    written_scores = read_scores(storage.window_file(run.name, SCORES, WINDOW))
    assert scores.metadata["n_events_scored"] == len(table.events) == len(written_scores.event_gps)
    assert scores.data_version.value == written_scores.data_version()

    config = run.annalisa_config()  # the run-level selection, from this one window
    selection = selection_of(run.name, channel_table([written_scores], config), [WINDOW.key], config)
    assert selection.selected, "one window of SIM already shows witnesses"
    write_selection(selection_file(storage, run), selection)
    spectrograms = spectrograms_of_window(inputs, WINDOW)
    written = read_spectrograms(storage.window_file(run.name, SPECTROGRAMS, WINDOW))
    assert written.channels == [run.strain_channel, *selection.selected] and spectrograms.data_version.value == written.data_version()
    assert spectrograms.metadata["n_events"] == len(written.event_gps) > 0
    assert written.spectrograms.shape[:2] == (len(written.event_gps), len(written.channels)) and np.isfinite(written.spectrograms).all()

    # the twin cleaned_strain applies: a Wiener filter fitted on this window's events
    twin = TwinConfig()
    segments, _ = event_segments(window_channels(run, WINDOW, summary, selection.selected), WINDOW.key, table.events, twin.segments)
    accumulator = WienerAccumulator(selection.selected, segments.sample_rate, segments.witness.shape[-1], twin.wiener)
    accumulator.add(segments)
    accumulator.solve().save(storage.run_file(run.name, WAVEFORMS, TWIN_SUFFIX), {"run": run.name})
    cleaned = clean_of_window(inputs, WINDOW)
    report = read_cleaning_report(cleaning_report_path(storage, run, WINDOW))
    assert cleaned.metadata["events_before"] == len(table.events) == len(report.table)
    assert cleaned.metadata["predicted"] > 0 and report.removed_fraction() > 0 and len(report.new) == 0
    assert Path(cleaned.metadata["path"].value).exists() and "before_after" in cleaned.metadata

    _set_version(storage.window_file(run.name, RAW, WINDOW), 4)  # a file from a future glitchflow
    with pytest.raises(dg.Failure, match=r"raw_strain_segments schema version 4; this glitchflow reads version\(s\) 3"):
        events_of_window(inputs, WINDOW)
