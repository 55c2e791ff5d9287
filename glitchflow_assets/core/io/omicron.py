"""Omicron trigger files: read (HDF5, ROOT, LIGO_LW XML) into the trigger-list layout, and our events written in Omicron's.

Omicron's HDF5 file holds one table ``triggers`` with the columns :data:`OMICRON_COLUMNS` (what hveto's and gwtrigfind's
``omicron`` readers ask gwpy for: ``EventTable.read(f, format="hdf5", path="triggers")``); its ROOT file (O1-O3
archives) a tree ``triggers`` with the same branches, read through gwpy with ``uproot``; its XML file a LIGO_LW
``sngl_burst`` table. Files are named the LIGO way, ``IFO-CHANNEL_OMICRON-GPS-DUR.h5`` (T050017), so that
gwpy's and hveto's file caches can sieve them by time, in the archive's folders (T1300468) where gwtrigfind finds
them.
"""

import math
from pathlib import Path

import numpy as np
import pandas as pd
from gwpy.table import EventTable

from glitchflow_assets.core.artifacts.storage import atomic_path
from glitchflow_assets.core.io.triggers import LISTED_COLUMNS, TriggerListError, checked, require_columns

OMICRON_COLUMNS = ["time", "frequency", "snr", "tstart", "tend", "fstart", "fend", "q", "amplitude", "phase"]
HDF5_PATH = "triggers"
ROOT_TREE = "triggers"
_XML_REQUIRED = ["peak_time", "peak_time_ns", "start_time", "start_time_ns", "duration", "peak_frequency", "flow", "fhigh", "snr"]


def omicron_name(channel: str, gps_start: int, duration: int, extension: str = "h5") -> str:
    """``V1-Hrec_hoft_16384Hz_OMICRON-GPS-DUR.h5`` for channel ``V1:Hrec_hoft_16384Hz`` (T050017, gwtrigfind's naming)."""
    ifo, name = channel.split(":", 1)
    return f"{ifo}-{name.replace('-', '_')}_OMICRON-{gps_start}-{duration}.{extension}"


def omicron_path(root: str | Path, channel: str, gps_start: int, duration: int, extension: str = "h5") -> Path:
    """Where Omicron's archive keeps the file of ``channel`` from ``gps_start`` (T1300468, the layout gwtrigfind
    searches): ``root/V1/Hrec_hoft_16384Hz_OMICRON/14000/V1-Hrec_hoft_16384Hz_OMICRON-1400000000-300.h5`` (the
    directory of the GPS time's first five digits)."""
    name = omicron_name(channel, gps_start, duration, extension)
    ifo, tag = name.split("-", 2)[:2]
    return Path(root) / ifo / tag / str(gps_start)[:5] / name


def to_omicron(events: pd.DataFrame) -> EventTable:
    """Our events (EVENT_COLUMNS) in Omicron's columns. The search estimates neither a tile's amplitude nor its phase:
    those columns are NaN (hveto, gwpy and gwtrigfind read time, frequency and SNR)."""
    nan = np.full(len(events), np.nan)
    columns = [events.gps, events.frequency, events.snr, events.start, events.end, events.fmin, events.fmax, events.q, nan, nan]
    return EventTable([np.asarray(c, dtype=np.float64) for c in columns], names=OMICRON_COLUMNS)


def write_omicron_hdf5(path: str | Path, events: pd.DataFrame) -> None:
    """``events`` as an Omicron HDF5 trigger file at ``path``, atomically."""
    with atomic_path(path) as tmp:
        to_omicron(events).write(tmp, format="hdf5", path=HDF5_PATH, overwrite=True)


def write_omicron_root(path: str | Path, events: pd.DataFrame) -> None:
    """``events`` as an Omicron ROOT trigger file (tree ``triggers``) at ``path``, atomically."""
    with atomic_path(path) as tmp:
        to_omicron(events).write(tmp, format="root", treename=ROOT_TREE, overwrite=True)


