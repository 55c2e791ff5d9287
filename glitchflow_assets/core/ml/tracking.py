"""MLflow tracking and registry through an explicit :class:`MlflowClient` (no process-global active run).

Embedded default: ``sqlite:///$GLITCHFLOW_HOME/mlflow/mlflow.db`` with artifacts in ``$GLITCHFLOW_HOME/mlflow/artifacts``;
``$MLFLOW_TRACKING_URI`` (e.g. an MLflow server) replaces both unchanged. Runs are always ended: FINISHED, or FAILED
(KILLED on interrupt) when the block raises.
"""

import contextlib
import importlib.metadata
import logging
import os
import platform
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import torch
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types import Schema, TensorSpec

from glitchflow_assets.core import settings
from glitchflow_assets.core.ml.bundle import GlitchModel, load_bundle, save_bundle

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no progress bars in step logs
# MLflow's HTTP defaults (7 retries, backoff factor 2, 120 s timeout) take ~4 minutes to give up on a dead server, four
# times over with the step's retries; 3 retries with factor 1 and a 20 s timeout fail within a minute. The step's own
# retries (defs/model.py) then wait for the server to come back. Set the variables to override.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")

MODEL_ARTIFACT = "model"
PYFUNC_CODE = Path(__file__).with_name("pyfunc_model.py")  # models-from-code: stored with each version, run by MLflow
BUNDLE = "bundle"  # the pyfunc model's artifact holding the safetensors weights + JSON (pyfunc_model.BUNDLE)
CANDIDATE, CHAMPION = "candidate", "champion"
DAGSTER_RUN_TAG = "dagster_run_id"  # the tag dagster-mlflow's resource uses: runs are found the same way
# MLflow 3 opens an experiment in its GenAI view (traces, tokens, cost) unless it is marked as model development
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
DEFAULT_EXPERIMENT = "0"  # the "Default" experiment every store creates, empty here: nothing is logged to it
METRIC_DIGITS = 4  # significant digits a metric is logged with (the MLflow UI shows all 16); exact values are in the artifacts


