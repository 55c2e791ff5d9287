"""External glitch-trigger lists in the event-table layout of ``glitch_events``, checked row by row.

A list read from any format (Omicron, Gravity Spy) becomes one table: :data:`LISTED_COLUMNS` = the event search's
columns plus a class ``label`` ("" where none) and its ``confidence`` (NaN where none). Rows are numbered from 1 over the
data rows of the file, so that an error points at the row a person opens the file to.
"""

from pathlib import Path

import numpy as np
import pandas as pd

from glitchflow_assets.core.signal.events import EVENT_COLUMNS

LISTED_COLUMNS = [*EVENT_COLUMNS, "label", "confidence"]
_FINITE = ["gps", "frequency", "snr", "start", "end"]  # what the window assignment and the scoring need


class TriggerListError(ValueError):
    """An external trigger list is unreadable or wrong: the message names the file, and the row and column where one is at fault."""


def row_error(path: str | Path, row: int, column: str, problem: str) -> TriggerListError:
    """The error of data row ``row`` (1-based) of ``path``."""
    return TriggerListError(f"{path}: row {row}: column {column!r}: {problem}")


def require_columns(path: str | Path, present: list[str], required: list[str]) -> None:
    """Raise naming the file and the ``required`` columns not ``present``."""
    missing = [c for c in required if c not in present]
    if missing:
        raise TriggerListError(f"{path}: missing column(s) {', '.join(missing)} (has {', '.join(present) or 'none'})")


def checked(path: str | Path, table: pd.DataFrame, span: tuple[float, float]) -> pd.DataFrame:
    """``table`` (LISTED_COLUMNS, in file order) once every row has finite times, frequency and SNR and its peak inside
    the run's ``span`` = [start, end); sorted by GPS. An empty list is an error: a file meant to replace the search that
    holds nothing is more likely a wrong file than a quiet detector."""
    if table.empty:
        raise TriggerListError(f"{path}: no triggers (an empty list)")
    for column in _FINITE:
        bad = ~np.isfinite(table[column].to_numpy(dtype=float))
        if bad.any():
            i = int(np.argmax(bad))
            raise row_error(path, i + 1, column, f"{table[column].iloc[i]} is not a finite number")
    outside = ~((table.gps >= span[0]) & (table.gps < span[1])).to_numpy()
    if outside.any():
        i = int(np.argmax(outside))
        raise row_error(path, i + 1, "time", f"GPS {table.gps.iloc[i]:.3f} is outside the run's span [{span[0]}, {span[1]})")
    return table[LISTED_COLUMNS].sort_values("gps", kind="stable").reset_index(drop=True)
