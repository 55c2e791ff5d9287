"""One asset family per observing run in the registry: keys ``RUN/asset``, grouped by run."""

import os

import dagster as dg
from dagster_k8s import k8s_job_executor

from glitchflow_assets.core.runs import ObservingRun, load_registry
from glitchflow_assets.defs.datasets import dataset_split, spectrograms
from glitchflow_assets.defs.gpu import GPU_RUN_TAG
from glitchflow_assets.defs.ingest import raw_strain_segments
from glitchflow_assets.defs.model import EVALUATION, SYNTHETIC, TRAINED, MlflowTracking, model_evaluation, synthetic_glitches, trained_model
from glitchflow_assets.defs.resources import GlitchflowStorage
from glitchflow_assets.defs.sensors import new_frames_sensor
from glitchflow_assets.defs.signal import annalisa_scores, channel_selection, glitch_events


def run_family(run: ObservingRun) -> dg.Definitions:
    window_assets = [raw_strain_segments(run), glitch_events(run), annalisa_scores(run)]
    ingest_job = dg.define_asset_job(
        f"{run.name}_ingest",
        selection=dg.AssetSelection.assets(*window_assets),
        description=f"Ingest and analyse windows of {run.name} (what the new-frame sensor launches).",
    )
    model_job = dg.define_asset_job(
        f"{run.name}_model",
        selection=dg.AssetSelection.assets(*(dg.AssetKey([run.name, n]) for n in (TRAINED, EVALUATION, SYNTHETIC))),
        tags={GPU_RUN_TAG: "true"},
        description=f"Train, evaluate and generate synthetic glitches for {run.name} (one GPU).",
    )
    return dg.Definitions(
        assets=[
            *window_assets,
            channel_selection(run),
            spectrograms(run),
            dataset_split(run),
            trained_model(run),
            model_evaluation(run),
            synthetic_glitches(run),
        ],
        jobs=[ingest_job, model_job],
        sensors=[new_frames_sensor(run, ingest_job.name)],
    )


def _executor() -> dg.ExecutorDefinition | None:
    """``GLITCHFLOW_EXECUTOR=k8s``: every step its own pod (GPU steps get GPU pods); else Dagster's default."""
    choice = os.environ.get("GLITCHFLOW_EXECUTOR", "")
    if choice not in ("", "k8s"):
        raise ValueError(f"GLITCHFLOW_EXECUTOR={choice!r}: expected 'k8s' or unset")
    return k8s_job_executor if choice == "k8s" else None


def loadable_runs() -> dict[str, ObservingRun]:
    """The registry's runs that have a frame directory here, or ask to be shown without one.

    A run with nothing to read would fill the catalog and the global asset graph with thousands of partitions
    forever "missing"; it appears as soon as its frame directory exists (reload the code location), or with
    ``show_without_frames: true`` (to plan a backfill before the data are mounted)."""
    return {name: run for name, run in load_registry().items() if run.has_frame_source or run.show_without_frames}


def build_definitions(runs: dict[str, ObservingRun] | None = None) -> dg.Definitions:
    runs = loadable_runs() if runs is None else runs
    return dg.Definitions.merge(
        *(run_family(run) for run in runs.values()),
        dg.Definitions(resources={"storage": GlitchflowStorage(), "mlflow": MlflowTracking()}, executor=_executor()),
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
