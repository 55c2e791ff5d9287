"""``glitchflow`` command: simulate frames, run the demo pipeline, materialize an own run by GPS or UTC.

glitchflow simulate --run SIM --minutes 30                    write simulated GWF frames + ground truth
glitchflow demo                                               simulate 2 h of SIM and run the whole pipeline on it
glitchflow partitions RUN [--gps T]                           a run's windows with their GPS spans (or the one holding T)
glitchflow materialize RUN --gps-start S --gps-end E [--through STAGE] [--config FILE] [--submit]
                                                              every window of the span (and, with --through, the stages
                                                              after them) on the configured Dagster instance: here, or
                                                              with --submit as a backfill its daemon launches
glitchflow status BACKFILL [--wait] [--retry-failed]          a submitted backfill's progress, failures, re-submission
"""

import argparse
import dataclasses
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from glitchflow_assets.core import settings
from glitchflow_assets.core.runs.registry import ObservingRun, load_registry
from glitchflow_assets.core.runs.windows import utc_to_gps, window_for_key, window_holding, windows_overlapping
from glitchflow_assets.core.settings import HOME_ENV, glitchflow_home, storage_root

if TYPE_CHECKING:  # dagster loads only for the commands that run it
    from glitchflow_assets.runner import SpanResult

LOCAL_INSTANCE_YAML = Path(__file__).resolve().parent.parent / "deploy" / "dagster.local.yaml"


DEMO_EPOCHS = 16  # on the demo's 2 h of SIM the validation loss settles by ~12 (bench/RESULTS.md)
DEMO_GLITCH_RATE = 4.0


def _say(message: str) -> None:
    print(message, flush=True)


def _simulate(
    run_name: str,
    minutes: float,
    seed: int,
    frame_length: int,
    out: str | None,
    start: int | None,
    glitch_rate: float | None,
    aux_extra: int = 0,
    locks: bool = False,
) -> list[str]:
    from glitchflow_assets.core.sim import VIRGO_SCENARIO, simulate, with_extra_channels, with_locks

    scenario = VIRGO_SCENARIO if glitch_rate is None else dataclasses.replace(VIRGO_SCENARIO, glitch_rate_per_min=glitch_rate)
    scenario = with_extra_channels(scenario, aux_extra, seed=seed)
    run = _run(run_name)
    if locks:  # the schedule starts at the run's start, so every part simulated later continues the same history
        scenario = with_locks(scenario, run.gps_start)

    gps_start = run.gps_start if start is None else start
    duration = int(round(minutes * 60))
    target = Path(out) if out else run.frames.path
    t0 = time.monotonic()

    def progress(i: int, n: int, path: Path) -> None:
        _say(f"  [{i}/{n}] wrote {path.name} ({time.monotonic() - t0:.0f} s)")

    _say(
        f"Simulating {run_name}: GPS {gps_start}-{gps_start + duration} into {target} "
        f"(seed {seed}, {scenario.glitch_rate_per_min:g} glitches/min, {len(scenario.channels) - 1} auxiliary channels"
        + (f", locks and unlocks in {scenario.locks.channel}" if scenario.locks else "")
        + ")"
    )
    workers = min(2, os.cpu_count() or 1)
    result = simulate(
        target, gps_start, duration, frame_length=frame_length, seed=seed, scenario=scenario, progress=progress, workers=workers
    )
    strain = result.glitches[result.glitches.role == "strain"] if len(result.glitches) else result.glitches
    _say(f"  {len(result.frames)} frames, {len(strain)} glitches in strain; ground truth: {result.truth}")
    return [w.key for w in windows_overlapping(gps_start, gps_start + duration, run.cadence)]


