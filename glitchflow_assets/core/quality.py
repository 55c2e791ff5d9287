"""Data-quality assessment of an ingested window (pure; the Dagster checks only report it).

Each check returns an :class:`Outcome` whose messages name the channel and the GPS time. Severity is
``ERROR`` where the strain itself is unusable (the blocking checks stop it flowing downstream) and
``WARN`` for auxiliary-channel problems and legitimate gaps.
"""

from dataclasses import dataclass, field

from glitchflow_assets.core.raw_segments import RawSegmentSummary
from glitchflow_assets.core.runs import ObservingRun
from glitchflow_assets.core.segments import subtract


@dataclass(frozen=True)
class Thresholds:
    max_gap_fraction: float = 0.1  # strain gap fraction above which the window is flagged
    max_flat_seconds: float = 1.0  # a channel constant for this long is flat-lined


@dataclass
class Outcome:
    passed: bool
    severity: str = "WARN"  # ERROR | WARN
    messages: list[str] = field(default_factory=list)

    @property
    def description(self) -> str:
        return "; ".join(self.messages) if self.messages else "ok"


CHECKS = ("no_nonfinite_samples", "no_flatlined_channels", "gap_fraction", "sample_rates", "channels_present")
BLOCKING = frozenset({"no_nonfinite_samples", "sample_rates"})


def _outcome(messages: list[str], strain_hit: bool) -> Outcome:
    return Outcome(passed=not messages, severity="ERROR" if strain_hit else "WARN", messages=messages)


def assess(summary: RawSegmentSummary, run: ObservingRun, thresholds: Thresholds = Thresholds()) -> dict[str, Outcome]:
    """One :class:`Outcome` per name in :data:`CHECKS`."""
    strain = summary.strain.name
    channels = summary.channels
    window = f"window {summary.attrs['window']}"

    nonfinite = [c for c in channels if c.nonfinite_count]
    flat = [c for c in channels if c.max_flat_seconds >= thresholds.max_flat_seconds]
    rates = [c for c in channels if c.rate_mismatch]
    gap = float(summary.attrs["gap_fraction"])
    gaps = subtract([(float(summary.attrs["gps_start"]), float(summary.attrs["gps_end"]))], summary.strain.segments)
    expected = [] if run.aux_is_pattern() else list(run.aux_channels)
    missing = [c.name for c in channels if not c.present and (c.name in expected or c.name == strain)]

    return {
        "no_nonfinite_samples": _outcome(
            [f"{c.name}: {c.nonfinite_count} NaN/inf samples, first at GPS {c.first_nonfinite_gps:.4f} ({window})" for c in nonfinite],
            any(c.name == strain for c in nonfinite),
        ),
        "no_flatlined_channels": _outcome(
            [f"{c.name}: constant for {c.max_flat_seconds:.1f} s from GPS {c.first_flat_gps:.4f} ({window})" for c in flat],
            any(c.name == strain for c in flat),
        ),
        "gap_fraction": _outcome(
            [f"{strain}: {100 * gap:.1f} % of {window} missing, gaps at GPS " + ", ".join(f"{s:.1f}-{e:.1f}" for s, e in gaps)]
            if gap > thresholds.max_gap_fraction
            else [],
            False,
        ),
        "sample_rates": _outcome([f"{c.name}: {c.rate_mismatch}" for c in rates], bool(rates)),
        "channels_present": _outcome([f"{name}: not in any frame file of {window}" for name in missing], strain in missing),
    }
