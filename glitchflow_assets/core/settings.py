"""Every environment variable glitchflow reads, in one place (the README's configuration table lists the same).

Each is read when it is used, never at import, so a value set before a call (by the CLI, a test, a pod spec) is
heard; a value that does not parse fails naming the variable."""

import os
from pathlib import Path

HOME_ENV = "GLITCHFLOW_HOME"  # root of the embedded defaults (default ~/.glitchflow)
STORAGE_ENV = "GLITCHFLOW_STORAGE"  # where asset files are written (default $GLITCHFLOW_HOME/storage)
RUNS_ENV = "GLITCHFLOW_RUNS"  # a user registry of observing runs, over the shipped one
EXECUTOR_ENV = "GLITCHFLOW_EXECUTOR"  # "k8s": every step its own pod
SENSOR_INTERVAL_ENV = "GLITCHFLOW_SENSOR_INTERVAL_S"  # seconds between sensor evaluations (default 30)
MLFLOW_UI_ENV = "GLITCHFLOW_MLFLOW_UI_URL"  # the MLflow UI the asset metadata links to, for a local tracking store
DAGSTER_UI_ENV = "GLITCHFLOW_DAGSTER_UI_URL"  # the Dagster UI that MLflow runs link back to
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"  # MLflow tracking server / store (default the local SQLite store)
FRAME_TIMEOUT_ENV = "GLITCHFLOW_FRAME_READ_TIMEOUT_S"  # seconds a frame decoder may take for one request (default 300)
FRAME_DECODERS_ENV = "GLITCHFLOW_FRAME_DECODERS"  # frame decoder processes at once (default min(4, cores))
DAGSTER_HOME_ENV = "DAGSTER_HOME"  # the Dagster instance the CLI uses (default $GLITCHFLOW_HOME/dagster)


def _path(name: str, default: Path) -> Path:
    return Path(os.environ.get(name) or default).expanduser().resolve()


def _number(name: str, default: float, kind: type = float, minimum: float = 0) -> float:
    raw = os.environ.get(name, "")
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(f"${name}={raw!r} is not {'an integer' if kind is int else 'a number'}") from None
    if value < minimum:
        raise ValueError(f"${name}={raw!r} is below {minimum}")
    return value


def glitchflow_home() -> Path:
    """Root of the embedded defaults: frames, asset storage, MLflow store, Dagster instance."""
    return _path(HOME_ENV, Path.home() / ".glitchflow")


def storage_root() -> Path:
    """Where asset partitions are written (one HDF5 file per partition)."""
    return _path(STORAGE_ENV, glitchflow_home() / "storage")


def dagster_home() -> Path:
    """The Dagster instance the CLI uses (``$DAGSTER_HOME``, default ``$GLITCHFLOW_HOME/dagster``)."""
    return _path(DAGSTER_HOME_ENV, glitchflow_home() / "dagster")


def runs_file() -> Path | None:
    """The user registry named by $GLITCHFLOW_RUNS, if any."""
    raw = os.environ.get(RUNS_ENV)
    return Path(raw) if raw else None


def executor() -> str:
    """``$GLITCHFLOW_EXECUTOR``: ``k8s`` (every step its own pod) or ``''`` (unset: in-process); anything else is refused."""
    choice = os.environ.get(EXECUTOR_ENV, "")
    if choice not in ("", "k8s"):
        raise ValueError(f"${EXECUTOR_ENV}={choice!r}: expected 'k8s' or unset")
    return choice


def sensor_interval_s() -> int:
    """Seconds between sensor evaluations (``$GLITCHFLOW_SENSOR_INTERVAL_S``, default 30, at least 1)."""
    return int(_number(SENSOR_INTERVAL_ENV, 30, int, minimum=1))


def tracking_uri() -> str:
    """The MLflow tracking URI (``$MLFLOW_TRACKING_URI``, default the SQLite store ``$GLITCHFLOW_HOME/mlflow/mlflow.db``)."""
    return os.environ.get(TRACKING_URI_ENV) or f"sqlite:///{glitchflow_home() / 'mlflow' / 'mlflow.db'}"


def mlflow_ui_url() -> str:
    """The MLflow UI that asset metadata links to for a local store (``$GLITCHFLOW_MLFLOW_UI_URL``, default http://127.0.0.1:5000)."""
    return os.environ.get(MLFLOW_UI_ENV, "http://127.0.0.1:5000")


def dagster_ui_url() -> str:
    """The Dagster UI that MLflow runs link back to (``$GLITCHFLOW_DAGSTER_UI_URL``, default http://127.0.0.1:3000)."""
    return os.environ.get(DAGSTER_UI_ENV, "http://127.0.0.1:3000")


def frame_read_timeout_s() -> float:
    """Seconds a frame decoder may take for one request before it counts as hung (``$GLITCHFLOW_FRAME_READ_TIMEOUT_S``, default 300)."""
    return float(_number(FRAME_TIMEOUT_ENV, 300.0, float, minimum=0.1))


def frame_decoders() -> int:
    """Frame decoder processes at once (``$GLITCHFLOW_FRAME_DECODERS``, default min(4, cores))."""
    return int(_number(FRAME_DECODERS_ENV, min(4, os.cpu_count() or 1), int, minimum=1))
