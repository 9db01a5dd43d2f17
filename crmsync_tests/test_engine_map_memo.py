"""Set-based skipping: mapping is reused (``map_memo``) only while the raw payload, the mapping
version and the related records are unchanged; unchanged rows are ledgered set-wise.

Real simulator over HTTP, real SQLite CRM, real DuckDB; the mapper is wrapped only to count
how many records really went through it.
"""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

from crmsync_pipelines.engine import SyncEngine, Window
from crmsync_pipelines.engine.reports import StageReport
from crmsync_pipelines.mapping import default_registry
from crmsync_tests.fixtures.engine import MAPPINGS, EngineEnv


@pytest.fixture(autouse=True)
def _restore_default_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests register transformers in the process-wide registry; later tests (which
    list the known transformer names) must see it as it was."""
    registry = default_registry()
    monkeypatch.setattr(registry, "_factories", dict(registry._factories))
    monkeypatch.setattr(registry, "_callbacks", dict(registry._callbacks))

ALL = Window(None, None)


def _count_mapping(engine: SyncEngine) -> list[int]:
    """How many records the engine's mapper maps from now on (relation look-ups included)."""
    calls = [0]
    original = engine.ctx.mapper.map

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return original(*args, **kwargs)

    engine.ctx.mapper.map = counting  # type: ignore[method-assign]
    return calls


def _count(env: EngineEnv, table: str) -> int:
    with sqlite3.connect(env.crm_path) as con:
        return int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def _sync_all_mapped_again(env: EngineEnv, engine: SyncEngine, run_id: str) -> list[StageReport]:
    """Sync contacts with a fresh request log, asserting that every contact was mapped again."""
    mapped = _count_mapping(engine)
    env.sim.reset_log()
    contact = engine.sync("contact", ALL, run_id)
    assert "reused" not in contact[1].counts
    assert mapped[0] >= _count(env, "contacts")
    return contact


def _sync_both(engine: SyncEngine, run_id: str, **kwargs: Any) -> dict[str, list[Any]]:
    return {entity: engine.sync(entity, ALL, run_id, **kwargs) for entity in ("account", "contact")}


def _ledger(engine: SyncEngine, run_id: str) -> dict[tuple[str, str], int]:
    return {(r["entity"], r["outcome"]): r["count"] for r in engine.staging.ledger_summary(run_id)}


ACCOUNT_RULE = ("  - cc_field: account\n    crm_field: account_id\n"
                "    relation: {entity: account, resolve_from: id, resolve_to: name}\n")


def _contact_mapping(env: EngineEnv, *, description: str, account_rule: str = ACCOUNT_RULE) -> Path:
    """contacts.yaml with the ``description`` rule replaced by ``description`` (YAML lines)."""
    text = (MAPPINGS / "contacts.yaml").read_text(encoding="utf-8")
    assert ACCOUNT_RULE in text
    text = text.replace(ACCOUNT_RULE, account_rule)
    rule = "  - cc_field: description\n    crm_field: job_title\n"
    assert rule in text
    path = env.tmp / "contacts.yaml"
    path.write_text(text.replace(rule, description), encoding="utf-8")
    return path


def test_unchanged_rescan_maps_nothing_and_ledgers_every_record(engine_env: EngineEnv) -> None:
    accounts, contacts = _count(engine_env, "accounts"), _count(engine_env, "contacts")
    first = engine_env.engine()
    _sync_both(first, "run-1")
    first.close()

    engine = engine_env.engine()
    mapped = _count_mapping(engine)
    engine_env.sim.reset_log()
    reports = _sync_both(engine, "run-2")
    assert mapped[0] == 0
    assert reports["account"][1].counts == {"mapped": accounts, "invalid": 0, "reused": accounts}
    # Contacts the demo CRM gives a bad phone fail their mapping every run (they are never remembered).
    contact_map = reports["contact"][1].counts
    assert contact_map["reused"] == contact_map["mapped"] == contacts - contact_map["invalid"]
    assert reports["account"][2].counts == {"unchanged": accounts}
    assert reports["contact"][2].counts.get("unchanged") == contact_map["mapped"]
    assert engine_env.sim.request_count() == 0
    # Every record is in the ledger of run-2, with its diff row.
    assert _ledger(engine, "run-2")[("account", "unchanged")] == accounts
    assert _ledger(engine, "run-2")[("contact", "unchanged")] == contact_map["mapped"]
    with engine.staging.connect() as con:
        diffs = con.execute("SELECT action, count(*) FROM diffs WHERE run_id = 'run-2' GROUP BY 1").fetchall()
    assert dict(diffs)["unchanged"] == accounts + contact_map["mapped"]


