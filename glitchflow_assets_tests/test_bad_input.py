"""Bad input: clear errors naming file / channel / GPS, skipped files with reasons, nothing lost."""

import dataclasses
import hashlib
import os

import numpy as np
import pytest
from gwpy.timeseries import TimeSeries, TimeSeriesDict

from glitchflow_assets.core.artifacts.raw_strain_segments import read_scan, read_strain
from glitchflow_assets.core.ingest.assemble import IngestError, ingest_window, window_channels
from glitchflow_assets.core.ingest.quality import assess
from glitchflow_assets.core.io import decoder
from glitchflow_assets.core.io.frames import FrameError, parse_frame_name, scan_frame_dir
from glitchflow_assets.core.runs.segments import clip, total
from glitchflow_assets.core.runs.windows import Cadence, windows_overlapping
from glitchflow_assets.core.sim import VIRGO_SCENARIO
from glitchflow_assets_tests.conftest import sim_run

CHANNELS = [c.name for c in VIRGO_SCENARIO.channels]


def _minute(frames_dir, **changes):
    """A 1-minute-window variant of SIM over ``frames_dir`` and its second window (frames are 60 s)."""
    run = sim_run(frames_dir, cadence=Cadence.parse("1min"), **changes)
    return run, windows_overlapping(run.gps_start, run.gps_start + 120, run.cadence)[1]


def _frame_at(frames_dir, gps):
    return frames_dir / f"V-V1SIM-{gps}-60.gwf"


def _rewrite(path, edit):
    """Read a frame, let ``edit(dict_of_series)`` change it, write it back under the same name."""
    data = TimeSeriesDict.read(str(path), CHANNELS)
    edit(data)
    os.unlink(path)
    data.write(str(path), format="gwf")


def _five_minutes(frames_dir):
    run = sim_run(frames_dir)
    return run, windows_overlapping(run.gps_start, run.gps_start + 1, run.cadence)[0]


def test_corrupt_file_is_skipped_with_its_name(frames_copy, tmp_path):
    run, window = _five_minutes(frames_copy)
    bad = _frame_at(frames_copy, window.gps_start + 120)
    bad.write_bytes(os.urandom(200_000))
    summary = ingest_window(run, window, tmp_path / "w.h5")
    reasons = dict(summary.skipped)
    assert bad.name in reasons and "not a GWF file" in reasons[bad.name] and str(bad) in reasons[bad.name]
    assert 230 < summary.attrs["livetime"] < 240  # that minute is a gap, the other four are kept


def test_truncated_file_is_skipped_and_the_rest_of_the_window_survives(frames_copy, tmp_path):
    run, window = _five_minutes(frames_copy)
    victim = _frame_at(frames_copy, window.gps_start + 60)
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    summary = ingest_window(run, window, tmp_path / "w.h5")
    assert "truncated" in dict(summary.skipped)[victim.name]
    assert 230 < summary.attrs["livetime"] < 240  # the truncated minute is a gap, the other four are kept


def test_a_window_with_only_bad_files_fails_clearly_and_keeps_the_earlier_file(frames_copy, tmp_path):
    run, window = _minute(frames_copy)
    out = tmp_path / "w.h5"
    ingest_window(run, window, out)
    before = hashlib.sha256(out.read_bytes()).hexdigest()
    for gps in (window.gps_start - 60, window.gps_start, window.gps_start + 60):
        _frame_at(frames_copy, gps).write_bytes(b"not a frame")
    with pytest.raises(IngestError) as info:
        ingest_window(run, window, out)
    message = str(info.value)
    assert window.key in message and str(window.gps_start) in message and _frame_at(frames_copy, window.gps_start).name in message
    assert hashlib.sha256(out.read_bytes()).hexdigest() == before
    assert not list(tmp_path.glob(".*"))  # no temporary left behind


