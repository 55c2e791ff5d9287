"""Materialize one observing run's assets over a span of windows, in the asset graph's own order, through the run's
jobs - the same ones the sensors and the UI launch, so every run shows under its job.

The stage order is never written here: the run's assets are taken in topological order from the Definitions, and
consecutive assets of the same kind are grouped - window-partitioned ones into in-process runs of consecutive windows,
as many per run as the assets' backfill policy allows (the run's ``backfill_batch``, what a backfill from the UI
launches: run start-up and bookkeeping are paid once per batch), run-level ones into one run - each group run by the
job that holds it. Used by ``glitchflow demo|materialize`` (without ``--submit``), the tests and the benchmarks.

Each run is executed in this process but recorded as the UI's own launches are: with the origin of the workspace's
code location (``workspace.yaml``), so the UI lists it on the Overview timeline and on its job's Runs tab and can
re-execute it, and with tags naming its stage and its windows.
"""

import itertools
import os
import re
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import dagster as dg
from dagster._core.definitions.job_base import InMemoryJob
from dagster._core.execution.api import execute_run
from dagster._core.execution.job_execution_result import JobExecutionResult
from dagster._core.remote_origin import ManagedGrpcPythonEnvCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

from glitchflow_assets.core.artifacts.storage import process_alive
from glitchflow_assets.lib.names import CODE_LOCATION, DEFINITIONS_MODULE, JOBS, job_name

if TYPE_CHECKING:  # not exported by dagster's public API
    from dagster._core.definitions.assets.graph.asset_graph import AssetGraph

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}  # progress lines only; full logs in the UI
STAGE_TAG, WINDOWS_TAG = "glitchflow/stage", "glitchflow/windows"  # shown on every run in the UI's run lists
# Dagster's tags for a run over a range of partitions (a single-run backfill)
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
# On every in-process run: the host and process running it, so that a run whose process was killed outright (SIGKILL,
# out of memory) can be told from one still running, and marked failed instead of STARTED forever.
HOST_TAG, PID_TAG = "glitchflow/host", "glitchflow/pid"
INTERRUPTED = "DagsterExecutionInterruptedError"  # what Dagster records for a step stopped by SIGINT/SIGTERM


@dataclass
class Step:
    """One in-process run of ``job``: ``assets`` (keys) for the consecutive windows ``partitions`` (none for run-level
    assets)."""

    job: str
    assets: list[dg.AssetKey]
    partitions: list[str]
    result: JobExecutionResult | None  # None: not run (already materialized, or blocked)
    blocked_by: list[dg.AssetKey] = field(default_factory=list)  # not run: these upstream assets failed

    @property
    def skipped(self) -> bool:
        """Not run because it was already materialized and intact."""
        return self.result is None and not self.blocked_by

    @property
    def blocked(self) -> bool:
        """Not run because something it depends on failed."""
        return bool(self.blocked_by)

    @property
    def success(self) -> bool:
        return self.result.success if self.result is not None else not self.blocked_by

    def not_materialized(self) -> tuple[list[dg.AssetKey], list[dg.AssetKey]]:
        """Of a run that failed: the assets whose step failed, and those Dagster did not run because of them."""
        if self.result is None or self.result.success:
            return [], []
        nodes = {k: "__".join(k.path) for k in self.assets}
        failed = [k for k in self.assets if self.result.is_node_failed(nodes[k])]
        return failed, [k for k in self.assets if k not in failed and not self.result.is_node_success(nodes[k])]

    def _errors(self) -> list:
        """The errors of a failed run: a step stopped mid-way fails the step; one stopped before any step started
        (resource set-up) fails the run."""
        events = self.result.all_events if self.result else ()
        failures = [
            e.step_failure_data if e.is_step_failure else e.job_failure_data for e in events if e.is_step_failure or e.is_run_failure
        ]
        return [f.error for f in failures if f is not None and f.error is not None]

    @property
    def interrupted(self) -> bool:
        """Stopped by Ctrl-C or SIGTERM (Dagster marks the run failed)."""
        return any(error.cls_name == INTERRUPTED for error in self._errors())

    def reason(self, key: dg.AssetKey) -> str:
        """Why ``key`` failed in this run, in one line: its failed check, or its step's (else the run's) error."""
        checks = (
            [c for c in self.result.get_asset_check_evaluations() if c.asset_key == key and not c.passed and c.blocking]
            if self.result
            else []
        )
        if checks:
            return f"check {checks[0].check_name}: {checks[0].description}"
        node = "__".join(key.path)
        steps = (
            [e.step_failure_data.error for e in self.result.all_events if e.is_step_failure and e.step_key == node] if self.result else []
        )
        return first_line([error.message for error in steps + self._errors() if error])

    def metadata(self, asset: str) -> dict:
        """The metadata of ``asset``'s (last) materialization in this step, by asset name."""
        if self.result is None:
            return {}
        events = [e for k in self.assets if k.path[-1] == asset for e in self.result.asset_materializations_for_node("__".join(k.path))]
        return {k: v.value for k, v in events[-1].metadata.items()} if events else {}