class Progress:
    """One line per finished step: window stages counted per window, run-level stages with what they produced."""

    def __init__(self, run: str, n_windows: int):
        self.run, self.n_windows, self.t0, self.done = run, n_windows, time.monotonic(), {}

    def __call__(self, step) -> None:
        from glitchflow_assets.lib.names import EVALUATION, SELECTION, SPLIT, SYNTHETIC, TRAINED

        names = ", ".join(k.path[-1] for k in step.assets)
        if step.blocked:
            _say(f"  {step.job} ({names}){_windows_text(step.partitions)}: not run: needs {_names(step.blocked_by)}, which failed")
            return
        if step.skipped:
            what = f"{len(step.partitions)} window(s) {step.partitions[0]} .." if step.partitions else "run-level stage"
            _say(f"  {step.job} ({names}): {what} already materialized and intact on disk, skipped")
            if step.partitions:
                self.done[tuple(step.assets)] = self.done.get(tuple(step.assets), 0) + len(step.partitions)
            return
        status = "INTERRUPTED" if step.interrupted else "ok" if step.success else "FAILED"
        status = f"{status} ({time.monotonic() - self.t0:.0f} s)"
        if step.partitions:
            n = self.done[tuple(step.assets)] = self.done.get(tuple(step.assets), 0) + len(step.partitions)
            first, last = step.partitions[0], step.partitions[-1]
            span = f"window {first}" if first == last else f"windows {first} .. {last}"
            _say(f"  [{n}/{self.n_windows}] {step.job} {span} ({names}): {status}")
        else:
            _say(f"  {step.job} ({names}): {status}")
        for event in step.result.all_events if not step.success else ():
            if event.is_failure:
                _say(f"    {event.message}")
        if meta := step.metadata(SELECTION):
            _say(f"    witnesses {', '.join(meta['selected']) or 'none'}")
        if meta := step.metadata(SPLIT):
            _say(f"    tiles per split and class {meta['class_balance']}")
            if "events_per_class" in meta:
                counts = ", ".join(f"{r.data['class']} {r.data['events']}" for r in meta["events_per_class"].records)
                _say(f"    events per glitch class: {counts}")
        if meta := step.metadata(TRAINED):
            seconds = meta["train_seconds"]
            _say(f"    {meta['model_uri']}: best epoch {meta['best_epoch']} of {meta['epochs_run']}, {seconds:.0f} s of training")
        for check in step.result.get_asset_check_evaluations():
            if not step.partitions or not check.passed:  # window checks only when they fail
                _say(f"    check {check.check_name}: {'passed' if check.passed else 'FAILED'} - {check.description}")
        if meta := step.metadata(EVALUATION):
            _say(
                f"    held-out test split: {meta['test_glitch_events']} glitch events of {meta['test_events']} "
                "(model, then baselines; 95 % intervals over events):"
            )
            report = {r.data["generator"]: r.data for r in meta["report"].records}
            for k in ("balanced_accuracy", "roc_auc", "loudness_ratio", "l1_glitch"):
                baselines = ", ".join(f"{g} {report[g][k]:.3f}" for g in ("linear_witness", "mean_tile", "zero"))
                _say(f"      {k:18s} {meta[f'{k} [95% CI]']}   ({baselines})")
            for r in meta["per_class"].records if "per_class" in meta else ():
                _say(f"      {r.data['class']:20s} {r.data['events']} events, glitch-tile recall {r.data['recall']}")
            if "warning" in meta:
                _say(f"      WARNING: {meta['warning']}")
        if meta := step.metadata(SYNTHETIC):
            _say(f"    synthetic glitches: {meta['items']} items")


def _run(name: str):
    runs = load_registry()
    if name not in runs:
        raise ValueError(f"unknown observing run {name!r}; known: {', '.join(runs)}")
    return runs[name]


def _span(run, args: argparse.Namespace) -> tuple[float, float]:
    """The GPS span asked for (by GPS or UTC), clipped to the run, or a ValueError saying why not."""
    if args.utc_start or args.utc_end:
        if not (args.utc_start and args.utc_end):
            raise ValueError("give both --utc-start and --utc-end")
        start, end = (utc_to_gps(datetime.fromisoformat(t).replace(tzinfo=UTC)) for t in (args.utc_start, args.utc_end))
    else:
        start, end = args.gps_start, args.gps_end
    if start is None or end is None or not start < end:
        raise ValueError("give --gps-start < --gps-end (or --utc-start < --utc-end)")
    if end <= run.gps_start or start >= run.gps_end:
        raise ValueError(f"GPS {start:.0f}-{end:.0f} is outside run {run.name} (GPS {run.gps_start}-{run.gps_end})")
    return max(start, run.gps_start), min(end, run.gps_end)


