"""Fitting a run's time-domain twin end to end (pure; no Dagster): fit -> one MLflow run (settings, per-epoch losses,
the scores of every method fitted) -> the candidate file -> a registered version -> promoted, and moved over the
champion file ``cleaned_strain`` applies, only when its gate passes -> the held-out glitches as HDF5 and GWF frames."""

import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from glitchflow_assets.core.artifacts.glitch_waveforms import write_waveform_set
from glitchflow_assets.core.ml.tracking import CHAMPION, ModelVersionRef, Tracker
from glitchflow_assets.core.runs.registry import ObservingRun
from glitchflow_assets.core.runs.windows import window_for_key
from glitchflow_assets.core.twin.event_segments import TruthFunction
from glitchflow_assets.core.twin.pipeline import TwinConfig, TwinFit, WindowFiles, fit_twin, write_synthetic_frames


def waveform_model_name(run: str) -> str:
    """The registered model of a run's twin (the spectrogram model is ``glitchflow-<run>``)."""
    return f"glitchflow-{run}-waveforms"


@dataclass(frozen=True)
class TwinFiles:
    """Where a fit goes: the held-out waveform set (HDF5), the champion twin ``cleaned_strain`` applies, the latest
    fit before its gate, and the folder of GWF frames of the held-out glitches."""

    waveforms: Path
    champion: Path
    candidate: Path

    @property
    def frames(self) -> Path:
        return self.waveforms.parent / "frames"


@dataclass
class TwinOutcome:
    fit: TwinFit
    ref: ModelVersionRef
    passed: bool
    verdict: str
    frames: list[Path]


def fit_and_register_twin(
    run: ObservingRun,
    windows: Iterable[WindowFiles],
    splits: dict[str, dict[str, np.ndarray]],
    witnesses: list[str],
    witness_rates: dict[str, float],
    config: TwinConfig,
    truth: TruthFunction | None,
    tracker: Tracker,
    tags: dict[str, str],
    dataset_version: str,
    files: TwinFiles,
    log: Callable[[str], None],
) -> TwinOutcome:
    """Fit the twin on the ``splits``' train events from ``witnesses`` (at their ``witness_rates`` where known), track
    (``tags`` on the MLflow run) and register it, promote it when its gate passes, and write the test events' predicted glitches. Raises
    ``ValueError`` when the data cannot make a twin (no train, validation or test events with valid data)."""
    name = waveform_model_name(run.name)
    with tracker.run(name, f"{run.name}/glitch_waveforms", tags) as run_id:
        params = {"method": config.method, "witnesses": json.dumps(witnesses), **asdict(config.wiener), **asdict(config.segments)}
        tracker.log_params(run_id, params | {f"convnet_{k}": v for k, v in config.convnet.to_dict().items()})

        def on_epoch(metrics: dict) -> None:
            member, epoch = metrics["member"], metrics["epoch"]
            log(f"{run.name}/glitch_waveforms convnet {member} epoch {epoch}: validation loss {metrics['validation_loss']:.5f}")
            tracker.log_metrics(run_id, {f"convnet{member}_{k}": v for k, v in metrics.items() if k not in ("member", "epoch")}, step=epoch)

        fit = fit_twin(windows, splits, witnesses, config, truth, on_epoch, witness_rates)
        fit.model.save(files.candidate, {"run": run.name, "dataset_version": dataset_version, "mlflow_run_id": run_id})
        tracker.set_tags(run_id, {"method": fit.method})
        for method, (validation, test) in fit.candidates.items():  # every method fitted, the kept one unprefixed too
            tracker.log_metrics(run_id, {f"{method}_validation_{k}": v for k, v in validation.summary().items()})
            tracker.log_metrics(run_id, {f"{method}_test_{k}": v for k, v in test.summary().items()})
        tracker.log_metrics(run_id, {f"validation_{k}": v for k, v in fit.validation.summary().items()})
        tracker.log_metrics(run_id, {f"test_{k}": v for k, v in fit.test.summary().items()})
        tracker.log_bytes(run_id, files.candidate.read_bytes(), f"{fit.method}/{files.champion.name}")
    passed, verdict = fit.verdict(config)
    ref = tracker.register(name, run_id, {"dataset_version": dataset_version, "method": fit.method}, artifact=fit.method)
    if passed:  # the file cleaned_strain loads is replaced only now: a refused refit leaves the champion's
        tracker.promote(ref, CHAMPION)
        files.candidate.replace(files.champion)
    return TwinOutcome(fit, ref, passed, verdict, _write_held_out(run, fit, ref, witnesses, dataset_version, config, files))


def _write_held_out(
    run: ObservingRun, fit: TwinFit, ref: ModelVersionRef, witnesses: list[str], dataset_version: str, config: TwinConfig, files: TwinFiles
) -> list[Path]:
    """The test events' predicted glitches: one GWF frame per window holding them, and the waveform set (HDF5)."""
    test = fit.test_segments
    spans = sorted({(int(w.gps_start), int(w.duration)) for w in (window_for_key(k, run.cadence) for k in set(test.window))})
    frames = write_synthetic_frames(files.frames, run.strain_channel, fit.test_prediction.glitches(), test.t0, spans, test.sample_rate)
    attrs = {
        "run": run.name,
        "sample_rate": test.sample_rate,
        "strain_channel": run.strain_channel,
        "channels": json.dumps(witnesses),
        "method": fit.method,
        "model_uri": ref.uri,
        "dataset_version": dataset_version,
        "segment_s": config.segments.segment_s,
        # every method fitted, scored on the same events: the learned model always has its Wiener baseline beside it
        "methods": json.dumps({m: {"validation": v.summary(), "test": t.summary()} for m, (v, t) in fit.candidates.items()}),
    }
    write_waveform_set(
        files.waveforms,
        gps=test.gps,
        t0=test.t0,
        window=test.window,
        split=["test"] * len(test),
        whitened=fit.test_prediction.whitened,
        strain=fit.test_prediction.strain,
        amplitude=fit.test_prediction.amplitude,
        scores=fit.test.table,
        truth_whitened=test.truth,
        attrs=attrs,
    )
    return frames
