"""Memory bounded by a chunk, not by the run: set-wise passes over a whole batch run range by
range (``StagingStore.source_ranges``) and must cover every record exactly once; a ranged memo
must remember and reuse exactly what one pass would; a relation resolver that forgets its
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
from crmsync_tests.fixtures.engine import EngineEnv

#: Ids that sort in surprising ways: padded, empty-looking, non-ASCII, numeric-looking, a prefix of another.
IDS = [" padded ", "10", "2", "a", "a ", "ab", "Ž", "žluťoučký", "<no-id>:0123", "9" * 40, "-", "A"]


def _staged(tmp_path: Path, ids: list[str]) -> tuple[StagingStore, str]:
    store = StagingStore(tmp_path / "staging.duckdb")
    batch = store.new_batch("contact", "window", "run-1", None, None)
    store.insert_raw(batch, "contact", [(sid, {"id": sid}) for sid in ids])
    store.finish_extract(batch)
    return store, batch


def _covered(store: StagingStore, batch: str, ranges: list[tuple[str, str | None]]) -> list[str]:
    """The ids each range selects, in range order, with the same condition the passes use."""
    seen: list[str] = []
    with store.connect() as con:
        for after, up_to in ranges:
            rows = con.execute(
                f"SELECT source_id FROM raw_records r WHERE batch_id = ? AND {store._in_range('r')} "
                "ORDER BY source_id", [batch, after, up_to, up_to],
            ).fetchall()
            seen.extend(str(r[0]) for r in rows)
    return seen


@pytest.mark.parametrize("size", [1, 2, 3, 5, len(IDS) - 1, len(IDS), len(IDS) + 1, 1000])
def test_ranges_cover_every_record_exactly_once(tmp_path: Path, size: int) -> None:
    store, batch = _staged(tmp_path, IDS)
    store.set_chunk_rows = size
    ranges = store.source_ranges("raw_records", batch)
    seen = _covered(store, batch, ranges)
    assert sorted(seen) == sorted(IDS)
    assert len(seen) == len(set(seen)) == len(IDS)
    # Each range holds at most ``size`` rows; only the last is open-ended.
    per_range = [len(_covered(store, batch, [r])) for r in ranges]
    assert max(per_range) <= size
    assert [up_to is None for _, up_to in ranges] == [False] * (len(ranges) - 1) + [True]
    assert len(ranges) == len(IDS) // size + 1


def test_ranges_of_an_empty_batch_select_nothing(tmp_path: Path) -> None:
    store, batch = _staged(tmp_path, [])
    ranges = store.source_ranges("raw_records", batch)
    assert ranges == [("", None)]
    assert _covered(store, batch, ranges) == []


def test_ranges_stay_inside_their_batch(tmp_path: Path) -> None:
    store, batch = _staged(tmp_path, IDS)
    other = store.new_batch("contact", "window", "run-2", None, None)
    store.insert_raw(other, "contact", [(sid, {"id": sid}) for sid in ["0", "b", "zz", "a"]])
    store.set_chunk_rows = 2
    assert sorted(_covered(store, batch, store.source_ranges("raw_records", batch))) == sorted(IDS)


def test_ranges_refuse_an_unknown_table(tmp_path: Path) -> None:
    store, batch = _staged(tmp_path, IDS)
    with pytest.raises(ValueError, match="ledger"):
        store.source_ranges("ledger", batch)


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
