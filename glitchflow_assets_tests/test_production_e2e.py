"""End to end on the production configuration: dagster-webserver + dagster-daemon on 127.0.0.1 against PostgreSQL
(deploy/dagster.yaml) and an MLflow server backed by PostgreSQL. The sensor is switched on through GraphQL, frames
dropped in are ingested, a backfill over a time range of SIM runs through to a model registered in the server;
and a backfill submitted by ``glitchflow materialize --submit`` finishes after its daemon is SIGKILLed and restarted,
a failed window stopping only what depends on it, ``glitchflow status --retry-failed`` re-submitting only that, and no
window lost or duplicated.
"""

import os
import re
import shutil
import signal
from collections import Counter

import dagster as dg
import pytest
from mlflow import MlflowClient

from glitchflow_assets.cli import main
from glitchflow_assets.core.ml.tracking import CANDIDATE
from glitchflow_assets_tests.servers import MlflowServer, PostgresServer
from glitchflow_assets_tests.services import REPO, DagsterServices, wait_for
from glitchflow_assets_tests.test_e2e_daemon import BACKFILL_STATUS, RUNS
from glitchflow_assets_tests.test_production_services import PLATFORM_GATE, WINDOWS, _instance, _sim_registry

START_SENSOR = """mutation { startSensor(sensorSelector: {repositoryName: "__repository__",
  repositoryLocationName: "glitchflow", sensorName: "SIM_new_frames"}) {
  __typename ... on Sensor { sensorState { status } } ... on PythonError { message } } }"""
BACKFILL = """mutation($names: [String!], $assets: [AssetKeyInput!]) { launchPartitionBackfill(backfillParams: {
  assetSelection: $assets, partitionNames: $names }) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }"""
WINDOW_1_GPS, WINDOW_2_GPS = (1400000118, 1400000418), (1400000418, 1400000718)  # WINDOWS[0], WINDOWS[1]
THROUGH_SPECTROGRAMS = ["raw_strain_segments", "glitch_events", "annalisa_scores", "channel_selection", "spectrograms"]
LAUNCH = """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) { __typename
  ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
  ... on RunConfigValidationInvalid { errors { message } } } }"""
BACKFILL_RUNS = """query($id: String!) { runsOrError(filter: {tags: [{key: "dagster/backfill", value: $id}]}) {
  ... on Runs { results { runId } } } }"""
RUN_STATUS = """query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"""
# What the Launchpad sends for the run-level assets. 12 minutes of SIM are too few to judge a model by: the platform
# test opens the quality gate (test_model_assets and test_ml_quality test the gate itself).
MODEL_RUN_CONFIG = {
    "ops": {
        "SIM__dataset_split": {"config": {"train_fraction": 0.6, "validation_fraction": 0.2}},
        "SIM__trained_model": {"config": {"epochs": 10, **PLATFORM_GATE}},
    }
}


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    postgres = PostgresServer()
    postgres.start()
    postgres.create_database("mlflow")
    mlflow = MlflowServer(root=tmp_path_factory.mktemp("mlflow-e2e"), backend_uri=postgres.url("mlflow"))
    mlflow.start()
    yield postgres, mlflow
    mlflow.stop()
    postgres.stop()
    postgres.remove()


def _services(tmp_path, isolated_home, servers, database: str, frames, backfill_batch: int | None = None) -> DagsterServices:
    postgres, mlflow = servers
    postgres.create_database(database)
    dagster_home = tmp_path / "dagster"
    shutil.copy(REPO / "deploy" / "dagster.yaml", dagster_home / "dagster.yaml")
    env = dict(
        os.environ,
        **postgres.dagster_env(database),
        DAGSTER_HOME=str(dagster_home),
        GLITCHFLOW_HOME=str(isolated_home),
        GLITCHFLOW_RUNS=str(_sim_registry(tmp_path, frames, backfill_batch)),  # SIM with its sensor off until switched on
        GLITCHFLOW_SENSOR_INTERVAL_S="3",
        MLFLOW_TRACKING_URI=mlflow.uri,
    )
    return DagsterServices(env, logs=tmp_path)