def _materialize(args: argparse.Namespace) -> int:
    run = _run(args.run)
    start, end = _span(run, args)
    windows = [w.key for w in windows_overlapping(start, end, run.cadence)]

    import dagster as dg

    from glitchflow_assets.defs.families import build_definitions
    from glitchflow_assets.lib.inputs import materialized_and_intact
    from glitchflow_assets.lib.names import CONFIG_TAG, TRIGGER_TAG
    from glitchflow_assets.runner import stage_groups
    from glitchflow_assets.stage_config import read_stage_config

    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    defs = build_definitions()
    groups = stage_groups(defs, run.name, args.through)  # an unknown stage fails here, before anything runs
    through = args.through or groups[0][1][-1].path[-1]  # default: the window stages before the first run-level one
    config = read_stage_config(Path(args.config), defs, run.name) if args.config else {}  # refused here, before anything runs
    tags = {TRIGGER_TAG: "materialize --submit" if args.submit else "materialize", **({CONFIG_TAG: args.config} if args.config else {})}
    dagster_home = _instance_home()
    _say(f"{run.name}: {len(windows)} windows {windows[0]} .. {windows[-1]} (GPS {start:.0f}-{end:.0f}) through {through}")
    _say(f"  Dagster instance {dagster_home}")
    if config:
        _say(f"  settings from {args.config}: " + "; ".join(f"{a} {c}" for a, c in config.items()))
    with dg.DagsterInstance.get() as instance:
        done = None if args.force else materialized_and_intact(instance, run, lambda problem: _say(f"  {problem}: materializing it again"))
        if args.submit:
            return _submit(defs, instance, run, windows, through, config, tags, done)
        return _materialize_here(defs, instance, run, windows, through, config, tags, done)


def _materialize_here(defs, instance, run: ObservingRun, windows: list[str], through: str, config: dict, tags: dict, done) -> int:
    """Every run of the span in this process (a laptop's way); the exit status."""
    from glitchflow_assets.runner import fail_orphaned_runs, materialize_span

    if orphans := fail_orphaned_runs(instance):
        _say(f"  marked failed: {len(orphans)} run(s) left STARTED by a glitchflow process that was killed ({', '.join(orphans)})")
    t0 = time.monotonic()
    try:
        outcome = materialize_span(
            defs, run.name, windows, instance, config, through=through, on_step=Progress(run.name, len(windows)), tags=tags, done=done
        )
    except KeyboardInterrupt:  # between two runs: nothing half-done
        _say(f"{run.name}: interrupted; run the same command again to continue where it stopped")
        return 130
    return _summarize(run, outcome, t0)


def _submit(defs, instance, run: ObservingRun, windows: list[str], through: str, config: dict, tags: dict, done) -> int:
    """The span as a backfill on the instance, for its daemon to launch through the instance's run launcher."""
    from glitchflow_assets.backfill import backfill_url, span_targets, submit_span
    from glitchflow_assets.stage_config import as_run_config

    targets = span_targets(defs, run.name, windows, through, done)
    if not targets:
        _say(f"{run.name}: every window and stage asked for is already materialized and intact: nothing to submit (--force to redo)")
        return 0
    title = f"{run.name} {windows[0]} .. {windows[-1]} through {through}"
    backfill_id = submit_span(defs, instance, targets, as_run_config(config, run.name), tags, title)
    for key, keys in targets.items():
        _say(f"  {key.path[-1]}: " + ("run-level" if keys is None else f"{len(keys)} window(s)"))
    _say(f"{run.name}: submitted backfill {backfill_id} ({run.backfill_batch} windows at most per run)")
    _say(f"  follow it: glitchflow status {backfill_id} --wait")
    _say(f"  in the UI: {backfill_url(backfill_id)}")
    _warn_without_daemon(instance)
    return 0


def _warn_without_daemon(instance) -> None:
    """Say so when no daemon will launch a submitted backfill's runs."""
    from glitchflow_assets.backfill import daemon_running

    if not daemon_running(instance):
        daemon = f"DAGSTER_HOME={instance.root_directory} dagster-daemon run -w workspace.yaml"
        _say(f"  no dagster-daemon has been heard from on this instance: its runs wait until one runs ({daemon})")


