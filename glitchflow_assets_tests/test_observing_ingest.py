"""Observing segments through ingest, the data-quality checks, the event search and the ingest job, on simulated
frames with locks and unlocks (core/sim/locks.py): only observing time counts, a window outside every segment is
marked, not failed."""

import dataclasses
import shutil

import dagster as dg
import numpy as np
import pytest

from glitchflow_assets.core.artifacts.raw_strain_segments import read_strain
from glitchflow_assets.core.ingest.assemble import IngestError, ingest_window
from glitchflow_assets.core.ingest.quality import CHECKS, assess
from glitchflow_assets.core.io.decoder import read_file
from glitchflow_assets.core.io.gwf_writer import write_gwf
from glitchflow_assets.core.runs.observing import SegmentSource
from glitchflow_assets.core.runs.segments import clip, total
from glitchflow_assets.core.runs.windows import windows_overlapping
from glitchflow_assets.core.signal.events import EventSearchConfig, window_events
from glitchflow_assets.core.sim import VIRGO_SCENARIO, simulate, with_locks
from glitchflow_assets.core.sim.locks import BIT_NAMES, lock_spans
from glitchflow_assets.defs.families import build_definitions
from glitchflow_assets_tests.conftest import sim_run

START = 1400000118  # SIM's first window
SV = "V1:DQ_ANALYSIS_STATE_VECTOR"
# Locked for the first 150 s of the first window, unlocked for 400 s, locked again: SCIENCE comes back 60 s later, at
# START + 610, after the second window (and its 8 s margin) has ended.
LOCKS = dict(first_lock_s=150.0, unlock_s=(400.0, 400.0), lock_s=(3600.0, 3600.0))
SCENARIO = with_locks(dataclasses.replace(VIRGO_SCENARIO, glitch_rate_per_min=6.0), START, **LOCKS)
SCIENCE = SegmentSource(channel=SV, bits=("SCIENCE", "HREC_OK"), bit_names=BIT_NAMES)


@pytest.fixture(scope="module")
def locked_frames(tmp_path_factory):
    """Two windows of SIM with the unlock above, plus a minute before (the truth comes with them)."""
    out = tmp_path_factory.mktemp("locked")
    return out, simulate(out, START - 60, 720, frame_length=60, seed=3, scenario=SCENARIO, workers=2)


def _run(frames, segments=SCIENCE):
    return sim_run(frames, gps_end=START + 600, segments=segments)


def test_the_schedule_is_what_the_test_expects():
    assert lock_spans(SCENARIO.locks, 3, START + 600)[:2] == [(-np.inf, START + 150), (START + 550, START + 4150)]


def test_window_half_outside_counts_only_observing_time(locked_frames, tmp_path):
    frames, sim = locked_frames
    run = _run(frames)
    first, second = windows_overlapping(run.gps_start, run.gps_end, run.cadence)
    summary = ingest_window(run, first, tmp_path / "first.h5")
    assert summary.observing == [(START - 8, START + 150)]  # the margin before: the lock was acquired earlier
    assert summary.attrs["observing_s"] == 150 and summary.attrs["livetime"] == pytest.approx(150, abs=0.1)
    assert summary.attrs["observing_source"] == f"{SV} bits SCIENCE, HREC_OK (mask 0x6)"
    # every channel's valid data end where observing ends (the resampler's edge before it); the samples after are zero
    for channel in summary.channels:
        assert channel.segments and channel.segments[-1][1] <= START + 150, channel.name
    strain, t0 = read_strain(summary.path, START + 151, START + 300)
    assert not strain.any()
    # the strain while unlocked is 30 times louder: ingested as observing, it would be there
    everything = ingest_window(_run(frames, segments=None), first, tmp_path / "all.h5")
    assert everything.attrs["livetime"] == 300 and read_strain(everything.path, START + 200, START + 300)[0].std() > 10 * np.std(
        read_strain(everything.path, START, START + 100)[0]
    )
    checks = assess(summary, run)
    assert all(o.passed for o in checks.values())
    assert checks["gap_fraction"].measured.startswith("strain gap 0.0") and "of the 150 s observing of window 2024-05-17T16:55" in (
        checks["gap_fraction"].measured
    )

    # the search: only inside the observing segment, its 4 s edges excluded, so the truth's glitches after it are not found
    config = EventSearchConfig()
    x, t0 = read_strain(summary.path)
    events, searched = window_events(x, t0, summary.sample_rate, summary.strain.segments, summary.window_span, config)
    # the window starts inside the segment (its margin before it); the search ends 4 s before the segment does
    assert len(searched) == 1 and searched[0][0] == START and searched[0][1] == pytest.approx(START + 150 - config.edge, abs=0.05)
    assert len(events) and events.gps.max() < START + 150 - config.edge
    truth = sim.glitches[(sim.glitches.role == "strain") & (sim.glitches.snr >= 8)]
    found_all, _ = window_events(*read_strain(everything.path), everything.sample_rate, everything.strain.segments, everything.window_span)
    unlocked = truth[(truth.gps > START + 150) & (truth.gps < START + 300)]
    assert len(unlocked) and not any(np.abs(events.gps.to_numpy() - g).min() < 0.5 for g in unlocked.gps)
    assert len(found_all) > len(events)