def write_omicron_xml(path: str | Path, events: pd.DataFrame, channel: str) -> None:
    """``events`` as a LIGO_LW ``sngl_burst`` table at ``path`` (Omicron's XML output; GPS split into seconds and ns)."""

    def split(gps: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        ns = np.round(gps.to_numpy(dtype=np.float64) * 1e9).astype(np.int64)
        return (ns // 1_000_000_000).astype(np.int32), (ns % 1_000_000_000).astype(np.int32)

    (peak, peak_ns), (start, start_ns), (stop, stop_ns) = split(events.gps), split(events.start), split(events.end)
    f32 = lambda c: events[c].to_numpy(dtype=np.float32)  # noqa: E731 - sngl_burst's REAL_4 columns
    ifo, name = channel.split(":", 1)
    table = EventTable(
        {
            "ifo": np.full(len(events), ifo),
            "channel": np.full(len(events), name),
            "search": np.full(len(events), "omicron"),
            "peak_time": peak,
            "peak_time_ns": peak_ns,
            "start_time": start,
            "start_time_ns": start_ns,
            "stop_time": stop,
            "stop_time_ns": stop_ns,
            "duration": f32("duration"),
            "peak_frequency": f32("frequency"),
            "central_freq": f32("frequency"),
            "flow": f32("fmin"),
            "fhigh": f32("fmax"),
            "bandwidth": f32("bandwidth"),
            "snr": f32("snr"),
        }
    )
    with atomic_path(path) as tmp:
        table.write(tmp, format="ligolw", tablename="sngl_burst", overwrite=True)


def _from_hdf5(path: Path) -> pd.DataFrame:
    return _from_columns(path, EventTable.read(path, format="hdf5", path=HDF5_PATH))


def _from_root(path: Path) -> pd.DataFrame:
    return _from_columns(path, EventTable.read(path, format="root", treename=ROOT_TREE))


def _from_columns(path: Path, table: EventTable) -> pd.DataFrame:
    """Omicron's HDF5 table or ROOT tree (:data:`OMICRON_COLUMNS`) in the trigger-list columns."""
    require_columns(path, list(table.colnames), OMICRON_COLUMNS[:8])
    t = {c: np.asarray(table[c], dtype=np.float64) for c in OMICRON_COLUMNS[:8]}
    return pd.DataFrame(
        {
            "gps": t["time"],
            "frequency": t["frequency"],
            "snr": t["snr"],
            "q": t["q"],
            "start": t["tstart"],
            "end": t["tend"],
            "fmin": t["fstart"],
            "fmax": t["fend"],
        }
    )


def _from_xml(path: Path) -> pd.DataFrame:
    table = EventTable.read(path, format="ligolw", tablename="sngl_burst", use_numpy_dtypes=True)
    require_columns(path, list(table.colnames), _XML_REQUIRED)
    c = {name: np.asarray(table[name], dtype=np.float64) for name in _XML_REQUIRED}
    start = c["start_time"] + c["start_time_ns"] * 1e-9
    frequency, bandwidth = c["peak_frequency"], c["fhigh"] - c["flow"]
    with np.errstate(divide="ignore", invalid="ignore"):
        q = 2.0 * math.sqrt(math.pi) * frequency / bandwidth  # a tile's bandwidth is 2 sqrt(pi) f / Q; sngl_burst has no Q
    return pd.DataFrame(
        {
            "gps": c["peak_time"] + c["peak_time_ns"] * 1e-9,
            "frequency": frequency,
            "snr": c["snr"],
            "q": q,
            "start": start,
            "end": start + c["duration"],
            "fmin": c["flow"],
            "fmax": c["fhigh"],
        }
    )


def read_omicron(path: str | Path, span: tuple[float, float]) -> pd.DataFrame:
    """An Omicron trigger file (``.h5``/``.hdf5``, ``.root``, ``.xml``/``.xml.gz``) as a trigger list (LISTED_COLUMNS, sorted by
    GPS, no class labels), every row checked against the run's ``span`` (:func:`triggers.checked`)."""
    path = Path(path)
    suffixes = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
    readers = {".h5": _from_hdf5, ".hdf5": _from_hdf5, ".root": _from_root, ".xml": _from_xml, ".xml.gz": _from_xml}
    if suffixes not in readers:
        raise TriggerListError(f"{path}: not an Omicron trigger file (expected .h5, .hdf5, .root, .xml or .xml.gz)")
    try:
        table = readers[suffixes](path)
    except (OSError, KeyError, ValueError) as exc:
        if isinstance(exc, TriggerListError):
            raise
        raise TriggerListError(f"{path}: cannot read Omicron triggers ({exc})") from exc
    table = table.assign(
        duration=table.end - table.start, bandwidth=table.fmax - table.fmin, n_tiles=0, label="", confidence=np.nan
    )  # n_tiles 0: the list does not say how many tiles made an event
    return checked(path, table[LISTED_COLUMNS], span)
