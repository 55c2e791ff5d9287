"""The model job of one observing run: ``dataset_split`` (tiles of every spectrogram window, split by event),
``trained_model`` (MLflow run + registered version), ``model_evaluation`` on the held-out test split, and
``synthetic_glitches`` - each loading the exact model version recorded upstream."""

import json
from enum import Enum

import dagster as dg
import pandas as pd
import torch
from pydantic import Field

from glitchflow_assets.core.artifacts.dataset_split import SPLITS, example_tiles, verify_dataset
from glitchflow_assets.core.artifacts.model_evaluation import read_evaluation
from glitchflow_assets.core.artifacts.spectrograms import read_spectrograms
from glitchflow_assets.core.artifacts.synthetic_glitches import read_synthetic_info, synthetic_examples_png, write_synthetic
from glitchflow_assets.core.dataset.splits import DatasetConfig, DatasetWriter
from glitchflow_assets.core.device import select_device
from glitchflow_assets.core.ml.bundle import MODEL, GlitchModel
from glitchflow_assets.core.ml.data import REPRESENTATIONS
from glitchflow_assets.core.ml.evaluation import PER_CLASS, UnsoundModel
from glitchflow_assets.core.ml.figures import dataset_tiles_png
from glitchflow_assets.core.ml.gate import GateConfig
from glitchflow_assets.core.ml.loop import TrainingDiverged
from glitchflow_assets.core.ml.pipeline import TrainingOutcome, evaluate_and_track, train_and_register
from glitchflow_assets.core.ml.scoring import HEADLINE, Interval
from glitchflow_assets.core.ml.tracking import CANDIDATE, CHAMPION, ModelVersionMissing, ModelVersionRef, Tracker, registered_model_name
from glitchflow_assets.core.ml.training import MODEL_SIZES, TrainConfig
from glitchflow_assets.core.runs.registry import ObservingRun
from glitchflow_assets.core.runs.windows import window_for_key
from glitchflow_assets.core.signal.glitch_classes import shown
from glitchflow_assets.lib.automation import follows_inputs, on_refresh_cron
from glitchflow_assets.lib.factory import run_asset
from glitchflow_assets.lib.gpu import GPU_KINDS
from glitchflow_assets.lib.inputs import rebuild_hint, step_inputs
from glitchflow_assets.lib.lineage import data_version_of, lineage_tags, mlflow_links
from glitchflow_assets.lib.metadata import md_image, metadata_table
from glitchflow_assets.lib.names import EVALUATION, SPECTROGRAMS, SPLIT, SYNTHETIC, TRAINED, asset_key
from glitchflow_assets.lib.resources import GlitchflowStorage, MlflowTracking

QUALITY_GATE = "quality_gate"
KEY_COLUMNS = ["balanced_accuracy", "roc_auc", "loudness_ratio", "l1_glitch"]  # what the README and the demo quote
# the UI's report table: the key scores first (the metadata column shows about six), then the counts and the rest
REPORT_COLUMNS = [
    "generator",
    *KEY_COLUMNS,
    "threshold_snr2",
    "events",
    "glitch_events",
    "tiles",
    *(h for h in HEADLINE if h not in KEY_COLUMNS),
]
MODEL_KINDS = {"pytorch", "mlflow"}
MLFLOW_RETRIES, MLFLOW_RETRY_WAIT_S = 3, 15


# Choices the Launchpad offers as drop-downs (str enums: equal to the core's plain strings).
ModelSize = Enum("ModelSize", {s: s for s in MODEL_SIZES}, type=str)
Representation = Enum("Representation", {r: r for r in REPRESENTATIONS}, type=str)

_D = TrainConfig()
_G = GateConfig()


