"""Time-domain twin assets of one observing run: ``glitch_waveforms`` (the Wiener twin fitted on the dataset's train
events, gated on validation, tracked and registered in MLflow; held-out glitches in strain units as HDF5 and GWF) and
``cleaned_strain`` per window (strain minus the predicted glitches, as GWF, searched again)."""

import functools
from collections.abc import Iterator
from dataclasses import replace
from enum import Enum
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from glitchflow_assets.core.artifacts.dataset_split import classes_at, dataset_classes, dataset_events
from glitchflow_assets.core.artifacts.glitch_events import read_events
from glitchflow_assets.core.artifacts.storage import content_version, sha256sum
from glitchflow_assets.core.ml.tracking import CHAMPION, Tracker
from glitchflow_assets.core.runs.registry import ObservingRun
from glitchflow_assets.core.runs.windows import Window, window_for_key
from glitchflow_assets.core.signal.figures import strain_versions_png
from glitchflow_assets.core.sim.truth import StrainTruth
from glitchflow_assets.core.twin.cleaning import write_cleaning_report
from glitchflow_assets.core.twin.figures import representative_events, waveforms_png
from glitchflow_assets.core.twin.pipeline import (
    METHODS,
    CleanedWindow,
    TwinConfig,
    WindowFiles,
    clean_window,
    load_twin,
    write_cleaned_frame,
)
from glitchflow_assets.core.twin.registration import TwinFiles, TwinOutcome, fit_and_register_twin
from glitchflow_assets.core.twin.scoring import per_class
from glitchflow_assets.lib.automation import follows_inputs
from glitchflow_assets.lib.factory import run_asset
from glitchflow_assets.lib.inputs import (
    Inputs,
    champion_twin_file,
    cleaning_report_path,
    read_run_selection,
    step_inputs,
    window_witnesses,
)
from glitchflow_assets.lib.lineage import data_version_of, lineage_tags, mlflow_links
from glitchflow_assets.lib.metadata import md_image, metadata_table
from glitchflow_assets.lib.names import CLEANED, EVENTS, RAW, SELECTION, SPLIT, WAVEFORMS, asset_key
from glitchflow_assets.lib.resources import GlitchflowStorage, MlflowTracking
from glitchflow_assets.lib.windowed import WindowEvent, for_each_window

WAVEFORM_GATE = "waveform_gate"
CANDIDATE_SUFFIX = ".candidate.twin.h5"  # the latest fit, before its gate
TWIN_DIGEST = "twin_sha256"  # glitch_waveforms metadata: the champion twin file's SHA-256, checked before cleaning


TwinMethod = Enum("TwinMethod", {m: m for m in METHODS}, type=str)
_T = TwinConfig()


class WaveformsConfig(dg.Config):
    """How the time-domain twin is fitted (core: TwinConfig and ConvNetConfig)."""

    method: TwinMethod = Field(
        TwinMethod(_T.method),
        description="auto: fit the Wiener filter and the learned network, keep the better on validation; or one of the two",
    )
    epochs: int = Field(_T.convnet.epochs, description="most epochs to train each network (early stopping may end sooner)")
    time_budget_s: float = Field(
        _T.convnet.time_budget_s, description="> 0: each network stops after the epoch crossing this many seconds (0: none, deterministic)"
    )
    seed: int = Field(_T.convnet.seed, description="seeds the first network (initialisation, shuffling, sign flips); network k: seed + k")
    members: int = Field(_T.convnet.members, ge=1, description="networks trained from successive seeds, their corrections averaged")
    min_validation_events: int = Field(_T.min_validation_events, description="gate: validation events needed to judge the twin")

    def twin_config(self) -> TwinConfig:
        convnet = replace(_T.convnet, epochs=self.epochs, time_budget_s=self.time_budget_s, seed=self.seed, members=self.members)
        return replace(_T, method=self.method.value, convnet=convnet, min_validation_events=self.min_validation_events)


