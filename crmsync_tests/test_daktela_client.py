"""DaktelaClient over real HTTP against the bundled simulator: wire encoding, envelopes, errors, retries."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from crmsync_pipelines.daktela import (
    And,
    DaktelaAuthError,
    DaktelaClient,
    DaktelaNotFoundError,
    DaktelaProtocolError,
    DaktelaRateLimitError,
    DaktelaServerError,
    DaktelaTransportError,
    DaktelaValidationError,
    F,
    Or,
)
from crmsync_pipelines.simulator import Fault, SimulatorHandle, run_simulator

CONTACTS = "/api/v6/contacts.json"


def make_client(sim: SimulatorHandle, **overrides: Any) -> DaktelaClient:
    options: dict[str, Any] = {
        "rate_limit_per_s": None,
        "max_retries": 2,
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.05,
        "timeout_s": 5.0,
    }
    options.update(overrides)
    return DaktelaClient(sim.base_url, sim.token, **options)


@pytest.fixture
def client(simulator: SimulatorHandle) -> Iterator[DaktelaClient]:
    with make_client(simulator) as c:
        yield c


def contact(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "title": name.title(), "lastname": name, "database": "default", **extra}


def last_query(sim: SimulatorHandle) -> dict[str, Any]:
    return sim.request_log[-1].query


def test_list_emits_nested_filters_sort_fields_and_paging(simulator: SimulatorHandle, client: DaktelaClient) -> None:
    simulator.insert("contacts", contact("c1", edited="2024-05-01 10:00:00"))
    flt = And(
        F("edited", "gte", "2024-05-01 00:00:00"),
        F("name", "in", ["c1", "c2"]),
        Or(F("user", "isnull"), F("user", "neq", "admin")),
    )
    page = client.list(
        "contacts", filters=flt, sort=[("edited", "asc"), ("name", "asc")], skip=0, take=50, fields=["name", "title"]
    )
    assert page.records == [{"name": "c1", "title": "C1"}]
    assert page.total == 1
    assert page.timezone == "Europe/Prague"
    query = last_query(simulator)
    assert query["filter"] == {
        "logic": "and",
        "filters": [
            {"field": "edited", "operator": "gte", "value": "2024-05-01 00:00:00"},
            {"field": "name", "operator": "in", "value": ["c1", "c2"]},
            {
                "logic": "or",
                "filters": [
                    {"field": "user", "operator": "isnull"},
                    {"field": "user", "operator": "neq", "value": "admin"},
                ],
            },
        ],
    }
    assert query["sort"] == [{"field": "edited", "dir": "asc"}, {"field": "name", "dir": "asc"}]
    assert query["fields"] == ["name", "title"]
    assert (query["skip"], query["take"]) == ("0", "50")
    assert "accessToken" not in query


@pytest.mark.parametrize("operator", ["eq", "neq", "gt", "gte", "lt", "lte", "like", "notlike", "in", "notin"])
def test_every_operator_is_accepted_by_the_server(
    simulator: SimulatorHandle, client: DaktelaClient, operator: str
) -> None:
    value: Any = ["c1"] if operator in ("in", "notin") else ("c%" if "like" in operator else "c1")
    client.list("contacts", filters=F("name", operator, value), take=10)
    sent = last_query(simulator)["filter"]["filters"][0]
    assert sent == {"field": "name", "operator": operator, "value": value}
    assert simulator.request_log[-1].status == 200


def test_paging_total_and_skip(simulator: SimulatorHandle, client: DaktelaClient) -> None:
    for i in range(5):
        simulator.insert("contacts", contact(f"c{i}"))
    first = client.list("contacts", sort=[("name", "asc")], skip=0, take=2)
    last = client.list("contacts", sort=[("name", "asc")], skip=4, take=2)
    assert [r["name"] for r in first.records] == ["c0", "c1"]
    assert [r["name"] for r in last.records] == ["c4"]
    assert first.total == last.total == 5
    with pytest.raises(ValueError, match="take"):
        client.list("contacts", take=1001)


def test_envelope_quirks_total_as_string_data_as_object_no_timezone() -> None:
    with run_simulator(seed=None, total_as_string=True, data_as_object=True, omit_timezone=True) as sim:
        sim.insert("contacts", contact("c1"))
        sim.insert("contacts", contact("c2"))
        with make_client(sim) as c:
            page = c.list("contacts", sort=[("name", "asc")])
    assert sorted(r["name"] for r in page.records) == ["c1", "c2"]
    assert page.total == 2
    assert page.timezone is None


def test_crud_round_trip_with_dots_and_at_signs_in_the_name(simulator: SimulatorHandle, client: DaktelaClient) -> None:
    created = client.create("contacts", contact("crm_a.b@c"))
    assert created["name"] == "crm_a.b@c"
    assert created["database"]["name"] == "default"
    assert client.get("contacts", "crm_a.b@c", fields=["title"]) == {"title": "Crm_A.B@C"}
    updated = client.update("contacts", "crm_a.b@c", {"title": "New"})
    assert updated["title"] == "New"
    client.delete("contacts", "crm_a.b@c")
    with pytest.raises(DaktelaNotFoundError) as info:
        client.get("contacts", "crm_a.b@c")
    assert info.value.status == 404
    assert simulator.get("contacts", "crm_a.b@c") is None
    assert client.stats.snapshot() == {"requests": 5, "reads": 2, "writes": 3, "retries": 0, "rate_limited": 0}


def test_validation_error_keeps_the_structured_form(simulator: SimulatorHandle, client: DaktelaClient) -> None:
    with pytest.raises(DaktelaValidationError) as info:
        client.create("contacts", {"title": "X", "database": "default", "customFields": {"email": ["not-an-email"]}})
    err = info.value
    assert err.status == 400
    assert "lastname" in err.form
    assert "email" in err.form["customFields"]
    assert any(m.startswith("customFields.email: ") for m in err.messages)
    assert simulator.request_count("POST", CONTACTS) == 1
    assert simulator.count("contacts") == 0


def test_wrong_token_is_one_auth_error_naming_the_instance(simulator: SimulatorHandle) -> None:
    secret = "wrong-secret-token-123"
    with (
        DaktelaClient(simulator.base_url, secret, rate_limit_per_s=None, max_retries=3) as c,
        pytest.raises(DaktelaAuthError) as info,
    ):
        c.list("contacts")
    assert simulator.request_count() == 1
    assert simulator.base_url in str(info.value)
    assert secret not in str(info.value)
    assert info.value.status == 401


def test_forbidden_model_is_an_auth_error() -> None:
    with run_simulator(seed=None, forbidden_models=("accounts",)) as sim, make_client(sim) as c:
        with pytest.raises(DaktelaAuthError) as info:
            c.list("accounts")
        assert info.value.status == 403
        assert sim.request_count() == 1


def test_unknown_model_names_the_model(simulator: SimulatorHandle, client: DaktelaClient) -> None:
    with pytest.raises(DaktelaNotFoundError, match="unknown model 'contactz'"):
        client.list("contactz")
    assert simulator.request_count() == 1
    with pytest.raises(ValueError, match="invalid Daktela model"):
        client.list("../etc")


def test_non_json_200_names_the_route_and_is_retried_for_get(simulator: SimulatorHandle, client: DaktelaClient) -> None:
    simulator.add_fault(Fault(route=f"GET {CONTACTS}", kind="malformed_json", times=None))
    with pytest.raises(DaktelaProtocolError, match=r"GET /api/v6/contacts\.json") as info:
        client.list("contacts")
    assert "not JSON" in str(info.value)
    assert simulator.request_count("GET", CONTACTS) == 3  # 1 + max_retries
    assert client.stats.retries == 2


def test_get_5xx_is_retried_then_succeeds(simulator: SimulatorHandle, client: DaktelaClient) -> None:
    simulator.add_fault(Fault(route=f"GET {CONTACTS}", kind="status", status=503, times=2))
    assert client.list("contacts").total == 0
    assert simulator.request_count("GET", CONTACTS) == 3
    assert client.stats.snapshot()["retries"] == 2


def test_get_5xx_retries_are_bounded(simulator: SimulatorHandle, client: DaktelaClient) -> None:
    simulator.add_fault(Fault(route=f"GET {CONTACTS}", kind="status", status=502, times=None, body="html"))
    with pytest.raises(DaktelaServerError) as info:
        client.list("contacts")
    assert info.value.status == 502
    assert simulator.request_count("GET", CONTACTS) == 3


@pytest.mark.parametrize("apply_after", [False, True])
def test_post_is_not_retried_after_a_5xx(simulator: SimulatorHandle, client: DaktelaClient, apply_after: bool) -> None:
    simulator.add_fault(Fault(route=f"POST {CONTACTS}", kind="status", status=500, apply_after=apply_after))
    with pytest.raises(DaktelaServerError):
        client.create("contacts", contact("c1"))
    assert simulator.request_count("POST", CONTACTS) == 1
    assert simulator.count("contacts") == (1 if apply_after else 0)


def test_put_is_not_retried_by_the_client(simulator: SimulatorHandle, client: DaktelaClient) -> None:
    simulator.insert("contacts", contact("c1"))
    simulator.add_fault(Fault(route="PUT /api/v6/contacts/c1.json", kind="status", status=503))
    with pytest.raises(DaktelaServerError):
        client.update("contacts", "c1", {"title": "T"})
    assert simulator.request_count("PUT") == 1


def test_429_retry_after_seconds_for_a_post(simulator: SimulatorHandle, client: DaktelaClient) -> None:
    simulator.add_fault(Fault(route=f"POST {CONTACTS}", kind="rate_limit", status=429, retry_after="1"))
    started = time.monotonic()
    created = client.create("contacts", contact("c1"))
    elapsed = time.monotonic() - started
    assert created["name"] == "c1"
    assert elapsed >= 0.95
    assert simulator.request_count("POST", CONTACTS) == 2
    assert simulator.count("contacts") == 1
    assert client.stats.rate_limited == 1


def test_429_retry_after_http_date(simulator: SimulatorHandle, client: DaktelaClient) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=2), usegmt=True)
    simulator.add_fault(Fault(route=f"GET {CONTACTS}", kind="rate_limit", status=429, retry_after=when))
    started = time.monotonic()
    client.list("contacts")
    assert time.monotonic() - started >= 0.9  # HTTP-dates have whole-second resolution
    assert simulator.request_count("GET", CONTACTS) == 2


def test_429_retry_after_zero_waits_a_little_but_not_zero(simulator: SimulatorHandle, client: DaktelaClient) -> None:
    simulator.add_fault(Fault(route=f"GET {CONTACTS}", kind="rate_limit", status=429, retry_after="0", times=2))
    started = time.monotonic()
    client.list("contacts")
    assert time.monotonic() - started >= 0.2
    assert simulator.request_count("GET", CONTACTS) == 3


def test_429_retries_are_bounded(simulator: SimulatorHandle, client: DaktelaClient) -> None:
    simulator.add_fault(Fault(route=f"POST {CONTACTS}", kind="rate_limit", status=429, retry_after="0", times=None))
    with pytest.raises(DaktelaRateLimitError) as info:
        client.create("contacts", contact("c1"))
    assert info.value.status == 429
    assert simulator.request_count("POST", CONTACTS) == 3
    assert simulator.count("contacts") == 0
    assert client.stats.snapshot()["rate_limited"] == 3


def test_429_asking_for_too_long_a_wait_fails_at_once(simulator: SimulatorHandle) -> None:
    simulator.add_fault(Fault(route=f"GET {CONTACTS}", kind="rate_limit", status=429, retry_after="600"))
    with make_client(simulator, max_retry_after_s=5) as c, pytest.raises(DaktelaRateLimitError) as info:
        c.list("contacts")
    assert info.value.retry_after_s == 600
    assert simulator.request_count() == 1


def test_timeouts_retry_get_but_never_post(simulator: SimulatorHandle) -> None:
    with make_client(simulator, timeout_s=0.3) as c:
        simulator.add_fault(Fault(route=f"GET {CONTACTS}", kind="slow", delay_s=1.0, times=1))
        assert c.list("contacts").total == 0
        time.sleep(0.8)  # the server logs the slow request only when it finishes
        assert simulator.request_count("GET", CONTACTS) == 2
        simulator.add_fault(Fault(route=f"POST {CONTACTS}", kind="slow", delay_s=1.0, times=1))
        with pytest.raises(DaktelaTransportError, match="timed out"):
            c.create("contacts", contact("c1"))
    time.sleep(0.8)  # let the slow request finish server-side before counting
    assert simulator.request_count("POST", CONTACTS) == 1


def test_connection_reset(simulator: SimulatorHandle, client: DaktelaClient) -> None:
    simulator.add_fault(Fault(route=f"POST {CONTACTS}", kind="reset"))
    with pytest.raises(DaktelaTransportError):
        client.create("contacts", contact("c1"))
    assert simulator.request_count("POST", CONTACTS) == 1
    simulator.add_fault(Fault(route=f"GET {CONTACTS}", kind="reset"))
    assert client.list("contacts").total == 0
    assert simulator.request_count("GET", CONTACTS) == 2


def test_unreachable_instance_is_a_transport_error() -> None:
    with DaktelaClient("http://127.0.0.1:9", "t", rate_limit_per_s=None, max_retries=1, backoff_base_s=0.01) as c:
        with pytest.raises(DaktelaTransportError, match=r"127\.0\.0\.1:9"):
            c.whoim()
        assert c.stats.requests == 2


def test_secrets_never_reach_logs_or_errors(simulator: SimulatorHandle, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with make_client(simulator) as c:
        simulator.add_fault(Fault(route=f"GET {CONTACTS}", kind="status", status=500, times=None))
        with pytest.raises(DaktelaServerError) as server_error:
            c.list("contacts")
        simulator.clear_faults()
        with pytest.raises(DaktelaValidationError) as validation_error:
            c.create("contacts", {"title": "x"})
        texts = [str(server_error.value), str(validation_error.value), repr(c), caplog.text]
    assert caplog.records, "the client should log its retries"
    for text in texts:
        assert simulator.token not in text
    assert all(simulator.token not in r.raw_query for r in simulator.request_log)


def test_rate_limiter_paces_requests(simulator: SimulatorHandle) -> None:
    with make_client(simulator, rate_limit_per_s=5.0) as c:
        started = time.monotonic()
        for _ in range(8):
            c.whoim()
        elapsed = time.monotonic() - started
    assert elapsed >= 0.55  # a burst of 5, then 3 more at 0.2 s each
    assert simulator.request_count("GET", "/api/v6/whoim.json") == 8


def test_whoim_and_constructor_validation(simulator: SimulatorHandle, client: DaktelaClient) -> None:
    assert isinstance(client.whoim(), dict)
    with pytest.raises(ValueError, match="access_token"):
        DaktelaClient(simulator.base_url, "")
    assert client.base_url == simulator.base_url.rstrip("/") + "/api/v6/"


# -- issue 10: answers that are retried -----------------------------------------------------------
@pytest.mark.parametrize("status", [200, 201, 204])
def test_empty_200_on_a_list_read_is_retried(simulator: SimulatorHandle, client: DaktelaClient, status: int) -> None:
    simulator.insert("contacts", contact("c1"))
    simulator.add_fault(Fault(route=f"GET {CONTACTS}", kind="status", status=status, times=2))
    page = client.list("contacts")
    assert [r["name"] for r in page.records] == ["c1"]
    assert simulator.request_count("GET", CONTACTS) == 3
    assert client.stats.retries == 2


def test_empty_200_retries_are_bounded_and_name_the_route(simulator: SimulatorHandle, client: DaktelaClient) -> None:
    simulator.add_fault(Fault(route=f"GET {CONTACTS}", kind="status", status=200, times=None))
    with pytest.raises(DaktelaProtocolError, match=r"GET /api/v6/contacts\.json returned HTTP 200 with an empty body"):
        client.list("contacts")
    assert simulator.request_count("GET", CONTACTS) == 3


def test_empty_200_on_a_post_is_a_protocol_error_not_retried_by_the_client(
    simulator: SimulatorHandle, client: DaktelaClient
) -> None:
    simulator.add_fault(Fault(route=f"POST {CONTACTS}", kind="status", status=200, apply_after=True))
    with pytest.raises(DaktelaProtocolError, match="empty body"):
        client.create("contacts", contact("c1"))
    assert simulator.request_count("POST", CONTACTS) == 1
    assert simulator.count("contacts") == 1


def test_a_read_without_a_result_object_is_retried(simulator: SimulatorHandle, client: DaktelaClient) -> None:
    class NoResult(httpx.BaseTransport):
        def __init__(self) -> None:
            self.calls = 0

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            self.calls += 1
            if self.calls == 1:
                return httpx.Response(200, json={"error": [], "result": None})
            return httpx.Response(200, json={"error": [], "result": {"data": [], "total": 0}})

    transport = NoResult()
    with make_client(simulator, transport=transport) as c:
        assert c.list("contacts").total == 0
    assert transport.calls == 2


@pytest.mark.parametrize("status", [503, 500, 502])
def test_retry_after_on_a_5xx_read_is_honoured(simulator: SimulatorHandle, status: int) -> None:
    simulator.add_fault(Fault(route=f"GET {CONTACTS}", kind="status", status=status, retry_after="1", times=2))
    with make_client(simulator, max_retries=5) as c:
        started = time.monotonic()
        assert c.list("contacts").total == 0
        elapsed = time.monotonic() - started
    assert simulator.request_count("GET", CONTACTS) == 3
    assert elapsed >= 1.9  # two waits of Retry-After: 1, not a jittered backoff of a few ms


def test_retry_after_as_an_http_date_on_a_503(simulator: SimulatorHandle, client: DaktelaClient) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=2), usegmt=True)
    simulator.add_fault(Fault(route=f"GET {CONTACTS}", kind="status", status=503, retry_after=when))
    started = time.monotonic()
    client.list("contacts")
    assert time.monotonic() - started >= 0.9  # HTTP-dates have whole-second resolution
    assert simulator.request_count("GET", CONTACTS) == 2


def test_retry_after_on_a_503_outlasting_the_budget_gives_up_after_the_waits(simulator: SimulatorHandle) -> None:
    simulator.add_fault(Fault(route=f"GET {CONTACTS}", kind="status", status=503, retry_after="1", times=None))
    with make_client(simulator, max_retries=2) as c, pytest.raises(DaktelaServerError) as info:
        started = time.monotonic()
        c.list("contacts")
    assert time.monotonic() - started >= 1.9
    assert info.value.retry_after_s == 1
    assert simulator.request_count("GET", CONTACTS) == 3


def test_retry_after_longer_than_max_retry_after_s_fails_at_once(simulator: SimulatorHandle) -> None:
    simulator.add_fault(Fault(route=f"GET {CONTACTS}", kind="status", status=503, retry_after="600", times=None))
    with make_client(simulator, max_retries=5, max_retry_after_s=5) as c, pytest.raises(DaktelaServerError) as info:
        c.list("contacts")
    assert info.value.retry_after_s == 600
    assert simulator.request_count("GET", CONTACTS) == 1


def test_a_write_5xx_carries_retry_after_for_the_adapter(simulator: SimulatorHandle, client: DaktelaClient) -> None:
    simulator.add_fault(Fault(route=f"POST {CONTACTS}", kind="status", status=503, retry_after="7"))
    with pytest.raises(DaktelaServerError) as info:
        client.create("contacts", contact("c1"))
    assert info.value.retry_after_s == 7
    assert simulator.request_count("POST", CONTACTS) == 1


def test_token_accepted_tells_a_revoked_token_from_a_wrong_one(simulator: SimulatorHandle) -> None:
    with make_client(simulator) as c:
        simulator.add_fault(Fault(route="*", kind="status", status=401))
        with pytest.raises(DaktelaAuthError):
            c.list("contacts")
        assert c.token_accepted is False  # refused before it ever worked: a wrong token
        c.list("contacts")
        assert c.token_accepted is True  # a refusal from now on means it was revoked
