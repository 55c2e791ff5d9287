"""Observing-run registry: which runs exist, their GPS spans, cadences, frame sources and channels.

The registry ships as ``runs.yaml`` beside this module; ``$GLITCHFLOW_RUNS`` names a user file of the
same shape whose runs replace (same name) or extend the shipped ones. A run is added by editing YAML only.
"""

import dataclasses
import fnmatch
import math
import os
import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

from glitchflow_assets.core.runs.observing import SegmentError, SegmentSource
from glitchflow_assets.core.runs.windows import Cadence
from glitchflow_assets.core.settings import HOME_ENV, glitchflow_home, runs_file

if TYPE_CHECKING:
    from glitchflow_assets.core.signal.annalisa import AnnalisaConfig

RUNS_ENV = "GLITCHFLOW_RUNS"
SHIPPED_REGISTRY = Path(__file__).with_name("runs.yaml")
_RUN_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,31}$")
_CRON_RE = r"^[0-9*/,-]+( [0-9*/,-]+){4}$"  # five numeric cron fields (minute hour day month weekday)


DIRECTORY_KINDS = ("gwf", "gwosc-hdf5")  # a directory tree of files of that format
LIST_KINDS = ("cache", "gwdatafind")  # a LAL cache / FFL file, or a GWDataFind server, naming files of ``format``


@dataclass(frozen=True)
class FrameSource:
    """Where a run's data files are found (``kind``) and how each is decoded (``format``: gwf | gwosc-hdf5)."""

    kind: str  # one of DIRECTORY_KINDS or LIST_KINDS
    path: Path  # the directory (directory kinds) or the list file (cache); unused for gwdatafind
    format: str = "gwf"
    url: str = ""  # gwdatafind: the server
    observatory: str = ""  # gwdatafind: observatory letters, e.g. V, H, HLV
    frametype: str = ""  # gwdatafind: the frame type (dataset), e.g. HoftOnline

    @property
    def extension(self) -> str:
        return ".gwf" if self.format == "gwf" else ".hdf5"

    @property
    def directory(self) -> Path | None:
        """The directory the files lie under, for a directory source (paths are recorded relative to it)."""
        return self.path if self.kind in DIRECTORY_KINDS else None

    @property
    def exists(self) -> bool:
        """Whether there is something to ask: the directory or the list file is there (a server is assumed up)."""
        return self.kind == "gwdatafind" or (self.path.is_dir() if self.kind in DIRECTORY_KINDS else self.path.is_file())

    def describe(self) -> str:
        """The source in words, for descriptions and messages."""
        if self.kind == "gwdatafind":
            return f"GWDataFind server {self.url} ({self.observatory}-{self.frametype}, {self.format})"
        return f"{'frame list' if self.kind == 'cache' else 'directory'} {self.path} ({self.format})"


@dataclass(frozen=True)
class EventSource:
    """Where a run's ``glitch_events`` come from: the built-in search alone, or an external trigger list (Omicron or
    Gravity Spy file) that replaces it or is added beside it, optionally cut to ``min_snr`` and to some ``classes``."""

    source: str = "builtin"  # builtin | omicron | gravityspy
    path: Path | None = None
    mode: str = "replace"  # replace | add
    min_snr: float = 0.0
    classes: tuple[str, ...] = ()  # empty: every class


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
    show_without_frames: bool = False  # load into the code location even while its frame directory is missing
    refresh_cron: str = "0 6 * * *"  # when run-level stages (selection, dataset, model) refresh, UTC
    span_follows_frames: bool = False  # the span ends where its frames end (a simulated run): no window without data
    events: EventSource = EventSource()  # where glitch_events come from
    segments: SegmentSource | None = None  # observing segments; None: every second with data is analysed

    def annalisa_config(self) -> "AnnalisaConfig":
        """This run's witness-selection settings: the defaults with the registry's overrides."""
        from glitchflow_assets.core.signal.annalisa import AnnalisaConfig  # torch: imported when a stage needs it

        return AnnalisaConfig.from_mapping(self.annalisa)

    @property
    def has_frame_source(self) -> bool:
        return self.frames.exists

    @property
    def segments_channel(self) -> str:
        """The state-vector channel the observing segments come from ('' when none): never an auxiliary channel."""
        return self.segments.channel if self.segments else ""

    def aux_is_pattern(self) -> bool:
        return any(any(c in name for c in "*?[") for name in self.aux_channels)

    def resolve_aux_channels(self, available: list[str]) -> list[str]:
        """Aux channel names for this run given a frame's table of contents (patterns expanded, order kept)."""
        names: list[str] = []
        for entry in self.aux_channels:
            matches = sorted(fnmatch.filter(available, entry)) if any(c in entry for c in "*?[") else [entry]
            names.extend(m for m in matches if m not in (self.strain_channel, self.segments_channel) and m not in names)
        return names


