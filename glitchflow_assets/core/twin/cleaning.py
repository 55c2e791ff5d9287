"""Cleaning a window's strain: subtract the predicted glitches, search the result again, and say what went.

An original event is *removed* when no event of the cleaned strain overlaps its time extent (padded by ``pad_s``); an
event of the cleaned strain that overlaps no original event is *new* (a cleaning that adds glitches is broken) when it
overlaps a stretch where cleaning changed the strain. One that does not sits in untouched samples: the search saw it
only because the window's PSD, estimated again on the cleaned strain, is lower once the glitches are gone (noise at
the threshold); it is counted apart, as ``elsewhere``.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from glitchflow_assets.core.artifacts.glitch_waveforms import place
from glitchflow_assets.core.artifacts.storage import atomic_path, check_schema

REPORT_SCHEMA, REPORT_VERSION = "glitchflow.cleaned_strain", 3  # 2: new events split from those in untouched data; 3: predicted
NEW_COLUMNS = ["gps", "snr", "start", "end"]


@dataclass
class EventComparison:
    """``table``: one row per original event (gps, snr_before, snr_after: 0 when removed, removed, predicted: cleaning
    changed the strain over the event, i.e. the twin predicted a glitch there); ``new``: events of
    the cleaned strain that were not there before, where cleaning changed the strain; ``elsewhere``: those that were not
    there before, in untouched samples."""

    table: pd.DataFrame
    new: pd.DataFrame
    elsewhere: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=NEW_COLUMNS))

    def removed_fraction(self, mask: np.ndarray | None = None) -> float:
        t = self.table if mask is None else self.table[mask]
        return float(t.removed.mean()) if len(t) else float("nan")


def subtract_glitches(
    strain: np.ndarray, t0: float, rate: float, glitches: np.ndarray, starts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(cleaned ``[time]``, synthetic ``[time]``): ``strain`` (sample 0 at GPS ``t0``) minus the ``glitches``
    ``[event, time]`` whose sample 0 is at GPS ``starts`` ``[event]``."""
    synthetic = place(glitches, starts, rate, t0, len(strain))
    return strain - synthetic, synthetic


def changed_spans(synthetic: np.ndarray, t0: float, rate: float) -> pd.DataFrame:
    """The GPS spans (start, end) where ``synthetic`` ``[time]`` (what was subtracted; sample 0 at ``t0``) is not zero."""
    idx = np.flatnonzero(synthetic)
    if not len(idx):
        return pd.DataFrame({"start": [], "end": []})
    breaks = np.flatnonzero(np.diff(idx) > 1)
    first, last = idx[np.r_[0, breaks + 1]], idx[np.r_[breaks, len(idx) - 1]]
    return pd.DataFrame({"start": t0 + first / rate, "end": t0 + (last + 1) / rate})


def _overlaps(a: pd.DataFrame, b: pd.DataFrame, pad_s: float) -> np.ndarray:
    """``[len(a), len(b)]``: whether event extents [start - pad, end + pad] of ``a`` and ``b`` overlap."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)), bool)
    a0, a1 = a.start.to_numpy()[:, None] - pad_s, a.end.to_numpy()[:, None] + pad_s
    return (a0 < b.end.to_numpy()[None]) & (b.start.to_numpy()[None] < a1)


def compare_events(before: pd.DataFrame, after: pd.DataFrame, changed: pd.DataFrame | None = None, pad_s: float = 0.1) -> EventComparison:
    """Match events by their time extents (a long arch may come back split or shifted, and is still the same glitch).
    ``changed``: the spans (start, end) where the strain was changed (None: everywhere)."""
    hits = _overlaps(before, after, pad_s)
    snr_after = np.where(hits, after.snr.to_numpy()[None], 0.0).max(axis=1) if len(after) else np.zeros(len(before))
    predicted = np.ones(len(before), bool) if changed is None else _overlaps(before, changed, 0.0).any(axis=1)
    table = pd.DataFrame(
        {
            "gps": before.gps.to_numpy(),
            "snr_before": before.snr.to_numpy(),
            "snr_after": snr_after,
            "removed": ~hits.any(axis=1),
            "predicted": predicted,
        }
    )
    unmatched = (after[~hits.any(axis=0)] if len(after) else after).sort_values("gps").reset_index(drop=True)
    touched = np.ones(len(unmatched), bool) if changed is None else _overlaps(unmatched, changed, pad_s).any(axis=1)
    return EventComparison(table, unmatched[touched].reset_index(drop=True), unmatched[~touched].reset_index(drop=True))


def write_cleaning_report(path: str | Path, comparison: EventComparison, attrs: dict) -> None:
    """The per-event outcome of cleaning one window (JSON: ``events`` and ``new_events`` columns, plus ``attrs``)."""
    document = {
        "schema": REPORT_SCHEMA,
        "schema_version": REPORT_VERSION,
        **attrs,
        "events": comparison.table.to_dict(orient="list"),
        "new_events": comparison.new[NEW_COLUMNS].to_dict(orient="list"),
        "new_events_elsewhere": comparison.elsewhere[NEW_COLUMNS].to_dict(orient="list"),
    }
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(document))


def read_cleaning_report(path: str | Path) -> EventComparison:
    """One window's cleaning report read back (versions 1 and 2 too: version 1 has no ``elsewhere`` events, neither
    says which events were ``predicted``: NA)."""
    document = json.loads(Path(path).read_text())
    check_schema(path, document, REPORT_SCHEMA, (1, 2, REPORT_VERSION))  # version 1 counted every new event as new
    table = pd.DataFrame(document["events"], columns=["gps", "snr_before", "snr_after", "removed", "predicted"])
    elsewhere = pd.DataFrame(document.get("new_events_elsewhere", {c: [] for c in NEW_COLUMNS}))
    table = table.astype({"removed": bool, "predicted": "boolean"})
    return EventComparison(table, pd.DataFrame(document["new_events"]), elsewhere)


def cleaning_headline(
    gps: np.ndarray, scores: pd.DataFrame, comparisons: list[EventComparison], min_true_snr: float = 8.0
) -> dict[str, float]:
    """Over held-out events ``gps`` ``[event]`` with their ``scores`` (those of true SNR >= ``min_true_snr`` when the run is
    simulated): the fraction the search no longer finds after cleaning, the new events cleaning made where it changed
    the strain, and those found in untouched samples."""
    table = pd.concat([c.table for c in comparisons], ignore_index=True) if comparisons else pd.DataFrame(columns=["gps", "removed"])
    held = pd.DataFrame({"gps": gps, **({"true_snr": scores.true_snr.to_numpy()} if "true_snr" in scores else {})})
    if "true_snr" in held:
        held = held[held.true_snr >= min_true_snr]
    removed = table.set_index(np.round(table.gps.to_numpy(dtype=float), 6)).removed
    hits = removed.reindex(np.round(held.gps.to_numpy(), 6))
    return {
        "held_out_events": float(hits.notna().sum()),
        "held_out_removed_fraction": float(hits.dropna().astype(bool).mean()) if hits.notna().any() else float("nan"),
        "new_events": float(sum(len(c.new) for c in comparisons)),
        "new_events_elsewhere": float(sum(len(c.elsewhere) for c in comparisons)),
    }
