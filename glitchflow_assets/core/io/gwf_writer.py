"""Writing GWF frames through gwpy (LALFrame underneath), atomically: simulated runs, synthetic-glitch and
cleaned-strain frames, injections. Files are named ``OBS-TAG-GPS-DUR.gwf`` as the frame readers expect; each channel
is a :class:`~glitchflow_assets.core.io.frames.ChannelData`, what :mod:`.decoder` reads back."""

from pathlib import Path

from glitchflow_assets.core.artifacts.storage import atomic_path
from glitchflow_assets.core.io.frames import ChannelData, check_gwf_framing


def frame_file_name(observatory: str, tag: str, gps: int, duration: int) -> str:
    """``OBS-TAG-GPS-DUR.gwf``: the name frame discovery (:func:`~glitchflow_assets.core.io.frames.parse_frame_name`) reads back."""
    return f"{observatory}-{tag}-{gps}-{duration}.gwf"


def write_gwf(path: str | Path, series: list[ChannelData]) -> Path:
    """Write ``series`` into one GWF file at ``path`` (temporary name, then renamed: never half a frame)."""
    from gwpy.timeseries import TimeSeries, TimeSeriesDict

    frames = TimeSeriesDict()
    for s in series:
        frames[s.name] = TimeSeries(s.data, t0=s.t0, sample_rate=s.sample_rate, name=s.name, channel=s.name, unit=s.unit)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        frames.write(str(tmp), format="gwf")
        check_gwf_framing(tmp)  # LALFrame may not notice a short write (a full disk): never publish half a frame
    return path
