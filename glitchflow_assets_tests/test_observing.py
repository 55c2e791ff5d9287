"""Observing segments (core/runs/observing.py): state-vector bits to segments, segment files in every format gwpy
writes, bad files, and the registry's ``segments:`` field."""

import dataclasses

import numpy as np
import pytest
from gwpy.segments import DataQualityDict, DataQualityFlag, Segment, SegmentList

from glitchflow_assets.core.runs.observing import SegmentError, SegmentSource, drop_short, read_segment_file, state_vector_segments
from glitchflow_assets.core.runs.registry import RegistryError, load_registry
from glitchflow_assets.core.sim.locks import BIT_NAMES, LockSchedule, lock_spans, state_vector

T0 = 1400000000.0
# 16 Hz state vector: 2 s LOCKED+HREC_OK (0b101), 3 s all three bits (0b111), 1 s nothing, 2 s 0b111
VECTOR = np.repeat(np.array([5, 7, 0, 7], dtype=np.uint32), [32, 48, 16, 32])


@pytest.mark.parametrize(
    ("mask", "expected"),
    [
        (0b001, [(T0, T0 + 5), (T0 + 6, T0 + 8)]),  # LOCKED
        (0b110, [(T0 + 2, T0 + 5), (T0 + 6, T0 + 8)]),  # SCIENCE and HREC_OK: every listed bit must be set
        (0b010, [(T0 + 2, T0 + 5), (T0 + 6, T0 + 8)]),
        (0b1000, []),  # a bit never set
    ],
)
def test_state_vector_bits_to_segments(mask, expected):
    assert state_vector_segments(VECTOR, T0, 16, mask, "V1:SV") == expected


def test_state_vector_stored_as_floats_and_clipped_to_a_span():
    assert state_vector_segments(VECTOR.astype(np.float32), T0, 16, 0b011, "V1:SV", span=(T0 + 3, T0 + 7)) == [
        (T0 + 3, T0 + 5),
        (T0 + 6, T0 + 7),
    ]


def test_state_vector_that_is_no_bitmask_is_refused_naming_channel_and_gps():
    bad = VECTOR.astype(np.float64)
    bad[40] = 2.5
    with pytest.raises(SegmentError, match=r"state vector V1:SV: sample 2.5 at GPS 1400000002.5000 is not a bitmask"):
        state_vector_segments(bad, T0, 16, 1, "V1:SV")
    bad[40] = np.nan
    with pytest.raises(SegmentError, match="nan at GPS 1400000002.5000"):
        state_vector_segments(bad, T0, 16, 1, "V1:SV")


def test_min_length_drops_short_segments_but_keeps_those_cut_by_the_span():
    segments = [(0.0, 2.0), (10.0, 11.0), (20.0, 50.0), (98.0, 100.0)]
    assert drop_short(segments, 5.0, (0.0, 100.0)) == [(0.0, 2.0), (20.0, 50.0), (98.0, 100.0)]
    assert drop_short(segments, 5.0, (-np.inf, np.inf)) == [(20.0, 50.0)]


def test_bits_by_name_and_index():
    named = SegmentSource(channel="V1:SV", bits=("SCIENCE", 2), bit_names=BIT_NAMES)
    assert named.mask() == 0b110
    assert SegmentSource(channel="H1:DQ", bits=("DATA", "CBC_CAT1")).mask(("DATA", "CBC_CAT1", "CBC_CAT2")) == 0b011  # a file's own names
    assert named.describe() == "V1:SV bits SCIENCE, 2 (mask 0x6)"
    with pytest.raises(SegmentError, match=r"state vector V1:SV: no bit named 'OBSERVING' \(its bit names: LOCKED, SCIENCE, HREC_OK\)"):
        SegmentSource(channel="V1:SV", bits=("OBSERVING",), bit_names=BIT_NAMES).mask()


def test_simulated_state_vector_follows_the_lock_schedule():
    schedule = LockSchedule(T0, first_lock_s=100, unlock_s=(50, 50), lock_s=(1000, 1000))
    assert lock_spans(schedule, 1, T0 + 200)[1:] == [(T0 + 150, T0 + 1150)]
    bits = state_vector(schedule, 1, T0, 16 * 300)
    science = state_vector_segments(bits, T0, 16, 0b110, "V1:SV")
    locked = state_vector_segments(bits, T0, 16, 0b001, "V1:SV")
    assert locked == [(T0, T0 + 100), (T0 + 150, T0 + 300)]
    assert science == [(T0, T0 + 100), (T0 + 210, T0 + 300)]  # SCIENCE 60 s after the acquisition


ACTIVE = SegmentList([Segment(T0 + 10, T0 + 20), Segment(T0 + 30, T0 + 45)])
EXPECTED = [(T0 + 10, T0 + 20), (T0 + 30, T0 + 45)]


def _write(path, fmt):
    flag = DataQualityFlag("V1:SCIENCE:1", active=ACTIVE, known=[Segment(T0, T0 + 100)])
    if fmt == "segwizard":
        ACTIVE.write(str(path), format="segwizard")  # 4 columns: index start end duration
    elif fmt == "ligolw":
        DataQualityDict({flag.name: flag}).write(str(path), format="ligolw")
    else:
        flag.write(str(path))


@pytest.mark.parametrize(("name", "fmt"), [("seg.txt", "segwizard"), ("seg.xml", "ligolw"), ("seg.h5", "hdf5"), ("seg.json", "json")])
def test_segment_files_written_by_gwpy_read_back(tmp_path, name, fmt):
    _write(tmp_path / name, fmt)
    assert read_segment_file(tmp_path / name) == EXPECTED


