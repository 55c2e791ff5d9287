"""HDF5 schema of ``raw_strain_segments``: one self-describing file per analysis window.

Layout (schema version 3)::

    /                  attrs: schema, schema_version, run, window, gps_start, gps_end, data_gps_start,
                              margin_s, in_run_duration, sample_rate, scan_rate, strain_channel, livetime,
                              gap_fraction, observing_s, observing_source, created_utc, software
                       (livetime: s of valid strain inside the run and the observing segments; observing_s: s of
                       the window inside the run that the observing segments cover, all of it for a run without
                       segments; gap_fraction: the part of observing_s without valid strain; observing_source: where
                       the segments come from, '' for none)
    /strain            float32 [time] at ``sample_rate`` from ``data_gps_start``: the window plus ``margin_s`` of its
                       neighbours' data each side, so that searches near the window's edges see across them;
                       samples outside the valid segments are 0
    /scan              float32 [aux channel, time] at ``scan_rate`` from ``data_gps_start``: every auxiliary channel,
                       anti-alias filtered to the rate ANNALISA's band needs (``AnnalisaConfig.scan_rate``), 0 outside
                       its valid segments. Later stages read the selected witnesses at ``sample_rate`` from the frames
                       (``core.ingest.window_channels``): no channel is copied whole at the analysis rate
    /channels/{name, unit, native_rate, present, nonfinite_count, first_nonfinite_gps,
               max_flat_seconds, first_flat_gps, rate_mismatch, absent_from}   one entry per channel, strain first
    /segments          float64 [n, 3]: (channel index, GPS start, GPS end) of valid data (margins included), on the
                       grid the file holds the channel at (strain: ``sample_rate``; the others: ``scan_rate``); for
                       a run with observing segments only data inside them are valid (the rest is 0, as a gap is)
    /observing         float64 [n, 2]: the run's observing segments over the span the file holds (only for a run
                       that defines them, ``core.runs.observing``; files without it: every second observing)
    /frames/{name, gps_start, duration, sha256, size_bytes, path}     files read (path: relative to the run's
                                                                      frame directory, absolute outside it)
    /skipped/{name, reason}                                           files not used, and why

Version 2 kept every channel at ``sample_rate`` in one ``/data`` array (2.3 bytes stored per byte of frames read at
106 channels); its files are not read: ``glitchflow materialize`` makes them again.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import h5py
import numpy as np

import glitchflow_assets
from glitchflow_assets.core.artifacts.storage import AtomicHDF5Writer, content_version, open_artifact
from glitchflow_assets.core.runs.windows import Window

SCHEMA = "glitchflow.raw_strain_segments"
SCHEMA_VERSION = 3
READABLE_VERSIONS = (3,)
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
    path: str  # relative to the run's frame directory (absolute for a file outside it)


@dataclass
class RawSegmentSummary:
    """Everything in a window file except the samples."""

    path: Path
    attrs: dict
    channels: list[ChannelStats]
    frames: list[FrameRecord]
    skipped: list[tuple[str, str]]
    observing: list[tuple[float, float]] | None = None  # the run's observing segments over the file's span; None: none defined

    @property
    def strain(self) -> ChannelStats:
        return self.channels[0]

    @property
    def sample_rate(self) -> float:
        """The analysis rate (Hz): the strain's in the file, the witnesses' as later stages read them."""
        return float(self.attrs["sample_rate"])

    @property
    def scan_rate(self) -> float:
        """The rate (Hz) the file holds the auxiliary channels at."""
        return float(self.attrs["scan_rate"])

    @property
    def window_span(self) -> tuple[float, float]:
        return float(self.attrs["gps_start"]), float(self.attrs["gps_end"])

    @property
    def outside_observing(self) -> bool:
        """Whether the window's part inside the run lies outside every observing segment (nothing in it to analyse)."""
        return float(self.attrs.get("observing_s", 1.0)) == 0.0

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
        """Changes exactly when the frames the window was made from change, or its observing segments do."""
        observing = [] if self.observing is None else [json.dumps(self.observing)]
        return content_version([f.sha256 for f in self.frames] + observing)


def window_data_span(window: Window) -> tuple[int, int]:
    """The GPS span a window's file holds: the window and ``MARGIN_S`` either side."""
    return window.gps_start - MARGIN_S, window.gps_end + MARGIN_S


def window_read_span(window: Window) -> tuple[float, float]:
    """The GPS span of frames a window's file is made from: its data span and ``PAD_S`` more either side, so
    that the resampling filter has no edge inside the data."""
    start, end = window_data_span(window)
    return start - PAD_S, end + PAD_S


def next_window_read_start(window: Window) -> float:
    """Where the read span of the window after ``window`` begins: frames from there on are read again for it."""
    return window.gps_end - MARGIN_S - PAD_S


def _column(group: h5py.Group, name: str, values: list, dtype=None) -> None:
    group.create_dataset(name, data=np.asarray(values, dtype=dtype) if dtype is not _STR else np.array(values, dtype=object), dtype=dtype)


