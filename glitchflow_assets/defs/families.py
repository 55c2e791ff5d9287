"""One asset family per observing run in the registry: keys ``RUN/asset``, grouped by run."""

import dagster as dg

from glitchflow_assets.core.runs import ObservingRun, load_registry
from glitchflow_assets.defs.datasets import dataset_split, spectrograms
from glitchflow_assets.defs.ingest import raw_strain_segments
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
    return dg.Definitions(
        assets=[*window_assets, channel_selection(run), spectrograms(run), dataset_split(run)],
        jobs=[ingest_job],
        sensors=[new_frames_sensor(run, ingest_job.name)],
    )


def build_definitions(runs: dict[str, ObservingRun] | None = None) -> dg.Definitions:
    runs = load_registry() if runs is None else runs
    return dg.Definitions.merge(
        *(run_family(run) for run in runs.values()),
        dg.Definitions(resources={"storage": GlitchflowStorage()}),
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
