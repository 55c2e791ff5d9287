"""The new-frame sensor: new files, incomplete windows, late files, restarts, 10,000 files."""

import os
import time

import dagster as dg
import pytest

from glitchflow_assets.defs.families import build_definitions
from glitchflow_assets.defs.sensors import new_frames_sensor
from glitchflow_assets.lib.resources import GlitchflowStorage
from glitchflow_assets_tests.conftest import drop_frame_file as _drop
from glitchflow_assets_tests.conftest import sensor_tick as _tick
from glitchflow_assets_tests.conftest import sim_run

START = 1400000118  # first SIM window: 2024-05-17T16:55 UTC
DAGSTER_SENSOR_TIMEOUT_S = 60


@pytest.fixture
def watched(tmp_path):
    directory = tmp_path / "frames"
    directory.mkdir()
    return directory, new_frames_sensor(sim_run(directory), "SIM_ingest")


def test_complete_windows_are_requested_once(watched):
    directory, sensor = watched
    assert _tick(sensor)[0] == []
    for k in range(6):  # the window and the 8 s margin its file keeps beyond its end
        _drop(directory, START + 60 * k, mtime=1000 + k)
    requests, cursor = _tick(sensor)
    assert [r.partition_key for r in requests] == ["2024-05-17T16:55"]
    assert requests[0].tags["glitchflow/complete"] == "true"
    assert _tick(sensor, cursor)[0] == []  # nothing new: nothing requested


def test_incomplete_window_waits_until_the_stream_moves_on(watched):
    directory, sensor = watched
    for k in range(2):
        _drop(directory, START + 60 * k, mtime=1000 + k)
    requests, cursor = _tick(sensor)
    assert requests == []
    # data reach past the window's end, but not yet a whole window past it: keep waiting
    _drop(directory, START + 360, mtime=1010)
    requests, cursor = _tick(sensor, cursor)
    assert requests == []
    # the stream is a full window past: ingest what exists (gaps are recorded by ingest)
    _drop(directory, START + 600, mtime=1020)
    requests, cursor = _tick(sensor, cursor)
    assert [(r.partition_key, r.tags["glitchflow/complete"]) for r in requests] == [("2024-05-17T16:55", "false")]


def test_late_file_rematerializes_its_window_with_a_new_run_key(watched):
    directory, sensor = watched
    for k in (0, 1, 3, 4):
        _drop(directory, START + 60 * k, mtime=1000 + k)
    _drop(directory, START + 900, mtime=1005)  # the stream has moved on
    first, cursor = _tick(sensor)
    assert [r.partition_key for r in first if r.partition_key == "2024-05-17T16:55"]
    _drop(directory, START + 120, mtime=2000)  # the missing minute arrives late
    late, cursor = _tick(sensor, cursor)
    assert [r.partition_key for r in late] == ["2024-05-17T16:55"]
    assert late[0].run_key != next(r.run_key for r in first if r.partition_key == "2024-05-17T16:55")


def test_the_sensor_says_what_it_saw_and_its_cursor_stays_short(watched):
    """The sensor's page shows its skip reason and its cursor: what it saw, and a short name for its state."""
    directory, sensor = watched
    for k in range(7):  # the first window, its margin, and a minute of the second
        _drop(directory, START + 60 * k)
    _drop(directory, START + 86400 + 600)  # after SIM's span
    with dg.instance_for_test() as instance:
        tick = lambda cursor: sensor(dg.build_sensor_context(cursor=cursor, instance=instance, resources={"storage": GlitchflowStorage()}))  # noqa: E731
        first = tick(None)
        assert [r.partition_key for r in first.run_requests] == ["2024-05-17T16:55"]
        assert first.cursor.startswith("1 windows requested, state ") and len(first.cursor) < 64
        again = tick(first.cursor)
        assert again.run_requests == [] and again.cursor == first.cursor
        assert again.skip_reason.skip_message.startswith(
            "8 files, 1 window unchanged; 1 window waiting for more data; 1 file outside the loaded span"
        )
        assert "V-V1SIM-1400087118-60.gwf" in again.skip_reason.skip_message
        for k in range(7, 12):
            _drop(directory, START + 60 * k)
        third = tick(again.cursor)  # the state the cursor names is read back: only the new window is requested
        assert [r.partition_key for r in third.run_requests] == ["2024-05-17T17:00"] and third.cursor.startswith("2 windows")