class TrainingConfig(dg.Config):
    """Training and quality-gate settings (core: TrainConfig and GateConfig). The original GlitchFlow's setup:
    representation linear, l1_weight 0.8, ssim_data_range 21, learning_rate 1e-4, batch_size 10,
    glitch_pixel_weight 0, shift_bins 0."""

    model_size: ModelSize = Field(ModelSize(_D.model_size), description="auto (original size on CUDA, small on CPU), small or original")
    representation: Representation = Field(
        Representation(_D.representation), description="log: log(1+E) per channel (default); linear: E (the original)"
    )
    epochs: int = Field(_D.epochs, description="most epochs to train (early stopping and the time budget may end sooner)")
    batch_size: int = Field(_D.batch_size, description="tiles per optimisation step (>= 2: batch norm)")
    learning_rate: float = Field(_D.learning_rate, description="AdamW learning rate")
    weight_decay: float = Field(_D.weight_decay, description="AdamW weight decay")
    plateau_factor: float = Field(_D.plateau_factor, description="learning-rate factor when validation loss plateaus")
    plateau_patience: int = Field(_D.plateau_patience, description="epochs without improvement before the factor applies")
    min_learning_rate: float = Field(_D.min_learning_rate, description="floor of the learning rate")
    grad_clip: float = Field(_D.grad_clip, description="gradient-norm clip")
    early_stopping_patience: int = Field(_D.early_stopping_patience, description="epochs without validation improvement before stopping")
    l1_weight: float = Field(_D.l1_weight, description="loss = w L1 + (1 - w)(1 - SSIM); 1: L1 only")
    ssim_data_range: float = Field(_D.ssim_data_range, description="SSIM data range in normalised units")
    glitch_pixel_weight: float = Field(
        _D.glitch_pixel_weight, description="extra L1 weight of pixels whose strain reaches glitch_pixel_snr2"
    )
    glitch_pixel_snr2: float = Field(_D.glitch_pixel_snr2, description="strain SNR^2 from which a pixel counts as glitch")
    shift_bins: int = Field(_D.shift_bins, description="augmentation: random time shifts of up to this many bins")
    seed: int = Field(_D.seed, description="seeds initialisation, shuffling and augmentation")
    mixed_precision: bool = Field(_D.mixed_precision, description="bf16 autocast (CUDA only)")
    channels_last: bool = Field(_D.channels_last, description="channels-last memory format")
    compile: bool = Field(_D.compile, description="torch.compile the network")
    time_budget_s: float = Field(_D.time_budget_s, description="> 0: stop after the epoch that crosses this many seconds")
    min_balanced_accuracy: float = Field(_G.min_balanced_accuracy, description="gate: validation glitch-detection balanced accuracy needed")
    min_validation_events: int = Field(_G.min_validation_events, description="gate: validation glitch events needed to judge")
    beat_linear_baseline: bool = Field(
        _G.beat_linear_baseline, description="gate: require glitch-tile L1 below the linear witness baseline (off only for platform tests)"
    )
    device: str = Field("auto", description="auto (CUDA when present), cpu or cuda[:N]")

    def train_config(self) -> TrainConfig:
        return TrainConfig(**self.model_dump(mode="json", include=TrainConfig.__dataclass_fields__.keys()))

    def gate_config(self) -> GateConfig:
        return GateConfig(self.min_balanced_accuracy, self.min_validation_events, self.beat_linear_baseline)


def recorded_model(context: dg.AssetExecutionContext, run: ObservingRun) -> ModelVersionRef:
    """The model version the latest ``trained_model`` materialization registered (never the registry's latest)."""
    event = context.instance.get_latest_materialization_event(asset_key(run.name, TRAINED))
    if event is None:
        raise dg.Failure(description=f"{run.name}/{TRAINED} has never been materialized")
    meta = event.asset_materialization.metadata
    return ModelVersionRef(meta["model_name"].value, str(meta["model_version"].value), meta["mlflow_run_id"].value)


def load_recorded_model(
    context: dg.AssetExecutionContext, run: ObservingRun, tracker: Tracker, device
) -> tuple[ModelVersionRef, GlitchModel]:
    """The recorded model version, loaded; a failure saying how to rebuild it when the registry no longer has it."""
    ref = recorded_model(context, run)
    try:
        return ref, tracker.load(ref, device)
    except ModelVersionMissing as exc:
        raise dg.Failure(description=f"{run.name}/{TRAINED} recorded {exc}; {rebuild_hint(run, TRAINED, None)}") from exc


