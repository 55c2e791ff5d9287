"""``cleaning_evaluation``: what cleaning did over a whole observing run, from every cleaned window - the twin's witness
coverage per glitch class on the held-out events, and, where the run is simulated, whether the gravitational-wave
signals it holds survived cleaning (the GW170817 case as a figure)."""

import dagster as dg
import numpy as np
import pandas as pd

from glitchflow_assets.core.artifacts.cleaning_evaluation import CleaningEvaluation, write_cleaning_evaluation
from glitchflow_assets.core.artifacts.dataset_split import classes_at, dataset_classes, dataset_events
from glitchflow_assets.core.artifacts.raw_strain_segments import read_strain
from glitchflow_assets.core.io import decoder
from glitchflow_assets.core.runs.registry import ObservingRun
from glitchflow_assets.core.runs.windows import Window, window_for_key
from glitchflow_assets.core.signal.figures import strain_versions_png
from glitchflow_assets.core.signal.glitch_classes import shown
from glitchflow_assets.core.sim import load_signals, load_truth
from glitchflow_assets.core.sim.truth import StrainTruth, true_strain_glitches
from glitchflow_assets.core.twin.cleaning import EventComparison, read_cleaning_report
from glitchflow_assets.core.twin.coverage import coverage_lines, witness_coverage
from glitchflow_assets.core.twin.pipeline import CLEAN, SYNTH, load_twin, twin_channel, twin_frame_path
from glitchflow_assets.core.twin.safety import ON_GLITCH_CHANGE, StrainVersions, safety_summary, signal_recovery
from glitchflow_assets.lib.automation import after_window_stages
from glitchflow_assets.lib.factory import run_asset
from glitchflow_assets.lib.inputs import Inputs, champion_twin_file, cleaning_report_path, step_inputs, window_raw
from glitchflow_assets.lib.metadata import md_image, metadata_table
from glitchflow_assets.lib.names import CLEAN_EVAL, CLEANED, SPLIT, asset_key
from glitchflow_assets.lib.resources import GlitchflowStorage

SIGNAL_SAFETY = "signal_safety"
HELD_OUT = ("validation", "test")


def held_out_events(reports: dict[str, EventComparison], splits: dict[str, dict[str, np.ndarray]]) -> pd.DataFrame:
    """The cleaning outcome (gps, snr, predicted, removed) of every held-out event of the cleaned windows."""
    rows = []
    for key, report in reports.items():
        gps = np.concatenate([splits[s].get(key, np.zeros(0)) for s in HELD_OUT])
        table = report.table[np.isin(np.round(report.table.gps.to_numpy(), 6), np.round(gps, 6))]
        rows.append(table.rename(columns={"snr_before": "snr"})[["gps", "snr", "predicted", "removed"]])
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=["gps", "snr", "predicted", "removed"])


def classify(events: pd.DataFrame, run: ObservingRun, witnesses: list[str], simulated: bool, classes: dict[float, str]) -> pd.DataFrame:
    """``events`` with ``class``, each event's class in the dataset (``classes`` by GPS: the list's label, or the
    simulated glitch's morphology; "unlabelled" where a labelled run left one without; "all (no Gravity Spy labels)"
    where no event has one) and ``witnessed`` (SIM: a selected witness saw the glitch; elsewhere unknown). On a
    simulated run, events within 0.1 s of no true glitch are left out: they are no glitch of any class."""
    known = classes_at(classes, events.gps.to_numpy())
    if not simulated:
        named = shown(known) if (known != "").any() else "all (no Gravity Spy labels)"
        return events.assign(**{"class": named, "witnessed": pd.NA})
    truth = true_strain_glitches(run.frames.path, events.gps.to_numpy())
    seen = truth.witnesses.map(lambda names: bool(set(filter(None, names.split(","))) & set(witnesses)))
    classified = events.assign(**{"class": shown(known), "witnessed": seen.to_numpy()})
    return classified[(truth.morphology != "").to_numpy()]


