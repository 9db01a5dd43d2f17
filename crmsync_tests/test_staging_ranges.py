"""Memory bounded by a chunk, not by the run, and cost linear in it: the memo is saved range by
range (``StagingStore.save_memo``) and landed records are read back chunk by chunk
(``StagingStore.iter_landed``); both must cover every record exactly once; a ranged memo
must remember and reuse exactly what one pass would; auto-contacts are made for every landed
account in chunks of 3; a relation resolver that forgets its
cache (``engine.relations.CACHE_LIMIT``) must still link every record.

Real DuckDB files, real simulator over HTTP, real SQLite CRM.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from crmsync_pipelines.engine import Window, relations
from crmsync_pipelines.staging import StagingStore
from crmsync_pipelines.staging.store import MappedRow, RecordResult
from crmsync_tests.fixtures.engine import EngineEnv

#: Ids that sort in surprising ways: padded, empty-looking, non-ASCII, numeric-looking, a prefix of another.
IDS = [" padded ", "10", "2", "a", "a ", "ab", "Ž", "žluťoučký", "<no-id>:0123", "9" * 40, "-", "A"]


def _staged(tmp_path: Path, ids: list[str]) -> tuple[StagingStore, str]:
    """A contact batch of ``ids``, each mapped clean except ids starting with ``-`` (quarantined)."""
    store = StagingStore(tmp_path / "staging.duckdb")
    batch = store.new_batch("contact", "window", "run-1", None, None)
    store.insert_raw(batch, "contact", [(sid, {"id": sid}) for sid in ids])
    store.finish_extract(batch)
    store.insert_mapped(batch, "contact", [_mapped(sid) for sid in ids])
    return store, batch


def _mapped(sid: str, version: str = "1") -> MappedRow:
    if sid.startswith("-"):
        return MappedRow(sid, None, None, None, "validation", "[required] name")
    return MappedRow(sid, f"crm_{sid}", {"name": sid, "v": version}, f"h{sid}.{version}", None, None)


def _memo(store: StagingStore) -> dict[str, tuple[str, str]]:
    with store.connect() as con:
        rows = con.execute("SELECT source_id, mapping_version, payload_hash FROM map_memo").fetchall()
    assert len(rows) == len({r[0] for r in rows})  # one memo row per record
    return {str(s): (str(v), str(h)) for s, v, h in rows}


def _scratch(store: StagingStore) -> int:
    with store.connect() as con:
        counts = [con.execute(f"SELECT count(*) FROM {t}").fetchone() for t in ("memo_pending", "landed_chunks")]
    return sum(int(row[0]) for row in counts if row)


CLEAN = [sid for sid in IDS if not sid.startswith("-")]


@pytest.mark.parametrize("size", [1, 2, 3, 5, len(IDS) - 1, len(IDS), len(IDS) + 1, 1000])
def test_a_ranged_memo_save_covers_every_clean_record_exactly_once(tmp_path: Path, size: int) -> None:
    """Saved ``size`` rows per transaction: every clean row once (none twice, none left out),
    quarantined and excluded rows never, and the scratch rows gone afterwards."""
    store, batch = _staged(tmp_path, IDS)
    store.set_chunk_rows = size
    saved = store.save_memo(batch, "contact", "v1", [], exclude=["a "])
    expected = {sid: ("v1", f"h{sid}.1") for sid in CLEAN if sid != "a "}
    assert saved == len(expected)
    assert _memo(store) == expected
    assert _scratch(store) == 0


@pytest.mark.parametrize("size", [1, 2, 3, 1000])
def test_a_memo_save_writes_only_what_changed_even_with_gaps_in_its_ranges(tmp_path: Path, size: int) -> None:
    """Rows the memo already holds as they are are dropped before the ranged save; the rest
    (every other row: numbers with gaps) are still all saved; nothing else is touched."""
    store, batch = _staged(tmp_path, IDS)
    store.set_chunk_rows = size
    assert store.save_memo(batch, "contact", "v1", []) == len(CLEAN)
    assert store.save_memo(batch, "contact", "v1", []) == 0  # nothing changed: nothing written
    changed = CLEAN[::2]
    store.clear_mapped(batch)
    store.insert_mapped(batch, "contact", [_mapped(sid, "2" if sid in changed else "1") for sid in IDS])
    assert store.save_memo(batch, "contact", "v1", []) == len(changed)
    assert _memo(store) == {sid: ("v1", f"h{sid}.{2 if sid in changed else 1}") for sid in CLEAN}
    # A new mapping version: every clean row again.
    assert store.save_memo(batch, "contact", "v2", []) == len(CLEAN)
    assert {v for v, _ in _memo(store).values()} == {"v2"}
    assert _scratch(store) == 0


def test_a_memo_save_stays_inside_its_batch(tmp_path: Path) -> None:
    store, batch = _staged(tmp_path, IDS)
    other = store.new_batch("contact", "window", "run-2", None, None)
    store.insert_raw(other, "contact", [(sid, {"id": sid}) for sid in ["0", "b", "zz"]])
    store.insert_mapped(other, "contact", [_mapped(sid) for sid in ["0", "b", "zz"]])
    store.set_chunk_rows = 2
    store.save_memo(batch, "contact", "v1", [])
    assert set(_memo(store)) == set(CLEAN)


def _ledger(store: StagingStore) -> list[str]:
    """Records of run-1/batch b, with every outcome; returns the ids that landed, sorted."""
    outcomes = ["created", "updated", "unchanged", "failed", "skipped"]
    results = [RecordResult(sid, outcomes[i % 5], lookup_key=f"crm_{sid}",
                            error_class="transient" if i % 5 == 3 else None)
               for i, sid in enumerate(IDS)]
    results.append(RecordResult("no-key", "created"))  # no lookup key: nothing to pair with
    store.record_results("run-1", "b", "account", results)
    store.record_results("run-1", "b", "account", [RecordResult(IDS[0], "updated", lookup_key=f"crm_{IDS[0]}")])
    store.record_results("run-2", "b", "account", [RecordResult("other-run", "created", lookup_key="x")])
    store.record_results("run-1", "b2", "account", [RecordResult("other-batch", "created", lookup_key="x")])
    store.record_results("run-1", "b", "contact", [RecordResult("other-entity", "created", lookup_key="x")])
    return sorted(sid for i, sid in enumerate(IDS) if i % 5 < 3)


@pytest.mark.parametrize("size", [1, 3, 5, len(IDS), 1000])
def test_landed_records_come_back_once_each_in_chunks_by_source_id(tmp_path: Path, size: int) -> None:
    store = StagingStore(tmp_path / "staging.duckdb")
    landed = _ledger(store)
    chunks = list(store.iter_landed("run-1", "b", "account", size))
    assert all(0 < len(c) <= size for c in chunks)
    pairs = [pair for chunk in chunks for pair in chunk]
    assert pairs == [(sid, f"crm_{sid}") for sid in landed]  # once each (retried included), in order
    assert _scratch(store) == 0
    assert list(store.iter_landed("run-9", "b", "account", size)) == []


def test_landed_records_left_half_read_are_cleaned_up(tmp_path: Path) -> None:
    store = StagingStore(tmp_path / "staging.duckdb")
    landed = _ledger(store)
    chunks = store.iter_landed("run-1", "b", "account", 2)
    assert [sid for sid, _ in next(chunks)] == landed[:2]
    chunks.close()  # the consumer stopped early (an exception, a break)
    assert _scratch(store) == 0
    assert [sid for chunk in store.iter_landed("run-1", "b", "account", 2) for sid, _ in chunk] == landed


def _count(env: EngineEnv, table: str) -> int:
    with sqlite3.connect(env.crm_path) as con:
        return int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_a_ranged_memo_remembers_and_reuses_every_clean_mapping(engine_env: EngineEnv) -> None:
    all_time = Window(None, None)
    contacts = _count(engine_env, "contacts")
    first = engine_env.engine()
    first.staging.set_chunk_rows = 7  # many ranges, one of them short
    reports = {e: first.sync(e, all_time, "run-1") for e in ("account", "contact")}
    clean = {e: reports[e][1].counts["mapped"] for e in reports}
    with first.staging.connect() as con:
        memo = dict(con.execute("SELECT entity, count(*) FROM map_memo GROUP BY 1").fetchall())
        keys = dict(con.execute("SELECT entity, count(*) FROM key_map GROUP BY 1").fetchall())
    assert memo == clean
    assert keys["contact"] >= clean["contact"]
    first.close()

    again = engine_env.engine()
    again.staging.set_chunk_rows = 7
    engine_env.sim.reset_log()
    contact = again.sync("contact", all_time, "run-2")
    assert contact[1].counts["reused"] == contact[1].counts["mapped"] == clean["contact"]
    assert contact[1].counts["invalid"] == contacts - clean["contact"]
    assert contact[2].counts.get("unchanged") == clean["contact"]
    assert engine_env.sim.request_count() == 0
    with again.staging.connect() as con:
        ledgered = con.execute(
            "SELECT count(DISTINCT source_id), count(*) FROM ledger WHERE run_id = 'run-2' AND entity = 'contact'"
        ).fetchone()
    assert ledgered == (contacts, contacts)  # every record once: unchanged or failed


def test_a_resolver_past_its_cache_limit_still_links_every_contact(
    engine_env: EngineEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The relation cache is forgotten at every chunk (limit 0, chunks of 4 contacts): each
    contact still points at its account's Daktela name, resolved again from staging (no CRM call)."""
    monkeypatch.setattr(relations, "CACHE_LIMIT", 0)
    engine = engine_env.engine()
    engine.ctx.settings = dataclasses.replace(engine.ctx.settings, chunk_size=4)
    all_time = Window(None, None)
    engine.sync("account", all_time, "run-1")
    lookups: list[int] = []
    original = engine.staging.latest_raw

    def latest_raw(entity: str, source_ids: Any) -> dict[str, dict[str, Any]]:
        ids = list(source_ids)
        lookups.append(len(ids))
        return original(entity, ids)

    engine.staging.latest_raw = latest_raw  # type: ignore[method-assign]
    before = engine.ctx.api_snapshot()
    contact = engine.sync("contact", all_time, "run-1")
    assert engine.ctx.api_delta(before).get("crm", 0) == 1  # the contacts' own read, nothing per account
    with sqlite3.connect(engine_env.crm_path) as con:
        linked = dict(con.execute(
            "SELECT id, account_id FROM contacts WHERE account_id IN (SELECT id FROM accounts)").fetchall())
    # The simulator answers a contact's account expanded, as Daktela does: an object with its name.
    loaded = {str(c["name"]): (c.get("account") or {}).get("name") for c in engine_env.sim.all("contacts")}
    keys = dict(engine.staging.source_ids_for_keys("contact", loaded).items())
    by_source = {sid: loaded[key] for key, sid in keys.items()}
    checked = [cid for cid in linked if str(cid) in by_source]
    assert len(checked) >= len(linked) // 2
    assert all(by_source[str(cid)] == f"crm_acc_{linked[cid]}" for cid in checked)
    assert contact[2].counts.get("created", 0) == len(loaded)
    # Forgotten between chunks: an account referenced by two chunks was looked up again.
    assert sum(lookups) > len(set(linked.values()))


