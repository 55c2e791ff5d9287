"""Which data files a run's frame source holds: a directory tree, a LAL cache / FFL list, or a GWDataFind server.

Every source answers the same thing, the files (with their ``stat``: size and mtime, what the new-frame sensor and
ingest key on) and the entries skipped with why, so ingest and the sensor do not care where the list came from. A
listed file must be on this machine (a path or a ``file://`` URL: frames are read from a local or mounted file
system), named ``OBS-TAG-GPS-DUR.ext`` and agree with the span its list gives it; a file the list names but that is
missing or empty is skipped and reported (a list can be ahead of the copy), never fatal.
"""

import os
from pathlib import Path
from typing import TYPE_CHECKING

from glitchflow_assets.core.io.cache import FrameListError, ListedFile, read_frame_list
from glitchflow_assets.core.io.datafind import find_frame_urls
from glitchflow_assets.core.io.frames import FrameError, FrameFile, Skipped, parse_frame_name, scan_frame_dir

if TYPE_CHECKING:
    from glitchflow_assets.core.runs.registry import FrameSource

Found = list[tuple[FrameFile, os.stat_result]]


def find_frames(source: "FrameSource", gps_start: int, gps_end: int) -> tuple[Found, list[Skipped]]:
    """The files of ``source`` (for a server: those over [gps_start, gps_end); a directory or a list: all of them), sorted
    by GPS start then name, and the entries skipped. Raises :class:`FrameError` naming the list or server when it cannot
    be read at all."""
    if source.kind == "cache":
        try:
            listed = read_frame_list(source.path)
        except FrameListError as exc:
            raise FrameError(str(exc)) from exc
    elif source.kind == "gwdatafind":
        listed = find_frame_urls(source.url, source.observatory, source.frametype, gps_start, gps_end, source.extension.lstrip("."))
    else:
        return scan_frame_dir(source.path, source.extension)
    return _local_files(listed, source.extension)


def _local_files(listed: list[ListedFile], extension: str) -> tuple[Found, list[Skipped]]:
    """The listed files that are on this machine and are what their list says they are."""
    found: dict[str, tuple[FrameFile, os.stat_result]] = {}
    skipped = []
    for entry in listed:
        path = entry.local_path
        why = ""
        if path is None:
            why = f"not a local file (listed by {entry.source}): frames are read from a local or mounted file system"
        elif path.suffix != extension:
            why = f"not a {extension} file (listed by {entry.source})"
        if why:
            skipped.append(Skipped(path or Path(entry.location), why))
            continue
        try:
            frame, stat = parse_frame_name(path), path.stat()
        except (ValueError, OSError) as exc:
            skipped.append(Skipped(path, f"{exc} (listed by {entry.source})"))
            continue
        if (frame.gps_start, frame.duration) != (entry.gps_start, entry.duration):
            listed = f"{entry.gps_start:.12g}+{entry.duration:.12g} s"
            why = f"its name says GPS {frame.gps_start}+{frame.duration} s, {entry.source} says {listed}"
        elif not path.is_file() or stat.st_size == 0:
            why = f"not a regular file, or empty (listed by {entry.source})"
        if why:
            skipped.append(Skipped(path, why))
        else:
            found.setdefault(str(path), (frame, stat))  # a file listed twice (overlapping lists) counts once
    return sorted(found.values(), key=lambda item: (item[0].gps_start, item[0].name)), skipped
