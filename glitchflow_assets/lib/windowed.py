"""Window-partitioned assets that a backfill runs in batches: one run materializes up to the run's
``backfill_batch`` consecutive windows, one after the other, each written atomically to its own file.

A single window (the sensor's runs, a UI click) keeps its own metadata and checks. A batch returns one result for
the whole partition range: per-window figures in a table, each check passed only if it passed in every window
(failing windows named in its description), and a data version hashed from the windows' own.
"""

from collections.abc import Callable

import dagster as dg

from glitchflow_assets.core.artifacts.storage import LockTimeout, content_version, exclusive
from glitchflow_assets.core.runs.registry import ObservingRun
from glitchflow_assets.core.runs.windows import Window, window_for_key
from glitchflow_assets.lib.inputs import Inputs
from glitchflow_assets.lib.resources import GlitchflowStorage


def window_backfill_policy(run: ObservingRun) -> dg.BackfillPolicy:
    """Backfills run up to ``run.backfill_batch`` consecutive windows per Dagster run."""
    return dg.BackfillPolicy.multi_run(max_partitions_per_run=run.backfill_batch)


def for_each_window(
    context: dg.AssetExecutionContext,
    run: ObservingRun,
    storage: GlitchflowStorage,
    materialize_one: Callable[[Inputs, Window], dg.MaterializeResult],
) -> dg.MaterializeResult:
    """Materialize every window of the run's partition range (stopping at the first failure), each under its window
    lock: a second writer of the same window (another ``glitchflow materialize``, a sensor's run) waits for it."""
    keys, asset = context.partition_keys, context.asset_key.path[-1]
    inputs = Inputs(storage, run, context.instance)
    results = []
    for i, key in enumerate(keys, 1):
        window = window_for_key(key, run.cadence)

        def waiting(holder: str, key: str = key) -> None:
            context.log.warning(f"{run.name}/{asset} window {key} is being written by {holder}: waiting for it")

        try:
            with exclusive(storage.lock_file(run.name, asset, window), waiting):
                results.append(materialize_one(inputs, window))
        except LockTimeout as exc:
            raise dg.Failure(description=str(exc)) from exc
        if len(keys) > 1:
            context.log.info(f"window {key} done ({i}/{len(keys)})")
    return results[0] if len(results) == 1 else _combine(keys, results)


def _scalar(value) -> bool:
    return isinstance(value, int | float | str | bool)


def _combine(keys: list[str], results: list[dg.MaterializeResult]) -> dg.MaterializeResult:
    # each window's own data version in its row: what later reads of that window are checked against (defs.inputs)
    rows = [
        {"window": k, **{n: v for n, v in (r.metadata or {}).items() if _scalar(v)}}
        | ({"data_version": r.data_version.value} if r.data_version is not None else {})
        for k, r in zip(keys, results, strict=True)
    ]
    checks = {}
    for key, result in zip(keys, results, strict=True):
        for check in result.check_results or []:
            checks.setdefault(check.check_name, []).append((key, check))
    versions = [r.data_version.value for r in results if r.data_version is not None]
    return dg.MaterializeResult(
        metadata={"n_windows": len(keys), "windows": dg.MetadataValue.json(rows)},
        data_version=dg.DataVersion(content_version(versions)) if versions else None,
        check_results=[_combine_check(name, outcomes) for name, outcomes in checks.items()],
    )


def _combine_check(name: str, outcomes: list[tuple[str, dg.AssetCheckResult]]) -> dg.AssetCheckResult:
    failing = [(k, c) for k, c in outcomes if not c.passed]
    error = any(c.severity == dg.AssetCheckSeverity.ERROR for _, c in failing)
    return dg.AssetCheckResult(
        check_name=name,
        passed=not failing,
        severity=dg.AssetCheckSeverity.ERROR if error or not failing else dg.AssetCheckSeverity.WARN,
        description="; ".join(f"{k}: {c.description}" for k, c in failing) or f"passed in all {len(outcomes)} windows",
        metadata={"failing_windows": len(failing)},
    )