def test_activity_settle_bookkeeping_written_chunk_by_chunk_matches_the_window(demo_engine_env: EngineEnv) -> None:
    """Chunks of 3: the unsettled activities are recorded as the window is read (no set of every
    name held); afterwards the table holds exactly the open activities, and one closed later is
    re-read by name from a window that no longer contains it."""
    env = demo_engine_env
    engine = env.engine(accounts=False, contacts=False, activities=True)
    engine.ctx.settings = dataclasses.replace(engine.ctx.settings, chunk_size=3)
    activities = env.sim.all("activities")
    open_ones = sorted(a["name"] for a in activities if not a.get("time_close"))
    assert len(activities) > 3 and open_ones
    load = engine.sync("activity", Window(None, None), "run-1")[-1]
    assert load.counts == {"created": len(activities)}

    def waiting() -> list[str]:
        with engine.staging.connect() as con:
            return sorted(str(r[0]) for r in con.execute("SELECT name FROM unsettled_activities").fetchall())

    # Closed long enough ago counts as settled; the rest (open, or closed within settle_minutes) waits.
    assert set(open_ones) <= set(waiting())
    assert len(waiting()) < len(activities)
    before = waiting()
    env.sim.close_activity(open_ones[0])
    later = Window(datetime.now(UTC) + timedelta(days=1), None)
    again = engine.sync("activity", later, "run-2")
    assert again[0].counts["extracted"] == len(before)  # every waiting one re-read by name, once
    assert again[-1].counts == {"updated": 1, "unchanged": len(before) - 1}


