"""The ``dataset_split`` artifact: labelled tiles of every event, split by event, with the training normalisation
(built by :mod:`glitchflow_assets.core.dataset.splits`).

Layout (schema version 2; version 1 had no ``event_class`` and reads as unclassified)::

    /<split>/tiles        float32 [tile, channel, freq, time]   physical SNR^2, strain first
    /<split>/{label, event_gps, event_class, window, tile_offset}   [tile]   per-tile provenance (split: train,
                          validation, test; event_class: the event's glitch class, "" where none is known)
    /axes/frequencies     [freq] Hz      /axes/times [time] s from the event (tile: times[offset:offset+size])
    /channels             [channel]      /normalisation/channel_scale [channel]
    attrs: schema, schema_version, config (JSON DatasetConfig), summary (JSON counts), data_version, run, windows
"""

import json
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from glitchflow_assets.core.artifacts.storage import AtomicHDF5Writer, ContentDigest, open_artifact

SPLITS = ("train", "validation", "test")
LABELS = {"background": 0, "glitch": 1}
SCHEMA = "glitchflow.dataset_split"
SCHEMA_VERSION = 2
READABLE_VERSIONS = {1, SCHEMA_VERSION}


def open_dataset(path: str | Path) -> AbstractContextManager[h5py.File]:
    """A dataset_split file, read-only, once it is known to be one of a version this code reads."""
    return open_artifact(path, SCHEMA, READABLE_VERSIONS)


@dataclass
class SplitStats:
    counts: dict = field(default_factory=lambda: {s: {"glitch": 0, "background": 0} for s in SPLITS})
    class_events: dict = field(default_factory=lambda: {s: {} for s in SPLITS})  # split -> class -> events
    scale_sum: np.ndarray | None = None
    scale_n: int = 0


class DatasetFileWriter(AtomicHDF5Writer):
    """Append tiles window by window to ``/<split>/{tiles, label, event_gps, event_class, window, tile_offset}``; :meth:`close`
    stores the training statistics and the dataset's ``config`` and publishes the file atomically."""

    def __init__(self, path: str | Path, channels: list[str], tile_size: int, config: dict):
        super().__init__(path, SCHEMA, SCHEMA_VERSION)
        self.channels, self.tile_size, self._config = channels, tile_size, config
        self.stats, self.digest = SplitStats(), ContentDigest()
        size, c = tile_size, len(channels)
        for split in SPLITS:
            g = self.file.create_group(split)
            g.create_dataset("tiles", (0, c, size, size), maxshape=(None, c, size, size), dtype="f4", chunks=(1, c, size, size))
            g.create_dataset("label", (0,), maxshape=(None,), dtype="i1")
            g.create_dataset("event_gps", (0,), maxshape=(None,), dtype="f8")
            g.create_dataset("tile_offset", (0,), maxshape=(None,), dtype="i4")
            g.create_dataset("window", (0,), maxshape=(None,), dtype=h5py.string_dtype())
            g.create_dataset("event_class", (0,), maxshape=(None,), dtype=h5py.string_dtype())

    def set_axes(self, frequencies: np.ndarray, times: np.ndarray) -> None:
        """Spectrogram axes: a tile covers ``frequencies[f0:f0+size]`` and ``times[offset:offset+size]``."""
        if "axes" not in self.file:
            f0 = (len(frequencies) - self.tile_size) // 2
            self.file.create_dataset("axes/frequencies", data=frequencies[f0 : f0 + self.tile_size]).attrs["units"] = "Hz"
            self.file.create_dataset("axes/times", data=times).attrs["units"] = "s from event GPS (tile: times[offset:offset+size])"

    def append(self, split: str, window: str, items: list[tuple[np.ndarray, int, float, int, str]]) -> None:
        """One window's ``items`` of ``split``: (tile ``[channel, freq, time]``, label, event GPS, tile offset, event
        class) each."""
        g = self.file[split]
        n0, n = g["label"].shape[0], len(items)
        tiles = np.stack([i[0] for i in items]).astype(np.float32)
        labels = np.array([i[1] for i in items], dtype=np.int8)
        columns = {
            "tiles": tiles,
            "label": labels,
            "event_gps": np.array([i[2] for i in items], dtype=np.float64),
            "tile_offset": np.array([i[3] for i in items], dtype=np.int32),
            "window": [window] * n,
        }
        classes = [i[4] for i in items]
        # an unclassified dataset keeps the digest it had before classes were stored
        self.digest.update(split, *columns.values(), *([classes] if any(classes) else []))
        columns["event_class"] = classes
        self.reserve(tiles.nbytes + 64 * n)
        for name, values in columns.items():
            g[name].resize(n0 + n, axis=0)
            g[name][n0:] = values
        for name, code in LABELS.items():
            self.stats.counts[split][name] += int((labels == code).sum())
        per_class = self.stats.class_events[split]
        for cls in pd.Series(classes).groupby(columns["event_gps"]).first():  # each event once
            per_class[cls] = per_class.get(cls, 0) + 1
        if split == "train":
            glitches = tiles[labels == LABELS["glitch"]]
            if len(glitches):
                maxima = glitches.max(axis=(2, 3)).astype(np.float64)  # [tile, channel]
                self.stats.scale_sum = maxima.sum(0) + (0 if self.stats.scale_sum is None else self.stats.scale_sum)
                self.stats.scale_n += len(glitches)

    def close(self, attrs: dict) -> dict:
        """Write statistics and metadata, publish the file; returns the summary stored in its attributes (and the
        file's data version, a digest of everything stored, under ``data_version``)."""
        scale = (self.stats.scale_sum / self.stats.scale_n) if self.stats.scale_n else np.zeros(len(self.channels))
        self.file.create_dataset("channels", data=np.array(self.channels, dtype=object), dtype=h5py.string_dtype())
        self.file.create_dataset("normalisation/channel_scale", data=scale).attrs["meaning"] = "divide tiles by this per channel"
        summary = {"counts": self.stats.counts, "events_per_class": self.stats.class_events, "train_glitch_tiles": self.stats.scale_n}
        self.digest.update(self.channels, scale, json.dumps(self._config, sort_keys=True))
        self.file.attrs.update(
            {
                "config": json.dumps(self._config),
                "data_version": self.digest.hexdigest(),
                "summary": json.dumps(summary),
                **attrs,
            }
        )
        self.publish()
        return summary | {"data_version": self.digest.hexdigest()}