def _cleaned_frame(inputs: Inputs, window: Window) -> tuple[np.ndarray, np.ndarray]:
    """(cleaned, synthetic) ``[time]`` of a window, read back from its cleaned_strain frame."""
    run = inputs.run
    directory = inputs.storage.window_file(run.name, CLEANED, window).parent / "frames"
    path = twin_frame_path(directory, run.strain_channel, CLEAN, window.gps_start, window.gps_end - window.gps_start)
    names = [twin_channel(run.strain_channel, k) for k in (CLEAN, SYNTH)]
    data = decoder.read_file(path, names)
    return data[names[0]].data.astype(np.float64), data[names[1]].data.astype(np.float64)


def signal_table(inputs: Inputs, keys: list[str]) -> tuple[pd.DataFrame, bytes | None]:
    """Each gravitational-wave signal the simulation put into a cleaned window, measured (``core.twin.safety``), and the
    figure of the signal on a glitch that the original strain misrepresents most (the GW170817 case), if any."""
    run = inputs.run
    signals, truth, catalogue = load_signals(run.frames.path), StrainTruth(run.frames.path), load_truth(run.frames.path)
    strain = truth.scenario.channel(truth.scenario.strain)
    glitches = catalogue[catalogue.role == "strain"]
    tables, candidates = [], []  # candidates: (how far the original is off the truth, row, versions)
    for key in keys:
        window = window_for_key(key, run.cadence)
        if not any(window.gps_start <= s.gps < window.gps_end for s in signals):
            continue
        path, summary = window_raw(inputs, window)
        original, t0 = read_strain(path, window.gps_start, window.gps_end)
        cleaned, synthetic = _cleaned_frame(inputs, window)
        rate, n = summary.sample_rate, original.size
        versions = StrainVersions(t0, rate, original.astype(np.float64), cleaned, original - truth.glitch(t0, n, int(rate)), synthetic)
        table = signal_recovery(signals, versions, strain.sample_rate, strain.psd, glitches)
        tables.append(table)
        candidates += [(abs(r.snr_original / r.snr_truth - 1), r, versions) for r in table[table.on_glitch].itertuples()]
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    if not candidates:
        return table, None
    _, row, versions = max(candidates, key=lambda c: c[0])
    labels = {f"{name}: SNR {getattr(row, f'snr_{name}'):.1f}": getattr(versions, name) for name in ("original", "cleaned", "truth")}
    title = f"{run.name}: {row.kind} (injected SNR {row.snr:.1f}) on a glitch, GPS {row.gps:.2f} - the GW170817 case"
    return table, strain_versions_png(labels, versions.t0, versions.sample_rate, float(row.gps), title)


def evaluate_cleaning(context: dg.AssetExecutionContext, run: ObservingRun, storage: GlitchflowStorage) -> dg.MaterializeResult:
    """Read every cleaned window's report, report the coverage per class and (simulated runs) the signals' safety."""
    keys = sorted(context.instance.get_materialized_partitions(asset_key(run.name, CLEANED)))
    if not keys:
        raise dg.Failure(description=f"no materialized {run.name}/{CLEANED} window to evaluate")
    inputs = step_inputs(context, storage, run)
    reports = {k: read_cleaning_report(cleaning_report_path(storage, run, window_for_key(k, run.cadence))) for k in keys}
    dataset = storage.run_file(run.name, SPLIT)
    splits = dataset_events(dataset)
    witnesses = list(load_twin(champion_twin_file(storage, run)).channels)
    simulated = StrainTruth.available(run.frames.path)
    events = classify(held_out_events(reports, splits), run, witnesses, simulated, dataset_classes(dataset))
    coverage = witness_coverage(events)
    signals, png = signal_table(inputs, keys) if simulated and load_signals(run.frames.path) else (pd.DataFrame(), None)
    safety = safety_summary(signals) if len(signals) else {}
    path = storage.run_file(run.name, CLEAN_EVAL, ".json")
    write_cleaning_evaluation(path, CleaningEvaluation(run.name, keys, coverage, signals, safety), png)
    shown = pd.DataFrame(
        {
            "class": coverage["class"],
            "glitches": coverage.glitches,
            **{
                f"{what} [95 %]": [
                    f"{100 * f:.0f} % [{100 * lo:.0f}, {100 * hi:.0f}]"
                    for f, (lo, hi) in zip(coverage[f"{what}_fraction"], coverage[f"{what}_95"], strict=True)
                ]
                for what in ("predicted", "removed")
            },
            "witnessed": coverage.witnessed_fraction.round(2),
            "status": coverage.status,
        }
    )
    metadata = {
        "path": dg.MetadataValue.path(str(path)),
        "windows": len(keys),
        "held_out_events": len(events),
        "coverage": metadata_table(shown),
        "coverage_summary": dg.MetadataValue.md("\n".join(f"- {line}" for line in coverage_lines(coverage))),
    }
    if len(signals):
        metadata |= {
            "signals": metadata_table(signals.round(3)),
            **{f"safety_{k}": round(v, 4) for k, v in safety.items() if np.isfinite(v)},
        }
    if png is not None:
        metadata["gw170817_case"] = dg.MetadataValue.md(md_image(png, "original, cleaned and true strain"))
    return dg.MaterializeResult(metadata=metadata, check_results=[_safety_check(safety)] if safety else [])


