"""HDF5 schema of ``raw_strain_segments``: one self-describing file per analysis window.

Layout (schema version 2)::

    /                  attrs: schema, schema_version, run, window, gps_start, gps_end, data_gps_start,
                              margin_s, in_run_duration, sample_rate, strain_channel, livetime,
                              gap_fraction, created_utc, software
    /data              float32 [channel, time] at ``sample_rate`` from ``data_gps_start``: the window plus
                       ``margin_s`` of its neighbours' data each side, so that searches near the window's
                       edges see across them (strain is row 0); samples outside the valid segments are 0
    /channels/{name, unit, native_rate, present, nonfinite_count, first_nonfinite_gps,
               max_flat_seconds, first_flat_gps, rate_mismatch, absent_from}   one entry per channel
                       (absent_from: added within version 2; read as "" from files written before it)
    /segments          float64 [n, 3]: (channel index, GPS start, GPS end) of valid data (margins included)
    /frames/{name, gps_start, duration, sha256, size_bytes}           files read
    /skipped/{name, reason}                                           files not used, and why
"""

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import h5py
import numpy as np

import glitchflow_assets
from glitchflow_assets.core.artifacts.storage import AtomicHDF5Writer, content_version, open_artifact
from glitchflow_assets.core.runs.windows import Window
from glitchflow_assets.core.types import ChannelSeries

SCHEMA = "glitchflow.raw_strain_segments"
SCHEMA_VERSION = 2  # 2: data carry MARGIN_S beyond each window edge; 1 (window only) is still read
READABLE_VERSIONS = (1, 2)
MARGIN_S = 8  # s of neighbouring data kept each side of the window
PAD_S = 1.0  # s read beyond the margins and filtered away
_STR = h5py.string_dtype()


@dataclass
class ChannelStats:
    """What ingest learned about one channel of one window (feeds the data-quality checks)."""

    name: str
    unit: str = ""
    native_rate: float = float("nan")
    present: bool = False
    nonfinite_count: int = 0
    first_nonfinite_gps: float = float("nan")
    max_flat_seconds: float = 0.0
    first_flat_gps: float = float("nan")
    rate_mismatch: str = ""  # which data were left out for their native rate, and why; empty when none
    absent_from: str = ""  # the window's frame files that lack the channel, empty when every file holds it
    segments: list[tuple[float, float]] = field(default_factory=list)


@dataclass(frozen=True)
class FrameRecord:
    name: str
    gps_start: int
    duration: int
    sha256: str
    size_bytes: int


@dataclass
class RawSegmentSummary:
    """Everything in a window file except the samples."""

    path: Path
    attrs: dict
    channels: list[ChannelStats]
    frames: list[FrameRecord]
    skipped: list[tuple[str, str]]

    @property
    def strain(self) -> ChannelStats:
        return self.channels[0]

    @property
    def sample_rate(self) -> float:
        """The analysis rate (Hz) every channel of the file is at."""
        return float(self.attrs["sample_rate"])

    @property
    def window_span(self) -> tuple[float, float]:
        return float(self.attrs["gps_start"]), float(self.attrs["gps_end"])

    def segments_of(self, channel: str) -> list[tuple[float, float]]:
        """Valid GPS spans of ``channel``; none for a channel this window's file does not hold."""
        return next((c.segments for c in self.channels if c.name == channel), [])

    def unusable(self, channels: list[str], rates: dict[str, float]) -> dict[str, str]:
        """Why each of ``channels`` cannot serve from this window: not in its frames, or held at a native rate other than
        ``rates`` names (the rate a stage was built on: mixing rates would mix bandwidths). Channels not named are fine."""
        stats = {c.name: c for c in self.channels}
        why = {}
        for name in channels:
            held = stats.get(name)
            if held is None or not held.present:
                why[name] = f"{name} is not in the frames of window {self.attrs['window']}"
            elif rates.get(name, held.native_rate) != held.native_rate:
                why[name] = f"{name} is at {held.native_rate:g} Hz in window {self.attrs['window']}, not {rates[name]:g} Hz"
        return why

    def data_version(self) -> str:
        """Changes exactly when the frames the window was made from change."""
        return content_version([f.sha256 for f in self.frames])


def window_data_span(window: Window) -> tuple[int, int]:
    """The GPS span a window's file holds: the window and ``MARGIN_S`` either side."""
    return window.gps_start - MARGIN_S, window.gps_end + MARGIN_S


def window_read_span(window: Window) -> tuple[float, float]:
    """The GPS span of frames a window's file is made from: its data span and ``PAD_S`` more either side, so
    that the resampling filter has no edge inside the data."""
    start, end = window_data_span(window)
    return start - PAD_S, end + PAD_S


def _column(group: h5py.Group, name: str, values: list, dtype=None) -> None:
    group.create_dataset(name, data=np.asarray(values, dtype=dtype) if dtype is not _STR else np.array(values, dtype=object), dtype=dtype)


