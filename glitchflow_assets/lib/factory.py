"""The one helper every asset of a run family is declared with: key ``RUN/name``, group, window partitions and
backfill policy (window stages), level tag, GPU pool/op tags, kinds, checks and automation condition."""

from collections.abc import Iterable, Sequence

import dagster as dg

from glitchflow_assets.core.runs.registry import ObservingRun
from glitchflow_assets.lib.gpu import GPU_OP_TAGS, GPU_POOL
from glitchflow_assets.lib.names import asset_key
from glitchflow_assets.lib.partitions import window_partitions
from glitchflow_assets.lib.windowed import window_backfill_policy


def run_asset(
    run: ObservingRun,
    name: str,
    *,
    per_window: bool,
    deps: Sequence[str],
    kinds: set[str],
    description: str,
    automation: dg.AutomationCondition | None,
    gpu: bool = False,
    check_specs: Iterable[dg.AssetCheckSpec] = (),
    metadata: dict | None = None,
):
    """Decorator for ``run``'s asset ``name``: window-partitioned when ``per_window``, else one per run; ``gpu`` puts
    its steps in the ``gpu`` pool and asks Kubernetes for a GPU."""
    return dg.asset(
        key=asset_key(run.name, name),
        group_name=run.name,
        deps=[asset_key(run.name, d) for d in deps],
        partitions_def=window_partitions(run) if per_window else None,
        backfill_policy=window_backfill_policy(run) if per_window else None,
        pool=GPU_POOL if gpu else None,
        op_tags=GPU_OP_TAGS if gpu else None,
        kinds=kinds,
        tags={"glitchflow/level": "window" if per_window else "run"},
        check_specs=list(check_specs),
        automation_condition=automation,
        metadata=metadata,
        description=description + (f" One partition per {run.cadence.text} window of {run.name}." if per_window else ""),
    )
