"""Ingest of simulated and real frames: shapes, rates, fidelity, gaps, provenance."""

import hashlib
import os
import shutil

import h5py
import numpy as np
import pytest
import scipy.signal
from gwpy.timeseries import TimeSeries

from glitchflow_assets.core.artifacts.raw_strain_segments import MARGIN_S, SCHEMA, SCHEMA_VERSION, read_scan, read_strain, read_summary
from glitchflow_assets.core.ingest.assemble import ingest_window, window_channels
from glitchflow_assets.core.ingest.quality import assess
from glitchflow_assets.core.io import decoder
from glitchflow_assets.core.io.frames import ChannelData, parse_frame_name
from glitchflow_assets.core.runs.segments import clip
from glitchflow_assets.core.runs.windows import Cadence, windows_overlapping
from glitchflow_assets.core.signal.resample import edge_seconds
from glitchflow_assets.core.sim import VIRGO_SCENARIO
from glitchflow_assets_tests.conftest import real_file, sim_run


def test_simulated_window_ingests_the_strain_at_the_analysis_rate_and_the_rest_at_the_scan_rate(sim_frames, sim_windows, tmp_path):
    run, window = sim_run(sim_frames), sim_windows[0]
    summary = ingest_window(run, window, tmp_path / "w.h5")
    assert summary.attrs["schema"] == SCHEMA and summary.attrs["schema_version"] == SCHEMA_VERSION
    assert (summary.attrs["gps_start"], summary.attrs["gps_end"]) == (window.gps_start, window.gps_end)
    assert [c.name for c in summary.channels] == [c.name for c in VIRGO_SCENARIO.channels]
    assert [c.native_rate for c in summary.channels] == [c.sample_rate for c in VIRGO_SCENARIO.channels]
    assert summary.attrs["livetime"] == 300 and summary.attrs["gap_fraction"] == 0
    # the window plus MARGIN_S of its neighbours' data each side
    assert all(c.segments == [(window.gps_start - MARGIN_S, window.gps_end + MARGIN_S)] for c in summary.channels)
    # provenance: every frame read, with its checksum
    assert [f.name for f in summary.frames] == [f"V-V1SIM-{g}-60.gwf" for g in range(window.gps_start - 60, window.gps_end + 60, 60)]
    first = sim_frames / summary.frames[0].name
    assert summary.frames[0].sha256 == hashlib.sha256(first.read_bytes()).hexdigest()
    assert summary.skipped == []
    strain, t0 = read_strain(tmp_path / "w.h5")
    assert strain.shape == ((300 + 2 * MARGIN_S) * 4096,) and strain.dtype == np.float32 and t0 == window.gps_start - MARGIN_S
    scan, names, scan_t0 = read_scan(tmp_path / "w.h5")
    assert summary.scan_rate == run.annalisa_config().scan_rate(4096) == 1024  # SIM's ANNALISA band reaches 256 Hz
    assert scan.shape == (10, (300 + 2 * MARGIN_S) * 1024) and scan_t0 == t0 and names == [c.name for c in summary.channels[1:]]
    with h5py.File(tmp_path / "w.h5") as f:
        assert f["strain"].attrs["dt"] == 1 / 4096 and f["scan"].attrs["dt"] == 1 / 1024
    assert all(o.passed for o in assess(summary, run).values())


def _band(x, t0, gps_start, gps_end, rate=4096):
    series = TimeSeries(np.asarray(x, dtype=float), t0=t0, sample_rate=rate).bandpass(10, 100)
    return series.crop(gps_start + 4, gps_end - 4).value