def test_two_column_text_and_a_named_flag(tmp_path):
    (tmp_path / "two.txt").write_text("# start end\n1400000010 1400000020\n1400000030.5 1400000045\n")
    assert read_segment_file(tmp_path / "two.txt") == [(T0 + 10, T0 + 20), (T0 + 30.5, T0 + 45)]
    flags = DataQualityDict(
        {n: DataQualityFlag(n, active=a, known=[Segment(T0, T0 + 100)]) for n, a in (("V1:A:1", ACTIVE), ("V1:B:1", [Segment(T0, T0 + 5)]))}
    )
    flags.write(str(tmp_path / "two.xml"), format="ligolw")
    assert read_segment_file(tmp_path / "two.xml", flag="V1:B:1") == [(T0, T0 + 5)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "holds no segment"),
        (
            "1400000030 1400000040\n1400000010 1400000020\n",
            r"segment 2 \(GPS 1400000010-1400000020\) starts before segment 1 \(GPS 1400000030",
        ),
        ("1400000010 1400000020\n1400000015 1400000040\n", "segments must be sorted and disjoint"),
        ("1400000010 1400000020\n1400000030 1400000030\n", r"segment 2 \(GPS 1400000030-1400000030\) does not end after it starts"),
        ("start end\n", "cannot read it as segments"),
    ],
)
def test_bad_segment_files_are_refused_naming_file_and_row(tmp_path, text, message):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(SegmentError, match=f"segment file {path}: .*{message}"):
        read_segment_file(path)


def test_segment_file_missing_or_outside_the_run(tmp_path):
    with pytest.raises(SegmentError, match=f"segment file {tmp_path / 'none.txt'}: cannot read it"):
        read_segment_file(tmp_path / "none.txt")
    (tmp_path / "old.txt").write_text("1000 2000\n3000 4000\n")
    with pytest.raises(SegmentError, match=r"its 2 segments \(GPS 1000-4000\) are all outside the run's GPS 1400000000-1400086400"):
        read_segment_file(tmp_path / "old.txt", span=(T0, T0 + 86400))


def _registry(tmp_path, segments: str):
    path = tmp_path / "runs.yaml"
    path.write_text(
        "runs:\n  LOCKED:\n    {gps_start: 1400000000, gps_end: 1400086400, window: 1h, strain_channel: 'V1:h',\n"
        f"     frames: {{kind: gwf, path: '{tmp_path}'}}, segments: {segments}}}\n"
    )
    return path


def test_registry_segments_field(tmp_path):
    run = load_registry(
        _registry(tmp_path, "{channel: 'V1:SV', bits: [SCIENCE, 2], bit_names: [LOCKED, SCIENCE, HREC_OK], min_length: 60}")
    )
    assert run["LOCKED"].segments == SegmentSource(channel="V1:SV", bits=("SCIENCE", 2), bit_names=BIT_NAMES, min_length=60.0)
    patterned = dataclasses.replace(run["LOCKED"], aux_channels=("V1:*",))
    assert patterned.segments_channel == "V1:SV" and patterned.resolve_aux_channels(["V1:SV", "V1:A", "V1:h"]) == ["V1:A"]
    run = load_registry(_registry(tmp_path, "{file: '${GLITCHFLOW_HOME}/science.xml', flag: 'V1:SCIENCE:1'}"))
    assert run["LOCKED"].segments.file.name == "science.xml" and run["LOCKED"].segments.flag == "V1:SCIENCE:1"
    assert load_registry()["SIM"].segments is None  # default: every second with data counts


@pytest.mark.parametrize(
    ("segments", "message"),
    [
        ("{channel: 'V1:SV'}", "field segments.bits: list the state vector's bits"),
        ("{channel: 'V1:SV', bits: [0], file: x.txt}", "give either channel .* or file, not both"),
        ("{bits: [0]}", "not neither"),
        ("{file: x.txt, bits: [1]}", "bits and bit_names belong to a state-vector channel"),
        ("{channel: 'V1:SV', bits: [SCIENCE], bit_names: [LOCKED]}", "field segments.bits: state vector V1:SV: no bit named 'SCIENCE'"),
        ("{channel: 'V1:SV', bits: [-1]}", "field segments.bits.0"),
        ("{channel: 'V1:SV', bits: [0], min_length: -5}", "field segments.min_length"),
        ("{channel: 'V1:SV', bits: [0], mask: 3}", "field segments.mask: Extra inputs are not permitted"),
    ],
)
def test_registry_segments_field_errors_name_file_run_and_field(tmp_path, segments, message):
    path = _registry(tmp_path, segments)
    with pytest.raises(RegistryError, match=f"{path}: run 'LOCKED': .*{message}"):
        load_registry(path)


def test_gwosc_data_quality_bits_by_the_files_own_names():
    """What item 5's GWOSC runs use: the real GW150914 file's DQ mask (1 Hz) with its ``DQShortnames``, bits by name."""
    import h5py
    from gwpy.timeseries import StateVector

    from glitchflow_assets_tests.conftest import real_file

    path = real_file("H-H1_LOSC_4_V2-1126259446-32.hdf5")
    mask = StateVector.read(str(path), format="hdf5.gwosc")
    with h5py.File(path, "r") as f:
        names = tuple(n.decode() for n in f["quality/simple/DQShortnames"][()])
    source = SegmentSource(channel="H1:GWOSC-DQMASK", bits=("DATA", "CBC_CAT1"))
    assert source.mask(names) == 0b11
    assert state_vector_segments(mask.value, mask.t0.value, mask.sample_rate.value, source.mask(names), source.channel) == [
        (1126259446.0, 1126259478.0)
    ]
    with pytest.raises(SegmentError, match="no bit named 'CAT9'"):
        SegmentSource(channel="H1:GWOSC-DQMASK", bits=("CAT9",)).mask(names)