def test_missing_strain_channel_is_an_error_naming_it(frames_copy, tmp_path):
    run, window = _minute(frames_copy, strain_channel="V1:NOT_THE_STRAIN")
    with pytest.raises(IngestError, match="V1:NOT_THE_STRAIN"):
        ingest_window(run, window, tmp_path / "w.h5")


def test_missing_aux_channel_fails_the_presence_check(sim_frames, tmp_path):
    run, window = _minute(sim_frames, aux_channels=("V1:LSC_DARM_ERR", "V1:GONE_CHANNEL"))
    summary = ingest_window(run, window, tmp_path / "w.h5")
    outcome = assess(summary, run)["channels_present"]
    assert not outcome.passed and outcome.severity == "WARN" and "V1:GONE_CHANNEL" in outcome.description
    assert window.key in outcome.description


def test_overlapping_frames_keep_the_earlier_file(frames_copy, tmp_path):
    from glitchflow_assets.core.sim import simulate

    run, window = _minute(frames_copy)
    # a second, legitimate 120 s frame starting inside the window
    extra = simulate(tmp_path / "other", window.gps_start + 30, 120, frame_length=120, seed=7)
    overlap = frames_copy / extra.frames[0].name.replace("V1SIM", "V1SIMB")
    os.replace(extra.frames[0], overlap)
    summary = ingest_window(run, window, tmp_path / "w.h5")
    assert "overlaps" in dict(summary.skipped)[overlap.name]
    assert summary.attrs["livetime"] == 60


def test_file_whose_content_disagrees_with_its_name_is_rejected(frames_copy, tmp_path):
    run, window = _minute(frames_copy)
    real = _frame_at(frames_copy, window.gps_start)
    liar = _frame_at(frames_copy, window.gps_start + 3600)  # says an hour later, holds this minute
    real.rename(liar)
    frame = parse_frame_name(liar)
    with pytest.raises(FrameError, match=liar.name):
        decoder.read(frame, CHANNELS[:1], "gwf", frame.gps_start, frame.gps_end)


def test_hostile_and_foreign_names_are_skipped_with_reasons(frames_copy, tmp_path):
    outside = tmp_path / "secret.gwf"
    outside.write_bytes(b"x")
    (frames_copy / "V-V1SIM-1400000118-60 copy.gwf").write_bytes(b"x")
    (frames_copy / "..gwf").write_bytes(b"x")
    (frames_copy / "V-V1SIM-1400000118-0.gwf").write_bytes(b"x")
    (frames_copy / "V-V1SIM-14000-60.gwf").write_bytes(b"x")
    os.symlink(outside, frames_copy / "V-V1SIM-1500000000-60.gwf")
    (frames_copy / "notes.txt").write_text("not a frame, not reported")
    found, skipped = scan_frame_dir(frames_copy)
    reasons = {s.path.name: s.reason for s in skipped}
    assert set(reasons) == {
        "V-V1SIM-1400000118-60 copy.gwf",
        "V-V1SIM-1400000118-0.gwf",
        "V-V1SIM-14000-60.gwf",
        "V-V1SIM-1500000000-60.gwf",
    }
    assert "outside the frame directory" in reasons["V-V1SIM-1500000000-60.gwf"]
    assert "OBS-TAG-GPSSTART-DURATION" in reasons["V-V1SIM-14000-60.gwf"]
    assert len(found) == 12 and all(f.path.parent == frames_copy for f, _ in found)


def test_nan_samples_are_flagged_with_channel_and_gps_and_cut_out(frames_copy, tmp_path):
    run, window = _minute(frames_copy)
    bad_gps = window.gps_start + 20.0

    def poison(data):
        strain = data[VIRGO_SCENARIO.strain]
        i = int((bad_gps - strain.t0.value) * strain.sample_rate.value)
        strain.value[i : i + 100] = np.nan

    _rewrite(_frame_at(frames_copy, window.gps_start), poison)
    summary = ingest_window(run, window, tmp_path / "w.h5")
    outcome = assess(summary, run)["no_nonfinite_samples"]
    assert not outcome.passed and outcome.severity == "ERROR"
    assert VIRGO_SCENARIO.strain in outcome.description and f"{bad_gps:.4f}" in outcome.description
    assert len(summary.strain.segments) == 2 and summary.strain.segments[0][1] < bad_gps < summary.strain.segments[1][0]
    assert np.isfinite(read_strain(tmp_path / "w.h5")[0]).all() and np.isfinite(read_scan(tmp_path / "w.h5")[0]).all()


