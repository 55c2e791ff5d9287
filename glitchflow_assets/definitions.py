"""The Dagster code location (``workspace.yaml`` points here)."""

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    """The code location's definitions: whatever the ``defs`` folder defines."""
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
