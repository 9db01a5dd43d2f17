"""Record lifecycles through real Dagster materializations: late activity changes, dead letters."""

from __future__ import annotations

import re
import sqlite3

import dagster as dg
import pytest

from crmsync_pipelines.defs.materialize import current_partition_key
from crmsync_pipelines.simulator import Fault
from crmsync_pipelines.staging import StagingStore
from crmsync_tests.fixtures.pipeline import PipelineWorld
from crmsync_tests.test_dagster_e2e import CRM_TO_DAKTELA, _assets

pytestmark = pytest.mark.slow

DAKTELA_TO_CRM = ["daktela/activities", "staging/activities_mapped", "crm/activities"]


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def _synced_contacts(world: PipelineWorld) -> int:
    """Contacts named after a CRM contact id (``crm_<id>``; auto-contacts are ``crm_acc_contact_<id>``)."""
    return sum(1 for c in world.simulator.all("contacts") if re.fullmatch(r"crm_\d+", str(c["name"])))


def _crm_activity(world: PipelineWorld, name: str) -> dict[str, object] | None:
    with sqlite3.connect(world.paths.crm) as con:
        con.row_factory = sqlite3.Row
        row = con.execute("SELECT * FROM activities WHERE external_id = ?", [name]).fetchone()
    return dict(row) if row else None


def test_an_activity_closed_after_its_first_sync_is_updated_by_the_next_run(
    pipeline_world: PipelineWorld, dagster_instance: dg.DagsterInstance
) -> None:
    world = pipeline_world
    run = dg.materialize(_assets(DAKTELA_TO_CRM), instance=dagster_instance, resources=world.resources(),
                         partition_key=current_partition_key())
    assert run.success
    synced_open = [a["name"] for a in world.simulator.all("activities")
                   if not a.get("time_close") and _crm_activity(world, a["name"]) is not None]
    assert synced_open, "the demo data must have an open activity inside the synced window"
    name = synced_open[0]
    assert _crm_activity(world, name)["closed_at"] is None  # type: ignore[index]

    world.simulator.close_activity(name)
    world.simulator.reset_log()
    again = dg.materialize(_assets(DAKTELA_TO_CRM), instance=dagster_instance, resources=world.resources(),
                           partition_key=current_partition_key())
    assert again.success
    row = _crm_activity(world, name)
    assert row is not None and row["closed_at"] is not None and row["status"] == "CLOSE"
    event = dagster_instance.get_latest_materialization_event(dg.AssetKey(["crm", "activities"]))
    assert event is not None and event.asset_materialization is not None
    assert event.asset_materialization.metadata["records_updated"].value == 1  # type: ignore[attr-defined]
    with sqlite3.connect(world.paths.crm) as con:
        names = [r[0] for r in con.execute("SELECT external_id FROM activities")]
    assert len(names) == len(set(names))


def test_failed_records_warn_then_the_next_materialization_retries_them(
    pipeline_world: PipelineWorld, dagster_instance: dg.DagsterInstance
) -> None:
    world = pipeline_world
    world.simulator.add_fault(Fault(route="POST /api/v6/contacts.json", kind="status", status=503, times=None))
    first = dg.materialize(_assets(CRM_TO_DAKTELA), instance=dagster_instance, resources=world.resources(),
                           partition_key=current_partition_key())
    assert first.success, "record failures must not fail the run"
    assert _checks(first)["no_failed_records"] is False
    store = StagingStore(world.paths.staging)
    dead = store.failed_records("contact")
    assert dead and {d["error_class"] for d in dead} == {"transient"}
    contacts_in_daktela = _synced_contacts(world)

    world.simulator.clear_faults()
    second = dg.materialize(_assets(CRM_TO_DAKTELA), instance=dagster_instance, resources=world.resources(),
                            partition_key=current_partition_key())
    assert second.success
    assert store.failed_records("contact") == []
    assert all(passed for name, passed in _checks(second).items() if name != "reconciliation")
    assert _synced_contacts(world) == contacts_in_daktela + len(dead)
    names = [c["name"] for c in world.simulator.all("contacts")]
    assert len(names) == len(set(names))
