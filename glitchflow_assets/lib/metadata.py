"""Asset metadata for the Dagster UI: sortable tables with readable numbers (per-channel ones cut to the channels that matter,
with the rest summarised), and inline PNG images."""

import base64

import dagster as dg
import numpy as np
import pandas as pd

from glitchflow_assets.core.runs.windows import gps_to_utc

# GPS times as text at a fixed 4 decimals (0.1 ms; a float column would show 1400000123.5 beside 1400000123.1234, or
# 1.4e+09) with their UTC in the next column; whole numbers stay exact; any other float 4 significant digits (the UI
# would show 16)
GPS_COLUMNS = frozenset({"gps", "start", "end", "event_gps", "gps_start", "gps_end", "first_gps"})
UTC_BESIDE = frozenset({"gps", "event_gps", "gps_start", "first_gps"})  # a row's time; its start/end only in GPS


def gps_text(gps: float) -> str:
    """``gps`` to a tenth of a millisecond, always four decimals."""
    return f"{gps:.4f}"


def utc_text(gps: float) -> str:
    """``gps`` in UTC to the millisecond, e.g. ``2024-05-17 17:25:51.123``."""
    return gps_to_utc(gps).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def span_metadata(gps_start: float, gps_end: float) -> dict[str, str]:
    """A GPS span for the UI, in GPS and in UTC."""
    return {"gps_span": f"{gps_start:.0f} to {gps_end:.0f}", "utc_span": f"{utc_text(gps_start)[:-4]} to {utc_text(gps_end)[:-4]} UTC"}


def _value(column: str, value) -> str | int | float | bool | None:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if column in GPS_COLUMNS and isinstance(value, int | float | np.integer | np.floating) and np.isfinite(value):
        return gps_text(float(value))
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        if not np.isfinite(value):
            return str(value)
        if float(value).is_integer() and abs(value) < 1e15:  # rates, counts: exact (16384, not 1.638e+04)
            return int(value)
        return float(f"{value:.4g}")
    return None if value is None else str(value)


def _with_utc(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with each row-time GPS column followed by its UTC (``utc`` for ``gps``, ``<name>_utc`` otherwise)."""
    out = table.copy()
    for column in [c for c in table.columns if c in UTC_BESIDE]:
        name = "utc" if column == "gps" else f"{column}_utc"
        utc = [utc_text(v) if pd.notna(v) else "" for v in table[column]]
        out.insert(out.columns.get_loc(column) + 1, name, utc)
    return out


def _type(column: str, series: pd.Series) -> str:
    if column in GPS_COLUMNS:
        return "string"
    if pd.api.types.is_bool_dtype(series):
        return "bool"
    if pd.api.types.is_integer_dtype(series):
        return "int"
    return "float" if pd.api.types.is_float_dtype(series) else "string"


def metadata_table(table: pd.DataFrame) -> dg.MetadataValue:
    """``table`` as a Dagster table value (one typed column per DataFrame column; GPS columns as fixed-precision text
    with their UTC beside them)."""
    table = _with_utc(table)
    schema = dg.TableSchema(columns=[dg.TableColumn(str(c), _type(str(c), table[c])) for c in table.columns])
    records = [dg.TableRecord({str(c): _value(str(c), v) for c, v in row.items()}) for row in table.to_dict("records")]
    return dg.MetadataValue.table(records, schema)


# the per-channel table's columns in the UI: the verdict and what it rests on first (the metadata column shows about six)
CHANNEL_UI_COLUMNS = [
    "channel",
    "selected",
    "significance",
    "mean_corr",
    "coincidences",
    "expected",
    "mean_iou",
    "n_events",
    "windows_scored",
    "native_rate_hz",
    "other_rates",
]
TOP_CHANNELS = 25  # per-channel rows a table shows in the UI: a real detector has hundreds to thousands of channels


def top_channels(
    table: pd.DataFrame, rank: str | list[str], pinned: pd.Series | None = None, top: int = TOP_CHANNELS
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a per-channel ``table`` into the rows the UI shows and the rest: every ``pinned`` row (the strain, the
    selected witnesses), then the highest ``rank`` up to ``top`` rows in all; both parts sorted by ``rank`` (a column, or
    columns compared in turn), highest first."""
    order = table.sort_values(rank, ascending=False, kind="stable").index
    ordered = table.loc[order]
    shown = np.zeros(len(ordered), bool) if pinned is None else pinned.loc[order].to_numpy(bool)
    shown |= np.cumsum(~shown) <= top - shown.sum()
    return ordered[shown].reset_index(drop=True), ordered[~shown].reset_index(drop=True)


def channels_not_shown(rest: pd.DataFrame, rank: str | list[str], where: str) -> str:
    """One line for the channels :func:`top_channels` left out: how many, and the range of each ``rank`` column among them."""
    if rest.empty:
        return "none: the table holds every channel"
    columns = [rank] if isinstance(rank, str) else rank
    spans = ", ".join(f"{c} {rest[c].min():.3g} to {rest[c].max():.3g}" for c in columns)
    return f"{len(rest)} more channels, each ranked below the table's ({spans}); every channel is in `{where}`"


def md_image(png: bytes, title: str) -> str:
    """A PNG as an inline Markdown image (base64 data URI) for ``MetadataValue.md``."""
    return f"![{title}](data:image/png;base64,{base64.b64encode(png).decode()})"
