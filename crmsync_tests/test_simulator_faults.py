"""Fault injection, rate limiting, request counters and the /_sim control API."""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime

import httpx
import pytest

from crmsync_pipelines.simulator import Fault, SimulatorHandle, run_simulator

CONTACTS = "/api/v6/contacts.json"
NEW = {"title": "Jana Nová", "lastname": "Nová", "database": "default"}


def test_status_fault_fires_times_then_clears(simulator: SimulatorHandle, simulator_client: httpx.Client) -> None:
    simulator.add_fault(Fault(route=f"POST {CONTACTS}", kind="status", status=503, times=2))
    codes = [simulator_client.post("/contacts.json", json=NEW).status_code for _ in range(3)]
    assert codes == [503, 503, 201]
    assert simulator.count("contacts") == 1
    assert simulator.request_count("POST", CONTACTS) == 3
    assert simulator_client.get("/contacts.json").status_code == 200


def test_html_body_and_wildcard_route(simulator: SimulatorHandle, simulator_client: httpx.Client) -> None:
    simulator.add_fault(Fault(route="GET /api/v6/contacts*", kind="status", status=502, body="html", times=None))
    response = simulator_client.get("/contacts/x.json")
    assert response.status_code == 502 and response.headers["content-type"].startswith("text/html")
    assert simulator_client.get("/contacts.json").status_code == 502
    assert simulator_client.get("/users.json").status_code == 200
    simulator.clear_faults()
    assert simulator_client.get("/contacts.json").status_code == 200


def test_apply_after_lands_the_write_then_answers_500(
    simulator: SimulatorHandle, simulator_client: httpx.Client
) -> None:
    simulator.add_fault(Fault(route=f"POST {CONTACTS}", kind="status", status=500, apply_after=True))
    response = simulator_client.post("/contacts.json", json={**NEW, "name": "landed"})
    assert response.status_code == 500 and response.content == b""
    assert simulator.get("contacts", "landed") is not None


def test_malformed_json_is_200_with_broken_body(simulator: SimulatorHandle, simulator_client: httpx.Client) -> None:
    simulator.add_fault(Fault(route="*", kind="malformed_json"))
    response = simulator_client.get("/users.json")
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()


def test_slow_fault_triggers_client_timeout(simulator: SimulatorHandle) -> None:
    simulator.add_fault(Fault(route="GET /api/v6/users.json", kind="slow", delay_s=0.5))
    with httpx.Client(base_url=simulator.api_url, headers={"X-AUTH-TOKEN": simulator.token}, timeout=0.1) as http:
        with pytest.raises(httpx.ReadTimeout):
            http.get("/users.json")
        time.sleep(0.5)
        assert http.get("/users.json").status_code == 200


def test_reset_drops_the_connection(simulator: SimulatorHandle, simulator_client: httpx.Client) -> None:
    simulator.add_fault(Fault(route=f"GET {CONTACTS}", kind="reset"))
    with pytest.raises(httpx.RemoteProtocolError):
        simulator_client.get("/contacts.json")
    assert simulator_client.get("/contacts.json").status_code == 200
    assert [r.status for r in simulator.request_log] == [0, 200]


def test_rate_limit_fault_with_seconds_and_http_date(
    simulator: SimulatorHandle, simulator_client: httpx.Client
) -> None:
    simulator.add_fault(Fault(route="*", kind="rate_limit", retry_after="2"))
    first = simulator_client.get("/users.json")
    assert first.status_code == 429 and first.headers["Retry-After"] == "2"
    simulator.add_fault(Fault(route="*", kind="rate_limit", retry_after="Wed, 21 Oct 2015 07:28:00 GMT"))
    second = simulator_client.get("/users.json")
    assert second.status_code == 429 and parsedate_to_datetime(second.headers["Retry-After"]).year == 2015


def test_probability_zero_never_fires(simulator: SimulatorHandle, simulator_client: httpx.Client) -> None:
    simulator.add_fault(Fault(route="*", kind="status", probability=0.0, times=None))
    assert all(simulator_client.get("/users.json").status_code == 200 for _ in range(5))


@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_rate_limiter_mode(form: str) -> None:
    with (
        run_simulator(seed=None, rate_limit=3, rate_window_s=30, rate_limit_retry_after=form) as sim,
        httpx.Client(base_url=sim.api_url, headers={"X-AUTH-TOKEN": sim.token}) as http,
    ):
        codes = [http.get("/users.json") for _ in range(5)]
        assert [r.status_code for r in codes] == [200, 200, 200, 429, 429]
        retry_after = codes[3].headers["Retry-After"]
        if form == "seconds":
            assert 1 <= int(retry_after) <= 30
        else:
            assert parsedate_to_datetime(retry_after).timestamp() > time.time()


