"""Training a run's model end to end: data -> network -> validation report -> MLflow run -> registered version
(pure; no Dagster). A model whose validation outputs are unsound (NaN, or one tile whatever the witnesses say) or whose
training diverged is never logged or registered: its MLflow run ends FAILED."""

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from glitchflow_assets.core.artifacts.model_evaluation import write_evaluation
from glitchflow_assets.core.artifacts.storage import write_bytes
from glitchflow_assets.core.ml.bundle import MODEL, GlitchModel
from glitchflow_assets.core.ml.data import Normalisation, TileSet, load_split, read_normalisation
from glitchflow_assets.core.ml.evaluation import Evaluation, Report, UnsoundModel, baselines, evaluate, score, ssim_range
from glitchflow_assets.core.ml.figures import accuracy_curves_png, roc_png, training_curves_png
from glitchflow_assets.core.ml.gate import GateConfig, Verdict, judge
from glitchflow_assets.core.ml.loop import TrainResult
from glitchflow_assets.core.ml.model import AttentionUNet, ModelConfig, parameter_count
from glitchflow_assets.core.ml.tracking import ModelVersionRef, Tracker, registered_model_name, system_info
from glitchflow_assets.core.ml.training import TrainConfig, train


@dataclass
class TrainingOutcome:
    ref: ModelVersionRef
    result: TrainResult
    validation: Report  # the model and the baselines on the validation split
    verdict: Verdict
    model_config: ModelConfig
    parameters: int
    curves_png: bytes


def model_config_for(config: TrainConfig, n_aux: int, device: torch.device) -> ModelConfig:
    """The architecture for ``n_aux`` witnesses at ``config.model_size`` (``auto``: the original's on CUDA, the small one elsewhere)."""
    size = config.model_size if config.model_size != "auto" else ("original" if device.type == "cuda" else "small")
    return ModelConfig.original(n_aux) if size == "original" else ModelConfig.small(n_aux)


def validation_report(model: GlitchModel, dataset: str | Path, device: torch.device) -> Report:
    """The model and the baselines on the validation split; refuses (:class:`UnsoundModel`) a model whose outputs are
    non-finite or ignore the witnesses, and records the detection threshold chosen there in the model."""
    report = score([model, *baselines(dataset)], dataset, "validation", device, ssim_range(model))
    if problems := report.problems(MODEL):
        raise UnsoundModel(f"model trained on {dataset} refused, not registered: {'; '.join(problems)}")
    model.detection_threshold = report.thresholds[MODEL]
    return report


def _training_params(
    config: TrainConfig,
    model_config: ModelConfig,
    network: AttentionUNet,
    dataset: str | Path,
    normalisation: Normalisation,
    train_set: TileSet,
    validation_set: TileSet,
) -> dict:
    """The MLflow parameters of a training run: the training and model configuration, the data trained on."""
    return {
        **{f"train.{k}": v for k, v in asdict(config).items()},
        **{f"model.{k}": v for k, v in model_config.to_dict().items()},
        "model.parameters": parameter_count(network),
        "data.path": str(dataset),
        "data.channels": ",".join(normalisation.channels),
        "data.train_tiles": len(train_set),
        "data.validation_tiles": len(validation_set),
    }


