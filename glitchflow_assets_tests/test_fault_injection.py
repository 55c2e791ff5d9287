"""What the platform survives: each test injects one fault an operator's bad day brings, for real, on
frames made by the project's simulator, and states what must happen.

Frames and file system
- a frame that crashed LALFrame (SIGSEGV) is skipped and named; a decoder that dies mid-read (a real SIGSEGV)
  is named with the file and replaced; the process lives on
- a frame whose decoder hangs (here: a FIFO swapped in after the scan) times out with its name
- a checksum-damaged frame is skipped as damaged, and never displaces an intact copy of the same data
- empty, junk, misnamed (1 s off) and huge-span files never displace a real frame
- a re-ingest with less data than the existing window file refuses and keeps the file (unless allowed)
- a window with no valid strain fails, whatever the auxiliary channels hold
- a channel at a rate that cannot be resampled exactly fails with channel, file and window named
- a truncated artifact file fails with its path; a truncated registered model with its version and file
- loops, links to directories, FIFOs and dangling links in the frame directory: ``test_bad_input``

New-frame sensor
- a file rewritten or completed in place re-ingests its window exactly once
- a file stamped in 2100 does not blind the sensor
- late files copied with old mtimes are found
- deleted files are reported, and their windows are not re-ingested with less data
- a junk name claiming 9,999,999 s requests nothing

Elsewhere: registry type errors (``test_runs``), non-finite training / evaluation, weight digests and a dead
MLflow server (``test_ml_quality``, ``test_ml_units``).
"""

import hashlib
import os
import shutil
import signal
import struct
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import psutil
import pytest
from gwpy.timeseries import TimeSeries, TimeSeriesDict

from glitchflow_assets.core import frame_decoder
from glitchflow_assets.core.frame_watch import WatchCursor, plan_window_requests
from glitchflow_assets.core.frames import FrameError, parse_frame_name, scan_frame_dir
from glitchflow_assets.core.ingest import IngestError, IngestOptions, ingest_window
from glitchflow_assets.core.raw_segments import read_summary
from glitchflow_assets.core.sim import VIRGO_SCENARIO
from glitchflow_assets.core.windows import Cadence, windows_overlapping
from glitchflow_assets.defs.sensors import new_frames_sensor
from glitchflow_assets_tests.conftest import drop_frame_file as _drop
from glitchflow_assets_tests.conftest import sensor_tick as _tick
from glitchflow_assets_tests.conftest import sim_run

CHANNELS = [c.name for c in VIRGO_SCENARIO.channels]
STRAIN = VIRGO_SCENARIO.strain


def _minute(frames_dir, **changes):
    """A 1-minute-window variant of SIM over ``frames_dir`` and its second window (frames are 60 s)."""
    run = sim_run(frames_dir, cadence=Cadence.parse("1min"), **changes)
    return run, windows_overlapping(run.gps_start, run.gps_start + 120, run.cadence)[1]


def _frame_at(frames_dir, gps, tag="V1SIM"):
    return frames_dir / f"V-{tag}-{gps}-60.gwf"


