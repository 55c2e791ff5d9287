"""Upstream artifacts read as the Dagster instance recorded them, or a failure that says how to rebuild them.

Dagster records what an asset produced (its materialization and data version); the disk holds the file. The two
part when a file is deleted, truncated or replaced after it was materialized. Every read of an upstream artifact
by an asset goes through :class:`Inputs`, which checks the file against the record: a missing file, one that no
longer reads, or one whose content digest (its data version) is not the one recorded fails the reading step with
a message naming the upstream asset, its partition, the file and the command that rebuilds it. ``glitchflow
materialize`` uses the same check (:meth:`Inputs.problem`) to re-materialize such windows instead of skipping them,
so a re-run heals the chain.
"""

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn, Protocol, TypeVar

import dagster as dg

from glitchflow_assets.core.artifacts.annalisa_scores import read_scores
from glitchflow_assets.core.artifacts.channel_selection import ChannelSelection, read_selection
from glitchflow_assets.core.artifacts.glitch_events import read_events
from glitchflow_assets.core.artifacts.raw_strain_segments import RawSegmentSummary, read_summary
from glitchflow_assets.core.artifacts.spectrograms import read_spectrograms
from glitchflow_assets.core.artifacts.storage import sha256sum
from glitchflow_assets.core.ingest.assemble import IngestError, WindowChannels, window_channels
from glitchflow_assets.core.runs.registry import ObservingRun
from glitchflow_assets.core.runs.windows import Window, window_for_key
from glitchflow_assets.lib.names import CLEANED, EVENTS, RAW, SCORES, SELECTION, SPECTROGRAMS, WAVEFORMS, asset_key
from glitchflow_assets.lib.resources import GlitchflowStorage

DATA_VERSION_TAG = "dagster/data_version"
WINDOW_VERSION_KEY = "window_data_version"  # a batched window's own data version, in its metadata
# the window artifacts whose readers compute the data version their assets record
WINDOW_READERS = {RAW: read_summary, EVENTS: read_events, SCORES: read_scores, SPECTROGRAMS: read_spectrograms}


class Versioned(Protocol):
    def data_version(self) -> str: ...


A = TypeVar("A", bound=Versioned)
T = TypeVar("T")


def _data_version(artifact: Versioned) -> str:
    return artifact.data_version()


# what core readers raise for a damaged artifact (open_hdf5: OSError/KeyError naming the file; SchemaError is a ValueError)
READ_ERRORS = (OSError, KeyError, ValueError)


def recorded_version(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str | None) -> str | None:
    """The data version of ``key``'s latest materialization (of ``partition``), None when it has none. A window
    materialized in a batch carries its own in metadata :data:`WINDOW_VERSION_KEY` (the batch's is in the tag)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition else None), limit=1
    ).records
    if not records:
        return None
    materialization = records[0].asset_materialization
    own = materialization.metadata.get(WINDOW_VERSION_KEY)
    if own is not None:
        return str(own.value)
    rows = materialization.metadata.get("windows")  # batches recorded before windows had their own metadata
    if partition and rows is not None:
        return next((str(r["data_version"]) for r in rows.value if r.get("window") == partition and "data_version" in r), None)
    return materialization.tags.get(DATA_VERSION_TAG)


def rebuild_hint(run: ObservingRun, asset: str, window: Window | None) -> str:
    """How a user rebuilds ``run``'s ``asset`` (one window of it, for window assets)."""
    if window is None:
        return (
            f"re-materialize {run.name}/{asset} (its Materialize button in the UI, or glitchflow materialize {run.name} "
            f"--through {asset} over its windows)"
        )
    return (
        f"re-materialize {run.name}/{asset} partition {window.key} (glitchflow materialize {run.name} --gps-start {window.gps_start} "
        f"--gps-end {window.gps_end} --through {asset}, or that partition's Materialize in the UI)"
    )


