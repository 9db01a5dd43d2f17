"""SqlCrmAdapter against real SQLite files: settings errors at start, windows, records, activities."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from crmsync_pipelines.crm.base import RECORD_ERROR_KEY
from crmsync_pipelines.crm.demo_data import DemoCrmSeeder
from crmsync_pipelines.crm.sql import SqlCrmAdapter
from crmsync_pipelines.errors import ConfigError, ConflictError, NotSupportedError, RecordValidationError
from crmsync_tests.fixtures.crm import DEMO_CONTACTS

T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)


def _adapter(path: Path, **settings: Any) -> SqlCrmAdapter:
    return SqlCrmAdapter.from_settings({"path": str(path), **settings}, path.parent)


# -- settings are checked at start -------------------------------------------------------------------
def test_missing_file_is_a_config_error_naming_the_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        SqlCrmAdapter.from_settings({"path": "nope.sqlite"}, tmp_path)
    assert caught.value.path == "crm.path"
    assert str(tmp_path / "nope.sqlite") in str(caught.value)
    assert not (tmp_path / "nope.sqlite").exists(), "validation must not create an empty database"


def test_sqlite_url_and_relative_paths_resolve_against_base_dir(empty_crm_path: Path) -> None:
    name = empty_crm_path.name
    for raw in (name, f"sqlite:///{name}", f"sqlite:///{empty_crm_path}"):
        adapter = SqlCrmAdapter.from_settings({"path": raw}, empty_crm_path.parent)
        assert adapter.path == empty_crm_path
        adapter.close()
    with pytest.raises(ConfigError, match="unsupported SQLite URL"):
        SqlCrmAdapter.from_settings({"path": "sqlite://host/x"}, empty_crm_path.parent)


def test_not_a_database_is_a_config_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.sqlite"
    junk.write_text("this is not sqlite" * 100)
    with pytest.raises(ConfigError, match="not a usable SQLite database"):
        _adapter(junk)


@pytest.mark.parametrize(
    ("settings", "path", "named"),
    [
        ({"contacts": {"table": "people"}}, "crm.contacts.table", "'people'"),
        ({"accounts": {"table": "accounts", "id_column": "uid"}}, "crm.accounts.id_column", "'uid'"),
        (
            {"accounts": {"table": "accounts", "modified_column": "changed"}},
            "crm.accounts.modified_column",
            "'changed'",
        ),
        ({"contacts": {"table": "contacts", "columns": ["email", "mobile"]}}, "crm.contacts.columns[1]", "'mobile'"),
        ({"contacts": {"table": "contacts", "search_columns": ["nick"]}}, "crm.contacts.search_columns[0]", "'nick'"),
        ({"activities": {"table": "calls"}}, "crm.activities.table", "'calls'"),
        ({"activities": {"external_id_column": "ext"}}, "crm.activities.external_id_column", "'ext'"),
        ({"activities": {"external_id_column": "subject"}}, "crm.activities.external_id_column", "UNIQUE"),
    ],
)
def test_wrong_table_or_column_names_fail_at_start(
    empty_crm_path: Path, settings: dict[str, Any], path: str, named: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        _adapter(empty_crm_path, **settings)
    assert caught.value.path == path
    assert named in str(caught.value)


@pytest.mark.parametrize(
    ("settings", "path"),
    [
        ({"fetch_size": 0}, "crm.fetch_size"),
        ({"contacts": {"id_column": "id"}}, "crm.contacts.table"),
        ({"unknown_key": 1}, "crm.unknown_key"),
        ({"accounts": {"table": "accounts", "modified_format": "epoch"}}, "crm.accounts.modified_format"),
    ],
)
def test_malformed_settings_name_the_key(empty_crm_path: Path, settings: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _adapter(empty_crm_path, **settings)
    assert caught.value.path == path


def test_missing_path_setting_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        SqlCrmAdapter.from_settings({}, tmp_path)
    assert caught.value.path == "crm.path"


# -- windows over real SQLite timestamps --------------------------------------------------------------
def test_window_compares_instants_across_offsets(empty_crm_adapter: SqlCrmAdapter, empty_crm_path: Path) -> None:
    conn = sqlite3.connect(empty_crm_path)
    with conn:
        conn.executemany(
            "INSERT INTO contacts (id, last_name, updated_at) VALUES (?, ?, ?)",
            [
                (1, "utc", "2026-05-04T08:00:00+00:00"),
                (2, "prague", "2026-05-04T09:30:00+01:00"),  # 08:30 UTC
                (3, "zulu", "2026-05-04T08:59:59.999Z"),
                (4, "millis", "2026-05-04T09:00:00.000+00:00"),
                (5, "space", "2026-05-04 07:59:59"),
            ],
        )
    conn.close()
    window = [r["id"] for r in empty_crm_adapter.iter_contacts(T0, T0 + timedelta(hours=1))]
    assert window == ["1", "2", "3"], "ordered by modified instant, [since, until)"
    later = [r["id"] for r in empty_crm_adapter.iter_contacts(T0 + timedelta(hours=1), None)]
    assert later == ["4"]
    earlier = [r["id"] for r in empty_crm_adapter.iter_contacts(None, T0)]
    assert earlier == ["5"]
    prague = timezone(timedelta(hours=2))
    same = [r["id"] for r in empty_crm_adapter.iter_contacts(T0.astimezone(prague), (T0 + timedelta(hours=1)))]
    assert same == ["1", "2", "3"]


def test_unixepoch_modified_column(tmp_path: Path) -> None:
    db = tmp_path / "epoch.sqlite"
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("CREATE TABLE firms (id TEXT PRIMARY KEY, title TEXT, changed INTEGER)")
        conn.execute("CREATE TABLE people (pid INTEGER PRIMARY KEY, name TEXT, firm TEXT, changed INTEGER)")
        conn.executemany("INSERT INTO firms VALUES (?, ?, ?)", [("a", "A", int(T0.timestamp())), ("b", "B", 0)])
        conn.execute("INSERT INTO people VALUES (7, 'Eva', 'a', ?)", (int(T0.timestamp()),))
    conn.close()
    adapter = SqlCrmAdapter.from_settings(
        {
            "path": "epoch.sqlite",
            "accounts": {"table": "firms", "modified_column": "changed", "modified_format": "unixepoch"},
            "contacts": {
                "table": "people",
                "id_column": "pid",
                "modified_column": "changed",
                "modified_format": "unixepoch",
                "reference_columns": ["firm"],
            },
            "activities": None,
        },
        tmp_path,
    )
    assert [r["id"] for r in adapter.iter_accounts(T0, None)] == ["a"]
    assert [r["id"] for r in adapter.iter_accounts(None, T0)] == ["b"]
    assert list(adapter.iter_contacts(T0, T0 + timedelta(seconds=1))) == [
        {"id": "7", "pid": "7", "name": "Eva", "firm": "a", "changed": int(T0.timestamp())}
    ]
    with pytest.raises(NotSupportedError, match="no activities table"):
        adapter.upsert_activity("external_id", {"external_id": "x"})
    assert adapter.ping() is True
    adapter.close()


def test_naive_and_non_datetime_bounds_are_rejected_at_call(empty_crm_adapter: SqlCrmAdapter) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        empty_crm_adapter.iter_contacts(datetime(2026, 1, 1), None)
    with pytest.raises(TypeError):
        empty_crm_adapter.iter_accounts("2026-01-01", None)  # type: ignore[arg-type]


def test_row_without_id_is_yielded_with_error_not_dropped(tmp_path: Path) -> None:
    db = tmp_path / "textids.sqlite"
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("CREATE TABLE accounts (code TEXT, name TEXT, updated_at TEXT)")
        conn.execute("CREATE TABLE contacts (id TEXT, name TEXT, updated_at TEXT)")
        conn.executemany(
            "INSERT INTO accounts VALUES (?, ?, ?)",
            [
                ("A1", "ok", "2026-05-04T08:00:00+00:00"),
                (None, "no id", "2026-05-04T08:01:00+00:00"),
                ("  ", "blank id", "2026-05-04T08:02:00+00:00"),
            ],
        )
    conn.close()
    adapter = _adapter(
        db, accounts={"table": "accounts", "id_column": "code"}, contacts={"table": "contacts"}, activities=None
    )
    records = list(adapter.iter_accounts())
    assert [r["id"] for r in records] == ["A1", None, None]
    assert RECORD_ERROR_KEY not in records[0]
    assert records[1][RECORD_ERROR_KEY] == "missing id (column 'code' is empty)"
    assert records[2]["name"] == "blank id" and RECORD_ERROR_KEY in records[2]
    adapter.close()


# -- records and lookups --------------------------------------------------------------------------------
def test_demo_records_have_the_documented_shape(demo_crm_adapter: SqlCrmAdapter) -> None:
    contacts = list(demo_crm_adapter.iter_contacts())
    assert len(contacts) == DEMO_CONTACTS
    assert set(contacts[0]) == {
        "id",
        "first_name",
        "last_name",
        "email",
        "phone",
        "account_id",
        "job_title",
        "tags",
        "updated_at",
    }
    assert all(isinstance(c["id"], str) for c in contacts)
    assert all(c["account_id"] is None or isinstance(c["account_id"], str) for c in contacts)
    json.dumps(contacts)
    account = demo_crm_adapter.get_account("1")
    assert account is not None and set(account) == {
        "id",
        "name",
        "reg_number",
        "email",
        "phone",
        "city",
        "website",
        "updated_at",
    }
    modified = [c["updated_at"] for c in contacts]
    assert modified == sorted(modified), "iteration is ordered by modified time"


def test_columns_setting_limits_record_keys(demo_crm_path: Path) -> None:
    adapter = _adapter(demo_crm_path, contacts={"table": "contacts", "columns": ["email"]})
    record = adapter.get_contact("1")
    assert record is not None and set(record) == {"id", "email", "updated_at"}
    adapter.close()


def test_lookups(demo_crm_adapter: SqlCrmAdapter) -> None:
    first = demo_crm_adapter.get_contact("3")
    assert first is not None and first["id"] == "3"
    assert demo_crm_adapter.get_contact("100000") is None
    assert demo_crm_adapter.get_contact("") is None
    assert demo_crm_adapter.get_contact("not-a-number") is None
    found = demo_crm_adapter.find_contact_by("last_name", first["last_name"])
    assert found is not None and found["last_name"] == first["last_name"]
    assert demo_crm_adapter.find_contact_by("email", "nobody@example.invalid") is None
    with pytest.raises(ValueError, match="no field 'nickname'"):
        demo_crm_adapter.find_contact_by("nickname", "x")
    for empty in (None, "", "  "):
        with pytest.raises(ValueError, match="empty value"):
            demo_crm_adapter.find_account_by("email", empty)
    with pytest.raises(ValueError):
        demo_crm_adapter.find_account_by("email", ["a@b.cz"])
    batch = demo_crm_adapter.get_contacts(["1", "2", "999999", "2"])
    assert sorted(batch) == ["1", "2"] and batch["1"] == demo_crm_adapter.get_contact("1")


def test_search_ignores_case_and_diacritics(empty_crm_adapter: SqlCrmAdapter, crm_seeder: DemoCrmSeeder) -> None:
    wanted = crm_seeder.add_contact({"first_name": "Jiří", "last_name": "Dvořák"}, T0)
    crm_seeder.add_contact({"first_name": "Eva", "last_name": "Nová"}, T0)
    assert [r["id"] for r in empty_crm_adapter.search_contacts("dvorak")] == [wanted]
    assert [r["id"] for r in empty_crm_adapter.search_contacts("JIŘÍ")] == [wanted]
    assert list(empty_crm_adapter.search_contacts("100%_")) == []
    with pytest.raises(ValueError, match="must not be empty"):
        empty_crm_adapter.search_accounts("  ")


def test_iteration_streams_one_consistent_snapshot(empty_crm_path: Path, crm_seeder: DemoCrmSeeder) -> None:
    for i in range(25):
        crm_seeder.add_account({"name": f"Firma {i}"}, T0 + timedelta(minutes=i))
    adapter = _adapter(empty_crm_path, fetch_size=4)
    iterator = adapter.iter_accounts()
    assert [next(iterator)["name"] for _ in range(3)] == ["Firma 0", "Firma 1", "Firma 2"]
    # A writer in another connection is not blocked by the open read cursor (WAL).
    crm_seeder.add_account({"name": "Late"}, T0 - timedelta(days=1))
    rest = list(iterator)
    assert len(rest) == 22 and "Late" not in [r["name"] for r in rest], "one consistent snapshot"
    assert len(list(adapter.iter_accounts())) == 26
    adapter.close()


def test_ping_false_when_the_file_is_gone(empty_crm_path: Path) -> None:
    adapter = _adapter(empty_crm_path)
    assert adapter.ping() is True
    for suffix in ("", "-wal", "-shm"):
        Path(f"{empty_crm_path}{suffix}").unlink(missing_ok=True)
    assert adapter.ping() is False
    assert not empty_crm_path.exists(), "ping must not recreate the database"
    adapter.close()


# -- activities -------------------------------------------------------------------------------------------
def _count_activities(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT count(*) FROM activities").fetchone()[0])
    finally:
        conn.close()


def test_upsert_is_idempotent_and_keeps_created_at(empty_crm_adapter: SqlCrmAdapter, empty_crm_path: Path) -> None:
    first = empty_crm_adapter.upsert_activity(
        "external_id",
        {"external_id": "call_1", "type": "call", "duration_s": 30, "created_at": "2026-05-04T08:00:00+00:00"},
    )
    second = empty_crm_adapter.upsert_activity(
        "external_id", {"external_id": "call_1", "duration_s": 45, "status": "closed"}
    )
    assert first["id"] == second["id"]
    assert second["duration_s"] == 45 and second["status"] == "closed" and second["type"] == "call"
    assert second["created_at"] == "2026-05-04T08:00:00+00:00"
    assert _count_activities(empty_crm_path) == 1


def test_upsert_by_a_non_unique_field(empty_crm_adapter: SqlCrmAdapter, empty_crm_path: Path) -> None:
    created = empty_crm_adapter.upsert_activity("subject", {"external_id": "e1", "subject": "Hovor 1"})
    updated = empty_crm_adapter.upsert_activity("subject", {"external_id": "e1", "subject": "Hovor 1", "status": "x"})
    assert created["id"] == updated["id"] and updated["status"] == "x"
    empty_crm_adapter.create_activity({"external_id": "e2", "subject": "Hovor 1"})
    with pytest.raises(ConflictError, match="more than one activity"):
        empty_crm_adapter.upsert_activity("subject", {"external_id": "e3", "subject": "Hovor 1"})
    assert _count_activities(empty_crm_path) == 2


def test_activity_write_errors_are_typed_and_lose_nothing(
    empty_crm_adapter: SqlCrmAdapter, empty_crm_path: Path
) -> None:
    empty_crm_adapter.create_activity({"external_id": "dup"})
    with pytest.raises(ConflictError, match="UNIQUE"):
        empty_crm_adapter.create_activity({"external_id": "dup"})
    with pytest.raises(RecordValidationError, match="NOT NULL"):
        empty_crm_adapter.create_activity({"subject": "no external id"})
    with pytest.raises(RecordValidationError, match="unknown activity field"):
        empty_crm_adapter.upsert_activity("external_id", {"external_id": "x", "colour": "red"})
    with pytest.raises(RecordValidationError, match="naive datetime"):
        empty_crm_adapter.upsert_activity("external_id", {"external_id": "x", "started_at": datetime(2026, 1, 1)})
    with pytest.raises(RecordValidationError, match="lookup field"):
        empty_crm_adapter.upsert_activity("external_id", {"external_id": " "})
    with pytest.raises(ConflictError, match="does not exist"):
        empty_crm_adapter.update_activity("4242", {"status": "x"})
    assert _count_activities(empty_crm_path) == 1


def test_activity_values_are_stored_in_sqlite_types(empty_crm_adapter: SqlCrmAdapter) -> None:
    stored = empty_crm_adapter.upsert_activity(
        "external_id",
        {
            "external_id": "x",
            "started_at": datetime(2026, 5, 4, 10, 0, tzinfo=timezone(timedelta(hours=2))),
            "description": {"lines": ["a", "b"]},
            "duration_s": True,
        },
    )
    assert stored["started_at"] == "2026-05-04T08:00:00+00:00"
    assert json.loads(stored["description"]) == {"lines": ["a", "b"]}
    assert stored["duration_s"] == 1


def test_batch_upsert_isolates_bad_records(empty_crm_adapter: SqlCrmAdapter, empty_crm_path: Path) -> None:
    results = empty_crm_adapter.upsert_activities(
        "external_id",
        [
            {"external_id": "a", "subject": "1"},
            {"external_id": "b", "bogus": 1},
            {"external_id": "a", "subject": "2"},
            {"subject": "no key"},
            {"external_id": "c"},
        ],
    )
    assert [type(r).__name__ for r in results] == [
        "dict",
        "RecordValidationError",
        "dict",
        "RecordValidationError",
        "dict",
    ]
    assert isinstance(results[0], dict) and isinstance(results[2], dict) and results[0]["id"] == results[2]["id"]
    assert _count_activities(empty_crm_path) == 2
    found = empty_crm_adapter.find_activities_by_external_ids("external_id", ["a", "b", "c", "zzz"])
    assert sorted(found) == ["a", "c"] and found["a"]["subject"] == "2"


def test_batch_find_chunks_large_id_lists(empty_crm_path: Path) -> None:
    adapter = _adapter(empty_crm_path, lookup_chunk_size=7)
    adapter.upsert_activities("external_id", [{"external_id": f"act_{i}"} for i in range(30)])
    wanted = [f"act_{i}" for i in range(0, 30, 2)] + ["missing"]
    found = adapter.find_activities_by_external_ids("external_id", wanted)
    assert sorted(found) == sorted(wanted[:-1])
    assert len(adapter.get_accounts([str(i) for i in range(50)])) == 0
    adapter.close()



def _calls_crm(tmp_path: Path, external_id_type: str = "TEXT") -> SqlCrmAdapter:
    """A CRM whose activities table ``calls`` refuses a negative duration (a CHECK constraint):
    a refusal only SQLite itself makes, in the middle of a set-wise statement."""
    path = tmp_path / "calls.sqlite"
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT, updated_at TEXT)")
        con.execute("CREATE TABLE contacts (id INTEGER PRIMARY KEY, name TEXT, account_id TEXT, updated_at TEXT)")
        con.execute(
            f"CREATE TABLE calls (id INTEGER PRIMARY KEY, external_id {external_id_type} NOT NULL UNIQUE, "
            "subject TEXT, status TEXT, duration_s INTEGER CHECK (duration_s >= 0), created_at TEXT, updated_at TEXT)"
        )
    return SqlCrmAdapter.from_settings({"path": str(path), "activities": {"table": "calls"}}, tmp_path)


def _calls(adapter: SqlCrmAdapter) -> dict[str, tuple[Any, ...]]:
    with sqlite3.connect(adapter.path) as con:
        rows = con.execute("SELECT external_id, id, subject, status, duration_s, created_at FROM calls").fetchall()
    return {str(row[0]): tuple(row[1:]) for row in rows}


def test_batch_upsert_a_refusal_inside_the_set_wise_statement_fails_that_record_alone(tmp_path: Path) -> None:
    """Records with the same fields go in one executemany; SQLite refusing one of them (CHECK)
    rolls the statement back and the records are written again one savepoint each."""
    adapter = _calls_crm(tmp_path)
    records = [{"external_id": f"c{i}", "subject": f"Hovor {i}", "duration_s": -1 if i == 2 else 10 * i}
               for i in range(5)]
    results = adapter.upsert_activities("external_id", records)
    assert [type(r).__name__ for r in results] == ["dict", "dict", "RecordValidationError", "dict", "dict"]
    assert "CHECK constraint failed" in str(results[2])
    stored = _calls(adapter)
    assert sorted(stored) == ["c0", "c1", "c3", "c4"]
    assert [stored[f"c{i}"][3] for i in (0, 1, 3, 4)] == [0, 10, 30, 40]
    for i in (0, 1, 3, 4):
        result = results[i]
        assert isinstance(result, dict)
        assert result["id"] == str(stored[f"c{i}"][0]) and result["external_id"] == f"c{i}"
        assert result["subject"] == f"Hovor {i}" and result["duration_s"] == 10 * i
    adapter.close()


def test_batch_upsert_mixed_fields_updates_and_creation_times(tmp_path: Path) -> None:
    """Each set of fields is its own statement: an update keeps the stored creation time
    unless the record brings one, values not sent stay, every record gets its own row back."""
    adapter = _calls_crm(tmp_path)
    [first] = adapter.upsert_activities("external_id", [{"external_id": "a", "subject": "Hovor", "status": "OPEN",
                                                         "created_at": "2026-01-01T00:00:00+00:00"}])
    assert isinstance(first, dict)
    results = adapter.upsert_activities("external_id", [
        {"external_id": "a", "status": "CLOSE"},                                   # late change: closed
        {"external_id": "b", "subject": "New", "created_at": "2026-02-02T00:00:00+00:00"},
        {"external_id": "c", "status": "OPEN"},
        {"external_id": "b", "subject": "Newer", "created_at": "2026-03-03T00:00:00+00:00"},  # same key again
        {"external_id": "d", "duration_s": 2**70},                                 # too big for SQLite: fails alone
    ])
    assert [type(r).__name__ for r in results[:4]] == ["dict"] * 4
    assert isinstance(results[4], RecordValidationError)
    stored = _calls(adapter)
    assert sorted(stored) == ["a", "b", "c"]
    assert stored["a"] == (int(first["id"]), "Hovor", "CLOSE", None, "2026-01-01T00:00:00+00:00")
    assert stored["b"][1:] == ("Newer", None, None, "2026-03-03T00:00:00+00:00")
    assert stored["c"][2] == "OPEN" and stored["c"][4] is not None  # creation time stamped
    a, b, c, b_again = results[:4]
    assert isinstance(a, dict) and a["id"] == first["id"] and a["status"] == "CLOSE" and a["subject"] == "Hovor"
    assert isinstance(b, dict) and isinstance(b_again, dict) and b["id"] == b_again["id"] == str(stored["b"][0])
    assert isinstance(c, dict) and c["id"] == str(stored["c"][0])
    again = adapter.upsert_activities("external_id", [{"external_id": "a", "status": "CLOSE"}])
    assert isinstance(again[0], dict) and again[0]["id"] == first["id"] and len(_calls(adapter)) == 3
    adapter.close()


def test_batch_upsert_reads_back_a_key_the_column_affinity_converted(tmp_path: Path) -> None:
    """An INTEGER external-id column stores '0042' as 42: the row is still found and returned."""
    adapter = _calls_crm(tmp_path, external_id_type="INTEGER")
    results = adapter.upsert_activities("external_id", [{"external_id": "0042", "subject": "x"},
                                                        {"external_id": "7", "subject": "y"}])
    stored = _calls(adapter)
    assert sorted(stored) == ["42", "7"]
    assert [r["id"] for r in results if isinstance(r, dict)] == [str(stored["42"][0]), str(stored["7"][0])]
    adapter.close()


# -- rows the adapter cannot fully read (issue 9 §4) ---------------------------------------------------------
def test_invalid_utf8_row_is_yielded_failed_and_the_stream_goes_on(
    empty_crm_path: Path, crm_seeder: DemoCrmSeeder
) -> None:
    ids = [crm_seeder.add_contact({"first_name": "Eva", "last_name": f"N{i}"}, T0 + timedelta(minutes=i))
           for i in range(25)]
    with sqlite3.connect(empty_crm_path) as conn:
        conn.execute("UPDATE contacts SET last_name = CAST(x'4a616efffe' AS TEXT) WHERE id = ?", [ids[10]])
        conn.execute("UPDATE contacts SET first_name = CAST(x'ff' AS TEXT) WHERE id = ?", [ids[11]])
    adapter = _adapter(empty_crm_path, fetch_size=4)
    records = list(adapter.iter_contacts())
    assert [r["id"] for r in records] == ids, "every row, in order, exactly once"
    errors = {r["id"]: r.get(RECORD_ERROR_KEY) for r in records if r.get(RECORD_ERROR_KEY)}
    assert errors == {
        ids[10]: "column 'last_name' is not valid UTF-8 text (b'Jan\\xff\\xfe')",
        ids[11]: "column 'first_name' is not valid UTF-8 text (b'\\xff')",
    }
    json.dumps(records)
    windowed = [r["id"] for r in adapter.iter_contacts(T0 + timedelta(minutes=9), T0 + timedelta(minutes=12))]
    assert windowed == ids[9:12]
    single = adapter.get_contact(ids[10])
    assert single is not None and single[RECORD_ERROR_KEY].startswith("column 'last_name'")
    batch = adapter.get_contacts(ids[9:13])
    assert sorted(batch) == sorted(ids[9:13]) and RECORD_ERROR_KEY not in batch[ids[9]]
    assert [r["id"] for r in adapter.search_contacts("n1")] == [ids[1], *ids[11:20]]  # not the bad N10
    assert adapter.get_contact(ids[12]) == records[12], "the shared connection reads strictly again"
    adapter.close()


def test_explicit_modified_formats(tmp_path: Path) -> None:
    db = tmp_path / "formats.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE accounts (id TEXT PRIMARY KEY, name TEXT, changed_ms INTEGER)")
        conn.execute("CREATE TABLE contacts (id TEXT PRIMARY KEY, name TEXT, jd REAL)")
        conn.executemany("INSERT INTO accounts VALUES (?, ?, ?)",
                         [("a", "A", int(T0.timestamp() * 1000)), ("b", "B", "soon")])
        conn.execute("INSERT INTO contacts VALUES ('c', 'C', julianday(?))", [T0.isoformat()])
    adapter = SqlCrmAdapter.from_settings(
        {
            "path": "formats.sqlite",
            "accounts": {"table": "accounts", "modified_column": "changed_ms", "modified_format": "unixepoch_ms"},
            "contacts": {"table": "contacts", "modified_column": "jd", "modified_format": "julianday"},
            "activities": None,
        },
        tmp_path,
    )
    accounts = {r["id"]: r for r in adapter.iter_accounts(T0, T0 + timedelta(milliseconds=1))}
    assert sorted(accounts) == ["a", "b"] and RECORD_ERROR_KEY not in accounts["a"]
    assert accounts["b"][RECORD_ERROR_KEY] == (
        "unreadable modified time in column 'changed_ms': 'soon' is not a number, but modified_format is 'unixepoch_ms'"
    )
    assert [r["id"] for r in adapter.iter_contacts(T0 - timedelta(seconds=1), T0 + timedelta(seconds=1))] == ["c"]
    adapter.close()


# -- second review: ids of every storage class round-trip through get_* -------------------------


def test_ids_of_every_storage_class_are_found_by_the_id_the_extract_gave(tmp_path: Path) -> None:
    """In a column without type affinity an id is stored as INTEGER, REAL, TEXT or BLOB as given.

    The extract names them ``str(n)``, ``str(x)`` and the BLOB's hex; ``get_contact('1.0')``
    compared TEXT with REAL and found nothing, so ``retry-failed`` reported such a record as
    deleted forever. Each id must fetch its own row, never a numerically equal neighbour.
    """
    path = tmp_path / "typeless.sqlite"
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT, updated_at TEXT)")
        con.execute("CREATE TABLE contacts (id, name TEXT, account_id, updated_at TEXT)")
        rows: list[tuple[Any, str]] = [
            (7, "integer"), (1.5, "real"), (2.0, "real whole"), (b"\x01\xab", "blob"), ("08", "text zero"),
            (" padded ", "padded"), (10**20 * 1.0, "real big"),
        ]  # fmt: skip
        con.executemany(
            "INSERT INTO contacts VALUES (?, ?, NULL, '2026-11-20T10:00:00Z')", [(rid, name) for rid, name in rows]
        )
    adapter = SqlCrmAdapter.from_settings({"path": str(path), "activities": None}, tmp_path)
    extracted = {record["id"]: record["name"] for record in adapter.iter_contacts()}
    assert extracted == {
        "7": "integer", "1.5": "real", "2.0": "real whole", "01ab": "blob", "08": "text zero",
        " padded ": "padded", "1e+20": "real big",
    }  # fmt: skip
    for record_id, name in extracted.items():
        found = adapter.get_contact(record_id)
        assert found is not None and found["name"] == name, record_id
    assert {k: v["name"] for k, v in adapter.get_contacts([*extracted, "2", "7.0", "8"]).items()} == extracted
    assert adapter.get_contact("2") is None  # 2 = 2.0 in SQLite, but the record's id is '2.0'
    assert adapter.get_contact("7.0") is None
    adapter.close()
