"""Analysis windows: cadences, GPS <-> UTC, and window partition keys.

A run is cut into UTC-aligned windows (what Dagster's time partitions show); each window covers
the GPS span [gps_start, gps_end) of the same instants (leap seconds included).
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import lal

PARTITION_KEY_FORMAT = "%Y-%m-%dT%H:%M"
_KEY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$")
_CADENCE_RE = re.compile(r"^(\d+)(min|h|d)$")


@dataclass(frozen=True)
class Cadence:
    """A window length that tiles the UTC day exactly (so cron can express it)."""

    text: str
    seconds: int
    cron: str

    @classmethod
    def parse(cls, text: str) -> "Cadence":
        m = _CADENCE_RE.fullmatch(str(text))
        if not m:
            raise ValueError(f"window cadence {text!r}: expected Nmin, Nh or 1d (e.g. 5min, 1h)")
        n, unit = int(m.group(1)), m.group(2)
        if unit == "min" and n > 0 and 60 % n == 0:
            cron = "* * * * *" if n == 1 else f"*/{n} * * * *"
            return cls(text, n * 60, cron)
        if unit == "h" and n > 0 and 24 % n == 0:
            cron = "0 * * * *" if n == 1 else f"0 */{n} * * *"
            return cls(text, n * 3600, cron)
        if unit == "d" and n == 1:
            return cls(text, 86400, "0 0 * * *")
        raise ValueError(f"window cadence {text!r}: N must divide 60 (min) or 24 (h), or be 1d")


# LAL's leap-second table (C, microseconds per call): sensors convert thousands of windows per tick.
def gps_to_utc(gps: float) -> datetime:
    """A GPS time as a UTC-aware datetime, leap seconds included, fractional seconds kept."""
    whole = int(gps // 1)
    y, mo, d, h, mi, s = lal.GPSToUTC(whole)[:6]
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC) + timedelta(seconds=gps - whole)


def utc_to_gps(when: datetime) -> float:
    """A UTC-aware datetime as GPS seconds, leap seconds included; a naive datetime is refused."""
    if when.tzinfo is None:
        raise ValueError("naive datetime: pass a UTC-aware datetime")
    when = when.astimezone(UTC)
    whole = when.replace(microsecond=0)
    return lal.UTCToGPS(whole.timetuple()) + when.microsecond / 1e6


def floor_to_cadence(when: datetime, cadence: Cadence) -> datetime:
    """The start of the window holding ``when`` (windows tile each UTC day from midnight)."""
    day = when.replace(hour=0, minute=0, second=0, microsecond=0)
    elapsed = int((when - day).total_seconds())
    return day + timedelta(seconds=elapsed - elapsed % cadence.seconds)


def ceil_to_cadence(when: datetime, cadence: Cadence) -> datetime:
    """``when`` if a window starts there, else the start of the next window."""
    floor = floor_to_cadence(when, cadence)
    return floor if floor == when else floor + timedelta(seconds=cadence.seconds)


@dataclass(frozen=True)
class Window:
    """One analysis window: a partition key and the GPS span it covers."""

    key: str
    gps_start: int
    gps_end: int

    @property
    def duration(self) -> int:
        return self.gps_end - self.gps_start


def validate_partition_key(key: str) -> str:
    """Reject anything that is not a window key before it can reach a file path."""
    if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
        raise ValueError(f"invalid window partition key {key!r}: expected YYYY-MM-DDTHH:MM (UTC)")
    return key


def window_for_key(key: str, cadence: Cadence) -> Window:
    """The window a partition key names, with its GPS span; a key not aligned to ``cadence`` is refused, naming the window that holds it."""
    start = datetime.strptime(validate_partition_key(key), PARTITION_KEY_FORMAT).replace(tzinfo=UTC)
    if (floor := floor_to_cadence(start, cadence)) != start:
        nearest = window_for_key(floor.strftime(PARTITION_KEY_FORMAT), cadence)
        raise ValueError(
            f"partition key {key!r} is not aligned to the {cadence.text} cadence; the window holding it is {nearest.key!r} "
            f"(GPS {nearest.gps_start}-{nearest.gps_end})"
        )
    end = start + timedelta(seconds=cadence.seconds)
    return Window(key, round(utc_to_gps(start)), round(utc_to_gps(end)))


def window_holding(gps: float, cadence: Cadence) -> Window:
    """The window whose GPS span holds ``gps``."""
    return windows_overlapping(gps, gps + 1e-6, cadence)[0]


def windows_overlapping(gps_start: float, gps_end: float, cadence: Cadence) -> list[Window]:
    """Every window whose GPS span intersects [gps_start, gps_end)."""
    first = floor_to_cadence(gps_to_utc(gps_start), cadence)
    windows = []
    when = first
    while True:
        window = window_for_key(when.strftime(PARTITION_KEY_FORMAT), cadence)
        if window.gps_start >= gps_end:
            break
        if window.gps_end > gps_start:
            windows.append(window)
        when += timedelta(seconds=cadence.seconds)
    return windows
