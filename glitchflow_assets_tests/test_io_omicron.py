"""Omicron trigger files: the simulator's true strain glitches written in Omicron's HDF5, ROOT and XML layouts, read back
through gwpy and hveto's own trigger reader, and bad files refused naming the file and row."""

import glob
from types import SimpleNamespace

import gwtrigfind.core
import h5py
import numpy as np
import pandas as pd
import pytest
import uproot
from gwpy.segments import Segment, SegmentList
from gwpy.table import EventTable
from gwtrigfind import find_trigger_files
from hveto.triggers import get_triggers

from glitchflow_assets.core.io.omicron import (
    OMICRON_COLUMNS,
    omicron_name,
    omicron_path,
    read_omicron,
    write_omicron_hdf5,
    write_omicron_root,
    write_omicron_xml,
)
from glitchflow_assets.core.io.triggers import TriggerListError
from glitchflow_assets.core.signal.events import EVENT_COLUMNS
from glitchflow_assets.core.sim.simulator import load_truth
from glitchflow_assets_tests.conftest import sim_run

CHANNEL = "V1:Hrec_hoft_16384Hz"


def truth_events(frames) -> pd.DataFrame:
    """The simulator's strain glitches as an event table (EVENT_COLUMNS): a tile of the glitch's frequency and Q."""
    strain = load_truth(frames).query("role == 'strain'").reset_index(drop=True)
    q = strain.q.fillna(8.0).to_numpy()
    duration = q / (2 * np.pi * strain.frequency.to_numpy())
    bandwidth = 2 * np.sqrt(np.pi) * strain.frequency.to_numpy() / q
    return pd.DataFrame(
        {
            "gps": strain.gps,
            "frequency": strain.frequency,
            "snr": strain.snr,
            "q": q,
            "start": strain.gps - duration / 2,
            "end": strain.gps + duration / 2,
            "duration": duration,
            "fmin": strain.frequency - bandwidth / 2,
            "fmax": strain.frequency + bandwidth / 2,
            "bandwidth": bandwidth,
            "n_tiles": 1,
        }
    )[EVENT_COLUMNS]


@pytest.fixture
def truth(sim_frames) -> tuple[pd.DataFrame, tuple[int, int]]:
    run = sim_run(sim_frames)
    events = truth_events(sim_frames)
    assert len(events) > 5
    return events, (run.gps_start - 60, run.gps_end)