def train_and_register(
    dataset: str | Path,
    observing_run: str,
    config: TrainConfig,
    gate: GateConfig,
    device: torch.device,
    tracker: Tracker,
    tags: dict[str, str],
    log: Callable[[str], None],
) -> TrainingOutcome:
    """Train on ``train``, select on ``validation``, log everything to one MLflow run (always ended) and register
    the self-contained model as a new ``candidate`` version of ``glitchflow-<run>``; the gate's verdict comes back
    for the caller to promote on (or not)."""
    normalisation = read_normalisation(dataset, config.representation)
    train_set, validation_set = (load_split(dataset, s, normalisation) for s in ("train", "validation"))
    model_config = model_config_for(config, len(normalisation.aux_channels), device)
    torch.manual_seed(config.seed)  # weight initialisation is part of the seeded result
    network = AttentionUNet(model_config)
    name = registered_model_name(observing_run)
    with tracker.run(name, f"{observing_run}/trained_model", tags) as run_id:
        log(f"MLflow run {run_id} at {tracker.uri}; {len(train_set)} train / {len(validation_set)} validation tiles on {device}")
        tracker.set_tags(run_id, system_info(device))
        tracker.log_params(run_id, _training_params(config, model_config, network, dataset, normalisation, train_set, validation_set))

        def on_epoch(metrics: dict) -> None:
            tracker.log_metrics(run_id, {k: v for k, v in metrics.items() if k != "epoch"}, step=metrics["epoch"])
            log(
                f"epoch {metrics['epoch']}: train {metrics['train_loss']:.4f}, validation {metrics['validation_loss']:.4f}, "
                f"lr {metrics['learning_rate']:.1e} ({metrics['seconds']:.0f} s)"
            )

        result = train(network, train_set, validation_set, config, device, on_epoch, normalisation.physical_snr2(config.glitch_pixel_snr2))
        model = GlitchModel(network.cpu().eval(), normalisation, {**tags, "mlflow_run_id": run_id, "dataset": str(dataset)})
        validation = validation_report(model, dataset, device)
        verdict = judge(validation, gate)
        tracker.log_metrics(run_id, {f"validation_{k}": v for k, v in validation.flat().items()} | {"best_epoch": result.best_epoch})
        curves = training_curves_png(result.history, result.best_epoch)
        tracker.log_bytes(run_id, curves, "figures/training_curves.png")
        tracker.log_bytes(run_id, validation.table().to_csv(index=False).encode(), "tables/validation.csv")
        tracker.log_model(run_id, model)
        ref = tracker.register(name, run_id, tags | {"quality_gate": "passed" if verdict.passed else "failed"})
    log(f"registered {ref.uri} (alias candidate); stopped by {result.stopped} after {len(result.history)} epochs, best {result.best_epoch}")
    log(f"quality gate {verdict.describe()}")
    return TrainingOutcome(ref, result, validation, verdict, model_config, parameter_count(network), curves)


MIN_TEST_EVENTS = 50  # fewer held-out glitch events than this: the headline numbers are flagged as weak


@dataclass
class EvaluationOutcome:
    result: Evaluation
    mlflow_run_id: str
    warning: str  # empty, or why the numbers are weak
    accuracy_png: bytes
    roc_png: bytes


def evaluate_and_track(
    model: GlitchModel,
    ref: ModelVersionRef,
    observing_run: str,
    dataset: str | Path,
    path: Path,
    device: torch.device,
    tracker: Tracker,
    tags: dict[str, str],
) -> EvaluationOutcome:
    """Evaluate a registered version on the held-out test split beside the baselines; write the evaluation (HDF5, and its
    accuracy curves as PNG beside it), log it to an MLflow run of the model's experiment and tag the version with its
    headline numbers."""
    result = evaluate(model, dataset, device, split="test")
    table, counts, headline = result.report.table(), result.report.counts(), result.report.headline(MODEL)
    warning = (
        f"only {counts['glitch_events']} glitch events in the test split (< {MIN_TEST_EVENTS}): the numbers below are weak; "
        "materialize more windows"
        if counts["glitch_events"] < MIN_TEST_EVENTS
        else ""
    )
    title = f"{ref.uri}, test split"
    accuracy = accuracy_curves_png(result.curves, title, counts["events"], counts["tiles"])
    roc = roc_png(result.report.roc_curves(), f"{title}\nglitch detection from the generated tile, {counts['glitch_events']} glitch events")
    write_evaluation(path, result.tables(), ref.uri, result.summary())
    write_bytes(path.with_suffix(".png"), accuracy)
    with tracker.run(ref.name, f"{observing_run}/model_evaluation", tags | {"model_uri": ref.uri}) as run_id:
        tracker.log_metrics(run_id, {f"test_{k}": v for k, v in result.summary().items()})
        tracker.log_bytes(run_id, accuracy, "figures/accuracy_curves.png")
        tracker.log_bytes(run_id, roc, "figures/roc.png")
        for name, frame in (
            ("report", table),
            ("per_class", result.report.per_class()),
            ("curves", result.curves),
            ("vetoes", result.vetoes),
        ):
            if len(frame):
                tracker.log_bytes(run_id, frame.to_csv(index=False).encode(), f"tables/{name}.csv")
    for k in ("balanced_accuracy", "roc_auc", "loudness_ratio", "l1_glitch"):
        tracker.client.set_model_version_tag(ref.name, ref.version, f"test_{k}", str(headline[k]))
    return EvaluationOutcome(result, run_id, warning, accuracy, roc)
