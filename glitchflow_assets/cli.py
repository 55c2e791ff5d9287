"""``glitchflow`` command: simulate frames, run the demo pipeline.

glitchflow simulate --run SIM --minutes 30        write simulated GWF frames + ground truth
glitchflow demo --minutes 60                      simulate SIM and run the whole pipeline on it
"""

import argparse
import logging
import os
import shutil
import sys
import time
import warnings
from pathlib import Path

from glitchflow_assets.core.home import HOME_ENV, glitchflow_home, storage_root
from glitchflow_assets.core.runs import load_registry
from glitchflow_assets.core.windows import windows_overlapping

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}  # progress lines only; full logs in the UI
LOCAL_INSTANCE_YAML = Path(__file__).resolve().parent.parent / "deploy" / "dagster.local.yaml"


EVALUATION_SHOWN = ("denoising_accuracy_snr2_16", "veto_accuracy_snr2_16", "l1", "l1_zero_baseline", "l1_mean_tile_baseline")


def _say(message: str) -> None:
    print(message, flush=True)


def _short(value) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _simulate(run_name: str, minutes: float, seed: int, frame_length: int, out: str | None, start: int | None) -> list[str]:
    from glitchflow_assets.core.sim import simulate

    run = load_registry()[run_name]
    gps_start = run.gps_start if start is None else start
    duration = int(round(minutes * 60))
    target = Path(out) if out else run.frames.path
    t0 = time.monotonic()

    def progress(i: int, n: int, path: Path) -> None:
        _say(f"  [{i}/{n}] wrote {path.name} ({time.monotonic() - t0:.0f} s)")

    _say(f"Simulating {run_name}: GPS {gps_start}-{gps_start + duration} into {target} (seed {seed})")
    result = simulate(target, gps_start, duration, frame_length=frame_length, seed=seed, progress=progress)
    strain = result.glitches[result.glitches.role == "strain"] if len(result.glitches) else result.glitches
    _say(f"  {len(result.frames)} frames, {len(strain)} glitches in strain; ground truth: {result.truth}")
    return [w.key for w in windows_overlapping(gps_start, gps_start + duration, run.cadence)]


