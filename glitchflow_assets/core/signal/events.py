"""Excess-power glitch events in the strain (Omicron-like).

Each valid stretch of a window's strain is whitened against a median PSD of the window's own valid data,
cut into overlapping chunks, and scanned with Q-transform planes over a Q range (gwpy's tiling). Tiles
whose SNR reaches ``tile_snr`` are clustered in time (tiles closer than ``cluster_dt`` join one event).
An event reports its loudest tile: peak GPS time, frequency, Q and SNR, plus its time and frequency
extent. Tile SNR follows the Omega convention: with ``Z`` the tile energy over the row's mean noise energy,
``snr^2 = 2 (Z - 1)``; rows are median-normalised, and the mean of exponentially distributed noise energy is
the median / ln 2.
"""

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
import torch

from glitchflow_assets.core.runs.segments import Segments, clip
from glitchflow_assets.core.signal.dsp import QTiling, SingleQTransform, psd_of_segments, q_values, whiten

EVENT_COLUMNS = ["gps", "frequency", "snr", "q", "start", "end", "duration", "fmin", "fmax", "bandwidth", "n_tiles"]


@dataclass(frozen=True)
class EventSearchConfig:
    qrange: tuple[float, float] = (4.0, 64.0)
    frange: tuple[float, float] = (10.0, 1024.0)
    tile_snr: float = 5.0  # tiles at or above this SNR seed events
    event_snr: float = 5.5  # events whose loudest tile reaches this SNR are kept
    cluster_dt: float = 0.1  # s: tiles closer than this in time form one event
    chunk: float = 64.0  # s analysed per transform
    edge: float = 4.0  # s discarded at each chunk end (whitening filter + circular Q-transform)
    fftlength: float = 4.0  # s, PSD estimate
    mismatch: float = 0.2


def _tile_table(tiling: QTiling, energies: list[torch.Tensor], t0: float, keep: tuple[float, float], snr2_min: float) -> np.ndarray:
    """Rows (start, end, f, bandwidth, snr^2, q) of the tiles of one plane above threshold inside ``keep``."""
    out = []
    for row, energy in enumerate(energies):
        snr2 = (2.0 * (math.log(2.0) * energy.double() - 1.0)).cpu().numpy()
        hits = np.flatnonzero(snr2 >= snr2_min)
        if hits.size == 0:
            continue
        times = t0 + tiling.tile_times(row)[hits]
        inside = (times >= keep[0]) & (times < keep[1])
        if not inside.any():
            continue
        half = 0.5 * tiling.duration / energy.shape[-1]
        f = float(tiling.frequencies[row])
        bandwidth = 2.0 * math.sqrt(math.pi) * f / tiling.q
        n = int(inside.sum())
        out.append(
            np.column_stack(
                [times[inside] - half, times[inside] + half, np.full(n, f), np.full(n, bandwidth), snr2[hits][inside], np.full(n, tiling.q)]
            )
        )
    return np.concatenate(out) if out else np.zeros((0, 6))


def _split_by_peaks(tiles: np.ndarray, cluster_dt: float) -> np.ndarray:
    """Labels for the tiles of one time cluster, grown around its distinct peaks, loudest first.

    A tile joins the loudest event whose extent it touches in time (within ``cluster_dt``) and in frequency,
    or starts a new one. Taken loudest first, two glitches whose peaks are apart in time-frequency stay two
    events even where weaker, longer tiles bridge them (time-only clustering merged them)."""
    order = np.argsort(-tiles[:, 4], kind="stable")
    low, high = tiles[:, 2] - tiles[:, 3] / 2, tiles[:, 2] + tiles[:, 3] / 2
    extent = np.zeros((0, 4))  # per event: start, end, fmin, fmax
    label = np.empty(len(tiles), dtype=np.int64)
    for i in order:
        in_time = (tiles[i, 0] <= extent[:, 1] + cluster_dt) & (tiles[i, 1] >= extent[:, 0] - cluster_dt)
        touches = in_time & (low[i] <= extent[:, 3]) & (high[i] >= extent[:, 2])
        if touches.any():
            j = int(np.argmax(touches))  # events were created loudest first
            e = extent[j]
            extent[j] = [min(e[0], tiles[i, 0]), max(e[1], tiles[i, 1]), min(e[2], low[i]), max(e[3], high[i])]
        else:
            j = len(extent)
            extent = np.vstack([extent, [tiles[i, 0], tiles[i, 1], low[i], high[i]]])
        label[i] = j
    return label


