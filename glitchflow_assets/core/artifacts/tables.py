"""Tables (pandas) in self-describing HDF5 artifacts: one group per table, one dataset per column, attributes for
provenance."""

from collections.abc import Collection
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from glitchflow_assets.core.artifacts.storage import open_artifact, write_artifact


def write_tables(path: str | Path, tables: dict[str, pd.DataFrame], schema: str, schema_version: int, attrs: dict) -> None:
    """Several tables in one artifact file, one group each, plus root ``attrs``; atomic."""
    with write_artifact(path, schema, schema_version) as f:
        f.attrs.update(attrs)
        for group, table in tables.items():
            g = f.create_group(group)
            g.attrs["columns"] = list(table.columns)
            for column in table.columns:
                values = table[column].to_numpy()
                if values.dtype == object:
                    g.create_dataset(column, data=np.array([str(v) for v in values], dtype=object), dtype=h5py.string_dtype())
                else:
                    g.create_dataset(column, data=values)


def read_tables(path: str | Path, schema: str, supported: Collection[int]) -> tuple[dict[str, pd.DataFrame], dict]:
    """Every table of an artifact written by :func:`write_tables`, and its root attributes."""
    with open_artifact(path, schema, supported) as f:
        tables = {}
        for name, g in f.items():
            columns = [str(c) for c in g.attrs["columns"]]
            data = {c: g[c].asstr()[()] if h5py.check_string_dtype(g[c].dtype) else g[c][()] for c in columns}
            tables[name] = pd.DataFrame(data, columns=columns)
        return tables, dict(f.attrs)