def _summarize(run: ObservingRun, outcome: "SpanResult", t0: float) -> int:
    """Say how many runs of the span succeeded, what failed and why, and what did not run because of it; the exit status
    (1: something failed, 130: interrupted)."""
    ran = [s for s in outcome.steps if s.result is not None]
    failed = [s for s in ran if not s.success]
    _say(
        f"{run.name}: {len(ran)} run(s) ({run.backfill_batch} windows at most each): {len(ran) - len(failed)} succeeded, "
        f"{len(failed)} failed in {time.monotonic() - t0:.0f} s"
    )
    if outcome.interrupted:
        _say(f"{run.name}: interrupted; its run is marked failed and no partial file was kept: run the same command again to continue")
        return 130
    for step in failed:
        bad, behind = step.not_materialized()
        for key in bad:
            _say(f"  failed: {key.path[-1]}{_windows_text(step.partitions)} (run {step.result.run_id[:8]}): {step.reason(key)}")
        if not bad:
            _say(f"  failed: {step.job}{_windows_text(step.partitions)} (run {step.result.run_id[:8]}): {step.reason(step.assets[0])}")
        if behind:
            _say(f"    not run in that run because of it: {_names(behind)}")
    for step in outcome.steps:
        if step.blocked:
            _say(f"  not run: {_names(step.assets)}{_windows_text(step.partitions)}: needs {_names(step.blocked_by)}, which failed")
    if failed:
        _say(f"{run.name}: fix the cause and run the same command again: what succeeded is kept and skipped")
    return 1 if failed else 0


def _names(keys: list) -> str:
    return ", ".join(k.path[-1] for k in keys)


def _windows_text(windows: list[str]) -> str:
    """' in window A', ' in N windows A .. B', or '' for run-level stages."""
    if not windows:
        return ""
    return f" in window {windows[0]}" if len(windows) == 1 else f" in {len(windows)} windows {windows[0]} .. {windows[-1]}"


def _status(args: argparse.Namespace) -> int:
    """``glitchflow status BACKFILL [--wait] [--retry-failed]``: where a submitted backfill stands."""
    import dagster as dg

    from glitchflow_assets.backfill import backfill_report, backfill_url, retry_failed
    from glitchflow_assets.defs.families import build_definitions

    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    defs = build_definitions()
    _instance_home()
    with dg.DagsterInstance.get() as instance:
        if args.retry_failed:
            retry = retry_failed(defs, instance, args.backfill)
            if retry is None:
                _say(f"backfill {args.backfill}: everything it targeted is materialized: nothing to retry")
                return 0
            _say(f"backfill {args.backfill}: what it left unmaterialized re-submitted as backfill {retry}")
            _say(f"  in the UI: {backfill_url(retry)}")
            _warn_without_daemon(instance)
            args.backfill = retry
        report, shown = backfill_report(defs, instance, args.backfill), None
        try:
            while args.wait and not report.finished:
                line = _progress_line(report)
                if line != shown:
                    _say(f"  {datetime.now(UTC):%H:%M:%S} {line}")
                    shown = line
                time.sleep(args.interval)
                report = backfill_report(defs, instance, args.backfill)
        except KeyboardInterrupt:
            _say(f"stopped watching; backfill {args.backfill} goes on in the daemon (the UI can cancel it)")
            return 130
    _report_backfill(report)
    if not report.finished:
        return 0
    return 0 if report.succeeded else 1


def _progress_line(report) -> str:
    """One line: the backfill's runs by status and each asset's materialized/targeted count."""
    runs = ", ".join(f"{n} {status.lower()}" for status, n in sorted(report.runs.items())) or "no run yet"
    assets = ", ".join(f"{a.name} {a.materialized}/{a.targeted}" + (f" ({a.failed} failed)" if a.failed else "") for a in report.assets)
    return f"{report.status.lower()}: runs {runs}; {assets}"