def default_tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI``, or the embedded SQLite store under ``$GLITCHFLOW_HOME``."""
    return settings.tracking_uri()


def registered_model_name(run: str) -> str:
    """The MLflow registered model of an observing run: ``glitchflow-RUN``."""
    return f"glitchflow-{run}"


@dataclass(frozen=True)
class ModelVersionRef:
    name: str
    version: str
    run_id: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


class Tracker:
    """One tracking store (and its registry)."""

    def __init__(self, tracking_uri: str = ""):
        self.uri = tracking_uri or default_tracking_uri()
        if self.uri.startswith("sqlite:///"):
            Path(self.uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    def _artifact_location(self) -> str | None:
        """Local stores keep artifacts beside the database; a server decides for itself."""
        if self.uri.startswith("sqlite:///"):
            return (Path(self.uri.removeprefix("sqlite:///")).parent / "artifacts").as_uri()
        return None

    def experiment_id(self, name: str) -> str:
        try:
            experiment = self.client.get_experiment_by_name(name)
        except MlflowException as exc:
            raise ConnectionError(f"MLflow tracking store {self.uri} is not reachable: {exc}") from exc
        if experiment is None:
            try:
                experiment_id = self.client.create_experiment(name, artifact_location=self._artifact_location(), tags=EXPERIMENT_KIND)
            except MlflowException:  # created concurrently by another run
                experiment_id = self.client.get_experiment_by_name(name).experiment_id
            self._retire_empty_default()
            return experiment_id
        if not EXPERIMENT_KIND.items() <= experiment.tags.items():  # created before the kind was set
            for key, value in EXPERIMENT_KIND.items():
                self.client.set_experiment_tag(experiment.experiment_id, key, value)
        return experiment.experiment_id

    def _retire_empty_default(self) -> None:
        """Delete the store's Default experiment while it holds no run: the UI would open on it, empty."""
        with contextlib.suppress(MlflowException):  # already deleted, or a server that keeps it
            if not self.client.search_runs([DEFAULT_EXPERIMENT], max_results=1, run_view_type=ViewType.ALL):
                self.client.delete_experiment(DEFAULT_EXPERIMENT)

    def close_orphans(self, experiment_id: str, asset_key: str) -> list[str]:
        """Mark FAILED the runs of ``asset_key`` still RUNNING: an earlier attempt lost the store (or its process)
        before it could end them. Returns their ids."""
        query = f"attributes.status = 'RUNNING' and tags.dagster_asset_key = '{asset_key}'"
        orphans = [r.info.run_id for r in self.client.search_runs([experiment_id], query, max_results=1000)]
        for run_id in orphans:
            self.client.set_terminated(run_id, "FAILED")
        return orphans

    @contextlib.contextmanager
    def run(self, experiment: str, run_name: str, tags: dict[str, str]) -> Iterator[str]:
        """Start a run, yield its id, and always end it (FINISHED / FAILED / KILLED). A tracking store that stops
        answering midway raises :class:`ConnectionError` naming the store and the run."""
        experiment_id = self.experiment_id(experiment)
        if "dagster_asset_key" in tags:
            self.close_orphans(experiment_id, tags["dagster_asset_key"])
        run_id = self.client.create_run(experiment_id, run_name=run_name, tags=tags).info.run_id
        try:
            yield run_id
        except KeyboardInterrupt:
            self.client.set_terminated(run_id, "KILLED")
            raise
        except (MlflowException, OSError) as exc:
            with contextlib.suppress(MlflowException, OSError):  # the store itself may be what failed
                self.client.set_terminated(run_id, "FAILED")
            raise ConnectionError(f"MLflow tracking store {self.uri} failed during run {run_id} ({run_name}): {exc}") from exc
        except BaseException:
            self.client.set_terminated(run_id, "FAILED")
            raise
        self.client.set_terminated(run_id, "FINISHED")

    def log_params(self, run_id: str, params: dict) -> None:
        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[i : i + 100])

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
        timestamp = int(1000 * time.time())
        metrics = [Metric(k, float(f"{float(v):.{METRIC_DIGITS}g}"), timestamp, step) for k, v in metrics.items()]
        self.client.log_batch(run_id, metrics=metrics)

    def log_model(self, run_id: str, model: GlitchModel) -> None:
        """The model as an MLflow pyfunc model (models-from-code) holding the pickle-free bundle."""
        with tempfile.TemporaryDirectory() as tmp:
            self.client.log_artifacts(run_id, str(save_mlflow_model(Path(tmp) / MODEL_ARTIFACT, model)), MODEL_ARTIFACT)

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_bytes(self, run_id: str, data: bytes, artifact_file: str) -> None:
        """One file at ``artifact_file`` (``dir/name``) in the run's artifacts."""
        directory, _, name = artifact_file.rpartition("/")
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / name).write_bytes(data)
            self.client.log_artifact(run_id, str(Path(tmp) / name), directory or None)

    def register(self, name: str, run_id: str, tags: dict[str, str], artifact: str = MODEL_ARTIFACT) -> ModelVersionRef:
        """New version of ``name`` from the run's ``artifact`` directory (default: the pyfunc model), aliased ``candidate``."""
        with contextlib.suppress(MlflowException):  # already registered
            self.client.create_registered_model(name, description=f"Glitchflow: auxiliary channels -> strain ({artifact})")
        version = self.client.create_model_version(name, source=f"runs:/{run_id}/{artifact}", run_id=run_id, tags=tags)
        self.client.set_registered_model_alias(name, CANDIDATE, version.version)
        return ModelVersionRef(name, str(version.version), run_id)

    def promote(self, ref: ModelVersionRef, alias: str = CHAMPION) -> None:
        self.client.set_registered_model_alias(ref.name, alias, ref.version)

    def alias_version(self, name: str, alias: str) -> str | None:
        try:
            return str(self.client.get_model_version_by_alias(name, alias).version)
        except MlflowException:
            return None

    def load(self, ref: ModelVersionRef, device: torch.device | str = "cpu") -> GlitchModel:
        """Exactly this version (never "latest"); a :class:`ModelVersionMissing` when the registry no longer has it."""
        try:
            source = self.client.get_model_version_download_uri(ref.name, ref.version)  # through our registry, not the global one
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            raise ModelVersionMissing(
                f"models:/{ref.name}/{ref.version} is no longer in the MLflow registry at {self.uri} (deleted)"
            ) from exc
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=tmp, tracking_uri=self.uri))
            bundle = local / "artifacts" / BUNDLE
            try:
                return load_bundle(bundle if bundle.is_dir() else local, device)  # versions before the pyfunc: the bare bundle
            except (OSError, ValueError, KeyError, RuntimeError) as exc:  # safetensors/torch errors name no model
                raise ValueError(f"models:/{ref.name}/{ref.version} ({source}): {exc}") from exc


class ModelVersionMissing(LookupError):
    """A registered model version that was recorded but is gone from the registry."""


def save_mlflow_model(directory: Path, model: GlitchModel) -> Path:
    """An MLflow model directory: ``MLmodel`` + ``pyfunc_model.py`` (the code MLflow runs to load it) + the bundle as
    the artifact ``bundle``; input tiles ``[batch, channel, 64, 64]`` (all channels or the witnesses only), output
    ``[batch, 64, 64]``."""
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        # MLflow suggests an input example and type hints, and cannot see pip in a uv-built venv: the tensor signature
        # already says what goes in and out, and the requirements are pinned below
        warnings.simplefilter("ignore", UserWarning)
        logging.getLogger("mlflow.utils.environment").setLevel(logging.ERROR)
        bundle = save_bundle(Path(tmp) / BUNDLE, model)
        mlflow.pyfunc.save_model(
            directory,
            python_model=str(PYFUNC_CODE),
            artifacts={BUNDLE: str(bundle)},
            signature=ModelSignature(
                inputs=Schema([TensorSpec(np.dtype("float32"), (-1, -1, 64, 64))]),  # unnamed: predict gets the array itself
                outputs=Schema([TensorSpec(np.dtype("float32"), (-1, 64, 64))]),
            ),
            pip_requirements=[f"glitchflow-assets=={importlib.metadata.version('glitchflow-assets')}"],  # no inference run
        )
    return directory


def system_info(device: torch.device) -> dict[str, str]:
    """Python, torch and platform versions, CPU and thread counts, the device (and the GPU's name on CUDA): tags for an MLflow run."""
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpu_count": str(os.cpu_count()),
        "torch_threads": str(torch.get_num_threads()),
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info
