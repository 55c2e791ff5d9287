"""A span of an observing run submitted to the Dagster instance as a backfill, and the backfill followed.

``glitchflow materialize ... --submit`` creates the same object the UI's "Launch backfill" creates: an asset backfill
over the span's windows (and, with ``--through``, the run-level stages after them). The instance's daemon then
launches its runs through the instance's run coordinator and launcher - the default launcher on a laptop,
``K8sRunLauncher`` (with GPU step pods) on the cluster - batched by the window assets' backfill policy
(``backfill_batch`` windows per run). A failed window stops only what depends on it in that window; independent stages
and the other windows go on. ``glitchflow status`` reads the backfill back: per-asset progress, what failed and why,
what did not run because of it; ``--retry-failed`` re-submits what is not materialized, as the UI's "Re-execute"
does.
"""

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import dagster as dg
from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset
from dagster._core.definitions.events import AssetKeyPartitionKey
from dagster._core.definitions.selector import PartitionRangeSelector, PartitionsByAssetSelector, PartitionsSelector
from dagster._core.execution.backfill import BULK_ACTION_TERMINAL_STATUSES, PartitionBackfill
from dagster._core.storage.tags import PARENT_BACKFILL_ID_TAG, ROOT_BACKFILL_ID_TAG
from dagster._core.utils import make_new_backfill_id
from dagster._time import get_current_timestamp

from glitchflow_assets.core import settings
from glitchflow_assets.runner import RANGE_END, RANGE_START, Done, first_line, plan_group, stage_groups, window_batches

BACKFILL_ID = re.compile(r"[a-z]{8}")  # what Dagster's make_new_backfill_id makes
DAEMON_SILENT_S = 120.0  # a backfill daemon not heard from for this long is taken as not running


def backfill_url(backfill_id: str) -> str:
    """The backfill's page in the Dagster UI (``$GLITCHFLOW_DAGSTER_UI_URL``)."""
    return f"{settings.dagster_ui_url().rstrip('/')}/runs/b/{backfill_id}"


def span_targets(
    defs: dg.Definitions, run: str, windows: Sequence[str], through: str | None, done: Done | None
) -> dict[dg.AssetKey, list[str] | None]:
    """What a backfill of ``windows`` through ``through`` must materialize: each asset with its windows (None: a
    run-level asset). As in ``runner.materialize_span``, what ``done`` says is materialized and intact is left out
    until the first stage that needs work; every stage after it is targeted whole (its inputs change)."""
    graph = defs.resolve_asset_graph()
    targets: dict[dg.AssetKey, list[str] | None] = {}
    for partitioned, keys in stage_groups(defs, run, through):
        batches, _, _ = plan_group(graph, keys, partitioned, windows, None if targets else done)
        for key in keys if batches else ():
            targets[key] = [w for batch in batches for w in batch] if partitioned else None
    return targets


def submit_span(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    targets: dict[dg.AssetKey, list[str] | None],
    run_config: dict | None,
    tags: dict[str, str],
    title: str,
) -> str:
    """Create the backfill of ``targets`` (from :func:`span_targets`) on ``instance``; its id. ``run_config`` and
    ``tags`` go on every run it launches."""
    graph = defs.resolve_asset_graph()

    def selector(key: dg.AssetKey, windows: list[str] | None) -> PartitionsByAssetSelector:
        if windows is None:
            return PartitionsByAssetSelector(asset_key=key)
        ranges = window_batches(windows, graph.get(key).partitions_def.get_partition_keys(), len(windows))  # contiguous runs
        return PartitionsByAssetSelector(
            asset_key=key, partitions=PartitionsSelector(ranges=[PartitionRangeSelector(start=r[0], end=r[-1]) for r in ranges])
        )

    backfill = PartitionBackfill.from_partitions_by_assets(
        backfill_id=make_new_backfill_id(),
        asset_graph=graph,
        backfill_timestamp=get_current_timestamp(),
        tags=tags,
        dynamic_partitions_store=instance,
        partitions_by_assets=[selector(k, w) for k, w in targets.items()],
        title=title,
        description=None,
        run_config=run_config,
    )
    instance.add_backfill(backfill)
    return backfill.backfill_id


def daemon_running(instance: dg.DagsterInstance) -> bool:
    """Whether the instance's backfill daemon has been heard from lately (it launches a submitted backfill's runs)."""
    heartbeat = instance.get_daemon_heartbeats().get("BACKFILL")
    return heartbeat is not None and get_current_timestamp() - heartbeat.timestamp < DAEMON_SILENT_S


