"""Asset check results that land on every partition of a range run.

Dagster plans a partitioned check once per partition of the run (one ``PLANNED`` execution
record each), but turns a returned ``AssetCheckResult`` into a single evaluation with the
partition of the step, which a range run (``BackfillPolicy.single_run()``) does not have. The
planned per-partition records then never resolve, and once the run has finished the asset
graph shows them as *Skipped*, while the check's detail page shows the un-partitioned
evaluation as *Passed*. So in a range run each result is emitted as the check's output plus
one evaluation per partition of the range, each pointing at that partition's materialization:
the graph, the partition view and the detail page then all show the same outcome.

In a single-partition (or unpartitioned) run the results are passed through unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import dagster as dg
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)

CheckContext = dg.AssetExecutionContext | dg.AssetCheckExecutionContext
CheckEvent = dg.AssetCheckResult | dg.Output[None] | dg.AssetCheckEvaluation


def is_range_run(context: CheckContext) -> bool:
    """True when the step covers more than one partition (a single-run range backfill)."""
    return not context.has_partition_key and context.has_partition_key_range


def _op_context(context: CheckContext) -> dg.OpExecutionContext:
    return context.op_execution_context


def latest_materializations(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, partition_keys: Sequence[str]
) -> Mapping[str, AssetCheckEvaluationTargetMaterializationData]:
    """The newest materialization of each of ``partition_keys`` (one event-log query)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=list(partition_keys)),
        limit=max(len(partition_keys), 1),
    ).records
    latest: dict[str, AssetCheckEvaluationTargetMaterializationData] = {}
    for record in records:  # newest first
        partition = record.partition_key
        if partition is not None and partition not in latest:
            latest[partition] = AssetCheckEvaluationTargetMaterializationData(
                storage_id=record.storage_id,
                run_id=record.run_id,
                timestamp=record.timestamp,
            )
    return latest


def check_events(context: CheckContext, results: Sequence[dg.AssetCheckResult]) -> Iterator[CheckEvent]:
    """``results`` as Dagster should record them for the step's partitions (see the module doc).

    Each result must name its ``asset_key`` and ``check_name``.
    """
    if not is_range_run(context):
        yield from results
        return
    op_context = _op_context(context)
    assets_def = op_context.assets_def
    partition_keys = list(context.partition_keys)
    selected = context.selected_asset_check_keys
    targets: dict[dg.AssetKey, Mapping[str, AssetCheckEvaluationTargetMaterializationData]] = {}
    for result in results:
        if result.asset_key is None or result.check_name is None:
            raise ValueError("a range-run check result must name its asset_key and check_name")
        check_key = dg.AssetCheckKey(result.asset_key, result.check_name)
        if check_key not in selected:
            continue  # the run left this check out (asset selected without its checks)
        spec = assets_def.get_spec_for_check_key(check_key)
        if result.asset_key not in targets:
            targets[result.asset_key] = latest_materializations(context.instance, result.asset_key, partition_keys)
        yield dg.Output(None, output_name=assets_def.get_output_name_for_asset_check_key(check_key))
        for partition in partition_keys:
            yield dg.AssetCheckEvaluation(
                asset_key=result.asset_key,
                check_name=result.check_name,
                passed=result.passed,
                metadata=result.metadata,
                target_materialization_data=targets[result.asset_key].get(partition),
                severity=result.severity,
                description=result.description,
                blocking=spec.blocking,
                partition=partition,
            )


def materialize_events(
    context: dg.AssetExecutionContext,
    metadata: Mapping[str, Any],
    check_results: Sequence[dg.AssetCheckResult],
) -> Iterator[dg.MaterializeResult | CheckEvent]:
    """The asset's materialization, then its check results (per partition in a range run)."""
    if not is_range_run(context):
        yield dg.MaterializeResult(metadata=dict(metadata), check_results=list(check_results))
        return
    # The materialization is recorded (once per partition) before the checks look it up.
    yield dg.MaterializeResult(metadata=dict(metadata))
    yield from check_events(context, check_results)