def _trained_metadata(outcome: TrainingOutcome, tracker: Tracker, device: torch.device) -> dict:
    """``trained_model`` metadata: the registered version, how training went, the validation report."""
    table = outcome.validation.table()
    headline = outcome.validation.headline(MODEL)
    return {
        "mlflow_run_id": outcome.ref.run_id,
        "model_name": outcome.ref.name,
        "model_version": outcome.ref.version,
        "model_uri": outcome.ref.uri,
        "tracking_uri": tracker.uri,
        **mlflow_links(tracker, outcome.ref.run_id, outcome.ref),
        "device": str(device),
        "parameters": outcome.parameters,
        "architecture": dg.MetadataValue.json(outcome.model_config.to_dict()),
        "epochs_run": len(outcome.result.history),
        "best_epoch": outcome.result.best_epoch,
        "stopped_by": outcome.result.stopped,
        "train_seconds": round(outcome.result.seconds, 1),
        "detection_threshold_snr2": round(outcome.validation.thresholds[MODEL], 2),
        "validation_balanced_accuracy": str(headline["balanced_accuracy"]),
        "validation": metadata_table(table[REPORT_COLUMNS]),
        "training_curves": dg.MetadataValue.md(md_image(outcome.curves_png, "training curves")),
    }


def train(
    context: dg.AssetExecutionContext, run: ObservingRun, config: TrainingConfig, storage: GlitchflowStorage, mlflow: MlflowTracking
) -> dg.MaterializeResult:
    """Train on the run's dataset, register the version, gate it on validation and promote it when it passes."""
    upstream = asset_key(run.name, SPLIT)
    tracker, device = mlflow.tracker(), select_device(config.device)
    tags = lineage_tags(context, run, data_version_of(context, upstream))
    dataset = storage.run_file(run.name, SPLIT)
    try:
        outcome = train_and_register(
            dataset, run.name, config.train_config(), config.gate_config(), device, tracker, tags, context.log.info
        )
    except ConnectionError as exc:  # the MLflow store went away: fail this attempt, retry while it comes back
        context.log.error(str(exc))
        raise dg.RetryRequested(max_retries=MLFLOW_RETRIES, seconds_to_wait=MLFLOW_RETRY_WAIT_S) from exc
    except (TrainingDiverged, UnsoundModel) as exc:  # nothing registered; the materialization fails
        raise dg.Failure(description=f"{run.name}/{TRAINED}: {exc}") from exc
    verdict = outcome.verdict
    if verdict.passed:
        tracker.promote(outcome.ref, CHAMPION)
    return dg.MaterializeResult(
        data_version=dg.DataVersion(outcome.ref.uri),
        metadata=_trained_metadata(outcome, tracker, device),
        check_results=[
            dg.AssetCheckResult(
                check_name=QUALITY_GATE,
                passed=verdict.passed,
                metadata={k: round(float(v), 4) for k, v in verdict.values.items()},
                description=verdict.describe() + (f"; {outcome.ref.uri} promoted to {CHAMPION}" if verdict.passed else "; not promoted"),
            )
        ],
    )


def trained_model(run: ObservingRun) -> dg.AssetsDefinition:
    """The run's ``trained_model`` asset, refreshed on the run's cron, with the blocking quality gate that promotes a passing version."""
    key = asset_key(run.name, TRAINED)

    @run_asset(
        run,
        TRAINED,
        per_window=False,
        deps=[SPLIT],
        kinds=MODEL_KINDS,
        gpu=True,
        automation=on_refresh_cron(run),
        check_specs=[
            dg.AssetCheckSpec(
                QUALITY_GATE,
                asset=key,
                blocking=True,
                description=f"{_G.describe()} (defaults; the run config may change them); passing promotes the version to '{CHAMPION}'.",
            )
        ],
        description=f"Residual attention U-Net (witness spectrograms -> strain spectrogram) trained on the train split of {run.name}, "
        "selected on validation, tracked in MLflow and registered as a new version of "
        f"{registered_model_name(run.name)} (alias {CANDIDATE}); "
        "a model with NaN or witness-blind outputs is refused and not registered.",
    )
    def _trained(
        context: dg.AssetExecutionContext, config: TrainingConfig, storage: GlitchflowStorage, mlflow: MlflowTracking
    ) -> dg.MaterializeResult:
        return train(context, run, config, storage, mlflow)

    return _trained


