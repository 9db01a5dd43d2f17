"""DaktelaAdapter over real HTTP against the simulator: keyset paging, lookups, safe writes, activities."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from crmsync_pipelines.config.models import DaktelaSection
from crmsync_pipelines.daktela import (
    DaktelaAdapter,
    DaktelaClient,
    DaktelaServerError,
    DaktelaValidationError,
    WriteOp,
)
from crmsync_pipelines.errors import ConfigError
from crmsync_pipelines.simulator import Fault, SimulatorHandle, run_simulator

CONTACTS = "/api/v6/contacts.json"
ACTIVITIES = "/api/v6/activities.json"
PRAGUE = ZoneInfo("Europe/Prague")


def make_adapter(sim: SimulatorHandle, transport: httpx.BaseTransport | None = None, **options: Any) -> DaktelaAdapter:
    client = DaktelaClient(
        sim.base_url,
        sim.token,
        rate_limit_per_s=None,
        max_retries=2,
        backoff_base_s=0.01,
        backoff_max_s=0.05,
        timeout_s=5.0,
        transport=transport,
    )
    options.setdefault("database", "default")
    return DaktelaAdapter(client, **options)


@pytest.fixture
def adapter(simulator: SimulatorHandle) -> Iterator[DaktelaAdapter]:
    a = make_adapter(simulator, page_size=3, lookup_chunk_size=2)
    yield a
    a.close()


def contact(name: str, edited: str | None = None, **extra: Any) -> dict[str, Any]:
    record = {"name": name, "title": name.title(), "lastname": name, "database": "default", **extra}
    if edited:
        record["edited"] = record["created"] = edited
    return record


def seed_contacts(sim: SimulatorHandle, count: int) -> list[str]:
    names = [f"c{i:02d}" for i in range(count)]
    for i, name in enumerate(names):
        sim.insert("contacts", contact(name, edited=f"2024-05-01 10:{i // 2:02d}:00"))  # pairs share a time
    return names


# -- iter_records -------------------------------------------------------------------------------
def test_full_scan_in_keyset_order_with_exact_request_count(
    simulator: SimulatorHandle, adapter: DaktelaAdapter
) -> None:
    names = seed_contacts(simulator, 10)
    simulator.reset_log()
    records = list(adapter.iter_records("contacts"))
    assert [r["name"] for r in records] == names
    assert records[0]["database"] == "default"  # relation -> name
    assert isinstance(records[0]["customFields"], dict)
    # one request for records without `edited`, then pages of 3: 3 + 3 + 3 + 1
    assert simulator.request_count("GET", CONTACTS) == 1 + 4
    second_page = simulator.request_log[2].query
    assert second_page["filter"]["filters"][-1] == {
        "logic": "or",
        "filters": [
            {"field": "edited", "operator": "gt", "value": "2024-05-01 10:01:00"},
            {
                "logic": "and",
                "filters": [
                    {"field": "edited", "operator": "eq", "value": "2024-05-01 10:01:00"},
                    {"field": "name", "operator": "gt", "value": "c02"},
                ],
            },
        ],
    }
    assert second_page["sort"] == [{"field": "edited", "dir": "asc"}, {"field": "name", "dir": "asc"}]
    assert (second_page["skip"], second_page["take"]) == ("0", "3")


def test_keyset_paging_neither_skips_nor_repeats_under_concurrent_edits(
    simulator: SimulatorHandle, adapter: DaktelaAdapter
) -> None:
    names = seed_contacts(simulator, 9)
    seen: list[str] = []
    for record in adapter.iter_records("contacts"):
        seen.append(record["name"])
        if len(seen) == 3:  # between pages: edit a seen and an unseen record, add a new one
            simulator.update_record("contacts", "c00", {"title": "edited"})
            simulator.update_record("contacts", "c05", {"title": "edited"})
            simulator.insert("contacts", contact("new"))
    assert sorted(seen) == sorted([*names, "new"])
    assert len(seen) == len(set(seen))


def test_plain_offset_paging_would_skip_records(simulator: SimulatorHandle) -> None:
    """The control experiment: the same edit between pages makes skip/take lose a record."""
    names = seed_contacts(simulator, 9)
    with DaktelaClient(simulator.base_url, simulator.token, rate_limit_per_s=None) as client:
        sort: list[tuple[str, Any]] = [("edited", "asc"), ("name", "asc")]
        seen = [r["name"] for r in client.list("contacts", sort=sort, skip=0, take=3).records]
        simulator.update_record("contacts", "c00", {"title": "edited"})
        for skip in (3, 6, 9):
            seen += [r["name"] for r in client.list("contacts", sort=sort, skip=skip, take=3).records]
    assert set(names) - set(seen) == {"c03"}
    assert seen.count("c00") == 2


def test_window_is_converted_to_instance_time_and_half_open(
    simulator: SimulatorHandle, adapter: DaktelaAdapter
) -> None:
    seed_contacts(simulator, 10)  # edited 10:00 .. 10:04 Prague time (UTC+2 in May)
    since = datetime(2024, 5, 1, 8, 1, tzinfo=UTC)
    until = datetime(2024, 5, 1, 8, 3, tzinfo=UTC)
    simulator.reset_log()
    names = [r["name"] for r in adapter.iter_records("contacts", edited_since=since, edited_until=until)]
    assert names == ["c02", "c03", "c04", "c05"]
    sent = simulator.request_log[0].query["filter"]["filters"]
    assert sent[:3] == [
        {"field": "database", "operator": "eq", "value": "default"},
        {"field": "edited", "operator": "gte", "value": "2024-05-01 10:01:00"},
        {"field": "edited", "operator": "lt", "value": "2024-05-01 10:03:00"},
    ]
    with pytest.raises(ValueError, match="naive"):
        list(adapter.iter_records("contacts", edited_since=datetime(2024, 5, 1)))


def test_announced_time_zone_wins_and_the_window_is_recomputed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="crmsync.daktela")
    with run_simulator(seed=None, timezone="America/New_York") as sim:
        sim.insert("contacts", contact("ny", edited="2024-05-01 04:30:00"))  # 08:30 UTC
        a = make_adapter(sim)  # configured Europe/Prague: would ask for 10:00-11:00 local
        since = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
        until = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
        assert [r["name"] for r in a.iter_records("contacts", edited_since=since, edited_until=until)] == ["ny"]
        assert a.tz.key == "America/New_York"
        assert sim.request_count("GET", CONTACTS) == 2  # the first page was asked in the wrong zone
        assert a.to_instance_time(since) == "2024-05-01 04:00:00"
        a.close()
    assert sum("America/New_York" in r.getMessage() for r in caplog.records) == 1


def test_projection_keeps_the_paging_keys(simulator: SimulatorHandle, adapter: DaktelaAdapter) -> None:
    seed_contacts(simulator, 4)
    records = list(adapter.iter_records("contacts", fields=["title"]))
    assert len(records) == 4
    assert set(records[0]) == {"title", "name", "edited"}
    assert simulator.request_log[-1].query["fields"] == ["title", "name", "edited"]


def test_reads_and_lookups_are_scoped_to_the_database(simulator: SimulatorHandle, adapter: DaktelaAdapter) -> None:
    simulator.insert("databases", {"name": "other", "title": "Other"})
    simulator.insert("contacts", contact("mine", customFields={"email": ["x@example.com"]}))
    simulator.insert("contacts", {**contact("theirs", customFields={"email": ["x@example.com"]}), "database": "other"})
    assert [r["name"] for r in adapter.iter_records("contacts")] == ["mine"]
    found = adapter.get_by_field("contacts", "customFields.email", ["x@example.com"])
    assert [r["name"] for r in found["x@example.com"]] == ["mine"]


# -- get_by_field -------------------------------------------------------------------------------
def test_batched_lookup_makes_ceil_n_over_chunk_requests(simulator: SimulatorHandle) -> None:
    for i in range(0, 450, 3):
        simulator.insert("contacts", contact(f"crm_{i}"))
    a = make_adapter(simulator, lookup_chunk_size=200)
    values = [f"crm_{i}" for i in range(450)] + ["", "  ", "crm_0"]
    simulator.reset_log()
    found = a.get_by_field("contacts", "name", values)
    assert simulator.request_count("GET", CONTACTS) == math.ceil(450 / 200)
    assert sorted(found) == sorted(f"crm_{i}" for i in range(0, 450, 3))
    assert all(len(v) == 1 and v[0]["name"] == k for k, v in found.items())
    assert simulator.request_log[0].query["filter"]["filters"][1]["operator"] == "in"
    assert len(simulator.request_log[0].query["filter"]["filters"][1]["value"]) == 200
    assert a.get_by_field("contacts", "name", ["", None]) == {}  # type: ignore[list-item]
    assert simulator.request_count("GET", CONTACTS) == 3
    a.close()


def test_lookup_by_custom_field_lists_a_record_under_every_value(
    simulator: SimulatorHandle, adapter: DaktelaAdapter
) -> None:
    simulator.insert("contacts", contact("both", customFields={"email": ["a@x.cz", "b@x.cz"]}))
    simulator.insert("contacts", contact("only_c", customFields={"email": ["c@x.cz"]}))
    found = adapter.get_by_field("contacts", "customFields.email", ["a@x.cz", "b@x.cz", "c@x.cz", "d@x.cz"])
    assert {k: [r["name"] for r in v] for k, v in found.items()} == {
        "a@x.cz": ["both"],
        "b@x.cz": ["both"],
        "c@x.cz": ["only_c"],
    }


def test_a_chunk_matching_more_than_a_page_is_paged(simulator: SimulatorHandle) -> None:
    for i in range(5):
        simulator.insert("contacts", contact(f"p{i}", customFields={"number": ["+420111"]}))
    a = make_adapter(simulator, page_size=2)
    simulator.reset_log()
    found = a.get_by_field("contacts", "customFields.number", ["+420111"])
    assert [r["name"] for r in found["+420111"]] == ["p0", "p1", "p2", "p3", "p4"]
    assert simulator.request_count("GET", CONTACTS) == 3
    a.close()


def test_lookup_errors_raise_instead_of_meaning_not_found(simulator: SimulatorHandle, adapter: DaktelaAdapter) -> None:
    simulator.add_fault(Fault(route=f"GET {CONTACTS}", kind="status", status=500, times=None))
    with pytest.raises(DaktelaServerError):
        adapter.get_by_field("contacts", "name", ["x"])


# -- writes -------------------------------------------------------------------------------------
def test_create_adds_the_database_and_returns_a_normalized_record(
    simulator: SimulatorHandle, adapter: DaktelaAdapter
) -> None:
    record = adapter.create("contacts", {"name": "crm_1", "title": "A", "lastname": "A", "customFields": {}})
    assert record["database"] == "default"
    assert simulator.request_log[-1].json["database"] == "default"
    assert simulator.get("contacts", "crm_1") is not None


def test_create_that_landed_despite_a_5xx_is_found_not_duplicated(
    simulator: SimulatorHandle, adapter: DaktelaAdapter
) -> None:
    simulator.add_fault(Fault(route=f"POST {CONTACTS}", kind="status", status=500, apply_after=True))
    record = adapter.create("contacts", {"name": "crm_1", "title": "A", "lastname": "A"})
    assert record["name"] == "crm_1"
    assert simulator.request_count("POST", CONTACTS) == 1
    assert simulator.request_count("GET", "/api/v6/contacts/crm_1.json") == 1
    assert simulator.count("contacts") == 1


def test_create_that_did_not_land_is_retried_after_the_lookup(
    simulator: SimulatorHandle, adapter: DaktelaAdapter
) -> None:
    simulator.add_fault(Fault(route=f"POST {CONTACTS}", kind="status", status=503))
    adapter.create("contacts", {"name": "crm_1", "title": "A", "lastname": "A"})
    assert simulator.request_count("POST", CONTACTS) == 2
    assert simulator.request_count("GET", "/api/v6/contacts/crm_1.json") == 1
    assert simulator.count("contacts") == 1


def test_create_by_a_custom_field_lookup_finds_the_landed_record(
    simulator: SimulatorHandle, adapter: DaktelaAdapter
) -> None:
    simulator.add_fault(Fault(route=f"POST {CONTACTS}", kind="status", status=500, apply_after=True))
    payload = {"title": "B", "lastname": "B", "customFields": {"email": ["b@x.cz"]}}
    record = adapter.create("contacts", payload, lookup_field="customFields.email")
    assert record["customFields"]["email"] == ["b@x.cz"]
    assert simulator.request_count("POST", CONTACTS) == 1
    lookup = simulator.request_log[-1]
    assert (lookup.method, lookup.path) == ("GET", CONTACTS)
    assert lookup.query["filter"]["filters"][1] == {
        "field": "customFields.email",
        "operator": "in",
        "value": ["b@x.cz"],
    }
    assert simulator.count("contacts") == 1


def test_create_without_a_lookup_value_raises_the_original_error(
    simulator: SimulatorHandle, adapter: DaktelaAdapter
) -> None:
    simulator.add_fault(Fault(route=f"POST {CONTACTS}", kind="status", status=500))
    with pytest.raises(DaktelaServerError):
        adapter.create("contacts", {"name": "", "title": "A", "lastname": "A"})
    assert simulator.request_count("POST", CONTACTS) == 1
    assert simulator.request_count("GET") == 0


def test_create_retries_are_bounded(simulator: SimulatorHandle, adapter: DaktelaAdapter) -> None:
    simulator.add_fault(Fault(route=f"POST {CONTACTS}", kind="status", status=500, times=None))
    with pytest.raises(DaktelaServerError):
        adapter.create("contacts", {"name": "crm_1", "title": "A", "lastname": "A"})
    assert simulator.request_count("POST", CONTACTS) == 3  # 1 + max_retries
    assert simulator.count("contacts") == 0


def test_update_is_retried_on_5xx(simulator: SimulatorHandle, adapter: DaktelaAdapter) -> None:
    simulator.insert("contacts", contact("c1"))
    simulator.add_fault(Fault(route="PUT /api/v6/contacts/c1.json", kind="status", status=502))
    record = adapter.update("contacts", "c1", {"title": "Renamed"})
    assert record["title"] == "Renamed"
    assert simulator.request_count("PUT", "/api/v6/contacts/c1.json") == 2


class InFlightTransport(httpx.BaseTransport):
    """A real HTTP transport that records how many requests were in flight at once."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.current = 0
        self.peak = 0
        self.lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.current += 1
            self.peak = max(self.peak, self.current)
        try:
            response = self.inner.handle_request(request)
            response.read()
            return response
        finally:
            with self.lock:
                self.current -= 1

    def close(self) -> None:
        self.inner.close()


