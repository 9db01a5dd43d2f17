"""HubSpot: an activity whose Daktela contact is not one of ours is matched by phone/e-mail,
even when its name happens to start with ``crm_`` (``crm_test``, a switchboard contact
``crm_acc_contact_<id>`` of another setup): the shipped mapping strips ``crm_`` and used to
hand the adapter ``test`` as a HubSpot contact id, so the activity failed validation in every
run. docs/crms/hubspot.md: "An activity whose Daktela contact is crm_<id> links to HubSpot
contact <id>. Otherwise its phone number / e-mail is matched". Real engine, shipped
mappings/hubspot, both simulators over HTTP."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from crmsync_pipelines.config import load_config
from crmsync_pipelines.engine import SyncEngine, Window
from crmsync_tests.fixtures.hubspot import HubSpotWorld

KEY = "daktela_activity_name"


def test_contacts_named_crm_but_not_ours_fall_back_to_phone_matching(hubspot_world: HubSpotWorld) -> None:
    world = hubspot_world
    contact = next(o for o in world.hubspot.objects("contacts") if o.properties.get("phone"))
    now = datetime.now(ZoneInfo("Europe/Prague")).strftime("%Y-%m-%d %H:%M:%S")
    names = {}
    for daktela_contact in ("crm_test", "crm_acc_contact_1001", "crm_12abc"):
        world.daktela.insert("contacts", {"name": daktela_contact, "title": "Cizí", "database": "default"})
        names[daktela_contact] = str(world.daktela.insert("activities", {
            "type": "CALL", "queue": 3000, "time": now, "title": "Dotaz", "action": "CLOSE", "priority": 0,
            "contact": daktela_contact, "item": {"clid": contact.properties["phone"]}})["name"])
    engine = SyncEngine.from_config(load_config(world.paths.config))
    try:
        load = engine.sync("activity", Window(None, None), "run-1")[-1]
        waiting = engine.staging.failed_records("activity")
    finally:
        engine.close()
    assert waiting == [] and load.counts.get("failed", 0) == 0, waiting
    for name in names.values():
        call = world.hubspot.find("calls", KEY, name)
        assert call is not None, name
        assert world.hubspot.app.store.associated("calls", call.id, "contacts") == [contact.id], name
    assert load.metadata["crm_activities_linked_by_match"] >= 3
    assert load.metadata["crm_activities_contact_not_ours"] == 3
