"""The signal-core assets through Dagster: a SIM window's events and scores, then the run's channel selection."""

import json

import dagster as dg

from glitchflow_assets.core.artifacts.glitch_events import read_events
from glitchflow_assets.defs.families import build_definitions
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


def test_a_batched_run_materializes_each_window_of_its_range(sim_frames, isolated_home):
    """What a backfill launches with the run's ``backfill_batch``: one run, two windows, a file and a
    materialization per window, checks that hold for every window."""
    run = sim_run(sim_frames)
    defs = build_definitions({"SIM": run})
    assert defs.get_assets_def(dg.AssetKey(["SIM", "raw_strain_segments"])).backfill_policy.max_partitions_per_run == run.backfill_batch > 1
    windows = ["2024-05-17T16:55", "2024-05-17T17:00"]
    tags = {"dagster/asset_partition_range_start": windows[0], "dagster/asset_partition_range_end": windows[1]}
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("SIM_ingest").execute_in_process(instance=instance, tags=tags)
        assert result.success
        for asset in ("raw_strain_segments", "glitch_events", "annalisa_scores"):
            key = dg.AssetKey(["SIM", asset])
            assert instance.get_materialized_partitions(key) == set(windows), asset
            (event,) = result.asset_materializations_for_node(f"SIM__{asset}")[:1]
            rows = event.metadata["windows"].value
            assert [r["window"] for r in rows] == windows and event.metadata["n_windows"].value == 2
        checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
        assert checks["sample_rates"].passed and "all 2 windows" in checks["sample_rates"].description
    storage = GlitchflowStorage()
    assert all(p.name.startswith("SIM-glitch_events-") for p in (storage.base() / "SIM" / "glitch_events").iterdir())
    assert len(list((storage.base() / "SIM" / "glitch_events").iterdir())) == 2
