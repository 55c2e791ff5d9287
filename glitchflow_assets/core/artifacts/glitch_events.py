"""HDF5 schema of ``glitch_events``: one table of excess-power events per window, with what was searched.

Layout (schema version 1)::

    /table/<column>    gps, frequency, snr, q, duration, bandwidth, ... (one dataset per column)
    attrs: schema, schema_version, run, window, gps_start, gps_end, searched (JSON segments),
           searched_livetime (s), config (JSON EventSearchConfig)
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from glitchflow_assets.core.artifacts.storage import content_version
from glitchflow_assets.core.artifacts.tables import read_tables, write_tables
from glitchflow_assets.core.runs.segments import Segments, total
from glitchflow_assets.core.runs.windows import Window
from glitchflow_assets.core.signal.events import EventSearchConfig

SCHEMA = "glitchflow.glitch_events"
SCHEMA_VERSION = 1


@dataclass
class WindowEvents:
    """One window's events (a row per event, ``gps`` first) and the segments that were searched."""

    events: pd.DataFrame
    searched: Segments
    attrs: dict

    @property
    def livetime(self) -> float:
        return total(self.searched)

    def data_version(self) -> str:
        """Changes exactly when the events do."""
        return content_version(self.events.round(6).to_dict("list"))


def write_events(path: str | Path, run: str, window: Window, events: pd.DataFrame, searched: Segments, config: EventSearchConfig) -> None:
    """Write a window's events atomically."""
    attrs = {
        "run": run,
        "window": window.key,
        "gps_start": window.gps_start,
        "gps_end": window.gps_end,
        "searched": json.dumps(searched),
        "searched_livetime": total(searched),
        "config": json.dumps(asdict(config)),
    }
    write_tables(path, {"table": events}, SCHEMA, SCHEMA_VERSION, attrs)


def read_events(path: str | Path) -> WindowEvents:
    """One window's events read back, with the segments that were searched and the file's attributes."""
    tables, attrs = read_tables(path, SCHEMA, {SCHEMA_VERSION})
    return WindowEvents(tables["table"], [tuple(s) for s in json.loads(attrs["searched"])], attrs)
