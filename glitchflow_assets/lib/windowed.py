"""Window-partitioned assets that a backfill runs in batches: one run materializes up to the run's
``backfill_batch`` consecutive windows, one after the other, each written atomically to its own file.

Every window keeps its own record, whether it ran alone (a sensor's run, a UI click) or in a batch: its
materialization carries its own metadata (GPS and UTC span, file and size, tables, figure) and its own data version
(metadata ``window_data_version`` in a batch, where Dagster's data-version tag holds the batch's), and each check
result is filed under its window's partition, against that window's materialization.
"""

from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
from dagster._core.definitions.asset_checks.asset_check_evaluation import (  # the target of a check result Dagster files itself
    AssetCheckEvaluationTargetMaterializationData,
)

from glitchflow_assets.core.artifacts.storage import LockTimeout, content_version, exclusive
from glitchflow_assets.core.runs.registry import ObservingRun
from glitchflow_assets.core.runs.windows import Window, window_for_key
from glitchflow_assets.lib.inputs import WINDOW_VERSION_KEY, Inputs
from glitchflow_assets.lib.metadata import span_metadata
from glitchflow_assets.lib.resources import GlitchflowStorage

WindowEvent = dg.MaterializeResult | dg.Output | dg.AssetCheckEvaluation


def window_backfill_policy(run: ObservingRun) -> dg.BackfillPolicy:
    """Backfills run up to ``run.backfill_batch`` consecutive windows per Dagster run."""
    return dg.BackfillPolicy.multi_run(max_partitions_per_run=run.backfill_batch)


def for_each_window(
    context: dg.AssetExecutionContext,
    run: ObservingRun,
    storage: GlitchflowStorage,
    materialize_one: Callable[[Inputs, Window], dg.MaterializeResult],
) -> Iterator[WindowEvent]:
    """Materialize every window of the run's partition range (stopping at the first failure), each under its window
    lock: a second writer of the same window (another ``glitchflow materialize``, a sensor's run) waits for it. Yields
    what the asset function yields: the materialization, then, for a batch, each window's check results."""
    keys, asset = context.partition_keys, context.asset_key.path[-1]
    inputs = Inputs(storage, run, context.instance)
    results = []
    for i, key in enumerate(keys, 1):
        window = window_for_key(key, run.cadence)

        def waiting(holder: str, key: str = key) -> None:
            context.log.warning(f"{run.name}/{asset} window {key} is being written by {holder}: waiting for it")

        try:
            with exclusive(storage.lock_file(run.name, asset, window), waiting):
                result = materialize_one(inputs, window)
        except LockTimeout as exc:
            raise dg.Failure(description=str(exc)) from exc
        results.append(_with_span(result, window))
        if len(keys) > 1:
            context.log.info(f"window {key} done ({i}/{len(keys)})")
    if len(results) == 1:
        yield results[0]
    else:
        yield from _batch(context, keys, results)


def _with_span(result: dg.MaterializeResult, window: Window) -> dg.MaterializeResult:
    """``result`` with the window's GPS/UTC span first in its metadata and its file's size beside its path."""
    metadata: dict[str, object] = dict(span_metadata(window.gps_start, window.gps_end))
    for name, value in (result.metadata or {}).items():
        metadata[name] = value
        if name == "path" and isinstance(value, dg.PathMetadataValue):
            metadata["size_mb"] = Path(value.path).stat().st_size / 1e6
    return dg.MaterializeResult(metadata=metadata, data_version=result.data_version, check_results=result.check_results)


def _batch(context: dg.AssetExecutionContext, keys: list[str], results: list[dg.MaterializeResult]) -> Iterator[WindowEvent]:
    """One materialization of the partition range whose event for each window holds that window's own metadata and
    data version, then every window's check results filed under its partition."""
    for key, result in zip(keys, results, strict=True):
        own = {WINDOW_VERSION_KEY: result.data_version.value} if result.data_version is not None else {}
        context.add_asset_metadata({**(result.metadata or {}), **own}, partition_key=key)
    versions = [r.data_version.value for r in results if r.data_version is not None]
    yield dg.MaterializeResult(
        metadata={"batch": f"{len(keys)} windows, {keys[0]} to {keys[-1]}, in one run"},
        data_version=dg.DataVersion(content_version(versions)) if versions else None,
    )
    checks = {c.check_name for r in results for c in r.check_results or []}
    if not checks:
        return
    specs = {s.name: s for s in context.assets_def.check_specs if s.asset_key == context.asset_key}
    for name in sorted(checks):  # the check's output: what lets a downstream step depend on it
        yield dg.Output(None, output_name=context.assets_def.get_output_name_for_asset_check_key(specs[name].key))
    targets = _materializations(context.instance, context.asset_key, keys)
    for key, result in zip(keys, results, strict=True):
        for check in result.check_results or []:
            yield dg.AssetCheckEvaluation(
                asset_key=context.asset_key,
                check_name=check.check_name,
                passed=check.passed,
                metadata=check.metadata,
                target_materialization_data=targets.get(key),
                severity=check.severity,
                description=check.description,
                blocking=specs[check.check_name].blocking,
                partition=key,
            )


def _materializations(
    instance: dg.DagsterInstance, key: dg.AssetKey, partitions: list[str]
) -> dict[str, AssetCheckEvaluationTargetMaterializationData]:
    """The latest materialization of each of ``partitions``: the one its check results are about."""
    query = dg.AssetRecordsFilter(asset_key=key, asset_partitions=partitions)
    records = instance.fetch_materializations(query, limit=len(partitions)).records
    targets: dict[str, AssetCheckEvaluationTargetMaterializationData] = {}
    for record in records:  # newest first
        partition = record.partition_key
        if partition is not None and partition not in targets:
            targets[partition] = AssetCheckEvaluationTargetMaterializationData(
                storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp
            )
    return targets
