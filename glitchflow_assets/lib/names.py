"""Asset names of a run family - the contract users, docs and tools refer to (keys are ``RUN/name``) - and the
jobs that run them. The order the stages run in is not written here: it is the asset graph's (deps)."""

import dagster as dg

RAW = "raw_strain_segments"
EVENTS = "glitch_events"
SCORES = "annalisa_scores"
SELECTION = "channel_selection"
SPECTROGRAMS = "spectrograms"
SPLIT = "dataset_split"
TRAINED = "trained_model"
EVALUATION = "model_evaluation"
SYNTHETIC = "synthetic_glitches"
WAVEFORMS = "glitch_waveforms"
CLEANED = "cleaned_strain"
CLEAN_EVAL = "cleaning_evaluation"

# Job name suffix -> the assets it materializes (one run per window for window stages, one run per run-level stage).
JOBS = {
    "ingest": (RAW, EVENTS, SCORES),
    "selection": (SELECTION,),
    "spectrograms": (SPECTROGRAMS,),
    "model": (SPLIT, TRAINED, EVALUATION, SYNTHETIC, WAVEFORMS),
    "cleaning": (CLEANED,),
    "cleaning_evaluation": (CLEAN_EVAL,),
}

DEFINITIONS_MODULE = "glitchflow_assets.definitions"  # what workspace.yaml loads, as the code location
CODE_LOCATION = "glitchflow"
TRIGGER_TAG = "glitchflow/trigger"  # on every run: what started it (new_frames, demo, materialize, materialize --submit)
CONFIG_TAG = "glitchflow/config"  # on the runs of `glitchflow materialize --config FILE`: the file their settings came from


def asset_key(run: str, name: str) -> dg.AssetKey:
    """The key ``RUN/name`` of an asset of a run family."""
    return dg.AssetKey([run, name])


def job_name(run: str, suffix: str) -> str:
    """The name ``RUN_suffix`` of a run family's job (suffixes: the keys of :data:`JOBS`)."""
    return f"{run}_{suffix}"