def test_hdf5_export_reads_through_gwpy_and_hveto(truth, tmp_path):
    events, span = truth
    start, end = int(events.gps.min()) - 1, int(events.gps.max()) + 2
    path = tmp_path / omicron_name(CHANNEL, start, end - start)
    assert path.name == f"V1-Hrec_hoft_16384Hz_OMICRON-{start}-{end - start}.h5"
    write_omicron_hdf5(path, events)

    table = EventTable.read(path, format="hdf5", path="triggers")
    assert list(table.colnames) == OMICRON_COLUMNS
    np.testing.assert_allclose(np.asarray(table["time"]), events.gps)
    np.testing.assert_allclose(np.asarray(table["fend"]), events.fmax)

    # hveto's own reader, as its omicron ETG reads strain triggers: a cache of T050017-named files, cut to segments
    half = float(events.gps.iloc[len(events) // 2])
    hveto = get_triggers(CHANNEL, "omicron", SegmentList([Segment(start, half)]), cache=[str(path)], snr=8.0)
    expected = events[(events.gps < half) & (events.snr >= 8.0)]
    assert 0 < len(hveto) < len(events)
    np.testing.assert_allclose(np.sort(np.asarray(hveto["time"])), np.sort(expected.gps.to_numpy()))
    assert set(hveto["channel"]) == {CHANNEL}

    back = read_omicron(path, span)
    np.testing.assert_allclose(back.gps, events.sort_values("gps").gps)
    np.testing.assert_allclose(back.q, events.sort_values("gps").q)
    assert (back.label == "").all() and back.confidence.isna().all()


def test_gwtrigfind_finds_the_exported_archive(truth, tmp_path, monkeypatch):
    """Windows exported into Omicron's archive layout (T1300468) are found by gwtrigfind's own Omicron finder, by time.
    gwtrigfind's archive root is fixed at /home/detchar/triggers (a site mounts its archive there); the test cannot
    create that path, so gwtrigfind's globbing alone sees ``tmp_path`` in its place: the channel folder check, the
    GPS-directory walk, the file naming and the time sieve are gwtrigfind's."""
    events, _ = truth
    start = int(events.gps.min()) // 100 * 100
    files = [omicron_path(tmp_path, CHANNEL, start + 300 * k, 300) for k in range(4)]
    for k, path in enumerate(files):
        write_omicron_hdf5(path, events[(events.gps >= start + 300 * k) & (events.gps < start + 300 * (k + 1))])
    assert files[0].relative_to(tmp_path).parts[:3] == ("V1", "Hrec_hoft_16384Hz_OMICRON", str(start)[:5])

    site = "/home/detchar/triggers"
    here = lambda pattern: pattern.replace(site, str(tmp_path), 1)  # noqa: E731
    back = lambda path: path.replace(str(tmp_path), site, 1)  # noqa: E731
    rooted = SimpleNamespace(glob=lambda p: [back(f) for f in glob.glob(here(p))], iglob=lambda p: (back(f) for f in glob.iglob(here(p))))
    monkeypatch.setattr(gwtrigfind.core, "glob", rooted)
    found = find_trigger_files(CHANNEL, "omicron", start + 400, start + 700)
    assert sorted(u.replace(f"file://{site}", str(tmp_path)) for u in found) == [str(f) for f in files[1:3]]  # the two it overlaps
    with pytest.raises(ValueError, match="No channel-level directory"):
        find_trigger_files("V1:LSC_DARM_ERR", "omicron", start, start + 300)  # a channel never exported


def test_root_files_read_as_omicron_archives_write_them(truth, tmp_path):
    """O1-O3 Omicron archives are ROOT files (a tree ``triggers``), read through gwpy with uproot."""
    events, span = truth
    write_omicron_root(path := tmp_path / "V1-Hrec_hoft_16384Hz_OMICRON-1400000000-600.root", events)
    assert uproot.open(path)["triggers"].keys() == OMICRON_COLUMNS
    back, order = read_omicron(path, span), events.sort_values("gps")
    for ours, theirs in [("gps", "gps"), ("frequency", "frequency"), ("snr", "snr"), ("q", "q"), ("start", "start"), ("fmax", "fmax")]:
        np.testing.assert_allclose(back[ours], order[theirs])
    with uproot.recreate(other := tmp_path / "other.root") as f:  # a ROOT file without Omicron's tree
        f["events"] = {"time": events.gps.to_numpy()}
    with pytest.raises(TriggerListError, match=rf"{other}: cannot read Omicron triggers .*triggers"):
        read_omicron(other, span)


def test_xml_export_reads_through_gwpy_and_hveto(truth, tmp_path):
    events, span = truth
    path = tmp_path / "V1-Hrec_hoft_16384Hz_OMICRON-1400000000-1000.xml"
    write_omicron_xml(path, events, CHANNEL)
    table = EventTable.read(path, format="ligolw", tablename="sngl_burst", columns=["peak", "peak_frequency", "snr"])
    np.testing.assert_allclose(np.asarray(table["peak"], dtype=float), events.gps, atol=1e-6)
    hveto = get_triggers(CHANNEL, "omicron", SegmentList([Segment(*span)]), cache=[str(path)], format="ligolw")
    assert len(hveto) == len(events)

    back = read_omicron(path, span)
    order = events.sort_values("gps")
    np.testing.assert_allclose(back.gps, order.gps, atol=1e-6)
    np.testing.assert_allclose(back.q, order.q, rtol=1e-4)  # Q from the tile's bandwidth
    np.testing.assert_allclose(back.duration, order.duration, rtol=1e-4, atol=2e-9)


def test_bad_omicron_files_name_the_file_and_row(truth, tmp_path):
    events, span = truth
    late = events.copy()
    late.loc[3, "gps"] = span[1] + 10.0
    write_omicron_hdf5(path := tmp_path / "late.h5", late)
    with pytest.raises(TriggerListError, match=rf"{path}: row 4: column 'time': GPS .* outside the run's span"):
        read_omicron(path, span)

    nan = events.copy()
    nan.loc[1, "snr"] = np.nan
    write_omicron_hdf5(path := tmp_path / "nan.h5", nan)
    with pytest.raises(TriggerListError, match=rf"{path}: row 2: column 'snr': nan is not a finite number"):
        read_omicron(path, span)

    with h5py.File(path := tmp_path / "short.h5", "w") as f:  # a table without Omicron's time extent columns
        f["triggers"] = np.zeros(3, dtype=[("time", "f8"), ("frequency", "f8"), ("snr", "f8")])
    with pytest.raises(TriggerListError, match=rf"{path}: missing column\(s\) tstart, tend, fstart, fend, q"):
        read_omicron(path, span)

    write_omicron_hdf5(path := tmp_path / "empty.h5", events.iloc[:0])
    with pytest.raises(TriggerListError, match=rf"{path}: no triggers"):
        read_omicron(path, span)

    (path := tmp_path / "junk.root").write_text("not a ROOT file")
    with pytest.raises(TriggerListError, match=rf"{path}: cannot read Omicron triggers"):
        read_omicron(path, span)
    with pytest.raises(TriggerListError, match="not an Omicron trigger file"):
        read_omicron(tmp_path / "t.csv", span)
    with pytest.raises(TriggerListError, match="cannot read Omicron triggers"):
        read_omicron(tmp_path / "absent.h5", span)
