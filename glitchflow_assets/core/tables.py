"""Tables (pandas) in self-describing HDF5 files: one dataset per column, attributes for provenance."""

from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from glitchflow_assets.core.storage import atomic_path, open_hdf5


def write_table(path: str | Path, table: pd.DataFrame, attrs: dict, group: str = "table") -> None:
    """Write ``table`` as ``/<group>/<column>`` datasets plus root ``attrs``, atomically."""
    write_tables(path, {group: table}, attrs)


def write_tables(path: str | Path, tables: dict[str, pd.DataFrame], attrs: dict) -> None:
    """Several tables in one file, one group each, atomically."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
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


def read_table(path: str | Path, group: str = "table") -> tuple[pd.DataFrame, dict]:
    with open_hdf5(path) as f:
        g = f[group]
        columns = [str(c) for c in g.attrs["columns"]]
        data = {c: g[c].asstr()[()] if h5py.check_string_dtype(g[c].dtype) else g[c][()] for c in columns}
        return pd.DataFrame(data, columns=columns), dict(f.attrs)
