"""Frame-file lists: LAL cache (``OBS TAG GPS DUR URL``, LIGO) and Virgo FFL (``PATH GPS DUR T0 T1``) files.

Both name one data file per line with its GPS span; the list is the source of truth for which files exist (the
files themselves may lie anywhere on a shared file system). Comments (``#``) and blank lines are skipped; a FFL line
naming another ``.ffl`` file includes it (as the Fr library and gwdatafind-server do). Anything else that does not
parse is an error naming the list and the line: a list is written by tools, so a bad line means a broken list, and
skipping it would silently lose data.
"""

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

MAX_NESTING = 16  # FFL files including FFL files: deeper means a loop


class FrameListError(ValueError):
    """A frame list cannot be read; the message names the file and the line."""


@dataclass(frozen=True)
class ListedFile:
    """One data file a list names: where it is (a URL or a path, as written) and the GPS span the list gives it."""

    location: str
    gps_start: float
    duration: float
    source: str  # ``list:line`` where it was named

    @property
    def local_path(self) -> Path | None:
        """The file on this machine (a path, or a ``file://`` URL with no host or ``localhost``); None for a remote URL."""
        url = urlparse(self.location)
        if url.scheme == "" or (url.scheme == "file" and url.netloc in ("", "localhost")):
            return Path(url.path if url.scheme else self.location)
        return None


def read_frame_list(path: str | Path) -> list[ListedFile]:
    """Every file a LAL cache or FFL file names, in the list's order (``.ffl`` by extension: FFL; else LAL cache)."""
    path = Path(path)
    return _read_ffl(path, frozenset()) if path.suffix == ".ffl" else _read_lal_cache(path)


def _lines(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, fields) of each line that is not blank or a comment."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FrameListError(f"cannot read frame list {path}: {exc}") from exc
    return [(n, line.split()) for n, line in enumerate(text.splitlines(), 1) if line.strip() and not line.lstrip().startswith("#")]


def _span(path: Path, n: int, start: str, duration: str) -> tuple[float, float]:
    try:
        gps, dur = float(start), float(duration)
    except ValueError:
        raise FrameListError(f"{path}, line {n}: GPS start {start!r} and duration {duration!r} must be numbers") from None
    if not (0 <= gps < 1e11 and 0 < dur < 1e9):
        raise FrameListError(f"{path}, line {n}: GPS start {gps:.12g} / duration {dur:.12g} out of range")
    return gps, dur


def _read_lal_cache(path: Path) -> list[ListedFile]:
    """``OBSERVATORY TAG GPS-START DURATION URL`` per line (LIGO-T010150's cache format)."""
    out = []
    for n, fields in _lines(path):
        if len(fields) != 5:
            raise FrameListError(f"{path}, line {n}: a LAL cache line has 5 fields (OBS TAG GPS DUR URL), found {len(fields)}")
        gps, dur = _span(path, n, fields[2], fields[3])
        out.append(ListedFile(fields[4], gps, dur, f"{path}:{n}"))
    return out


def _read_ffl(path: Path, including: frozenset[Path]) -> list[ListedFile]:
    """``PATH GPS-START DURATION T0 T1`` per line (Virgo's frame file list); a line naming a ``.ffl`` includes it."""
    resolved = path.resolve()
    if resolved in including or len(including) > MAX_NESTING:
        raise FrameListError(f"{path}: included from itself (through {' -> '.join(map(str, including))})")
    out = []
    for n, fields in _lines(path):
        if fields[0].startswith(("SEGMENT_LIST_START", "SEGMENT_LIST_END")):
            raise FrameListError(f"{path}, line {n}: FFL segment-list blocks are not supported; list the files")
        if fields[0].endswith(".ffl"):
            nested = Path(fields[0]) if Path(fields[0]).is_absolute() else path.parent / fields[0]
            out += _read_ffl(nested, including | {resolved})
            continue
        if len(fields) < 3:
            raise FrameListError(f"{path}, line {n}: a FFL line has at least 3 fields (PATH GPS DUR), found {len(fields)}")
        gps, dur = _span(path, n, fields[1], fields[2])
        out.append(ListedFile(fields[0], gps, dur, f"{path}:{n}"))
    return out
