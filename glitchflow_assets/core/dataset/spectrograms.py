"""Whitened Q-transform spectrograms of the strain and the selected witnesses around each glitch event.

Per event: ``duration`` s of every channel centred on the event GPS, whitened in float64 against a median PSD
of the same window's valid data *away from events* (so a glitch never whitens itself), Q-transformed (Q=12,
8-500 Hz, 64 log rows) and interpolated to ``time_bins`` bins over the central ``span`` s. Stored in float32
HDF5 with true axes (:mod:`glitchflow_assets.core.artifacts.spectrograms`): frequency in Hz, time in s relative to
the event GPS.
"""

from dataclasses import dataclass

import numpy as np
import torch

from glitchflow_assets.core.runs.segments import Segments, covers, subtract
from glitchflow_assets.core.signal.dsp import SingleQTransform, psd_of_segments, whiten
from glitchflow_assets.core.types import ChannelSeries, Spectrograms


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
