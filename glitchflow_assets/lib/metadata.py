"""Asset metadata for the Dagster UI: sortable tables with readable numbers (per-channel ones cut to the channels that matter,
with the rest summarised), and inline PNG images."""

import base64

import dagster as dg
import numpy as np
import pandas as pd

# GPS times keep 0.1 ms; whole numbers stay exact; any other float 4 significant digits (the UI would show 16, or
# 1.4e+09 for a GPS time)
GPS_COLUMNS = frozenset({"gps", "start", "end", "event_gps", "gps_start", "gps_end", "first_gps"})


def _value(column: str, value) -> str | int | float | bool | None:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        if not np.isfinite(value):
            return str(value)
        if float(value).is_integer() and abs(value) < 1e15:  # rates, counts, GPS seconds: exact (16384, not 1.638e+04)
            return int(value)
        return round(float(value), 4) if column in GPS_COLUMNS else float(f"{value:.4g}")
    return None if value is None else str(value)


def _type(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series):
        return "bool"
    if pd.api.types.is_integer_dtype(series):
        return "int"
    return "float" if pd.api.types.is_float_dtype(series) else "string"


def metadata_table(table: pd.DataFrame) -> dg.MetadataValue:
    """``table`` as a Dagster table value (one typed column per DataFrame column)."""
    schema = dg.TableSchema(columns=[dg.TableColumn(str(c), _type(table[c])) for c in table.columns])
    records = [dg.TableRecord({str(c): _value(str(c), v) for c, v in row.items()}) for row in table.to_dict("records")]
    return dg.MetadataValue.table(records, schema)


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