def test_nan_samples_in_a_frame_two_windows_share_are_flagged_in_both_every_time(frames_copy, tmp_path):
    """The frame ending at a window boundary is read by both windows (the second one's margin), the second time from
    the decoded-frame cache: its NaNs are flagged and cut out by each window, and again when a window is ingested
    again in the same process (ingest never zeroes them in the samples it was served)."""
    run = sim_run(frames_copy, cadence=Cadence.parse("1min"))
    first, second = windows_overlapping(run.gps_start, run.gps_start + 120, run.cadence)
    bad_gps = first.gps_end - 4.0  # inside the second window's margin

    def poison(data):
        channel = data["V1:LSC_MICH_ERR"]
        i = int((bad_gps - channel.t0.value) * channel.sample_rate.value)
        channel.value[i : i + 50] = np.nan

    _rewrite(_frame_at(frames_copy, first.gps_start), poison)
    counts = []
    for window, name in ((first, "a"), (second, "b"), (second, "b-again")):
        summary = ingest_window(run, window, tmp_path / f"{name}.h5")
        mich = next(c for c in summary.channels if c.name == "V1:LSC_MICH_ERR")
        counts.append(mich.nonfinite_count)
        assert not any(s <= bad_gps < e for s, e in mich.segments), name
    assert counts == [50, 50, 50]


def test_data_at_a_rate_the_registry_does_not_expect_are_left_out_and_named(frames_copy, tmp_path):
    """One frame holds LSC_MICH_ERR at 2048 Hz, the registry says 4096 Hz: that minute of the channel is a gap (never
    resampled beside the rest), the check names channel, file and rates, and the strain flows on (WARN)."""
    run, window = _minute(frames_copy)
    victim = _frame_at(frames_copy, window.gps_start)

    def halve(data):
        mich = data["V1:LSC_MICH_ERR"]
        data["V1:LSC_MICH_ERR"] = TimeSeries(mich.value[::2], t0=mich.t0, sample_rate=2048, name=mich.name, channel=mich.name)

    _rewrite(victim, halve)
    summary = ingest_window(run, window, tmp_path / "w.h5")
    outcome = assess(summary, run)["sample_rates"]
    assert not outcome.passed and outcome.severity == "WARN"
    assert "V1:LSC_MICH_ERR" in outcome.description and victim.name in outcome.description and "4096" in outcome.description
    mich = {c.name: c for c in summary.channels}["V1:LSC_MICH_ERR"]
    assert mich.native_rate == 4096 and total(clip(mich.segments, window.gps_start, window.gps_end)) == 0
    scan, names, t0 = read_scan(tmp_path / "w.h5")
    rate = summary.scan_rate
    assert not scan[names.index("V1:LSC_MICH_ERR"), round((window.gps_start - t0) * rate) : round((window.gps_end - t0) * rate)].any()
    held = window_channels(run, window, summary, ["V1:LSC_MICH_ERR"])  # as later stages read it: left out there too
    assert total(clip(held.segments["V1:LSC_MICH_ERR"], window.gps_start, window.gps_end)) == 0
    assert not held.data[1, round((window.gps_start - held.t0) * 4096) : round((window.gps_end - held.t0) * 4096)].any()
    assert summary.attrs["livetime"] == 60


