"""Asset metadata for the Dagster UI: sortable tables with readable numbers, and inline PNG images."""

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


def md_image(png: bytes, title: str) -> str:
    """A PNG as an inline Markdown image (base64 data URI) for ``MetadataValue.md``."""
    return f"![{title}](data:image/png;base64,{base64.b64encode(png).decode()})"