def _percent(share: float) -> str:
    """A share as a percentage; "-" for the share of no signals."""
    return f"{100 * share:.0f} %" if np.isfinite(share) else "- (none)"


def _safety_check(summary: dict[str, float]) -> dg.AssetCheckResult:
    """The goals of signal safety on the run's known signals (see :func:`~core.twin.safety.safety_summary`)."""
    off_ok = not summary["off_glitch"] or summary["off_glitch_within_1pc"] >= 0.99
    on_ok = not summary["on_glitch_needing_cleaning"] or summary["on_glitch_within_5pc"] == 1.0
    bursts_ok = summary["bursts_subtracted"] == 0
    return dg.AssetCheckResult(
        check_name=SIGNAL_SAFETY,
        passed=off_ok and on_ok and bursts_ok,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{int(summary['signals'])} known signals: away from glitches {int(summary['off_glitch'])}, SNR within 1 % "
        f"for {_percent(summary['off_glitch_within_1pc'])} (goal 99 %); on glitches where the original is off by > "
        f"{100 * ON_GLITCH_CHANGE:.0f} %: {int(summary['on_glitch_needing_cleaning'])}, cleaned within 5 % of the truth for "
        f"{_percent(summary['on_glitch_within_5pc'])}; bursts away from glitches whose SNR cleaning lowered by > 1 %: "
        f"{int(summary['bursts_subtracted'])}",
        metadata={k: float(v) for k, v in summary.items() if np.isfinite(v)},
    )


def cleaning_evaluation(run: ObservingRun) -> dg.AssetsDefinition:
    """The run's ``cleaning_evaluation`` asset, refreshed on the run's cron from every cleaned window."""
    key = asset_key(run.name, CLEAN_EVAL)

    @run_asset(
        run,
        CLEAN_EVAL,
        per_window=False,
        deps=[CLEANED],  # the split and the twin it reads come before cleaned_strain: lineage through it
        kinds={"python"},
        automation=after_window_stages(run),
        check_specs=[
            dg.AssetCheckSpec(
                SIGNAL_SAFETY,
                asset=key,
                description="Simulated runs: every known gravitational-wave signal away from glitches keeps its matched-filter SNR "
                "to 1 % (99 % of them), on a glitch the cleaned strain holds it within 5 % of the glitch-free truth, and no burst "
                "away from glitches is touched.",
            )
        ],
        description="What cleaning did over the run: of the held-out strain glitches above SNR 8, the share the twin predicts "
        "and the share cleaning removes below the search threshold, per class (simulated morphology; Gravity Spy label "
        "where labels exist), a class no selected witness sees reported as not witnessed; simulated runs: each known "
        "gravitational-wave signal's SNR in the original, cleaned and glitch-free strain, and the GW170817 case as "
        "Q-transforms on one colour scale.",
    )
    def _evaluation(context: dg.AssetExecutionContext, storage: GlitchflowStorage) -> dg.MaterializeResult:
        return evaluate_cleaning(context, run, storage)

    return _evaluation
