"""JSON schema of ``cleaning_evaluation``: what cleaning did over one observing run.

Layout (schema version 1)::

    {"schema": "glitchflow.cleaning_evaluation", "schema_version": 1, "run": ..., "windows": [partition key, ...],
     "coverage": [per-class row of core.twin.coverage.witness_coverage, ...],
     "signals": [per-signal row of core.twin.safety.signal_recovery, ...], "safety": {goal: value}}

The GW170817 figure (PNG), where the run has one, lies beside it with the suffix ``.png``.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from glitchflow_assets.core.artifacts.storage import check_schema, read_json_document, write_json_document

SCHEMA, SCHEMA_VERSION = "glitchflow.cleaning_evaluation", 1


@dataclass
class CleaningEvaluation:
    run: str
    windows: list[str]
    coverage: pd.DataFrame
    signals: pd.DataFrame
    safety: dict[str, float]


def write_cleaning_evaluation(path: str | Path, evaluation: CleaningEvaluation, figure: bytes | None = None) -> None:
    """The evaluation as JSON, and ``figure`` beside it (``.png``); each atomic."""
    document = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "run": evaluation.run,
        "windows": evaluation.windows,
        "coverage": json.loads(evaluation.coverage.to_json(orient="records")),
        "signals": json.loads(evaluation.signals.to_json(orient="records")),
        "safety": evaluation.safety,
    }
    write_json_document(path, document, figure, indent=1)


def read_cleaning_evaluation(path: str | Path) -> CleaningEvaluation:
    """A run's cleaning evaluation read back; a ValueError naming the file when it cannot be read or is not one."""
    document = read_json_document(path, "cleaning evaluation")
    check_schema(path, document, SCHEMA, {SCHEMA_VERSION})
    return CleaningEvaluation(
        document["run"], document["windows"], pd.DataFrame(document["coverage"]), pd.DataFrame(document["signals"]), document["safety"]
    )