def _report_backfill(report) -> None:
    """The backfill's state per asset, what failed and why, what did not run because of it, and what to do."""
    from glitchflow_assets.backfill import backfill_url

    _say(f"backfill {report.backfill_id} ({report.title}): {report.status} - {report.verdict}")
    _say(f"  runs: {', '.join(f'{n} {s.lower()}' for s, n in sorted(report.runs.items())) or 'none yet'}")
    _say(f"  {'asset':<22}{'windows':>9}{'done':>9}{'failed':>9}{'to do':>9}")
    for a in report.assets:
        _say(f"  {a.name:<22}{a.targeted if a.partitioned else 'run':>9}{a.materialized:>9}{a.failed:>9}{a.pending:>9}")
    for failed in report.failed_runs:
        for asset, why in failed.reasons.items():
            _say(f"  failed: {asset}{_windows_text(failed.windows)} (run {failed.run_id[:8]}): {why}")
    for asset, windows in report.blocked.items():
        where = _windows_text(sorted(w for w in windows if w is not None))
        _say(f"  not run: {asset}{where}: needs an upstream asset that failed")
    if report.finished and not report.succeeded:
        _say(f"  re-submit what is left once the cause is fixed: glitchflow status {report.backfill_id} --retry-failed")
    _say(f"  in the UI: {backfill_url(report.backfill_id)}")


def _partitions(args: argparse.Namespace) -> int:
    run = _run(args.run)
    if args.gps is not None:
        if not run.gps_start <= args.gps < run.gps_end:
            nearest = window_holding(min(max(args.gps, run.gps_start), run.gps_end - 1), run.cadence)
            _say(f"GPS {args.gps} is outside run {run.name} (GPS {run.gps_start}-{run.gps_end}); nearest window {nearest.key}")
            return 2
        shown = [window_holding(args.gps, run.cadence)]
    else:
        shown = windows_overlapping(run.gps_start, run.gps_end, run.cadence)
    _say(f"{run.name}: {run.cadence.text} windows, GPS {run.gps_start}-{run.gps_end}")
    for w in shown:
        _say(f"  {w.key}  GPS {w.gps_start}-{w.gps_end}  ({w.duration} s)")
    return 0


def _instance_home() -> Path:
    dagster_home = settings.dagster_home()
    dagster_home.mkdir(parents=True, exist_ok=True)
    if not (dagster_home / "dagster.yaml").exists() and LOCAL_INSTANCE_YAML.exists():
        shutil.copy(LOCAL_INSTANCE_YAML, dagster_home / "dagster.yaml")
    os.environ[settings.DAGSTER_HOME_ENV] = str(dagster_home)
    return dagster_home


def _twin_headline(keys: list[str]) -> None:
    """The time-domain twin's numbers on the held-out SIM glitches, against the simulator's truth."""
    from glitchflow_assets.core.artifacts.glitch_waveforms import read_waveform_set
    from glitchflow_assets.core.twin.cleaning import cleaning_headline, read_cleaning_report
    from glitchflow_assets.lib.inputs import cleaning_report_path
    from glitchflow_assets.lib.names import CLEAN_EVAL, WAVEFORMS
    from glitchflow_assets.lib.resources import GlitchflowStorage

    run, storage = load_registry()["SIM"], GlitchflowStorage()
    waves = read_waveform_set(storage.run_file("SIM", WAVEFORMS))
    loud = waves.scores[waves.scores.true_snr >= 8]
    reports = [read_cleaning_report(cleaning_report_path(storage, run, window_for_key(k, run.cadence))) for k in keys]
    cleaned = cleaning_headline(waves.gps, waves.scores, reports)
    method, uri, methods = waves.attrs["method"], waves.attrs["model_uri"], json.loads(waves.attrs["methods"])
    columns = [method, *(m for m in methods if m != method)]  # the kept method first, then its baseline(s)

    def row(label: str, cells: list[str], note: str = "") -> None:
        _say(f"  {label:<46}" + "".join(f"{c:>18}" for c in cells) + (f"   {note}" if note else ""))

    def test_values(key: str, percent: bool) -> list[str]:
        values = [methods[m]["test"][key] for m in columns]
        return [f"{100 * v:.0f} %" if percent else f"{v:.3f}" for v in values]

    _say(f"Time-domain twin ({method}, kept on validation; {uri}), {len(loud)} held-out glitches of true SNR >= 8:")
    row("", [m if m == method else f"{m} baseline" for m in columns])
    row("median mismatch vs the simulator's truth", test_values("median_mismatch", False), "(goal <= 0.05)")
    row("median SNR removed", test_values("median_snr_removed_fraction", True))
    fraction, events, new = cleaned["held_out_removed_fraction"], cleaned["held_out_events"], cleaned["new_events"]
    row(f"no longer found by glitch_events (of {events:.0f})", [f"{100 * fraction:.0f} %"], "(goal >= 90 %)")
    row("new events where cleaning changed the strain", [f"{new:.0f}"], f"(goal 0; in {len(keys)} windows)")
    row(
        "new threshold crossings in untouched data",
        [f"{cleaned['new_events_elsewhere']:.0f}"],
        "(the PSD re-estimated without the glitches)",
    )
    _cleaning_evaluation_headline(storage.run_file("SIM", CLEAN_EVAL, ".json"))


