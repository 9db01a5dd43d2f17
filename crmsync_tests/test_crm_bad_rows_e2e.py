"""Issue 9 §3 and §4 end to end: no CRM row is invisible, and a bad row fails alone.

Real parts only: the Daktela simulator over HTTP, real SQLite CRM files, the real engine and
DuckDB staging, and ``crmsync`` CLI commands. Every test asserts the exact ledger rows and
dead letters a run leaves.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from crmsync_pipelines.cli.main import cli
from crmsync_pipelines.config import load_config
from crmsync_pipelines.crm.base import RECORD_ERROR_KEY, Record
from crmsync_pipelines.crm.sql import SqlCrmAdapter
from crmsync_pipelines.daktela.adapter import DaktelaAdapter
from crmsync_pipelines.engine import SyncEngine, Window
from crmsync_pipelines.engine.extract import INVALID_ID_PREFIX
from crmsync_pipelines.simulator import Fault
from crmsync_pipelines.staging import StagingStore
from crmsync_tests.fixtures.engine import EngineEnv

ALL = Window(None, None)
NOV20 = Window(datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 11, 21, tzinfo=UTC))
NOV30 = Window(datetime(2026, 11, 30, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
BAD_UTF8 = "CAST(x'4a616efffe' AS TEXT)"

#: (contact id, raw updated_at, the UTC day it belongs to, or None when it cannot be read)
MODIFIED_TIMES: list[tuple[int, Any, str | None]] = [
    (101, "2026-11-20T10:00:00+0100", "2026-11-20"),  # PHP DATE_ISO8601
    (102, "not a date", None),
    (103, "30.11.2026 09:15", "2026-11-30"),  # European d.m.Y H:i, naive = crm.timezone (UTC)
    (104, "2026-11-20 08:30:00+01", "2026-11-20"),  # offset in whole hours, space separator
    (105, int(datetime(2026, 11, 20, 11, 0, tzinfo=UTC).timestamp()), "2026-11-20"),  # epoch seconds
    (106, str(int(datetime(2026, 11, 20, 12, 0, tzinfo=UTC).timestamp() * 1000)), "2026-11-20"),  # epoch ms
    (107, "2026-11-19T23:30:00-01:00", "2026-11-20"),  # local date the 19th, UTC the 20th
    (108, "2026-11-21T00:30:00+02:00", "2026-11-20"),  # local date the 21st, UTC the 20th
    (109, "2026-11-20T13:00:00.123456789Z", "2026-11-20"),  # nanoseconds
    (110, "", None),
    (111, "0000-00-00 00:00:00", None),  # MySQL's zero date
    (112, "2026-02-30T10:00:00Z", None),  # impossible day: refused, never rolled over
    (113, "Fri, 20 Nov 2026 15:00:00 +0100", "2026-11-20"),  # RFC 2822
    (114, 2461365.0, "2026-11-20"),  # a SQLite julianday() value (2026-11-20T12:00Z)
    (115, "20.11.2026", "2026-11-20"),
]


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def _with_crm_settings(env: EngineEnv, extra: str, **kwargs: Any) -> Path:
    """sync.yaml of the env with more ``crm:`` keys (indented YAML lines)."""
    path = env.write_config(**kwargs)
    text = path.read_text(encoding="utf-8")
    assert "  adapter: sql\n" in text
    path.write_text(text.replace("  adapter: sql\n", "  adapter: sql\n" + extra), encoding="utf-8")
    return path


def _replace_contacts(env: EngineEnv, rows: list[tuple[int, Any]]) -> None:
    with sqlite3.connect(env.crm_path) as con:
        con.execute("DELETE FROM contacts")
        con.executemany(
            "INSERT INTO contacts (id, first_name, last_name, updated_at) VALUES (?, 'Eva', ?, ?)",
            [(cid, f"Contact{cid}", raw) for cid, raw in rows],
        )


def _outcomes(engine: SyncEngine, run_id: str, entity: str = "contact") -> dict[str, str]:
    return {r["source_id"]: r["outcome"] for r in engine.staging.ledger_rows(run_id, entity)}


def _dead(engine: SyncEngine, entity: str = "contact") -> dict[str, dict[str, Any]]:
    return {d["source_id"]: d for d in engine.staging.failed_records(entity)}


@pytest.fixture
def times_env(engine_env: EngineEnv) -> EngineEnv:
    _replace_contacts(engine_env, [(cid, raw) for cid, raw, _ in MODIFIED_TIMES])
    return engine_env


# -- §3 modified times: no row is invisible -------------------------------------------------------------
def test_every_layout_lands_in_its_window_and_unreadable_times_fail_in_every_window(times_env: EngineEnv) -> None:
    engine = times_env.engine(accounts=False)
    on_20th = {str(cid) for cid, _, day in MODIFIED_TIMES if day == "2026-11-20"}
    unreadable = {str(cid) for cid, _, day in MODIFIED_TIMES if day is None}

    plan = engine.plan("contact", NOV20, "plan-20")
    assert plan.counts["would_create"] == len(on_20th) and plan.counts["invalid"] == len(unreadable)
    assert times_env.writes() == 0

    reports = engine.sync("contact", NOV20, "run-20")
    assert reports[0].counts["extracted"] == len(on_20th) + len(unreadable)
    assert _outcomes(engine, "run-20") == {**dict.fromkeys(on_20th, "created"), **dict.fromkeys(unreadable, "failed")}
    dead = _dead(engine)
    assert set(dead) == unreadable
    assert {d["error_class"] for d in dead.values()} == {"validation"}
    assert dead["102"]["error_message"].startswith(
        "[source] unreadable modified time in column 'updated_at': 'not a date' is not a time"
    )
    assert "'0000-00-00 00:00:00'" in dead["111"]["error_message"]
    assert "'2026-02-30T10:00:00Z'" in dead["112"]["error_message"]
    assert "is empty text" in dead["110"]["error_message"]
    assert times_env.sim.count("contacts") == len(on_20th)

    engine.sync("contact", NOV30, "run-30")
    assert _outcomes(engine, "run-30") == {"103": "created", **dict.fromkeys(unreadable, "failed")}
    assert {d["attempts"] for d in _dead(engine).values()} == {2}, "one dead letter per row, updated"
    assert times_env.sim.count("contacts") == len(on_20th) + 1
    engine.close()


def test_naive_times_are_read_in_the_configured_crm_zone(engine_env: EngineEnv) -> None:
    _replace_contacts(engine_env, [(1, "30.11.2026 00:30"), (2, "2026-11-30 00:30:00"), (3, "2026-11-30T00:30:00Z")])
    prague = _with_crm_settings(engine_env, "  timezone: Europe/Prague\n", accounts=False)
    engine = SyncEngine.from_config(load_config(prague))
    nov29 = Window(datetime(2026, 11, 29, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC))
    engine.sync("contact", nov29, "run-29")
    assert _outcomes(engine, "run-29") == {"1": "created", "2": "created"}, "00:30 in Prague is 23:30 UTC"
    engine.sync("contact", NOV30, "run-30")
    assert _outcomes(engine, "run-30") == {"3": "created"}
    engine.close()


def test_unreadable_time_is_retried_by_id_and_clears_once_fixed(times_env: EngineEnv) -> None:
    engine = times_env.engine(accounts=False)
    engine.sync("contact", NOV20, "run-20")
    (retry,) = engine.retry_failed("contact", "retry-1")
    assert retry.counts.get("not_found", 0) == 0
    assert _outcomes(engine, "retry-1") == {"102": "failed", "110": "failed", "111": "failed", "112": "failed"}
    with sqlite3.connect(times_env.crm_path) as con:
        con.execute("UPDATE contacts SET updated_at = '2026-11-20T10:00:00+00:00' WHERE id IN (102, 110, 111, 112)")
    engine.retry_failed("contact", "retry-2")
    assert _outcomes(engine, "retry-2") == {"102": "created", "110": "created", "111": "created", "112": "created"}
    assert _dead(engine) == {}
    engine.close()


def test_cli_plan_and_sync_show_unreadable_times(times_env: EngineEnv) -> None:
    config = times_env.write_config(accounts=False)
    code, out = _run("plan", "--config", str(config), "--entity", "contact",
                     "--since", "2026-11-20", "--until", "2026-11-21")
    assert "Traceback" not in out
    assert "unreadable modified time in column 'updated_at'" in out
    code, out = _run("sync", "--config", str(config), "--entity", "contact",
                     "--since", "2026-11-20", "--until", "2026-11-21")
    assert code == 1, out
    assert "Traceback" not in out and "'not a date'" in out


# -- §4 bad rows fail alone ------------------------------------------------------------------------------
def test_invalid_utf8_row_fails_alone_and_the_rest_sync(engine_env: EngineEnv) -> None:
    with sqlite3.connect(engine_env.crm_path) as con:
        ids = [str(r[0]) for r in con.execute("SELECT id FROM contacts ORDER BY id")]
        bad = ids[3]
        con.execute(f"UPDATE contacts SET last_name = {BAD_UTF8} WHERE id = ?", [bad])
    engine = engine_env.engine()
    engine.sync("account", ALL, "run-a")
    reports = engine.sync("contact", ALL, "run-1")
    assert reports[0].counts["extracted"] == len(ids)
    assert _outcomes(engine, "run-1") == {**{i: "created" for i in ids if i != bad}, bad: "failed"}
    (dead,) = engine.staging.failed_records("contact")
    assert dead["source_id"] == bad and dead["error_class"] == "validation"
    assert dead["error_message"] == "[source] column 'last_name' is not valid UTF-8 text (b'Jan\\xff\\xfe')"
    assert engine_env.sim.count("contacts") == len(ids) - 1

    engine.retry_failed("contact", "retry-1")
    assert _outcomes(engine, "retry-1") == {bad: "failed"} and _dead(engine)[bad]["attempts"] == 2
    with sqlite3.connect(engine_env.crm_path) as con:
        con.execute("UPDATE contacts SET last_name = 'Jan' WHERE id = ?", [bad])
    engine.retry_failed("contact", "retry-2")
    assert _outcomes(engine, "retry-2") == {bad: "created"} and _dead(engine) == {}
    engine.close()


def test_invalid_utf8_in_any_column_or_the_modified_column(engine_env: EngineEnv) -> None:
    with sqlite3.connect(engine_env.crm_path) as con:
        ids = [str(r[0]) for r in con.execute("SELECT id FROM contacts ORDER BY id")]
        con.execute(f"UPDATE contacts SET email = {BAD_UTF8} WHERE id = ?", [ids[0]])
        con.execute("UPDATE contacts SET updated_at = CAST(x'323032362dff' AS TEXT) WHERE id = ?", [ids[1]])
        con.execute("UPDATE contacts SET job_title = CAST(x'c3' AS TEXT) WHERE id = ?", [ids[-1]])
    engine = engine_env.engine()
    engine.sync("account", ALL, "run-a")
    engine.sync("contact", ALL, "run-1")
    outcomes = _outcomes(engine, "run-1")
    assert {i for i, o in outcomes.items() if o == "failed"} == {ids[0], ids[1], ids[-1]}
    assert len(outcomes) == len(ids)
    dead = _dead(engine)
    assert "column 'email' is not valid UTF-8" in dead[ids[0]]["error_message"]
    assert "column 'updated_at' is not valid UTF-8" in dead[ids[1]]["error_message"]
    assert "column 'job_title' is not valid UTF-8 text (b'\\xc3')" in dead[ids[-1]]["error_message"]
    # a window excludes nothing it should hold: the row whose time is unreadable is in it too
    day = Window(datetime(2000, 1, 1, tzinfo=UTC), datetime(2000, 1, 2, tzinfo=UTC))
    engine.sync("contact", day, "run-2000")
    assert _outcomes(engine, "run-2000") == {ids[1]: "failed"}
    engine.close()


def test_cli_sync_with_invalid_utf8_exits_1_without_traceback(engine_env: EngineEnv) -> None:
    with sqlite3.connect(engine_env.crm_path) as con:
        con.execute(f"UPDATE contacts SET last_name = {BAD_UTF8} WHERE id = (SELECT min(id) FROM contacts)")
    config = engine_env.write_config()
    code, out = _run("sync", "--config", str(config), "--entity", "account", "--entity", "contact")
    assert code == 1, out
    assert "Traceback" not in out and "not valid UTF-8" in out


def _text_id_crm(path: Path, rows: list[tuple[str, str]]) -> None:
    """A CRM whose ids are text, as many are (UUIDs, codes): the demo schema with TEXT ids."""
    path.unlink()
    with sqlite3.connect(path) as con:
        con.executescript(
            "CREATE TABLE accounts (id TEXT PRIMARY KEY, name TEXT, email TEXT, phone TEXT, updated_at TEXT);"
            "CREATE TABLE contacts (id TEXT PRIMARY KEY, first_name TEXT, last_name TEXT, email TEXT, phone TEXT,"
            " account_id TEXT, updated_at TEXT);"
            "CREATE TABLE activities (id INTEGER PRIMARY KEY, external_id TEXT NOT NULL UNIQUE, created_at TEXT,"
            " updated_at TEXT);"
        )
        con.executemany(
            "INSERT INTO contacts (id, first_name, last_name, updated_at) VALUES (?, 'Eva', ?, '2026-11-20T10:00:00Z')",
            rows,
        )


def test_ids_with_surrounding_spaces_round_trip_through_failure_and_retry(engine_env: EngineEnv) -> None:
    _text_id_crm(engine_env.crm_path, [(" padded ", "Padded"), ("plain", "Plain"), ("\ttab", "Tab")])
    engine = engine_env.engine(accounts=False)
    engine_env.sim.add_fault(Fault(route="POST /api/v6/contacts.json", kind="status", status=500, times=None))
    engine.sync("contact", ALL, "run-1")
    assert _outcomes(engine, "run-1") == {" padded ": "failed", "plain": "failed", "\ttab": "failed"}
    engine_env.sim.clear_faults()

    (retry,) = engine.retry_failed("contact", "retry-1")
    assert retry.counts.get("not_found", 0) == 0, "the ids must be looked up exactly as stored"
    assert _outcomes(engine, "retry-1") == {" padded ": "created", "plain": "created", "\ttab": "created"}
    assert _dead(engine) == {}
    names = sorted(r["name"] for r in engine_env.sim.all("contacts"))
    assert len(names) == 3
    engine.close()


def test_sql_adapter_returns_ids_exactly_as_stored(engine_env: EngineEnv) -> None:
    _text_id_crm(engine_env.crm_path, [(" padded ", "P"), ("x ", "X"), ("   ", "Blank")])
    adapter = SqlCrmAdapter.from_settings({"path": str(engine_env.crm_path)}, engine_env.tmp)
    records = {r["last_name"]: r for r in adapter.iter_contacts()}
    assert records["P"]["id"] == " padded " and records["X"]["id"] == "x "
    assert records["Blank"]["id"] is None and records["Blank"][RECORD_ERROR_KEY] == "missing id (column 'id' is empty)"
    fetched = adapter.get_contact(" padded ")
    assert fetched is not None and fetched["id"] == " padded "
    assert adapter.get_contact("padded") is None
    assert sorted(adapter.get_contacts([" padded ", "x ", "x"])) == [" padded ", "x "]
    adapter.close()


# -- §4 a custom adapter that yields records without an id --------------------------------------------
class DropsIds(SqlCrmAdapter):
    """A custom adapter with a bug: some records come without ``id`` (and without ``_error``)."""

    name = "acme"
    broken_last_names: frozenset[str] = frozenset({"Broken"})

    def iter_contacts(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[Record]:
        for record in super().iter_contacts(since, until):
            if record.get("last_name") in self.broken_last_names:
                record = {k: v for k, v in record.items() if k != "id"}
            yield record


def _engine_with(env: EngineEnv, adapter: SqlCrmAdapter) -> SyncEngine:
    config = env.config(accounts=False)
    return SyncEngine(
        config,
        crm=adapter,
        daktela=DaktelaAdapter.from_config(config.daktela),
        staging=StagingStore(config.staging.path),
    )


def _sync_with_contact_2_broken(env: EngineEnv, adapter_class: type[SqlCrmAdapter]) -> SyncEngine:
    """Contacts 1 and 2 (last name ``Broken``), synced as run ``run-1`` through ``adapter_class``."""
    _replace_contacts(env, [(1, "2026-11-20T08:00:00Z"), (2, "2026-11-20T09:00:00Z")])
    with sqlite3.connect(env.crm_path) as con:
        con.execute("UPDATE contacts SET last_name = 'Broken' WHERE id = 2")
    engine = _engine_with(env, adapter_class.from_settings({"path": str(env.crm_path)}, env.tmp))
    engine.sync("contact", ALL, "run-1")
    return engine


def test_records_without_an_id_get_a_stable_key_naming_the_adapter_method(engine_env: EngineEnv) -> None:
    engine = _sync_with_contact_2_broken(engine_env, DropsIds)
    first = _outcomes(engine, "run-1")
    (key,) = [k for k in first if k.startswith(INVALID_ID_PREFIX)]
    assert first == {"1": "created", key: "failed"}
    (dead,) = engine.staging.failed_records("contact")
    assert dead["source_id"] == key and dead["error_class"] == "validation"
    assert dead["error_message"].startswith(
        "[no_id] the acme adapter's iter_contacts() yielded a record without an 'id'"
    )

    # Records before it come and go: the key is the record's, not its position in the batch.
    with sqlite3.connect(engine_env.crm_path) as con:
        con.execute("INSERT INTO contacts (id, first_name, last_name, updated_at) "
                    "VALUES (0, 'Eva', 'Early', '2026-11-19T08:00:00Z')")
    engine.sync("contact", ALL, "run-2")
    assert _outcomes(engine, "run-2")[key] == "failed"
    (dead,) = engine.staging.failed_records("contact")
    assert dead["source_id"] == key and dead["attempts"] == 2

    # retry-failed cannot ask the CRM for a content key; it stays visible, nothing is sent.
    engine_env.sim.reset_log()
    (retry,) = engine.retry_failed("contact", "retry-1")
    assert retry.counts["not_found"] == 1 and engine_env.writes() == 0
    assert [d["source_id"] for d in engine.staging.failed_records("contact")] == [key]
    engine.close()


def test_identical_id_less_records_keep_distinct_keys_when_content_differs(engine_env: EngineEnv) -> None:
    _replace_contacts(engine_env, [(1, "2026-11-20T08:00:00Z"), (2, "2026-11-20T09:00:00Z")])
    with sqlite3.connect(engine_env.crm_path) as con:
        con.execute("UPDATE contacts SET last_name = 'Broken'")
    engine = _engine_with(engine_env, DropsIds.from_settings({"path": str(engine_env.crm_path)}, engine_env.tmp))
    engine.sync("contact", ALL, "run-1")
    keys = sorted(_outcomes(engine, "run-1"))
    assert len(keys) == 2 and all(k.startswith(INVALID_ID_PREFIX) for k in keys)
    engine.sync("contact", ALL, "run-2")
    assert sorted(_outcomes(engine, "run-2")) == keys
    assert len(engine.staging.failed_records("contact")) == 2
    engine.close()


def test_cli_retry_failed_finds_ids_with_surrounding_spaces(engine_env: EngineEnv) -> None:
    _text_id_crm(engine_env.crm_path, [(" padded ", "Padded"), ("plain", "Plain")])
    config = engine_env.write_config(accounts=False)
    engine_env.sim.add_fault(Fault(route="POST /api/v6/contacts.json", kind="status", status=500, times=None))
    code, out = _run("sync", "--config", str(config), "--entity", "contact", "--since", "2026-11-20",
                     "--until", "2026-11-21")
    assert code == 1, out
    staging = StagingStore(load_config(config).staging.path)
    assert sorted(d["source_id"] for d in staging.failed_records("contact")) == [" padded ", "plain"]
    engine_env.sim.clear_faults()

    code, out = _run("retry-failed", "--config", str(config), "--entity", "contact")
    assert code == 0, out
    assert "retrying 2 failed record(s)" in out and "0 record(s) still failed" in out
    assert "no longer exist" not in out
    assert staging.failed_records("contact") == []
    retried = [r for r in staging.ledger_rows(None, "contact") if r["outcome"] == "created"]
    assert sorted(r["source_id"] for r in retried) == [" padded ", "plain"]
    assert engine_env.sim.count("contacts") == 2


class YieldsATuple(SqlCrmAdapter):
    name = "acme"

    def iter_contacts(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[Record]:
        for record in super().iter_contacts(since, until):
            yield tuple(record.items()) if record.get("last_name") == "Broken" else record  # type: ignore[misc]


def test_a_non_dict_record_fails_alone_naming_the_adapter_method(engine_env: EngineEnv) -> None:
    engine = _sync_with_contact_2_broken(engine_env, YieldsATuple)
    outcomes = _outcomes(engine, "run-1")
    (key,) = [k for k in outcomes if k.startswith(INVALID_ID_PREFIX)]
    assert outcomes == {"1": "created", key: "failed"}
    (dead,) = engine.staging.failed_records("contact")
    assert dead["error_message"] == "[no_id] the acme adapter's iter_contacts() yielded a tuple, not a dict record"
    engine.close()


# -- second review: modified times no window will ever reach --------------------------------------------


def test_far_future_modified_times_fail_in_every_window_instead_of_waiting_for_year_9999(
    engine_env: EngineEnv,
) -> None:
    """A 'never' sentinel (9999-12-31, epoch 9999999999 = 2286) sat in a window no sync reaches:
    invisible to every windowed sync and to plan, exit 0. Now it fails visibly in every window,
    is retried by id, and syncs once the CRM stores a real time."""
    tomorrow_noon = (datetime.now(UTC) + timedelta(hours=12)).isoformat()
    _replace_contacts(
        engine_env,
        [
            (201, "2026-11-20T10:00:00Z"),
            (202, "9999-12-31T23:59:59Z"),  # SQLite's own short path computes this key
            (203, "2099-12-31 00:00:00"),  # naive, read in crm.timezone
            (204, 9999999999),  # epoch seconds of 2286-11-20
            (205, tomorrow_noon),  # clock skew of hours: within the tolerance, a normal row
        ],
    )
    engine = engine_env.engine(accounts=False)
    plan = engine.plan("contact", NOV20, "plan-20")
    assert plan.counts["would_create"] == 1 and plan.counts["invalid"] == 3
    engine.sync("contact", NOV20, "run-20")
    assert _outcomes(engine, "run-20") == {"201": "created", "202": "failed", "203": "failed", "204": "failed"}
    dead = _dead(engine)
    assert dead["202"]["error_message"] == (
        "[source] unreadable modified time in column 'updated_at': '9999-12-31T23:59:59Z' is 9999-12-31T23:59:59Z "
        "UTC, more than 1 day in the future (a 'never' sentinel?); no window would ever hold it"
    )
    assert "'2099-12-31 00:00:00' is 2099-12-31T00:00:00Z UTC" in dead["203"]["error_message"]  # crm.timezone UTC
    assert "'9999999999' is 2286-11-20T17:46:39Z UTC" in dead["204"]["error_message"]  # a TEXT column
    engine.sync("contact", NOV30, "run-30")
    run_30 = _outcomes(engine, "run-30")
    assert {k: v for k, v in run_30.items() if k != "205"} == {"202": "failed", "203": "failed", "204": "failed"}
    assert run_30.get("205", "created") == "created" and "205" not in _dead(engine)  # hours ahead: a normal row
    with sqlite3.connect(engine_env.crm_path) as con:
        con.execute("UPDATE contacts SET updated_at = '2026-11-20T11:00:00Z' WHERE id IN (202, 203, 204)")
    engine.retry_failed("contact", "retry-1")
    assert _outcomes(engine, "retry-1") == {"202": "created", "203": "created", "204": "created"}
    assert _dead(engine) == {}
    engine.close()