def test_ingested_channels_match_independent_resampling(sim_frames, sim_windows, tmp_path):
    """Strain (downsampled) against gwpy's decimation; the 256 Hz seismometer (upsampled: to the scan rate in the
    window file, to the analysis rate as later stages read it from the frames) against ideal FFT interpolation
    (gwpy's own upsampling windows the spectrum and attenuates the upper band); the 16384 Hz DARM witness brought
    down to the scan rate against gwpy's decimation."""
    run, window = sim_run(sim_frames), sim_windows[0]
    summary = ingest_window(run, window, tmp_path / "w.h5")
    held = window_channels(run, window, summary, ["V1:ENV_CEB_SEIS_V"])
    scan, names, t0 = read_scan(tmp_path / "w.h5")
    files = [str(p) for p in sorted(sim_frames.glob("*.gwf"))]
    start, end = window.gps_start - 8, window.gps_end + 8
    read = lambda channel: TimeSeries.read(files, channel, start=start, end=end)  # noqa: E731
    seismic = read("V1:ENV_CEB_SEIS_V").value
    cases = [
        (held.data[0], 4096, read(run.strain_channel).resample(4096).value),
        (held.data[1], 4096, scipy.signal.resample(seismic, seismic.size * 16)),
        (scan[names.index("V1:ENV_CEB_SEIS_V")], 1024, scipy.signal.resample(seismic, seismic.size * 4)),
        (scan[names.index("V1:LSC_DARM_ERR")], 1024, read("V1:LSC_DARM_ERR").resample(1024).value),
    ]
    assert held.t0 == t0 == start and held.names == [run.strain_channel, "V1:ENV_CEB_SEIS_V"]
    for ours, rate, reference in cases:
        mine = _band(ours, t0, window.gps_start, window.gps_end, rate)
        theirs = _band(reference, start, window.gps_start, window.gps_end, rate)
        assert np.corrcoef(mine, theirs)[0, 1] > 0.9999
        assert np.std(mine) == pytest.approx(np.std(theirs), rel=1e-3)


def test_a_missing_frame_becomes_a_recorded_gap(frames_copy, sim_windows, tmp_path):
    run, window = sim_run(frames_copy), sim_windows[0]
    lost = frames_copy / f"V-V1SIM-{window.gps_start + 120}-60.gwf"
    lost.unlink()
    summary = ingest_window(run, window, tmp_path / "w.h5")
    edge = edge_seconds(16384, 4096)
    in_window = clip(summary.strain.segments, window.gps_start, window.gps_end)
    assert in_window == [(window.gps_start, window.gps_start + 120 - edge), (window.gps_start + 180 + edge, window.gps_end)]
    assert summary.attrs["livetime"] == pytest.approx(240 - 2 * edge)
    strain, _ = read_strain(tmp_path / "w.h5", window.gps_start + 120, window.gps_start + 180)
    assert strain.size == 60 * 4096 and not strain.any()  # nothing invented in the gap
    seis = next(c for c in summary.channels if c.name == "V1:ENV_CEB_SEIS_V")
    assert seis.segments[0][1] == pytest.approx(window.gps_start + 120 - edge_seconds(256, 1024))  # on the scan grid
    held = window_channels(run, window, summary, ["V1:ENV_CEB_SEIS_V"])  # on the analysis grid, as later stages read it
    assert held.segments["V1:ENV_CEB_SEIS_V"][0][1] == pytest.approx(window.gps_start + 120 - edge_seconds(256, 4096))
    gap = assess(summary, run)["gap_fraction"]
    assert not gap.passed and gap.severity == "WARN"
    assert f"{window.gps_start + 120 - edge:.3f}" in gap.description and "V1:Hrec_hoft_16384Hz" in gap.description
    assert "limit 10 %" in gap.description


def test_a_partial_window_at_the_run_start_has_no_false_gap(sim_frames, sim_windows, tmp_path):
    """The first and last windows of a run are partial (UTC alignment): only their part inside the run counts."""
    window = sim_windows[0]
    run = sim_run(sim_frames, gps_start=window.gps_start + 150)
    summary = ingest_window(run, window, tmp_path / "w.h5")
    assert summary.attrs["livetime"] == 150 and summary.attrs["gap_fraction"] == 0
    gap = assess(summary, run)["gap_fraction"]
    assert gap.passed and gap.description.startswith(f"strain gap 0 % of the 150 s of window {window.key} inside SIM, limit 10 %")