def test_restart_with_saved_cursor_requests_nothing_twice(watched):
    directory, sensor = watched
    for k in range(6):
        _drop(directory, START + 60 * k, mtime=1000)  # one mtime shared by several files
    first, cursor = _tick(sensor)
    restarted = new_frames_sensor(sim_run(directory), "SIM_ingest")  # a fresh process, same cursor
    assert _tick(restarted, cursor)[0] == []
    # a new file with the same mtime as the others is still seen (files are tracked by identity, not mtime)
    _drop(directory, START + 360, mtime=1000)
    for k in range(2, 6):
        _drop(directory, START + 300 + 60 * k, mtime=1000 + k)
    again, _ = _tick(restarted, cursor)
    assert [r.partition_key for r in again] == ["2024-05-17T17:00"]
    # losing the cursor re-derives the same run keys, which Dagster de-duplicates
    replay, _ = _tick(restarted, None)
    assert {r.run_key for r in first} <= {r.run_key for r in replay}


def test_files_outside_the_run_and_hostile_names_are_ignored(watched):
    directory, sensor = watched
    _drop(directory, 1300000000)  # years before SIM
    (directory / "V-V1SIM-1400000118-60 (copy).gwf").write_bytes(b"")
    requests, cursor = _tick(sensor)
    assert requests == []


def test_ten_thousand_files_in_one_evaluation(watched):
    directory, sensor = watched
    for k in range(10_000):
        _drop(directory, START + 8 * k, duration=8)
    started = time.perf_counter()
    requests, cursor = _tick(sensor)
    elapsed = time.perf_counter() - started
    # 80,000 s of data: 266 complete 5-minute windows (the last one is still filling)
    assert len(requests) == 266 and len({r.run_key for r in requests}) == 266
    assert "2024-05-18T15:05" not in {r.partition_key for r in requests}  # still filling
    assert elapsed < DAGSTER_SENSOR_TIMEOUT_S  # a functional limit: Dagster kills slower evaluations


def test_sensor_requests_materialize_the_new_windows(sim_frames, tmp_path, monkeypatch):
    """Frames dropped in -> sensor request -> the requested partition materializes."""
    import shutil

    directory = tmp_path / "frames"
    directory.mkdir()
    for path in sorted(sim_frames.glob("*.gwf"))[:7]:
        shutil.copy(path, directory)
    run = sim_run(directory)
    requests, _ = _tick(new_frames_sensor(run, "SIM_ingest"))
    assert [r.partition_key for r in requests] == ["2024-05-17T16:55"]
    job = build_definitions({"SIM": run}).resolve_job_def("SIM_ingest")
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(instance=instance, partition_key=requests[0].partition_key, tags=requests[0].tags)
        assert result.success
        event = instance.get_latest_materialization_event(dg.AssetKey(["SIM", "raw_strain_segments"]))
        assert event.asset_materialization.partition == "2024-05-17T16:55"


def test_the_sensor_starts_from_what_is_already_ingested(sim_frames, tmp_path):
    """After the main job (windows ingested in process), the first sensor evaluation ingests nothing again;
    a window whose files then change is requested."""
    import shutil

    directory = tmp_path / "frames"
    directory.mkdir()
    for path in sorted(sim_frames.glob("*.gwf"))[:7]:
        shutil.copy(path, directory)
    run = sim_run(directory)
    sensor = new_frames_sensor(run, "SIM_ingest")
    job = build_definitions({"SIM": run}).resolve_job_def("SIM_ingest")
    with dg.instance_for_test() as instance:
        assert job.execute_in_process(instance=instance, partition_key="2024-05-17T16:55").success

        def tick(cursor):
            context = dg.build_sensor_context(cursor=cursor, instance=instance, resources={"storage": GlitchflowStorage()})
            result = sensor(context)
            return result.run_requests, result.cursor

        requests, cursor = tick(None)
        assert requests == []
        victim = sorted(directory.glob("*.gwf"))[3]
        victim.write_bytes(victim.read_bytes())  # rewritten in place: same bytes, new mtime
        os.utime(victim, (time.time() + 5, time.time() + 5))
        requests, _ = tick(cursor)
        assert [r.partition_key for r in requests] == ["2024-05-17T16:55"]