class RegistryError(ValueError):
    """The run registry (shipped or user file) is malformed."""


def _expand(path: str) -> Path:
    env = dict(os.environ)
    env.setdefault(HOME_ENV, str(glitchflow_home()))
    return Path(string.Template(path).safe_substitute(env)).expanduser()


GpsTime = Annotated[int, Field(strict=True, ge=0, lt=10**11)]  # an integer GPS second (a float or "1e12" is refused)


class _FramesSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["gwf", "gwosc-hdf5", "cache", "gwdatafind"]
    path: Annotated[str, Field(strict=True, min_length=1)] | None = None
    format: Literal["gwf", "gwosc-hdf5"] | None = None
    url: Annotated[str, Field(strict=True, pattern=r"^https?://[A-Za-z0-9.:\[\]_-]+(/[A-Za-z0-9._~/-]*)?$")] | None = None
    observatory: Annotated[str, Field(strict=True, pattern=r"^[A-Z][A-Z0-9]{0,7}$")] | None = None
    type: Annotated[str, Field(strict=True, pattern=r"^[A-Za-z0-9_]{1,64}$")] | None = None


def _frame_source(spec: _FramesSpec, where: str) -> FrameSource:
    """The frame source of a run's ``frames:`` entry; what a kind needs and what it cannot use are errors."""
    needs = {"gwdatafind": ("url", "observatory", "type")}.get(spec.kind, ("path",))
    unused = {"gwdatafind": ("path",), "cache": ("url", "observatory", "type")}.get(spec.kind, ("url", "observatory", "type", "format"))
    for name in needs:
        if getattr(spec, name) is None:
            raise RegistryError(f"{where}: field frames.{name}: required for frames of kind {spec.kind}")
    for name in unused:
        if getattr(spec, name) is not None:
            raise RegistryError(f"{where}: field frames.{name}: not used by frames of kind {spec.kind}")
    fmt = spec.kind if spec.kind in DIRECTORY_KINDS else spec.format or "gwf"
    path = _expand(spec.path) if spec.path else Path()
    return FrameSource(spec.kind, path, fmt, spec.url or "", spec.observatory or "", spec.type or "")


class _EventsSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: Literal["builtin", "omicron", "gravityspy"] = "builtin"
    path: Annotated[str, Field(strict=True, min_length=1)] | None = None
    mode: Literal["replace", "add"] = "replace"
    min_snr: Annotated[float, Field(ge=0)] = 0.0
    classes: list[Annotated[str, Field(strict=True)]] = []


class _SegmentsSpec(BaseModel):
    """``segments:`` as written: a state vector (``channel``, ``bits``) or a segment ``file``."""

    model_config = ConfigDict(extra="forbid")
    channel: Annotated[str, Field(strict=True, min_length=1)] | None = None
    bits: list[Annotated[int, Field(strict=True, ge=0, le=62)] | Annotated[str, Field(strict=True, min_length=1)]] = []
    bit_names: list[Annotated[str, Field(strict=True, min_length=1)]] = []
    min_length: Annotated[float, Field(ge=0)] = 0.0
    file: Annotated[str, Field(strict=True, min_length=1)] | None = None
    flag: Annotated[str, Field(strict=True)] = ""


