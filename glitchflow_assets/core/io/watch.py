"""Which windows to (re-)ingest when frame files appear, change or vanish: the logic behind the new-frame sensor.

A window is identified by the files that hold its data, each by name, size and mtime (its content
identity). The cursor keeps, for every window already requested, a digest of those identities and
their number. Each evaluation requests the windows whose identity changed: new files, a late file
copied with an old mtime (``cp -p``, ``rsync -a``), a file rewritten or completed in place. A window
that only lost files is reported and not re-ingested (its ingested file keeps the data). No decision
uses the clock, so a restart, a clock jump or a file stamped in 2100 hides nothing (future mtimes are
reported).

A window is requested when its GPS span and the margins its file holds (``raw_strain_segments.MARGIN_S`` each
side, within the run) are fully covered by files, or, if it stays incomplete, once the newest data on disk
reach ``grace_s`` past its end (the stream has moved on: ingest what exists and
record the gaps). Run keys are ``window|identity digest``: the same files never launch a second run,
changed files always do.

Names are trusted for GPS spans, so a file whose name claims a long span (a junk
``V-X-1400000000-9999999.gwf`` would touch 166,666 one-minute windows) is used only once ``verify``
has checked its table of contents.
"""

import base64
import bisect
import hashlib
import json
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from glitchflow_assets.core.artifacts.raw_strain_segments import window_data_span, window_read_span
from glitchflow_assets.core.artifacts.storage import write_bytes
from glitchflow_assets.core.io.frames import FrameFile
from glitchflow_assets.core.runs.segments import Segments, clip, coalesce, total
from glitchflow_assets.core.runs.windows import Cadence, Window, windows_overlapping

CURSOR_VERSION = 2
FUTURE_SLACK_S = 60.0  # mtimes further ahead of "now" than this are reported
UNVERIFIED_WINDOWS = 64  # a file declaring more windows than this (and more than 4096 s) is verified first


@dataclass
class WatchCursor:
    """Per requested window: ``[identity digest, number of files]``."""

    windows: dict[str, list] = field(default_factory=dict)

    def dumps(self) -> str:
        doc = json.dumps({"version": CURSOR_VERSION, "windows": self.windows}, separators=(",", ":"), sort_keys=True)
        return base64.b64encode(zlib.compress(doc.encode(), 6)).decode()  # 100,000 windows: ~1 MB, not ~4

    @classmethod
    def loads(cls, text: str | None) -> "WatchCursor":
        """An empty cursor for none, or for a cursor of an earlier release (every window is then requested once
        more; ingest is idempotent and never replaces a window file with less data)."""
        if not text:
            return cls()
        try:
            doc = json.loads(zlib.decompress(base64.b64decode(text)))
        except (ValueError, zlib.error):
            return cls()
        return cls(dict(doc["windows"])) if doc.get("version") == CURSOR_VERSION else cls()


KEPT_STATES = 4  # state files kept: a tick that failed after writing one still finds the one its cursor names


def save_state(directory: Path, cursor: WatchCursor) -> str:
    """Write ``cursor`` to a file of ``directory`` named by its digest (atomically; the last :data:`KEPT_STATES` kept)
    and return a short cursor text naming it, ``N windows requested, state <digest>`` (what the UI shows)."""
    state = cursor.dumps()
    digest = hashlib.sha256(state.encode()).hexdigest()[:16]
    path = directory / f"{digest}.z"
    if path.exists():
        path.touch()  # the newest again: kept
    else:
        directory.mkdir(parents=True, exist_ok=True)
        write_bytes(path, state.encode())
    for old in sorted(directory.glob("*.z"), key=lambda p: p.stat().st_mtime)[:-KEPT_STATES]:
        old.unlink(missing_ok=True)
    return f"{len(cursor.windows)} windows requested, state {digest}"


def load_state(directory: Path, text: str | None) -> WatchCursor:
    """The cursor a :func:`save_state` text names; an empty one when the text names no file there (none yet, reset
    in the UI, or a cursor of an earlier release): the sensor then starts from what is materialized."""
    digest = (text or "").rpartition("state ")[2]
    path = directory / f"{digest}.z"
    if not digest.isalnum() or not path.is_file():
        return WatchCursor()
    return WatchCursor.loads(path.read_text())


@dataclass(frozen=True)
class WindowRequest:
    window: Window
    run_key: str
    files: tuple[str, ...]
    complete: bool


@dataclass
class WatchPlan:
    requests: list[WindowRequest]
    cursor: WatchCursor
    pending: list[str]  # windows with new data still waiting to be complete
    notices: list[str]  # what the operator should know: deleted files, future mtimes, untrusted names


def identity(frame: FrameFile, stat: os.stat_result) -> str:
    """A file's content identity ``name:size:mtime_ns`` (window cursor digests are made of them): rewriting or completing it changes it."""
    return f"{frame.name}:{stat.st_size}:{stat.st_mtime_ns}"


