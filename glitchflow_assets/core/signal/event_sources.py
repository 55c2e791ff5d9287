"""A window's glitch events from the run's event source: the built-in search, an external trigger list instead of it,
or the list beside it (the search's events take the class of the listed trigger at their peak; listed triggers the
search missed are added)."""

from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from glitchflow_assets.core.io.gravityspy import read_gravityspy
from glitchflow_assets.core.io.omicron import read_omicron
from glitchflow_assets.core.io.triggers import LISTED_COLUMNS
from glitchflow_assets.core.runs.registry import EventSource
from glitchflow_assets.core.runs.segments import Segments

MATCH_S = 0.1  # s: a listed trigger and a search event whose peaks are this close are one glitch (the search's cluster_dt)


@lru_cache(maxsize=4)
def _read(kind: str, path: Path, stamp: tuple[int, int], span: tuple[float, float], ifo: str) -> pd.DataFrame:
    """One read per file version (``stamp`` = mtime, size) and process: every window of a run asks for the same list."""
    return read_gravityspy(path, span, ifo) if kind == "gravityspy" else read_omicron(path, span)


def trigger_list(source: EventSource, span: tuple[float, float], ifo: str) -> pd.DataFrame:
    """The run's external trigger list (LISTED_COLUMNS, sorted by GPS), cut to ``min_snr`` and ``classes``."""
    stat = source.path.stat()
    listed = _read(source.source, source.path, (stat.st_mtime_ns, stat.st_size), span, ifo)
    keep = listed.snr >= source.min_snr
    if source.classes:
        keep &= listed.label.isin(source.classes)
    return listed[keep].reset_index(drop=True)


def _inside(gps: np.ndarray, segments: Segments) -> np.ndarray:
    return np.array([any(s <= t < e for s, e in segments) for t in gps], dtype=bool)


def labelled(events: pd.DataFrame) -> pd.DataFrame:
    """Search events (EVENT_COLUMNS) with no class: label "" and confidence NaN."""
    return events.assign(label="", confidence=np.nan)[LISTED_COLUMNS]


def source_events(mode: str, searched_events: pd.DataFrame, listed: pd.DataFrame, searched: Segments) -> pd.DataFrame:
    """The window's events (LISTED_COLUMNS, sorted by GPS) from the listed triggers whose peak lies in its ``searched``
    segments (data the window owns; outside them nothing can be scored): with ``mode`` "replace" those alone, with "add"
    the search's events (each labelled by the listed trigger nearest its peak within MATCH_S) and the listed ones no
    search event matched."""
    listed = listed[_inside(listed.gps.to_numpy(), searched)].reset_index(drop=True)
    if mode == "replace" or searched_events.empty:
        return listed
    events = labelled(searched_events)
    matched = np.zeros(len(listed), dtype=bool)
    times = listed.gps.to_numpy()
    for i, g in enumerate(events.gps.to_numpy()):
        j = int(np.argmin(np.abs(times - g))) if len(times) else -1
        if j >= 0 and abs(times[j] - g) <= MATCH_S:
            events.loc[i, ["label", "confidence"]] = [listed.label[j], listed.confidence[j]]
            matched[j] = True
    combined = pd.concat([events, listed[~matched]], ignore_index=True) if (~matched).any() else events
    return combined.sort_values("gps", kind="stable").reset_index(drop=True)