def test_request_log_redacts_token_and_keeps_decoded_query(simulator: SimulatorHandle) -> None:
    with httpx.Client(base_url=simulator.api_url) as http:
        http.get("/users.json", params={"accessToken": simulator.token, "sort[0][field]": "name"})
        http.post("/contacts.json", json=NEW, headers={"X-AUTH-TOKEN": simulator.token})
    get, post = simulator.request_log
    assert get.query == {"accessToken": "***", "sort": [{"field": "name"}]}
    assert simulator.token not in get.raw_query
    assert post.headers["x-auth-token"] == "***" and post.json == NEW and post.status == 201
    assert simulator.request_count(path="/api/v6/*") == 2 and simulator.request_count("GET") == 1
    simulator.reset_log()
    assert simulator.request_log == [] and simulator.request_count() == 0


def test_latency_is_added(simulator: SimulatorHandle, simulator_client: httpx.Client) -> None:
    simulator.set_latency(150)
    started = time.perf_counter()
    simulator_client.get("/users.json")
    assert time.perf_counter() - started >= 0.15


def test_control_api_requires_token_and_drives_the_instance(simulator: SimulatorHandle) -> None:
    sim_url = f"{simulator.base_url}/_sim"
    with httpx.Client(base_url=sim_url, headers={"X-AUTH-TOKEN": simulator.token}) as ctl:
        assert httpx.get(f"{sim_url}/stats").status_code == 401
        fault = {"route": f"POST {CONTACTS}", "kind": "status", "status": 500, "times": 1}
        assert ctl.post("/faults", json=fault).status_code == 201
        assert ctl.post("/faults", json={"route": "*", "kind": "explode"}).status_code == 400
        api = httpx.Client(base_url=simulator.api_url, headers={"X-AUTH-TOKEN": simulator.token})
        assert api.post("/contacts.json", json=NEW).status_code == 500
        inserted = ctl.post("/records/contacts", json={**NEW, "name": "srv"})
        assert inserted.status_code == 201 and inserted.json()["name"] == "srv"
        updated = ctl.put("/records/contacts/srv", json={"firstname": "Jana"})
        assert updated.json()["firstname"] == "Jana"
        assert ctl.put("/records/contacts/ghost", json={}).status_code == 404
        assert ctl.post("/latency", json={"ms": 5}).json() == {"latency_ms": 5.0}
        stats = ctl.get("/stats", params={"method": "POST", "path": CONTACTS}).json()
        assert stats["count"] == 1 and stats["records"]["contacts"] == 1 and stats["latency_ms"] == 5.0
        assert stats["by_route"] == {f"POST {CONTACTS}": 1}
        assert ctl.post("/reset-log").status_code == 204
        assert ctl.delete("/faults").status_code == 204
        assert ctl.get("/stats").json()["requests"] == 0
        api.close()


def test_fault_spec_parsing() -> None:
    assert Fault.parse("POST /api/v6/contacts.json=500x2") == Fault(
        route="POST /api/v6/contacts.json", kind="status", status=500, times=2
    )
    assert Fault.parse("*=429").kind == "rate_limit"
    assert Fault.parse("*=slow:1.5x*") == Fault(route="*", kind="slow", delay_s=1.5, times=None)
    assert Fault.parse("GET /api/v6/users.json=reset").kind == "reset"
    for bad in ("nothing", "*=boom", "*=500x0", "*=slow:abc"):
        with pytest.raises(ValueError):
            Fault.parse(bad)


def test_retry_after_is_sent_with_any_status(simulator: SimulatorHandle, simulator_client: httpx.Client) -> None:
    simulator.add_fault(Fault(route=f"GET {CONTACTS}", kind="status", status=503, retry_after="10"))
    simulator.add_fault(Fault(route=f"GET {CONTACTS}", kind="status", status=502, body="html", retry_after="3"))
    first, second = simulator_client.get("/contacts.json"), simulator_client.get("/contacts.json")
    assert (first.status_code, first.headers["Retry-After"]) == (503, "10")
    assert (second.status_code, second.headers["Retry-After"]) == (502, "3")
    assert "Retry-After" not in simulator_client.get("/contacts.json").headers


def test_after_lets_requests_through_before_firing(
    simulator: SimulatorHandle, simulator_client: httpx.Client
) -> None:
    simulator.add_fault(Fault(route=f"POST {CONTACTS}", kind="status", status=401, after=2, times=None))
    codes = [simulator_client.post("/contacts.json", json=NEW).status_code for _ in range(4)]
    assert codes == [201, 201, 401, 401]
    assert simulator.count("contacts") == 2
    assert simulator_client.get("/contacts.json").status_code == 200  # other routes are not counted
    with pytest.raises(ValueError, match="after"):
        Fault(route="*", kind="status", after=-1)


def test_empty_200_after_the_write_landed(simulator: SimulatorHandle, simulator_client: httpx.Client) -> None:
    simulator.add_fault(Fault(route=f"POST {CONTACTS}", kind="status", status=200, apply_after=True))
    response = simulator_client.post("/contacts.json", json={**NEW, "name": "quiet"})
    assert (response.status_code, response.content) == (200, b"")
    assert simulator.get("contacts", "quiet") is not None


def test_fault_spec_with_retry_after() -> None:
    assert Fault.parse("*=503:10x3") == Fault(route="*", kind="status", status=503, retry_after="10", times=3)
    assert Fault.parse("*=429:7").retry_after == "7"
    with pytest.raises(ValueError, match="whole seconds"):
        Fault.parse("*=503:soon")