def cluster_tiles(tiles: np.ndarray, cluster_dt: float) -> pd.DataFrame:
    """Tiles ``[n, (start, end, f, bandwidth, snr2, q)]`` -> one row per event (see EVENT_COLUMNS).

    Tiles are first grouped in time (closer than ``cluster_dt``), then each group is split around its distinct
    time-frequency peaks (:func:`_split_by_peaks`)."""
    if tiles.shape[0] == 0:
        return pd.DataFrame(columns=EVENT_COLUMNS)
    tiles = tiles[np.argsort(tiles[:, 0], kind="stable")]
    reach = np.maximum.accumulate(tiles[:, 1])
    label = np.concatenate([[0], np.cumsum(tiles[1:, 0] > reach[:-1] + cluster_dt)])
    rows = []
    for k in range(label[-1] + 1):
        group = tiles[label == k]
        parts = _split_by_peaks(group, cluster_dt) if len(group) > 1 else np.zeros(1, dtype=np.int64)
        rows += [_event_row(group[parts == p]) for p in range(parts.max() + 1)]
    return pd.DataFrame(rows, columns=EVENT_COLUMNS).sort_values("gps", kind="stable").reset_index(drop=True)


def _event_row(group: np.ndarray) -> dict:
    peak = group[np.argmax(group[:, 4])]
    fmin, fmax = (group[:, 2] - group[:, 3] / 2).min(), (group[:, 2] + group[:, 3] / 2).max()
    start, end = group[:, 0].min(), group[:, 1].max()
    return {
        "gps": 0.5 * (peak[0] + peak[1]),
        "frequency": peak[2],
        "snr": math.sqrt(peak[4]),
        "q": peak[5],
        "start": start,
        "end": end,
        "duration": end - start,
        "fmin": max(fmin, 0.0),
        "fmax": fmax,
        "bandwidth": fmax - max(fmin, 0.0),
        "n_tiles": len(group),
    }


def window_events(
    strain: np.ndarray,
    t0: float,
    sample_rate: float,
    segments: Segments,
    window: tuple[float, float],
    config: EventSearchConfig = EventSearchConfig(),
    device: torch.device | None = None,
) -> tuple[pd.DataFrame, Segments]:
    """The events a window owns: searched over its data *and margins* (see artifacts.raw_strain_segments), kept when their
    peak falls inside ``window`` = [start, end). Each event of continuous data belongs to exactly one window,
    and no stretch of it goes unsearched. Returns the events and the window's searched segments."""
    events, searched = find_events(strain, t0, sample_rate, segments, config, device)
    owned = events[(events.gps >= window[0]) & (events.gps < window[1])].reset_index(drop=True)
    return owned, clip(searched, *window)


@lru_cache(maxsize=8)
def _q_planes(
    length: float, sample_rate: float, qrange: tuple[float, float], frange: tuple[float, float], mismatch: float
) -> tuple[SingleQTransform, ...]:
    """The Q planes of one chunk length, tiles only (no interpolation grid: 60 ms to build instead of ~6 s), kept for
    the process: every window's chunks share one length."""
    return tuple(SingleQTransform(length, sample_rate, q, frange, mismatch, interpolated=False) for q in q_values(qrange, mismatch))


def find_events(
    strain: np.ndarray,
    t0: float,
    sample_rate: float,
    segments: Segments,
    config: EventSearchConfig = EventSearchConfig(),
    device: torch.device | None = None,
) -> tuple[pd.DataFrame, Segments]:
    """Events in ``strain[time]`` (starting at GPS ``t0``), searched only inside the valid ``segments``.

    Returns the event table (EVENT_COLUMNS, sorted by GPS) and the segments actually searched (valid
    data minus ``config.edge`` at each end: the search's livetime, for rates).
    """
    device = device or torch.device("cpu")
    x = torch.as_tensor(np.asarray(strain, dtype=np.float64), device=device)
    valid = [(s, e) for s, e in segments if e - s >= max(2 * config.edge + 4.0, config.fftlength * 2)]
    if not valid:
        return pd.DataFrame(columns=EVENT_COLUMNS), []
    index = lambda gps: int(round((gps - t0) * sample_rate))  # noqa: E731
    psd = psd_of_segments(x, t0, sample_rate, valid, config.fftlength)
    snr2_min = config.tile_snr**2
    tiles, searched = [], []
    for s, e in valid:
        length = min(config.chunk, e - s)
        step = length - 2 * config.edge
        planes = [p.to(device, torch.float32) for p in _q_planes(length, sample_rate, config.qrange, config.frange, config.mismatch)]
        starts = [*np.arange(s, e - length, step), e - length]
        # whiten raw strain in float64 (its dynamic range needs it); tiles of whitened data are fine in float32
        stretch = whiten(x[index(s) : index(e)][None, None], sample_rate, psd=psd[None, None])[0, 0].float()
        covered = s + config.edge  # keep ranges of consecutive chunks tile the stretch without overlap
        for c0 in starts:
            chunk = stretch[index(c0) - index(s) :][: int(round(length * sample_rate))][None, None]
            keep = (covered, min(c0 + length - config.edge, e - config.edge))
            covered = keep[1]
            for plane in planes:
                energies = [row[0, 0] for row in plane.tiles(chunk)]
                tiles.append(_tile_table(plane.tiling, energies, c0, keep, snr2_min))
        searched.append((s + config.edge, e - config.edge))
    events = cluster_tiles(np.concatenate(tiles), config.cluster_dt)
    events = events[events.snr >= config.event_snr].sort_values("gps").reset_index(drop=True)
    return events, searched
