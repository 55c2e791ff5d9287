"""HDF5 schema of ``annalisa_scores``: one window's per-event, per-channel ANNALISA coincidence counts.

Layout (schema version 2)::

    /channels          [channel] auxiliary channel names (the strain excluded)
    /native_rate       [channel] Hz in this window, NaN where the channel had no data (version 2; 1 is still read)
    /event_gps         [event]
    /scored            bool [event, channel]   the strain has peaks and the channel valid data
    /counts/<name>     int [event, channel]    intersection, strain, aux, union, aux_area
    attrs: schema, schema_version, run, window, pixels (per plane), config (JSON AnnalisaConfig)
"""

import json
from dataclasses import asdict
from pathlib import Path

import h5py
import numpy as np

from glitchflow_assets.core.artifacts.storage import open_artifact, write_artifact
from glitchflow_assets.core.runs.windows import Window
from glitchflow_assets.core.signal.annalisa import AnnalisaConfig, WindowScores

SCHEMA = "glitchflow.annalisa_scores"
SCHEMA_VERSION = 2
READABLE_VERSIONS = {1, 2}
COUNTS = ("intersection", "strain", "aux", "union", "aux_area")


def write_scores(path: str | Path, run: str, window: Window, scores: WindowScores, config: AnnalisaConfig) -> None:
    """Write one window's scores atomically."""
    shape = (len(scores.event_gps), len(scores.channels))
    with write_artifact(path, SCHEMA, SCHEMA_VERSION) as f:
        f.attrs.update(
            {
                "run": run,
                "window": window.key,
                "pixels": scores.pixels,
                "config": json.dumps(asdict(config)),
            }
        )
        f.create_dataset("channels", data=np.array(scores.channels, dtype=object), dtype=h5py.string_dtype())
        f.create_dataset("event_gps", data=scores.event_gps)
        f.create_dataset("native_rate", data=np.asarray(scores.native_rates, dtype="f8"))
        f.create_dataset("scored", data=scores.scored.reshape(shape))
        for name in COUNTS:
            f.create_dataset(f"counts/{name}", data=scores.counts[name].reshape(shape))


def read_scores(path: str | Path) -> WindowScores:
    """One window's scores read back (schema version 1 or 2; ``native_rates`` empty for version 1)."""
    with open_artifact(path, SCHEMA, READABLE_VERSIONS) as f:
        return WindowScores(
            channels=list(f["channels"].asstr()[()]),
            event_gps=f["event_gps"][()],
            counts={name: f[f"counts/{name}"][()] for name in COUNTS},
            scored=f["scored"][()],
            pixels=int(f.attrs["pixels"]),
            native_rates=list(f["native_rate"][()]) if "native_rate" in f else [],
        )
