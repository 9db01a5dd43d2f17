"""Reading CRM modified times (issue 9 §3): every common layout is read right, the rest refused.

The reader is pure; the SQL adapter tests at the bottom run it inside real SQLite files, where
whole-second UTC text takes SQLite's own short path: both paths must give the same key.
"""

from __future__ import annotations

import random
import re
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from crmsync_pipelines.crm.modified_time import ModifiedTimeReader, UnreadableTime, utc_key_of
from crmsync_pipelines.crm.sql import SqlCrmAdapter, future_cutoff
from crmsync_pipelines.errors import ConfigError

UTC_READER = ModifiedTimeReader("auto", "UTC")
PRAGUE_READER = ModifiedTimeReader("auto", "Europe/Prague")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc, arg-type]


READABLE: list[tuple[Any, datetime]] = [
    # ISO 8601 / RFC 3339 and the PHP / Ruby / PostgreSQL / Rails variations of it
    ("2026-11-20T10:00:00+0100", utc(2026, 11, 20, 9)),  # PHP DATE_ISO8601 (the example)
    ("2026-11-20T10:00:00+01:00", utc(2026, 11, 20, 9)),  # DATE_ATOM
    ("2026-11-20T10:00:00+01", utc(2026, 11, 20, 9)),
    ("2026-11-20T10:00:00-0530", utc(2026, 11, 20, 15, 30)),
    ("2026-11-20T10:00:00Z", utc(2026, 11, 20, 10)),
    ("2026-11-20t10:00:00z", utc(2026, 11, 20, 10)),
    ("2026-11-20 10:00:00", utc(2026, 11, 20, 10)),  # naive: configured zone (UTC here)
    ("2026-11-20 10:00", utc(2026, 11, 20, 10)),
    ("2026-11-20", utc(2026, 11, 20)),
    ("2026-11-20 10:00:00.5+01:00", utc(2026, 11, 20, 9, 0, 0, 500000)),
    ("2026-11-20T10:00:00.123456789Z", utc(2026, 11, 20, 10, 0, 0, 123456)),
    ("2026-11-20T10:00:00,25Z", utc(2026, 11, 20, 10, 0, 0, 250000)),
    ("2026-11-20 10:00:00 +0100", utc(2026, 11, 20, 9)),  # Ruby Time#to_s
    ("2026-11-20 10:00:00 +01:00", utc(2026, 11, 20, 9)),
    ("2026-11-20 10:00:00 UTC", utc(2026, 11, 20, 10)),  # Rails
    ("2026-11-20 10:00:00 GMT", utc(2026, 11, 20, 10)),
    ("2026-11-20 10:00:00+00", utc(2026, 11, 20, 10)),  # PostgreSQL timestamptz text
    ("  2026-11-20T10:00:00Z \n", utc(2026, 11, 20, 10)),
    ("20261120T100000Z", utc(2026, 11, 20, 10)),  # ISO 8601 basic
    ("Fri, 20 Nov 2026 10:00:00 +0100", utc(2026, 11, 20, 9)),  # RFC 2822
    ("2026-11-20T10:00+01:00[Europe/Prague]", utc(2026, 11, 20, 9)),  # Java ZonedDateTime, RFC 9557
    ("2026-07-01T10:00[Europe/Prague]", utc(2026, 7, 1, 8)),  # the bracketed zone serves naive text
    ("2026-11-20T10:00:00-05:00[Europe/Prague]", utc(2026, 11, 20, 15)),  # the offset wins
    # European day-first, naive
    ("30.11.2026 09:15", utc(2026, 11, 30, 9, 15)),  # the example
    ("30.11.2026 09:15:30", utc(2026, 11, 30, 9, 15, 30)),
    ("30.11.2026 09:15:30.25", utc(2026, 11, 30, 9, 15, 30, 250000)),
    ("2026/11/30 09:15:00,123456789", utc(2026, 11, 30, 9, 15, 0, 123456)),
    ("1.2.2026 8:05", utc(2026, 2, 1, 8, 5)),
    ("30. 11. 2026 9:15", utc(2026, 11, 30, 9, 15)),  # Czech typography
    ("30.11.2026", utc(2026, 11, 30)),
    ("2026/11/30 09:15:00", utc(2026, 11, 30, 9, 15)),
    # numbers: epoch seconds, milliseconds, microseconds, Julian days, compact dates
    (1795168800, utc(2026, 11, 20, 10)),
    ("1795168800", utc(2026, 11, 20, 10)),
    (1795168800.25, utc(2026, 11, 20, 10, 0, 0, 250000)),
    ("1795168800.5", utc(2026, 11, 20, 10, 0, 0, 500000)),
    (1795168800123, utc(2026, 11, 20, 10, 0, 0, 123000)),
    ("1795168800123", utc(2026, 11, 20, 10, 0, 0, 123000)),
    (1795168800123456, utc(2026, 11, 20, 10, 0, 0, 123456)),
    (2461365.0, utc(2026, 11, 20, 12)),  # SQLite julianday('2026-11-20 12:00')
    ("20261120", utc(2026, 11, 20)),
    (20261120100000, utc(2026, 11, 20, 10)),  # MySQL numeric datetime
]


