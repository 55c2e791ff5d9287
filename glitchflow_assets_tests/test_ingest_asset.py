"""``raw_strain_segments`` through Dagster: materializations, check results, failures, real data."""

import hashlib

import dagster as dg
import pytest

from glitchflow_assets.defs.families import build_definitions
from glitchflow_assets_tests.conftest import sim_run

RAW = "raw_strain_segments"


def _materialize(run, key, instance):
    job = build_definitions({run.name: run}).resolve_job_def(f"{run.name}_ingest")
    return job.execute_in_process(instance=instance, partition_key=key, raise_on_error=False)


def _check_results(result):
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_sim_window_materializes_with_metadata_and_passing_checks(sim_frames, isolated_home):
    run = sim_run(sim_frames)
    with dg.instance_for_test() as instance:
        result = _materialize(run, "2024-05-17T16:55", instance)
        assert result.success
        (mat,) = result.asset_materializations_for_node("SIM__raw_strain_segments")
        meta = mat.metadata
        path = isolated_home / "storage" / "SIM" / RAW / f"SIM-{RAW}-1400000118-300.h5"
        assert meta["path"].value == str(path) and path.exists()
        assert meta["livetime_s"].value == 300 and meta["n_channels"].value == 11 and meta["n_frames"].value == 7
        rates = {r.data["channel"]: r.data["native_rate_hz"] for r in meta["channels"].records}
        assert rates["V1:ENV_CEB_SEIS_V"] == 256
        checks = _check_results(result)
        assert set(checks) == {"no_nonfinite_samples", "no_flatlined_channels", "gap_fraction", "sample_rates", "channels_present"}
        assert all(c.passed for c in checks.values())
        assert instance.get_latest_data_version_record(dg.AssetKey(["SIM", RAW]), partition_key="2024-05-17T16:55") is not None


def test_failed_rematerialization_keeps_the_previous_file(frames_copy, isolated_home):
    run = sim_run(frames_copy)
    with dg.instance_for_test() as instance:
        assert _materialize(run, "2024-05-17T16:55", instance).success
        path = isolated_home / "storage" / "SIM" / RAW / f"SIM-{RAW}-1400000118-300.h5"
        before = hashlib.sha256(path.read_bytes()).hexdigest()
        for frame in frames_copy.glob("*.gwf"):
            frame.write_bytes(b"IGWD\0garbage")
        result = _materialize(run, "2024-05-17T16:55", instance)
        assert not result.success
        failure = result.failure_data_for_node("SIM__raw_strain_segments")
        assert "2024-05-17T16:55" in failure.error.message and "V-V1SIM-1400000118-60.gwf" in failure.error.message
        assert hashlib.sha256(path.read_bytes()).hexdigest() == before
        assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def test_window_without_data_fails_naming_the_window(tmp_path):
    run = sim_run(tmp_path / "empty")
    with dg.instance_for_test() as instance:
        result = _materialize(run, "2024-05-17T17:00", instance)
        assert not result.success
        message = result.failure_data_for_node("SIM__raw_strain_segments").error.message
        assert "2024-05-17T17:00" in message and "1400000418" in message


def test_real_gwosc_file_through_the_asset(gw150914_run):
    run = gw150914_run
    with dg.instance_for_test() as instance:
        first, second = _materialize(run, "2015-09-14T09:50", instance), _materialize(run, "2015-09-14T09:51", instance)
        assert first.success and second.success
        (mat,) = first.asset_materializations_for_node("GW150914__raw_strain_segments")
        assert mat.metadata["livetime_s"].value == pytest.approx(31.0)  # 09:50:29-09:51:00 UTC
        (mat,) = second.asset_materializations_for_node("GW150914__raw_strain_segments")
        assert mat.metadata["livetime_s"].value == pytest.approx(1.0)  # 09:51:00-09:51:01 UTC
        # half the window lies outside the run (the file is the run): no false gap, the in-run part is complete
        gap = _check_results(first)["gap_fraction"]
        assert gap.passed and "0 % of the 31 s of window 2015-09-14T09:50 inside GW150914, limit 10 %" in gap.description
        assert gap.partition == "2015-09-14T09:50"


def test_real_frame_through_the_asset(hw100916_run):
    run = hw100916_run
    with dg.instance_for_test() as instance:
        result = _materialize(run, "2010-09-16T06:42", instance)
        assert result.success
        checks = _check_results(result)
        assert checks["sample_rates"].passed and checks["channels_present"].passed and checks["no_nonfinite_samples"].passed