def _cleaning_evaluation_headline(path: Path) -> None:
    """Witness coverage per class and the known signals' SNRs through cleaning (the GW170817 case)."""
    from glitchflow_assets.core.artifacts.cleaning_evaluation import read_cleaning_evaluation
    from glitchflow_assets.core.twin.coverage import coverage_lines

    evaluation = read_cleaning_evaluation(path)
    _say("Witness coverage of held-out strain glitches above SNR 8 (predicted by the twin; removed below the search threshold):")
    for line in coverage_lines(evaluation.coverage):
        _say(f"  {line}")
    for s in evaluation.signals.to_dict("records"):
        where = "on a glitch" if s["on_glitch"] else "away from glitches"
        _say(
            f"Signal {s['kind']} at GPS {s['gps']:.2f} ({where}), matched-filter SNR: original {s['snr_original']:.2f}, "
            f"cleaned {s['snr_cleaned']:.2f}, glitch-free truth {s['snr_truth']:.2f}"
        )
    if path.with_suffix(".png").exists():
        _say(f"  figure (original, cleaned, truth): {path.with_suffix('.png')}")


def _demo(args: argparse.Namespace) -> int:
    home = glitchflow_home()
    os.environ.setdefault(HOME_ENV, str(home))
    dagster_home = _instance_home()
    keys = _simulate("SIM", args.minutes, args.seed, args.frame_length, None, None, args.glitch_rate)

    import dagster as dg

    from glitchflow_assets.defs.families import build_definitions
    from glitchflow_assets.lib.lineage import MODEL_TRAINING_VIEW
    from glitchflow_assets.lib.names import CLEANED, SYNTHETIC, TRAINED, TRIGGER_TAG, WAVEFORMS
    from glitchflow_assets.lib.resources import MlflowTracking
    from glitchflow_assets.runner import materialize_span

    warnings.filterwarnings("ignore", category=dg.BetaWarning)  # backfill_policy: the current API, still "beta"
    training = {"epochs": args.epochs, "time_budget_s": args.train_budget_s, "seed": args.seed}
    with dg.DagsterInstance.get() as instance:
        outcome = materialize_span(
            build_definitions(), "SIM", keys, instance, {TRAINED: training}, on_step=Progress("SIM", len(keys)), tags={TRIGGER_TAG: "demo"}
        )
    if not outcome.success:
        return 1
    tracking = MlflowTracking()
    _say("")
    _twin_headline(keys)
    _say("")
    _say("Done. Results:")
    _say(f"  frames + ground truth : {load_registry()['SIM'].frames.path}")
    _say(f"  asset files (HDF5)    : {storage_root() / 'SIM'}")
    _say(f"  synthetic glitches    : {storage_root() / 'SIM' / SYNTHETIC}")
    _say(f"  glitch waveforms      : {storage_root() / 'SIM' / WAVEFORMS} (HDF5, GWF frames under frames/)")
    _say(f"  cleaned strain (GWF)  : {storage_root() / 'SIM' / CLEANED / 'frames'}")
    _say(f"  MLflow store          : {tracking.tracker().uri}")
    _say(f"  Dagster instance      : {dagster_home}")
    dagster_ui, mlflow_ui = urlsplit(settings.dagster_ui_url()), urlsplit(settings.mlflow_ui_url())  # where the links point
    _say("Open the Dagster UI (lineage, partitions, checks) with:")
    _say(
        f"  DAGSTER_HOME={dagster_home} GLITCHFLOW_HOME={home} .venv/bin/dagster dev -w workspace.yaml "
        f"-h {dagster_ui.hostname} -p {dagster_ui.port or 80}"
    )
    _say(f"  then browse {dagster_ui.geturl()}")
    _say("Open the MLflow UI (runs, metrics, registered model glitchflow-SIM) with:")
    _say(f"  .venv/bin/mlflow ui --backend-store-uri {tracking.tracker().uri} -h {mlflow_ui.hostname} -p {mlflow_ui.port or 80}")
    _say(f"  then browse {mlflow_ui.geturl().rstrip('/')}/#/experiments{MODEL_TRAINING_VIEW}")
    return 0


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} < 0")
    return value


