"""Glitch classes: one vocabulary, Gravity Spy's class names, from the event list to every evaluation.

An event's class is the label its trigger list gave it (a Gravity Spy list, alone or beside the search). On a simulated
run, an event the list left unlabelled takes the morphology of the simulated glitch at its peak, named as Gravity Spy
names it (:data:`~glitchflow_assets.core.io.gravityspy.SIM_CLASSES`): the simulator's catalogue plays the part of the
classified list. "" means no class is known (a search event on real data, or no simulated glitch within 0.1 s).

The class travels with the event: ``glitch_events`` (label) -> ``spectrograms`` -> the tiles of ``dataset_split`` ->
``model_evaluation``, the time-domain twin's scores and ``cleaning_evaluation``, so that every per-class number counts
the same events by the same name.
"""

from pathlib import Path

import numpy as np
import pandas as pd

from glitchflow_assets.core.io.gravityspy import SIM_CLASSES
from glitchflow_assets.core.sim.truth import StrainTruth, true_strain_glitches

UNLABELLED = "unlabelled"  # how a class-less event is shown beside labelled ones


def event_classes(events: pd.DataFrame, frame_dir: str | Path | None = None) -> np.ndarray:
    """The class of each event ``[event]`` (str; "" where none is known) of a ``glitch_events`` table (``gps`` and, from
    a trigger list, ``label``), falling back on the simulator's truth where ``frame_dir`` holds a simulated run."""
    labels = events["label"].fillna("").astype(str).to_numpy() if "label" in events else np.full(len(events), "")
    labels = labels.astype(object)
    if len(events) and frame_dir is not None and StrainTruth.available(frame_dir):
        morphology = true_strain_glitches(frame_dir, events["gps"].to_numpy()).morphology
        simulated = np.array([SIM_CLASSES.get(m, m) for m in morphology], dtype=object)
        labels = np.where(labels == "", simulated, labels)
    return labels.astype(str)


def shown(classes: np.ndarray) -> np.ndarray:
    """``classes`` for a table beside labelled ones: "" becomes :data:`UNLABELLED`."""
    return np.where(np.asarray(classes, dtype=str) == "", UNLABELLED, classes)


def class_counts(classes: np.ndarray) -> dict[str, int]:
    """Events per class, as shown (:func:`shown`), the most frequent first: a window's metadata."""
    return pd.Series(shown(classes)).value_counts().to_dict()