def _rounded(summary: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 4) for k, v in summary.items()}


def window_files(inputs: Inputs, keys: list[str]):
    """Lazily, per window key: its glitch events and a reader of its strain and witnesses (both through ``inputs``, so
    checked against the instance's record)."""
    run = inputs.run
    for key in keys:
        window = window_for_key(key, run.cadence)
        events = inputs.window(EVENTS, window, read_events).events
        yield WindowFiles(key, events, functools.partial(window_witnesses, inputs, window))


def _methods_table(fit) -> pd.DataFrame:
    """One row per method fitted and split: its scores side by side (the kept method first)."""
    rows = [
        {"method": m, "split": split, **_rounded(scores.summary())}
        for m, pair in sorted(fit.candidates.items(), key=lambda item: item[0] != fit.method)
        for split, scores in zip(("validation", "test"), pair, strict=True)
    ]
    return pd.DataFrame(rows)


def _twin_figures(run: ObservingRun, fit, ref, tracker: Tracker, classes: dict[float, str]) -> dict:
    """The twin's held-out results for the UI, each also logged to its MLflow run: the per-method and per-class
    tables (``classes``: the dataset's event classes by GPS), its prediction against the truth (or the strain) for a
    representative glitch of each class, and the loudest of those before and after cleaning as Q-transforms on one
    colour scale."""
    test, prediction = fit.test_segments, fit.test_prediction
    fitted = prediction.amplitude[:, None] * prediction.whitened  # [event, time], whitened, as subtracted
    test_classes = classes_at(classes, test.gps)
    by_class = per_class(fit.test.table, test_classes)
    # no classes known: the median glitch of all predicted
    family = pd.Series(test_classes if len(by_class) else ["all held-out glitches"] * len(test))
    tables = {"methods": _methods_table(fit), "by_class": by_class}
    figures = {}
    if chosen := representative_events(fit.test.table, family):
        title = f"{run.name} time-domain twin ({fit.method}): held-out glitches"
        figures["held_out_waveforms"] = (waveforms_png(test, fitted, fit.test.table, chosen, title), title)
        i = max(chosen.values(), key=lambda row: fit.test.table.loc[row, "predicted_snr"])
        if test.gps[i] - 3 >= test.t0[i] and test.gps[i] + 0.5 <= test.t0[i] + test.strain.shape[-1] / test.sample_rate:
            title = f"held-out glitch at GPS {test.gps[i]:.3f}, whitened strain before and after cleaning"
            versions = {"original": test.strain[i], "cleaned": test.strain[i] - fitted[i]}
            figures["before_after"] = (strain_versions_png(versions, test.t0[i], test.sample_rate, test.gps[i], title), title)
    metadata = {}
    for name, table in tables.items():
        if len(table):
            tracker.log_bytes(ref.run_id, table.to_csv(index=False).encode(), f"tables/{name}.csv")
            metadata[name] = metadata_table(table)
    for name, (png, title) in figures.items():
        tracker.log_bytes(ref.run_id, png, f"figures/{name}.png")
        metadata[name] = dg.MetadataValue.md(md_image(png, title))
    return metadata


def _waveforms_metadata(
    run: ObservingRun, outcome: TwinOutcome, files: TwinFiles, witnesses: list[str], tracker: Tracker, dataset: Path
) -> dict:
    """``glitch_waveforms`` metadata: the files written, the registered twin, its test scores, and its tables and
    figures (:func:`_twin_figures`)."""
    fit, ref = outcome.fit, outcome.ref
    return {
        "path": dg.MetadataValue.path(str(files.waveforms)),
        "frames": dg.MetadataValue.path(str(files.frames)),
        "n_frames": len(outcome.frames),
        "model_uri": ref.uri,
        "mlflow_run_id": ref.run_id,
        **mlflow_links(tracker, ref.run_id, ref),
        # the champion file cleaned_strain applies, as it is now (a refused refit leaves the earlier one)
        **({TWIN_DIGEST: sha256sum(files.champion)} if files.champion.exists() else {}),
        "witnesses": dg.MetadataValue.json(witnesses),
        "test_events": len(fit.test_segments),
        "skipped_events": len(fit.skipped),
        "method": fit.method,
        **{f"test_{k}": v for k, v in _rounded(fit.test.summary()).items()},
        **_twin_figures(run, fit, ref, tracker, dataset_classes(dataset)),
    }


