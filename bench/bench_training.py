"""Training configurations compared on one dataset: ours (log energy, glitch-weighted L1, frequency channel, time
shifts) against the original GlitchFlow's (linear units, 0.8 L1 + 0.2 (1 - SSIM), lr 1e-4, batch 10), with the same
model size, seed and time budget, each scored on the held-out test split beside the baselines by the same code.

    .venv/bin/python bench/bench_training.py --dataset ~/.glitchflow/storage/SIM/dataset_split/SIM-dataset_split.h5

(the demo's dataset; any ``dataset_split`` file works). Uses a throw-away MLflow store under ``--out``.
"""

import argparse
import platform
import time
import warnings
from pathlib import Path

import torch

from glitchflow_assets.core.ml.bundle import MODEL
from glitchflow_assets.core.ml.evaluation import evaluate
from glitchflow_assets.core.ml.gate import GateConfig
from glitchflow_assets.core.ml.pipeline import train_and_register
from glitchflow_assets.core.ml.tracking import Tracker
from glitchflow_assets.core.ml.training import TrainConfig

SHOWN = ("roc_auc", "balanced_accuracy", "loudness_ratio", "log_correlation", "l1_glitch", "l1_background")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--budget-s", type=float, default=200.0, help="training time budget per configuration")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench/out/training"))
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    tracker = Tracker(f"sqlite:///{(args.out / 'mlflow.db').resolve()}")
    device = torch.device("cpu")
    configs = {
        "ours": TrainConfig(time_budget_s=args.budget_s, seed=args.seed),
        "original": TrainConfig.original(time_budget_s=args.budget_s, seed=args.seed),
    }
    print(f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads; dataset {args.dataset}")
    rows = {}
    for name, config in configs.items():
        start = time.monotonic()
        outcome = train_and_register(
            args.dataset, "BENCH", config, GateConfig(), device, tracker, {"dagster_run_id": "bench"}, lambda m: None
        )
        report = evaluate(tracker.load(outcome.ref), args.dataset, device).report
        epochs = len(outcome.result.history)
        print(f"{name}: {epochs} epochs in {time.monotonic() - start:.0f} s; gate {'passed' if outcome.verdict.passed else 'FAILED'}")
        print(f"  {outcome.verdict.describe()}")
        rows[name] = report.headline(MODEL)
        baselines = {g: report.headline(g) for g in report.generators if g != MODEL}
    counts = report.counts()
    print(f"\nheld-out test split: {counts['glitch_events']} glitch events of {counts['events']}, {counts['tiles']} tiles")
    print(f"{'':16s}" + "".join(f"{k:>26s}" for k in SHOWN))
    for name, headline in {**rows, **baselines}.items():
        print(f"{name:16s}" + "".join(f"{str(headline[k]):>26s}" for k in SHOWN))


if __name__ == "__main__":
    main()
