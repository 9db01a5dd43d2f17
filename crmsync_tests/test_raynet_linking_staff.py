"""Raynet linking never makes one of the CRM's own users (staff) the customer of an activity.

Persons with a Raynet user account are the company's staff: crmsync does not sync them as
contacts (``contacts_exclude_users``), and an activity whose caller number or e-mail address
is a staff member's (an internal call, an agent writing from their own mailbox) must not be
put on that employee's timeline as if they were the customer. They stay the activity's
*owner* candidates (``link.agent_email``). Real engine, both simulators over HTTP.
"""

from __future__ import annotations

from datetime import UTC, datetime

from crmsync_pipelines.engine import Window
from crmsync_tests.fixtures.raynet import RaynetEngineEnv

ALL = Window(None, None)


def _stored(env: RaynetEngineEnv) -> dict[str, dict[str, object]]:
    return {ext.removeprefix("daktela:"): record for entity in ("phoneCall", "email", "task")
            for record in env.raynet.store.all(entity) for ext in record["extIds"]}


def test_staff_numbers_and_addresses_do_not_link_activities_to_staff(raynet_engine_env: RaynetEngineEnv) -> None:
    env = raynet_engine_env
    staff = [p for p in env.raynet.store.all("person") if p.get("userAccount")]
    customer = next(p for p in env.raynet.store.all("person") if not p.get("userAccount"))
    agent, other_agent = staff[0], staff[1]
    env.raynet.store.touch("person", agent["id"], {"contactInfo": {"tel1": "+420 777 000 111"}})
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    base = {"type": "CALL", "queue": 3001, "time": now, "title": "Interní", "action": "OPEN", "priority": 0,
            "contact": None}
    names = {
        "staff_phone": env.daktela.insert("activities", {**base, "item": {"clid": "+420777000111"}})["name"],
        "staff_email": env.daktela.insert("activities", {
            **base, "type": "EMAIL", "queue": 3004,
            "item": {"address": f" {other_agent['contactInfo']['email'].upper()} ", "title": "Re", "direction": "out"},
        })["name"],
        "customer_email": env.daktela.insert("activities", {
            **base, "type": "EMAIL", "queue": 3004,
            "item": {"address": customer["contactInfo"]["email"], "title": "Dotaz", "direction": "in"},
        })["name"],
    }
    engine = env.engine()
    try:
        load = engine.sync("activity", ALL, "run-1")[-1]
    finally:
        engine.close()
    assert load.counts.get("failed", 0) == 0
    stored = _stored(env)
    assert {key: stored[name].get("person") for key, name in names.items()} == {
        "staff_phone": None, "staff_email": None, "customer_email": customer["id"]}
    staff_ids = {p["id"] for p in staff}
    assert not any(record.get("person") in staff_ids for record in stored.values())
