"""Injecting a synthetic glitch set into other frames: every GWF file under a directory is copied with the glitches
that fall in its span added to its strain channel (at the set's GPS times plus ``shift_s``), plus a catalogue.

The glitches are the set's ``amplitude * strain`` at the analysis rate, brought to the frame channel's own rate by
the ingest resampler; files whose names are not ``OBS-TAG-GPS-DUR.gwf`` are refused by the frame scanner.
"""

from pathlib import Path

import numpy as np
import pandas as pd

from glitchflow_assets.core.artifacts.glitch_waveforms import place, read_waveform_set
from glitchflow_assets.core.artifacts.storage import atomic_path
from glitchflow_assets.core.io import decoder
from glitchflow_assets.core.io.frames import ChannelData, scan_frame_dir
from glitchflow_assets.core.io.gwf_writer import write_gwf
from glitchflow_assets.core.signal.resample import resample

CATALOGUE = "injections.csv"


def inject(
    glitch_set: str | Path, frames_dir: str | Path, out_dir: str | Path, shift_s: float = 0.0, channel: str | None = None
) -> pd.DataFrame:
    """Write the injected copies of the frames under ``frames_dir`` to ``out_dir`` (same names) and
    ``out_dir/injections.csv``; returns the catalogue (one row per glitch injected into a file)."""
    waves = read_waveform_set(glitch_set)
    channel = channel or str(waves.attrs["strain_channel"])
    glitches, rate = waves.glitches(), waves.sample_rate
    keep = waves.amplitude > 0  # events where the twin predicts no glitch inject nothing
    frames, skipped = scan_frame_dir(Path(frames_dir))
    if not frames:
        reasons = "; ".join(f"{s.path}: {s.reason}" for s in skipped[:5])
        raise FileNotFoundError(f"{frames_dir}: no GWF frame files to inject into" + (f" ({reasons})" if reasons else ""))
    out, rows = Path(out_dir), []
    for frame, _ in frames:
        series = decoder.read_file(frame.path)  # in the decoder process: a damaged file cannot crash this one
        if channel not in series:
            raise KeyError(f"{frame.path}: channel {channel} not in the frame (has {', '.join(sorted(series))})")
        strain = series[channel]
        starts = waves.t0 + shift_s
        length = glitches.shape[1] / rate
        inside = keep & (starts + length > frame.gps_start) & (starts < frame.gps_end)
        if inside.any():
            native = resample(glitches[inside].ravel(), rate, strain.sample_rate).reshape(int(inside.sum()), -1)
            added = place(native, starts[inside], strain.sample_rate, strain.t0, len(strain.data))
            series[channel] = ChannelData(
                channel, strain.data + added.astype(strain.data.dtype), strain.t0, strain.sample_rate, strain.unit
            )
        write_gwf(out / frame.path.name, list(series.values()))
        for i in np.flatnonzero(inside):
            rows.append(
                {
                    "file": frame.path.name,
                    "event_gps": waves.gps[i],
                    "injected_gps": waves.gps[i] + shift_s,
                    "amplitude": waves.amplitude[i],
                    "window": waves.window[i],
                }
            )
    catalogue = pd.DataFrame(rows, columns=["file", "event_gps", "injected_gps", "amplitude", "window"])
    with atomic_path(out / CATALOGUE) as tmp:
        catalogue.to_csv(tmp, index=False)
    return catalogue
