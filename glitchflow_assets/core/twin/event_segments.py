"""Whitened time series of the strain and its witnesses around each glitch event of one window: the data the
time-domain twin is fitted on, predicts from and is judged on.

Every channel is whitened by its own PSD (median Welch over the window's valid data), over the segment plus
``context_s`` each side that is then dropped, so the whitening filter's edge taper never touches the segment.
Each event also gets a *gate* ``[time]``: 1 over the event's time-frequency extent found by the search (plus a
pad), cosine ramps, 0 elsewhere. Predictions live inside their gate only.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from glitchflow_assets.core.ingest.assemble import WindowChannels
from glitchflow_assets.core.runs.segments import covers
from glitchflow_assets.core.signal.dsp import psd_of_segments, whiten

TruthFunction = Callable[[float, int, int], np.ndarray]
"""(GPS start, samples, sample rate) -> the true strain glitch ``[samples]`` (simulated runs only)."""


@dataclass(frozen=True)
class SegmentConfig:
    segment_s: float = 8.0  # s of data around each event (scattered-light arches last up to ~6 s)
    context_s: float = 4.0  # s whitened beyond each end of the segment and dropped
    gate_pad_s: float = 0.1  # s added to the searched extent of the event at each side
    gate_min_half_s: float = 0.25  # the gate covers at least this many s either side of the peak
    gate_ramp_s: float = 0.05
    fftlength: float = 4.0  # s, PSD estimate

    def samples(self, sample_rate: float) -> int:
        return int(round(self.segment_s * sample_rate))


@dataclass
class EventSegments:
    """Segments of ``n`` events; sample ``k`` of event ``e`` is at GPS ``t0[e] + k / sample_rate``.

    ``witness`` ``[event, channel, time]`` and ``strain`` ``[event, time]`` are whitened (unit-variance noise);
    ``truth`` ``[event, time]`` is the whitened true strain glitch when the run is simulated, else None;
    ``strain_psd`` ``[event, freq]`` (on the whitening grid) re-colours a prediction into strain units.
    """

    gps: np.ndarray
    t0: np.ndarray
    window: list[str]
    search_snr: np.ndarray
    witness: np.ndarray
    strain: np.ndarray
    gate: np.ndarray
    strain_psd: np.ndarray
    channels: list[str]
    sample_rate: float
    truth: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.gps)

    def subset(self, keep: np.ndarray) -> "EventSegments":
        """The events where ``keep`` ``[event]`` (bool) is true."""
        idx = np.flatnonzero(keep)
        return EventSegments(
            self.gps[idx],
            self.t0[idx],
            [self.window[i] for i in idx],
            self.search_snr[idx],
            self.witness[idx],
            self.strain[idx],
            self.gate[idx],
            self.strain_psd[idx],
            self.channels,
            self.sample_rate,
            None if self.truth is None else self.truth[idx],
        )

    @staticmethod
    def concatenate(parts: list["EventSegments"]) -> "EventSegments":
        first = parts[0]
        truth = None if any(p.truth is None for p in parts) else np.concatenate([p.truth for p in parts])
        return EventSegments(
            np.concatenate([p.gps for p in parts]),
            np.concatenate([p.t0 for p in parts]),
            [w for p in parts for w in p.window],
            np.concatenate([p.search_snr for p in parts]),
            np.concatenate([p.witness for p in parts]),
            np.concatenate([p.strain for p in parts]),
            np.concatenate([p.gate for p in parts]),
            np.concatenate([p.strain_psd for p in parts]),
            first.channels,
            first.sample_rate,
            truth,
        )


def event_gate(times: np.ndarray, start: float, end: float, gps: float, config: SegmentConfig) -> np.ndarray:
    """``[time]``: 1 over [min(start, gps - min_half) - pad, max(end, gps + min_half) + pad], cosine ramps outside."""
    lo = min(start, gps - config.gate_min_half_s) - config.gate_pad_s
    hi = max(end, gps + config.gate_min_half_s) + config.gate_pad_s
    outside = np.clip(np.maximum(lo - times, times - hi) / config.gate_ramp_s, 0.0, 1.0)
    return 0.5 * (1.0 + np.cos(np.pi * outside))


def merge_overlapping_events(events: pd.DataFrame, config: SegmentConfig = SegmentConfig()) -> pd.DataFrame:
    """``events`` (gps, start, end, snr, ...) with those whose gates overlap made one: the loudest one's row, its extent
    the union. The witnesses see one glitch there, so the twin must predict and subtract it once: a signal on top of a
    glitch can split the search's event in two (the GW170817 case), and each half would subtract the whole glitch."""
    if len(events) < 2:
        return events.reset_index(drop=True)
    ordered = events.sort_values("gps").reset_index(drop=True)
    lo = np.minimum(ordered.start, ordered.gps - config.gate_min_half_s) - config.gate_pad_s - config.gate_ramp_s
    hi = np.maximum(ordered.end, ordered.gps + config.gate_min_half_s) + config.gate_pad_s + config.gate_ramp_s
    group = np.concatenate([[0], np.cumsum(lo.to_numpy()[1:] > np.maximum.accumulate(hi.to_numpy())[:-1])])
    rows = []
    for g in np.unique(group):
        members = ordered[group == g]
        row = members.loc[members.snr.idxmax()].copy()
        row["start"], row["end"] = members.start.min(), members.end.max()
        rows.append(row)
    return pd.DataFrame(rows).reset_index(drop=True)


