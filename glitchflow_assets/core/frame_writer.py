"""Writing GWF frames through gwpy (LALFrame underneath), atomically: simulated runs, synthetic-glitch and
cleaned-strain frames, injections. Files are named ``OBS-TAG-GPS-DUR.gwf`` as the frame readers expect."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from glitchflow_assets.core.frames import check_gwf_framing
from glitchflow_assets.core.storage import atomic_path


@dataclass(frozen=True)
class Series:
    """One channel of a frame: ``data[time]`` from GPS ``t0`` at ``sample_rate``."""

    channel: str
    data: np.ndarray
    t0: float
    sample_rate: float
    unit: str = ""


def frame_file_name(observatory: str, tag: str, gps: int, duration: int) -> str:
    return f"{observatory}-{tag}-{gps}-{duration}.gwf"


def write_gwf(path: str | Path, series: list[Series]) -> Path:
    """Write ``series`` into one GWF file at ``path`` (temporary name, then renamed: never half a frame)."""
    from gwpy.timeseries import TimeSeries, TimeSeriesDict

    frames = TimeSeriesDict()
    for s in series:
        frames[s.channel] = TimeSeries(s.data, t0=s.t0, sample_rate=s.sample_rate, name=s.channel, channel=s.channel, unit=s.unit)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        frames.write(str(tmp), format="gwf")
        check_gwf_framing(tmp)  # LALFrame may not notice a short write (a full disk): never publish half a frame
    return path


def read_gwf(path: str | Path, channels: list[str] | None = None) -> dict[str, Series]:
    """Every channel of a GWF file (or the named ones) as :class:`Series`, read through gwpy; a truncated file raises
    :class:`~glitchflow_assets.core.frames.FrameError` naming it."""
    from gwpy.io.gwf import iter_channel_names
    from gwpy.timeseries import TimeSeriesDict

    check_gwf_framing(Path(path))  # LALFrame crashes the process on a truncated file: refuse it first
    names = list(channels) if channels is not None else list(iter_channel_names(str(path)))
    frames = TimeSeriesDict.read(str(path), names, format="gwf")
    return {
        n: Series(n, np.asarray(ts.value), float(ts.t0.value), float(ts.sample_rate.value), str(ts.unit) if ts.unit else "")
        for n, ts in frames.items()
    }
