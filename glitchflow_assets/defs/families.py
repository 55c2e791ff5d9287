"""One asset family per observing run in the registry: keys ``RUN/asset``, grouped by run."""

import dagster as dg

from glitchflow_assets.core import settings
from glitchflow_assets.core.runs.registry import ObservingRun, load_registry
from glitchflow_assets.defs.cleaning_evaluation import cleaning_evaluation
from glitchflow_assets.defs.ingest import annalisa_scores, glitch_events, raw_strain_segments
from glitchflow_assets.defs.model import dataset_split, model_evaluation, synthetic_glitches, trained_model
from glitchflow_assets.defs.selection import channel_selection
from glitchflow_assets.defs.sensors import new_frames_sensor
from glitchflow_assets.defs.spectrograms import spectrograms
from glitchflow_assets.defs.twin import cleaned_strain, glitch_waveforms
from glitchflow_assets.lib.automation import automation_sensor
from glitchflow_assets.lib.gpu import GPU_RUN_TAG
from glitchflow_assets.lib.names import JOBS, asset_key, job_name
from glitchflow_assets.lib.resources import GlitchflowStorage, MlflowTracking

JOB_DESCRIPTIONS = {
    "ingest": "Ingest and analyse windows of {run}: raw segments, glitch events, ANNALISA scores (what the new-frame sensor launches).",
    "selection": "Aggregate the ANNALISA scores of {run} into its witness-channel selection.",
    "spectrograms": "Q-transform spectrograms of {run} windows for the selected witnesses.",
    "model": "Build the {run} dataset, train, evaluate and generate synthetic glitches; fit the time-domain twin (one GPU).",
    "cleaning": "Subtract the time-domain twin's glitches from {run} windows and search the cleaned strain again.",
    "cleaning_evaluation": "Evaluate the cleaning of {run}: witness coverage per glitch class, and the known signals' safety.",
}


def run_jobs(run: ObservingRun) -> list:
    """The named jobs of :data:`JOBS`; the model job is tagged for the GPU concurrency limit."""
    return [
        dg.define_asset_job(
            job_name(run.name, suffix),
            selection=dg.AssetSelection.assets(*(asset_key(run.name, n) for n in names)),
            tags={GPU_RUN_TAG: "true"} if suffix == "model" else None,
            description=JOB_DESCRIPTIONS[suffix].format(run=run.name),
        )
        for suffix, names in JOBS.items()
    ]


def run_family(run: ObservingRun) -> dg.Definitions:
    """One observing run's asset family: its twelve assets, its jobs, its new-frame sensor and its automation sensor."""
    return dg.Definitions(
        assets=[
            raw_strain_segments(run),
            glitch_events(run),
            annalisa_scores(run),
            channel_selection(run),
            spectrograms(run),
            dataset_split(run),
            trained_model(run),
            model_evaluation(run),
            synthetic_glitches(run),
            glitch_waveforms(run),
            cleaned_strain(run),
            cleaning_evaluation(run),
        ],
        jobs=run_jobs(run),
        sensors=[new_frames_sensor(run, job_name(run.name, "ingest")), automation_sensor(run)],
    )


def _executor() -> dg.ExecutorDefinition:
    """``GLITCHFLOW_EXECUTOR=k8s``: every step its own pod (GPU steps get GPU pods). Else every run executes its steps
    in its own process, one after the other: a step process would import torch, gwpy and LAL again (seconds) for a
    step that takes about as long, and two cores gain nothing from running a window's steps side by side."""
    if settings.executor() == "k8s":
        from dagster_k8s import k8s_job_executor  # imported only here: the kubernetes client costs every start half a second

        return k8s_job_executor
    return dg.in_process_executor


def loadable_runs() -> dict[str, ObservingRun]:
    """The registry's runs that have a frame directory here, or ask to be shown without one.

    A run with nothing to read would fill the catalog and the global asset graph with thousands of partitions
    forever "missing"; it appears as soon as its frame directory exists (reload the code location), or with
    ``show_without_frames: true`` (to plan a backfill before the data are mounted)."""
    return {name: run for name, run in load_registry().items() if run.has_frame_source or run.show_without_frames}


def build_definitions(runs: dict[str, ObservingRun] | None = None, resources: dict | None = None) -> dg.Definitions:
    """Every run family (default: :func:`loadable_runs`) with the shared resources (``resources`` replace them)."""
    runs = loadable_runs() if runs is None else runs
    shared = {"storage": GlitchflowStorage(), "mlflow": MlflowTracking()} | (resources or {})
    return dg.Definitions.merge(*(run_family(run) for run in runs.values()), dg.Definitions(resources=shared, executor=_executor()))


@dg.definitions
def defs() -> dg.Definitions:
    """Every loadable run's family with the shared resources and executor."""
    return build_definitions()