@dataclass
class SpanResult:
    steps: list[Step] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return all(s.success for s in self.steps)

    @property
    def interrupted(self) -> bool:
        return any(s.interrupted for s in self.steps)

    def last(self, asset: str) -> Step | None:
        return next((s for s in reversed(self.steps) if any(k.path[-1] == asset for k in s.assets)), None)


def first_line(messages: Sequence[str]) -> str:
    """The first non-blank line of ``messages``, without the exception's module path (``dagster._core...Failure: ``)."""
    lines = [line.strip() for message in messages for line in message.splitlines() if line.strip()]
    return re.sub(r"^[\w.]+\.\w+: ", "", lines[0]) if lines else ""


def stage_groups(defs: dg.Definitions, run: str, through: str | None = None) -> list[tuple[bool, list[dg.AssetKey]]]:
    """``run``'s assets in topological order, grouped into (partitioned, keys) runs of consecutive assets of one kind
    and one job; ``through`` stops after that asset."""
    graph = defs.resolve_asset_graph()
    keys = [k for k in graph.toposorted_asset_keys if k.path[0] == run]
    if through is not None:
        names = [k.path[-1] for k in keys]
        if through not in names:
            raise ValueError(f"{run} has no asset {through!r}; its assets: {', '.join(names)}")
        keys = keys[: names.index(through) + 1]
    kind = lambda k: (graph.get(k).is_partitioned, job_for(run, [k]))  # noqa: E731
    return [(partitioned, list(group)) for (partitioned, _), group in itertools.groupby(keys, key=kind)]


def job_for(run: str, keys: list[dg.AssetKey]) -> str:
    """The name of ``run``'s job that holds every asset of ``keys``."""
    names = {k.path[-1] for k in keys}
    for suffix, members in JOBS.items():
        if names <= set(members):
            return job_name(run, suffix)
    raise ValueError(f"no job of {run} holds {sorted(names)} (jobs: {JOBS})")


def window_batches(windows: Sequence[str], partition_keys: Sequence[str], size: int) -> list[list[str]]:
    """``windows`` in order, cut into runs of at most ``size`` keys that are adjacent in ``partition_keys`` (a partition
    range holds every key between its ends, so a batch never jumps a window that was not asked for)."""
    position = {k: i for i, k in enumerate(partition_keys)}
    batches: list[list[str]] = []
    for key in windows:
        if batches and len(batches[-1]) < size and position[key] == position[batches[-1][-1]] + 1:
            batches[-1].append(key)
        else:
            batches.append([key])
    return batches


def code_location_origin(job: str) -> RemoteJobOrigin:
    """The origin the UI records for a launch of ``job`` from the workspace's code location (``workspace.yaml``)."""
    target = LoadableTargetOrigin(
        executable_path=sys.executable, module_name=DEFINITIONS_MODULE, working_directory=os.path.dirname(os.path.dirname(__file__))
    )
    location = ManagedGrpcPythonEnvCodeLocationOrigin(loadable_target_origin=target, location_name=CODE_LOCATION)
    return RemoteJobOrigin(
        repository_origin=RemoteRepositoryOrigin(code_location_origin=location, repository_name="__repository__"), job_name=job
    )


def execute(
    job: dg.JobDefinition, instance: dg.DagsterInstance, keys: list[dg.AssetKey], batch: list[str], run_config: dict, tags: dict[str, str]
) -> JobExecutionResult:
    """Run ``keys`` of ``job`` for the windows ``batch`` (none: run-level) in this process, recorded with the code
    location's origin."""
    if len(batch) == 1:
        tags = {**tags, **job.get_tags_for_partition_key(batch[0], selected_asset_keys=keys)}
    elif batch:
        tags = {**tags, RANGE_START: batch[0], RANGE_END: batch[-1]}
    config = {**QUIET, **run_config}
    job = job.with_executor_def(dg.in_process_executor)  # every step in this process, whatever executor the run's pods use
    run = instance.create_run_for_job(
        job_def=job,
        run_config=config,
        tags={**job.run_tags, **tags},
        asset_selection=frozenset(keys),
        remote_job_origin=code_location_origin(job.name),
    )
    return execute_run(InMemoryJob(job), run, instance)


def fail_orphaned_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed the runs this host's glitchflow processes left STARTED when they were killed outright; their ids."""
    host = socket.gethostname()
    started = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED], tags={HOST_TAG: host}))
    orphans = [r for r in started if r.tags.get(PID_TAG, "").isdigit() and not process_alive(int(r.tags[PID_TAG]))]
    for orphan in orphans:
        instance.report_run_failed(orphan, f"the glitchflow process (pid {orphan.tags[PID_TAG]} on {host}) running it is gone (killed)")
    return [r.run_id for r in orphans]


# (asset name, window key or None for a run-level asset) -> already materialized and intact on disk
Done = Callable[[str, str | None], bool]


def _todo(keys: list[dg.AssetKey], batches: list[list[str]], done: Done | None) -> tuple[list[list[str]], list[str]]:
    """``batches`` without the windows every asset of ``keys`` already holds (cut where one was taken out), and those."""
    if done is None:
        return batches, []
    kept, skipped = [], []
    for batch in batches:
        for held, group in itertools.groupby(batch, key=lambda w: all(done(k.path[-1], w) for k in keys)):
            if held:
                skipped.extend(group)
            else:
                kept.append(list(group))
    return kept, skipped