def test_window_outside_every_segment_is_marked_not_failed(locked_frames, tmp_path):
    frames, _ = locked_frames
    run = _run(frames)
    _, second = windows_overlapping(run.gps_start, run.gps_end, run.cadence)
    summary = ingest_window(run, second, tmp_path / "second.h5")
    assert summary.outside_observing and summary.observing == [] and summary.attrs["livetime"] == 0
    assert all(not c.segments for c in summary.channels)
    checks = assess(summary, run)
    assert set(checks) == set(CHECKS) and all(o.passed for o in checks.values())
    assert checks["gap_fraction"].description == (
        f"window 2024-05-17T17:00 is outside every observing segment of SIM ({SV} bits SCIENCE, HREC_OK (mask 0x6)): nothing to check"
    )
    # LOCKED alone (bit 0) is set from START + 550 on: the same window then has 50 s observing, of its 300
    locked = ingest_window(_run(frames, dataclasses.replace(SCIENCE, bits=(0,))), second, tmp_path / "locked.h5")
    assert locked.attrs["observing_s"] == 50 and total(clip(locked.strain.segments, *locked.window_span)) == pytest.approx(50, abs=0.1)


def test_quality_statistics_count_only_observing_data(locked_frames, tmp_path):
    """NaNs and a flat-line in an auxiliary channel while unlocked are not the window's problems; they are without segments."""
    frames, _ = locked_frames
    copy = tmp_path / "frames"
    shutil.copytree(frames, copy)
    unlocked = copy / f"V-V1SIM-{START + 180}-60.gwf"  # START + 180 .. 240: unlocked
    channels = read_file(unlocked)
    mic = channels["V1:LSC_MICH_ERR"].data.copy()
    mic[:4096] = np.nan
    mic[8192:16384] = 1.0
    channels["V1:LSC_MICH_ERR"] = dataclasses.replace(channels["V1:LSC_MICH_ERR"], data=mic)
    write_gwf(unlocked, list(channels.values()))
    first, _ = windows_overlapping(START, START + 600, _run(copy).cadence)
    observing = {c.name: c for c in ingest_window(_run(copy), first, tmp_path / "a.h5").channels}["V1:LSC_MICH_ERR"]
    assert observing.nonfinite_count == 0 and observing.max_flat_seconds < 0.01
    everything = {c.name: c for c in ingest_window(_run(copy, None), first, tmp_path / "b.h5").channels}["V1:LSC_MICH_ERR"]
    assert everything.nonfinite_count == 4096 and everything.first_nonfinite_gps == START + 180 and everything.max_flat_seconds == 2.0


def test_min_length_and_missing_state_vector(locked_frames, tmp_path):
    frames, _ = locked_frames
    run = _run(frames, dataclasses.replace(SCIENCE, bits=(0,), min_length=100))
    _, second = windows_overlapping(run.gps_start, run.gps_end, run.cadence)
    # the lock from START + 550 reaches the end of the data read: it may go on, so it is kept despite min_length
    assert ingest_window(run, second, tmp_path / "a.h5").observing == [(START + 550, START + 608)]
    missing = _run(frames, dataclasses.replace(SCIENCE, channel="V1:NO_SUCH_VECTOR"))
    with pytest.raises(IngestError, match=r"window 2024-05-17T17:00 .*: state-vector channel V1:NO_SUCH_VECTOR is in none of \['V-V1SIM-"):
        ingest_window(missing, second, tmp_path / "b.h5")


def test_segment_file_instead_of_the_state_vector(locked_frames, tmp_path):
    frames, _ = locked_frames
    (tmp_path / "science.txt").write_text(f"{START + 100} {START + 200}\n{START + 250} {START + 252}\n")
    run = _run(frames, SegmentSource(file=tmp_path / "science.txt", min_length=10))
    first, _ = windows_overlapping(run.gps_start, run.gps_end, run.cadence)
    summary = ingest_window(run, first, tmp_path / "first.h5")
    assert summary.observing == [(START + 100, START + 200)]  # the 2 s segment is shorter than min_length
    assert summary.attrs["observing_s"] == 100 and summary.attrs["observing_source"] == f"segment file {tmp_path / 'science.txt'}"
    (tmp_path / "science.txt").write_text(f"{START + 200} {START + 300}\n{START + 100} {START + 150}\n")
    with pytest.raises(IngestError, match=r"segment file .*science.txt: segment 2 .* starts before segment 1"):
        ingest_window(run, first, tmp_path / "first.h5")


def test_ingest_job_on_both_windows(locked_frames, isolated_home):
    """Through Dagster: both windows succeed; the outside one says so, and its events and scores are empty."""
    frames, _ = locked_frames
    run = _run(frames)
    job = build_definitions({run.name: run}).resolve_job_def(f"{run.name}_ingest")
    with dg.instance_for_test() as instance:
        for key, observing, outside in (("2024-05-17T16:55", 150.0, False), ("2024-05-17T17:00", 0.0, True)):
            result = job.execute_in_process(instance=instance, partition_key=key, raise_on_error=False)
            assert result.success, key
            raw = result.asset_materializations_for_node("SIM__raw_strain_segments")[0].metadata
            assert raw["observing_s"].value == observing
            assert ("outside every observing segment" in raw["observing"].value) is outside
            checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
            assert all(c.passed for c in checks.values())
            events = result.asset_materializations_for_node("SIM__glitch_events")[0].metadata
            scores = result.asset_materializations_for_node("SIM__annalisa_scores")[0].metadata
            assert (events["n_events"].value == 0) is outside and (scores["n_events_scored"].value == 0) is outside
