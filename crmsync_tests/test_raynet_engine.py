"""Activities Daktela -> Raynet through the real engine: two simulators over HTTP, real DuckDB.

What is asserted is the wire: Raynet requests per outcome (one PUT per new activity, one POST
per changed one, no per-activity lookups), the daily budget running out mid-run (partial,
resumable, no duplicates) and how activities are linked to Raynet persons.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from crmsync_pipelines.engine import Window
from crmsync_tests.fixtures.raynet import RaynetEngineEnv

ALL = Window(None, None)
ACTIVITY_ENTITIES = ("phoneCall", "email", "task")


def _raynet_activities(env: RaynetEngineEnv) -> dict[str, tuple[str, dict[str, object]]]:
    """Daktela name -> (entity, stored record), failing on a duplicate extId."""
    found: dict[str, tuple[str, dict[str, object]]] = {}
    for entity in ACTIVITY_ENTITIES:
        for record in env.raynet.store.all(entity):
            for ext in record["extIds"]:
                name = ext.removeprefix("daktela:")
                assert name not in found, f"activity {name} is stored twice in Raynet"
                found[name] = (entity, record)
    return found


def _writes(env: RaynetEngineEnv) -> Counter[str]:
    return Counter(r.method for r in env.raynet.request_log if r.method in ("PUT", "POST"))


def test_every_channel_lands_once_with_one_write_each_and_a_rerun_sends_nothing(
    raynet_engine_env: RaynetEngineEnv,
) -> None:
    env = raynet_engine_env
    daktela = {a["name"]: a for a in env.daktela.all("activities")}
    engine = env.engine()
    load = engine.sync("activity", ALL, "run-1")[-1]
    assert load.counts == {"created": len(daktela)}
    stored = _raynet_activities(env)
    assert set(stored) == set(daktela)
    entity_of = {"CALL": "phoneCall", "EMAIL": "email"}
    for name, activity in daktela.items():
        assert stored[name][0] == entity_of.get(activity["type"], "task"), name
    # Exactly one PUT per activity; no extId lookups; one person-index page (40 persons < 1000).
    assert _writes(env) == Counter({"PUT": len(daktela)})
    assert env.raynet.request_count("GET", "/api/v2/phoneCall/ext/*") == 0
    assert env.raynet.request_count() == len(daktela) + 1
    assert load.metadata["crm_requests_used"] == len(daktela) + 1
    assert load.metadata["crm_budget_remaining"] == 24_000 - len(daktela) - 1
    assert load.metadata["crm_quota_exhausted"] is False
    closed = next(n for n, a in daktela.items() if a["type"] == "CALL" and a.get("time_close"))
    call = stored[closed][1]
    assert call["status"] == "COMPLETED" and call["completed"] is not None and call["owner"] == env.raynet.user_ids[2]
    task = next(r for e, r in stored.values() if e == "task")
    assert task["resolver"] == task["owner"] and task["deadline"] == task["scheduledFrom"]

    env.raynet.reset_log()
    again = engine.sync("activity", ALL, "run-2")[-1]
    assert again.counts == {"unchanged": len(daktela)}
    assert env.raynet.request_count() == 0


def test_a_late_closed_call_is_one_post_to_the_same_raynet_record(raynet_engine_env: RaynetEngineEnv) -> None:
    env = raynet_engine_env
    engine = env.engine()
    open_call = next(a["name"] for a in env.daktela.all("activities")
                     if a["type"] == "CALL" and not a.get("time_close"))
    engine.sync("activity", ALL, "run-1")
    entity, before = _raynet_activities(env)[open_call]
    assert (entity, before["status"], before["completed"]) == ("phoneCall", "SCHEDULED", None)

    env.daktela.close_activity(open_call)
    env.raynet.reset_log()
    load = engine.sync("activity", Window(datetime.now(UTC) + timedelta(days=1), None), "run-2")[-1]
    assert load.counts.get("updated") == 1
    assert [(r.method, r.path) for r in env.raynet.request_log if r.method != "GET"] == [
        ("POST", f"/api/v2/phoneCall/{before['id']}/")]
    _entity, after = _raynet_activities(env)[open_call]
    assert after["id"] == before["id"] and after["status"] == "COMPLETED"
    assert after["completed"] is not None and after["_version"] == 2

    # The supervisor dispositions the call afterwards: one more POST carries the result.
    env.daktela.update_record("activities", open_call, {"statuses": ["statuses_callback"]})
    env.raynet.reset_log()
    load = engine.sync("activity", ALL, "run-3")[-1]  # the partition holding the call, run again
    assert load.counts.get("updated") == 1 and load.counts.get("created", 0) == 0
    assert [(r.method, r.json.get("solution")) for r in env.raynet.request_log if r.method != "GET"] == [
        ("POST", "statuses_callback")]
    assert _raynet_activities(env)[open_call][1]["solution"] == "statuses_callback"


def test_budget_running_out_mid_run_ends_partial_and_the_next_day_completes_without_duplicates(
    raynet_engine_env: RaynetEngineEnv,
) -> None:
    env = raynet_engine_env
    total = len(env.daktela.all("activities"))
    env.raynet.set_daily_limit(13)  # 1 person-index page + 12 creates, then 429 RequestLimitReached
    engine = env.engine()
    load = engine.sync("activity", ALL, "run-1")[-1]
    assert load.counts == {"created": 12, "failed": total - 12}
    dead = engine.staging.failed_records("activity")
    assert len(dead) == total - 12
    assert {d["error_class"] for d in dead} == {"transient"}
    assert all("daily API" in d["error_message"] for d in dead)
    assert load.metadata["crm_quota_exhausted"] is True and load.metadata["crm_budget_remaining"] == 0
    # X-Ratelimit-Remaining said 0 after the 13th request: the client stopped without a refusal.
    assert env.raynet.request_count() == 13
    assert sum(1 for r in env.raynet.request_log if r.status == 429) == 0
    assert len(_raynet_activities(env)) == 12

    engine.close()
    env.raynet.next_day()
    env.raynet.set_daily_limit(100)
    env.raynet.reset_log()
    engine = env.engine()  # the next run (a new process in production)
    resumed = engine.sync("activity", ALL, "run-2")[-1]
    assert resumed.counts == {"created": total - 12, "unchanged": 12}
    assert engine.staging.failed_records("activity") == []
    assert len(_raynet_activities(env)) == total
    assert _writes(env) == Counter({"PUT": total - 12})
    assert resumed.metadata["crm_budget_remaining"] == 100 - (total - 12) - 1


def test_linking_by_contact_phone_email_and_ambiguous_numbers(raynet_engine_env: RaynetEngineEnv) -> None:
    env = raynet_engine_env
    persons = [p for p in env.raynet.store.all("person") if not p.get("userAccount")]
    ours, by_phone, by_email, twin_a, twin_b = persons[:5]
    env.raynet.store.touch("person", twin_b["id"], {"contactInfo": {"tel1": twin_a["contactInfo"]["tel1"]}})
    env.daktela.insert("contacts", {"name": f"crm_{ours['id']}", "title": "Ours", "database": "default"})
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    base = {"type": "CALL", "queue": 3001, "time": now, "title": "Test", "action": "OPEN", "priority": 0}
    company = env.raynet.store.all("company")[0]
    env.daktela.insert("contacts", {"name": f"crm_acc_contact_{company['id']}", "title": "Ústředna",
                                    "database": "default"})
    env.daktela.insert("contacts", {"name": "crm_12abc", "title": "Not ours", "database": "default"})
    calls = {
        "contact": {**base, "contact": f"crm_{ours['id']}"},
        "switchboard": {**base, "contact": f"crm_acc_contact_{company['id']}"},
        "not_ours": {**base, "contact": "crm_12abc", "item": {"clid": by_phone["contactInfo"]["tel1"]}},
        # Raynet stores numbers as typed; Daktela sends E.164: both sides are normalised.
        "phone": {**base, "contact": None, "item": {"clid": by_phone["contactInfo"]["tel1"].replace(" ", "")}},
        "ambiguous": {**base, "contact": None, "item": {"clid": twin_a["contactInfo"]["tel1"].replace(" ", "")}},
        "nobody": {**base, "contact": None, "item": {"clid": "+420777000111"}},
    }
    names = {key: env.daktela.insert("activities", record)["name"] for key, record in calls.items()}
    names["email"] = env.daktela.insert("activities", {
        **base, "type": "EMAIL", "queue": 3004, "contact": None,
        "item": {"address": by_email["contactInfo"]["email"].upper(), "title": "Dotaz", "direction": "in"},
    })["name"]
    engine = env.engine()
    load = engine.sync("activity", ALL, "run-1")[-1]
    assert load.counts.get("failed", 0) == 0
    stored = _raynet_activities(env)
    person = {key: stored[name][1].get("person") for key, name in names.items()}
    assert person == {"contact": ours["id"], "switchboard": None, "not_ours": by_phone["id"],
                      "phone": by_phone["id"], "ambiguous": None, "nobody": None, "email": by_email["id"]}
    assert stored[names["switchboard"]][1]["company"] == company["id"]
    company_of_phone = (by_phone.get("primaryRelationship") or {}).get("company")
    assert stored[names["phone"]][1].get("company") == company_of_phone
    assert load.metadata["crm_links_by_phone"] == 2
    assert load.metadata["crm_links_by_email"] == 1
    assert load.metadata["crm_links_ambiguous"] == 1
    assert load.metadata["crm_links_by_contact"] >= 2