class RawSegmentWriter(AtomicHDF5Writer):
    """Write a window file channel by channel (bounded memory); :meth:`finish` publishes it atomically."""

    def __init__(self, path: Path, strain_samples: int, n_aux: int, scan_samples: int):
        super().__init__(path, SCHEMA, SCHEMA_VERSION)
        self.strain = self.file.create_dataset("strain", (strain_samples,), dtype="f4")
        chunk = (1, min(scan_samples, 1 << 16)) if scan_samples and n_aux else None  # a channel's row reads on its own
        self.scan = self.file.create_dataset("scan", (n_aux, scan_samples), dtype="f4", chunks=chunk)

    def write_channel(self, index: int, samples: np.ndarray) -> None:
        """Channel ``index`` of the file's channel list: 0 the strain ``[time]`` at the analysis rate, the others
        ``[time]`` at the scan rate."""
        self.reserve(samples.size * 4)
        if index == 0:
            self.strain[:] = samples
        else:
            self.scan[index - 1, :] = samples

    def finish(
        self,
        attrs: dict,
        channels: list[ChannelStats],
        frames: list[FrameRecord],
        skipped: list[tuple[str, str]],
        observing: list[tuple[float, float]] | None = None,
    ) -> None:
        f = self.file
        f.attrs.update(
            {
                "software": f"glitchflow {glitchflow_assets.__version__}",
                "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        )
        f.attrs.update(attrs)
        t0 = attrs["data_gps_start"]
        self.strain.attrs.update({"axes": json.dumps(["time"]), "t0": t0, "dt": 1.0 / attrs["sample_rate"]})
        self.scan.attrs.update({"axes": json.dumps(["channel", "time"]), "t0": t0, "dt": 1.0 / attrs["scan_rate"]})
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
        if observing is not None:
            f.create_dataset("observing", data=np.asarray(observing, dtype="f8").reshape(-1, 2))
        g = f.create_group("frames")
        _column(g, "name", [r.name for r in frames], _STR)
        _column(g, "sha256", [r.sha256 for r in frames], _STR)
        _column(g, "gps_start", [r.gps_start for r in frames], "i8")
        _column(g, "duration", [r.duration for r in frames], "i8")
        _column(g, "size_bytes", [r.size_bytes for r in frames], "i8")
        _column(g, "path", [r.path for r in frames], _STR)
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
            FrameRecord(n, int(s), int(d), h, int(b), p)
            for n, s, d, h, b, p in zip(
                _strings(g["name"]),
                g["gps_start"][()],
                g["duration"][()],
                _strings(g["sha256"]),
                g["size_bytes"][()],
                _strings(g["path"]),
                strict=True,
            )
        ]
        skipped = list(zip(_strings(f["skipped/name"]), _strings(f["skipped/reason"]), strict=True))
        observing = [(float(s), float(e)) for s, e in f["observing"][()]] if "observing" in f else None
    return RawSegmentSummary(path, attrs, channels, frames, skipped, observing)


def read_strain(path: str | Path, gps_start: float | None = None, gps_end: float | None = None) -> tuple[np.ndarray, float]:
    """The strain ``[time]`` (float32, at the analysis rate) over [gps_start, gps_end) (default: all the file holds),
    and the GPS time of its first sample."""
    with open_artifact(path, SCHEMA, READABLE_VERSIONS) as f:
        rate, t0 = float(f.attrs["sample_rate"]), float(f.attrs["data_gps_start"])
        i0 = 0 if gps_start is None else max(0, round((gps_start - t0) * rate))
        i1 = f["strain"].shape[0] if gps_end is None else round((gps_end - t0) * rate)
        return f["strain"][i0:i1], t0 + i0 / rate


def read_scan(path: str | Path, rows: slice = slice(None)) -> tuple[np.ndarray, list[str], float]:
    """Auxiliary channels ``[channel, time]`` (float32, at the scan rate, over the whole span the file holds): ``rows``
    of them (all by default), their names, and the GPS time of the first sample."""
    with open_artifact(path, SCHEMA, READABLE_VERSIONS) as f:
        return f["scan"][rows], _strings(f["channels/name"])[1:][rows], float(f.attrs["data_gps_start"])


SCAN_BLOCK_BYTES = 64 * 2**20  # auxiliary samples a scan holds in memory at once (float64), whatever the number of channels


@dataclass(frozen=True)
class ScanBlock:
    """A block of a window file's auxiliary channels, at the scan rate over the whole span the file holds."""

    names: list[str]
    data: np.ndarray  # [channel, time] float32
    t0: float
    sample_rate: float
    segments: list[list[tuple[float, float]]]  # [channel] valid GPS spans
    native_rates: list[float]  # [channel] Hz, NaN where the frames lack the channel


def scan_blocks(summary: RawSegmentSummary, max_bytes: int = SCAN_BLOCK_BYTES) -> Iterator[ScanBlock]:
    """The auxiliary channels of the file ``summary`` describes, in blocks of at most ``max_bytes`` of float64 samples
    (a block's working copy) and at least one channel: peak memory stays flat from ten channels to thousands."""
    aux = summary.channels[1:]
    with open_artifact(summary.path, SCHEMA, READABLE_VERSIONS) as f:
        scan, t0 = f["scan"], float(f.attrs["data_gps_start"])
        per_block = max(1, max_bytes // max(scan.shape[1] * 8, 1))
        for b0 in range(0, len(aux), per_block):
            block = aux[b0 : b0 + per_block]
            yield ScanBlock(
                [c.name for c in block],
                scan[b0 : b0 + len(block)],
                t0,
                summary.scan_rate,
                [c.segments for c in block],
                [c.native_rate for c in block],
            )