@pytest.mark.parametrize("source", ["simulated", "real"])
def test_the_frame_decoder_reads_what_lalframe_reads_bit_for_bit(sim_frames, source):
    """gwframe (frameCPP) replaced LALFrame as the decoder: every channel of a simulated frame and of a real
    2010 H1/L1/V1 frame must come out with LALFrame's samples, dtype, start and rate exactly."""
    from gwpy.io.gwf import iter_channel_names
    from gwpy.timeseries import TimeSeriesDict

    path = sorted(sim_frames.glob("*.gwf"))[0] if source == "simulated" else real_file("HLV-HW100916-968654552-1.gwf")
    frame = parse_frame_name(path)
    names = sorted(iter_channel_names(str(path)))
    lalframe = TimeSeriesDict.read(str(path), names, format="gwf", backend="lalframe")
    ours = decoder.read(frame, names, "gwf", frame.gps_start, frame.gps_end)
    assert sorted(ours) == names and len(names) == (11 if source == "simulated" else 3)
    for name in names:
        theirs = lalframe[name]
        assert ours[name].data.dtype == theirs.value.dtype
        assert ours[name].data.tobytes() == theirs.value.tobytes(), name
        assert (ours[name].t0, ours[name].sample_rate) == (theirs.t0.value, theirs.sample_rate.value)


def test_real_gwosc_strain_ingests_bit_exact(gw150914_run, tmp_path):
    run = gw150914_run
    window = windows_overlapping(run.gps_start, run.gps_end, run.cadence)[0]  # 09:50 UTC, data from :29 on
    summary = ingest_window(run, window, tmp_path / "w.h5")
    assert summary.strain.native_rate == 4096
    assert clip(summary.strain.segments, window.gps_start, window.gps_end) == [(1126259446.0, window.gps_end)]
    strain, t0 = read_strain(tmp_path / "w.h5", 1126259446, window.gps_end)
    with h5py.File(real_file("H-H1_LOSC_4_V2-1126259446-32.hdf5")) as f:
        original = f["strain/Strain"][: strain.size]
    np.testing.assert_array_equal(strain, original.astype(np.float32))


def test_real_virgo_ligo_frame_ingests(hw100916_run, tmp_path):
    run = hw100916_run
    (window,) = windows_overlapping(run.gps_start, run.gps_end, run.cadence)
    summary = ingest_window(run, window, tmp_path / "w.h5")
    assert [c.name for c in summary.channels] == ["V1:h_16384Hz", "H1:LDAS-STRAIN", "L1:LDAS-STRAIN"]
    assert all(c.native_rate == 16384 for c in summary.channels)
    edge = edge_seconds(16384, 4096)
    assert summary.strain.segments == [(pytest.approx(968654552 + edge), pytest.approx(968654553 - edge))]
    strain, _ = read_strain(tmp_path / "w.h5", 968654552.1, 968654552.9)
    assert np.isfinite(strain).all() and (np.abs(strain) > 0).mean() > 0.99
    # at the 128 Hz scan rate the anti-alias filter reaches 0.89 s into a 1 s file from each end: nothing valid is left,
    # and nothing invented; the witnesses as later stages read them (analysis rate, from the frame) are whole
    assert summary.scan_rate == 128 and edge_seconds(16384, 128) > 0.5
    assert all(c.segments == [] for c in summary.channels[1:]) and not read_scan(tmp_path / "w.h5")[0].any()
    held = window_channels(run, window, summary, ["H1:LDAS-STRAIN", "L1:LDAS-STRAIN"])
    assert all(held.segments[c] == summary.strain.segments for c in held.names)
    inside = held.data[:, round((968654552.1 - held.t0) * 4096) : round((968654552.9 - held.t0) * 4096)]
    assert np.isfinite(inside).all() and (np.abs(inside) > 0).mean() > 0.99


