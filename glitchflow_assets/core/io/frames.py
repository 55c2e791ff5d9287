"""Frame-file discovery (``OBS-TAG-GPSSTART-DURATION.ext``) and decoding (frameCPP through gwframe; GWOSC HDF5 through gwpy).

Real archives nest files in directories (``.../1256/V-V1Online-1256655618-100.gwf``), so discovery is
recursive. A file whose name does not parse, or that escapes the source directory through a link, is
skipped with a reason rather than read: names become GPS spans and paths, so they are validated first.
"""

import logging
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

# ASCII only: \d would accept other scripts' digits ("١٤٠٠...") as GPS times
_NAME_RE = re.compile(
    r"^(?P<obs>[A-Z][A-Z0-9]{0,7})-(?P<tag>[A-Za-z0-9_]{1,64})-(?P<gps>[0-9]{9,10})-(?P<dur>[0-9]{1,7})\.(?P<ext>gwf|hdf5)$"
)


class FrameError(RuntimeError):
    """A frame file cannot be used; the message names the file (and channel / GPS where relevant)."""


@dataclass(frozen=True)
class FrameFile:
    """A data file and the GPS span its name declares."""

    path: Path
    observatory: str
    tag: str
    gps_start: int
    duration: int

    @property
    def gps_end(self) -> int:
        return self.gps_start + self.duration

    @property
    def name(self) -> str:
        return self.path.name


def parse_frame_name(path: str | Path) -> FrameFile:
    """Parse ``OBS-TAG-GPS-DUR.ext``; raise ``ValueError`` (naming the file) for anything else."""
    path = Path(path)
    m = _NAME_RE.fullmatch(path.name)
    if not m:
        raise ValueError(f"{path.name!r} is not a frame file name of the form OBS-TAG-GPSSTART-DURATION.gwf|hdf5")
    duration = int(m.group("dur"))
    if duration <= 0:
        raise ValueError(f"{path.name!r}: zero duration")
    return FrameFile(path, m.group("obs"), m.group("tag"), int(m.group("gps")), duration)


@dataclass(frozen=True)
class Skipped:
    path: Path
    reason: str


def scan_frame_dir(root: Path, extension: str = ".gwf") -> tuple[list[tuple[FrameFile, os.stat_result]], list[Skipped]]:
    """All frame files below ``root`` with their ``stat`` (size, mtime), and the files skipped (with why).

    Empty files are skipped: a file being written, or junk, must not hide data a real file holds.

    Uses ``os.scandir`` (one ``stat`` per entry, cached by the OS) so that 10^4 files scan in well
    under a second; sorted by GPS start then name.
    """
    root = Path(root)
    found: list[tuple[FrameFile, os.stat_result]] = []
    skipped: list[Skipped] = []
    if not root.is_dir():
        return found, skipped
    real_root = root.resolve()
    stack = [root]
    while stack:
        directory = stack.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                path = Path(entry.path)
                if entry.is_dir(follow_symlinks=False):
                    stack.append(path)
                    continue
                if not entry.name.endswith(extension) or entry.name.startswith("."):
                    continue  # other files (truth tables, temporaries being written) are not frames
                if reason := _not_a_frame_file(entry, path, real_root):
                    skipped.append(Skipped(path, reason))
                    continue
                try:
                    frame, stat = parse_frame_name(path), entry.stat()
                except (ValueError, OSError) as exc:
                    skipped.append(Skipped(path, str(exc)))
                    continue
                if stat.st_size == 0:
                    skipped.append(Skipped(path, "empty file (0 bytes): still being written, or junk"))
                else:
                    found.append((frame, stat))
    found.sort(key=lambda item: (item[0].gps_start, item[0].name))
    return found, skipped


def _not_a_frame_file(entry: os.DirEntry, path: Path, real_root: Path) -> str:
    """Why a directory entry named like a frame cannot be one (never opening it: a FIFO would block), or ''."""
    if entry.is_symlink():
        try:
            target = path.resolve(strict=True)
        except (OSError, RuntimeError) as exc:  # a loop raises RuntimeError, a dangling link FileNotFoundError
            return f"symbolic link that does not resolve to a file ({exc.__class__.__name__}: {exc})"
        if not target.is_relative_to(real_root):
            return "symbolic link pointing outside the frame directory"
    try:
        if not entry.is_file():  # follows a (checked) link; False for directories, FIFOs, sockets, devices
            return "not a regular file (directory, FIFO, socket or device named like a frame)"
    except OSError as exc:
        return f"cannot stat: {exc}"
    return ""


def frames_overlapping(frames: list[FrameFile], gps_start: float, gps_end: float) -> list[FrameFile]:
    """The frames whose GPS span intersects [gps_start, gps_end), in their given order."""
    return [f for f in frames if f.gps_start < gps_end and f.gps_end > gps_start]


@dataclass
class ChannelData:
    """One channel's samples from one file: ``data[time]`` starting at GPS ``t0``."""

    name: str
    data: np.ndarray
    t0: float
    sample_rate: float
    unit: str


def check_gwf_framing(path: Path) -> None:
    """Reject a GWF file whose framing is broken *before* LALFrame sees it.

    LALFrame trusts the end-of-file record to find the table of contents and crashes the process
    (segmentation fault) on a truncated file. A version-8 file starts with ``IGWD`` + NUL and ends with
    FrEndOfFile, whose ``nBytes`` (8 bytes at -28) is the file's own length and ``seekTOC`` (at -20)
    points inside it; a truncated or overwritten file fails one of these checks.
    """
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(40)
        if size < 68 or head[:5] != b"IGWD\0":
            raise FrameError(f"{path}: not a GWF file (no IGWD header)")
        if head[5] != 8:
            return  # older frame versions: header checked, end record layout differs
        order = "<" if head[12:14] == b"\x34\x12" else ">"
        fh.seek(size - 28)
        n_bytes, seek_toc = struct.unpack(order + "QQ", fh.read(16))
    if n_bytes not in (0, size) or not 0 < seek_toc < size:
        raise FrameError(f"{path}: truncated or damaged GWF file ({size} bytes on disk, its end record says {n_bytes})")