@dataclass
class FailedRun:
    """A run of the backfill that failed: its id, its windows, and each asset that failed in it with why."""

    run_id: str
    windows: list[str]
    reasons: dict[str, str]  # asset name -> its failed blocking check, else its step's (or the run's) error

    @property
    def assets(self) -> list[str]:
        return list(self.reasons)


@dataclass
class AssetProgress:
    """One asset of a backfill: windows targeted (1 for a run-level asset), materialized, failed or blocked by a
    failure upstream, and the rest (queued, running or not yet requested)."""

    name: str
    partitioned: bool
    targeted: int = 0
    materialized: int = 0
    failed: int = 0

    @property
    def pending(self) -> int:
        return self.targeted - self.materialized - self.failed


@dataclass
class BackfillReport:
    backfill_id: str
    title: str
    status: str
    runs: Counter = field(default_factory=Counter)  # run status -> count
    assets: list[AssetProgress] = field(default_factory=list)  # in the backfill's topological order
    failed_runs: list[FailedRun] = field(default_factory=list)
    blocked: dict[str, list[str | None]] = field(default_factory=dict)  # asset -> windows not run because of a failure

    @property
    def finished(self) -> bool:
        return self.status in {s.value for s in BULK_ACTION_TERMINAL_STATUSES}

    @property
    def succeeded(self) -> bool:
        return self.finished and not self.failed_runs and not self.blocked and all(a.pending == 0 for a in self.assets)

    @property
    def verdict(self) -> str:
        """What the backfill's status means for its targets (Dagster calls a backfill whose runs ended COMPLETED_SUCCESS
        even when a gate refused)."""
        failed = sum(len(f.reasons) * max(len(f.windows), 1) for f in self.failed_runs)
        blocked = sum(len(w) for w in self.blocked.values())
        if failed or blocked:
            return f"{failed} failed, {blocked} not run because of a failure" + ("" if self.finished else " so far")
        if not self.finished:
            return "in progress"
        return "every target materialized" if self.succeeded else "ended with targets not materialized"


def get_backfill(instance: dg.DagsterInstance, backfill_id: str) -> PartitionBackfill:
    """The backfill ``backfill_id`` of ``instance``, or a ValueError naming the instance."""
    if not BACKFILL_ID.fullmatch(backfill_id):
        raise ValueError(f"{backfill_id!r} is not a backfill id (eight lower-case letters, as `glitchflow materialize --submit` prints)")
    backfill = instance.get_backfill(backfill_id)
    if backfill is None:
        raise ValueError(f"no backfill {backfill_id} on the Dagster instance {instance.root_directory}")
    if not backfill.is_asset_backfill:
        raise ValueError(f"backfill {backfill_id} is a job backfill; glitchflow follows asset backfills (the UI shows this one)")
    return backfill


def backfill_report(defs: dg.Definitions, instance: dg.DagsterInstance, backfill_id: str) -> BackfillReport:
    """Where backfill ``backfill_id`` stands: per asset, per run, and what failed or was blocked. An asset whose step
    failed after recording its materialization (a blocking check: a quality gate) counts as failed, not done."""
    backfill = get_backfill(instance, backfill_id)
    graph = defs.resolve_asset_graph()
    data = backfill.get_asset_backfill_data(graph)
    runs = instance.get_runs(dg.RunsFilter.for_backfill(backfill_id))
    report = BackfillReport(backfill_id, backfill.title or "", backfill.status.value, Counter(r.status.value for r in runs))
    report.failed_runs = [_failed_run(instance, graph, r) for r in instance.get_runs(_failed_runs_of(backfill_id))]
    failed = _failed_subset(graph, report.failed_runs)
    progress = {k: AssetProgress(k.path[-1], graph.get(k).is_partitioned) for k in graph.toposorted_asset_keys if k in data.target_subset}
    for p in data.target_subset.iterate_asset_partitions():
        progress[p.asset_key].targeted += 1
    for p in (data.materialized_subset - failed).iterate_asset_partitions():
        progress[p.asset_key].materialized += 1
    for p in (data.failed_and_downstream_subset | failed).iterate_asset_partitions():
        progress[p.asset_key].failed += 1
        if p not in failed:
            report.blocked.setdefault(p.asset_key.path[-1], []).append(p.partition_key)
    report.assets = list(progress.values())
    return report