@pytest.mark.parametrize(("raw", "expected"), READABLE, ids=[repr(r) for r, _ in READABLE])
def test_readable_layouts(raw: Any, expected: datetime) -> None:
    assert UTC_READER.read(raw) == expected
    assert UTC_READER.utc_key(raw) == utc_key_of(expected)


UNREADABLE: list[tuple[Any, str]] = [
    ("not a date", "'not a date' is not a time"),
    ("", "is empty text"),
    ("   ", "is empty text"),
    (None, "is empty (NULL)"),
    ("0000-00-00 00:00:00", "'0000-00-00 00:00:00' is not a time"),
    ("2026-02-30T10:00:00Z", "day is out of range"),  # never rolled over to March
    ("31.04.2026 10:00", "day is out of range"),
    ("2026-11-20T24:00:00Z", "'2026-11-20T24:00:00Z' is not a time"),
    ("2026-11-20T10:61:00Z", "is not a time"),
    ("01/02/2026", "ambiguous (d/m/Y or m/d/Y)"),
    ("11/30/2026 10:00", "ambiguous"),
    ("09:15", "'09:15' is not a time"),
    ("now", "'now' is not a time"),  # SQLite would read it as the current time
    ("30.11.26 09:15", "is not a time"),  # two-digit year: refused, not guessed
    (0, "0 is not a plausible time"),
    (-1, "-1 is not a plausible time"),
    (42, "42 is not a plausible time"),
    ("0", "'0' is not a plausible time"),
    (10**18, "is not a plausible time"),
    (float("nan"), "nan is not a finite number"),
    (float("inf"), "is not a finite number"),
    (True, "True is a bool, not a time"),
    (b"2026-11-20", "is a bytes, not a time"),
    ("9999-12-31T23:59:59-05:00", "out of the representable range"),
    ("20261332", "is not a time"),  # compact date with month 13
    ("2026-11-20T10:00[Mars/Olympus]", "names an unknown time zone 'Mars/Olympus'"),
    ("2026-11-20T10:00[../../etc/passwd]", "is not a time"),
    (46346.5, "46346.5 is not a plausible time"),  # a spreadsheet serial date: refused, not guessed
]


@pytest.mark.parametrize(("raw", "reason"), UNREADABLE, ids=[repr(r) for r, _ in UNREADABLE])
def test_unreadable_values_are_refused_with_the_raw_value(raw: Any, reason: str) -> None:
    with pytest.raises(UnreadableTime, match=_escaped(reason)):
        UTC_READER.read(raw)
    assert UTC_READER.utc_key(raw) is None


def _escaped(text: str) -> str:
    return re.escape(text)


def test_naive_values_take_the_configured_zone_including_dst() -> None:
    assert PRAGUE_READER.read("30.11.2026 09:15") == utc(2026, 11, 30, 8, 15)  # CET
    assert PRAGUE_READER.read("2026-07-01 09:15:00") == utc(2026, 7, 1, 7, 15)  # CEST
    assert PRAGUE_READER.read("2026-07-01T09:15:00Z") == utc(2026, 7, 1, 9, 15), "an offset wins over the zone"
    assert PRAGUE_READER.read("20261130") == utc(2026, 11, 29, 23)
    # the autumn hour that happens twice: the first occurrence (fold=0), never dropped
    # (compared in UTC: Python never calls an ambiguous wall-clock time equal to another zone's)
    assert PRAGUE_READER.read("2026-10-25 02:30:00").astimezone(UTC) == utc(2026, 10, 25, 0, 30)
    assert PRAGUE_READER.utc_key("2026-10-25 02:30:00") == "2026-10-25T00:30:00.000000"
    # the spring hour that never happens still names an instant (the offset before the change)
    assert PRAGUE_READER.utc_key("2026-03-29 02:30:00") == "2026-03-29T01:30:00.000000"
    # epoch numbers are instants: no zone applies
    assert PRAGUE_READER.read(1795168800) == utc(2026, 11, 20, 10)


