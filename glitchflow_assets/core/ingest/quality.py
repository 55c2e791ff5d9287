"""Data-quality assessment of an ingested window (pure; the Dagster checks only report it).

Each check returns an :class:`Outcome` whose messages name the channel and the GPS time. Severity is
``ERROR`` where the strain itself is unusable (the blocking checks stop it flowing downstream) and
``WARN`` for auxiliary-channel problems and legitimate gaps. For a run with observing segments, gaps count against the
observing time and ingest counted only observing data; a window outside every segment passes every check, saying so.
"""

from dataclasses import dataclass, field

from glitchflow_assets.core.artifacts.raw_strain_segments import RawSegmentSummary
from glitchflow_assets.core.runs.registry import ObservingRun
from glitchflow_assets.core.runs.segments import clip, subtract, total


@dataclass(frozen=True)
class Thresholds:
    max_gap_fraction: float = 0.1  # strain gap fraction above which the window is flagged
    max_flat_seconds: float = 1.0  # a channel constant for this long is flat-lined


@dataclass
class Outcome:
    """A check's verdict: what was measured against its limit, and each problem found."""

    passed: bool
    measured: str  # e.g. "strain gap 0.0 % of 300 s, limit 10 %"
    value: float  # what was measured, in the limit's unit
    limit: float
    severity: str = "WARN"  # ERROR | WARN
    messages: list[str] = field(default_factory=list)

    @property
    def description(self) -> str:
        return "; ".join([self.measured, *self.messages])


def check_descriptions(thresholds: Thresholds = Thresholds()) -> dict[str, str]:
    """Each check's name and what it holds a window to (the UI's check descriptions)."""
    return {
        "no_nonfinite_samples": "No NaN/inf samples (ERROR and blocking when the strain has any).",
        "no_flatlined_channels": f"No channel constant for {thresholds.max_flat_seconds:g} s or more.",
        "gap_fraction": f"Strain gap fraction of the window's observing time inside the run (all of it for a run without observing "
        f"segments) at most {100 * thresholds.max_gap_fraction:g} %.",
        "sample_rates": "Data at a native rate other than the registry's (unlisted: the window's main rate) are left out, never "
        "mixed, and named with file and GPS (blocking when the strain is hit).",
        "channels_present": "Every channel is in every frame file of the window; one that comes or goes mid-window is named with "
        "the files that lack it.",
    }


CHECKS = tuple(check_descriptions())
BLOCKING = frozenset({"no_nonfinite_samples", "sample_rates"})


MAX_NAMED = 10  # channels a check names one by one; a real detector may have hundreds with the same problem


def _outcome(measured: str, value: float, limit: float, messages: list[str], strain_hit: bool) -> Outcome:
    """``messages`` in channel order (the strain's first), the first :data:`MAX_NAMED` of them and a count of the rest."""
    named = messages[:MAX_NAMED] + (
        [f"and {len(messages) - MAX_NAMED} more channels (every one in the window's file)"] if len(messages) > MAX_NAMED else []
    )
    return Outcome(
        passed=not messages, measured=measured, value=value, limit=limit, severity="ERROR" if strain_hit else "WARN", messages=named
    )


def _gap_fraction(summary: RawSegmentSummary, run: ObservingRun, window: str, thresholds: Thresholds) -> Outcome:
    """The strain's gap fraction in the window's observing time inside the run: a WARN at most (gaps are legitimate)."""
    start, end = summary.window_span
    in_run = (max(start, run.gps_start), min(end, run.gps_end))
    observing = [in_run] if summary.observing is None else clip(summary.observing, *in_run)
    gaps = subtract(observing, summary.strain.segments)
    gap = total(gaps) / total(observing)
    strain = summary.strain.name
    of = f"the {in_run[1] - in_run[0]:g} s" if summary.observing is None else f"the {total(observing):g} s observing"
    return _outcome(
        f"strain gap {100 * gap:.3g} % of {of} of {window} inside {run.name}, limit {100 * thresholds.max_gap_fraction:g} %",
        100 * gap,
        100 * thresholds.max_gap_fraction,
        [f"{strain}: gaps at GPS " + ", ".join(f"{s:.3f}-{e:.3f}" for s, e in gaps)] if gap > thresholds.max_gap_fraction else [],
        False,
    )


def assess(summary: RawSegmentSummary, run: ObservingRun, thresholds: Thresholds = Thresholds()) -> dict[str, Outcome]:
    """One :class:`Outcome` per name in :data:`CHECKS`; gaps and livetime count only the window's part inside the run."""
    strain = summary.strain.name
    channels = summary.channels
    window = f"window {summary.attrs['window']}"
    if summary.outside_observing:
        outside = f"{window} is outside every observing segment of {run.name} ({summary.attrs['observing_source']}): nothing to check"
        return {name: Outcome(passed=True, measured=outside, value=0.0, limit=0.0) for name in CHECKS}

    nonfinite = [c for c in channels if c.nonfinite_count]
    flat = [c for c in channels if c.max_flat_seconds >= thresholds.max_flat_seconds]
    longest_flat = max(channels, key=lambda c: c.max_flat_seconds)
    rates = [c for c in channels if c.rate_mismatch]
    missing = [c for c in channels if not c.present]  # in none of the window's frames (only a listed channel can be)
    partial = [c for c in channels if c.present and c.absent_from]  # in some of them: came or went mid-window
    n = len(channels)
    n_nonfinite = sum(c.nonfinite_count for c in channels)

    return {
        "no_nonfinite_samples": _outcome(
            f"{n_nonfinite} NaN/inf samples in {n} channels of {window}, limit 0",
            n_nonfinite,
            0,
            [f"{c.name}: {c.nonfinite_count} NaN/inf samples, first at GPS {c.first_nonfinite_gps:.4f}" for c in nonfinite],
            any(c.name == strain for c in nonfinite),
        ),
        "no_flatlined_channels": _outcome(
            f"longest constant stretch {longest_flat.max_flat_seconds:.3f} s ({longest_flat.name}) in {window}, "
            f"limit {thresholds.max_flat_seconds:g} s",
            longest_flat.max_flat_seconds,
            thresholds.max_flat_seconds,
            [f"{c.name}: constant for {c.max_flat_seconds:.1f} s from GPS {c.first_flat_gps:.4f}" for c in flat],
            any(c.name == strain for c in flat),
        ),
        "gap_fraction": _gap_fraction(summary, run, window, thresholds),
        "sample_rates": _outcome(
            f"{len(rates)} of {n} channels with data left out for an unexpected or changing native rate in {window}, limit 0",
            len(rates),
            0,
            [f"{c.name}: {c.rate_mismatch}" for c in rates],
            any(c.name == strain for c in rates),
        ),
        "channels_present": _outcome(
            f"{len(missing)} of {n} channels missing from every frame file and {len(partial)} from some of {window}, limit 0",
            len(missing) + len(partial),
            0,
            [f"{c.name}: not in any frame file" for c in missing]
            + [f"{c.name}: not in {c.absent_from} (a gap in this channel)" for c in partial],
            strain in {c.name for c in missing},
        ),
    }
