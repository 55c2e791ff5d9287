"""Science benchmark: does the spectrogram twin generate the glitches the strain has, on a long seeded SIM run?

Simulates ``--hours`` of SIM (``--glitch-rate`` strain glitches per minute, seed ``--seed``), materializes the whole
run through Dagster in the asset graph's order (ingest, events, ANNALISA, selection, spectrograms, dataset, training,
held-out evaluation) on a throw-away instance and MLflow store under ``--out``, and prints the held-out test report:
model vs the zero, mean-tile and linear-witness baselines, with 95 % bootstrap intervals over events, against the
targets (balanced accuracy >= 0.95, median loudness ratio 0.8-1.25, glitch-tile L1 below the linear witness
baseline). ``--original`` also trains the original GlitchFlow configuration (linear units, 0.8 L1 + 0.2 SSIM) on the
same dataset for comparison. Results go to ``--out/science.json``.

    .venv/bin/python bench/bench_science.py --hours 12            # ~75 min on 2 CPU cores
"""

import argparse
import dataclasses
import json
import platform
import time
import warnings
from pathlib import Path

import dagster as dg
import torch

from glitchflow_assets.core.artifacts.model_evaluation import read_evaluation
from glitchflow_assets.core.ml.bundle import MODEL
from glitchflow_assets.core.ml.evaluation import evaluate
from glitchflow_assets.core.ml.gate import GateConfig
from glitchflow_assets.core.ml.pipeline import train_and_register
from glitchflow_assets.core.ml.tracking import Tracker
from glitchflow_assets.core.ml.training import TrainConfig
from glitchflow_assets.core.runs.registry import load_registry
from glitchflow_assets.core.runs.windows import windows_overlapping
from glitchflow_assets.core.sim import VIRGO_SCENARIO, simulate
from glitchflow_assets.defs.families import build_definitions
from glitchflow_assets.lib.names import EVALUATION, TRAINED
from glitchflow_assets.lib.resources import GlitchflowStorage, MlflowTracking
from glitchflow_assets.runner import materialize_span

SHOWN = (
    "roc_auc",
    "balanced_accuracy",
    "loudness_ratio",
    "peak_distance_time_bins",
    "peak_distance_freq_rows",
    "log_correlation",
    "l1_glitch",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=12.0)
    parser.add_argument("--glitch-rate", type=float, default=4.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--train-budget-s", type=float, default=1200.0)
    parser.add_argument("--original", action="store_true", help="also train the original configuration on the same dataset")
    parser.add_argument("--out", type=Path, default=Path("bench/out/science"))
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    run = load_registry()["SIM"]
    run = dataclasses.replace(run, frames=dataclasses.replace(run.frames, path=args.out / "frames"))
    duration = int(args.hours * 3600)
    t0 = time.monotonic()
    scenario = dataclasses.replace(VIRGO_SCENARIO, glitch_rate_per_min=args.glitch_rate)
    sim = simulate(run.frames.path, run.gps_start, duration + 60, seed=args.seed, scenario=scenario, workers=2)
    n_glitches = int((sim.glitches.role == "strain").sum())
    timings = {"simulate_s": time.monotonic() - t0}
    print(f"simulated {args.hours} h, {n_glitches} strain glitches ({timings['simulate_s']:.0f} s)", flush=True)

    windows = [w.key for w in windows_overlapping(run.gps_start, run.gps_start + duration, run.cadence)]
    tracking_uri = f"sqlite:///{(args.out / 'mlflow' / 'mlflow.db').resolve()}"
    storage = GlitchflowStorage(root=str((args.out / "storage").resolve()))
    resources = {"storage": storage, "mlflow": MlflowTracking(tracking_uri=tracking_uri)}
    training = {"time_budget_s": args.train_budget_s, "seed": args.seed}
    (args.out / "dagster").mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    def progress(step) -> None:
        where = f"{step.partitions[0]} .. {step.partitions[-1]}" if step.partitions else "run"
        print(f"  {where}: {', '.join(k.path[-1] for k in step.assets)} ({time.monotonic() - started:.0f} s)", flush=True)

    with dg.DagsterInstance.local_temp(str((args.out / "dagster").resolve())) as instance:
        outcome = materialize_span(
            build_definitions({"SIM": run}, resources), "SIM", windows, instance, {TRAINED: training}, EVALUATION, progress
        )
    if not outcome.success:
        raise SystemExit("the pipeline failed; see the log above")
    timings["pipeline_s"] = time.monotonic() - started
    trained, evaluation = outcome.last(TRAINED).metadata(TRAINED), outcome.last(EVALUATION).metadata(EVALUATION)
    print(f"\n{trained['model_uri']}: {trained['epochs_run']} epochs, best {trained['best_epoch']}, {trained['train_seconds']:.0f} s")
    results = {
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, {platform.platform()}",
        "hours": args.hours,
        "glitch_rate_per_min": args.glitch_rate,
        "seed": args.seed,
        "strain_glitches": n_glitches,
        "timings": timings,
        "training": {k: trained[k] for k in ("model_uri", "epochs_run", "best_epoch", "train_seconds", "parameters")},
        "test": {k: v for k, v in evaluation.items() if isinstance(v, int | float | str)},
    }
    report = read_evaluation(evaluation["path"]).report  # what model_evaluation wrote: every generator with intervals
    rows = report.set_index("generator")
    table = {g: {k: f"{r[k]:.3f} [{r[k + '_low']:.3f}, {r[k + '_high']:.3f}]" for k in SHOWN} for g, r in rows.iterrows()}
    dataset = storage.run_file("SIM", "dataset_split")
    if args.original:
        tracker = Tracker(tracking_uri)
        original = train_and_register(
            dataset,
            "SIM",
            TrainConfig.original(time_budget_s=args.train_budget_s, seed=args.seed),
            GateConfig(),
            torch.device("cpu"),
            tracker,
            {"dagster_run_id": "bench_science"},
            lambda message: print("  " + message, flush=True),
        )
        original_report = evaluate(tracker.load(original.ref), dataset, torch.device("cpu")).report
        table["original_config"] = {k: str(original_report.headline(MODEL)[k]) for k in SHOWN}
        results["original_config_gate"] = original.verdict.describe()
    results["report"] = table
    print(f"held-out test split: {evaluation['test_glitch_events']} glitch events of {evaluation['test_events']}")
    print(f"{'':16s}" + "".join(f"{k:>26s}" for k in SHOWN))
    for g, row in table.items():
        print(f"{g:16s}" + "".join(f"{row[k]:>26s}" for k in SHOWN))
    model, linear = rows.loc[MODEL], rows.loc["linear_witness"]
    targets = {
        "balanced_accuracy >= 0.95": bool(model["balanced_accuracy"] >= 0.95),
        "loudness_ratio in [0.8, 1.25]": bool(0.8 <= model["loudness_ratio"] <= 1.25),
        "l1_glitch below linear witness": bool(model["l1_glitch"] < linear["l1_glitch"]),
    }
    results["targets"] = targets
    for k, ok in targets.items():
        print(f"target {k}: {'met' if ok else 'MISSED'}")
    (args.out / "science.json").write_text(json.dumps(results, indent=2, default=str))
    print(f"total {time.monotonic() - t0:.0f} s; results in {args.out / 'science.json'}")


if __name__ == "__main__":
    main()
