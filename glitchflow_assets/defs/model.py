"""Model assets of one observing run: ``trained_model`` (MLflow run + registered version), ``model_evaluation``
on the held-out test split, and ``synthetic_glitches`` - each loading the exact model version recorded upstream."""

import hashlib
import json

import dagster as dg
import h5py
import numpy as np

from glitchflow_assets.core.device import select_device
from glitchflow_assets.core.ml.evaluation import evaluate, write_synthetic
from glitchflow_assets.core.ml.figures import accuracy_curves_png, generated_vs_real_png
from glitchflow_assets.core.ml.metrics import REPORT_THRESHOLD
from glitchflow_assets.core.ml.pipeline import beats_baselines, train_and_register
from glitchflow_assets.core.ml.tracking import CHAMPION, DAGSTER_RUN_TAG, ModelVersionRef, Tracker
from glitchflow_assets.core.ml.training import TrainConfig
from glitchflow_assets.core.runs import ObservingRun
from glitchflow_assets.core.storage import atomic_path
from glitchflow_assets.core.tables import write_tables
from glitchflow_assets.defs.datasets import SPLIT
from glitchflow_assets.defs.gpu import GPU_KINDS, GPU_OP_TAGS, GPU_POOL
from glitchflow_assets.defs.metadata import md_image, md_table
from glitchflow_assets.defs.resources import GlitchflowStorage

TRAINED, EVALUATION, SYNTHETIC = "trained_model", "model_evaluation", "synthetic_glitches"
MODEL_KINDS = {"pytorch", "mlflow"}
MLFLOW_RETRIES, MLFLOW_RETRY_WAIT_S = 3, 15


class MlflowTracking(dg.ConfigurableResource):
    """The MLflow tracking store and registry. Empty ``tracking_uri``: ``$MLFLOW_TRACKING_URI``, else the embedded
    SQLite store under ``$GLITCHFLOW_HOME/mlflow``."""

    tracking_uri: str = ""

    def tracker(self) -> Tracker:
        return Tracker(self.tracking_uri)


class TrainingConfig(dg.Config):
    """Training settings, editable in the Launchpad (see :class:`glitchflow_assets.core.ml.training.TrainConfig`)."""

    model_size: str = TrainConfig.model_size
    epochs: int = TrainConfig.epochs
    batch_size: int = TrainConfig.batch_size
    learning_rate: float = TrainConfig.learning_rate
    weight_decay: float = TrainConfig.weight_decay
    plateau_factor: float = TrainConfig.plateau_factor
    plateau_patience: int = TrainConfig.plateau_patience
    min_learning_rate: float = TrainConfig.min_learning_rate
    grad_clip: float = TrainConfig.grad_clip
    early_stopping_patience: int = TrainConfig.early_stopping_patience
    l1_weight: float = TrainConfig.l1_weight
    ssim_data_range: float = TrainConfig.ssim_data_range
    seed: int = TrainConfig.seed
    mixed_precision: bool = TrainConfig.mixed_precision
    channels_last: bool = TrainConfig.channels_last
    compile: bool = TrainConfig.compile
    time_budget_s: float = TrainConfig.time_budget_s
    device: str = "auto"

    def train_config(self) -> TrainConfig:
        return TrainConfig(**self.model_dump(exclude={"device"}))


def _lineage_tags(context: dg.AssetExecutionContext, run: ObservingRun, dataset_version: str) -> dict[str, str]:
    return {
        DAGSTER_RUN_TAG: context.run.run_id,
        "dagster_asset_key": context.asset_key.to_user_string(),
        "dagster_partition": run.name,  # run-level assets: one asset family per observing run
        "dataset_version": dataset_version,
    }


def _data_version(context: dg.AssetExecutionContext, key: dg.AssetKey) -> str:
    event = context.instance.get_latest_materialization_event(key)
    if event is None:
        raise dg.Failure(description=f"{key.to_user_string()} has never been materialized")
    return str(event.asset_materialization.tags.get("dagster/data_version", event.run_id))


def recorded_model(context: dg.AssetExecutionContext, run: ObservingRun) -> ModelVersionRef:
    """The model version the latest ``trained_model`` materialization registered (never the registry's latest)."""
    event = context.instance.get_latest_materialization_event(dg.AssetKey([run.name, TRAINED]))
    if event is None:
        raise dg.Failure(description=f"{run.name}/{TRAINED} has never been materialized")
    meta = event.asset_materialization.metadata
    return ModelVersionRef(meta["model_name"].value, str(meta["model_version"].value), meta["mlflow_run_id"].value)


