"""Half-open GPS interval lists ``[(start, end), ...]``: sorted, disjoint."""

Segments = list[tuple[float, float]]


def coalesce(segments: Segments) -> Segments:
    out: Segments = []
    for start, end in sorted(s for s in segments if s[1] > s[0]):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def subtract(segments: Segments, holes: Segments) -> Segments:
    out = coalesce(segments)
    for h0, h1 in coalesce(holes):
        nxt: Segments = []
        for s0, s1 in out:
            if h1 <= s0 or h0 >= s1:
                nxt.append((s0, s1))
                continue
            if s0 < h0:
                nxt.append((s0, h0))
            if h1 < s1:
                nxt.append((h1, s1))
        out = nxt
    return out


def clip(segments: Segments, start: float, end: float) -> Segments:
    return [(max(s, start), min(e, end)) for s, e in segments if e > start and s < end]


def total(segments: Segments) -> float:
    return float(sum(e - s for s, e in segments))