def _simulate_arguments(command: argparse.ArgumentParser) -> None:
    """The arguments of ``glitchflow simulate``."""
    command.add_argument("--run", default="SIM", help="observing run whose frame directory receives the frames")
    command.add_argument("--minutes", type=float, default=30.0)
    command.add_argument("--start", type=int, default=None, help="GPS start (default: the run's start)")
    command.add_argument("--out", default=None, help="directory (default: the run's frame directory)")
    command.add_argument("--frame-length", type=int, default=60, help="seconds per frame file")
    command.add_argument("--seed", type=int, default=0)
    command.add_argument("--glitch-rate", type=float, default=None, help="strain glitches per minute (default: the scenario's, 1)")
    command.add_argument(
        "--aux-extra",
        type=_non_negative,
        default=0,
        help="N more auxiliary channels that witness nothing (V1:SIMX_*, 256-16384 Hz: noise, lines, glitches of their own)",
    )
    command.add_argument(
        "--locks",
        action="store_true",
        help="locks and unlocks (minutes to hours, glitchier after each acquisition, strain 30x louder unlocked) and their state "
        "vector V1:DQ_ANALYSIS_STATE_VECTOR (bits LOCKED, SCIENCE, HREC_OK): for a run with `segments:`",
    )


def _demo_arguments(command: argparse.ArgumentParser) -> None:
    """The arguments of ``glitchflow demo``."""
    command.add_argument("--minutes", type=float, default=120.0)
    command.add_argument(
        "--glitch-rate",
        type=float,
        default=DEMO_GLITCH_RATE,
        help="strain glitches per minute (a bad-weather stretch: enough events to judge by)",
    )
    command.add_argument("--frame-length", type=int, default=60)
    command.add_argument("--seed", type=int, default=0)
    # A fixed number of epochs, not a wall-clock budget: the seeded CPU training then gives the same model, and the same
    # quality-gate verdict, however busy the machine (with a 200 s budget the verdict followed the machine's load).
    command.add_argument("--epochs", type=int, default=DEMO_EPOCHS, help="training epochs (early stopping may end sooner)")
    command.add_argument(
        "--train-budget-s",
        type=float,
        default=0.0,
        help="stop training after this many seconds (0: none; a limit ties the model to the load)",
    )


def _materialize_arguments(command: argparse.ArgumentParser) -> None:
    """The arguments of ``glitchflow materialize``."""
    command.add_argument("run")
    command.add_argument("--gps-start", type=float)
    command.add_argument("--gps-end", type=float)
    command.add_argument("--utc-start", help="instead of GPS: ISO time in UTC, e.g. 2024-05-17T17:00")
    command.add_argument("--utc-end")
    command.add_argument("--through", default=None, help="last stage to materialize (default: the window stages), e.g. trained_model")
    command.add_argument(
        "--force", action="store_true", help="re-materialize everything (default: skip what is already materialized and intact on disk)"
    )
    command.add_argument(
        "--submit",
        action="store_true",
        help="create a backfill on the configured Dagster instance for its daemon to launch (run launcher, Kubernetes) instead of "
        "running here; prints the backfill id (follow it with `glitchflow status ID --wait`)",
    )
    command.add_argument(
        "--config", metavar="FILE", help="per-asset settings, as the Launchpad shows them (YAML: `trained_model: {epochs: 40}`)"
    )