def trained_model(run: ObservingRun) -> dg.AssetsDefinition:
    key, upstream = dg.AssetKey([run.name, TRAINED]), dg.AssetKey([run.name, SPLIT])

    @dg.asset(
        key=key,
        group_name=run.name,
        deps=[upstream],
        pool=GPU_POOL,
        kinds=MODEL_KINDS,
        op_tags=GPU_OP_TAGS,
        tags={"glitchflow/level": "run"},
        check_specs=[
            dg.AssetCheckSpec(
                "beats_baselines",
                asset=key,
                blocking=True,
                description=f"Validation L1 below an all-zero and the mean training tile; passing promotes the version to '{CHAMPION}'.",
            )
        ],
        description="Residual attention U-Net (witness spectrograms -> strain spectrogram) trained on the train split, "
        "selected on validation, tracked in MLflow and registered as a new version of glitchflow-RUN (alias candidate).",
    )
    def _trained(
        context: dg.AssetExecutionContext, config: TrainingConfig, storage: GlitchflowStorage, mlflow: MlflowTracking
    ) -> dg.MaterializeResult:
        tracker, device = mlflow.tracker(), select_device(config.device)
        tags = _lineage_tags(context, run, _data_version(context, upstream))
        dataset = storage.run_file(run.name, SPLIT)
        try:
            outcome = train_and_register(dataset, run.name, config.train_config(), device, tracker, tags, context.log.info)
        except ConnectionError as exc:  # the MLflow store went away: fail this attempt, retry while it comes back
            context.log.error(str(exc))
            raise dg.RetryRequested(max_retries=MLFLOW_RETRIES, seconds_to_wait=MLFLOW_RETRY_WAIT_S) from exc
        passed = beats_baselines(outcome.validation)
        if passed:
            tracker.promote(outcome.ref, CHAMPION)
        v = outcome.validation
        return dg.MaterializeResult(
            data_version=dg.DataVersion(outcome.ref.uri),
            metadata={
                "mlflow_run_id": outcome.ref.run_id,
                "model_name": outcome.ref.name,
                "model_version": outcome.ref.version,
                "model_uri": outcome.ref.uri,
                "tracking_uri": tracker.uri,
                "device": str(device),
                "parameters": outcome.parameters,
                "architecture": dg.MetadataValue.json(outcome.model_config.to_dict()),
                "epochs_run": len(outcome.result.history),
                "best_epoch": outcome.result.best_epoch,
                "stopped_by": outcome.result.stopped,
                "train_seconds": round(outcome.result.seconds, 1),
                "validation": dg.MetadataValue.json(v),
                "training_curves": dg.MetadataValue.md(md_image(outcome.curves_png, "training curves")),
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name="beats_baselines",
                    passed=passed,
                    metadata={"l1": v["l1"], "l1_zero": v["l1_zero_baseline"], "l1_mean_tile": v["l1_mean_tile_baseline"]},
                    description=f"validation L1 {v['l1']:.3f} vs zero {v['l1_zero_baseline']:.3f}, "
                    f"mean tile {v['l1_mean_tile_baseline']:.3f}"
                    + (f"; {outcome.ref.uri} promoted to {CHAMPION}" if passed else "; not promoted"),
                )
            ],
        )

    return _trained


