"""Range runs (one run over several partitions): what the Dagster UI shows per partition.

A range backfill is a single run (``BackfillPolicy.single_run()``). Dagster plans each
partitioned check once per partition of the range; the UI's asset graph and partition view
read those per-partition records. These tests read the same records the UI reads (the
asset-check partition state), from a real instance after a real run.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionResolvedStatus as Status
from dagster._core.storage.asset_check_state import AssetCheckState, bulk_update_asset_check_state

from crmsync_pipelines.defs.materialize import current_partition_key
from crmsync_pipelines.defs.partitions import sync_partitions
from crmsync_tests.fixtures.pipeline import PipelineWorld
from crmsync_tests.test_dagster_e2e import CRM_TO_DAKTELA, _assets, _break_account_mapping

pytestmark = pytest.mark.slow


def _check_keys(assets: list[dg.AssetsDefinition]) -> set[dg.AssetCheckKey]:
    return {key for item in assets for key in item.check_keys}


def _partition_statuses(instance: dg.DagsterInstance, key: dg.AssetCheckKey) -> dict[Status, set[str]]:
    """Partition keys per resolved status, as the UI's asset graph and partition view get them."""
    state = bulk_update_asset_check_state(instance, [(key, sync_partitions)], {key: AssetCheckState.empty()})[key]
    return {status: set(subset.subset_value.get_partition_keys())  # type: ignore[union-attr]
            for status, subset in state.subsets.items() if not subset.is_empty}


def _range(days: int) -> tuple[str, str, list[str]]:
    today = current_partition_key()
    start = sync_partitions.get_partition_keys_between_indexes(0, 10_000)[-days]
    return start, today, sync_partitions.get_partition_keys_in_range(dg.PartitionKeyRange(start, today))


def _range_tags(start: str, end: str) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end}


def test_every_check_of_a_range_run_is_recorded_on_every_partition(
    pipeline_world: PipelineWorld, dagster_instance: dg.DagsterInstance
) -> None:
    start, end, keys = _range(3)
    assets = _assets(CRM_TO_DAKTELA)
    result = dg.materialize(assets, instance=dagster_instance, resources=pipeline_world.resources(),
                            tags=_range_tags(start, end))
    assert result.success
    check_keys = _check_keys(assets)
    names = {key.name for key in check_keys}
    assert {"reconciliation", "no_failed_records", "lookup_key_present"} <= names
    for key in check_keys:
        statuses = _partition_statuses(dagster_instance, key)
        assert Status.SKIPPED not in statuses, f"{key.to_user_string()} shows as skipped: {statuses}"
        evaluated = statuses.get(Status.SUCCEEDED, set()) | statuses.get(Status.FAILED, set())
        assert evaluated == set(keys), key.to_user_string()
        # The detail page's "latest execution" says the same as the graph.
        latest = dagster_instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key]
        assert latest.partition in keys and latest.status.value in ("SUCCEEDED", "FAILED")
    # Each partition's evaluation points at that partition's materialization of this run.
    reconciliation = dg.AssetCheckKey(dg.AssetKey(["daktela", "contacts"]), "reconciliation")
    history = dagster_instance.event_log_storage.get_asset_check_execution_history(reconciliation, limit=10)
    assert sorted(record.partition for record in history) == keys  # type: ignore[type-var]
    for record in history:
        evaluation = record.event.dagster_event.event_specific_data  # type: ignore[union-attr]
        target = evaluation.target_materialization_data  # type: ignore[union-attr]
        assert target is not None and target.run_id == result.run_id
        materialization = dagster_instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=reconciliation.asset_key, asset_partitions=[record.partition]),  # type: ignore[list-item]
            limit=1,
        ).records[0]
        assert materialization.storage_id == target.storage_id


def test_single_partition_runs_still_record_one_evaluation_per_check(
    pipeline_world: PipelineWorld, dagster_instance: dg.DagsterInstance
) -> None:
    key = current_partition_key()
    assets = _assets(["crm/accounts", "staging/accounts_mapped", "daktela/accounts"])
    result = dg.materialize(assets, instance=dagster_instance, resources=pipeline_world.resources(),
                            partition_key=key)
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    assert sorted(e.check_name for e in evaluations) == sorted(k.name for k in _check_keys(assets))
    for check_key in _check_keys(assets):
        assert _partition_statuses(dagster_instance, check_key) == {Status.SUCCEEDED: {key}}, check_key


def test_a_failing_blocking_check_in_a_range_run_fails_on_every_partition_and_writes_nothing(
    pipeline_world: PipelineWorld, dagster_instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    world = pipeline_world
    _break_account_mapping(world, tmp_path)
    world.simulator.reset_log()
    start, end, keys = _range(2)

    result = dg.materialize(
        _assets(["crm/accounts", "staging/accounts_mapped", "daktela/accounts"]), instance=dagster_instance,
        resources=world.resources(), tags=_range_tags(start, end), raise_on_error=False,
    )
    assert not result.success
    unique = dg.AssetCheckKey(dg.AssetKey(["staging", "accounts_mapped"]), "lookup_key_unique")
    assert _partition_statuses(dagster_instance, unique) == {Status.FAILED: set(keys)}
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "daktela/accounts" not in materialized
    assert world.writes() == 0


def test_a_range_run_without_the_reconciliation_check_records_the_other_checks_only(
    pipeline_world: PipelineWorld, dagster_instance: dg.DagsterInstance
) -> None:
    start, end, keys = _range(2)
    assets = _assets(["crm/accounts", "staging/accounts_mapped", "daktela/accounts"])
    reconciliation = dg.AssetCheckKey(dg.AssetKey(["daktela", "accounts"]), "reconciliation")
    selection = dg.AssetSelection.assets(*(k for a in assets for k in a.keys)) - dg.AssetSelection.checks(
        reconciliation)
    result = dg.materialize(assets, instance=dagster_instance, resources=pipeline_world.resources(),
                            tags=_range_tags(start, end), selection=selection)
    assert result.success
    evaluated = {(e.check_name, e.partition) for e in result.get_asset_check_evaluations()}
    assert ("reconciliation", keys[0]) not in evaluated
    assert {("no_failed_records", key) for key in keys} <= evaluated
    assert _partition_statuses(dagster_instance, reconciliation) == {}
