"""End to end through Dagster: HubSpot simulator -> crmsync -> Daktela simulator -> back to HubSpot.

Real materializations with the production resources and the shipped ``mappings/hubspot``
configuration; nothing is mocked. Asserted: contacts and companies reach Daktela, Daktela
activities come back as HubSpot calls linked to the right contact and company, a second run
writes nothing, a call closed later updates the same HubSpot call, and a daily quota that
runs out mid-run leaves a partial, resumable run.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from crmsync_pipelines.defs.materialize import current_partition_key
from crmsync_pipelines.staging import StagingStore
from crmsync_tests.fixtures.hubspot import HubSpotWorld
from crmsync_tests.test_dagster_e2e import CRM_TO_DAKTELA, _assets

pytestmark = pytest.mark.slow

DAKTELA_TO_CRM = ["daktela/activities", "staging/activities_mapped", "crm/activities"]
KEY = "daktela_activity_name"


def _materialize(world: HubSpotWorld, instance: dg.DagsterInstance, keys: list[str]) -> dg.ExecuteInProcessResult:
    result = dg.materialize(_assets(keys), instance=instance, resources=world.resources(),
                            partition_key=current_partition_key())
    assert result.success
    return result


def _metadata(instance: dg.DagsterInstance, key: str) -> dict[str, Any]:
    event = instance.get_latest_materialization_event(dg.AssetKey.from_user_string(key))
    assert event is not None and event.asset_materialization is not None
    return {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}


def _now_local(world: HubSpotWorld) -> str:
    return datetime.now(ZoneInfo("Europe/Prague")).strftime("%Y-%m-%d %H:%M:%S")


def _add_call(world: HubSpotWorld, *, contact: str | None, clid: str | None = None, closed: bool = False) -> str:
    record: dict[str, Any] = {"type": "CALL", "queue": 3000, "user": "jan.novak", "time": _now_local(world),
                              "title": "Dotaz na fakturu", "action": "CLOSE" if closed else "OPEN", "priority": 0,
                              "statuses": []}
    if contact is not None:
        record["contact"] = contact
    if clid is not None:
        record["item"] = {"id_call": f"e2e.{clid}", "clid": clid, "did": "+420222333444"}
    return str(world.daktela.insert("activities", record)["name"])


def test_hubspot_round_trip_second_run_writes_nothing_and_a_late_close_updates_the_call(
        hubspot_world: HubSpotWorld, dagster_instance: dg.DagsterInstance) -> None:
    world, instance = hubspot_world, dagster_instance
    _materialize(world, instance, CRM_TO_DAKTELA)
    synced = {c["name"]: c for c in world.daktela.all("contacts") if str(c["name"]).startswith("crm_")}
    assert synced, f"contacts modified today must reach Daktela: {StagingStore(world.paths.staging).failed_records()}"
    name, daktela_contact = sorted(synced.items())[0]
    contact_id = name.removeprefix("crm_")
    company_id = world.hubspot.store.objects["contacts"][contact_id].properties["associatedcompanyid"]
    account = daktela_contact["account"]
    assert (account.get("name") if isinstance(account, dict) else account) == f"crm_acc_{company_id}"
    other = next(c for c in world.hubspot.objects("contacts") if c.id != contact_id)
    by_contact = _add_call(world, contact=name)
    by_phone = _add_call(world, contact=None, clid=str(other.properties["phone"]).replace(" ", ""))

    world.hubspot.app.reset_log()
    first = _materialize(world, instance, DAKTELA_TO_CRM)
    call = world.hubspot.find("calls", KEY, by_contact)
    assert call is not None and call.properties["hs_call_status"] == "IN_PROGRESS"
    assert call.properties["hubspot_owner_id"] == "70001", "the agent jan.novak@example.cz is HubSpot owner 70001"
    assert world.hubspot.store.associated("calls", call.id, "contacts") == [contact_id]
    assert world.hubspot.store.associated("calls", call.id, "companies") == [company_id]
    matched = world.hubspot.find("calls", KEY, by_phone)
    assert matched is not None and world.hubspot.store.associated("calls", matched.id, "contacts") == [other.id]
    ledger = world.ledger(first.run_id)
    created = ledger.get(("activity", "created"), 0)
    assert created >= 2 and ledger.get(("activity", "failed"), 0) == 0
    meta = _metadata(instance, "crm/activities")
    assert meta["records_created"] == created
    writes = world.hubspot.app.request_count("POST", "/crm/v3/objects/*/batch/create")
    assert writes <= 4, f"{created} activities must be written in batches, got {writes} create requests"
    routes = [f"{e.method} {e.path}" for e in world.hubspot.app.requests()]
    assert 0 < meta["crm_requests_used"] < len(routes), routes
    assert isinstance(meta["crm_budget_remaining"], int)

    world.hubspot.app.reset_log()
    again = _materialize(world, instance, DAKTELA_TO_CRM)
    assert world.hubspot_writes() == 0, "an unchanged partition must not write to HubSpot"
    assert world.ledger(again.run_id).get(("activity", "unchanged"), 0) == created

    world.daktela.close_activity(by_contact)
    world.hubspot.app.reset_log()
    late = _materialize(world, instance, DAKTELA_TO_CRM)
    assert world.ledger(late.run_id).get(("activity", "updated"), 0) == 1
    updated = world.hubspot.find("calls", KEY, by_contact)
    assert updated is not None and updated.id == call.id and updated.properties["hs_call_status"] == "COMPLETED"
    assert updated.properties.get("hs_call_duration") is not None
    assert world.hubspot.app.request_count("POST", "/crm/v3/objects/calls/batch/upsert") == 1
    names = [o.properties[KEY] for t in ("calls", "emails", "communications") for o in world.hubspot.objects(t)]
    assert len(names) == len(set(names))


def test_daily_quota_running_out_mid_run_ends_partial_and_the_next_run_resumes(
        hubspot_world: HubSpotWorld, dagster_instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch) -> None:
    world, instance = hubspot_world, dagster_instance
    _materialize(world, instance, CRM_TO_DAKTELA)
    for index in range(7):
        _add_call(world, contact=None, clid=f"+42060312{index:04d}")
    limits = world.hubspot.app.limits
    daily = world.hubspot.app.config.daily_limit or 0
    with limits.lock:
        limits.used_today = daily - 3  # three requests left today
    world.hubspot.app.reset_log()
    first = _materialize(world, instance, DAKTELA_TO_CRM)
    ledger = world.ledger(first.run_id)
    store = StagingStore(world.paths.staging)
    waiting = store.failed_records("activity")
    assert ledger.get(("activity", "failed"), 0) == len(waiting) > 0
    assert {w["error_class"] for w in waiting} == {"transient"}
    statuses = [e.status for e in world.hubspot.app.requests()]
    assert len([s for s in statuses if s != 429]) <= 3 and statuses.count(429) <= 2, statuses
    meta = _metadata(instance, "crm/activities")
    assert meta["crm_budget_remaining"] == 0

    with limits.lock:
        limits.used_today = 0  # midnight in the account's time zone
    second = _materialize(world, instance, DAKTELA_TO_CRM)
    assert store.failed_records("activity") == []
    assert world.ledger(second.run_id).get(("activity", "failed"), 0) == 0
    names = [o.properties[KEY] for t in ("calls", "emails", "communications") for o in world.hubspot.objects(t)]
    assert len(names) == len(set(names))
    done = world.ledger()
    assert done.get(("activity", "created"), 0) + done.get(("activity", "updated"), 0) >= len(names)
