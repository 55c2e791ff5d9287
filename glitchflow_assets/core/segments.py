"""Half-open GPS interval lists ``[(start, end), ...]`` (sorted, disjoint), with the algebra done by gwpy's
``SegmentList`` (ligo-segments); plain float tuples at the edges so they serialise to JSON and HDF5 as they are."""

from gwpy.segments import Segment, SegmentList

Segments = list[tuple[float, float]]


def _gwpy(segments: Segments) -> SegmentList:
    return SegmentList(Segment(float(s), float(e)) for s, e in segments if e > s).coalesce()


def _plain(segments: SegmentList) -> Segments:
    return [(float(s), float(e)) for s, e in segments]


def coalesce(segments: Segments) -> Segments:
    return _plain(_gwpy(segments))


def subtract(segments: Segments, holes: Segments) -> Segments:
    return _plain(_gwpy(segments) - _gwpy(holes))


def clip(segments: Segments, start: float, end: float) -> Segments:
    return _plain(_gwpy(segments) & _gwpy([(start, end)]))


def total(segments: Segments) -> float:
    return float(sum(e - s for s, e in segments))


def covers(segments: Segments, start: float, end: float) -> bool:
    """Whether [start, end) lies inside the segments."""
    return Segment(float(start), float(end)) in _gwpy(segments)
