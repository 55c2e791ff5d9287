"""Which windows to (re-)ingest when frame files appear: the pure logic behind the new-frame sensor.

Cursor: the largest file mtime seen plus the names seen at exactly that mtime (several files can share
one mtime), and the windows still waiting for data. Never the wall clock, so a restart, a clock jump or a
slow copy loses nothing.

A window is requested when its GPS span is fully covered by frame files, or, if it stays incomplete,
once the newest data on disk reaches ``grace_s`` past its end (the stream has moved on: ingest what
exists and record the gaps). A file that lands later for an already ingested window requests it again.
Run keys are ``window|digest-of-its-file-names``: the same files never launch a second run, new files
always do.
"""

import hashlib
import json
from dataclasses import dataclass, field

from glitchflow_assets.core.frames import FrameFile
from glitchflow_assets.core.segments import clip, coalesce, total
from glitchflow_assets.core.windows import Cadence, Window, window_for_key, windows_overlapping


@dataclass
class WatchCursor:
    mtime: float = float("-inf")
    names: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # window keys waiting for more data

    def dumps(self) -> str:
        return json.dumps({"mtime": self.mtime if self.mtime != float("-inf") else None, "names": self.names, "pending": self.pending})

    @classmethod
    def loads(cls, text: str | None) -> "WatchCursor":
        if not text:
            return cls()
        doc = json.loads(text)
        mtime = doc.get("mtime")
        return cls(float("-inf") if mtime is None else float(mtime), list(doc.get("names", [])), list(doc.get("pending", [])))


@dataclass(frozen=True)
class WindowRequest:
    window: Window
    run_key: str
    files: tuple[str, ...]
    complete: bool


def plan_window_requests(
    found: list[tuple[FrameFile, float]],
    cursor: WatchCursor,
    cadence: Cadence,
    run_span: tuple[int, int],
    grace_s: float | None = None,
) -> tuple[list[WindowRequest], WatchCursor]:
    """Requests for the windows touched by new files (or still pending), and the advanced cursor."""
    grace = cadence.seconds if grace_s is None else grace_s
    seen = set(cursor.names)
    new = [(f, m) for f, m in found if m > cursor.mtime or (m == cursor.mtime and f.name not in seen)]
    if not new and not cursor.pending:
        return [], cursor
    by_key: dict[str, Window] = {}
    for f, _ in new:
        start, end = max(f.gps_start, run_span[0]), min(f.gps_end, run_span[1])
        if start < end:
            by_key.update((w.key, w) for w in windows_overlapping(start, end, cadence))
    for key in cursor.pending:
        if key not in by_key:
            by_key[key] = window_for_key(key, cadence)
    files = [f for f, _ in found]
    covered = coalesce([(f.gps_start, f.gps_end) for f in files])
    newest = max((f.gps_end for f in files), default=float("-inf"))
    requests, pending = [], []
    for key, w in sorted(by_key.items()):
        span = (max(w.gps_start, run_span[0]), min(w.gps_end, run_span[1]))
        complete = total(clip(covered, *span)) >= span[1] - span[0]
        if not complete and newest < span[1] + grace:
            pending.append(key)
            continue
        names = sorted(f.name for f in files if f.gps_start < w.gps_end and f.gps_end > w.gps_start)
        digest = hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]
        requests.append(WindowRequest(w, f"{key}|{digest}", tuple(names), complete))
    if new:
        top = max(m for _, m in new)
        if top > cursor.mtime:
            names_at_top = sorted(f.name for f, m in found if m == top)
        else:
            names_at_top = sorted(seen | {f.name for f, m in new if m == top})
        cursor = WatchCursor(top, names_at_top, pending)
    else:
        cursor = WatchCursor(cursor.mtime, cursor.names, pending)
    return requests, cursor
