"""Observing segments: the GPS spans a run analyses, from a state-vector channel and its bits, or from a segment file.

A state vector is an integer channel whose bits say what the detector is doing (Virgo ``V1:DQ_ANALYSIS_STATE_VECTOR``,
LIGO ``H1:GDS-CALIB_STATE_VECTOR`` bits 0-1, the GWOSC files' ``DQmask``): a sample is *observing* when every bit of
the run's mask is set, and covers ``[t, t + 1/rate)``. Segments shorter than ``min_length`` are dropped, except those
cut by the edge of the data looked at (they may go on beyond it).

A segment file is read through gwpy, by its extension: LIGO_LW XML (``.xml``, ``.xml.gz``; a ``segment_definer``
flag), HDF5 (``.h5``, ``.hdf5``, ``.hdf``; as ``DataQualityFlag.write`` writes it), DQSEGDB JSON (``.json``) or
segwizard text (anything else: 2 columns ``start end`` or 4 columns ``index start end duration``, ``#`` comments);
a flag's *active* segments are its observing segments. Pure: nothing here knows of Dagster.
"""

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from glitchflow_assets.core.runs.segments import Segments, coalesce, index_runs

_XML = (".xml", ".xml.gz")
_HDF5 = (".h5", ".hdf5", ".hdf")


class SegmentError(ValueError):
    """Observing segments cannot be made: the message names the file or channel, and the row or GPS time."""


@dataclass(frozen=True)
class SegmentSource:
    """Where a run's observing segments come from: ``channel`` and ``bits`` (a state vector), or ``file``."""

    channel: str = ""
    bits: tuple[int | str, ...] = ()  # bit indices, or names looked up in ``bit_names`` (or the file's own bit names)
    bit_names: tuple[str, ...] = ()  # the state vector's bit names, bit 0 first
    min_length: float = 0.0  # s: shorter segments are dropped
    file: Path | None = None
    flag: str = ""  # the flag to read from an XML/HDF5/JSON file holding several

    def describe(self) -> str:
        """One line for messages and metadata, e.g. ``V1:DQ_ANALYSIS_STATE_VECTOR bits 0, 1 (mask 0x3)``."""
        if self.file is not None:
            return f"segment file {self.file}" + (f" flag {self.flag}" if self.flag else "")
        try:
            mask = f" (mask {self.mask():#x})"
        except SegmentError:  # bits named by the file itself (a GWOSC file's DQShortnames): resolved at ingest
            mask = " (named by the file)"
        return f"{self.channel} bits {', '.join(map(str, self.bits))}{mask}"

    def mask(self, names: tuple[str, ...] = ()) -> int:
        """The bitmask of ``bits``: names looked up in ``names`` (the source's own, e.g. a GWOSC file's ``DQShortnames``),
        else in ``bit_names``; raises :class:`SegmentError` naming the channel for a name neither holds."""
        names = names or self.bit_names
        mask = 0
        for bit in self.bits:
            if isinstance(bit, str):
                if bit not in names:
                    known = ", ".join(names) or "none: give bit_names, or the bit's index"
                    raise SegmentError(f"state vector {self.channel}: no bit named {bit!r} (its bit names: {known})")
                bit = names.index(bit)
            mask |= 1 << bit
        return mask


def state_vector_segments(
    values: np.ndarray, t0: float, sample_rate: float, mask: int, channel: str, span: tuple[float, float] | None = None
) -> Segments:
    """The spans where every bit of ``mask`` is set in ``values [time]`` (a state vector starting at GPS ``t0``, clipped to
    ``span`` when given). Samples must be non-negative integers (stored as integers or floats, as frames hold them);
    anything else raises :class:`SegmentError` naming ``channel`` and the sample's GPS time."""
    values = np.asarray(values)
    if values.dtype.kind == "f":
        bad = ~np.isfinite(values) | (values < 0) | (values != np.round(values))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise SegmentError(f"state vector {channel}: sample {values[i]:g} at GPS {t0 + i / sample_rate:.4f} is not a bitmask")
        values = values.astype(np.int64)
    elif values.dtype.kind not in "iu":
        raise SegmentError(f"state vector {channel}: samples of type {values.dtype} are not bitmasks")
    segments = [(t0 + a / sample_rate, t0 + b / sample_rate) for a, b in index_runs((values & mask) == mask)]
    if span is not None:
        segments = [(max(s, span[0]), min(e, span[1])) for s, e in segments if e > span[0] and s < span[1]]
    return segments