def test_a_changed_raw_record_is_mapped_again_and_only_it(engine_env: EngineEnv) -> None:
    engine = engine_env.engine()
    _sync_both(engine, "run-1")
    with sqlite3.connect(engine_env.crm_path) as con:
        (cid,) = con.execute("SELECT id FROM contacts WHERE account_id IS NOT NULL ORDER BY id LIMIT 1").fetchone()
        con.execute("UPDATE contacts SET job_title = 'Ředitelka' WHERE id = ?", [cid])
    mapped = _count_mapping(engine)
    engine_env.sim.reset_log()
    reports = _sync_both(engine, "run-2")
    assert mapped[0] >= 1  # the changed contact (plus re-mapping of quarantined ones, if any)
    assert reports["contact"][1].counts["reused"] == reports["contact"][1].counts["mapped"] - 1
    assert reports["contact"][2].counts["updated"] == 1
    assert engine_env.sim.request_count("PUT") == 1
    assert engine_env.sim.request_count("POST") == 0


def test_changed_mapping_file_re_maps_everything(engine_env: EngineEnv) -> None:
    path = _contact_mapping(engine_env, description="  - cc_field: description\n    crm_field: job_title\n")
    engine = engine_env.engine(contact_mapping=path)
    _sync_both(engine, "run-1")
    with sqlite3.connect(engine_env.crm_path) as con:
        titled = int(con.execute(
            "SELECT count(*) FROM contacts WHERE coalesce(job_title, '') <> ''").fetchone()[0])
    assert titled > 0
    _contact_mapping(engine_env, description=(
        "  - cc_field: description\n    crm_field: job_title\n"
        "    transformers:\n      - {name: string_case, params: {case: upper}}\n"))
    changed = engine_env.engine(contact_mapping=path)
    contact = _sync_all_mapped_again(engine_env, changed, "run-2")
    # Czech titles upper-cased: every contact with a job title is updated, nothing else written.
    assert contact[2].counts["updated"] == titled
    assert engine_env.sim.request_count("PUT") == titled
    assert engine_env.sim.request_count("POST") == 0


def test_changed_transformer_registry_re_maps_everything(engine_env: EngineEnv) -> None:
    name = f"memo_test_{uuid.uuid4().hex[:8]}"
    registry = default_registry()
    registry.register(name, lambda value, params: None if value is None else f"{value} (v1)")
    path = _contact_mapping(engine_env, description=(
        f"  - cc_field: description\n    crm_field: job_title\n    transformers:\n      - {{name: {name}}}\n"))
    engine = engine_env.engine(contact_mapping=path)
    _sync_both(engine, "run-1")
    with sqlite3.connect(engine_env.crm_path) as con:
        titled = int(con.execute(
            "SELECT count(*) FROM contacts WHERE job_title IS NOT NULL").fetchone()[0])

    # The same transformer registered again (same code): still the same version, all reused.
    registry.register(name, lambda value, params: None if value is None else f"{value} (v1)")
    again = engine_env.engine(contact_mapping=path)
    assert "reused" in again.sync("contact", ALL, "run-2")[1].counts

    # Its code changed: every contact is mapped again, and the new values are written.
    registry.register(name, lambda value, params: None if value is None else f"{value} (v2)")
    changed = engine_env.engine(contact_mapping=path)
    contact = _sync_all_mapped_again(engine_env, changed, "run-3")
    assert contact[2].counts["updated"] == titled
    assert engine_env.sim.request_count("PUT") == titled

    # A new, unrelated transformer or callback changes the registry too: re-mapped, nothing written.
    registry.register_callback(f"{name}_cb", lambda value, params: value)
    other = engine_env.engine(contact_mapping=path)
    engine_env.sim.reset_log()
    contact = other.sync("contact", ALL, "run-4")
    assert "reused" not in contact[1].counts
    assert engine_env.sim.request_count("PUT") == 0


