"""End to end with real Dagster services: webserver + daemon on 127.0.0.1, SQLite instance.

Frames dropped into SIM's directory are ingested through the sensor, and a backfill over a time range of
SIM launched through GraphQL materializes every window.
"""

import os
import shutil

import pytest

from glitchflow_assets_tests.services import REPO, DagsterServices, wait_for

RUNS = """{ runsOrError(filter: {tags: [{key: "dagster/partition", value: "%s"}]}) {
  ... on Runs { results { status tags { key value } } } } }"""
BACKFILL = """mutation($names: [String!]) { launchPartitionBackfill(backfillParams: {
  assetSelection: [{path: ["SIM", "raw_strain_segments"]}], partitionNames: $names }) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }"""
BACKFILL_STATUS = """query($id: String!) { partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } } }"""
STATS = """{ assetNodeOrError(assetKey: {path: ["SIM", "%s"]}) {
  ... on AssetNode { partitionStats { numMaterialized numFailed } } } }"""
STATUSES = """{ assetNodeOrError(assetKey: {path: ["SIM", "%s"]}) { ... on AssetNode {
  assetPartitionStatuses { ... on TimePartitionStatuses { ranges { startKey endKey status } } } } } }"""
SENSOR = """{ sensorOrError(sensorSelector: {repositoryName: "__repository__", repositoryLocationName: "glitchflow",
  sensorName: "SIM_new_frames"}) { ... on Sensor { sensorState { status } } } }"""


@pytest.fixture
def services(tmp_path, isolated_home):
    dagster_home = tmp_path / "dagster"
    shutil.copy(REPO / "deploy" / "dagster.local.yaml", dagster_home / "dagster.yaml")
    env = dict(os.environ, GLITCHFLOW_HOME=str(isolated_home), DAGSTER_HOME=str(dagster_home), GLITCHFLOW_SENSOR_INTERVAL_S="3")
    svc = DagsterServices(env, logs=tmp_path)
    try:
        svc.start_webserver()
        svc.start_daemon()
        yield svc
    finally:
        svc.stop()


def _sensor_run(svc, partition):
    runs = svc.graphql(RUNS % partition)["runsOrError"]["results"]
    done = [r["status"] for r in runs if {"key": "dagster/sensor_name", "value": "SIM_new_frames"} in r["tags"]]
    assert "FAILURE" not in done, f"sensor run for {partition} failed"
    return "SUCCESS" in done


def test_new_frames_and_a_backfill_through_the_daemon(services, sim_frames, isolated_home):
    assert services.graphql(SENSOR)["sensorOrError"]["sensorState"]["status"] == "RUNNING"
    frames_dir = isolated_home / "frames" / "SIM"
    frames_dir.mkdir(parents=True)
    frames = sorted(sim_frames.glob("*.gwf"))
    for path in frames[:7]:  # completes the first window (plus its 1 s pads)
        shutil.copy(path, frames_dir)
    wait_for(lambda: _sensor_run(services, "2024-05-17T16:55"), 240, "the sensor's run for 2024-05-17T16:55")

    for path in frames[7:]:
        shutil.copy(path, frames_dir)
    launched = services.graphql(BACKFILL, {"names": ["2024-05-17T16:55", "2024-05-17T17:00"]})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    status = lambda: services.graphql(BACKFILL_STATUS, {"id": launched["backfillId"]})["partitionBackfillOrError"]["status"]  # noqa: E731
    final = wait_for(lambda: status() if status() not in ("REQUESTED",) else None, 300, "the backfill to finish", interval=2)
    assert final == "COMPLETED_SUCCESS"
    statuses = services.graphql(STATUSES % "raw_strain_segments")["assetNodeOrError"]["assetPartitionStatuses"]["ranges"]
    done = [r for r in statuses if r["status"] == "MATERIALIZED" and r["startKey"] == "2024-05-17T16:55"]
    assert done and done[0]["endKey"] in ("2024-05-17T17:00", "2024-05-17T17:05"), statuses  # ranges are coalesced
    # The daemon reloads its code location every minute; SIM's span then ends where its frames end (span_follows_frames)
    # and the sensor rightly ingests the run's last, partial window (17:05) too: that one may be there, done or running.
    others = [r for r in statuses if r not in done]
    assert all(r["startKey"] == r["endKey"] == "2024-05-17T17:05" and r["status"] != "FAILED" for r in others), statuses
    assert services.graphql(STATS % "raw_strain_segments")["assetNodeOrError"]["partitionStats"]["numFailed"] == 0
    # the backfill materialized raw segments only: the SIM_automation sensor carries both windows on through the
    # events and ANNALISA scores (17:00 reaches them through automation alone)
    scores = lambda: services.graphql(STATS % "annalisa_scores")["assetNodeOrError"]["partitionStats"]  # noqa: E731
    wait_for(lambda: scores()["numMaterialized"] == 2, 300, "automation to carry both windows to annalisa_scores", interval=3)
    assert scores()["numFailed"] == 0
