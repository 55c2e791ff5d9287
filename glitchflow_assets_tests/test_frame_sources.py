"""Frame sources other than a directory: LAL cache and Virgo FFL lists, and a real GWDataFind server on 127.0.0.1.

Each source must give ingest and the new-frame sensor exactly what a directory of the same files gives, pick up files
appended to the list or newly served, and name the list, line or server when it cannot be used.
"""

import dataclasses
import shutil
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from glitchflow_assets.core.artifacts.raw_strain_segments import read_strain, read_summary
from glitchflow_assets.core.ingest.assemble import IngestError, ingest_window
from glitchflow_assets.core.io.cache import FrameListError, read_frame_list
from glitchflow_assets.core.io.datafind import DatafindError, find_frame_urls
from glitchflow_assets.core.io.discovery import find_frames
from glitchflow_assets.core.io.frames import scan_frame_dir
from glitchflow_assets.core.runs.observing import SegmentSource
from glitchflow_assets.core.runs.registry import FrameSource, RegistryError, load_registry, span_of_frames
from glitchflow_assets.core.runs.windows import windows_overlapping
from glitchflow_assets.defs.families import build_definitions
from glitchflow_assets.defs.sensors import new_frames_sensor
from glitchflow_assets.lib.names import RAW
from glitchflow_assets.lib.resources import GlitchflowStorage
from glitchflow_assets_tests.conftest import sensor_tick, sim_run
from glitchflow_assets_tests.servers import DatafindServer
from glitchflow_assets_tests.services import free_port, wait_for

FIRST, SECOND = "2024-05-17T16:55", "2024-05-17T17:00"


def _ffl(path: Path, frames: list[Path]) -> Path:
    """A Virgo FFL file: ``PATH GPS DUR 0 0`` per frame (GPS and duration from the T050017 name)."""
    lines = [f"{f} {f.name.split('-')[2]} {f.name.split('-')[3].split('.')[0]} 0 0\n" for f in frames]
    with open(path, "a") as out:
        out.writelines(lines)
    return path


def _lal_cache(path: Path, frames: list[Path]) -> Path:
    """A LAL cache: ``OBS TAG GPS DUR URL`` per frame."""
    path.write_text("".join(f"{' '.join(f.stem.split('-'))} file://localhost{f}\n" for f in frames))
    return path


@pytest.fixture(scope="module")
def datafind(tmp_path_factory):
    server = DatafindServer(tmp_path_factory.mktemp("gwdatafind"))
    server.start()
    yield server
    server.stop()


def _served(server: DatafindServer, observatory: str, frametype: str, start: int, end: int, ext: str = "gwf") -> list[str]:
    """What the server lists; nothing while it has not read the new listing yet (it answers 404 for a type it does not hold)."""
    try:
        return [f.location for f in find_frame_urls(server.uri, observatory, frametype, start, end, ext)]
    except DatafindError as exc:
        assert "holds no" in str(exc)
        return []


# -- lists --------------------------------------------------------------------------------------------------------


def test_a_cache_and_an_ffl_list_the_files_a_directory_scan_finds(sim_frames, tmp_path):
    frames = sorted(sim_frames.glob("*.gwf"))
    scanned = [f for f, _ in scan_frame_dir(sim_frames)[0]]
    cache = _lal_cache(tmp_path / "sim.lcf", frames)
    ffl = _ffl(tmp_path / "sim.ffl", frames)
    for path in (cache, ffl):
        found, skipped = find_frames(FrameSource("cache", path), 0, 0)
        assert [f for f, _ in found] == scanned and skipped == []


