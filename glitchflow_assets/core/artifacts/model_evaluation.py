"""The ``model_evaluation`` artifact: a model and its baselines scored on held-out tiles.

Layout (schema version 1), one dataset per table column::

    /report   a row per generator (the model first): headline numbers with intervals
    /tiles    a row per generator and test tile
    /curves   a row per SNR^2 threshold (the original's denoising and veto accuracies)
    /vetoes   a row per event
    attrs: schema, schema_version, model_uri and the summary numbers (``Evaluation.summary``)
"""

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from glitchflow_assets.core.artifacts.storage import ContentDigest
from glitchflow_assets.core.artifacts.tables import read_tables, write_tables

SCHEMA = "glitchflow.model_evaluation"
SCHEMA_VERSION = 1
TABLES = ("report", "tiles", "curves", "vetoes")


def write_evaluation(path: str | Path, tables: dict[str, pd.DataFrame], model_uri: str, summary: dict[str, float]) -> None:
    """The evaluation's ``tables`` (``report``, ``tiles``, ``curves``, ``vetoes``) as one HDF5 file, one dataset per
    column, with the model URI and the ``summary`` numbers in its attributes; atomic."""
    write_tables(path, {name: tables[name] for name in TABLES}, SCHEMA, SCHEMA_VERSION, {"model_uri": model_uri, **summary})


@dataclass(frozen=True)
class EvaluationFile:
    """A ``model_evaluation`` file read back: its four tables and the model it scored."""

    report: pd.DataFrame  # a row per generator (the model first)
    tiles: pd.DataFrame  # a row per generator and tile
    curves: pd.DataFrame  # a row per SNR^2 threshold
    vetoes: pd.DataFrame  # a row per event
    model_uri: str
    attrs: dict

    def data_version(self) -> str:
        """Changes exactly when the scores do (the model URI included)."""
        digest = ContentDigest(self.model_uri)
        for table in (self.report, self.tiles, self.curves, self.vetoes):
            digest.update(list(table.columns), *(table[c].to_numpy() for c in table.columns))
        return digest.hexdigest()


def read_evaluation(path: str | Path) -> EvaluationFile:
    """A ``model_evaluation`` file read back: its four tables, the model URI and the attributes."""
    tables, attrs = read_tables(path, SCHEMA, {SCHEMA_VERSION})
    return EvaluationFile(*(tables[name] for name in TABLES), str(attrs["model_uri"]), attrs)