def test_pattern_channels_resolve_from_the_frames(sim_frames, sim_windows, tmp_path):
    run = sim_run(sim_frames, aux_channels=("V1:LSC_*", "V1:ENV_CEB_*"), channel_rates={}, cadence=Cadence.parse("1min"))
    window = windows_overlapping(run.gps_start, run.gps_start + 60, run.cadence)[0]
    summary = ingest_window(run, window, tmp_path / "w.h5")
    assert [c.name for c in summary.channels][1:] == [
        "V1:LSC_DARM_ERR",
        "V1:LSC_MICH_ERR",
        "V1:LSC_PRCL_ERR",
        "V1:ENV_CEB_MIC_V",
        "V1:ENV_CEB_SEIS_V",
        "V1:ENV_CEB_UPS_CURR_R",
    ]


def _assert_same_samples(a, b) -> None:
    np.testing.assert_array_equal(read_strain(a)[0], read_strain(b)[0])
    np.testing.assert_array_equal(read_scan(a)[0], read_scan(b)[0])


def test_channel_batches_give_identical_files(sim_frames, tmp_path):
    from glitchflow_assets.core.ingest.assemble import IngestOptions

    run = sim_run(sim_frames, cadence=Cadence.parse("1min"))
    window = windows_overlapping(run.gps_start, run.gps_start + 60, run.cadence)[0]
    ingest_window(run, window, tmp_path / "a.h5", options=IngestOptions(channel_batch=2))
    ingest_window(run, window, tmp_path / "b.h5")
    _assert_same_samples(tmp_path / "a.h5", tmp_path / "b.h5")
    assert read_summary(tmp_path / "a.h5").frames == read_summary(tmp_path / "b.h5").frames


def test_consecutive_windows_decode_each_frame_once_and_give_the_same_files(sim_frames, sim_windows, tmp_path, monkeypatch):
    """The frames at a window's edges are kept for the next window (its margins): every frame is decoded once, and
    the files are identical to ingesting each window with nothing kept, one frame at a time; a rewritten frame is
    decoded again."""
    from glitchflow_assets.core.ingest import assemble
    from glitchflow_assets.core.io import decoder
    from glitchflow_assets.core.io.decoded_cache import DecodedFrames

    run = sim_run(sim_frames)
    kept = DecodedFrames(decoder.read, parallel=2)  # two decoder processes at once
    monkeypatch.setattr(assemble, "DECODED", kept)
    for w in sim_windows:
        ingest_window(run, w, tmp_path / f"kept-{w.key}.h5")
    channels = len(read_summary(tmp_path / f"kept-{sim_windows[0].key}.h5").channels)
    frames = {f.name for w in sim_windows for f in read_summary(tmp_path / f"kept-{w.key}.h5").frames}
    assert kept.decoded_seconds == 60 * channels * len(frames)  # each frame and channel once
    for w in sim_windows:
        monkeypatch.setattr(assemble, "DECODED", DecodedFrames(decoder.read, budget_bytes=0))  # nothing kept
        ingest_window(run, w, tmp_path / f"fresh-{w.key}.h5")
        _assert_same_samples(tmp_path / f"kept-{w.key}.h5", tmp_path / f"fresh-{w.key}.h5")
        assert str(read_summary(tmp_path / f"kept-{w.key}.h5").channels) == str(read_summary(tmp_path / f"fresh-{w.key}.h5").channels)
    copy = tmp_path / "frames" / sorted(sim_frames.glob("*.gwf"))[3].name
    copy.parent.mkdir()
    shutil.copy(sim_frames / copy.name, copy)
    frame, strain = parse_frame_name(copy), [run.strain_channel]
    kept.read(frame, strain, "gwf", frame.gps_start, frame.gps_start + 5, keep_from=frame.gps_start + 10)
    before = kept.decoded_seconds
    kept.read(frame, strain, "gwf", frame.gps_start + 10, frame.gps_start + 20)
    assert kept.decoded_seconds == before  # kept from +10 s on
    kept.read(frame, strain, "gwf", frame.gps_start + 5, frame.gps_start + 20)
    assert kept.decoded_seconds == before + 60  # not kept before +10 s
    before = kept.decoded_seconds
    os.utime(copy, ns=(copy.stat().st_atime_ns, copy.stat().st_mtime_ns + 10**9))  # rewritten
    part = kept.read(frame, strain, "gwf", frame.gps_start + 10, frame.gps_start + 20)[run.strain_channel]
    assert kept.decoded_seconds == before + 60 and part.t0 == frame.gps_start + 10 and part.data.size == 10 * part.sample_rate