def _whitened(rows: np.ndarray, psd: torch.Tensor, rate: float, skip: int, n: int) -> np.ndarray:
    """``rows`` ``[event, channel, time]`` whitened by ``psd`` ``[channel, freq]``, the context dropped: ``[event, channel, n]``."""
    out = whiten(torch.as_tensor(rows, dtype=torch.float64), rate, psd=psd[None])
    return out[..., skip : skip + n].numpy()


def _locate(
    events: pd.DataFrame,
    names: list[str],
    valid: dict[str, list],
    unusable: dict[str, str],
    t0: float,
    rate: float,
    available: int,
    config: SegmentConfig,
) -> tuple[list[tuple[Any, int]], list[tuple[float, str]]]:
    """The events whose whitening span (segment plus context) has valid data in every channel, each with the
    sample its span starts at, and the events left out with why."""
    span = config.samples(rate) + 2 * int(round(config.context_s * rate))
    kept, skipped = [], []
    for row in events.itertuples():
        first = int(round((row.gps - config.segment_s / 2 - config.context_s - t0) * rate))
        a, b = t0 + first / rate, t0 + (first + span) / rate
        lacking = [name for name in names if not covers(valid[name], a, b)]
        if first < 0 or first + span > available or lacking:
            name = lacking[0] if lacking else names[0]
            why = f"witness {unusable[name]}" if name in unusable else f"{name} not valid over GPS [{a:.3f}, {b:.3f})"
            skipped.append((float(row.gps), why))
        else:
            kept.append((row, first))
    return kept, skipped


def _channel_psds(
    raw_path, data: np.ndarray, names: list[str], valid: dict[str, list], t0: float, rate: float, config: SegmentConfig
) -> tuple[torch.Tensor, list[int]]:
    """``[channel, freq]`` PSDs, a flat one standing in for each witness too short for an estimate, and the indices of those
    witnesses (their data is to be zeroed)."""
    psds, flat = [], []
    for i, name in enumerate(names):
        psd = psd_of_segments(torch.as_tensor(data[i], dtype=torch.float64), t0, rate, valid[name], config.fftlength)
        if psd is None and i == 0:
            raise ValueError(f"{raw_path}: strain {name} has no stretch long enough for a PSD")
        if psd is None:
            flat.append(i)
            psd = torch.ones(int(config.fftlength * rate) // 2 + 1, dtype=torch.float64)
        psds.append(psd)
    return torch.stack(psds), flat


def _whitened_truth(
    truth: TruthFunction, starts: np.ndarray, strain_psd: torch.Tensor, rate: float, skip: int, n: int, config: SegmentConfig
) -> np.ndarray:
    """The true strain glitch of each event, whitened as the strain is: ``[event, n]``."""
    raw_truth = np.stack([truth(s - config.context_s, n + 2 * skip, int(rate)) for s in starts])[:, None]
    return _whitened(raw_truth, strain_psd, rate, skip, n)[:, 0]


def event_segments(
    channels: WindowChannels,
    window: str,
    events: pd.DataFrame,
    config: SegmentConfig = SegmentConfig(),
    truth: TruthFunction | None = None,
    witness_rates: dict[str, float] | None = None,
) -> tuple[EventSegments | None, list[tuple[float, str]]]:
    """The segments of ``events`` (a glitch_events table: gps, start, end, snr) of one window's strain and witnesses
    (``channels``, at the analysis rate), and the events left out with why: the strain, or a witness, without valid data
    over the event's span. A witness this window holds at a native rate other than ``witness_rates`` names (the rate
    the twin is fitted on) counts as without data: rates are never mixed. A witness with too little data for a PSD is
    zero (it carries nothing)."""
    summary, witnesses = channels.summary, channels.names[1:]
    rate, data, names, t0 = channels.sample_rate, channels.data, channels.names, channels.t0
    unusable = summary.unusable(witnesses, witness_rates or {})
    valid = {name: [] if name in unusable else channels.segments[name] for name in names}
    n, skip = config.samples(rate), int(round(config.context_s * rate))
    span = n + 2 * skip
    kept, skipped = _locate(events, names, valid, unusable, t0, rate, data.shape[1], config)
    if not kept:
        return None, skipped
    cuts = np.stack([data[:, first : first + span] for _, first in kept]).astype(np.float64)  # [event, channel, span]
    psd, flat = _channel_psds(summary.path, data, names, valid, t0, rate, config)
    cuts[:, flat] = 0.0
    white = _whitened(cuts, psd, rate, skip, n)
    starts = np.array([t0 + (first + skip) / rate for _, first in kept])
    times = np.arange(n) / rate
    gate = np.stack([event_gate(s + times, r.start, r.end, r.gps, config) for (r, _), s in zip(kept, starts, strict=True)])
    truth_white = None if truth is None else _whitened_truth(truth, starts, psd[:1], rate, skip, n, config)
    return EventSegments(
        gps=np.array([r.gps for r, _ in kept]),
        t0=starts,
        window=[window] * len(kept),
        search_snr=np.array([r.snr for r, _ in kept]),
        witness=white[:, 1:],
        strain=white[:, 0],
        gate=gate,
        strain_psd=np.repeat(psd[:1].numpy(), len(kept), axis=0),
        channels=witnesses,
        sample_rate=rate,
        truth=truth_white,
    ), skipped