def _crashing_copy(good, dest):
    """``good`` cut in half, then its end record re-appended with nBytes 0: it passes the framing check, and
    LALFrame then reads a table of contents from the middle of the data and dies with SIGSEGV (frameCPP refuses it)."""
    data = good.read_bytes()
    cut = bytearray(data[: len(data) // 2] + data[-40:])
    struct.pack_into("<Q", cut, len(cut) - 28, 0)
    dest.write_bytes(bytes(cut))


def _flip_middle(path, n=4096):
    """Invert ``n`` bytes in the middle of a file: framing intact, one channel's checksum broken."""
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + n] = bytes(b ^ 0xFF for b in data[mid : mid + n])
    path.write_bytes(bytes(data))


# --- frames and file system ------------------------------------------------------------------------


def test_a_frame_that_crashed_lalframe_is_skipped_and_named(frames_copy, tmp_path):
    run, window = _minute(frames_copy)
    victim = _frame_at(frames_copy, window.gps_start)
    _crashing_copy(victim, victim)
    with pytest.raises(FrameError) as info:
        frame_decoder.probe(parse_frame_name(victim), "gwf", STRAIN)
    assert str(victim) in str(info.value)
    # the window's neighbours still ingest; the lost minute is named as skipped
    neighbour = windows_overlapping(window.gps_end, window.gps_end + 1, run.cadence)[0]
    summary = ingest_window(run, neighbour, tmp_path / "next.h5")
    assert victim.name in dict(summary.skipped)
    assert 59.9 < summary.attrs["livetime"] < 60.0  # all but the resampling filter's edge next to the lost minute


def test_a_decoder_that_crashes_mid_read_is_named_and_replaced(frames_copy, tmp_path):
    """The decoder really dies with SIGSEGV inside a request (held there on a FIFO named like a frame); the caller
    gets an error naming the file and the signal, and the next read starts a fresh decoder."""
    fifo = tmp_path / "V-V1SIM-1400000118-60.gwf"
    os.mkfifo(fifo)
    with ThreadPoolExecutor(1) as pool:
        probing = pool.submit(frame_decoder.probe, parse_frame_name(fifo), "gwf", STRAIN)
        writer = _open_writer_when_read(fifo)  # the decoder is inside open(): it is inside the request
        try:
            _decoder_holding(fifo).send_signal(signal.SIGSEGV)
            with pytest.raises(FrameError, match="SIGSEGV") as info:
                probing.result(timeout=60)
        finally:
            os.close(writer)
    assert str(fifo) in str(info.value)
    intact = _frame_at(frames_copy, sim_run(frames_copy).gps_start)
    assert STRAIN in frame_decoder.probe(parse_frame_name(intact), "gwf", STRAIN).channels


def _open_writer_when_read(fifo, timeout_s=60.0) -> int:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO until a reader has it open
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _decoder_holding(fifo, timeout_s=60.0) -> psutil.Process:
    """The child process that has ``fifo`` in its file table. A writer's open succeeds while the reader is still
    inside its own open(), before the kernel installs the reader's descriptor, so one look right after the writer's
    open can miss it (it did ~3 times in 4 in a tight loop, and the test then waited forever on an unsignalled
    decoder): look until it is there."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        holders = [child for child in psutil.Process().children() if _holds_open(child.pid, fifo)]
        if holders:
            (holder,) = holders  # one request, one decoder
            return holder
        time.sleep(0.005)
    raise AssertionError(f"no frame decoder opened {fifo} within {timeout_s:g} s")


def _holds_open(pid: int, path) -> bool:
    held = []
    try:
        descriptors = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:  # the child exited meanwhile
        return False
    for fd in descriptors:
        try:
            held.append(os.readlink(fd))
        except OSError:  # closed between listing and reading
            continue
    return str(path) in held


def test_a_hung_decoder_times_out_naming_the_file(tmp_path, monkeypatch):
    fifo = tmp_path / "V-V1SIM-1400000118-60.gwf"
    os.mkfifo(fifo)  # the scan skips FIFOs; this one stands for a file swapped in after it (or a stalled mount)
    monkeypatch.setattr(frame_decoder, "TIMEOUT_S", 2.0)
    started = time.monotonic()
    with pytest.raises(FrameError, match="did not answer") as info:
        frame_decoder.probe(parse_frame_name(fifo), "gwf", STRAIN)
    assert str(fifo) in str(info.value) and time.monotonic() - started < 30


def test_a_checksum_damaged_frame_is_skipped_as_damaged(frames_copy, tmp_path):
    run, window = _minute(frames_copy)
    victim = _frame_at(frames_copy, window.gps_start)
    _flip_middle(victim)
    with pytest.raises(IngestError) as info:  # the only file holding this minute's strain
        ingest_window(run, window, tmp_path / "w.h5")
    assert victim.name in str(info.value) and "checksum" in str(info.value)


def test_a_damaged_duplicate_never_displaces_the_intact_copy(frames_copy, tmp_path):
    run, window = _minute(frames_copy)
    good = _frame_at(frames_copy, window.gps_start)
    damaged = _frame_at(frames_copy, window.gps_start, tag="A1")  # sorts first, same span, same channels
    shutil.copy(good, damaged)
    _flip_middle(damaged)
    summary = ingest_window(run, window, tmp_path / "w.h5")
    assert summary.attrs["livetime"] == pytest.approx(60.0)
    assert good.name in {f.name for f in summary.frames} and "checksum" in dict(summary.skipped)[damaged.name]


@pytest.mark.parametrize(
    "name, content",
    [
        ("V-A-{gps}-60.gwf", b""),  # empty, at a real frame's GPS
        ("V-A-{gps}-60.gwf", b"junk" * 100),  # junk, same
        ("V-A-1400000000-9999999.gwf", b"junk"),  # junk claiming 116 days
        ("V-A-{gps_plus_1}-60.gwf", None),  # a real frame's copy named 1 s off
    ],
    ids=["empty", "junk", "huge-span", "one-second-off"],
)
def test_junk_and_misnamed_files_never_displace_a_real_frame(frames_copy, tmp_path, name, content):
    run, window = _minute(frames_copy)
    real = _frame_at(frames_copy, window.gps_start)
    junk = frames_copy / name.format(gps=window.gps_start, gps_plus_1=window.gps_start + 1)
    junk.write_bytes(real.read_bytes() if content is None else content)
    summary = ingest_window(run, window, tmp_path / "w.h5")
    assert summary.attrs["livetime"] == pytest.approx(60.0)
    assert real.name in {f.name for f in summary.frames} and junk.name not in {f.name for f in summary.frames}
    assert junk.name in dict(summary.skipped) or junk.name in {s.path.name for s in scan_frame_dir(frames_copy)[1]}


def test_a_reingest_with_less_data_refuses_and_keeps_the_file(frames_copy, tmp_path):
    run = sim_run(frames_copy)
    window = windows_overlapping(run.gps_start, run.gps_start + 1, run.cadence)[0]
    out = tmp_path / "w.h5"
    ingest_window(run, window, out)
    before = hashlib.sha256(out.read_bytes()).hexdigest()
    lost = _frame_at(frames_copy, window.gps_start + 120)
    lost.unlink()  # one minute of five gone (moved away, or a disk error)
    with pytest.raises(IngestError, match="would replace 300 s of strain data") as info:
        ingest_window(run, window, out)
    assert str(out) in str(info.value) and lost.name in str(info.value)
    assert hashlib.sha256(out.read_bytes()).hexdigest() == before


def test_allow_less_data_replaces_the_file(frames_copy, tmp_path):
    run, window = _minute(frames_copy)
    out = tmp_path / "w.h5"
    ingest_window(run, window, out)
    for gps in (window.gps_start - 60, window.gps_start + 60):  # lose the pads: edges become gaps
        _frame_at(frames_copy, gps).unlink()
    summary = ingest_window(run, window, out, options=IngestOptions(allow_less_data=True))
    assert summary.attrs["livetime"] < 60.0


def test_a_window_with_no_valid_strain_fails_whatever_the_aux_channels_hold(frames_copy, tmp_path):
    run, window = _minute(frames_copy)
    for gps in (window.gps_start - 60, window.gps_start, window.gps_start + 60):
        path = _frame_at(frames_copy, gps)
        data = TimeSeriesDict.read(str(path), CHANNELS)
        data[STRAIN] = TimeSeries(np.full(data[STRAIN].size, np.nan), t0=data[STRAIN].t0, sample_rate=data[STRAIN].sample_rate, name=STRAIN)
        path.unlink()
        data.write(str(path), format="gwf")
    with pytest.raises(IngestError, match="no valid strain") as info:
        ingest_window(run, window, tmp_path / "w.h5")
    assert window.key in str(info.value)
    assert not (tmp_path / "w.h5").exists()


def test_a_channel_at_an_odd_rate_names_channel_file_and_window(frames_copy, tmp_path):
    run, window = _minute(frames_copy, channel_rates={})
    path = _frame_at(frames_copy, window.gps_start)
    data = TimeSeriesDict.read(str(path), CHANNELS)
    odd = "V1:SUSP_WE_F0_TZ"
    data[odd] = TimeSeries(np.zeros(60_018), t0=data[odd].t0, sample_rate=1000.3, name=odd)
    path.unlink()
    data.write(str(path), format="gwf")
    with pytest.raises(IngestError) as info:
        ingest_window(run, window, tmp_path / "w.h5")
    message = str(info.value)
    assert odd in message and path.name in message and window.key in message and "1000.3" in message


def test_a_truncated_artifact_fails_with_its_path(frames_copy, tmp_path):
    run, window = _minute(frames_copy)
    out = ingest_window(run, window, tmp_path / "w.h5").path
    out.write_bytes(out.read_bytes()[:4096])
    with pytest.raises(OSError, match=str(out)):
        read_summary(out)


# --- the new-frame sensor ---------------------------------------------------------------------------

START = 1400000118  # first SIM window: 2024-05-17T16:55 UTC


@pytest.fixture
def watched(tmp_path):
    directory = tmp_path / "frames"
    directory.mkdir()
    for k in range(6):  # the first window and the 8 s margin its file keeps beyond its end
        _drop(directory, START + 60 * k, mtime=1000 + k)
    return directory, new_frames_sensor(sim_run(directory), "SIM_ingest")


def test_a_file_rewritten_in_place_reingests_its_window_exactly_once(watched):
    directory, sensor = watched
    first, cursor = _tick(sensor)
    _drop(directory, START + 120, mtime=1002, content=b"rewritten, same name and mtime, new size")
    again, cursor = _tick(sensor, cursor)
    assert [r.partition_key for r in again] == ["2024-05-17T16:55"] and again[0].run_key != first[0].run_key
    assert _tick(sensor, cursor)[0] == []


def test_a_file_stamped_in_2100_does_not_blind_the_sensor(watched):
    directory, sensor = watched
    _drop(directory, START + 360, mtime=4102444800)  # 2100-01-01
    first, cursor = _tick(sensor)
    for k in range(2, 6):
        _drop(directory, START + 300 + 60 * k, mtime=2000 + k)  # ordinary files after it
    later, _ = _tick(sensor, cursor)
    assert [r.partition_key for r in later] == ["2024-05-17T17:00"]


def test_late_files_copied_with_old_mtimes_are_found(watched):
    directory, sensor = watched
    for k in (0, 1, 3, 4):
        _drop(directory, START + 300 + 60 * k, mtime=3000 + k)
    _drop(directory, START + 900, mtime=3010)  # the stream moved on: 17:00 is ingested with a gap
    first, cursor = _tick(sensor)
    assert "2024-05-17T17:00" in {r.partition_key for r in first}
    _drop(directory, START + 420, mtime=500)  # rsync -a of the missing minute: an mtime older than all
    late, _ = _tick(sensor, cursor)
    assert [r.partition_key for r in late] == ["2024-05-17T17:00"]


def test_deleted_files_are_reported_and_not_reingested(watched):
    directory, _ = watched
    run = sim_run(directory)
    found, _ = scan_frame_dir(directory)
    plan = plan_window_requests(found, WatchCursor(), run.cadence, (run.gps_start, run.gps_end), now=time.time())
    assert [r.window.key for r in plan.requests] == ["2024-05-17T16:55"]
    (directory / f"V-V1SIM-{START + 60}-60.gwf").unlink()
    found, _ = scan_frame_dir(directory)
    after = plan_window_requests(found, plan.cursor, run.cadence, (run.gps_start, run.gps_end), now=time.time())
    assert after.requests == [] and any("2024-05-17T16:55" in n and "deleted" in n for n in after.notices)
    for path in directory.iterdir():
        path.unlink()
    gone = plan_window_requests([], after.cursor, run.cadence, (run.gps_start, run.gps_end), now=time.time())
    assert gone.requests == [] and any("every frame file was deleted" in n for n in gone.notices)


def test_a_junk_name_claiming_a_huge_span_requests_nothing(tmp_path):
    directory = tmp_path / "frames"
    directory.mkdir()
    _drop(directory, 1400000000, duration=9999999, content=b"junk")
    sensor = new_frames_sensor(sim_run(directory, cadence=Cadence.parse("1min")), "SIM_ingest")
    started = time.perf_counter()
    requests, _ = _tick(sensor)
    assert requests == [] and time.perf_counter() - started < 60


# --- the model path ---------------------------------------------------------------------------------


def test_a_truncated_registered_model_fails_naming_its_version_and_file(isolated_home):
    import torch

    from glitchflow_assets.core.ml.bundle import GlitchModel
    from glitchflow_assets.core.ml.data import Normalisation
    from glitchflow_assets.core.ml.model import AttentionUNet, ModelConfig
    from glitchflow_assets.core.ml.tracking import Tracker

    tracker = Tracker()
    torch.manual_seed(0)
    model = GlitchModel(AttentionUNet(ModelConfig.small(1)), Normalisation(("S", "A"), (3.0, 4.0)), {})
    with tracker.run("glitchflow-T", "train", {}) as run_id:
        tracker.log_model(run_id, model)
    ref = tracker.register("glitchflow-T", run_id, {})
    (weights,) = isolated_home.rglob("weights.safetensors")
    weights.write_bytes(weights.read_bytes()[:1000])  # a partial upload, a full disk
    with pytest.raises(ValueError, match="models:/glitchflow-T/1") as info:
        tracker.load(ref)
    assert "weights.safetensors" in str(info.value) and "SHA-256" in str(info.value)


def test_a_version_registered_before_the_pyfunc_layout_still_loads(isolated_home, tmp_path):
    """Model versions from before the MLflow-native layout hold the bare bundle at ``model/``: still read."""
    import torch

    from glitchflow_assets.core.ml import pyfunc_model, tracking
    from glitchflow_assets.core.ml.bundle import GlitchModel, save_bundle
    from glitchflow_assets.core.ml.data import Normalisation
    from glitchflow_assets.core.ml.model import AttentionUNet, ModelConfig

    assert pyfunc_model.BUNDLE == tracking.BUNDLE  # the artifact name the stored code looks up
    tracker = tracking.Tracker()
    torch.manual_seed(0)
    model = GlitchModel(AttentionUNet(ModelConfig.small(1)), Normalisation(("S", "A"), (3.0, 4.0)), {})
    with tracker.run("glitchflow-T", "train", {}) as run_id:
        tracker.client.log_artifacts(run_id, str(save_bundle(tmp_path / "model", model)), tracking.MODEL_ARTIFACT)
    ref = tracker.register("glitchflow-T", run_id, {})
    tiles = np.random.default_rng(0).exponential(1.0, (2, 2, 64, 64)).astype(np.float32)
    np.testing.assert_array_equal(tracker.load(ref).generate(tiles, torch.device("cpu")), model.generate(tiles, torch.device("cpu")))