def test_a_budget_smaller_than_a_window_keeps_what_fits_for_the_next_one(tmp_path):
    """Decoded frames kept for the next window stay within the budget, and a window wider than the budget keeps the
    channels that fit (read in batches, each batch does not evict the one before); the next window's frames evict
    them."""
    from glitchflow_assets.core.io.decoded_cache import DecodedFrames

    rate, names = 64, [f"X1:C{i}" for i in range(10)]
    frames = []
    for gps in (0, 60):
        frames.append(parse_frame_name(tmp_path / f"X-T-{1_000_000_000 + gps}-60.gwf"))
        frames[-1].path.write_bytes(b"")  # only its name, size and time matter to the cache

    def decode(frame, channels, kind, start, end):
        return {c: ChannelData(c, np.full(int((end - start) * rate), names.index(c), np.float32), start, rate, "") for c in channels}

    one = 60 * rate * 4  # a channel of a frame, in bytes
    kept = DecodedFrames(decode, budget_bytes=4 * one)
    t0 = frames[0].gps_start
    for batch in (names[:5], names[5:]):  # window [t0, t0 + 60) reads frames 0 and 1; the next starts reading at t0 + 51
        kept.read_each([(frames[0], batch), (frames[1], batch)], "gwf", t0 - 9, t0 + 69, keep_from=t0 + 51)
    decoded = kept.decoded_seconds
    for batch in (names[:5], names[5:]):
        got = kept.read_each([(frames[0], batch), (frames[1], batch)], "gwf", t0 + 51, t0 + 129, keep_from=t0 + 111)
        assert [got[0][c].data[0] for c in batch] == [names.index(c) for c in batch]  # the right channel's samples
    # kept for the next window within 240 s of samples, in the order decoded: frame 0 from +51 s (9 s) of channels 0-4
    # and frame 1 (60 s) of channels 0-2 (225 s), then frame 0 of channel 5 (234 s); the other 11 decoded again
    assert decoded == 60 * 2 * 10 and kept.decoded_seconds - decoded == 60 * (2 * 10 - 6 - 3)
    assert sum(c.data.nbytes for _, c in kept._kept.values()) <= 4 * one


def test_the_scan_is_read_in_blocks_of_bounded_size(sim_frames, sim_windows, tmp_path):
    """ANNALISA reads a window's auxiliary channels a block at a time: each block within its byte budget (of float64
    working copies), at least one channel, together exactly the scan store."""
    from glitchflow_assets.core.artifacts.raw_strain_segments import scan_blocks

    summary = ingest_window(sim_run(sim_frames), sim_windows[0], tmp_path / "w.h5")
    scan, names, t0 = read_scan(summary.path)
    one_channel = scan.shape[1] * 8
    blocks = list(scan_blocks(summary, max_bytes=3 * one_channel))
    assert [len(b.names) for b in blocks] == [3, 3, 3, 1] and all(b.data.shape[1] * 8 * len(b.names) <= 3 * one_channel for b in blocks)
    assert sum((b.names for b in blocks), []) == names and all(b.t0 == t0 and b.sample_rate == summary.scan_rate for b in blocks)
    np.testing.assert_array_equal(np.concatenate([b.data for b in blocks]), scan)
    assert [len(b.names) for b in scan_blocks(summary, max_bytes=1)] == [1] * 10  # never an empty block
