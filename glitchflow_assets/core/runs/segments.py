"""Half-open GPS interval lists ``[(start, end), ...]`` (sorted, disjoint), with the algebra done by ``igwn-segments``
(what gwpy's ``SegmentList`` is built on, without importing gwpy: a second of start-up); plain float tuples at the
edges so they serialise to JSON and HDF5 as they are."""

import numpy as np
from igwn_segments import segment as Segment
from igwn_segments import segmentlist as SegmentList

Segments = list[tuple[float, float]]


def _segmentlist(segments: Segments) -> SegmentList:
    return SegmentList(Segment(float(s), float(e)) for s, e in segments if e > s).coalesce()


def _plain(segments: SegmentList) -> Segments:
    return [(float(s), float(e)) for s, e in segments]


def coalesce(segments: Segments) -> Segments:
    """``segments`` sorted and merged (overlapping or touching ones joined, empty ones dropped)."""
    return _plain(_segmentlist(segments))


def subtract(segments: Segments, holes: Segments) -> Segments:
    """What of ``segments`` lies outside ``holes``."""
    return _plain(_segmentlist(segments) - _segmentlist(holes))


def clip(segments: Segments, start: float, end: float) -> Segments:
    """``segments`` restricted to [start, end)."""
    return _plain(_segmentlist(segments) & _segmentlist([(start, end)]))


def total(segments: Segments) -> float:
    """The summed duration (s) of ``segments`` (a livetime, for disjoint segments)."""
    return float(sum(e - s for s, e in segments))


def covers(segments: Segments, start: float, end: float) -> bool:
    """Whether [start, end) lies inside the segments."""
    return Segment(float(start), float(end)) in _segmentlist(segments)


def index_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) index pairs of the True runs in a boolean ``[time]`` array (samples to segments)."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.view(np.int8), [0]))))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))
