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

A campaign's faults
- ``glitchflow materialize`` stopped by SIGTERM, Ctrl-C or SIGKILL mid-window continues where it stopped: no run
  left STARTED, no temporary left, finished windows skipped
- a window's glitch_events file truncated, deleted or replaced by another: downstream fails naming asset, partition,
  file and the rebuild command; ``glitchflow materialize`` notices and heals; a replaced twin file; a model version
  deleted from the MLflow registry
- two writers of a window take turns (a lock), and two ``glitchflow materialize`` at once leave every file intact
- a frame declaring 8 GiB / 8 TiB of samples is refused naming it; a full disk while a twin, a window file or the
  dataset is written names the file, keeps the earlier one, and the process lives (HDF5 crashed it at exit)
- an auxiliary channel leaving the frames, one appearing and a native rate changing mid-run: ingest, selection and the
  dataset complete, the checks and the selection's table name each change, and no stage mixes two rates

Elsewhere: registry type errors (``test_runs``), non-finite training / evaluation, weight digests and a dead
MLflow server (``test_ml_quality``, ``test_ml_units``).
"""

import hashlib
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dagster as dg
import numpy as np
import psutil
import pytest
import yaml
from gwpy.timeseries import TimeSeries, TimeSeriesDict

from glitchflow_assets.cli import LOCAL_INSTANCE_YAML, main
from glitchflow_assets.core.artifacts.glitch_events import read_events
from glitchflow_assets.core.artifacts.raw_strain_segments import read_summary
from glitchflow_assets.core.artifacts.storage import exclusive, sha256sum
from glitchflow_assets.core.ingest.assemble import IngestError, IngestOptions, ingest_window, window_channels
from glitchflow_assets.core.io import decoder
from glitchflow_assets.core.io.frames import FrameError, parse_frame_name, scan_frame_dir
from glitchflow_assets.core.io.watch import WatchCursor, plan_window_requests
from glitchflow_assets.core.ml.tracking import Tracker
from glitchflow_assets.core.runs.registry import SHIPPED_REGISTRY, load_registry
from glitchflow_assets.core.runs.windows import Cadence, windows_overlapping
from glitchflow_assets.core.sim import VIRGO_SCENARIO
from glitchflow_assets.core.twin.event_segments import event_segments
from glitchflow_assets.core.twin.wiener import WienerConfig, WienerFilter
from glitchflow_assets.defs.families import build_definitions
from glitchflow_assets.defs.model import load_recorded_model
from glitchflow_assets.defs.sensors import new_frames_sensor
from glitchflow_assets.defs.twin import TWIN_DIGEST
from glitchflow_assets.lib.inputs import TWIN_SUFFIX, Inputs, materialized_and_intact
from glitchflow_assets.lib.resources import GlitchflowStorage
from glitchflow_assets_tests.conftest import SIM_MINUTES, sim_run
from glitchflow_assets_tests.conftest import drop_frame_file as _drop
from glitchflow_assets_tests.conftest import sensor_tick as _tick

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
        decoder.probe(parse_frame_name(victim), "gwf", STRAIN)
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
        probing = pool.submit(decoder.probe, parse_frame_name(fifo), "gwf", STRAIN)
        writer = _open_writer_when_read(fifo)  # the decoder is inside open(): it is inside the request
        try:
            _decoder_holding(fifo).send_signal(signal.SIGSEGV)
            with pytest.raises(FrameError, match="SIGSEGV") as info:
                probing.result(timeout=60)
        finally:
            os.close(writer)
    assert str(fifo) in str(info.value)
    intact = _frame_at(frames_copy, sim_run(frames_copy).gps_start)
    assert STRAIN in decoder.probe(parse_frame_name(intact), "gwf", STRAIN).channels


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
    monkeypatch.setenv("GLITCHFLOW_FRAME_READ_TIMEOUT_S", "2")
    started = time.monotonic()
    with pytest.raises(FrameError, match="did not answer") as info:
        decoder.probe(parse_frame_name(fifo), "gwf", STRAIN)
    assert str(fifo) in str(info.value) and time.monotonic() - started < 30


def test_a_checksum_damaged_frame_is_skipped_as_damaged(frames_copy, tmp_path):
    run, window = _minute(frames_copy)
    victim = _frame_at(frames_copy, window.gps_start)
    _flip_middle(victim)
    with pytest.raises(IngestError) as info:  # the only file holding this minute's strain
        ingest_window(run, window, tmp_path / "w.h5")
    assert victim.name in str(info.value) and "checksum" in str(info.value)


@pytest.mark.parametrize("channel_batch", [16, 1], ids=["one-batch", "batches-read-ahead"])
def test_a_damaged_duplicate_never_displaces_the_intact_copy(frames_copy, tmp_path, channel_batch):
    """Also when the damaged channel is decoded in a later batch, read while an earlier one is resampled: the window
    is assembled again without the file."""
    run, window = _minute(frames_copy)
    good = _frame_at(frames_copy, window.gps_start)
    damaged = _frame_at(frames_copy, window.gps_start, tag="A1")  # sorts first, same span, same channels
    shutil.copy(good, damaged)
    _flip_middle(damaged)
    summary = ingest_window(run, window, tmp_path / "w.h5", options=IngestOptions(channel_batch=channel_batch))
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


# --- a campaign's faults: interrupted commands, damaged artifacts, concurrent writers ----------------------------


def _sim_for_the_cli(frames_dir: Path, tmp_path: Path, monkeypatch, **changes) -> None:
    """SIM over ``frames_dir`` (with ``changes``, e.g. one window per run) through a user registry, and the CLI's
    instance configuration in $DAGSTER_HOME, for ``glitchflow`` processes and this one alike."""
    shipped = yaml.safe_load(SHIPPED_REGISTRY.read_text())["runs"]["SIM"]
    registry = tmp_path / "runs.yaml"
    registry.write_text(yaml.safe_dump({"runs": {"SIM": shipped | {"frames": {"kind": "gwf", "path": str(frames_dir)}} | changes}}))
    monkeypatch.setenv("GLITCHFLOW_RUNS", str(registry))
    shutil.copy(LOCAL_INSTANCE_YAML, Path(os.environ["DAGSTER_HOME"]) / "dagster.yaml")


def _materialize_command(*extra: str) -> list[str]:
    sim = load_registry()["SIM"]
    span = ["--gps-start", str(sim.gps_start), "--gps-end", str(sim.gps_start + SIM_MINUTES * 60)]
    return [sys.executable, "-m", "glitchflow_assets.cli", "materialize", "SIM", *span, *extra]


def _temporaries(root: Path) -> list[Path]:
    return [p for p in root.rglob(".*.tmp-*")]


def _runs(status: dg.DagsterRunStatus) -> list[dg.DagsterRun]:
    with dg.DagsterInstance.get() as instance:  # $DAGSTER_HOME, the CLI's
        return list(instance.get_runs(dg.RunsFilter(statuses=[status])))


def _started_run_of(partition: str, process: subprocess.Popen, timeout_s: float = 300.0) -> None:
    """Return once ``process`` is stopped (SIGSTOP) inside a STARTED run of window ``partition``: a signal sent now
    reaches it mid-run, whatever the timing (a run seen STARTED and then stopped cannot finish in between)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, "glitchflow materialize ended before it reached the window"
        if any(r.tags.get("dagster/partition") == partition for r in _runs(dg.DagsterRunStatus.STARTED)):
            process.send_signal(signal.SIGSTOP)
            if any(r.tags.get("dagster/partition") == partition for r in _runs(dg.DagsterRunStatus.STARTED)):
                return
            process.send_signal(signal.SIGCONT)
        time.sleep(0.05)
    raise AssertionError(f"no run of window {partition} started within {timeout_s:g} s")


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=["SIGTERM", "Ctrl-C", "SIGKILL"])
def test_an_interrupted_materialize_continues_where_it_stopped(sim_frames, isolated_home, tmp_path, monkeypatch, stop):
    """``glitchflow materialize`` stopped inside its second window's run: nothing STARTED stays, no partial file stays,
    and the same command again skips the finished window and completes the rest."""
    _sim_for_the_cli(sim_frames, tmp_path, monkeypatch, backfill_batch=1)
    keys = [w.key for w in windows_overlapping(*_sim_span(), load_registry()["SIM"].cadence)]
    process = subprocess.Popen(_materialize_command(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _started_run_of(keys[1], process)
    process.send_signal(stop)
    process.send_signal(signal.SIGCONT)
    out, _ = process.communicate(timeout=300)
    assert process.returncode == (-signal.SIGKILL if stop == signal.SIGKILL else 130), out
    if stop != signal.SIGKILL:
        assert "interrupted; its run is marked failed and no partial file was kept" in out
        assert not _runs(dg.DagsterRunStatus.STARTED) and not _temporaries(isolated_home)
    assert len(_runs(dg.DagsterRunStatus.FAILURE)) == (0 if stop == signal.SIGKILL else 1)

    again = subprocess.run(_materialize_command(), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert (
        f"SIM_ingest (raw_strain_segments, glitch_events, annalisa_scores): 1 window(s) {keys[0]} .. already materialized" in again.stdout
    )
    assert f"[2/2] SIM_ingest window {keys[1]}" in again.stdout
    if stop == signal.SIGKILL:  # the killed process's run, left STARTED, is marked failed by the next command
        assert "marked failed: 1 run(s) left STARTED by a glitchflow process that was killed" in again.stdout
    assert not _runs(dg.DagsterRunStatus.STARTED) and not _temporaries(isolated_home)
    with dg.DagsterInstance.get() as instance:
        done = materialized_and_intact(instance, load_registry()["SIM"])
        assert all(done(asset, key) for asset in ("raw_strain_segments", "glitch_events", "annalisa_scores") for key in keys)


def _sim_span() -> tuple[int, int]:
    sim = load_registry()["SIM"]
    return sim.gps_start, sim.gps_start + SIM_MINUTES * 60


def _scores_alone(instance, key: str) -> dg.ExecuteInProcessResult:
    """A run of annalisa_scores alone for window ``key`` (as a UI user materializes one asset), reading glitch_events."""
    return (
        build_definitions()
        .resolve_job_def("SIM_ingest")
        .execute_in_process(
            instance=instance, partition_key=key, asset_selection=[dg.AssetKey(["SIM", "annalisa_scores"])], raise_on_error=False
        )
    )


def _failure(result: dg.ExecuteInProcessResult) -> str:
    return " ".join(str(e.step_failure_data.user_failure_data.description) for e in result.all_events if e.is_step_failure)


def test_damaged_artifacts_fail_downstream_naming_the_rebuild_and_a_rerun_heals(sim_frames, isolated_home, capsys):
    """A window's glitch_events file truncated, deleted or replaced by another window's after it was materialized:
    a downstream step fails naming the asset, partition, file and the command that rebuilds it, and
    ``glitchflow materialize`` over the span notices and heals the chain."""
    shutil.copytree(sim_frames, isolated_home / "frames" / "SIM")
    start, end = _sim_span()
    assert main(["materialize", "SIM", "--gps-start", str(start), "--gps-end", str(end)]) == 0  # one batched run
    storage, sim = GlitchflowStorage(), load_registry()["SIM"]
    first, second = windows_overlapping(start, end, sim.cadence)
    events = storage.window_file("SIM", "glitch_events", first)
    rebuild = f"glitchflow materialize SIM --gps-start {first.gps_start} --gps-end {first.gps_end} --through glitch_events"
    damage = {
        "is damaged": lambda: events.write_bytes(events.read_bytes()[: events.stat().st_size // 2]),
        "is missing": events.unlink,
        "is not the one materialized": lambda: shutil.copy(storage.window_file("SIM", "glitch_events", second), events),
    }
    with dg.DagsterInstance.get() as instance:
        assert _scores_alone(instance, first.key).success
        for what, harm in damage.items():
            harm()
            message = _failure(_scores_alone(instance, first.key))
            assert f"SIM/glitch_events window {first.key}" in message and str(events) in message, message
            assert (what if what != "is damaged" else "cannot be read") in message and rebuild in message, message
            capsys.readouterr()
            assert main(["materialize", "SIM", "--gps-start", str(start), "--gps-end", str(end)]) == 0
            out = capsys.readouterr().out
            assert f"SIM/glitch_events window {first.key}: its file {events}" in out and "materializing it again" in out
            assert _scores_alone(instance, first.key).success  # healed


def test_a_replaced_twin_file_fails_cleaning_naming_it(tmp_path):
    """cleaned_strain checks the twin file against the SHA-256 glitch_waveforms recorded; another file fails it."""
    run, storage = load_registry()["SIM"], GlitchflowStorage(root=str(tmp_path / "storage"))
    twin = storage.run_file("SIM", "glitch_waveforms", TWIN_SUFFIX)
    twin.parent.mkdir(parents=True)
    twin.write_bytes(b"the champion")
    with dg.instance_for_test() as instance:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(dg.AssetKey(["SIM", "glitch_waveforms"]), metadata={TWIN_DIGEST: sha256sum(twin)})
        )
        inputs = Inputs(storage, run, instance)
        assert inputs.run_level_file("glitch_waveforms", twin, TWIN_DIGEST, Path.read_bytes) == b"the champion"
        twin.write_bytes(b"another twin")
        with pytest.raises(dg.Failure, match="is not the one materialized") as info:
            inputs.run_level_file("glitch_waveforms", twin, TWIN_DIGEST, Path.read_bytes)
        assert str(twin) in str(info.value) and "re-materialize SIM/glitch_waveforms" in str(info.value)


def test_a_deleted_model_version_fails_downstream_naming_it(isolated_home):
    """The version trained_model recorded was deleted from the MLflow registry: evaluation and generation fail naming
    the version, the registry and how to rebuild it."""
    tracker = Tracker()
    with tracker.run("glitchflow-SIM", "train", {}) as run_id:
        pass
    ref = tracker.register("glitchflow-SIM", run_id, {})
    tracker.client.delete_model_version(ref.name, ref.version)
    with dg.instance_for_test() as instance:
        metadata = {"model_name": ref.name, "model_version": ref.version, "mlflow_run_id": run_id}
        instance.report_runless_asset_event(dg.AssetMaterialization(dg.AssetKey(["SIM", "trained_model"]), metadata=metadata))
        with pytest.raises(dg.Failure) as info:
            load_recorded_model(dg.build_asset_context(instance=instance), load_registry()["SIM"], tracker, "cpu")
    message = str(info.value)
    assert f"models:/glitchflow-SIM/{ref.version} is no longer in the MLflow registry at {tracker.uri}" in message
    assert "re-materialize SIM/trained_model" in message


def test_concurrent_writers_of_a_window_take_turns(sim_frames, isolated_home, tmp_path, monkeypatch):
    """A second writer of a window waits for the first (its lock), says so, then writes; two ``glitchflow materialize``
    over overlapping windows at once leave every file whole and as the instance recorded it."""
    _sim_for_the_cli(sim_frames, tmp_path, monkeypatch, backfill_batch=1)
    sim = load_registry()["SIM"]
    first, second = windows_overlapping(*_sim_span(), sim.cadence)
    with exclusive(GlitchflowStorage().lock_file("SIM", "raw_strain_segments", second)):  # another writer holds the second window
        waiting = subprocess.Popen(_materialize_command(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        line = ""
        while "waiting for it" not in line:
            line = waiting.stdout.readline()
            assert line or waiting.poll() is None, "glitchflow materialize ended without waiting for the lock"
        assert f"SIM/raw_strain_segments window {second.key} is being written by" in line and f"pid {os.getpid()}" in line
        assert waiting.poll() is None
    out, _ = waiting.communicate(timeout=300)
    assert waiting.returncode == 0, out

    both = [
        subprocess.Popen(_materialize_command("--force"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)
    ]
    for process in both:
        out, _ = process.communicate(timeout=600)
        assert process.returncode == 0, out
    assert not _temporaries(isolated_home) and not _runs(dg.DagsterRunStatus.FAILURE)
    with dg.DagsterInstance.get() as instance:
        done = materialized_and_intact(instance, sim)
        assert all(done(a, w.key) for a in ("raw_strain_segments", "glitch_events", "annalisa_scores") for w in (first, second))


# --- resource exhaustion -----------------------------------------------------------------------------------------


def _frame_declaring(path: Path, channel: str, n_data: int) -> None:
    """``path`` with ``channel``'s vector declaring ``n_data`` samples (its real data unchanged) and its checksum
    switched off, as a writer that lies would leave it: only the declared size is wrong."""
    data = bytearray(path.read_bytes())
    name = channel.encode() + b"\0"
    at = next(i for i in _find_all(data, struct.pack("<H", len(name)) + name) if _is_vector(data, i + 2 + len(name)))
    struct.pack_into("<Q", data, at + 2 + len(name) + 4, n_data)  # after compress (2 bytes) and type (2 bytes)
    data[at - 14 + 8] = 0  # the structure header (length 8 bytes, then chkType): no checksum
    path.write_bytes(bytes(data))


def _find_all(data: bytearray, needle: bytes):
    at = data.find(needle)
    while at >= 0:
        yield at
        at = data.find(needle, at + 1)


def _is_vector(data: bytearray, after_name: int) -> bool:
    """An FrVect follows its name with compress, type, nData and nBytes; the ADC's record holds other fields there."""
    compress, kind, n_data, n_bytes = struct.unpack_from("<HHQQ", data, after_name)
    return n_data > 0 and 0 < n_bytes <= len(data) and kind < 16


@pytest.mark.parametrize("n_data", [1 << 30, 1 << 40], ids=["8 GiB", "8 TiB"])
def test_a_frame_declaring_more_samples_than_memory_fails_naming_it(frames_copy, n_data):
    """A vector whose declared size would exhaust memory: the decoder refuses it (frameCPP checks the declared size
    against the data, or cannot allocate it) in its own process; the caller gets the file and channel, and the next
    read works."""
    run = sim_run(frames_copy)
    liar = _frame_at(frames_copy, run.gps_start)
    _frame_declaring(liar, STRAIN, n_data)
    with pytest.raises(FrameError) as info:
        decoder.read_file(liar, [STRAIN])
    assert str(liar) in str(info.value) and STRAIN in str(info.value)
    intact = _frame_at(frames_copy, run.gps_start + 60)
    assert decoder.read_file(intact, [STRAIN])[STRAIN].data.size == 60 * 16384


@pytest.fixture
def small_disk(tmp_path):
    """A real 128 MiB file system (tmpfs; the suite runs as root, as it installs PostgreSQL) that a test can fill."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128m", "tmpfs", str(mount)], check=True, capture_output=True)
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def _fill(disk: Path, leave: int) -> Path:
    """Fill ``disk`` up to ``leave`` bytes free."""
    filler = disk / "filler"
    free = shutil.disk_usage(disk).free
    filler.write_bytes(b"\0" * max(free - leave, 0))
    return filler


def _remains(disk: Path) -> set[str]:
    return {p.name for p in disk.iterdir()}


def test_a_full_disk_while_a_twin_is_written_names_it_and_keeps_the_earlier_one(small_disk):
    path = small_disk / "SIM-glitch_waveforms.twin.h5"

    def twin(n_freq: int) -> WienerFilter:
        h = np.random.default_rng(n_freq).standard_normal((n_freq, 3)) * (1 + 1j)
        return WienerFilter(h, ["A", "B", "C"], 4096.0, 2 * (n_freq - 1), WienerConfig(), 10)

    twin(1024).save(path, {"run": "SIM"})
    before = path.read_bytes()
    filler = _fill(small_disk, leave=32 * 1024)
    with pytest.raises(OSError, match="No space left on device") as info:
        twin(32768).save(path, {"run": "SIM"})
    assert str(path) in str(info.value)
    assert path.read_bytes() == before and _remains(small_disk) == {path.name, filler.name}
    assert WienerFilter.load(path).h.shape == (1024, 3)  # the earlier twin still loads


_STREAMED_WRITE = """
import sys, numpy as np
from glitchflow_assets.core.dataset.splits import DatasetConfig, DatasetWriter
from glitchflow_assets.core.artifacts.raw_strain_segments import RawSegmentWriter
path, kind = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(0)
try:
    if kind == "raw_strain_segments":  # the strain and 23 channels of 1e6 samples, one at a time: 96 MB
        with RawSegmentWriter(path, 1_000_000, 23, 1_000_000) as writer:
            for i in range(24):
                writer.write_channel(i, rng.standard_normal(1_000_000).astype("f4"))
            writer.publish()
    else:  # 40 windows of 20 events, 100 tiles each: 105 MB
        config = DatasetConfig(glitch_threshold=0.0, background_threshold=0.0)
        with DatasetWriter(path, ["S", "A", "B", "C"], config) as writer:
            for k in range(40):
                writer.add_window(f"w{k}", rng.exponential(1.0, (20, 4, 64, 256)).astype("f4"), np.arange(20) * 10.0 + k * 300)
            writer.close({})
except OSError as exc:
    print(exc)
"""


@pytest.mark.parametrize("kind", ["raw_strain_segments", "dataset_split"])
def test_a_full_disk_while_a_streamed_file_is_written_names_it_and_the_process_lives(small_disk, kind):
    """Window files and the dataset are written chunk by chunk. HDF5 meeting a full disk in its final flush keeps the
    file half-closed and the process dies of SIGSEGV as it exits; the writers stop while HDF5 can still flush."""
    path = small_disk / f"SIM-{kind}.h5"
    path.write_bytes(b"the earlier file")
    filler = _fill(small_disk, leave=48 << 20)
    done = subprocess.run([sys.executable, "-c", _STREAMED_WRITE, str(path), kind], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]  # -11 (SIGSEGV at exit) before the writers kept headroom
    assert done.stdout.startswith(f"[Errno 28] {path}: not written") and "kept for HDF5's flush" in done.stdout, done.stdout
    assert path.read_bytes() == b"the earlier file" and _remains(small_disk) == {path.name, filler.name}


# --- channels that change mid-run --------------------------------------------------------------------------------

GONE, NEW, SLOWED = "V1:ENV_CEB_UPS_CURR_R", "V1:ENV_NEW_PROBE", "V1:ENV_CEB_SEIS_V"


def _change_channels(frames_dir: Path, gps: int, slow_from: int) -> None:
    """From frame ``gps`` on: GONE leaves the frames, NEW appears; from ``slow_from`` on SLOWED halves its rate."""
    for path in sorted(frames_dir.glob("*.gwf")):
        start = parse_frame_name(path).gps_start
        if start < gps:
            continue
        data = TimeSeriesDict.read(str(path), CHANNELS)
        del data[GONE]
        seis = data[SLOWED]
        data[NEW] = TimeSeries(seis.value[::-1].copy(), t0=seis.t0, sample_rate=seis.sample_rate, name=NEW, channel=NEW)
        if start >= slow_from:
            data[SLOWED] = TimeSeries(seis.value[::2], t0=seis.t0, sample_rate=seis.sample_rate.value / 2, name=SLOWED, channel=SLOWED)
        os.unlink(path)
        data.write(str(path), format="gwf")


def _check_evaluations(instance: dg.DagsterInstance) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    """(check name, window) -> the latest evaluation of each raw_strain_segments check, as the UI shows it."""
    out = {}
    for run in reversed(list(instance.get_runs())):
        for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
            evaluation = entry.dagster_event.event_specific_data
            if evaluation.asset_key.path[-1] == "raw_strain_segments":
                out[evaluation.check_name, evaluation.partition] = evaluation
    return out


def test_channels_that_change_mid_run_are_handled_and_reported(frames_copy, isolated_home, tmp_path, monkeypatch):
    """An auxiliary channel that leaves the frames, one that appears and one whose native rate halves, all inside the
    second window of a run listing channels by pattern: ingest, selection and the dataset complete; each change is
    named in the window's data-quality checks and the selection's table; no stage mixes two rates of one channel, and
    the twin leaves out windows holding a witness at another rate than it was fitted on."""
    sim = load_registry()["SIM"]
    first, second = windows_overlapping(*_sim_span(), sim.cadence)
    _change_channels(frames_copy, second.gps_start, slow_from=second.gps_start + 120)
    patterns = ["V1:LSC_*", "V1:SDB2_*", "V1:ENV_*", "V1:ASC_*", "V1:SUSP_*"]
    _sim_for_the_cli(frames_copy, tmp_path, monkeypatch, aux_channels=patterns, channel_rates={}, backfill_batch=1)
    start, end = _sim_span()
    assert main(["materialize", "SIM", "--gps-start", str(start), "--gps-end", str(end), "--through", "dataset_split"]) == 0

    storage = GlitchflowStorage()
    before, after = (read_summary(storage.window_file("SIM", "raw_strain_segments", w)) for w in (first, second))
    # the first window's file holds its neighbours' first seconds (its margin): NEW is there, in one frame only
    new = {c.name: c for c in before.channels}[NEW]
    assert new.segments and new.segments[0][0] >= second.gps_start and f"V-V1SIM-{first.gps_start}-60.gwf" in new.absent_from
    slowed = {c.name: c for c in after.channels}[SLOWED]
    # most of the second window is at 128 Hz: that is kept, the 256 Hz start is left out, never resampled beside it
    assert slowed.native_rate == 128 and "256 Hz in" in slowed.rate_mismatch and "left out" in slowed.rate_mismatch
    assert slowed.segments[0][0] >= second.gps_start + 120
    with dg.DagsterInstance.get() as instance:
        checks = _check_evaluations(instance)
    assert checks["sample_rates", first.key].passed  # its margin into the second window is at 256 Hz still
    assert f"{GONE}: not in V-V1SIM-{second.gps_start}-60.gwf" in checks["channels_present", first.key].description  # margin
    rates, present = checks["sample_rates", second.key], checks["channels_present", second.key]
    assert not rates.passed and rates.severity == dg.AssetCheckSeverity.WARN and SLOWED in rates.description
    assert not present.passed and present.severity == dg.AssetCheckSeverity.WARN
    assert GONE in present.description and f"V-V1SIM-{second.gps_start}-60.gwf" in present.description

    selection = json.loads(storage.run_file("SIM", "channel_selection", ".json").read_text())
    table = {row["channel"]: row for row in selection["channels"]}
    assert table[NEW]["windows_scored"] == 1 and table[GONE]["windows_scored"] == 1 and table[SLOWED]["windows_scored"] == 2
    assert table[SLOWED]["native_rate_hz"] == 256 and table[SLOWED]["other_rates"] == "128 Hz in 1 window"
    assert storage.run_file("SIM", "dataset_split").exists()

    # a twin fitted on SLOWED at 256 Hz leaves the second window's events out, naming the rate, and keeps the first's
    run = load_registry()["SIM"]
    events = read_events(storage.window_file("SIM", "glitch_events", second)).events
    kept, left_out = event_segments(window_channels(run, second, after, [SLOWED]), second.key, events, witness_rates={SLOWED: 256})
    assert kept is None and len(left_out) == len(events) > 0
    assert all(f"{SLOWED} is at 128 Hz in window {second.key}, not 256 Hz" in why for _, why in left_out)
    events = read_events(storage.window_file("SIM", "glitch_events", first)).events
    kept, _ = event_segments(window_channels(run, first, before, [SLOWED]), first.key, events, witness_rates={SLOWED: 256})
    assert kept is not None and len(kept.gps) > 0
    assert after.unusable([GONE, NEW, SLOWED], {SLOWED: 256}) == {SLOWED: f"{SLOWED} is at 128 Hz in window {second.key}, not 256 Hz"}