def per_class_table(per_class: pd.DataFrame) -> dg.MetadataValue:
    """The UI's per-class table: the class and its events, then each number with its 95 % interval as one cell."""
    shown_numbers = {k: [str(Interval(*v)) for v in per_class[[k, f"{k}_low", f"{k}_high"]].to_numpy()] for k in PER_CLASS}
    return metadata_table(per_class[["class", "events", "glitch_events"]].assign(**shown_numbers))


def evaluate_model(
    context: dg.AssetExecutionContext, run: ObservingRun, storage: GlitchflowStorage, mlflow: MlflowTracking
) -> dg.MaterializeResult:
    """Evaluate the recorded model version on the held-out test split beside the baselines; log it to MLflow."""
    tracker, device = mlflow.tracker(), select_device()
    ref, model = load_recorded_model(context, run, tracker, device)
    path = storage.run_file(run.name, EVALUATION)
    tags = lineage_tags(context, run, data_version_of(context, asset_key(run.name, SPLIT)))
    outcome = evaluate_and_track(model, ref, run.name, storage.run_file(run.name, SPLIT), path, device, tracker, tags)
    if outcome.warning:
        context.log.warning(f"{run.name}/{EVALUATION}: {outcome.warning}")
    result = outcome.result
    counts, headline = result.report.counts(), result.report.headline(MODEL)
    return dg.MaterializeResult(
        data_version=dg.DataVersion(read_evaluation(path).data_version()),
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "model_uri": ref.uri,
            "mlflow_run_id": outcome.mlflow_run_id,
            **mlflow_links(tracker, outcome.mlflow_run_id, ref),
            **({"warning": outcome.warning} if outcome.warning else {}),
            "test_events": counts["events"],
            "test_glitch_events": counts["glitch_events"],
            **{f"{k} [95% CI]": str(headline[k]) for k in KEY_COLUMNS},  # every number in the report table and MLflow
            "report": metadata_table(result.report.table()[REPORT_COLUMNS]),
            **({"per_class": per_class_table(per_class)} if len(per_class := result.report.per_class()) else {}),
            "roc": dg.MetadataValue.md(md_image(outcome.roc_png, "ROC")),
            "accuracy_curves": dg.MetadataValue.md(md_image(outcome.accuracy_png, "accuracy curves")),
            "vetoes": metadata_table(result.vetoes),
        },
    )


def model_evaluation(run: ObservingRun) -> dg.AssetsDefinition:
    """The run's ``model_evaluation`` asset: the recorded model version on the test split, following ``trained_model``."""

    @run_asset(
        run,
        EVALUATION,
        per_window=False,
        deps=[TRAINED],
        kinds=MODEL_KINDS | {"hdf5"},
        automation=follows_inputs(),
        description=f"The recorded {run.name} model version on the held-out test split beside the zero, mean-tile and linear "
        "witness baselines: glitch detection from the generated tile (ROC AUC, balanced accuracy at the validation "
        "threshold), loudness ratio, peak distance, log-energy correlation, L1/SSIM per class, bootstrap intervals over "
        "events; the original's denoising/veto curves and per-event veto table; logged to MLflow.",
    )
    def _evaluation(context: dg.AssetExecutionContext, storage: GlitchflowStorage, mlflow: MlflowTracking) -> dg.MaterializeResult:
        return evaluate_model(context, run, storage, mlflow)

    return _evaluation


