"""The ``spectrograms`` artifact: one window's whitened Q-transforms around its events (built by
:mod:`glitchflow_assets.core.dataset.spectrograms`).

Layout (schema version 2; version 1 had no ``event_class`` and reads as unclassified)::

    /spectrograms   float32 [event, channel, freq, time]   normalised energy (noise ~1, reads as SNR^2)
    /frequencies    [freq] Hz        /times  [time] s from the event GPS
    /event_gps      [event]          /event_snr [event]       /channels [channel] (strain first)
    /event_class    [event]          the event's glitch class (:mod:`~glitchflow_assets.core.signal.glitch_classes`; "" none)
    attrs: config (JSON SpectrogramConfig), run, window, inputs (upstream data versions), ...
"""

import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from glitchflow_assets.core.artifacts.storage import ContentDigest, open_artifact, write_artifact
from glitchflow_assets.core.types import Spectrograms

SCHEMA = "glitchflow.spectrograms"
SCHEMA_VERSION = 2
READABLE_VERSIONS = {1, SCHEMA_VERSION}


def write_spectrograms(
    path: str | Path,
    spectrograms: Spectrograms,
    frequencies: np.ndarray,
    times: np.ndarray,
    event_gps: np.ndarray,
    event_snr: np.ndarray,
    event_class: np.ndarray,
    channels: list[str],
    config: dict,
    attrs: dict,
) -> None:
    """One window's spectrograms ``[event, channel, freq, time]`` (one event per chunk) with their axes (Hz; s from
    the event GPS), event GPS, SNR and class, channels, the transform's ``config`` and ``attrs``; atomic."""
    with write_artifact(path, SCHEMA, SCHEMA_VERSION) as f:
        f.attrs.update({"config": json.dumps(config), **attrs})
        chunks = (1, *spectrograms.shape[1:]) if len(spectrograms) else None
        d = f.create_dataset("spectrograms", data=spectrograms, chunks=chunks)
        d.attrs["axes"] = json.dumps(["event", "channel", "frequency", "time"])
        d.attrs["units"] = "normalised energy (row median = 1)"
        f.create_dataset("frequencies", data=frequencies).attrs["units"] = "Hz"
        f.create_dataset("times", data=times).attrs["units"] = "s from event GPS"
        f.create_dataset("event_gps", data=event_gps)
        f.create_dataset("event_snr", data=event_snr)
        f.create_dataset("event_class", data=np.asarray(event_class, dtype=object), dtype=h5py.string_dtype())
        f.create_dataset("channels", data=np.array(channels, dtype=object), dtype=h5py.string_dtype())


@dataclass
class WindowSpectrograms:
    """One window's file read back: ``spectrograms`` ``[event, channel, freq, time]`` with its axes."""

    spectrograms: np.ndarray
    frequencies: np.ndarray  # [freq] Hz
    times: np.ndarray  # [time] s from the event GPS
    event_gps: np.ndarray  # [event]
    event_snr: np.ndarray  # [event]
    event_class: np.ndarray  # [event] str, "" where none is known
    channels: list[str]  # strain first
    attrs: dict

    def data_version(self) -> str:
        """Changes exactly when the stored spectrograms, their axes or events (with their classes) do."""
        classes = [self.event_class] if (self.event_class != "").any() else []  # an unclassified window keeps its version-1 digest
        stored = (self.spectrograms, self.frequencies, self.times, self.event_gps, self.event_snr, self.channels, *classes)
        return ContentDigest(*stored).hexdigest()


def read_spectrograms(path: str | Path) -> WindowSpectrograms:
    """One window's spectrograms file read back whole: ``[event, channel, freq, time]`` with its axes, events and channels."""
    with open_artifact(path, SCHEMA, READABLE_VERSIONS) as f:
        n = f["event_gps"].shape[0]
        return WindowSpectrograms(
            f["spectrograms"][()],
            f["frequencies"][()],
            f["times"][()],
            f["event_gps"][()],
            f["event_snr"][()],
            f["event_class"].asstr()[()].astype(str) if "event_class" in f else np.full(n, "", dtype=str),
            list(f["channels"].asstr()[()]),
            dict(f.attrs),
        )
