"""Whitened Q-transform spectrograms of the strain and the selected witnesses around each glitch event.

Per event: ``duration`` s of every channel centred on the event GPS, whitened in float64 against a median PSD
of the same window's valid data *away from events* (so a glitch never whitens itself), Q-transformed (Q=12,
8-500 Hz, 64 log rows) and interpolated to ``time_bins`` bins over the central ``span`` s. Stored in float32
HDF5 with true axes: frequency in Hz, time in s relative to the event GPS.

Layout (schema version 1)::

    /spectrograms   float32 [event, channel, freq, time]   normalised energy (noise ~1, reads as SNR^2)
    /frequencies    [freq] Hz        /times  [time] s from the event GPS
    /event_gps      [event]          /event_snr [event]       /channels [channel] (strain first)
    attrs: run, window, q, frange, duration, span, fftlength, psd_seconds, inputs (upstream data versions)
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from glitchflow_assets.core.artifacts.storage import ContentDigest, open_artifact, write_artifact
from glitchflow_assets.core.runs.segments import Segments, covers, subtract
from glitchflow_assets.core.signal.dsp import SingleQTransform, psd_of_segments, whiten
from glitchflow_assets.core.types import ChannelSeries, Spectrograms

SCHEMA = "glitchflow.spectrograms"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class SpectrogramConfig:
    q: float = 12.0
    frange: tuple[float, float] = (8.0, 500.0)
    freq_rows: int = 64
    time_bins: int = 256
    duration: float = 8.0  # s transformed per event (edges are not kept)
    span: float = 6.0  # s kept, centred on the event
    fftlength: float = 2.0  # s, PSD estimate ...
    psd_seconds: float = 64.0  # ... over at most this much event-free valid data of the window
    event_guard: float = 4.0  # s around every event excluded from the PSD estimate
    batch: int = 4  # events per transform call

    def describe(self) -> str:
        """The transform in a few words, for the UI: ``Q=12, 8-500 Hz, 64 log rows x 256 bins over 6 s``."""
        f0, f1 = self.frange
        return f"Q={self.q:g}, {f0:g}-{f1:g} Hz, {self.freq_rows} log rows x {self.time_bins} bins over {self.span:g} s"


def build_spectrograms(
    data: ChannelSeries,
    t0: float,
    sample_rate: float,
    segments: list[Segments],
    event_gps: np.ndarray,
    config: SpectrogramConfig = SpectrogramConfig(),
    device: torch.device | None = None,
) -> tuple[Spectrograms, np.ndarray, np.ndarray, np.ndarray]:
    """``data[channel, time]`` -> (spectrograms ``[event, channel, freq, time]`` float32, frequencies ``[freq]``,
    times ``[time]`` relative to the event, GPS of the events kept ``[event]``).

    Events whose ``duration`` span is not valid in every channel are left out.
    """
    device = device or torch.device("cpu")
    x = torch.as_tensor(np.asarray(data, dtype=np.float64), device=device)
    half = config.duration / 2
    keep = [g for g in event_gps if all(covers(seg, g - half, g + half) for seg in segments)]
    guards = [(g - config.event_guard, g + config.event_guard) for g in event_gps]
    psds = [
        psd_of_segments(x[c], t0, sample_rate, subtract(segments[c], guards), config.fftlength, config.psd_seconds)
        for c in range(x.shape[0])
    ]
    if keep and any(p is None for p in psds):
        raise ValueError("too little event-free valid data in the window to estimate a PSD for every channel")
    offset = (config.duration - config.span) / 2
    transform = SingleQTransform(
        config.duration,
        sample_rate,
        config.q,
        config.frange,
        spectrogram_shape=(config.freq_rows, config.time_bins),
        outseg=(offset, offset + config.span),
    ).to(device, torch.float32)
    n = round(config.duration * sample_rate)
    out = np.zeros((len(keep), x.shape[0], config.freq_rows, config.time_bins), dtype=np.float32)
    if keep:
        psd = torch.stack(psds)[None]
        for b0 in range(0, len(keep), config.batch):
            starts = [round((g - half - t0) * sample_rate) for g in keep[b0 : b0 + config.batch]]
            segment = torch.stack([x[:, s : s + n] for s in starts])
            out[b0 : b0 + len(starts)] = transform(whiten(segment, sample_rate, psd=psd).float()).cpu().numpy()
    times = transform.times - half  # transform times count from the segment start
    return out, np.asarray(transform.output_frequencies), np.asarray(times), np.asarray(keep, dtype=np.float64)


def write_spectrograms(
    path: str | Path, spectrograms, frequencies, times, event_gps, event_snr, channels, config: SpectrogramConfig, attrs: dict
) -> None:
    """One window's spectrograms ``[event, channel, freq, time]`` (one event per chunk) with their axes (Hz; s from the event GPS), event
    GPS and SNR, channels, ``config`` and ``attrs``; atomic."""
    with write_artifact(path, SCHEMA, SCHEMA_VERSION) as f:
        f.attrs.update({"config": json.dumps(asdict(config)), **attrs})
        chunks = (1, *spectrograms.shape[1:]) if len(spectrograms) else None
        d = f.create_dataset("spectrograms", data=spectrograms, chunks=chunks)
        d.attrs["axes"] = json.dumps(["event", "channel", "frequency", "time"])
        d.attrs["units"] = "normalised energy (row median = 1)"
        f.create_dataset("frequencies", data=frequencies).attrs["units"] = "Hz"
        f.create_dataset("times", data=times).attrs["units"] = "s from event GPS"
        f.create_dataset("event_gps", data=event_gps)
        f.create_dataset("event_snr", data=event_snr)
        f.create_dataset("channels", data=np.array(channels, dtype=object), dtype=h5py.string_dtype())


@dataclass
class WindowSpectrograms:
    """One window's file read back: ``spectrograms`` ``[event, channel, freq, time]`` with its axes."""

    spectrograms: np.ndarray
    frequencies: np.ndarray  # [freq] Hz
    times: np.ndarray  # [time] s from the event GPS
    event_gps: np.ndarray  # [event]
    event_snr: np.ndarray  # [event]
    channels: list[str]  # strain first
    attrs: dict

    def data_version(self) -> str:
        """Changes exactly when the stored spectrograms, their axes or events do."""
        return ContentDigest(self.spectrograms, self.frequencies, self.times, self.event_gps, self.event_snr, self.channels).hexdigest()


def read_spectrograms(path: str | Path) -> WindowSpectrograms:
    """One window's spectrograms file read back whole: ``[event, channel, freq, time]`` with its axes, events and channels."""
    with open_artifact(path, SCHEMA, {SCHEMA_VERSION}) as f:
        return WindowSpectrograms(
            f["spectrograms"][()],
            f["frequencies"][()],
            f["times"][()],
            f["event_gps"][()],
            f["event_snr"][()],
            list(f["channels"].asstr()[()]),
            dict(f.attrs),
        )
