"""Materialize one observing run's assets over a span of windows, in the asset graph's own order, through the run's
jobs - the same ones the sensors and the UI launch, so every run shows under its job.

The stage order is never written here: the run's assets are taken in topological order from the Definitions, and
consecutive assets of the same kind are grouped - window-partitioned ones into one in-process run per window, run-level
ones into one run - each group run by the job that holds it. Used by ``glitchflow demo|materialize``, the tests and
the benchmarks.
"""

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import dagster as dg

from glitchflow_assets.defs.names import JOBS, job_name

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}  # progress lines only; full logs in the UI


@dataclass
class Step:
    """One in-process run of ``job``: ``assets`` (keys) for ``partition`` (None for run-level assets)."""

    job: str
    assets: list[dg.AssetKey]
    partition: str | None
    result: dg.ExecuteInProcessResult

    @property
    def success(self) -> bool:
        return self.result.success

    def metadata(self, asset: str) -> dict:
        """The metadata of ``asset``'s (last) materialization in this step, by asset name."""
        events = [e for k in self.assets if k.path[-1] == asset for e in self.result.asset_materializations_for_node("__".join(k.path))]
        return {k: v.value for k, v in events[-1].metadata.items()} if events else {}


@dataclass
class SpanResult:
    steps: list[Step] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return all(s.success for s in self.steps)

    def last(self, asset: str) -> Step | None:
        return next((s for s in reversed(self.steps) if any(k.path[-1] == asset for k in s.assets)), None)


def stage_groups(defs: dg.Definitions, run: str, through: str | None = None) -> list[tuple[bool, list[dg.AssetKey]]]:
    """``run``'s assets in topological order, grouped into (partitioned, keys) runs of consecutive assets of one kind;
    ``through`` stops after that asset."""
    graph = defs.resolve_asset_graph()
    keys = [k for k in graph.toposorted_asset_keys if k.path[0] == run]
    if through is not None:
        names = [k.path[-1] for k in keys]
        if through not in names:
            raise ValueError(f"{run} has no asset {through!r}; its assets: {', '.join(names)}")
        keys = keys[: names.index(through) + 1]
    return [(partitioned, list(group)) for partitioned, group in itertools.groupby(keys, key=lambda k: graph.get(k).is_partitioned)]


def job_for(run: str, keys: list[dg.AssetKey]) -> str:
    """The name of ``run``'s job that holds every asset of ``keys``."""
    names = {k.path[-1] for k in keys}
    for suffix, members in JOBS.items():
        if names <= set(members):
            return job_name(run, suffix)
    raise ValueError(f"no job of {run} holds {sorted(names)} (jobs: {JOBS})")


def materialize_span(
    defs: dg.Definitions,
    run: str,
    windows: Sequence[str],
    instance: dg.DagsterInstance,
    config: dict[str, dict] | None = None,
    through: str | None = None,
    on_step: Callable[[Step], None] = lambda step: None,
    tags: dict[str, str] | None = None,
) -> SpanResult:
    """Materialize ``run``'s assets for ``windows`` (partition keys), stage group by stage group, stopping at the first
    failure. ``config`` maps asset names to their Launchpad config; ``on_step`` sees every finished run; ``tags`` go on
    every run."""
    config = config or {}
    outcome = SpanResult()
    for partitioned, keys in stage_groups(defs, run, through):
        name = job_for(run, keys)
        job = defs.resolve_job_def(name)
        ops = {"__".join(k.path): {"config": config[k.path[-1]]} for k in keys if k.path[-1] in config}
        for partition in windows if partitioned else [None]:
            result = job.execute_in_process(
                instance=instance,
                partition_key=partition,
                asset_selection=keys,
                run_config={**QUIET, "ops": ops},
                tags=tags,
                raise_on_error=False,
            )
            step = Step(name, keys, partition, result)
            outcome.steps.append(step)
            on_step(step)
            if not step.success:
                return outcome
    return outcome