def test_a_runs_final_outcomes_are_counted_in_staging_each_record_once(tmp_path: Path) -> None:
    """The library's result counts each record once with its last ledger row of the run, in SQL
    (not by reading every ledger row into memory); only the finally failed rows are read."""
    from crmsync_pipelines.staging.store import RecordResult

    store = StagingStore(tmp_path / "staging.duckdb")
    store.record_results("run-1", "b", "contact", [
        RecordResult("1", "failed", error_class="transient", error_message="503"),
        RecordResult("2", "failed", error_class="validation", error_message="[required] phone"),
        RecordResult("3", "created", lookup_key="crm_3"),
    ])
    store.record_results("run-2", "b2", "contact", [RecordResult("3", "failed", error_class="transient")])
    store.record_results("run-1", "b", "contact", [RecordResult("1", "created", lookup_key="crm_1")])  # retried
    store.record_results("run-1", "b", "account", [RecordResult("9", "unchanged", lookup_key="crm_acc_9")])
    store.record_results("run-1", "b", "contact", [RecordResult("2", "failed", error_class="validation",
                                                                error_message="[required] phone, again")])
    assert store.final_outcomes("run-1") == [("contact", "created", 2), ("contact", "failed", 1),
                                            ("account", "unchanged", 1)]
    failed = store.final_failures("run-1")
    assert [(r["entity"], r["source_id"], r["error_message"]) for r in failed] == [
        ("contact", "2", "[required] phone, again")]
    assert store.final_outcomes("run-3") == [] and store.final_failures("run-3") == []


