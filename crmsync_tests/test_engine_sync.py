"""The sync engine end to end: real simulator over HTTP, real SQLite CRM, real DuckDB staging."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

from crmsync_pipelines.crm.demo_data import mutate_demo_crm
from crmsync_pipelines.engine import Window
from crmsync_pipelines.simulator import Fault
from crmsync_tests.fixtures.engine import EngineEnv

ALL = Window(None, None)


def _crm_count(env: EngineEnv, table: str) -> int:
    with sqlite3.connect(env.crm_path) as con:
        return int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def _outcomes(engine: object, run_id: str) -> dict[tuple[str, str], int]:
    return {(r["entity"], r["outcome"]): r["count"] for r in engine.staging.ledger_summary(run_id)}  # type: ignore[attr-defined]


def test_first_sync_creates_everything_and_second_writes_nothing(engine_env: EngineEnv) -> None:
    engine = engine_env.engine()
    accounts, contacts = _crm_count(engine_env, "accounts"), _crm_count(engine_env, "contacts")
    for entity in ("account", "contact"):
        reports = engine.sync(entity, ALL, "run-1")
        assert all(c.passed for r in reports for c in r.checks), [c for r in reports for c in r.checks]
    assert _outcomes(engine, "run-1") == {("account", "created"): accounts, ("contact", "created"): contacts}
    assert engine_env.sim.count("accounts") == accounts
    assert engine_env.sim.count("contacts") == contacts
    # Initial load: N creates plus a handful of reads, never one lookup per record.
    assert engine_env.sim.request_count("POST") == accounts + contacts
    assert engine_env.sim.request_count("GET", "/api/v6/contacts*") <= 2

    engine_env.sim.reset_log()
    for entity in ("account", "contact"):
        load = engine.sync(entity, ALL, "run-2")[-1]
        assert load.counts == {"unchanged": accounts if entity == "account" else contacts}
        assert load.api_calls["daktela"] == 0
    assert engine_env.writes() == 0
    assert engine_env.sim.request_count() == 0  # unchanged records cost no Daktela call at all


def test_incremental_sync_updates_exactly_the_changed_records(engine_env: EngineEnv) -> None:
    engine = engine_env.engine()
    for entity in ("account", "contact"):
        engine.sync(entity, ALL, "run-1")
    since = datetime.now(UTC) - timedelta(seconds=1)
    stats = mutate_demo_crm(engine_env.crm_path, touch_pct=20.0, seed=3)
    assert stats.contacts_touched > 0
    engine_env.sim.reset_log()
    window = Window(since, None)
    loads = {entity: engine.sync(entity, window, "run-2")[-1] for entity in ("account", "contact")}
    assert loads["contact"].counts.get("updated") == stats.contacts_touched
    assert loads["account"].counts.get("updated") == stats.accounts_touched
    assert engine_env.sim.request_count("POST") == 0
    assert engine_env.sim.request_count("PUT") == stats.contacts_touched + stats.accounts_touched


def test_daktela_rejects_one_record_it_fails_alone_with_field_errors(engine_env: EngineEnv) -> None:
    with sqlite3.connect(engine_env.crm_path) as con:
        bad_id = con.execute("SELECT id FROM contacts ORDER BY id LIMIT 1").fetchone()[0]
        con.execute("UPDATE contacts SET email = 'not-an-email' WHERE id = ?", [bad_id])
    engine = engine_env.engine()
    engine.sync("account", ALL, "run-1")
    load = engine.sync("contact", ALL, "run-1")[-1]
    total = _crm_count(engine_env, "contacts")
    assert load.counts["created"] == total - 1
    assert load.counts["failed"] == 1
    failed = engine.staging.failed_records("contact")
    assert [(f["source_id"], f["error_class"], f["attempts"]) for f in failed] == [(str(bad_id), "validation", 1)]
    assert "customFields" in failed[0]["error_message"] and "email" in failed[0]["error_message"]
    assert not any(c.passed for c in load.checks if c.name == "no_failed_records")

    (row,) = [r for r in engine.staging.ledger_rows("run-1", "contact") if r["outcome"] == "failed"]
    assert (row["source_id"], row["error_class"]) == (str(bad_id), "validation")

    # Same bad data again: held back without an API call, still waiting in failed_records.
    engine_env.sim.reset_log()
    load = engine.sync("contact", ALL, "run-held")[-1]
    assert load.counts == {"unchanged": total - 1, "skipped": 1}
    assert engine_env.sim.request_count() == 0
    assert engine.staging.failed_records("contact")[0]["attempts"] == 1

    # Once the CRM fixes the record it lands, and leaves the dead-letter table.
    with sqlite3.connect(engine_env.crm_path) as con:
        con.execute("UPDATE contacts SET email = 'fixed@example.cz', updated_at = ? WHERE id = ?",
                    [datetime.now(UTC).replace(microsecond=0).isoformat(), bad_id])
    load = engine.sync("contact", ALL, "run-2")[-1]
    assert load.counts.get("created") == 1 and load.counts.get("failed", 0) == 0
    assert engine.staging.failed_records("contact") == []
    assert engine_env.sim.count("contacts") == total


def test_transient_failures_are_retried_on_the_next_run_without_duplicates(engine_env: EngineEnv) -> None:
    engine = engine_env.engine()
    engine.sync("account", ALL, "run-1")
    engine_env.sim.add_fault(Fault(route="POST /api/v6/contacts.json", kind="status", status=503, times=None))
    load = engine.sync("contact", ALL, "run-1")[-1]
    total = _crm_count(engine_env, "contacts")
    assert load.counts.get("failed") == total
    assert {f["error_class"] for f in engine.staging.failed_records("contact")} == {"transient"}
    engine_env.sim.clear_faults()

    # A later load of another window retries the transient dead letters by itself.
    load = engine.sync("contact", Window(datetime.now(UTC) + timedelta(days=1), None), "run-2")[-1]
    assert load.counts.get("retried") == total
    assert load.counts.get("created") == total
    assert engine.staging.failed_records("contact") == []
    assert engine_env.sim.count("contacts") == total


def test_contact_pointing_at_an_account_missing_from_daktela_syncs_it_on_the_fly(engine_env: EngineEnv) -> None:
    engine = engine_env.engine()
    load = engine.sync("contact", ALL, "run-1")[-1]
    with sqlite3.connect(engine_env.crm_path) as con:
        referenced = con.execute(
            "SELECT count(DISTINCT account_id) FROM contacts WHERE account_id IS NOT NULL"
        ).fetchone()[0]
    assert load.counts["created"] == _crm_count(engine_env, "contacts")
    assert _outcomes(engine, "run-1")[("account", "created")] == referenced
    names = {a["name"] for a in engine_env.sim.all("accounts")}
    for contact in engine_env.sim.all("contacts"):
        account = contact.get("account")
        if account:
            assert (account["name"] if isinstance(account, dict) else account) in names


def test_plan_shows_field_changes_and_writes_nothing(engine_env: EngineEnv) -> None:
    engine = engine_env.engine()
    engine.sync("account", ALL, "run-1")
    engine.sync("contact", ALL, "run-1")
    with sqlite3.connect(engine_env.crm_path) as con:
        cid = con.execute("SELECT id FROM contacts ORDER BY id LIMIT 1").fetchone()[0]
        con.execute("UPDATE contacts SET job_title = 'Ředitel', updated_at = ? WHERE id = ?",
                    [datetime.now(UTC).replace(microsecond=0).isoformat(), cid])
    engine_env.sim.reset_log()
    report = engine.plan("contact", ALL, "plan-1")
    assert engine_env.writes() == 0
    assert report.counts["would_update"] == 1 and report.counts["would_create"] == 0
    (change,) = report.planned
    assert change.source_id == str(cid) and change.action == "update"
    assert [(c.field, c.new) for c in change.changes] == [("description", "Ředitel")]
    assert engine.staging.ledger_summary("plan-1") == []


def test_sync_ids_and_retry_failed(engine_env: EngineEnv) -> None:
    engine = engine_env.engine()
    engine.sync("account", ALL, "run-1")
    with sqlite3.connect(engine_env.crm_path) as con:
        ids = [str(r[0]) for r in con.execute("SELECT id FROM contacts ORDER BY id LIMIT 3")]
    report = engine.sync_ids("contact", [*ids, "999999"], "hook-1")
    assert report.counts["created"] == 3 and report.counts["not_found"] == 1
    assert engine_env.sim.count("contacts") == 3
    again = engine.sync_ids("contact", ids, "hook-2")
    assert again.counts.get("unchanged") == 3 and again.api_calls["daktela"] == 0

    engine_env.sim.add_fault(Fault(route="PUT /api/v6/contacts*", kind="status", status=500, times=None))
    with sqlite3.connect(engine_env.crm_path) as con:
        con.execute("UPDATE contacts SET job_title = 'CFO' WHERE id = ?", [ids[0]])
    failed = engine.sync_ids("contact", [ids[0]], "hook-3")
    assert failed.counts["failed"] == 1
    engine_env.sim.clear_faults()
    (retry,) = engine.retry_failed("contact", "retry-1")
    assert retry.counts["queued"] == 1 and retry.counts["updated"] == 1
    assert engine.staging.failed_records() == []


def test_a_hand_edit_in_daktela_is_repaired_by_a_verifying_sync(engine_env: EngineEnv) -> None:
    engine = engine_env.engine()
    engine.sync("account", ALL, "run-1")
    engine.sync("contact", ALL, "run-1")
    victim = sorted(c["name"] for c in engine_env.sim.all("contacts"))[0]
    original = engine_env.sim.get("contacts", victim)
    assert original is not None
    engine_env.sim.update_record("contacts", victim, {"title": "Edited by an agent"})

    # The change-detection memory says nothing changed on the CRM side: no call at all.
    engine_env.sim.reset_log()
    assert engine.sync("contact", ALL, "run-2")[-1].counts.get("updated", 0) == 0
    assert engine_env.sim.request_count() == 0

    # A verifying sync (crmsync sync --force-full) compares with Daktela and repairs the drift.
    load = engine.sync("contact", ALL, "run-3", verify=True)[-1]
    assert load.counts["updated"] == 1
    assert load.counts["unchanged"] == _crm_count(engine_env, "contacts") - 1
    assert engine_env.sim.request_count("PUT") == 1
    repaired = engine_env.sim.get("contacts", victim)
    assert repaired is not None and repaired["title"] == original["title"]