class RawSegmentWriter(AtomicHDF5Writer):
    """Write a window file channel by channel (bounded memory); :meth:`finish` publishes it atomically."""

    def __init__(self, path: Path, n_channels: int, n_samples: int):
        super().__init__(path, SCHEMA, SCHEMA_VERSION)
        chunk = (1, min(n_samples, 1 << 16)) if n_samples else None
        self.data = self.file.create_dataset("data", (n_channels, n_samples), dtype="f4", chunks=chunk)

    def write_channel(self, index: int, samples: np.ndarray) -> None:
        self.reserve(self.data.shape[1] * self.data.dtype.itemsize)
        self.data[index, :] = samples

    def finish(self, attrs: dict, channels: list[ChannelStats], frames: list[FrameRecord], skipped: list[tuple[str, str]]) -> None:
        f = self.file
        f.attrs.update(
            {
                "software": f"glitchflow {glitchflow_assets.__version__}",
                "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        )
        f.attrs.update(attrs)
        self.data.attrs.update({"axes": json.dumps(["channel", "time"]), "t0": attrs["gps_start"], "dt": 1.0 / attrs["sample_rate"]})
        g = f.create_group("channels")
        _column(g, "name", [c.name for c in channels], _STR)
        _column(g, "unit", [c.unit for c in channels], _STR)
        _column(g, "rate_mismatch", [c.rate_mismatch for c in channels], _STR)
        _column(g, "absent_from", [c.absent_from for c in channels], _STR)
        for key in ("native_rate", "first_nonfinite_gps", "max_flat_seconds", "first_flat_gps"):
            _column(g, key, [getattr(c, key) for c in channels], "f8")
        _column(g, "present", [c.present for c in channels], "?")
        _column(g, "nonfinite_count", [c.nonfinite_count for c in channels], "i8")
        rows = [(i, s, e) for i, c in enumerate(channels) for s, e in c.segments]
        f.create_dataset("segments", data=np.asarray(rows, dtype="f8").reshape(-1, 3))
        g = f.create_group("frames")
        _column(g, "name", [r.name for r in frames], _STR)
        _column(g, "sha256", [r.sha256 for r in frames], _STR)
        _column(g, "gps_start", [r.gps_start for r in frames], "i8")
        _column(g, "duration", [r.duration for r in frames], "i8")
        _column(g, "size_bytes", [r.size_bytes for r in frames], "i8")
        g = f.create_group("skipped")
        _column(g, "name", [s[0] for s in skipped], _STR)
        _column(g, "reason", [s[1] for s in skipped], _STR)
        self.publish()


def _strings(ds: h5py.Dataset) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in ds[()]]


def read_summary(path: str | Path) -> RawSegmentSummary:
    """Everything in a window file but its samples: per-channel statistics and valid segments, frames read and skipped, attributes."""
    path = Path(path)
    with open_artifact(path, SCHEMA, READABLE_VERSIONS) as f:
        attrs = dict(f.attrs)
        g = f["channels"]
        names = _strings(g["name"])
        channels = [
            ChannelStats(
                name=n,
                unit=u,
                native_rate=float(r),
                present=bool(p),
                nonfinite_count=int(nf),
                first_nonfinite_gps=float(fn),
                max_flat_seconds=float(mf),
                first_flat_gps=float(ff),
                rate_mismatch=rm,
                absent_from=af,
            )
            for n, u, r, p, nf, fn, mf, ff, rm, af in zip(
                names,
                _strings(g["unit"]),
                g["native_rate"][()],
                g["present"][()],
                g["nonfinite_count"][()],
                g["first_nonfinite_gps"][()],
                g["max_flat_seconds"][()],
                g["first_flat_gps"][()],
                _strings(g["rate_mismatch"]),
                _strings(g["absent_from"]) if "absent_from" in g else [""] * len(names),
                strict=True,
            )
        ]
        for i, start, end in f["segments"][()]:
            channels[int(i)].segments.append((float(start), float(end)))
        g = f["frames"]
        frames = [
            FrameRecord(n, int(s), int(d), h, int(b))
            for n, s, d, h, b in zip(
                _strings(g["name"]), g["gps_start"][()], g["duration"][()], _strings(g["sha256"]), g["size_bytes"][()], strict=True
            )
        ]
        skipped = list(zip(_strings(f["skipped/name"]), _strings(f["skipped/reason"]), strict=True))
    return RawSegmentSummary(path, attrs, channels, frames, skipped)


def read_data(
    path: str | Path, channels: list[str] | None = None, gps_start: float | None = None, gps_end: float | None = None
) -> tuple[ChannelSeries, list[str], float]:
    """Samples ``[channel, time]`` (float32) of the named channels over [gps_start, gps_end), their names, and t0.

    A named channel the window's file does not hold (a channel missing from this window's frames) reads as zeros:
    it has no valid segment either (:meth:`RawSegmentSummary.segments_of`), so no stage takes those zeros for data."""
    with open_artifact(path, SCHEMA, READABLE_VERSIONS) as f:
        names = _strings(f["channels/name"])
        rate, t0 = float(f.attrs["sample_rate"]), float(f.attrs.get("data_gps_start", f.attrs["gps_start"]))
        channels = names if channels is None else channels
        i0 = 0 if gps_start is None else max(0, round((gps_start - t0) * rate))
        i1 = f["data"].shape[1] if gps_end is None else round((gps_end - t0) * rate)
        data = np.zeros((len(channels), i1 - i0), "f4")
        for row, name in enumerate(channels):
            if name in names:
                data[row] = f["data"][names.index(name), i0:i1]
    return data, list(channels), t0 + i0 / rate