def decode_channels(path: Path, channels: list[str], kind: str, gps_start: float, gps_end: float) -> dict[str, ChannelData]:
    """Read ``channels`` over [gps_start, gps_end) ∩ the file's declared span, in this process.

    Callers go through :func:`decoder.read`, which runs this in a child process (a damaged file can
    crash a decoder). GWF is decoded by frameCPP through ``gwframe`` (the same samples as LALFrame, bit for bit,
    about 6x faster; ``test_ingest`` compares them on simulated and real frames), which verifies each vector's
    checksum as it decodes it; units are the frame's own strings. ``kind='gwosc-hdf5'`` reads a GWOSC strain file
    through gwpy; its single series is named ``channels[0]``. Raises :class:`FrameError` naming the file for a
    corrupt/truncated file, a damaged or missing channel, a span mismatch or missing samples.
    """
    frame = parse_frame_name(path)
    start, end = max(gps_start, frame.gps_start), min(gps_end, frame.gps_end)
    read = _read_gwosc if kind == "gwosc-hdf5" else _read_gwf
    together = _read_gwf_together(frame.path, channels, start, end) if kind == "gwf" and len(channels) > 1 else {}
    out = {}
    for name in channels:
        try:
            data, t0, rate, unit = together[name] if name in together else read(frame.path, name, start, end)
        except Exception as exc:  # gwframe/frameCPP/h5py raise many types for damaged files
            if "CHECKSUM" in str(exc).upper():
                raise FrameError(f"{frame.path}: checksum error in channel {name}: the file is damaged ({exc})") from exc
            raise FrameError(f"{frame.path}: cannot read channel {name} over GPS [{start}, {end}): {exc}") from exc
        if data.size == 0:
            raise FrameError(f"{frame.path}: channel {name} has no samples in GPS [{start}, {end})")
        if abs(t0 - start) * rate > 0.5:
            raise FrameError(f"{frame.path}: channel {name} starts at GPS {t0}, not {start} as its name declares")
        if abs(data.size - (end - start) * rate) >= 1:
            held = data.size / rate
            raise FrameError(f"{frame.path}: channel {name} holds {held:g} s from GPS {t0}, not the {end - start:g} s its name declares")
        out[name] = ChannelData(name, data, t0, rate, unit)
    return out


def _read_gwf(path: Path, channel: str, start: float, end: float) -> tuple[np.ndarray, float, float, str]:
    """One channel's samples ``[time]``, GPS start, rate and unit; raises what frameCPP says of a channel it cannot decode."""
    import gwframe

    return _samples(gwframe.read(str(path), channel, start=start, end=end))


def _samples(series) -> tuple[np.ndarray, float, float, str]:
    """A gwframe series as (samples ``[time]``, GPS start, rate, unit)."""
    return np.asarray(series.array), float(series.start), float(series.sample_rate), series.unit


def _read_gwf_together(path: Path, channels: list[str], start: float, end: float) -> dict[str, tuple[np.ndarray, float, float, str]]:
    """The channels gwframe's multi-channel read decodes (the file opened and its table of contents read once, ~7 % of
    the decoding at a hundred channels). It leaves out a channel it cannot decode instead of raising, so the caller
    reads those alone (:func:`_read_gwf`), which names the problem; a whole-read failure leaves them all to it."""
    import gwframe

    try:
        series = gwframe.read(str(path), channels, start=start, end=end)
    except Exception:  # noqa: BLE001 - each channel is then read alone, and its own read says what is wrong
        return {}
    return {name: _samples(s) for name, s in series.items()}


GWOSC_DQ_CHANNEL = "GWOSC-DQMASK"  # ``<IFO>:GWOSC-DQMASK``: a GWOSC file's data-quality bitmask (1 Hz), as a channel


def gwosc_dq_channel(strain_channel: str) -> str:
    """The name a GWOSC file's data-quality mask goes by for a run whose strain is ``strain_channel`` (``H1:...``)."""
    return f"{strain_channel.partition(':')[0]}:{GWOSC_DQ_CHANNEL}"


def gwosc_bit_names(path: Path) -> tuple[str, ...]:
    """The names of a GWOSC file's data-quality bits, bit 0 first (``DATA``, ``CBC_CAT1``, ...; none if it has no mask)."""
    import h5py

    with h5py.File(path, "r") as f:
        names = f.get("quality/simple/DQShortnames")
        return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names[()]) if names is not None else ()


def _read_gwosc(path: Path, channel: str, start: float, end: float) -> tuple[np.ndarray, float, float, str]:
    """The strain of a GWOSC file (whatever ``channel`` the run calls it), or its data-quality mask (``<IFO>:GWOSC-DQMASK``)."""
    from gwpy.timeseries import StateVector, TimeSeries

    dq = channel.endswith(":" + GWOSC_DQ_CHANNEL)
    series = (StateVector if dq else TimeSeries).read(str(path), format="hdf5.gwosc", start=start, end=end)
    return np.asarray(series.value), float(series.t0.value), float(series.sample_rate.value), "" if dq else str(series.unit or "")
