"""Raynet: an activity whose Daktela contact points at a Raynet person or company deleted in
Raynet since it was synced is written unlinked and counted (``crm_links_deleted``), like the
HubSpot adapter does, instead of being refused ("Atribut 'person' odkazuje na neexistující
záznam.") as a validation failure in every run while the call never reaches the CRM.
Real engine, both simulators over HTTP."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from crmsync_pipelines.engine import Window
from crmsync_tests.fixtures.raynet import RaynetEngineEnv

ALL = Window(None, None)


def test_activities_of_deleted_persons_and_companies_land_unlinked(raynet_engine_env: RaynetEngineEnv) -> None:
    env = raynet_engine_env
    person = next(p for p in env.raynet.store.all("person") if not p.get("userAccount"))
    company = env.raynet.store.all("company")[-1]
    env.raynet.store.delete("person", person["id"])
    env.raynet.store.delete("company", company["id"])
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    base = {"type": "CALL", "queue": 3001, "time": now, "title": "Dotaz", "action": "CLOSE", "priority": 0}
    names = {}
    for key, contact in (("person", f"crm_{person['id']}"), ("company", f"crm_acc_contact_{company['id']}")):
        env.daktela.insert("contacts", {"name": contact, "title": key, "database": "default"})
        names[key] = env.daktela.insert("activities", {**base, "contact": contact})["name"]
    engine = env.engine()
    try:
        env.raynet.reset_log()
        load = engine.sync("activity", ALL, "run-1")[-1]
        waiting = engine.staging.failed_records("activity")
    finally:
        engine.close()
    assert waiting == [] and load.counts.get("failed", 0) == 0, waiting
    stored = {ext.removeprefix("daktela:"): r for r in env.raynet.store.all("phoneCall") for ext in r["extIds"]}
    assert stored[names["person"]].get("person") is None
    assert stored[names["company"]].get("company") is None
    assert load.metadata["crm_links_deleted"] == 2
    # One refused create and one unlinked create each: nothing written twice.
    puts = Counter(r.status for r in env.raynet.request_log if r.method == "PUT")
    assert puts[500] == 2
    assert len(stored) == len(set(stored))