class _RunSpec(BaseModel):
    """One run as written in the YAML: every field typed (``watch: "false"`` is an error, not ``True``)."""

    model_config = ConfigDict(extra="forbid")
    gps_start: GpsTime
    gps_end: GpsTime
    window: Annotated[str, Field(strict=True)]
    strain_channel: Annotated[str, Field(strict=True, min_length=1)]
    frames: _FramesSpec
    sample_rate: Annotated[int, Field(strict=True, gt=0)] = 4096
    aux_channels: Annotated[str, Field(strict=True)] | list[Annotated[str, Field(strict=True)]] = []
    channel_rates: dict[str, Annotated[float, Field(gt=0)]] = {}
    description: str = ""
    watch: StrictBool = False
    annalisa: dict = {}
    backfill_batch: Annotated[int, Field(strict=True, ge=1)] = 1
    show_without_frames: StrictBool = False
    refresh_cron: Annotated[str, Field(strict=True, pattern=_CRON_RE)] = ObservingRun.refresh_cron
    span_follows_frames: StrictBool = False
    events: _EventsSpec = _EventsSpec()
    segments: _SegmentsSpec | None = None


def _parse_segments(spec: _SegmentsSpec | None, where: str) -> SegmentSource | None:
    """The run's observing-segment source, or None (every second with data counts); the file is read at ingest."""
    if spec is None:
        return None
    if (spec.channel is None) == (spec.file is None):
        raise RegistryError(
            f"{where}: field segments: give either channel (with bits) or file, not {'both' if spec.channel else 'neither'}"
        )
    if spec.file is not None:
        if spec.bits or spec.bit_names:
            raise RegistryError(f"{where}: field segments: bits and bit_names belong to a state-vector channel, not a file")
        return SegmentSource(file=_expand(spec.file), flag=spec.flag, min_length=spec.min_length)
    if not spec.bits:
        raise RegistryError(f"{where}: field segments.bits: list the state vector's bits that must all be set (indices or names)")
    if spec.flag:
        raise RegistryError(f"{where}: field segments.flag: names a flag in a segment file, not in a state vector")
    source = SegmentSource(channel=spec.channel, bits=tuple(spec.bits), bit_names=tuple(spec.bit_names), min_length=spec.min_length)
    if spec.bit_names:  # names are checked now where the registry gives them; a file's own names (GWOSC) at ingest
        try:
            source.mask()
        except SegmentError as exc:
            raise RegistryError(f"{where}: field segments.bits: {exc}") from None
    return source


def _parse_run(name: str, spec: object, source: Path) -> ObservingRun:
    where = f"{source}: run {name!r}"
    if not _RUN_NAME_RE.fullmatch(name):
        raise RegistryError(f"{where}: run names are letters, digits and '_' (it becomes a path and an asset key)")
    try:
        run = _RunSpec.model_validate(spec)
    except ValidationError as exc:
        problems = [f"field {'.'.join(map(str, e['loc'])) or '(the run)'}: {e['msg']} (got {e['input']!r})" for e in exc.errors()]
        raise RegistryError(f"{where}: " + "; ".join(problems)) from None
    try:
        cadence = Cadence.parse(run.window)
    except ValueError as exc:
        raise RegistryError(f"{where}: field window: {exc}") from exc
    if run.gps_end <= run.gps_start:
        raise RegistryError(f"{where}: gps_end {run.gps_end} must be after gps_start {run.gps_start}")
    if run.sample_rate & (run.sample_rate - 1):
        raise RegistryError(f"{where}: field sample_rate: {run.sample_rate} must be a power of two")
    if run.annalisa:
        from glitchflow_assets.core.signal.annalisa import AnnalisaConfig  # torch: only for a registry that tunes it

        try:
            AnnalisaConfig.from_mapping(run.annalisa)
        except ValueError as exc:
            raise RegistryError(f"{where}: field {exc}") from None
    aux = [run.aux_channels] if isinstance(run.aux_channels, str) else run.aux_channels
    return ObservingRun(
        name=name,
        gps_start=run.gps_start,
        gps_end=run.gps_end,
        cadence=cadence,
        sample_rate=run.sample_rate,
        strain_channel=run.strain_channel,
        aux_channels=tuple(aux),
        frames=_frame_source(run.frames, where),
        channel_rates=dict(run.channel_rates),
        description=run.description,
        watch=run.watch,
        annalisa=dict(run.annalisa),
        backfill_batch=run.backfill_batch,
        show_without_frames=run.show_without_frames,
        refresh_cron=run.refresh_cron,
        span_follows_frames=run.span_follows_frames,
        events=_event_source(run.events, where),
        segments=_parse_segments(run.segments, where),
    )