def plan_group(
    graph: "AssetGraph", keys: list[dg.AssetKey], partitioned: bool, windows: Sequence[str], done: Done | None
) -> tuple[list[list[str]], list[str], bool]:
    """The runs one stage group needs (batches of windows; ``[[]]``: its one run-level run), the windows it skips, and
    whether it skips anything (``done`` None: nothing is skipped)."""
    if partitioned:
        node = graph.get(keys[0])
        size = node.backfill_policy.max_partitions_per_run if node.backfill_policy else 1
        batches = window_batches(windows, node.partitions_def.get_partition_keys(), size or len(windows))
        batches, skipped = _todo(keys, batches, done)
        return batches, skipped, bool(skipped)
    skip = done is not None and all(done(k.path[-1], None) for k in keys)
    return ([] if skip else [[]]), [], skip


def materialize_span(
    defs: dg.Definitions,
    run: str,
    windows: Sequence[str],
    instance: dg.DagsterInstance,
    config: dict[str, dict] | None = None,
    through: str | None = None,
    on_step: Callable[[Step], None] = lambda step: None,
    tags: dict[str, str] | None = None,
    done: Done | None = None,
) -> SpanResult:
    """Materialize ``run``'s assets for ``windows`` (partition keys), stage group by stage group. A failure stops only
    what depends on it, as in a Dagster backfill: independent stages and the other windows go on, and what it blocks is
    reported as a step that did not run (``Step.blocked_by``); Ctrl-C or SIGTERM stops everything. ``config`` maps asset
    names to their Launchpad config; ``on_step`` sees every finished, skipped or blocked run; ``tags`` go on every run.
    With ``done``, a re-run continues where an earlier one stopped: until something runs,
    windows (and run-level stages) that ``done`` says are materialized and intact are skipped; once something has run,
    everything after it runs (its inputs changed)."""
    config = config or {}
    graph = defs.resolve_asset_graph()
    outcome = SpanResult()
    tags = {**(tags or {}), HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}
    lost: dict[dg.AssetKey, set[str]] = {}  # assets a failure left unmaterialized, with the windows (all: run-level)
    failed: set[dg.AssetKey] = set()  # of those, the ones whose own step failed (named as the cause downstream)

    def record(step: Step) -> None:
        outcome.steps.append(step)
        on_step(step)
        own, behind = step.not_materialized()
        failed.update(own)
        for key in own + behind:
            lost.setdefault(key, set()).update(step.partitions or windows)

    for partitioned, group in stage_groups(defs, run, through):
        name = job_for(run, group)
        job = defs.resolve_job_def(name)
        keys, blocked = _unblocked(graph, group, partitioned, windows, lost, failed)
        for step in blocked:
            record(step)
        if not keys:
            continue
        ops = {"__".join(k.path): {"config": config[k.path[-1]]} for k in keys if k.path[-1] in config}
        ran = any(s.result is not None for s in outcome.steps)
        asked = [w for w in windows if not any(w in s.partitions for s in blocked)]
        batches, skipped, skip = plan_group(graph, keys, partitioned, asked, None if ran else done)
        if skip:  # reported as a step without a result
            record(Step(name, keys, skipped, None))
        for batch in batches:
            shown = {STAGE_TAG: name.removeprefix(f"{run}_"), **({WINDOWS_TAG: f"{batch[0]} to {batch[-1]}"} if batch else {})}
            record(step := Step(name, keys, batch, execute(job, instance, keys, batch, {"ops": ops}, {**tags, **shown})))
            if step.interrupted:  # Ctrl-C or SIGTERM: stop everything, nothing half-done
                return outcome
    return outcome


def _unblocked(
    graph: "AssetGraph",
    group: list[dg.AssetKey],
    partitioned: bool,
    windows: Sequence[str],
    lost: dict[dg.AssetKey, set[str]],
    failed: set[dg.AssetKey],
) -> tuple[list[dg.AssetKey], list[Step]]:
    """The assets of ``group`` that can still run, and what cannot (as steps that did not run, naming the failed
    upstream assets that block them). As a backfill marks a failed partition's downstream: window stages are blocked
    in the windows an upstream asset lost (the group runs in the others), a run-level stage by any loss upstream."""
    upstream = {k: {a for a in graph.get_ancestor_asset_keys(k) if a in lost} for k in group}
    name = job_for(group[0].path[0], group)

    def causes(keys: set[dg.AssetKey]) -> list[dg.AssetKey]:
        return sorted(keys & failed) or sorted(keys)

    if partitioned:
        where = set().union(*(lost[a] for k in group for a in upstream[k]))
        blocked = [Step(name, group, [w for w in windows if w in where], None, causes(set().union(*upstream.values())))] if where else []
        return (group if len(where) < len(windows) else []), blocked
    blocked = [Step(name, [k], [], None, causes(upstream[k])) for k in group if upstream[k]]
    return [k for k in group if not upstream[k]], blocked