def test_auto_contacts_are_made_for_every_landed_account_in_chunks_of_3(engine_env: EngineEnv) -> None:
    """The accounts that landed are read back in chunks of 3 (``iter_landed``): every one gets
    its auto-contact decision exactly once, and each created contact is in Daktela."""
    engine = engine_env.engine(contacts=False, auto_contact=True, skip_if_exists="[]")
    engine.ctx.settings = dataclasses.replace(engine.ctx.settings, chunk_size=3)
    load = engine.sync("account", Window(None, None), "run-1")[-1]
    accounts = _count(engine_env, "accounts")
    assert accounts > 6  # more than two chunks, the last one short
    with engine.staging.connect() as con:
        landed = {str(r[0]) for r in con.execute(
            "SELECT source_id FROM ledger WHERE run_id = 'run-1' AND entity = 'account' "
            "AND outcome IN ('created', 'updated', 'unchanged')").fetchall()}
        decided = con.execute(
            "SELECT source_id, outcome FROM ledger WHERE run_id = 'run-1' AND entity = 'auto_contact'").fetchall()
    assert len(landed) == accounts
    assert len(decided) == len({sid for sid, _ in decided})  # once each
    assert {str(sid) for sid, _ in decided} <= landed
    assert len(decided) + load.counts.get("auto_contact_skipped_empty", 0) == accounts
    created = [str(sid) for sid, outcome in decided if outcome == "created"]
    assert created and load.counts["auto_contact_created"] == len(created)
    assert all(engine_env.sim.get("contacts", f"crm_acc_contact_{sid}") is not None for sid in created)