def fit_waveforms(
    context: dg.AssetExecutionContext, run: ObservingRun, config: WaveformsConfig, storage: GlitchflowStorage, mlflow: MlflowTracking
) -> dg.MaterializeResult:
    """Fit the twin on the dataset's train events, gate it on validation, predict the test events; write and track."""
    splits = dataset_events(storage.run_file(run.name, SPLIT))
    inputs = step_inputs(context, storage, run)
    selection = read_run_selection(inputs)
    witnesses = selection.selected
    rates = {c: r for c, r in selection.native_rates().items() if c in witnesses}
    simulated = StrainTruth.available(run.frames.path)
    keys = sorted(set().union(*(set(d) for d in splits.values())))
    tracker = mlflow.tracker()
    dataset_version = data_version_of(context, asset_key(run.name, SPLIT))
    files = TwinFiles(
        storage.run_file(run.name, WAVEFORMS),
        champion_twin_file(storage, run),
        storage.run_file(run.name, WAVEFORMS, CANDIDATE_SUFFIX),
    )
    try:
        outcome = fit_and_register_twin(
            run,
            window_files(inputs, keys),
            splits,
            witnesses,
            rates,
            config.twin_config(),
            StrainTruth(run.frames.path).glitch if simulated else None,
            tracker,
            lineage_tags(context, run, dataset_version),
            dataset_version,
            files,
            context.log.info,
        )
    except ValueError as exc:
        raise dg.Failure(description=f"{run.name}/{WAVEFORMS}: {exc}") from exc
    metadata = _waveforms_metadata(run, outcome, files, witnesses, tracker, storage.run_file(run.name, SPLIT))
    return dg.MaterializeResult(
        data_version=dg.DataVersion(content_version([outcome.ref.uri, dataset_version])),
        metadata=metadata,
        check_results=[dg.AssetCheckResult(check_name=WAVEFORM_GATE, passed=outcome.passed, description=outcome.verdict)],
    )


def glitch_waveforms(run: ObservingRun) -> dg.AssetsDefinition:
    """The run's ``glitch_waveforms`` asset (the time-domain twin), following the dataset and the selection, with the blocking gate that
    promotes a passing twin."""
    key = asset_key(run.name, WAVEFORMS)

    @run_asset(
        run,
        WAVEFORMS,
        per_window=False,
        deps=[SPLIT, SELECTION],
        kinds={"python", "hdf5", "mlflow"},
        gpu=True,
        automation=follows_inputs(),
        check_specs=[
            dg.AssetCheckSpec(
                WAVEFORM_GATE,
                asset=key,
                blocking=True,
                description="On validation events: finite predictions, enough events, and subtracting the predicted glitches removes "
                "at least 10 % of the median excess power (simulated runs: and removes glitch SNR). Passing promotes the "
                f"version to '{CHAMPION}'; cleaned_strain waits for it.",
            )
        ],
        description="Time-domain twin: a multi-channel Wiener filter from the selected witnesses (whitened, denoised in "
        "time-frequency) to the whitened strain and a 1-D convolutional U-Net correcting it, both fitted on the train events "
        "of dataset_split, the better on validation kept (both reported, tracked in MLflow); the held-out test glitches "
        "predicted from the witnesses alone, 8 s per event at the analysis rate, whitened and in strain units, with their "
        "amplitude fitted on the strain, GPS, channels, model URI and dataset version (HDF5), and as GWF frames of the "
        "channel PREFIX:GLITCHFLOW_SYNTH. Simulated runs: mismatch and SNR removed against the simulator's truth.",
    )
    def _waveforms(
        context: dg.AssetExecutionContext, config: WaveformsConfig, storage: GlitchflowStorage, mlflow: MlflowTracking
    ) -> dg.MaterializeResult:
        return fit_waveforms(context, run, config, storage, mlflow)

    return _waveforms


