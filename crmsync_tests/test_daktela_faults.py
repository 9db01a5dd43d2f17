"""Issue 10, section 1: Daktela answers that are retried or worked around, over real HTTP.

Each test drives the adapter against the bundled simulator with one fault injected and
asserts the exact requests it cost and what ended up stored.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import timedelta
from typing import Any

import pytest

from crmsync_pipelines.daktela import (
    DaktelaAdapter,
    DaktelaAuthError,
    DaktelaClient,
    DaktelaServerError,
    DaktelaValidationError,
    WriteOp,
)
from crmsync_pipelines.simulator import Fault, SimulatorHandle, run_simulator
from crmsync_tests.test_daktela_adapter import make_adapter

CONTACTS = "/api/v6/contacts.json"
ACTIVITIES = "/api/v6/activities.json"


def contact(name: str) -> dict[str, Any]:
    return {"name": name, "title": name.title(), "lastname": name}


# -- empty 2xx on writes --------------------------------------------------------------------------
def test_empty_200_on_a_create_goes_through_the_did_it_land_lookup(simulator: SimulatorHandle) -> None:
    simulator.add_fault(Fault(route=f"POST {CONTACTS}", kind="status", status=200, apply_after=True))
    a = make_adapter(simulator)
    record = a.create("contacts", contact("crm_1"))
    assert record["name"] == "crm_1" and record["database"] == "default"
    assert simulator.request_count("POST", CONTACTS) == 1
    assert simulator.request_count("GET", "/api/v6/contacts/crm_1.json") == 1
    assert simulator.count("contacts") == 1


def test_empty_200_on_an_update_is_retried_as_an_idempotent_put(simulator: SimulatorHandle) -> None:
    simulator.insert("contacts", {**contact("c1"), "database": "default"})
    simulator.add_fault(Fault(route="PUT /api/v6/contacts/c1.json", kind="status", status=200, apply_after=True))
    a = make_adapter(simulator)
    assert a.update("contacts", "c1", {"title": "Renamed"})["title"] == "Renamed"
    assert simulator.request_count("PUT", "/api/v6/contacts/c1.json") == 2


# -- Retry-After on writes --------------------------------------------------------------------------
def test_create_refused_with_503_retry_after_waits_it_once_known_not_landed(simulator: SimulatorHandle) -> None:
    simulator.add_fault(Fault(route=f"POST {CONTACTS}", kind="status", status=503, retry_after="1"))
    a = make_adapter(simulator)
    started = time.monotonic()
    a.create("contacts", contact("crm_1"))
    assert time.monotonic() - started >= 0.95
    assert simulator.request_count("POST", CONTACTS) == 2
    assert simulator.request_count("GET", "/api/v6/contacts/crm_1.json") == 1
    assert simulator.count("contacts") == 1


def test_create_that_landed_despite_a_503_retry_after_does_not_wait(simulator: SimulatorHandle) -> None:
    simulator.add_fault(Fault(route=f"POST {CONTACTS}", kind="status", status=503, retry_after="30",
                              apply_after=True))
    a = make_adapter(simulator)
    started = time.monotonic()
    assert a.create("contacts", contact("crm_1"))["name"] == "crm_1"
    assert time.monotonic() - started < 5
    assert simulator.request_count("POST", CONTACTS) == 1


def test_create_asked_to_wait_longer_than_max_retry_after_s_gives_up(simulator: SimulatorHandle) -> None:
    simulator.add_fault(Fault(route=f"POST {CONTACTS}", kind="status", status=503, retry_after="600"))
    a = make_adapter(simulator)
    with pytest.raises(DaktelaServerError) as info:
        a.create("contacts", contact("crm_1"))
    assert info.value.retry_after_s == 600
    assert simulator.request_count("POST", CONTACTS) == 1
    assert simulator.count("contacts") == 0


def test_update_honours_retry_after(simulator: SimulatorHandle) -> None:
    simulator.insert("contacts", {**contact("c1"), "database": "default"})
    simulator.add_fault(Fault(route="PUT /api/v6/contacts/c1.json", kind="status", status=503, retry_after="1"))
    a = make_adapter(simulator)
    started = time.monotonic()
    a.update("contacts", "c1", {"title": "T"})
    assert time.monotonic() - started >= 0.95
    assert simulator.request_count("PUT", "/api/v6/contacts/c1.json") == 2


# -- a create that landed after the client's timeout ------------------------------------------------
@pytest.mark.parametrize("locale", ["en", "cs"])
def test_create_that_timed_out_and_landed_late_is_read_back_as_created(locale: str) -> None:
    """POST 1 times out (it lands 3 s later); the lookup at ~2 s finds nothing; the re-POST
    reaches the server after POST 1 landed and is refused ``name: Record with this name already
    exists`` (localised). That refusal of our own retried create means "it landed"."""
    with run_simulator(seed=None, locale=locale) as sim:
        sim.add_fault(Fault(route=f"POST {CONTACTS}", kind="slow", delay_s=3.0))
        sim.add_fault(Fault(route=f"POST {CONTACTS}", kind="slow", delay_s=1.5))
        a = DaktelaAdapter(
            DaktelaClient(sim.base_url, sim.token, rate_limit_per_s=None, max_retries=2, backoff_base_s=0.01,
                          backoff_max_s=0.02, timeout_s=2.0),
            database="default",
        )
        record = a.create("contacts", contact("crm_late"))
        assert record["name"] == "crm_late" and record["title"] == "Crm_Late"
        time.sleep(0.2)
        assert sim.count("contacts") == 1
        assert sim.request_count("POST", CONTACTS) == 2
        assert [r.status for r in sim.request_log if r.method == "POST"] == [201, 400]
        # one lookup after the timeout (nothing yet), one read-back after the refusal
        assert sim.request_count("GET", "/api/v6/contacts/crm_late.json") == 2
        a.close()


def test_a_duplicate_name_on_the_first_post_stays_a_validation_error(simulator: SimulatorHandle) -> None:
    simulator.insert("contacts", {**contact("taken"), "database": "default"})
    a = make_adapter(simulator)
    with pytest.raises(DaktelaValidationError) as info:
        a.create("contacts", contact("taken"))
    assert "name" in info.value.form
    assert simulator.request_count("POST", CONTACTS) == 1
    assert simulator.request_count("GET") == 0


def test_a_retried_create_refused_on_another_field_is_not_taken_for_landed(simulator: SimulatorHandle) -> None:
    simulator.add_fault(Fault(route=f"POST {CONTACTS}", kind="status", status=503))
    a = make_adapter(simulator)
    with pytest.raises(DaktelaValidationError) as info:
        a.create("contacts", {"name": "crm_1", "title": "", "lastname": "x"})
    assert "title" in info.value.form and "name" not in info.value.form
    assert simulator.request_count("POST", CONTACTS) == 2
    assert simulator.count("contacts") == 0


# -- auth errors stop the writes ----------------------------------------------------------------------
def test_apply_writes_stops_sending_at_the_first_auth_error(simulator: SimulatorHandle) -> None:
    simulator.add_fault(Fault(route=f"POST {CONTACTS}", kind="status", status=401, after=3, times=None))
    a = make_adapter(simulator, write_concurrency=1)
    ops = [WriteOp(key=f"k{i}", model="contacts", action="create", payload=contact(f"w{i}")) for i in range(10)]
    results = {r.op.key: r for r in a.apply_writes(ops)}
    assert len(results) == 10
    assert simulator.request_count("POST", CONTACTS) == 4
    assert [k for k, r in results.items() if r.error is None] == ["k0", "k1", "k2"]
    refused = [r.error for r in results.values() if r.error is not None]
    assert len(refused) == 7 and all(isinstance(e, DaktelaAuthError) for e in refused)
    assert sum("not sent" in str(e) for e in refused) == 6
    assert simulator.token not in " ".join(str(e) for e in refused)


def test_apply_writes_auth_stop_with_concurrency_sends_at_most_the_in_flight_writes(
    simulator: SimulatorHandle,
) -> None:
    simulator.add_fault(Fault(route=f"POST {CONTACTS}", kind="status", status=403, after=5, times=None))
    simulator.set_latency(20)
    a = make_adapter(simulator, write_concurrency=4)
    ops = [WriteOp(key=f"k{i}", model="contacts", action="create", payload=contact(f"w{i}")) for i in range(40)]
    results = list(a.apply_writes(ops))
    assert len(results) == 40
    posts = simulator.request_count("POST", CONTACTS)
    assert 6 <= posts <= 5 + 4
    assert sum(r.error is None for r in results) == 5 == simulator.count("contacts")


# -- instances that refuse date filters on activities ------------------------------------------------
def _window(sim: SimulatorHandle, a: DaktelaAdapter) -> tuple[Any, Any, list[str]]:
    calls = sorted((r["time"], r["name"]) for r in sim.all("activities") if r["type"] == "CALL")
    start, end = calls[len(calls) // 4][0], calls[3 * len(calls) // 4][0]
    expected = sorted(name for t, name in calls if start <= t < end)
    return a.from_instance_time(start), a.from_instance_time(end), expected


def test_activities_fall_back_to_client_side_windowing_once_per_instance(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with run_simulator(seed="demo", reject_activity_date_filters=True) as sim:
        a = make_adapter(sim, page_size=5)
        since, until, expected = _window(sim, a)
        assert expected
        with caplog.at_level(logging.WARNING, logger="crmsync.daktela"):
            rows = list(a.iter_activities("call", since=since, until=until))
            assert sorted(r["id"] for r in rows) == expected
            assert all(r["activity_type"] == "call" for r in rows)
            log = sim.request_log
            assert log[0].status == 400 and "time" in log[0].raw_query
            assert all(r.status == 200 and "filter" in r.query for r in log[1:])
            # Only `type` is filtered; newest first; stops after the first page older than `since`.
            assert all(r.query["filter"]["filters"] == [{"field": "type", "operator": "eq", "value": "CALL"}]
                       for r in log[1:])
            assert log[1].query["sort"][0] == {"field": "time", "dir": "desc"}
            total_calls = sum(1 for r in sim.all("activities") if r["type"] == "CALL")
            assert len(log) - 1 < total_calls // 5 + 1

            sim.reset_log()
            again = list(a.iter_activities("call", since=since, until=until))
            assert sorted(r["id"] for r in again) == expected
            assert all(r.status == 200 for r in sim.request_log)  # remembered: no second refused request
            b = make_adapter(sim)  # another adapter of the same process and instance
            assert sorted(r["id"] for r in b.iter_activities("call", since=since, until=until)) == expected
            assert all(r.status == 200 for r in sim.request_log)
        fallbacks = [r for r in caplog.records if "refuses date filters" in r.getMessage()]
        assert len(fallbacks) == 1
        assert sim.token not in fallbacks[0].getMessage()
        a.close()
        b.close()


#: Clock-derived texts: local date-times, and call ids, which are the start's epoch (``1795926593.1167``).
_CLOCK_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}|^\d{10}\.\d+$")


def _without_times(value: Any) -> Any:
    """``value`` less its clock-derived texts: two "demo" instances seeded a second apart differ there."""
    if isinstance(value, dict):
        return {k: _without_times(v) for k, v in value.items() if not (isinstance(v, str) and _CLOCK_TEXT.search(v))}
    if isinstance(value, list):
        return [_without_times(v) for v in value]
    return value


def test_activity_fallback_matches_the_filtered_read(demo_simulator: SimulatorHandle) -> None:
    filtered = make_adapter(demo_simulator)
    with run_simulator(seed="demo", reject_activity_date_filters=True) as sim:
        a = make_adapter(sim, page_size=7)
        # The window comes from the refusing instance's own clock (its seed is "now"-relative).
        since, until, expected = _window(sim, a)
        got = {r["id"]: r for r in a.iter_activities("call", since=since, until=until)}
        assert sorted(got) == expected
        sim_times = {r["name"]: r["time"] for r in sim.all("activities")}
        base_times = {r["name"]: r["time"] for r in demo_simulator.all("activities")}
        name = expected[0]
        shift = a.from_instance_time(sim_times[name]) - filtered.from_instance_time(base_times[name])
        want = {r["id"]: r for r in filtered.iter_activities("call", since=since - shift, until=until - shift)}
        assert sorted(want) == sorted(got)
        assert {k: _without_times(v) for k, v in got.items()} == {k: _without_times(v) for k, v in want.items()}
        only_since = {r["id"] for r in a.iter_activities("call", since=since, until=None)}
        assert only_since == {r["id"] for r in filtered.iter_activities("call", since=since - shift, until=None)}
        later = since + timedelta(days=3650)
        assert list(a.iter_activities("call", since=later, until=None)) == []
        a.close()


def test_a_400_that_the_unfiltered_read_gets_too_is_raised_and_not_remembered(
    demo_simulator: SimulatorHandle,
) -> None:
    a = make_adapter(demo_simulator)
    since, until, _ = _window(demo_simulator, a)
    with pytest.raises(DaktelaValidationError) as info:
        list(a.iter_activities("call", since=since, until=until, time_field="no_such_field"))
    assert info.value.status == 400
    assert demo_simulator.request_count("GET", ACTIVITIES) == 2
    demo_simulator.reset_log()
    assert list(a.iter_activities("call", since=since, until=until))
    assert "time" in demo_simulator.request_log[0].raw_query  # the date filter is still sent


def test_an_unbounded_read_by_a_nullable_time_field_falls_back_too(demo_simulator: SimulatorHandle) -> None:
    """``time_close`` reads ask for nulls first (``isnull``), a date filter too: refused alike."""
    want = {r["id"] for r in make_adapter(demo_simulator).iter_activities("call", since=None, until=None,
                                                                              time_field="time_close")}
    assert want == {r["name"] for r in demo_simulator.all("activities") if r["type"] == "CALL"}
    with run_simulator(seed="demo", reject_activity_date_filters=True) as sim:
        a = make_adapter(sim, page_size=4)
        got = [r["id"] for r in a.iter_activities("call", since=None, until=None, time_field="time_close")]
        assert sorted(got) == sorted(want)
        assert sim.request_log[0].status == 400
        a.close()