def _status_arguments(command: argparse.ArgumentParser) -> None:
    """The arguments of ``glitchflow status``."""
    command.add_argument("backfill", help="backfill id, as `glitchflow materialize --submit` printed it")
    command.add_argument("--wait", action="store_true", help="follow it until it finishes (exit status 1 if anything failed)")
    command.add_argument("--retry-failed", action="store_true", help="re-submit what it left unmaterialized (failed or blocked windows)")
    command.add_argument("--interval", type=float, default=10.0, help="seconds between two looks with --wait")


def _inject_arguments(command: argparse.ArgumentParser) -> None:
    """The arguments of ``glitchflow inject``."""
    command.add_argument(
        "--glitches",
        required=True,
        help="glitch_waveforms HDF5, e.g. $GLITCHFLOW_HOME/storage/SIM/glitch_waveforms/SIM-glitch_waveforms.h5",
    )
    command.add_argument("--into", required=True, help="directory of OBS-TAG-GPS-DUR.gwf frames to inject into (searched recursively)")
    command.add_argument("--out", required=True, help="directory for the injected frames (same names) and injections.csv")
    command.add_argument("--shift", type=float, default=0.0, help="seconds added to every glitch's GPS time (default 0: original times)")
    command.add_argument("--channel", default=None, help="channel to add the glitches to (default: the set's strain channel)")


def _parser() -> argparse.ArgumentParser:
    """The ``glitchflow`` command line: its subcommands and their arguments."""
    parser = argparse.ArgumentParser(prog="glitchflow", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    _simulate_arguments(sub.add_parser("simulate", help="write simulated GWF frames and their ground truth"))
    _demo_arguments(sub.add_parser("demo", help="simulate the SIM run and materialize it with the embedded defaults"))
    parts = sub.add_parser("partitions", help="a run's windows (partition keys) with their GPS spans")
    parts.add_argument("run")
    parts.add_argument("--gps", type=float, default=None, help="only the window holding this GPS time")
    _materialize_arguments(sub.add_parser("materialize", help="materialize every window of a GPS or UTC span of a run"))
    _status_arguments(sub.add_parser("status", help="where a submitted backfill stands; --wait follows it, --retry-failed re-submits"))
    _inject_arguments(sub.add_parser("inject", help="add a synthetic glitch set (a glitch_waveforms file) to other GWF frames"))
    return parser


def main(argv: list[str] | None = None) -> int:
    """The ``glitchflow`` command: parse ``argv`` (default: the process's arguments) and run its subcommand; returns the exit status, 2 with
    the error printed for an invalid value, an unknown name or a missing file."""
    args = _parser().parse_args(argv)
    # SIGTERM (a batch system, kill) stops a run as Ctrl-C does: Dagster marks it failed and the writers discard their
    # temporaries, where Python's default would end the process at once and leave its run STARTED forever.
    if threading.current_thread() is threading.main_thread():  # only the main thread may set handlers (main() in a thread)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    commands = {
        "simulate": _simulate_command,
        "partitions": _partitions,
        "materialize": _materialize,
        "status": _status,
        "demo": _demo,
        "inject": _inject,
    }
    try:
        if args.command in ("materialize", "demo"):  # the commands that run Dagster steps
            from glitchflow_assets.lib.interrupts import swallowed_interrupts_redelivered

            with swallowed_interrupts_redelivered():
                return commands[args.command](args)
        return commands[args.command](args)
    except (ValueError, KeyError, FileNotFoundError) as exc:
        _say(f"glitchflow: {exc}")
        return 2


def _inject(args: argparse.Namespace) -> int:
    from glitchflow_assets.core.twin.injection import CATALOGUE, inject

    catalogue = inject(args.glitches, args.into, args.out, shift_s=args.shift, channel=args.channel)
    _say(f"{len(catalogue)} glitches injected into {catalogue.file.nunique()} of the frames under {args.into}")
    _say(f"  frames    : {args.out}")
    _say(f"  catalogue : {Path(args.out) / CATALOGUE}")
    return 0


def _simulate_command(args: argparse.Namespace) -> int:
    _simulate(args.run, args.minutes, args.seed, args.frame_length, args.out, args.start, args.glitch_rate, args.aux_extra, args.locks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