def drop_short(segments: Segments, min_length: float, span: tuple[float, float]) -> Segments:
    """``segments`` (coalesced) without those shorter than ``min_length`` s; one touching an edge of ``span`` (the data
    looked at) is kept, since it may go on beyond it."""
    return [(s, e) for s, e in coalesce(segments) if e - s >= min_length or s <= span[0] or e >= span[1]]


def read_segment_file(path: str | Path, flag: str = "", span: tuple[float, float] | None = None) -> Segments:
    """The observing segments in the segment file at ``path`` (format by extension, see the module), in file order
    checked: every segment must end after it starts, and begin at or after the end of the one before it (sorted,
    disjoint); with ``span`` (a run's GPS span), at least one must overlap it. Raises :class:`SegmentError` naming the
    file and the row for a missing, unreadable, empty, unsorted or overlapping file, or one wholly outside ``span``.
    Cached per file content identity (path, size, modification time)."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as exc:
        raise SegmentError(f"segment file {path}: cannot read it ({exc.strerror})") from exc
    segments = list(_read_cached(str(path), flag, stat.st_size, stat.st_mtime_ns))
    if span is not None and not any(e > span[0] and s < span[1] for s, e in segments):
        raise SegmentError(
            f"segment file {path}: its {len(segments)} segments (GPS {segments[0][0]:.13g}-{segments[-1][1]:.13g}) are all outside "
            f"the run's GPS {span[0]:.13g}-{span[1]:.13g}"
        )
    return segments


@functools.lru_cache(maxsize=16)
def _read_cached(path: str, flag: str, size: int, mtime_ns: int) -> tuple[tuple[float, float], ...]:
    rows = _read_rows(Path(path), flag)
    if not rows:
        raise SegmentError(f"segment file {path}: holds no segment")
    for i, (s, e) in enumerate(rows, 1):
        if e <= s:
            raise SegmentError(f"segment file {path}: segment {i} (GPS {s:.13g}-{e:.13g}) does not end after it starts")
        if i > 1 and s < rows[i - 2][1]:
            before = rows[i - 2]
            raise SegmentError(
                f"segment file {path}: segment {i} (GPS {s:.13g}-{e:.13g}) starts before segment {i - 1} "
                f"(GPS {before[0]:.13g}-{before[1]:.13g}) ends; segments must be sorted and disjoint"
            )
    return tuple(rows)


def _read_rows(path: Path, flag: str) -> list[tuple[float, float]]:
    """The segments of the file in file order, through gwpy."""
    from gwpy.segments import DataQualityFlag, SegmentList  # gwpy: only for a run with a segment file

    name = path.name.lower()
    try:
        if name.endswith(_XML + _HDF5 + (".json",)):
            fmt = "ligolw" if name.endswith(_XML) else "json" if name.endswith(".json") else "hdf5"
            kwargs = {"path": flag} if flag and fmt == "hdf5" else {"name": flag} if flag and fmt == "ligolw" else {}
            segments = DataQualityFlag.read(str(path), format=fmt, **kwargs).active
        else:
            segments = SegmentList.read(str(path), format="segwizard")
    except Exception as exc:  # noqa: BLE001 - gwpy, astropy, h5py, LIGO_LW and LAL raise many types for a bad file
        raise SegmentError(f"segment file {path}: cannot read it as segments ({type(exc).__name__}: {exc})") from exc
    return [(float(s), float(e)) for s, e in segments]