def _event_source(spec: _EventsSpec, where: str) -> EventSource:
    """The run's ``events`` field checked: a list source names its file, classes are Gravity Spy's, and only a labelled
    list (gravityspy) can be cut to classes."""
    if (spec.source == "builtin") != (spec.path is None):
        problem = "the built-in search reads no file" if spec.path else f"{spec.source} needs a path"
        raise RegistryError(f"{where}: field events.path: {problem}")
    if spec.classes:
        from glitchflow_assets.core.io.gravityspy import check_classes  # pandas: only for a registry that names classes

        if spec.source != "gravityspy":
            raise RegistryError(f"{where}: field events.classes: only a gravityspy list has class labels")
        try:
            check_classes(spec.classes, f"{where}: field events.classes")
        except ValueError as exc:
            raise RegistryError(str(exc)) from None
    path = _expand(spec.path) if spec.path else None
    return EventSource(spec.source, path, spec.mode, spec.min_snr, tuple(spec.classes))


def span_of_frames(run: ObservingRun) -> ObservingRun:
    """``run`` ending where the frame files in its directory end (by their names), within its registry span; the whole
    registry span while there are none yet (a sensor started before the first frames then ingests them as they come).
    Each load sees the frames there are then: after ``glitchflow simulate`` writes more, the UI shows them once the
    code location reloads (the new-frame sensor says so)."""
    from glitchflow_assets.core.io.discovery import find_frames  # numpy: only for the runs that need it
    from glitchflow_assets.core.io.frames import FrameError

    try:
        found, _ = find_frames(run.frames, run.gps_start, run.gps_end) if run.has_frame_source else ([], [])
    except FrameError:  # a list or server that cannot answer now must not keep the code location from loading
        found = []
    ends = [f.gps_end for f, _ in found if f.gps_end > run.gps_start and f.gps_start < run.gps_end]
    return dataclasses.replace(run, gps_end=min(run.gps_end, math.ceil(max(ends)))) if ends else run


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader keeps the last of two equal keys silently; two runs of one name are an error here."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def _read_runs(path: Path) -> dict[str, ObservingRun]:
    try:
        doc = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise RegistryError(f"cannot read run registry {path}: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("runs"), dict):
        raise RegistryError(f"{path}: expected a top-level 'runs:' mapping")
    return {str(name): _parse_run(str(name), spec, path) for name, spec in doc["runs"].items()}


def load_registry(user_file: str | Path | None = None, follow_frames: bool = True) -> dict[str, ObservingRun]:
    """The shipped runs, overridden/extended by ``user_file`` (default: ``$GLITCHFLOW_RUNS``); with ``follow_frames``,
    each run with ``span_follows_frames`` ends where its frames end (:func:`span_of_frames`)."""
    runs = _read_runs(SHIPPED_REGISTRY)
    user_file = user_file or runs_file()
    if user_file:
        runs.update(_read_runs(Path(user_file)))
    return {name: span_of_frames(run) if follow_frames and run.span_follows_frames else run for name, run in runs.items()}