def clean_of_window(inputs: Inputs, window: Window) -> dg.MaterializeResult:
    """Subtract the twin's glitches from one window's strain, write the frame, search it again and report."""
    storage, run = inputs.storage, inputs.run
    model_path = champion_twin_file(storage, run)
    if not model_path.exists():
        raise dg.Failure(description=f"{run.name}/{WAVEFORMS}: no twin has passed {WAVEFORM_GATE} yet ({model_path})")
    model = inputs.run_level_file(WAVEFORMS, model_path, TWIN_DIGEST, load_twin)
    events = inputs.window(EVENTS, window, read_events).events
    result = clean_window(window_witnesses(inputs, window, list(model.channels)), events, model)
    path = storage.window_file(run.name, CLEANED, window)
    frame = write_cleaned_frame(path.parent / "frames", run.strain_channel, result)
    table = result.comparison.table
    write_cleaning_report(
        cleaning_report_path(storage, run, window),
        result.comparison,
        {"run": run.name, "window": window.key, "frame": frame.name, "model": str(model_path)},
    )
    kept = table[~table.removed]
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(frame)),
            "events_before": len(table),
            "predicted": result.predicted,
            "removed_fraction": round(result.comparison.removed_fraction(), 3) if len(table) else 0.0,
            "median_residual_snr": round(float(np.median(kept.snr_after)), 2) if len(kept) else 0.0,
            "new_events": len(result.comparison.new),
            "new_events_elsewhere": len(result.comparison.elsewhere),
            "events": metadata_table(table.round(3)),
            **_before_after(result, table, window),
        }
    )


def _before_after(result: CleanedWindow, table: pd.DataFrame, window: Window) -> dict:
    """The window's loudest glitch the twin predicted, before and after cleaning, as Q-transforms on one colour scale
    (none when it predicted none far enough inside the window to show 3 s before it)."""
    end = result.gps_start + result.duration
    inside = table[table.predicted.fillna(False).astype(bool) & (table.gps - 3 >= result.gps_start) & (table.gps + 0.5 <= end)]
    if not len(inside):
        return {}
    gps = float(inside.sort_values("snr_before").gps.iloc[-1])
    title = f"{window.key} UTC: loudest predicted glitch, GPS {gps:.3f}"
    original = result.cleaned + result.synthetic  # what was subtracted, added back
    png = strain_versions_png({"original": original, "cleaned": result.cleaned}, result.gps_start, result.sample_rate, gps, title)
    return {"before_after": dg.MetadataValue.md(md_image(png, title))}


def cleaned_strain(run: ObservingRun) -> dg.AssetsDefinition:
    """The run's ``cleaned_strain`` asset (per window): the strain minus the champion twin's glitches, following ``glitch_waveforms``."""

    @run_asset(
        run,
        CLEANED,
        per_window=True,
        deps=[RAW, EVENTS, WAVEFORMS],
        kinds={"python", "gwf"},
        automation=follows_inputs(),
        description="The window's strain minus the glitches the time-domain twin predicts from the witnesses (only at events "
        "where it predicts one; unchanged elsewhere) as GWF (PREFIX:GLITCHFLOW_CLEAN, with what was subtracted as "
        "PREFIX:GLITCHFLOW_SYNTH), and glitch_events run on it: events removed, residual SNR, new events.",
    )
    def _cleaned(context: dg.AssetExecutionContext, storage: GlitchflowStorage) -> Iterator[WindowEvent]:
        yield from for_each_window(context, run, storage, clean_of_window)

    return _cleaned