def test_an_ffl_includes_another_and_refuses_to_include_itself(sim_frames, tmp_path):
    frames = sorted(sim_frames.glob("*.gwf"))
    _ffl(tmp_path / "day1.ffl", frames[:3])
    top = _ffl(tmp_path / "all.ffl", frames[3:])
    with open(top, "a") as out:
        out.write("day1.ffl\n")  # relative to the including file, as the Fr library resolves it
    assert sorted(Path(e.location).name for e in read_frame_list(top)) == sorted(f.name for f in frames)
    loop = tmp_path / "loop.ffl"
    loop.write_text(f"{loop}\n")
    with pytest.raises(FrameListError, match="included from itself"):
        read_frame_list(loop)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.lcf", "V V1SIM 1400000058 60\n", r"bad.lcf, line 1: a LAL cache line has 5 fields"),
        ("bad.lcf", "# ok\nV V1SIM soon 60 file:///x/V-V1SIM-1400000058-60.gwf\n", r"bad.lcf, line 2: GPS start 'soon'"),
        ("bad.ffl", "/x/V-V1SIM-1400000058-60.gwf 1400000058\n", r"bad.ffl, line 1: a FFL line has at least 3 fields"),
        ("bad.ffl", "/x/V-V1SIM-1400000058-60.gwf 1400000058 -60 0 0\n", r"bad.ffl, line 1: .* out of range"),
        ("bad.ffl", "SEGMENT_LIST_START\n", r"bad.ffl, line 1: FFL segment-list blocks"),
        ("bad.ffl", b"\xff\xfe\n", r"cannot read frame list .*bad.ffl"),
    ],
)
def test_a_broken_list_is_an_error_naming_file_and_line(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(FrameListError, match=message):
        read_frame_list(path)


def test_listed_files_that_cannot_be_used_are_skipped_with_the_line_that_named_them(sim_frames, tmp_path):
    good = sorted(sim_frames.glob("*.gwf"))[0]
    misnamed = tmp_path / "V-V1SIM-1400000000-60.gwf"
    shutil.copy(good, misnamed)
    cache = tmp_path / "sim.lcf"
    cache.write_text(
        f"V V1SIM {good.stem.split('-')[2]} 60 file://localhost{good}\n"
        "V V1SIM 1400000400 60 gsiftp://ldr.example.org/frames/V-V1SIM-1400000400-60.gwf\n"  # remote
        f"V V1SIM 1400000460 60 {tmp_path}/V-V1SIM-1400000460-60.gwf\n"  # listed, not copied yet
        f"V V1SIM 1400000000 120 {misnamed}\n"  # the list and the name disagree
    )
    found, skipped = find_frames(FrameSource("cache", cache), 0, 0)
    assert [f.path for f, _ in found] == [good]
    reasons = {s.path.name: s.reason for s in skipped}
    assert "not a local file" in reasons["V-V1SIM-1400000400-60.gwf"] and f"{cache}:2" in reasons["V-V1SIM-1400000400-60.gwf"]
    assert f"{cache}:3" in reasons["V-V1SIM-1400000460-60.gwf"]
    assert "1400000000+60" in reasons[misnamed.name] and "1400000000+120" in reasons[misnamed.name]


def test_ingest_through_a_cache_writes_what_the_directory_gives(sim_frames, sim_windows, tmp_path):
    window = sim_windows[0]
    by_dir = ingest_window(sim_run(sim_frames), window, tmp_path / "dir.h5")
    listed = FrameSource("cache", _lal_cache(tmp_path / "sim.lcf", sorted(sim_frames.glob("*.gwf"))))
    by_list = ingest_window(sim_run(sim_frames, frames=listed), window, tmp_path / "list.h5")
    assert np.array_equal(read_strain(by_dir.path)[0], read_strain(by_list.path)[0])
    assert [c.name for c in by_list.channels] == [c.name for c in by_dir.channels]
    assert all(Path(f.path).is_absolute() and Path(f.path).is_file() for f in by_list.frames)  # recorded where they are


def test_the_sensor_requests_windows_as_lines_are_appended_to_a_list(sim_frames, tmp_path):
    frames = sorted(sim_frames.glob("*.gwf"))
    ffl = _ffl(tmp_path / "SIM.ffl", frames[:7])  # the first window and its margins
    sensor = new_frames_sensor(sim_run(tmp_path, frames=FrameSource("cache", ffl)), "SIM_ingest")
    requests, cursor = sensor_tick(sensor)
    assert [r.partition_key for r in requests] == [FIRST]
    assert sensor_tick(sensor, cursor)[0] == []  # the same list: nothing again
    _ffl(ffl, frames[7:])
    requests, cursor = sensor_tick(sensor, cursor)
    assert [r.partition_key for r in requests] == [SECOND]
    assert sensor_tick(sensor, cursor)[0] == []


# -- a GWDataFind server ------------------------------------------------------------------------------------------


def test_the_sensor_and_ingest_find_frames_through_a_gwdatafind_server(datafind, sim_frames, tmp_path):
    """Frames listed in a Virgo FFL under the server; the server found through the registry; a file added to the
    listing is requested once the server serves it."""
    frames = sorted(sim_frames.glob("*.gwf"))
    ffl = _ffl(datafind.ffl_dir / "V1SIM.ffl", frames[:7])
    source = FrameSource("gwdatafind", Path(), url=datafind.uri, observatory="V", frametype="V1SIM")
    run = sim_run(sim_frames, frames=source)
    wait_for(lambda: len(_served(datafind, "V", "V1SIM", run.gps_start - 60, run.gps_end)) == 7, 30, "the server to list 7 files")
    sensor = new_frames_sensor(run, "SIM_ingest")
    assert datafind.uri in sensor.description
    requests, cursor = sensor_tick(sensor)
    assert [r.partition_key for r in requests] == [FIRST]
    job = build_definitions({"SIM": run}).resolve_job_def("SIM_ingest")
    with dg.instance_for_test() as instance:
        assert job.execute_in_process(instance=instance, partition_key=FIRST, tags=requests[0].tags).success
    window = windows_overlapping(run.gps_start, run.gps_start + 1, run.cadence)[0]
    by_dir = ingest_window(sim_run(sim_frames), window, tmp_path / "dir.h5")
    by_server = read_summary(GlitchflowStorage().window_file("SIM", RAW, window))
    assert np.array_equal(read_strain(by_dir.path)[0], read_strain(by_server.path)[0])
    _ffl(ffl, frames[7:])
    wait_for(lambda: len(_served(datafind, "V", "V1SIM", run.gps_start - 60, run.gps_end)) == len(frames), 30, "the new files")
    requests, cursor = sensor_tick(sensor, cursor)
    assert [r.partition_key for r in requests] == [SECOND]
    assert sensor_tick(sensor, cursor)[0] == []


def test_a_server_that_does_not_answer_is_an_error_naming_it(sim_windows, sim_frames, tmp_path):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(DatafindError, match=rf"V-V1SIM over GPS \[1400000000, 1400000100\) \(gwf\) from {url}"):
        find_frame_urls(url, "V", "V1SIM", 1400000000, 1400000100, "gwf")
    run = sim_run(sim_frames, frames=FrameSource("gwdatafind", Path(), url=url, observatory="V", frametype="V1SIM"))
    with pytest.raises(IngestError, match=rf"window {FIRST} .*GWDataFind query .* from {url} failed"):
        ingest_window(run, sim_windows[0], tmp_path / "w.h5")
    assert not (tmp_path / "w.h5").exists()
    assert span_of_frames(dataclasses.replace(run, span_follows_frames=True)).gps_end == run.gps_end  # loading never fails on it


# -- the registry -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        ("{kind: gwdatafind, observatory: V, type: HoftOnline}", "field frames.url: required for frames of kind gwdatafind"),
        ("{kind: gwdatafind, url: 'ftp://x', observatory: V, type: HoftOnline}", "field frames.url"),
        ("{kind: gwdatafind, url: 'http://x', observatory: 'V/..', type: HoftOnline}", "field frames.observatory"),
        ("{kind: gwdatafind, url: 'http://x', observatory: V, type: HoftOnline, path: /x}", "field frames.path: not used"),
        ("{kind: cache, format: gwf}", "field frames.path: required for frames of kind cache"),
        ("{kind: cache, path: /x.ffl, url: 'http://x'}", "field frames.url: not used by frames of kind cache"),
        ("{kind: cache, path: /x.ffl, format: root}", "field frames.format"),
        ("{kind: gwf, path: /x, format: gwosc-hdf5}", "field frames.format: not used by frames of kind gwf"),
    ],
)
def test_a_frame_source_entry_missing_or_mixing_fields_is_refused(tmp_path, monkeypatch, frames, message):
    registry = tmp_path / "runs.yaml"
    registry.write_text(f"runs:\n  X: {{gps_start: 1, gps_end: 2, window: 5min, strain_channel: a, frames: {frames}}}\n")
    monkeypatch.setenv("GLITCHFLOW_RUNS", str(registry))
    with pytest.raises(RegistryError, match=rf"run 'X': {message}"):
        load_registry()