def test_apply_writes_bounds_concurrency_and_isolates_failures(simulator: SimulatorHandle) -> None:
    simulator.insert("contacts", contact("existing"))
    simulator.set_latency(40)
    transport = InFlightTransport()
    a = make_adapter(simulator, transport=transport, write_concurrency=3)
    ops = [WriteOp(key=f"k{i}", model="contacts", action="create", payload=contact(f"w{i}")) for i in range(10)]
    ops.append(WriteOp(key="bad", model="contacts", action="create", payload={"name": "bad", "title": "x"}))
    ops.append(WriteOp(key="upd", model="contacts", action="update", name="existing", payload={"title": "U"}))
    ops.append(WriteOp(key="noname", model="contacts", action="update", payload={"title": "U"}))
    results = {r.op.key: r for r in a.apply_writes(ops)}
    a.close()
    assert len(results) == 13
    assert transport.peak == 3
    assert isinstance(results["bad"].error, DaktelaValidationError)
    assert isinstance(results["noname"].error, ValueError)
    assert results["upd"].record is not None and results["upd"].record["title"] == "U"
    assert all(results[f"k{i}"].record is not None and results[f"k{i}"].error is None for i in range(10))
    assert simulator.count("contacts") == 11


def test_each_writer_thread_keeps_its_own_connection(simulator: SimulatorHandle) -> None:
    """Writers do not share one pooled client (its lock is contended on every write): each
    writer thread sends over its own kept-alive connection; reads keep the shared one; close()
    closes every per-writer client."""
    simulator.set_latency(5)
    a = make_adapter(simulator, write_concurrency=3)
    a.client.list("contacts", take=1)
    ops = [WriteOp(key=f"k{i}", model="contacts", action="create", payload=contact(f"w{i}")) for i in range(30)]
    results = list(a.apply_writes(ops))
    a.client.list("contacts", take=1)
    assert sorted(r.op.key for r in results if r.error is None) == sorted(op.key for op in ops)
    writes = [r for r in simulator.request_log if r.method == "POST"]
    reads = [r for r in simulator.request_log if r.method == "GET"]
    assert len(writes) == 30 and len(reads) == 2
    write_peers = {r.peer for r in writes}
    assert all(r.peer.startswith("127.0.0.1:") for r in writes)
    assert 1 <= len(write_peers) <= 3  # one connection per writer thread, reused for all its writes
    assert len({r.peer for r in reads}) == 1 and not write_peers & {r.peer for r in reads}
    bound = list(a.client._thread_http)
    assert len(bound) == len(write_peers)
    a.close()
    assert all(http.is_closed for http in bound) and a.client._thread_http == []