def verify_dataset(path: str | Path) -> dict[str, tuple[bool, str]]:
    """Read a dataset back and check it: (passed, description) per check."""
    with open_dataset(path) as f:
        events = {s: set(np.round(f[s]["event_gps"][()], 6)) for s in SPLITS}
        shared = {f"{a}/{b}": len(events[a] & events[b]) for i, a in enumerate(SPLITS) for b in SPLITS[i + 1 :]}
        nonfinite = {
            s: int(sum((~np.isfinite(f[s]["tiles"][i : i + 256])).sum() for i in range(0, f[s]["tiles"].shape[0], 256))) for s in SPLITS
        }
        scale = f["normalisation/channel_scale"][()]
    bad_scale = [i for i, v in enumerate(scale) if not np.isfinite(v) or v <= 0]
    return {
        "no_event_in_two_splits": (not any(shared.values()), f"events shared between splits: {shared}"),
        "finite_tiles": (not any(nonfinite.values()), f"non-finite values per split: {nonfinite}"),
        "normalisation_stats": (
            not bad_scale and len(scale) > 0,
            f"channel scales {np.round(scale, 3).tolist()}; bad channels {bad_scale}",
        ),
    }


def example_tiles(path: str | Path, split: str, per_label: int = 2) -> list[dict]:
    """``per_label`` glitch and ``per_label`` background tiles of a split, each of another event, the events spread
    evenly over the split's (in GPS order: early, middle and late), as stored, with their axes and provenance:
    dicts of ``tile`` ``[channel, freq, time]``, ``frequencies`` ``[freq]`` (Hz), ``times`` ``[time]`` (s from the
    event), ``label``, ``split``, ``gps``, ``window``, ``offset``, ``event_class``."""
    names = {code: name for name, code in LABELS.items()}
    with open_dataset(path) as f:
        g, frequencies, times = f[split], f["axes/frequencies"][()], f["axes/times"][()]
        labels = g["label"][()]
        gps = g["event_gps"][()]
        rows = [i for code in (LABELS["glitch"], LABELS["background"]) for i in _spread(np.flatnonzero(labels == code), gps, per_label)]
        size = g["tiles"].shape[-1]
        return [
            {
                "tile": g["tiles"][i],
                "frequencies": frequencies,
                "times": times[int(g["tile_offset"][i]) : int(g["tile_offset"][i]) + size],
                "label": names[int(labels[i])],
                "split": split,
                "gps": float(g["event_gps"][i]),
                "window": g["window"].asstr()[i],
                "offset": int(g["tile_offset"][i]),
                "event_class": str(_classes(g, i, i + 1)[0]),
            }
            for i in rows
        ]