def _backfill(svc: DagsterServices, assets: list[str], names: list[str]) -> str:
    selection = [{"path": ["SIM", a]} for a in assets]
    launched = svc.graphql(BACKFILL, {"names": names, "assets": selection})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    return launched["backfillId"]


def _wait_backfill(svc: DagsterServices, backfill_id: str, timeout: float) -> str:
    def finished():
        status = svc.graphql(BACKFILL_STATUS, {"id": backfill_id})["partitionBackfillOrError"]["status"]
        return status if status not in ("REQUESTED", "CANCELING") else None

    return wait_for(finished, timeout, f"backfill {backfill_id}", interval=2)


def test_sensor_and_backfill_through_to_a_model_in_the_mlflow_server(tmp_path, isolated_home, servers, sim_frames):
    frames = tmp_path / "frames"
    frames.mkdir()
    svc = _services(tmp_path, isolated_home, servers, "dagster_e2e", frames)
    try:
        svc.start_webserver()
        svc.start_daemon()
        started = svc.graphql(START_SENSOR)["startSensor"]
        assert started["__typename"] == "Sensor" and started["sensorState"]["status"] == "RUNNING", started
        gwf = sorted(sim_frames.glob("*.gwf"))
        for path in gwf[:7]:  # completes the first window (plus its 1 s pads)
            shutil.copy(path, frames)

        def sensor_run_succeeded():
            runs = svc.graphql(RUNS % WINDOWS[0])["runsOrError"]["results"]
            statuses = [r["status"] for r in runs if {"key": "dagster/sensor_name", "value": "SIM_new_frames"} in r["tags"]]
            assert "FAILURE" not in statuses, "the sensor's run failed"
            return "SUCCESS" in statuses

        wait_for(sensor_run_succeeded, 300, f"the sensor's run for {WINDOWS[0]}")
        for path in gwf[7:]:
            shutil.copy(path, frames)
        backfill_id = _backfill(svc, THROUGH_SPECTROGRAMS, WINDOWS)
        assert _wait_backfill(svc, backfill_id, 900) == "COMPLETED_SUCCESS"
        selector = {
            "repositoryLocationName": "glitchflow",
            "repositoryName": "__repository__",
            "jobName": "__ASSET_JOB",
            "assetSelection": [{"path": ["SIM", "dataset_split"]}, {"path": ["SIM", "trained_model"]}],
        }
        launched = svc.graphql(LAUNCH, {"params": {"selector": selector, "runConfigData": MODEL_RUN_CONFIG}})["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        run_id = launched["run"]["runId"]
        status = lambda: svc.graphql(RUN_STATUS, {"id": run_id})["runOrError"]["status"]  # noqa: E731
        assert wait_for(lambda: status() if status() in ("SUCCESS", "FAILURE", "CANCELED") else None, 600, "the model run") == "SUCCESS"
    finally:
        svc.stop()
    postgres, mlflow = servers
    for log in ("webserver.log", "daemon.log"):  # credentials never reach the logs
        assert postgres.password not in (tmp_path / log).read_text(errors="replace"), log
    client = MlflowClient(tracking_uri=mlflow.uri, registry_uri=mlflow.uri)
    version = client.get_model_version_by_alias("glitchflow-SIM", CANDIDATE)
    run = client.get_run(version.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["dagster_asset_key"] == "SIM/trained_model"
    assert mlflow.uri.startswith("http://127.0.0.1:")


def test_submitted_backfill_survives_a_killed_daemon_and_retries_only_its_failed_window(
    tmp_path, isolated_home, servers, sim_frames, monkeypatch, capsys
):
    """``glitchflow materialize --submit`` on the production instance: a backfill the daemon launches through the
    instance's run launcher, one run per window. The daemon is SIGKILLed mid-backfill and restarted; one window's
    frames are unreadable, so its ingest fails while the other window goes on, and ``channel_selection`` (which needs
    every window) does not run. ``glitchflow status --wait`` says so and exits 1; with the frames repaired,
    ``--retry-failed`` re-submits only what is left, and every window ends materialized exactly once."""
    frames = tmp_path / "frames"
    shutil.copytree(sim_frames, frames)
    svc = _services(tmp_path, isolated_home, servers, "dagster_fault", frames, backfill_batch=1)  # a run per window
    for key in ("DAGSTER_HOME", "GLITCHFLOW_HOME", "GLITCHFLOW_RUNS", "MLFLOW_TRACKING_URI", *servers[0].dagster_env("dagster_fault")):
        monkeypatch.setenv(key, svc.env[key])  # the command line on the same instance as the services
    second = [p for p in sorted(frames.glob("*.gwf")) if WINDOW_2_GPS[0] <= int(p.stem.split("-")[2]) < WINDOW_2_GPS[1]]
    saved = {p: p.read_bytes() for p in second}
    for path in second:
        path.write_bytes(b"not a frame")
    span = ["--gps-start", str(WINDOW_1_GPS[0]), "--gps-end", str(WINDOW_2_GPS[1]), "--through", "channel_selection"]
    try:
        svc.start_webserver()
        assert main(["materialize", "SIM", *span, "--submit"]) == 0  # before the daemon starts: it waits, and says so
        out = capsys.readouterr().out
        backfill_id = re.search(r"submitted backfill ([a-z]{8})", out).group(1)
        assert f"/runs/b/{backfill_id}" in out and "no dagster-daemon has been heard from on this instance" in out
        svc.start_daemon()
        wait_for(lambda: svc.graphql(BACKFILL_RUNS, {"id": backfill_id})["runsOrError"]["results"], 120, "the backfill's first run")
        svc.kill("daemon", signal.SIGKILL)  # mid-backfill: runs queued or in flight, no clean shutdown
        svc.start_daemon()
        assert main(["status", backfill_id, "--wait", "--interval", "2"]) == 1
        out = capsys.readouterr().out
        assert f"backfill {backfill_id} (SIM 2024-05-17T16:55 .. 2024-05-17T17:00 through channel_selection): COMPLETED" in out
        assert "failed: raw_strain_segments in window 2024-05-17T17:00 (run " in out and "no readable frame file" in out, out
        assert "not run: channel_selection: needs an upstream asset that failed" in out
        assert f"glitchflow status {backfill_id} --retry-failed" in out
        for path, content in saved.items():
            path.write_bytes(content)
        assert main(["status", backfill_id, "--retry-failed", "--wait", "--interval", "2"]) == 0
        out = capsys.readouterr().out
        retry = re.search(r"re-submitted as backfill ([a-z]{8})", out).group(1)
        assert "no dagster-daemon" not in out  # the daemon is running and heard from
        assert f"backfill {retry} (Re-execution of SIM" in out and ": COMPLETED_SUCCESS" in out, out
    finally:
        svc.stop()
    with _instance(tmp_path / "dagster") as instance:
        for asset in ("raw_strain_segments", "glitch_events", "annalisa_scores"):
            records = instance.fetch_materializations(dg.AssetKey(["SIM", asset]), limit=100).records
            assert Counter(r.partition_key for r in records) == {w: 1 for w in WINDOWS}, asset
        assert len(instance.fetch_materializations(dg.AssetKey(["SIM", "channel_selection"]), limit=10).records) == 1
        retried = instance.get_runs(dg.RunsFilter.for_backfill(retry))
        windows = {r.tags.get("dagster/partition") or r.tags.get("dagster/asset_partition_range_start") for r in retried}
        assert windows == {WINDOWS[1], None}  # only the window that failed, and the run-level channel_selection
        assert all(r.tags["glitchflow/trigger"] == "materialize --submit" for r in retried)