def _failed_runs_of(backfill_id: str) -> dg.RunsFilter:
    return dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE], tags=dg.DagsterRun.tags_for_backfill_id(backfill_id))


def _failed_subset(graph, failed_runs: list["FailedRun"]) -> AssetGraphSubset:
    """The asset partitions whose step failed in ``failed_runs`` (materialized or not)."""
    keys = {k.path[-1]: k for k in graph.get_all_asset_keys()}
    return AssetGraphSubset.from_asset_partition_set(
        {AssetKeyPartitionKey(keys[a], w) for f in failed_runs for a in f.assets for w in f.windows or [None]}, graph
    )


def _failed_run(instance: dg.DagsterInstance, graph, run: dg.DagsterRun) -> FailedRun:
    """A failed run of a backfill: its windows and the assets whose step failed (all of its selection if the run
    failed before any step), each with its first failed blocking check, else its first error."""
    kinds = {dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE, dg.DagsterEventType.ASSET_CHECK_EVALUATION}
    events = [e.dagster_event for e in instance.all_logs(run.run_id, of_type=kinds) if e.dagster_event]
    checks = [e.event_specific_data for e in events if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION]
    steps = {e.step_key.split("__")[-1]: e.step_failure_data.error for e in events if e.is_step_failure}
    run_errors = [e.job_failure_data.error for e in events if e.is_run_failure and e.job_failure_data]
    selection = sorted(run.asset_selection or ())

    def reason(asset: str) -> str:
        refused = [
            f"check {c.check_name}: {c.description}" for c in checks if c.asset_key.path[-1] == asset and not c.passed and c.blocking
        ]
        return first_line(refused + [e.message for e in [steps.get(asset), *run_errors] if e is not None])

    assets = sorted(steps) or [k.path[-1] for k in selection]
    return FailedRun(run.run_id, _run_windows(graph, run, selection), {a: reason(a) for a in assets})


def _run_windows(graph, run: dg.DagsterRun, selection: list[dg.AssetKey]) -> list[str]:
    """The windows a run of the backfill covered (its partition or partition range); none for a run-level run."""
    if run.tags.get("dagster/partition"):
        return [run.tags["dagster/partition"]]
    start, end = run.tags.get(RANGE_START), run.tags.get(RANGE_END)
    partitioned = [k for k in selection if graph.get(k).is_partitioned]
    if not (start and end and partitioned):
        return []
    keys = graph.get(partitioned[0]).partitions_def.get_partition_keys()
    return keys[keys.index(start) : keys.index(end) + 1]


def retry_failed(defs: dg.Definitions, instance: dg.DagsterInstance, backfill_id: str) -> str | None:
    """A new backfill of what backfill ``backfill_id`` left unmaterialized (failed - a gate that refused included -,
    blocked or never launched), with its run config and tags, as the UI's "Re-execute from failure" creates it; its
    id, or None when nothing is left."""
    backfill = get_backfill(instance, backfill_id)
    if backfill.status not in BULK_ACTION_TERMINAL_STATUSES:
        raise ValueError(f"backfill {backfill_id} is still {backfill.status.value}: wait for it (`glitchflow status {backfill_id} --wait`)")
    graph = defs.resolve_asset_graph()
    data = backfill.get_asset_backfill_data(graph)
    failed_runs = [_failed_run(instance, graph, r) for r in instance.get_runs(_failed_runs_of(backfill_id))]
    todo = data.target_subset - (data.materialized_subset - _failed_subset(graph, failed_runs))
    if todo.num_partitions_and_non_partitioned_assets == 0:
        return None
    retry = PartitionBackfill.from_asset_graph_subset(
        backfill_id=make_new_backfill_id(),
        asset_graph_subset=todo,
        dynamic_partitions_store=instance,
        tags={
            **backfill.tags,
            PARENT_BACKFILL_ID_TAG: backfill_id,
            ROOT_BACKFILL_ID_TAG: backfill.tags.get(ROOT_BACKFILL_ID_TAG, backfill_id),
        },
        backfill_timestamp=get_current_timestamp(),
        title=f"Re-execution of {backfill.title}" if backfill.title else None,
        description=backfill.description,
        run_config=backfill.run_config,
    )
    instance.add_backfill(retry)
    return retry.backfill_id