def plan_window_requests(
    found: list[tuple[FrameFile, os.stat_result]],
    cursor: WatchCursor,
    cadence: Cadence,
    run_span: tuple[int, int],
    now: float,
    grace_s: float | None = None,
    verify: Callable[[FrameFile], str] | None = None,
) -> WatchPlan:
    """Requests for the windows whose files changed, and the advanced cursor.

    ``verify(frame)`` returns why a file cannot be trusted ('' when it can); files declaring a long span
    are dropped (and reported) without it."""
    grace = cadence.seconds if grace_s is None else grace_s
    notices = _future_notices(found, now)
    in_run = _in_run(_trusted(found, cadence, verify, notices), run_span)
    by_window = _files_by_window(in_run, cadence, run_span)
    covered = coalesce([(f.gps_start, f.gps_end) for f, _ in in_run])
    covered_starts = [a for a, _ in covered]
    newest = max((f.gps_end for f, _ in in_run), default=float("-inf"))
    windows = dict(cursor.windows)
    requests, pending = [], []
    for key, (window, files) in sorted(by_window.items()):
        if not any(f.gps_start < window.gps_end and f.gps_end > window.gps_start for f, _ in files):
            continue  # only a neighbour's data reach into its margins: nothing of its own to ingest yet
        digest = _digest(files)
        before = windows.get(key)
        if before is not None and before[0] == digest:
            continue
        if before is not None and len(files) < before[1]:
            notices.append(f"window {key}: {before[1] - len(files)} frame file(s) deleted since it was ingested; not re-ingested")
            windows[key] = [digest, len(files)]
            continue
        data_span = window_data_span(window)
        span = (max(data_span[0], run_span[0]), min(data_span[1], run_span[1]))
        complete = _covers(covered, covered_starts, span)
        if not complete and newest < span[1] + grace:
            pending.append(key)
            continue
        names = tuple(sorted(f.name for f, _ in files))
        requests.append(WindowRequest(window, f"{key}|{digest}", names, complete))
        windows[key] = [digest, len(files)]
    notices += _forget_deleted(windows, by_window)
    return WatchPlan(requests, WatchCursor(windows), pending, notices)


def _future_notices(found: list[tuple[FrameFile, os.stat_result]], now: float) -> list[str]:
    """A notice for each file whose mtime is in the future."""
    return [
        f"{f.name}: mtime {s.st_mtime:.0f} is in the future (now {now:.0f}); harmless here, the file is tracked by identity"
        for f, s in found
        if s.st_mtime > now + FUTURE_SLACK_S
    ]


def _in_run(found: list[tuple[FrameFile, os.stat_result]], run_span: tuple[int, int]) -> list[tuple[FrameFile, os.stat_result]]:
    """The files some window of the run would read (the run's span widened by a window file's reach)."""
    reach = _reach()
    return [(f, s) for f, s in found if f.gps_start < run_span[1] + reach and f.gps_end > run_span[0] - reach]


def _covers(covered: Segments, covered_starts: list[float], span: tuple[float, float]) -> bool:
    """Whether ``covered`` (coalesced, in order; ``covered_starts`` their starts) holds all of ``span``."""
    near = covered[max(bisect.bisect_right(covered_starts, span[0]) - 1, 0) : bisect.bisect_left(covered_starts, span[1])]
    return total(clip(near, *span)) >= span[1] - span[0]


def _forget_deleted(windows: dict[str, list], by_window: dict) -> list[str]:
    """Drop from the cursor ``windows`` those with no frame file left; a notice for each."""
    notices = []
    for key in sorted(set(windows) - set(by_window)):
        notices.append(f"window {key}: every frame file was deleted; its ingested data are kept")
        del windows[key]
    return notices


def seed_cursor(
    found: list[tuple[FrameFile, os.stat_result]],
    cadence: Cadence,
    run_span: tuple[int, int],
    ingested: Callable[[Window], set[tuple[str, int]] | None],
) -> WatchCursor:
    """A cursor for a sensor starting next to data already ingested (after the main job): every window whose
    files, by name and size, are those its ingested file records (``ingested(window)``, None if there is none)
    counts as requested, so it is not ingested again."""
    windows = {}
    for key, (window, files) in _files_by_window(_trusted(found, cadence, None, []), cadence, run_span).items():
        if ingested(window) == {(f.name, s.st_size) for f, s in files}:
            windows[key] = [_digest(files), len(files)]
    return WatchCursor(windows)


def _digest(files: list[tuple[FrameFile, os.stat_result]]) -> str:
    return hashlib.sha256("\n".join(sorted(identity(f, s) for f, s in files)).encode()).hexdigest()[:16]


def _trusted(
    found: list[tuple[FrameFile, os.stat_result]], cadence: Cadence, verify: Callable[[FrameFile], str] | None, notices: list[str]
) -> list[tuple[FrameFile, os.stat_result]]:
    """Files whose declared span is believable: short, or checked by ``verify``."""
    longest = max(4096, UNVERIFIED_WINDOWS * cadence.seconds)
    kept = []
    for f, s in found:
        if f.duration > longest:
            why = verify(f) if verify else "not verified (no table-of-contents check available)"
            if why:
                notices.append(f"{f.name}: its name claims {f.duration} s; ignored: {why}")
                continue
        kept.append((f, s))
    return kept


def _reach() -> float:
    """How far beyond its edges a window's file reads frames."""
    return window_read_span(Window("", 0, 0))[1]


def _files_by_window(
    found: list[tuple[FrameFile, os.stat_result]], cadence: Cadence, run_span: tuple[int, int]
) -> dict[str, tuple[Window, list[tuple[FrameFile, os.stat_result]]]]:
    """Each window of the run whose file would read a file (its read span), with those files: one pass, linear
    in files + windows."""
    if not found:
        return {}
    reach = _reach()
    start = max(min(f.gps_start for f, _ in found) - reach, run_span[0])
    end = min(max(f.gps_end for f, _ in found) + reach, run_span[1])
    windows = windows_overlapping(start, end, cadence)
    spans = [window_read_span(w) for w in windows]
    starts = [a for a, _ in spans]
    out: dict[str, tuple[Window, list]] = {}
    for f, s in found:
        i = max(bisect.bisect_right(starts, f.gps_start) - 2, 0)  # data spans overlap their neighbours'
        while i < len(windows) and spans[i][0] < f.gps_end:
            if spans[i][1] > f.gps_start:
                out.setdefault(windows[i].key, (windows[i], []))[1].append((f, s))
            i += 1
    return out
