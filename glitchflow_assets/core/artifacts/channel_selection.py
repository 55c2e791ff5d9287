"""JSON schema of ``channel_selection``: the witness channels of one observing run and how they were chosen.

Layout (schema version 1)::

    {"schema": "glitchflow.channel_selection", "schema_version": 1, "run": ..., "selected": [channel, ...],
     "version": digest of (selected, config), "windows": [partition key, ...], "config": AnnalisaConfig,
     "channels": [per-channel row of the ANNALISA table, ...]}

Files written before ``schema`` was recorded are read as version 1 (same layout).
"""

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from glitchflow_assets.core.artifacts.storage import check_schema, content_version, read_json_document, write_json_document
from glitchflow_assets.core.signal.annalisa import AnnalisaConfig

SCHEMA = "glitchflow.channel_selection"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ChannelSelection:
    run: str
    selected: list[str]
    windows: list[str]
    config: dict
    channels: list[dict]

    def native_rates(self) -> dict[str, float]:
        """The native rate (Hz) of each channel in most of the run's windows (the rate downstream stages accept;
        a window holding a channel at another rate is left out for it). Empty for selections made before rates
        were recorded."""
        rates = {row["channel"]: float(row.get("native_rate_hz", "nan")) for row in self.channels}
        return {channel: rate for channel, rate in rates.items() if not math.isnan(rate)}

    @property
    def version(self) -> str:
        """The data version: changes only when the selected channels or the rule do, not on every re-aggregation,
        so downstream spectrograms go stale only when they would change."""
        return content_version([self.selected, self.config])


def selection_of(run: str, table: pd.DataFrame, windows: list[str], config: AnnalisaConfig) -> ChannelSelection:
    """The selection an ANNALISA channel table (``selected`` column) makes."""
    return ChannelSelection(run, table.loc[table.selected, "channel"].tolist(), windows, asdict(config), table.to_dict("records"))


def write_selection(path: str | Path, selection: ChannelSelection, figure: bytes | None = None) -> None:
    """The selection as JSON, and ``figure`` (its statistics, PNG) beside it with the suffix ``.png``; each atomic."""
    document = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, **asdict(selection), "version": selection.version}
    write_json_document(path, document, figure)


def read_selection(path: str | Path) -> ChannelSelection:
    """A run's channel selection read back; a ValueError naming the file when it cannot be read or is not a selection."""
    document = read_json_document(path, "channel selection")
    check_schema(path, {"schema": SCHEMA, "schema_version": SCHEMA_VERSION} | document, SCHEMA, {SCHEMA_VERSION})
    return ChannelSelection(document["run"], document["selected"], document["windows"], document["config"], document["channels"])
