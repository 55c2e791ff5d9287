"""Where glitchflow keeps its state on this machine (embedded defaults)."""

import os
from pathlib import Path

HOME_ENV = "GLITCHFLOW_HOME"


def glitchflow_home() -> Path:
    """Root of the embedded defaults: frames, asset storage, MLflow store, Dagster instance.

    ``$GLITCHFLOW_HOME`` if set, else ``~/.glitchflow``.
    """
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".glitchflow").expanduser().resolve()


def storage_root() -> Path:
    """Where asset partitions are written (one HDF5 file per partition)."""
    return Path(os.environ.get("GLITCHFLOW_STORAGE") or glitchflow_home() / "storage").expanduser().resolve()