def test_explicit_layouts_turn_guessing_off() -> None:
    seconds = ModifiedTimeReader("unixepoch", "UTC")
    assert seconds.read(0) == utc(1970, 1, 1), "a literal reading when the layout is named"
    assert seconds.read("1795168800") == utc(2026, 11, 20, 10)
    assert seconds.read(-86400) == utc(1969, 12, 31)
    with pytest.raises(UnreadableTime, match="is not a number, but modified_format is 'unixepoch'"):
        seconds.read("2026-11-20T10:00:00Z")
    millis = ModifiedTimeReader("unixepoch_ms", "UTC")
    assert millis.read(1795168800123) == utc(2026, 11, 20, 10, 0, 0, 123000)
    assert millis.read("1795168800") == utc(1970, 1, 21, 18, 39, 28, 800000)
    julian = ModifiedTimeReader("julianday", "UTC")
    assert julian.read(2440587.5) == utc(1970, 1, 1)
    iso = ModifiedTimeReader("iso", "UTC")
    assert iso.read("2026-11-20T10:00:00+0100") == utc(2026, 11, 20, 9)
    with pytest.raises(UnreadableTime, match="is a number, but modified_format is 'iso'"):
        iso.read(1795168800)
    with pytest.raises(UnreadableTime, match="is a number, but modified_format is 'iso'"):
        iso.read("1795168800")


def test_keys_sort_like_instants() -> None:
    rng = random.Random(9)
    zones = [timezone(timedelta(minutes=m)) for m in (-600, -300, 0, 60, 120, 330, 840)]
    moments = [
        utc(2026, 1, 1) + timedelta(seconds=rng.randint(0, 10**8), microseconds=rng.randint(0, 999999))
        for _ in range(300)
    ]
    texts = [m.astimezone(rng.choice(zones)).isoformat() for m in moments]
    keys = [UTC_READER.utc_key(t) for t in texts]
    assert all(k is not None and len(k) == 26 for k in keys)
    assert sorted(keys, key=str) == [utc_key_of(m) for m in sorted(moments)]
    assert utc_key_of(datetime(1, 1, 1, tzinfo=UTC)) == "0001-01-01T00:00:00.000000"
    with pytest.raises(ValueError, match="naive"):
        utc_key_of(datetime(2026, 1, 1))


# -- inside SQLite ----------------------------------------------------------------------------------------
def _crm(path: Path, values: list[Any], column_type: str = "TEXT") -> Path:
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT, updated_at TEXT)")
        con.execute(
            f"CREATE TABLE contacts (id INTEGER PRIMARY KEY, name TEXT, account_id TEXT, updated_at {column_type})"
        )
        con.executemany("INSERT INTO contacts (name, updated_at) VALUES (?, ?)", [(repr(v), v) for v in values])
    return path


def _adapter(path: Path, **settings: Any) -> SqlCrmAdapter:
    return SqlCrmAdapter.from_settings({"path": str(path), "activities": None, **settings}, path.parent)


def test_sqlite_short_path_and_python_reader_agree(tmp_path: Path) -> None:
    """Whole-second UTC text is keyed by SQLite itself; near misses must fall through to Python."""
    rng = random.Random(3)
    values: list[Any] = []
    for _ in range(400):
        moment = utc(2000, 1, 1) + timedelta(seconds=rng.randint(0, 10**9))
        values.append(moment.isoformat().replace("+00:00", rng.choice(["+00:00", "Z"])))
    values += [
        "2026-02-29T10:00:00Z", "2024-02-29T10:00:00+00:00", "2026-02-30T10:00:00+00:00", "2026-11-20T24:00:00Z",
        "0000-01-01T00:00:00Z", "2026-11-20T10:00:60Z", "2026-13-01T00:00:00Z", "2026-11-20T10:00:00+00:00 ",
        "2026-11-20T10:00:00+00:01", "2026-11-20 10:00:00Z", "2026-11-20T10:00:00.000Z", "2026-11-20T10:00:00z",
    ]
    adapter = _adapter(_crm(tmp_path / "crm.sqlite", values))
    got = {r["name"]: (r["updated_at"], r.get("_error")) for r in adapter.iter_contacts()}
    future = future_cutoff()
    for value in values:
        stored, error = got[repr(value)]
        assert stored == value
        expected = UTC_READER.utc_key(value)
        assert (error is None) == (expected is not None and expected < future), value
    # the SQL function's key (what windows compare) equals the reader's, value by value
    conn = adapter._connect()
    expression = adapter._modified["contacts"].expression
    for value, key in conn.execute(f"SELECT updated_at, {expression} FROM contacts"):
        assert key == UTC_READER.utc_key(value), value
    conn.close()
    adapter.close()