# -- activities ---------------------------------------------------------------------------------
def test_iter_activities_per_type_flattened(demo_simulator: SimulatorHandle) -> None:
    a = make_adapter(demo_simulator, page_size=7)
    everything = demo_simulator.all("activities")
    for activity_type, code in [("call", "CALL"), ("email", "EMAIL"), ("web", "CHAT"), ("sms", "SMS")]:
        demo_simulator.reset_log()
        rows = list(a.iter_activities(activity_type, since=None, until=None))
        expected = sorted(r["name"] for r in everything if r["type"] == code)
        assert sorted(r["id"] for r in rows) == expected and expected
        assert all(r["activity_type"] == activity_type and r["type"] == code for r in rows)
        assert [(r["time"], r["name"]) for r in rows] == sorted((r["time"], r["name"]) for r in rows)
        assert demo_simulator.request_log[0].query["filter"]["filters"][0] == {
            "field": "type",
            "operator": "eq",
            "value": code,
        }
        assert demo_simulator.request_count("GET", ACTIVITIES) == len(expected) // 7 + 1
        row = rows[0]
        assert {"queue_name", "queue_title", "user_login", "user_email", "contact_name", "customFields"} <= set(row)
        assert row["direction"] in ("in", "out", "internal", None)
    a.close()


def test_iter_activities_window(demo_simulator: SimulatorHandle) -> None:
    a = make_adapter(demo_simulator)
    calls = sorted(r["time"] for r in demo_simulator.all("activities") if r["type"] == "CALL")
    start_local, end_local = calls[len(calls) // 4], calls[3 * len(calls) // 4]
    since = a.from_instance_time(start_local)
    until = a.from_instance_time(end_local)
    rows = list(a.iter_activities("call", since=since, until=until))
    assert sorted(r["time"] for r in rows) == [t for t in calls if start_local <= t < end_local]
    with pytest.raises(ValueError, match="unknown activity type"):
        list(a.iter_activities("fax", since=None, until=None))
    a.close()


def test_get_activities_batched_and_get_activity(demo_simulator: SimulatorHandle) -> None:
    a = make_adapter(demo_simulator, lookup_chunk_size=5)
    names = [r["name"] for r in demo_simulator.all("activities")][:12]
    demo_simulator.reset_log()
    rows = a.get_activities([*names, "activities_missing", ""])
    assert sorted(rows) == sorted(names)
    assert demo_simulator.request_count("GET", ACTIVITIES) == math.ceil(13 / 5)
    one = a.get_activity(names[0])
    assert one is not None and one["id"] == names[0] and one["activity_type"] is not None
    assert a.get_activity("activities_missing") is None
    demo_simulator.add_fault(Fault(route="GET /api/v6/activities/*", kind="status", status=500, times=None))
    with pytest.raises(DaktelaServerError):
        a.get_activity(names[0])
    a.close()


# -- health, time, config -----------------------------------------------------------------------
def test_ping(simulator: SimulatorHandle, adapter: DaktelaAdapter) -> None:
    assert adapter.ping() is True
    wrong = DaktelaAdapter(DaktelaClient(simulator.base_url, "nope", rate_limit_per_s=None), database="default")
    assert wrong.ping() is False
    dead = DaktelaAdapter(
        DaktelaClient("http://127.0.0.1:9", "t", rate_limit_per_s=None, max_retries=0), database="default"
    )
    assert dead.ping() is False


def test_instance_time_round_trip(adapter: DaktelaAdapter) -> None:
    winter = datetime(2024, 1, 15, 11, 0, tzinfo=UTC)
    assert adapter.to_instance_time(winter) == "2024-01-15 12:00:00"
    assert adapter.from_instance_time("2024-01-15 12:00:00") == winter
    assert adapter.from_instance_time("2024-07-01 00:00:00").utcoffset() == PRAGUE.utcoffset(datetime(2024, 7, 1))
    assert adapter.from_instance_time("2024-07-01") == datetime(2024, 7, 1, tzinfo=PRAGUE)
    with pytest.raises(ValueError, match="not a Daktela datetime"):
        adapter.from_instance_time("yesterday")


def test_from_config(simulator: SimulatorHandle) -> None:
    section = DaktelaSection(
        instance_url=simulator.base_url,
        access_token=simulator.token,
        database="default",
        timezone="",
        page_size=500,
        write_concurrency=2,
    )
    a = DaktelaAdapter.from_config(section)
    assert (a.database, a.page_size, a.write_concurrency, a.tz.key) == ("default", 500, 2, "Europe/Prague")
    assert a.ping()
    a.close()
    with pytest.raises(ConfigError, match=r"daktela\.access_token"):
        DaktelaAdapter.from_config(DaktelaSection(instance_url="https://x.daktela.com"))