def test_force_full_re_maps_and_verifies_every_record(engine_env: EngineEnv) -> None:
    engine = engine_env.engine()
    first = _sync_both(engine, "run-1")
    loaded = {e: sum(first[e][2].counts.get(k, 0) for k in ("created", "updated")) for e in first}
    mapped = _count_mapping(engine)
    engine_env.sim.reset_log()
    reports = _sync_both(engine, "run-2", verify=True)
    assert all("reused" not in reports[e][1].counts for e in reports)
    assert mapped[0] >= _count(engine_env, "accounts") + _count(engine_env, "contacts")
    for entity in reports:
        assert reports[entity][2].counts.get("unchanged") == loaded[entity]
    # Verified against Daktela itself, not our memory: the records were read back.
    assert engine_env.sim.request_count("GET") > 0
    assert engine_env.sim.request_count("PUT") == 0


def test_a_changed_related_record_re_maps_the_records_pointing_at_it(engine_env: EngineEnv) -> None:
    # The contact's description is the title of its account, through the relation (the only
    # relation of this mapping: relations are resolved per related entity).
    path = _contact_mapping(engine_env, account_rule="", description=(
        "  - cc_field: description\n    crm_field: account_id\n"
        "    relation: {entity: account, resolve_from: id, resolve_to: title}\n"))
    engine = engine_env.engine(contact_mapping=path)
    _sync_both(engine, "run-1")
    with sqlite3.connect(engine_env.crm_path) as con:
        (aid,) = con.execute(
            "SELECT account_id FROM contacts WHERE account_id IS NOT NULL GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
        ).fetchone()
        members = int(con.execute("SELECT count(*) FROM contacts WHERE account_id = ?", [aid]).fetchone()[0])
        con.execute("UPDATE accounts SET name = 'Přejmenovaná s.r.o.' WHERE id = ?", [aid])
    engine_env.sim.reset_log()
    reports = _sync_both(engine, "run-2")
    assert reports["account"][2].counts["updated"] == 1
    contact_map = reports["contact"][1].counts
    assert contact_map["mapped"] - contact_map["reused"] >= members
    assert reports["contact"][2].counts.get("updated") == members
    described = [c["description"] for c in engine_env.sim.all("contacts") if c.get("description")]
    assert described.count("Přejmenovaná s.r.o.") == members


def test_reset_state_forgets_the_memo(engine_env: EngineEnv) -> None:
    engine = engine_env.engine()
    _sync_both(engine, "run-1")
    engine.reset_state("contact")
    mapped = _count_mapping(engine)
    contact = engine.sync("contact", ALL, "run-2")
    assert "reused" not in contact[1].counts
    assert mapped[0] >= _count(engine_env, "contacts")


@pytest.mark.parametrize("repeats", [2, 3])
def test_an_adapter_repeating_a_record_stages_it_once(engine_env: EngineEnv, repeats: int) -> None:
    engine = engine_env.engine()
    adapter = engine.ctx.crm.adapter
    original = adapter.iter_accounts

    def repeating(*args: Any, **kwargs: Any) -> Any:
        for record in original(*args, **kwargs):
            for _ in range(repeats):
                yield dict(record)

    adapter.iter_accounts = repeating  # type: ignore[method-assign]
    report = engine.extract("account", ALL, "run-1")
    assert report.counts["extracted"] == _count(engine_env, "accounts")
    assert engine.staging.table_counts()["raw_records"] == _count(engine_env, "accounts")