def _spread(rows: np.ndarray, gps: np.ndarray, n: int) -> list[int]:
    """``n`` of ``rows`` (tile indices) from ``n`` distinct events evenly spaced in GPS order (the first tile of each)."""
    events, first = np.unique(gps[rows], return_index=True)  # sorted by GPS
    picks = np.unique(np.linspace(0, len(events) - 1, n).round().astype(int)) if len(events) else np.array([], int)
    return [int(rows[first[p]]) for p in picks]


def dataset_classes(path: str | Path) -> dict[float, str]:
    """The glitch class of every event of a dataset, by its GPS rounded to the microsecond ("" where none is known):
    what later stages on the same events (the time-domain twin, the cleaning evaluation) report per class by."""
    out: dict[float, str] = {}
    with open_dataset(path) as f:
        for split in SPLITS:
            g = f[split]
            gps = np.round(g["event_gps"][()], 6)
            out.update(zip(gps.tolist(), _classes(g, 0, len(gps)).tolist(), strict=True))
    return out


def classes_at(classes: dict[float, str], gps: np.ndarray) -> np.ndarray:
    """The dataset's classes (:func:`dataset_classes`) of the events at ``gps`` ``[event]``; "" for an event it lacks."""
    return np.array([classes.get(g, "") for g in np.round(gps, 6).tolist()], dtype=str)


def dataset_events(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """The events of each split: ``{split: {window key: event GPS [event]}}`` (each event once, however many tiles):
    what every later stage that works on events (the time-domain twin) splits by, so that no event leaks."""
    out: dict[str, dict[str, np.ndarray]] = {}
    with open_dataset(path) as f:
        for split in SPLITS:
            gps, windows = f[split]["event_gps"][()], f[split]["window"].asstr()[()]
            out[split] = {w: np.unique(gps[windows == w]) for w in np.unique(windows)}
    return out


@dataclass(frozen=True)
class DatasetInfo:
    """Everything in a dataset file but its tiles."""

    channels: list[str]  # strain first
    channel_scale: np.ndarray  # [channel] training normalisation
    frequencies: np.ndarray  # [freq] Hz
    times: np.ndarray  # [time] s from the event
    tile_shape: tuple[int, int]
    sizes: dict[str, int]  # tiles per split
    attrs: dict

    def data_version(self) -> str:
        """The digest of everything stored, computed as it was written."""
        return str(self.attrs["data_version"])


def read_info(path: str | Path) -> DatasetInfo:
    """Everything in a dataset file but its tiles: channels, training normalisation, axes, tile shape, tiles per split."""
    with open_dataset(path) as f:
        return DatasetInfo(
            list(f["channels"].asstr()[()]),
            f["normalisation/channel_scale"][()],
            f["axes/frequencies"][()],
            f["axes/times"][()],
            tuple(f["train/tiles"].shape[-2:]),
            {s: int(f[s]["label"].shape[0]) for s in SPLITS},
            dict(f.attrs),
        )


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; one of {SPLITS}")


def read_split(path: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """A whole split in memory: (tiles ``[tile, channel, freq, time]``, labels ``[tile]``)."""
    _check_split(split)
    with open_dataset(path) as f:
        return f[split]["tiles"][()], f[split]["label"][()]


@dataclass(frozen=True)
class TileBatch:
    """A slice of a split as stored: physical tiles ``[batch, channel, freq, time]`` plus per-tile provenance."""

    index: np.ndarray
    tiles: np.ndarray
    label: np.ndarray
    event_gps: np.ndarray
    window: np.ndarray
    tile_offset: np.ndarray
    event_class: np.ndarray  # str, "" where none is known


def _classes(g: h5py.Group, start: int, stop: int) -> np.ndarray:
    """``event_class`` of tiles ``start:stop`` of a split group ("" for a version-1 file, which stored none)."""
    if "event_class" in g:
        return g["event_class"].asstr()[start:stop].astype(str)
    return np.full(stop - start, "", dtype=str)


def iter_split(path: str | Path, split: str, batch_size: int) -> Iterator[TileBatch]:
    """Stream a split in stored order, ``batch_size`` tiles at a time (bounded memory)."""
    _check_split(split)
    with open_dataset(path) as f:
        g = f[split]
        for start in range(0, g["label"].shape[0], batch_size):
            stop = min(start + batch_size, g["label"].shape[0])
            yield TileBatch(
                np.arange(start, stop),
                g["tiles"][start:stop],
                g["label"][start:stop],
                g["event_gps"][start:stop],
                g["window"].asstr()[start:stop],
                g["tile_offset"][start:stop],
                _classes(g, start, stop),
            )