@dataclass(frozen=True)
class Inputs:
    """Reads ``run``'s artifacts from ``storage`` for a step, checked against what ``instance`` recorded (no check
    without an instance)."""

    storage: GlitchflowStorage
    run: ObservingRun
    instance: dg.DagsterInstance | None

    def window(self, asset: str, window: Window, read: Callable[[Path], A]) -> A:
        """``asset``'s artifact for ``window``, read by ``read`` (a core reader returning an object with ``data_version``)."""
        return self._read(asset, window, self.storage.window_file(self.run.name, asset, window), read, _data_version)

    def run_level(self, asset: str, read: Callable[[Path], T], version: Callable[[T], str], suffix: str = ".h5") -> T:
        """The run-level ``asset``'s artifact, read by ``read``; ``version`` gives the data version its asset records."""
        return self._read(asset, None, self.storage.run_file(self.run.name, asset, suffix), read, version)

    def run_level_file(self, asset: str, path: Path, digest_key: str, read: Callable[[Path], T]) -> T:
        """A file of the run-level ``asset`` whose SHA-256 its latest materialization recorded as metadata ``digest_key``,
        read by ``read`` once its bytes are checked."""
        what = f"{self.run.name}/{asset}"
        if not path.exists():
            self._fail(f"{what}: its file {path} is missing", asset, None)
        if self.instance is not None:
            records = self.instance.fetch_materializations(asset_key(self.run.name, asset), limit=1).records
            recorded = records[0].asset_materialization.metadata.get(digest_key) if records else None
            found = sha256sum(path)
            if recorded is not None and found != recorded.value:
                self._fail(
                    f"{what}: its file {path} is not the one materialized (SHA-256 {found[:16]}... on disk, {recorded.value[:16]}... "
                    "recorded): it was replaced or rewritten outside this instance",
                    asset,
                    None,
                )
        try:
            return read(path)
        except READ_ERRORS as exc:
            self._fail(f"{what}: its file {path} cannot be read ({exc})", asset, None)

    def problem(self, asset: str, key: str, read: Callable[[Path], Versioned]) -> str | None:
        """Why the materialized window ``key`` of ``asset`` is not what the instance recorded (None when it is)."""
        try:
            self.window(asset, window_for_key(key, self.run.cadence), read)
        except dg.Failure as failure:
            return failure.description
        return None

    def _read(self, asset: str, window: Window | None, path: Path, read: Callable[[Path], T], version: Callable[[T], str]) -> T:
        what = f"{self.run.name}/{asset}" + (f" window {window.key}" if window else "")
        if not path.exists():
            self._fail(f"{what}: its file {path} is missing", asset, window)
        try:
            artifact = read(path)
        except READ_ERRORS as exc:
            self._fail(f"{what}: its file {path} cannot be read ({exc})", asset, window)
        if self.instance is not None:
            recorded = recorded_version(self.instance, asset_key(self.run.name, asset), window.key if window else None)
            found = version(artifact)
            if recorded is not None and found != recorded:
                self._fail(
                    f"{what}: its file {path} is not the one materialized (data version {found} on disk, {recorded} recorded): "
                    "it was replaced or rewritten outside this instance",
                    asset,
                    window,
                )
        return artifact

    def _fail(self, message: str, asset: str, window: Window | None) -> NoReturn:
        raise dg.Failure(description=f"{message}; {rebuild_hint(self.run, asset, window)}")


def materialized_and_intact(
    instance: dg.DagsterInstance, run: ObservingRun, report: Callable[[str], None] = lambda problem: None
) -> Callable[[str, str | None], bool]:
    """Whether ``run``'s asset (and window key; None for a run-level asset) is materialized in ``instance`` and, for the
    window assets with a reader, its file is the one recorded. What is found damaged goes to ``report``; the runner
    then materializes it again instead of skipping it."""
    inputs = Inputs(GlitchflowStorage(), run, instance)
    materialized = functools.cache(lambda asset: instance.get_materialized_partitions(asset_key(run.name, asset)))

    def done(asset: str, key: str | None) -> bool:
        if key is None:
            event = instance.get_latest_materialization_event(asset_key(run.name, asset))
            if event is not None and _step_failed(instance, event):
                report(f"{run.name}/{asset} failed a blocking check when it was last materialized (run {event.run_id[:8]})")
                return False
            return event is not None
        if key not in materialized(asset):
            return False
        problem = inputs.problem(asset, key, WINDOW_READERS[asset]) if asset in WINDOW_READERS else None
        if problem:
            report(problem)
        return problem is None

    return done


def _step_failed(instance: dg.DagsterInstance, event: dg.EventLogEntry) -> bool:
    """Whether the step that recorded materialization ``event`` failed after it (a blocking check, e.g. a quality gate)."""
    failures = instance.all_logs(event.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    return any(f.step_key == event.step_key for f in failures)


def step_inputs(context: dg.AssetExecutionContext, storage: GlitchflowStorage, run: ObservingRun) -> Inputs:
    """The :class:`Inputs` of an asset step, checked against the step's Dagster instance."""
    return Inputs(storage, run, context.instance)


def window_raw(inputs: Inputs, window: Window) -> tuple[Path, RawSegmentSummary]:
    """The window's raw_strain_segments file and that file's summary (checked against the instance's record)."""
    summary = inputs.window(RAW, window, read_summary)
    return inputs.storage.window_file(inputs.run.name, RAW, window), summary


def window_witnesses(inputs: Inputs, window: Window, witnesses: list[str]) -> WindowChannels:
    """The window's strain (from its checked raw_strain_segments file) and ``witnesses`` (from the frames that file was
    made from) at the analysis rate; a frame file gone or changed since fails the step naming it."""
    _, summary = window_raw(inputs, window)
    try:
        return window_channels(inputs.run, window, summary, witnesses)
    except IngestError as exc:
        raise dg.Failure(description=str(exc)) from exc


TWIN_SUFFIX = ".twin.h5"  # the champion twin (Wiener filter or learned model) that cleaned_strain applies, HDF5


def champion_twin_file(storage: GlitchflowStorage, run: ObservingRun) -> Path:
    """The champion time-domain twin that ``cleaned_strain`` applies (written by ``glitch_waveforms`` once its gate passes)."""
    return storage.run_file(run.name, WAVEFORMS, TWIN_SUFFIX)


def cleaning_report_path(storage: GlitchflowStorage, run: ObservingRun, window: Window) -> Path:
    """The JSON cleaning report beside a window's ``cleaned_strain`` file (what the evaluation and the CLI's summary read)."""
    return storage.window_file(run.name, CLEANED, window).with_suffix(".json")


def selection_file(storage: GlitchflowStorage, run: ObservingRun) -> Path:
    """The run's channel-selection JSON (:mod:`glitchflow_assets.core.artifacts.channel_selection`)."""
    return storage.run_file(run.name, SELECTION, ".json")


def read_run_selection(inputs: Inputs) -> ChannelSelection:
    """The run's channel selection, checked against the instance's record of it."""
    return inputs.run_level(SELECTION, read_selection, lambda selection: selection.version, ".json")