def test_windows_select_by_instant_in_every_layout(tmp_path: Path) -> None:
    values = [raw for raw, _ in READABLE] + ["not a date", "", 0, None]
    adapter = _adapter(_crm(tmp_path / "crm.sqlite", values, column_type=""))  # no affinity: numbers stay numbers
    unreadable = {repr(v) for v in ("not a date", "", 0, None)}
    for raw, instant in READABLE:
        window = {r["name"] for r in adapter.iter_contacts(instant, instant + timedelta(microseconds=1))}
        same_instant = {repr(r) for r, i in READABLE if i == instant}
        assert window == same_instant | unreadable, raw
    ordered = [r["name"] for r in adapter.iter_contacts()]
    assert set(ordered[:4]) == unreadable, "unreadable rows first"
    null_row = next(r for r in adapter.iter_contacts() if r["name"] == "None")
    assert null_row["_error"] == "unreadable modified time in column 'updated_at': is empty (NULL)"
    adapter.close()


def test_crm_timezone_setting_is_checked_at_start(tmp_path: Path) -> None:
    path = _crm(tmp_path / "crm.sqlite", [])
    with pytest.raises(ConfigError) as caught:
        _adapter(path, timezone="Europe/Praha")
    assert caught.value.path == "crm.timezone" and "unknown IANA time zone 'Europe/Praha'" in str(caught.value)
    adapter = _adapter(path, timezone="America/New_York", contacts={"table": "contacts", "modified_format": "iso"})
    adapter.close()


# -- second review: numbers whose unit the size cannot tell, REAL columns ------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (20261120100000.0, utc(2026, 11, 20, 10)),  # MySQL numeric datetime in a REAL column
        ("20261120100000.0", utc(2026, 11, 20, 10)),  # ... exported as text
        (20261120.0, utc(2026, 11, 20)),
        ("20261120.00", utc(2026, 11, 20)),
        (1795168800.0, utc(2026, 11, 20, 10)),  # epoch seconds in a REAL column
        (1795168800123.0, utc(2026, 11, 20, 10, 0, 0, 123000)),
    ],
)
def test_whole_numbers_written_as_floats_read_like_the_integers(raw: Any, expected: datetime) -> None:
    assert UTC_READER.read(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        253402300799,  # .NET DateTime.MaxValue in epoch seconds: as milliseconds it was a day of 1978
        "253402300799",
        32503680000,  # 3000-01-01 in seconds, a "never" sentinel: was a row invisible until year 3000
        99999999999,  # was read as year 5138
        999999999999,  # 12 digits: seconds in year 33658 or milliseconds in 2001; neither is plausible
        99999999999999,  # 14 digits that are no YYYYMMDDHHMMSS (month 99)
        999999999999999,  # 15 digits
    ],
)
def test_numbers_no_unit_reads_plausibly_are_refused(raw: Any) -> None:
    with pytest.raises(UnreadableTime, match=r"is not a plausible time|is not a time"):
        UTC_READER.read(raw)
    assert UTC_READER.utc_key(raw) is None


def test_real_and_sentinel_values_in_a_sqlite_file_are_windowed_or_failed_never_invisible(tmp_path: Path) -> None:
    values: list[Any] = [20261120100000.0, 1795168800.0, 253402300799, 32503680000, 1795168800123.0]
    adapter = _adapter(_crm(tmp_path / "crm.sqlite", values, column_type="REAL"))
    window = utc(2026, 11, 20, 10)
    got = {r["name"]: r.get("_error") for r in adapter.iter_contacts(window, window + timedelta(seconds=1))}
    assert set(got) == {repr(v) for v in values}
    assert got[repr(20261120100000.0)] is None and got[repr(1795168800.0)] is None
    assert got[repr(1795168800123.0)] is None
    for sentinel in (253402300799, 32503680000):
        # REAL affinity stores them as floats; each is a failed row in every window, named by value
        assert f"unreadable modified time in column 'updated_at': {float(sentinel)!r} is not a plausible time" in (
            got[repr(sentinel)] or ""
        )
    adapter.close()


@pytest.mark.parametrize("name", ["localtime", "Factory", "posixrules"])
def test_a_bracketed_zone_that_names_no_place_is_unreadable(name: str) -> None:
    # '[localtime]' read the wall time in the host's zone: the window then depended on the server
    raw = f"2026-11-20T10:00[{name}]"
    with pytest.raises(UnreadableTime, match=re.escape(f"names an unknown time zone {name!r}")):
        UTC_READER.read(raw)
    assert UTC_READER.utc_key(raw) is None