def test_flatlined_channel_is_flagged_with_its_start(frames_copy, tmp_path):
    run, window = _minute(frames_copy)
    start = window.gps_start + 10

    def freeze(data):
        mag = data["V1:ENV_NEB_MAG_N"]
        i = int((start - mag.t0.value) * mag.sample_rate.value)
        mag.value[i : i + 5 * 1024] = mag.value[i]

    _rewrite(_frame_at(frames_copy, window.gps_start), freeze)
    outcome = assess(ingest_window(run, window, tmp_path / "w.h5"), run)["no_flatlined_channels"]
    assert not outcome.passed and outcome.severity == "WARN"
    assert "V1:ENV_NEB_MAG_N" in outcome.description and f"{start:.4f}" in outcome.description and "5.0 s" in outcome.description


def test_scan_survives_loops_directory_links_fifos_and_foreign_digits(frames_copy, tmp_path):
    """Each of these once stopped every window and sensor tick (a loop or a link to a directory raised in the scan;
    a FIFO hung ingest in open()); now each is skipped with its reason and the window still ingests."""
    os.symlink("V-V1SIM-1400090000-60.gwf", frames_copy / "V-V1SIM-1400090000-60.gwf")  # a link to itself
    os.symlink(frames_copy / "truth", frames_copy / "V-V1SIM-1400090060-60.gwf")  # a link to a directory
    os.mkfifo(frames_copy / "V-V1SIM-1400090120-60.gwf")
    os.symlink(tmp_path / "gone.gwf", frames_copy / "V-V1SIM-1400090180-60.gwf")  # dangling
    (frames_copy / "V-V1SIM-\u0661\u0664\u0660\u0660\u0660\u0660\u0660\u0661\u0661\u0668-60.gwf").write_bytes(b"x")  # Arabic-Indic digits
    found, skipped = scan_frame_dir(frames_copy)
    reasons = {s.path.name: s.reason for s in skipped}
    assert "does not resolve" in reasons["V-V1SIM-1400090000-60.gwf"]
    assert "not a regular file" in reasons["V-V1SIM-1400090060-60.gwf"]
    assert "not a regular file" in reasons["V-V1SIM-1400090120-60.gwf"]
    assert "does not resolve" in reasons["V-V1SIM-1400090180-60.gwf"]
    assert any("OBS-TAG-GPSSTART-DURATION" in r for n, r in reasons.items() if "\u0661" in n)
    assert len(found) == 12
    run, window = _five_minutes(frames_copy)
    summary = ingest_window(run, window, tmp_path / "w.h5")
    assert summary.attrs["livetime"] > 290


def test_witnesses_are_read_only_from_the_frames_a_window_was_made_from(frames_copy, tmp_path):
    """Later stages read the witnesses from the frame files the window file records: a file changed or gone since,
    or a recorded path leading out of the frame directory, is an error naming it, never other data read silently."""
    run, window = _minute(frames_copy)
    summary = ingest_window(run, window, tmp_path / "w.h5")
    held = window_channels(run, window, summary, ["V1:LSC_MICH_ERR"])
    assert held.segments["V1:LSC_MICH_ERR"] and held.data[1].any()
    victim = frames_copy / summary.frames[1].path
    victim.write_bytes(victim.read_bytes()[:-1] + b"\0")
    with pytest.raises(IngestError, match=rf"frame file {victim} changed since the window's file was made from it; materialize"):
        window_channels(run, window, summary, ["V1:LSC_MICH_ERR"])
    victim.unlink()
    with pytest.raises(IngestError, match=rf"frame file {victim}, which the window's file was made from, is gone"):
        window_channels(run, window, summary, ["V1:LSC_MICH_ERR"])
    hostile = dataclasses.replace(summary, frames=[dataclasses.replace(summary.frames[0], path="../../etc/V-V1SIM-1-60.gwf")])
    with pytest.raises(IngestError, match="leaves the frame directory"):
        window_channels(run, window, hostile, ["V1:LSC_MICH_ERR"])
    assert window_channels(run, window, summary, []).names == [run.strain_channel]  # the strain alone needs no frame