# -- real detector files ------------------------------------------------------------------------------------------


def test_real_gwosc_strain_found_through_a_cache_and_a_server_with_its_dq_segments(gw150914_run, datafind, tmp_path):
    """GW150914's GWOSC HDF5 strain (LIGO Hanford) listed in a LAL cache and served from a diskcache dump, its observing
    segments from the file's data-quality bits."""
    hdf5 = next(gw150914_run.frames.path.glob("*.hdf5"))
    window = windows_overlapping(gw150914_run.gps_start, gw150914_run.gps_end, gw150914_run.cadence)[0]
    by_dir = ingest_window(gw150914_run, window, tmp_path / "dir.h5")
    cache = FrameSource("cache", _lal_cache(tmp_path / "H1.lcf", [hdf5]), format="gwosc-hdf5")
    by_cache = ingest_window(dataclasses.replace(gw150914_run, frames=cache), window, tmp_path / "cache.h5")
    obs, tag, start, duration = hdf5.stem.split("-")
    datafind.diskcache.write_text(
        f"# version: 0x0101\n{hdf5.parent},{obs},{tag},.hdf5,1,{duration} 0 1 {{{start} {int(start) + int(duration)}}}\n"
    )
    wait_for(lambda: _served(datafind, "H", tag, int(start), int(start) + 32, "hdf5"), 30, "the server to serve the GWOSC file")
    served = FrameSource("gwdatafind", Path(), format="gwosc-hdf5", url=datafind.uri, observatory="H", frametype=tag)
    by_server = ingest_window(dataclasses.replace(gw150914_run, frames=served), window, tmp_path / "server.h5")
    for summary in (by_cache, by_server):
        assert np.array_equal(read_strain(by_dir.path)[0], read_strain(summary.path)[0])
        assert summary.strain.segments == by_dir.strain.segments and summary.frames[0].name == hdf5.name
    # observing segments from the file's own data-quality bits, by the file's own names: all set in these 32 s (mask 127)
    dq = SegmentSource(channel="H1:GWOSC-DQMASK", bits=("DATA", "CBC_CAT1", "BURST_CAT1"))
    observed = ingest_window(dataclasses.replace(gw150914_run, frames=served, segments=dq), window, tmp_path / "dq.h5")
    assert observed.observing == [(1126259446, 1126259478)] and observed.attrs["observing_s"] == 31  # the window ends at 09:51 UTC
    assert observed.attrs["observing_source"] == "H1:GWOSC-DQMASK bits DATA, CBC_CAT1, BURST_CAT1 (named by the file)"
    assert np.array_equal(read_strain(by_dir.path)[0], read_strain(observed.path)[0])
    unset = SegmentSource(channel="H1:GWOSC-DQMASK", bits=(0, 7))  # bit 7 is set nowhere in the file
    outside = ingest_window(dataclasses.replace(gw150914_run, frames=cache, segments=unset), window, tmp_path / "none.h5")
    assert outside.outside_observing and outside.attrs["livetime"] == 0
    unknown = SegmentSource(channel="H1:GWOSC-DQMASK", bits=("SCIENCE",))
    with pytest.raises(IngestError, match=r"state vector H1:GWOSC-DQMASK: no bit named 'SCIENCE' \(its bit names: DATA, CBC_CAT1"):
        ingest_window(dataclasses.replace(gw150914_run, frames=cache, segments=unknown), window, tmp_path / "bad.h5")


def test_real_hlv_frame_served_from_an_ffl_is_ingested(hw100916_run, datafind, tmp_path):
    """The 2010 hardware-injection GWF (H1, L1, V1 strain) served by the server from a Virgo FFL."""
    gwf = next(hw100916_run.frames.path.glob("*.gwf"))
    _ffl(datafind.ffl_dir / "HLV.ffl", [gwf])
    wait_for(lambda: _served(datafind, "HLV", "HW100916", 968654552, 968654553), 30, "the server to serve the HLV frame")
    served = FrameSource("gwdatafind", Path(), url=datafind.uri, observatory="HLV", frametype="HW100916")
    window = windows_overlapping(hw100916_run.gps_start, hw100916_run.gps_end, hw100916_run.cadence)[0]
    by_dir = ingest_window(hw100916_run, window, tmp_path / "dir.h5")
    by_server = ingest_window(dataclasses.replace(hw100916_run, frames=served), window, tmp_path / "server.h5")
    assert np.array_equal(read_strain(by_dir.path)[0], read_strain(by_server.path)[0])
    assert [c.name for c in by_server.channels] == [c.name for c in by_dir.channels] and len(by_server.channels) > 1