SplitName = Enum("SplitName", {s: s for s in SPLITS}, type=str)


class SyntheticConfig(dg.Config):
    """Which events the synthetic set is generated for."""

    splits: list[SplitName] = Field(
        ["test"], validate_default=True, description="dataset splits to generate (default: the held-out test events)"
    )
    batch_size: int = Field(64, description="tiles per forward pass")


def generate_synthetic(
    context: dg.AssetExecutionContext, run: ObservingRun, config: SyntheticConfig, storage: GlitchflowStorage, mlflow: MlflowTracking
) -> dg.MaterializeResult:
    """Generate strain tiles with the recorded model version from the witnesses of the chosen splits."""
    tracker, device = mlflow.tracker(), select_device()
    ref, model = load_recorded_model(context, run, tracker, device)
    path = storage.run_file(run.name, SYNTHETIC)
    dataset = storage.run_file(run.name, SPLIT)
    lineage = lineage_tags(context, run, data_version_of(context, asset_key(run.name, SPLIT)))
    attrs = {"model_name": ref.name, "model_version": ref.version, "mlflow_run_id": ref.run_id}
    splits = tuple(s.value for s in config.splits)
    counts = write_synthetic(path, model, ref.uri, dataset, splits, device, attrs | lineage, config.batch_size)
    image = synthetic_examples_png(path)
    return dg.MaterializeResult(
        data_version=dg.DataVersion(read_synthetic_info(path).data_version()),
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "model_uri": ref.uri,
            "items": dg.MetadataValue.json(counts),
            "examples": dg.MetadataValue.md(md_image(image, "real vs generated")),
        },
    )


def synthetic_glitches(run: ObservingRun) -> dg.AssetsDefinition:
    """The run's ``synthetic_glitches`` asset (on the GPU): strain tiles generated by the recorded model version, following it."""

    @run_asset(
        run,
        SYNTHETIC,
        per_window=False,
        deps=[TRAINED],
        kinds=GPU_KINDS,
        gpu=True,
        automation=follows_inputs(),
        description=f"Strain tiles generated by the recorded {run.name} model version from the witnesses of held-out events, beside the "
        "real tiles, with GPS, window, tile offset, channels, axes, model URI and dataset version (HDF5).",
    )
    def _synthetic(
        context: dg.AssetExecutionContext, config: SyntheticConfig, storage: GlitchflowStorage, mlflow: MlflowTracking
    ) -> dg.MaterializeResult:
        return generate_synthetic(context, run, config, storage, mlflow)

    return _synthetic


EXAMPLES_PER_SPLIT = 3  # glitch and background tiles each, from as many events


_DATASET = DatasetConfig()


class DatasetSplitConfig(dg.Config):
    """How spectrograms become labelled tiles and splits (core: DatasetConfig; tiles of 64x64, 5 per event)."""

    seed: int = Field(_DATASET.seed, description="seeds the assignment of events to splits (42: the original's)")
    train_fraction: float = Field(_DATASET.fractions[0], description="share of events in the train split")
    validation_fraction: float = Field(_DATASET.fractions[1], description="share of events in the validation split (test: the rest)")
    block_seconds: float = Field(
        _DATASET.block_seconds, description="> 0: whole blocks of this many seconds go to one split (neighbouring events never leak)"
    )
    glitch_threshold: float = Field(_DATASET.glitch_threshold, description="a tile is a glitch when its strain maximum reaches this SNR^2")
    background_threshold: float = Field(
        _DATASET.background_threshold, description="a tile is background when its strain maximum stays below this SNR^2 (between: dropped)"
    )

    def dataset_config(self) -> DatasetConfig:
        test = 1.0 - self.train_fraction - self.validation_fraction
        return DatasetConfig(
            seed=self.seed,
            fractions=(self.train_fraction, self.validation_fraction, test),
            block_seconds=self.block_seconds,
            glitch_threshold=self.glitch_threshold,
            background_threshold=self.background_threshold,
        )