def _instance_home() -> Path:
    dagster_home = Path(os.environ.get("DAGSTER_HOME") or glitchflow_home() / "dagster")
    dagster_home.mkdir(parents=True, exist_ok=True)
    if not (dagster_home / "dagster.yaml").exists() and LOCAL_INSTANCE_YAML.exists():
        shutil.copy(LOCAL_INSTANCE_YAML, dagster_home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    return dagster_home


def _demo(args: argparse.Namespace) -> int:
    home = glitchflow_home()
    os.environ.setdefault(HOME_ENV, str(home))
    dagster_home = _instance_home()
    keys = _simulate("SIM", args.minutes, args.seed, args.frame_length, None, None)

    import dagster as dg

    from glitchflow_assets.defs.families import build_definitions
    from glitchflow_assets.defs.model import EVALUATION, SYNTHETIC, TRAINED, MlflowTracking
    from glitchflow_assets.defs.resources import GlitchflowStorage

    warnings.filterwarnings("ignore", category=dg.BetaWarning)  # backfill_policy: the current API, still "beta"

    defs = build_definitions()
    job = defs.resolve_job_def("SIM_ingest")
    t0 = time.monotonic()
    with dg.DagsterInstance.get() as instance:
        for i, key in enumerate(keys, 1):
            result = job.execute_in_process(instance=instance, partition_key=key, raise_on_error=False, run_config=QUIET)
            status = "ok" if result.success else "FAILED"
            elapsed = time.monotonic() - t0
            _say(f"  [{i}/{len(keys)}] SIM window {key} (raw_strain_segments, glitch_events, annalisa_scores): {status} ({elapsed:.0f} s)")
            if not result.success:
                return 1
        resources = {"storage": GlitchflowStorage()}
        selection = dg.materialize(
            [defs.get_assets_def(dg.AssetKey(["SIM", "channel_selection"]))],
            instance=instance,
            resources=resources,
            run_config=QUIET,
        )
        if not selection.success:
            return 1
        (event,) = selection.asset_materializations_for_node("SIM__channel_selection")
        _say(f"  SIM/channel_selection: witnesses {', '.join(event.metadata['selected'].value) or 'none'}")
        spectrograms = defs.get_assets_def(dg.AssetKey(["SIM", "spectrograms"]))
        for key in keys:
            if not dg.materialize([spectrograms], partition_key=key, instance=instance, resources=resources, run_config=QUIET).success:
                return 1
        _say(f"  SIM/spectrograms: {len(keys)} windows ({time.monotonic() - t0:.0f} s)")
        split = dg.materialize(
            [defs.get_assets_def(dg.AssetKey(["SIM", "dataset_split"]))], instance=instance, resources=resources, run_config=QUIET
        )
        if not split.success:
            return 1
        (event,) = split.asset_materializations_for_node("SIM__dataset_split")
        _say(f"  SIM/dataset_split: tiles per split and class {event.metadata['class_balance'].value}")
        tracking = MlflowTracking()
        training = {"epochs": args.epochs, "time_budget_s": args.train_budget_s, "seed": args.seed}
        model = defs.resolve_job_def("SIM_model").execute_in_process(
            instance=instance, run_config={**QUIET, "ops": {f"SIM__{TRAINED}": {"config": training}}}, raise_on_error=False
        )
        for node, shown in (
            (TRAINED, ("model_uri", "best_epoch", "train_seconds")),
            (EVALUATION, EVALUATION_SHOWN),
            (SYNTHETIC, ("items",)),
        ):
            for event in model.asset_materializations_for_node(f"SIM__{node}"):
                values = ", ".join(f"{k} {_short(event.metadata[k].value)}" for k in shown)
                _say(f"  SIM/{node}: {values} ({time.monotonic() - t0:.0f} s)")
        for check in model.get_asset_check_evaluations():
            _say(f"  check {check.check_name}: {'passed' if check.passed else 'FAILED'} - {check.description}")
        if not model.success:
            return 1
    _say("")
    _say("Done. Results:")
    _say(f"  frames + ground truth : {load_registry()['SIM'].frames.path}")
    _say(f"  asset files (HDF5)    : {storage_root() / 'SIM'}")
    _say(f"  synthetic glitches    : {storage_root() / 'SIM' / SYNTHETIC}")
    _say(f"  MLflow store          : {tracking.tracker().uri}")
    _say(f"  Dagster instance      : {dagster_home}")
    _say("Open the Dagster UI (lineage, partitions, checks) with:")
    _say(f"  DAGSTER_HOME={dagster_home} GLITCHFLOW_HOME={home} .venv/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000")
    _say("  then browse http://127.0.0.1:3000")
    _say("Open the MLflow UI (runs, metrics, registered model glitchflow-SIM) with:")
    _say(f"  .venv/bin/mlflow ui --backend-store-uri {tracking.tracker().uri} -h 127.0.0.1 -p 5000")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="glitchflow", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sim = sub.add_parser("simulate", help="write simulated GWF frames and their ground truth")
    sim.add_argument("--run", default="SIM", help="observing run whose frame directory receives the frames")
    sim.add_argument("--minutes", type=float, default=30.0)
    sim.add_argument("--start", type=int, default=None, help="GPS start (default: the run's start)")
    sim.add_argument("--out", default=None, help="directory (default: the run's frame directory)")
    sim.add_argument("--frame-length", type=int, default=60, help="seconds per frame file")
    sim.add_argument("--seed", type=int, default=0)
    demo = sub.add_parser("demo", help="simulate the SIM run and materialize it with the embedded defaults")
    demo.add_argument("--minutes", type=float, default=60.0)
    demo.add_argument("--frame-length", type=int, default=60)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--epochs", type=int, default=60, help="training epochs (early stopping may end sooner)")
    demo.add_argument("--train-budget-s", type=float, default=240.0, help="stop training after this many seconds (0: no limit)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "simulate":
            _simulate(args.run, args.minutes, args.seed, args.frame_length, args.out, args.start)
            return 0
        return _demo(args)
    except KeyError as exc:
        _say(f"glitchflow: unknown observing run {exc}; known: {', '.join(load_registry())}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
