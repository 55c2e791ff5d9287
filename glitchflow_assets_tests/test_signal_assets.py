"""The signal-core assets through Dagster: a SIM window's events and scores, then the run's channel selection."""

import json
from pathlib import Path

import dagster as dg
import pytest

from glitchflow_assets.core.artifacts.glitch_events import read_events
from glitchflow_assets.core.runs.windows import window_for_key
from glitchflow_assets.defs.families import build_definitions
from glitchflow_assets.lib.inputs import WINDOW_READERS, recorded_version
from glitchflow_assets.lib.resources import GlitchflowStorage
from glitchflow_assets_tests.conftest import sim_run


def test_window_job_then_channel_selection(sim_frames, isolated_home):
    run = sim_run(sim_frames)
    defs = build_definitions({"SIM": run})
    with dg.instance_for_test() as instance:
        for key in ("2024-05-17T16:55", "2024-05-17T17:00"):
            result = defs.resolve_job_def("SIM_ingest").execute_in_process(instance=instance, partition_key=key)
            assert result.success
        (events_mat,) = result.asset_materializations_for_node("SIM__glitch_events")
        written = read_events(events_mat.metadata["path"].value)
        events, attrs = written.events, written.attrs
        assert events_mat.metadata["n_events"].value == len(events) > 0
        assert attrs["window"] == "2024-05-17T17:00" and (events.gps >= attrs["gps_start"]).all() and (events.gps < attrs["gps_end"]).all()
        (scores_mat,) = result.asset_materializations_for_node("SIM__annalisa_scores")
        assert "V1:LSC_DARM_ERR" in {r.data["channel"] for r in scores_mat.metadata["channels"].records}

        selection = defs.resolve_job_def("SIM_selection").execute_in_process(instance=instance)
        assert selection.success
        (mat,) = selection.asset_materializations_for_node("SIM__channel_selection")
        assert mat.metadata["n_windows"].value == 2
        assert mat.metadata["plot"].value.startswith("![ANNALISA scores](data:image/png;base64,")
        result_file = json.loads(open(mat.metadata["path"].value).read())
        assert result_file["windows"] == ["2024-05-17T16:55", "2024-05-17T17:00"]
        assert set(result_file["selected"]) == set(mat.metadata["selected"].value)
        assert "V1:LSC_DARM_ERR" in result_file["selected"]  # DARM witnesses every glitch: found even in 10 minutes
        assert not {"V1:SUSP_WE_F0_TZ", "V1:ENV_CEB_UPS_CURR_R", "V1:ENV_CEB_MIC_V"} & set(result_file["selected"])


def test_channel_selection_without_scores_fails_clearly(tmp_path):
    defs = build_definitions({"SIM": sim_run(tmp_path)})
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [defs.get_assets_def(dg.AssetKey(["SIM", "channel_selection"]))],
            instance=instance,
            resources={"storage": GlitchflowStorage()},
            raise_on_error=False,
        )
        assert not result.success
        assert "no materialized SIM/annalisa_scores" in result.failure_data_for_node("SIM__channel_selection").error.message


def _latest(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str) -> dg.EventLogRecord:
    (record,) = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1).records
    return record


def test_a_batched_run_records_each_window_as_its_own(sim_frames, isolated_home):
    """What a backfill launches with the run's ``backfill_batch``: one run, two windows, and per window a file, a
    materialization with that window's own metadata (span, file, loudest events, figure, data version) and check
    results filed under its partition, read back from the instance the way the UI reads them."""
    run = sim_run(sim_frames)
    defs = build_definitions({"SIM": run})
    assert defs.get_assets_def(dg.AssetKey(["SIM", "raw_strain_segments"])).backfill_policy.max_partitions_per_run == run.backfill_batch > 1
    windows = ["2024-05-17T16:55", "2024-05-17T17:00"]
    tags = {"dagster/asset_partition_range_start": windows[0], "dagster/asset_partition_range_end": windows[1]}
    storage = GlitchflowStorage()
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("SIM_ingest").execute_in_process(instance=instance, tags=tags)
        assert result.success
        for window in windows:
            start = window_for_key(window, run.cadence).gps_start
            for asset in ("raw_strain_segments", "glitch_events", "annalisa_scores"):
                key = dg.AssetKey(["SIM", asset])
                (record,) = instance.fetch_materializations(
                    dg.AssetRecordsFilter(asset_key=key, asset_partitions=[window]), limit=1
                ).records
                metadata = record.asset_materialization.metadata
                assert record.run_id == result.run_id
                assert metadata["gps_span"].value == f"{start} to {start + 300}", (asset, window)
                assert metadata["utc_span"].value.startswith(window.replace("T", " ")), (asset, window)
                path = metadata["path"].value
                assert path == str(storage.window_file("SIM", asset, window_for_key(window, run.cadence)))
                assert metadata["size_mb"].value == pytest.approx(Path(path).stat().st_size / 1e6)
                # each window's own data version, against which later reads of that window are checked
                assert recorded_version(instance, key, window) == WINDOW_READERS[asset](path).data_version()
            events = (
                instance.fetch_materializations(
                    dg.AssetRecordsFilter(asset_key=dg.AssetKey(["SIM", "glitch_events"]), asset_partitions=[window]), limit=1
                )
                .records[0]
                .asset_materialization.metadata
            )
            loudest = [r.data for r in events["loudest"].records]
            assert loudest and all(start <= float(r["gps"]) < start + 300 and r["utc"].startswith("2024-05-17") for r in loudest)
            assert all(len(r["gps"].split(".")[1]) == 4 for r in loudest)  # fixed precision
            assert events["events"].value.startswith("![")
        for check in ("sample_rates", "gap_fraction", "no_nonfinite_samples"):
            check_key = dg.AssetCheckKey(dg.AssetKey(["SIM", "raw_strain_segments"]), check)
            history = instance.event_log_storage.get_asset_check_execution_history(check_key, limit=10)
            evaluations = {h.event.asset_check_evaluation.partition: h.event.asset_check_evaluation for h in history}
            assert set(evaluations) == set(windows), check
            for window, evaluation in evaluations.items():
                assert evaluation.passed and evaluation.target_materialization_data is not None, (check, window)
                assert evaluation.target_materialization_data.run_id == result.run_id
                assert {"measured", "limit"} <= set(evaluation.metadata) and window in evaluation.description
    assert all(p.name.startswith("SIM-glitch_events-") for p in (storage.base() / "SIM" / "glitch_events").iterdir())
    assert len(list((storage.base() / "SIM" / "glitch_events").iterdir())) == 2