SPLIT_CHECKS = {
    "no_event_in_two_splits": "Every tile of an event is in one split.",
    "finite_tiles": "No NaN/inf in any tile.",
    "normalisation_stats": "Training normalisation statistics finite and non-zero for every channel.",
}


def events_per_class_table(events_per_class: dict[str, dict[str, int]]) -> dg.MetadataValue | None:
    """The dataset's events per glitch class and split (a row per class, the most frequent first), or None where no
    event has a class."""
    table = pd.DataFrame(events_per_class).reindex(columns=list(SPLITS)).fillna(0).astype(int)
    if not len(table) or (table.index == "").all():
        return None
    table.index = shown(table.index.to_numpy())
    table["events"] = table.sum(axis=1)
    return metadata_table(table.sort_values("events", ascending=False).rename_axis("class").reset_index())


def build_dataset(
    context: dg.AssetExecutionContext, storage: GlitchflowStorage, run: ObservingRun, config: DatasetConfig
) -> dg.MaterializeResult:
    """Tile every materialized spectrogram window of the run into one split dataset, then verify it."""
    keys = sorted(context.instance.get_materialized_partitions(asset_key(run.name, SPECTROGRAMS)))
    if not keys:
        raise dg.Failure(description=f"no materialized {run.name}/{SPECTROGRAMS} window to build a dataset from")
    path = storage.run_file(run.name, SPLIT)
    inputs = step_inputs(context, storage, run)
    first = inputs.window(SPECTROGRAMS, window_for_key(keys[0], run.cadence), read_spectrograms)
    with DatasetWriter(path, first.channels, config) as writer:
        for k in keys:
            window = inputs.window(SPECTROGRAMS, window_for_key(k, run.cadence), read_spectrograms)
            if window.channels != writer.channels:
                raise dg.Failure(
                    description=f"window {k} has channels {window.channels}, earlier windows {writer.channels}: rematerialize spectrograms"
                )
            writer.set_axes(window.frequencies, window.times)
            writer.add_window(k, window.spectrograms, window.event_gps, window.event_class)
        summary = writer.close({"run": run.name, "windows": json.dumps(keys)})
    metadata = {"path": dg.MetadataValue.path(str(path)), "n_windows": len(keys), "class_balance": dg.MetadataValue.json(summary["counts"])}
    if classes := events_per_class_table(summary["events_per_class"]):
        metadata["events_per_class"] = classes
    for split in SPLITS:
        if examples := example_tiles(path, split, EXAMPLES_PER_SPLIT):
            png = dataset_tiles_png(examples, writer.channels, f"{run.name} {split} split: tiles as the model sees them")
            metadata[f"examples_{split}"] = dg.MetadataValue.md(md_image(png, f"{split} tiles"))
    return dg.MaterializeResult(
        data_version=dg.DataVersion(summary["data_version"]),
        metadata=metadata,
        check_results=[dg.AssetCheckResult(check_name=n, passed=ok, description=d) for n, (ok, d) in verify_dataset(path).items()],
    )


def dataset_split(run: ObservingRun) -> dg.AssetsDefinition:
    """The run's ``dataset_split`` asset, refreshed on the run's cron, with its blocking dataset checks."""
    key = asset_key(run.name, SPLIT)

    @run_asset(
        run,
        SPLIT,
        per_window=False,
        deps=[SPECTROGRAMS],
        kinds={"hdf5", "python"},
        automation=on_refresh_cron(run),
        check_specs=[dg.AssetCheckSpec(name, asset=key, blocking=True, description=d) for name, d in SPLIT_CHECKS.items()],
        description=f"Tiles of every materialized {run.name} spectrogram window, labelled and split by event "
        f"({_DATASET.describe()}; defaults), with training-only normalisation statistics; built window by window.",
    )
    def _split(context: dg.AssetExecutionContext, config: DatasetSplitConfig, storage: GlitchflowStorage) -> dg.MaterializeResult:
        return build_dataset(context, storage, run, config.dataset_config())

    return _split