def model_evaluation(run: ObservingRun) -> dg.AssetsDefinition:
    @dg.asset(
        key=[run.name, EVALUATION],
        group_name=run.name,
        deps=[dg.AssetKey([run.name, TRAINED])],
        kinds=MODEL_KINDS | {"hdf5"},
        tags={"glitchflow/level": "run"},
        description="The recorded model version on the held-out test split: denoising and veto accuracy for SNR^2 1..50, "
        "per-tile L1/SSIM against zero and mean-tile baselines, per-event veto table; logged to MLflow.",
    )
    def _evaluation(context: dg.AssetExecutionContext, storage: GlitchflowStorage, mlflow: MlflowTracking) -> dg.MaterializeResult:
        tracker, device, ref = mlflow.tracker(), select_device(), recorded_model(context, run)
        result = evaluate(tracker.load(ref, device), storage.run_file(run.name, SPLIT), device, split="test")
        summary = result.summary()
        png = accuracy_curves_png(result.curves, f"{ref.uri}, test split ({len(result.tiles)} tiles)")
        path = storage.run_file(run.name, EVALUATION)
        write_tables(path, {"curves": result.curves, "tiles": result.tiles, "vetoes": result.vetoes}, {"model_uri": ref.uri, **summary})
        with atomic_path(path.with_suffix(".png")) as tmp:
            tmp.write_bytes(png)
        tags = _lineage_tags(context, run, _data_version(context, dg.AssetKey([run.name, SPLIT]))) | {"model_uri": ref.uri}
        with tracker.run(ref.name, f"{run.name}/model_evaluation", tags) as run_id:
            tracker.log_metrics(run_id, {f"test_{k}": v for k, v in summary.items()})
            tracker.log_bytes(run_id, png, "figures/accuracy_curves.png")
            for name in ("curves", "vetoes"):
                tracker.log_bytes(run_id, getattr(result, name).to_csv(index=False).encode(), f"tables/{name}.csv")
        for k in (f"denoising_accuracy_snr2_{REPORT_THRESHOLD}", f"veto_accuracy_snr2_{REPORT_THRESHOLD}", "l1"):
            tracker.client.set_model_version_tag(ref.name, ref.version, f"test_{k}", f"{summary[k]:.4f}")
        return dg.MaterializeResult(
            metadata={
                "path": dg.MetadataValue.path(str(path)),
                "model_uri": ref.uri,
                "mlflow_run_id": run_id,
                **{k: float(v) for k, v in summary.items()},
                "accuracy_curves": dg.MetadataValue.md(md_image(png, "accuracy curves")),
                "vetoes": dg.MetadataValue.md(md_table(result.vetoes)),
            }
        )

    return _evaluation


class SyntheticConfig(dg.Config):
    splits: list[str] = ["test"]  # held-out events (glitch and background tiles)
    batch_size: int = 64


def synthetic_glitches(run: ObservingRun) -> dg.AssetsDefinition:
    @dg.asset(
        key=[run.name, SYNTHETIC],
        group_name=run.name,
        deps=[dg.AssetKey([run.name, TRAINED])],
        pool=GPU_POOL,
        kinds=GPU_KINDS,
        op_tags=GPU_OP_TAGS,
        tags={"glitchflow/level": "run"},
        description="Strain tiles generated by the recorded model version from the witnesses of held-out events, beside the "
        "real tiles, with GPS, window, tile offset, channels, axes, model URI and dataset version (HDF5).",
    )
    def _synthetic(
        context: dg.AssetExecutionContext, config: SyntheticConfig, storage: GlitchflowStorage, mlflow: MlflowTracking
    ) -> dg.MaterializeResult:
        tracker, device, ref = mlflow.tracker(), select_device(), recorded_model(context, run)
        path = storage.run_file(run.name, SYNTHETIC)
        dataset = storage.run_file(run.name, SPLIT)
        lineage = _lineage_tags(context, run, _data_version(context, dg.AssetKey([run.name, SPLIT])))
        attrs = {"model_uri": ref.uri, "model_name": ref.name, "model_version": ref.version, "mlflow_run_id": ref.run_id}
        counts = write_synthetic(path, tracker.load(ref, device), dataset, tuple(config.splits), device, attrs | lineage, config.batch_size)
        with h5py.File(path, "r") as f:
            shown = np.sort(np.argsort(f["real"][()].max(axis=(1, 2)))[::-1][:3])  # the loudest real tiles
            labels = [f"GPS {g:.2f}" for g in f["event_gps"][shown]]
            image = generated_vs_real_png(f["generated"][shown], f["real"][shown], labels, f["axes/frequencies"][()])
        version = json.dumps([ref.uri, lineage["dataset_version"], config.model_dump()], sort_keys=True)
        return dg.MaterializeResult(
            data_version=dg.DataVersion(hashlib.sha256(version.encode()).hexdigest()[:24]),
            metadata={
                "path": dg.MetadataValue.path(str(path)),
                "model_uri": ref.uri,
                "items": dg.MetadataValue.json(counts),
                "examples": dg.MetadataValue.md(md_image(image, "real vs generated")),
            },
        )

    return _synthetic
