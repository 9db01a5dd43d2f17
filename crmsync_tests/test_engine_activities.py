"""Activities Daktela -> CRM: every channel, idempotent by name, late changes pushed as updates."""

from __future__ import annotations

import sqlite3

from crmsync_pipelines.engine import Window
from crmsync_tests.fixtures.engine import EngineEnv

ALL = Window(None, None)


def _crm_activities(env: EngineEnv) -> dict[str, dict[str, object]]:
    with sqlite3.connect(env.crm_path) as con:
        con.row_factory = sqlite3.Row
        return {row["external_id"]: dict(row) for row in con.execute("SELECT * FROM activities")}


def test_activities_of_every_channel_land_once_and_resync_writes_nothing(demo_engine_env: EngineEnv) -> None:
    env = demo_engine_env
    engine = env.engine(accounts=False, contacts=False, activities=True)
    daktela = {a["name"]: a for a in env.sim.all("activities")}
    load = engine.sync("activity", ALL, "run-1")[-1]
    assert load.counts == {"created": len(daktela)}
    stored = _crm_activities(env)
    assert set(stored) == set(daktela)
    assert {row["type"] for row in stored.values()} == {"call", "email", "web", "sms", "fbm", "wap", "vbr"}
    one = next(iter(daktela.values()))
    assert stored[one["name"]]["subject"] == (one.get("title") or None)
    # Naive instance-local times become ISO-8601 UTC in the CRM.
    assert str(stored[one["name"]]["started_at"]).endswith("+00:00")

    again = engine.sync("activity", ALL, "run-2")[-1]
    assert again.counts == {"unchanged": len(daktela)}
    assert again.api_calls["crm"] == 0
    assert _crm_activities(env) == stored


def test_an_activity_closed_after_the_first_sync_is_updated_in_the_crm(demo_engine_env: EngineEnv) -> None:
    env = demo_engine_env
    engine = env.engine(accounts=False, contacts=False, activities=True)
    open_ones = [a["name"] for a in env.sim.all("activities") if not a.get("time_close")]
    assert open_ones, "the demo seed must contain open activities"
    engine.sync("activity", ALL, "run-1")
    assert _crm_activities(env)[open_ones[0]]["closed_at"] is None
    with engine.staging.connect() as con:
        pending = {r[0] for r in con.execute("SELECT name FROM unsettled_activities").fetchall()}
    assert set(open_ones) <= pending

    env.sim.close_activity(open_ones[0])
    # A window that no longer contains the activity: it is re-read because it was not settled.
    from datetime import UTC, datetime, timedelta

    later = Window(datetime.now(UTC) + timedelta(days=1), None)
    load = engine.sync("activity", later, "run-2")[-1]
    assert load.counts.get("updated") == 1
    row = _crm_activities(env)[open_ones[0]]
    assert row["closed_at"] is not None and row["status"] == "CLOSE"
    assert len(_crm_activities(env)) == len(env.sim.all("activities"))


def test_activity_rejected_by_the_crm_fails_alone(demo_engine_env: EngineEnv) -> None:
    env = demo_engine_env
    engine = env.engine(accounts=False, contacts=False, activities=True)
    with sqlite3.connect(env.crm_path) as con:  # the CRM refuses activities without a subject from now on
        con.execute(
            "CREATE TRIGGER no_empty_subject BEFORE INSERT ON activities WHEN NEW.subject = 'REJECT' "
            "BEGIN SELECT RAISE(ABORT, 'subject rejected by the CRM'); END"
        )
    victim = env.sim.all("activities")[0]["name"]
    env.sim.update_record("activities", victim, {"title": "REJECT"})
    load = engine.sync("activity", ALL, "run-1")[-1]
    total = len(env.sim.all("activities"))
    assert load.counts["failed"] == 1 and load.counts["created"] == total - 1
    (dead,) = engine.staging.failed_records("activity")
    assert dead["source_id"] == victim and "subject rejected" in dead["error_message"]
