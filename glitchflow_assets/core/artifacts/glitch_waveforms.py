"""HDF5 schema of ``glitch_waveforms``: the strain glitches the time-domain twin predicts, one row per event.

Layout (schema version 1)::

    /                 attrs: schema, schema_version, run, sample_rate, strain_channel, channels (JSON witnesses),
                             method, model_uri, dataset_version, segment_s, created_utc, software
    /gps, /t0         float64 [event]: event time and the GPS of sample 0 of its rows
    /window, /split   str [event]
    /whitened         float32 [event, time]: the prediction from the witnesses alone, whitened (unit-variance noise)
    /strain           float64 [event, time]: the same in strain units (re-coloured by the window's strain PSD)
    /amplitude        float64 [event]: scale fitted on the strain data (0: the twin predicts no glitch there);
                      the glitch in the data is ``amplitude * strain``
    /truth_whitened   float32 [event, time], simulated runs only: the true strain glitch, whitened
    /scores/<column>  float64 [event]: per-event scores (core.twin.scoring)
"""

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

import glitchflow_assets
from glitchflow_assets.core.artifacts.storage import open_artifact, write_artifact

SCHEMA = "glitchflow.glitch_waveforms"
SCHEMA_VERSION = 1
_STR = h5py.string_dtype()


@dataclass
class GlitchWaveformSet:
    gps: np.ndarray
    t0: np.ndarray
    window: list[str]
    split: list[str]
    whitened: np.ndarray
    strain: np.ndarray
    amplitude: np.ndarray
    scores: pd.DataFrame
    attrs: dict

    @property
    def sample_rate(self) -> float:
        return float(self.attrs["sample_rate"])

    def glitches(self) -> np.ndarray:
        """``amplitude * strain`` ``[event, time]``: each event's glitch in strain units as it sits in the data."""
        return self.amplitude[:, None] * self.strain


def write_waveform_set(
    path: str | Path,
    *,
    gps: np.ndarray,
    t0: np.ndarray,
    window: list[str],
    split: list[str],
    whitened: np.ndarray,
    strain: np.ndarray,
    amplitude: np.ndarray,
    scores: pd.DataFrame,
    truth_whitened: np.ndarray | None,
    attrs: dict,
) -> None:
    """Write the twin's predictions atomically: ``whitened`` and ``strain`` ``[event, time]``, fitted ``amplitude`` ``[event]``, per-event
    ``scores``, the simulator's ``truth_whitened`` when given, and ``attrs`` with the creation time and software version."""
    with write_artifact(path, SCHEMA, SCHEMA_VERSION) as f:
        f.create_dataset("gps", data=gps)
        f.create_dataset("t0", data=t0)
        f.create_dataset("window", data=np.array(window, dtype=object), dtype=_STR)
        f.create_dataset("split", data=np.array(split, dtype=object), dtype=_STR)
        f.create_dataset("whitened", data=whitened.astype("f4"), compression="gzip")
        f.create_dataset("strain", data=strain, compression="gzip")
        f.create_dataset("amplitude", data=amplitude)
        if truth_whitened is not None:
            f.create_dataset("truth_whitened", data=truth_whitened.astype("f4"), compression="gzip")
        for column in scores:
            f.create_dataset(f"scores/{column}", data=scores[column].to_numpy(dtype=float))
        f.attrs.update(
            {
                "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
                "software": f"glitchflow-assets {glitchflow_assets.__version__}",
                **attrs,
            }
        )


def read_waveform_set(path: str | Path) -> GlitchWaveformSet:
    """A ``glitch_waveforms`` file read back whole (its ``channels`` attribute decoded from JSON)."""
    with open_artifact(path, SCHEMA, (SCHEMA_VERSION,)) as f:
        strings = lambda name: [s.decode() if isinstance(s, bytes) else s for s in f[name][()]]  # noqa: E731
        scores = pd.DataFrame({k: f[f"scores/{k}"][()] for k in f["scores"]}) if "scores" in f else pd.DataFrame()
        return GlitchWaveformSet(
            f["gps"][()],
            f["t0"][()],
            strings("window"),
            strings("split"),
            f["whitened"][()],
            f["strain"][()],
            f["amplitude"][()],
            scores,
            {k: (json.loads(v) if k == "channels" else v) for k, v in f.attrs.items()},
        )


def place(glitches: np.ndarray, t0: np.ndarray, rate: float, gps_start: float, n: int, shift_s: float = 0.0) -> np.ndarray:
    """The sum ``[n]`` of ``glitches`` ``[event, time]`` (sample 0 at GPS ``t0 + shift_s``) over ``n`` samples from
    ``gps_start`` at ``rate``; glitch times are rounded to that grid."""
    out = np.zeros(n)
    for wave, start in zip(glitches, t0 + shift_s, strict=True):
        first = int(round((start - gps_start) * rate))
        lo, hi = max(first, 0), min(first + len(wave), n)
        if lo < hi:
            out[lo:hi] += wave[lo - first : hi - first]
    return out
