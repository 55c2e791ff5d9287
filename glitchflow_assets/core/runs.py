"""Observing-run registry: which runs exist, their GPS spans, cadences, frame sources and channels.

The registry ships as ``runs.yaml`` beside this module; ``$GLITCHFLOW_RUNS`` names a user file of the
same shape whose runs replace (same name) or extend the shipped ones. A run is added by editing YAML only.
"""

import fnmatch
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from glitchflow_assets.core.home import HOME_ENV, glitchflow_home
from glitchflow_assets.core.windows import Cadence

RUNS_ENV = "GLITCHFLOW_RUNS"
SHIPPED_REGISTRY = Path(__file__).with_name("runs.yaml")
FRAME_KINDS = ("gwf", "gwosc-hdf5")
_RUN_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,31}$")


@dataclass(frozen=True)
class FrameSource:
    """Where a run's data files live: a directory searched recursively for OBS-TAG-GPS-DUR files."""

    kind: str
    path: Path

    @property
    def extension(self) -> str:
        return ".gwf" if self.kind == "gwf" else ".hdf5"


@dataclass(frozen=True)
class ObservingRun:
    name: str
    gps_start: int
    gps_end: int
    cadence: Cadence
    sample_rate: int
    strain_channel: str
    aux_channels: tuple[str, ...]
    frames: FrameSource
    channel_rates: dict[str, float] = field(default_factory=dict)
    description: str = ""
    watch: bool = False  # new-frame sensor on by default
    annalisa: dict = field(default_factory=dict)  # AnnalisaConfig overrides for this run
    backfill_batch: int = 1  # windows per run when backfilling window assets

    def aux_is_pattern(self) -> bool:
        return any(any(c in name for c in "*?[") for name in self.aux_channels)

    def resolve_aux_channels(self, available: list[str]) -> list[str]:
        """Aux channel names for this run given a frame's table of contents (patterns expanded, order kept)."""
        names: list[str] = []
        for entry in self.aux_channels:
            matches = sorted(fnmatch.filter(available, entry)) if any(c in entry for c in "*?[") else [entry]
            names.extend(m for m in matches if m != self.strain_channel and m not in names)
        return names


class RegistryError(ValueError):
    """The run registry (shipped or user file) is malformed."""


def _expand(path: str) -> Path:
    env = dict(os.environ)
    env.setdefault(HOME_ENV, str(glitchflow_home()))
    expanded = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m.group(1) or m.group(2), m.group(0)), path)
    return Path(expanded).expanduser()


def _parse_run(name: str, spec: dict, source: Path) -> ObservingRun:
    where = f"{source}: run {name!r}"
    if not _RUN_NAME_RE.fullmatch(name):
        raise RegistryError(f"{where}: run names are letters, digits and '_' (it becomes a path and an asset key)")
    if not isinstance(spec, dict):
        raise RegistryError(f"{where}: expected a mapping")
    required = ("gps_start", "gps_end", "window", "strain_channel", "frames")
    missing = [k for k in required if k not in spec]
    if missing:
        raise RegistryError(f"{where}: missing field(s) {', '.join(missing)}")
    try:
        gps_start, gps_end = int(spec["gps_start"]), int(spec["gps_end"])
        cadence = Cadence.parse(spec["window"])
        sample_rate = int(spec.get("sample_rate", 4096))
    except (TypeError, ValueError) as exc:
        raise RegistryError(f"{where}: {exc}") from exc
    if gps_end <= gps_start:
        raise RegistryError(f"{where}: gps_end {gps_end} must be after gps_start {gps_start}")
    if sample_rate <= 0 or sample_rate & (sample_rate - 1):
        raise RegistryError(f"{where}: sample_rate {sample_rate} must be a power of two")
    frames = spec["frames"]
    if not isinstance(frames, dict) or frames.get("kind") not in FRAME_KINDS or not frames.get("path"):
        raise RegistryError(f"{where}: frames needs kind ({' | '.join(FRAME_KINDS)}) and path")
    batch = spec.get("backfill_batch", 1)
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise RegistryError(f"{where}: backfill_batch {batch!r} must be a positive integer (windows per backfill run)")
    aux = spec.get("aux_channels", [])
    aux = [aux] if isinstance(aux, str) else list(aux)
    return ObservingRun(
        name=name,
        gps_start=gps_start,
        gps_end=gps_end,
        cadence=cadence,
        sample_rate=sample_rate,
        strain_channel=str(spec["strain_channel"]),
        aux_channels=tuple(str(a) for a in aux),
        frames=FrameSource(frames["kind"], _expand(str(frames["path"]))),
        channel_rates={str(k): float(v) for k, v in (spec.get("channel_rates") or {}).items()},
        description=str(spec.get("description", "")),
        watch=bool(spec.get("watch", False)),
        annalisa=dict(spec.get("annalisa") or {}),
        backfill_batch=batch,
    )


def _read_runs(path: Path) -> dict[str, ObservingRun]:
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise RegistryError(f"cannot read run registry {path}: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("runs"), dict):
        raise RegistryError(f"{path}: expected a top-level 'runs:' mapping")
    return {str(name): _parse_run(str(name), spec, path) for name, spec in doc["runs"].items()}


def load_registry(user_file: str | Path | None = None) -> dict[str, ObservingRun]:
    """The shipped runs, overridden/extended by ``user_file`` (default: ``$GLITCHFLOW_RUNS``)."""
    runs = _read_runs(SHIPPED_REGISTRY)
    user_file = user_file or os.environ.get(RUNS_ENV)
    if user_file:
        runs.update(_read_runs(Path(user_file)))
    return runs
