"""The ``no_failed_records`` check over real Dagster materializations (issue 10 §2): failed
auto-created contacts fail it, and it stays WARN-failed while failures wait from earlier runs."""

from __future__ import annotations

import dagster as dg
import pytest

from crmsync_pipelines.defs.materialize import current_partition_key
from crmsync_pipelines.simulator import Fault
from crmsync_pipelines.staging import StagingStore
from crmsync_tests.fixtures.pipeline import PipelineWorld
from crmsync_tests.test_cli_sync import run
from crmsync_tests.test_dagster_e2e import _assets

pytestmark = pytest.mark.slow

ACCOUNTS = ["crm/accounts", "staging/accounts_mapped", "daktela/accounts"]


def _check(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    [evaluation] = [e for e in result.get_asset_check_evaluations()
                    if e.check_name == "no_failed_records" and e.asset_key == dg.AssetKey(["daktela", "accounts"])]
    return evaluation


def _materialize(world: PipelineWorld, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    result = dg.materialize(_assets(ACCOUNTS), instance=instance, resources=world.resources(),
                            partition_key=current_partition_key())
    assert result.success, "record failures must not fail the run"
    return result


def test_failed_auto_contacts_fail_the_check_until_retried(
    pipeline_world: PipelineWorld, dagster_instance: dg.DagsterInstance
) -> None:
    world = pipeline_world
    world.simulator.add_fault(Fault(route="POST /api/v6/contacts.json", kind="status", status=400, times=None))
    first = _materialize(world, dagster_instance)
    failed = len(StagingStore(world.paths.staging).failed_records("auto_contact"))
    assert failed > 0
    check = _check(first)
    assert check.passed is False
    assert check.severity == dg.AssetCheckSeverity.WARN
    assert (check.description or "").startswith(f"{failed} records failed in this run")
    assert check.metadata["failed"].value == failed
    assert check.metadata["auto_contact_failed"].value == failed
    event = dagster_instance.get_latest_materialization_event(dg.AssetKey(["daktela", "accounts"]))
    assert event is not None and event.asset_materialization is not None
    assert event.asset_materialization.metadata["records_auto_contact_failed"].value == failed

    # Held back (same data): nothing is written, but the check says they still wait.
    world.simulator.clear_faults()
    world.simulator.reset_log()
    second = _check(_materialize(world, dagster_instance))
    assert world.writes() == 0
    assert second.passed is False and second.severity == dg.AssetCheckSeverity.WARN
    assert second.metadata["failed"].value == 0
    assert second.metadata["waiting_from_earlier_runs"].value == failed
    assert second.description == (f"{failed} records from earlier runs still wait in failed_records "
                                   "(retry: `crmsync retry-failed`)")

    assert run("retry-failed", "--entity", "auto_contact")[0] == 0
    third = _check(_materialize(world, dagster_instance))
    assert third.passed is True
    assert third.description == "no record failed"
