"""The HubSpot simulator speaks HubSpot's wire format, refusals included (raw HTTP, no adapter)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from crmsync_pipelines.crm.hubspot.simulator import HubSpotSimHandle, SimFault, run_hubspot_simulator

CALLS = "/crm/v3/objects/calls"


@pytest.fixture
def http(hubspot_sim: HubSpotSimHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hubspot_sim.base_url, headers={"Authorization": f"Bearer {hubspot_sim.token}"},
                      timeout=10) as client:
        yield client


def _call(name: str, **props: str) -> dict[str, object]:
    return {"properties": {"daktela_activity_name": name, "hs_timestamp": "1764237600000", **props},
            "objectWriteTraceId": name}


def test_auth_errors_and_correlation_ids(hubspot_sim: HubSpotSimHandle) -> None:
    response = httpx.get(f"{hubspot_sim.base_url}/crm/v3/objects/contacts", headers={"Authorization": "Bearer x"})
    body = response.json()
    assert response.status_code == 401 and body["category"] == "INVALID_AUTHENTICATION"
    assert body["correlationId"] == response.headers["X-HubSpot-Correlation-Id"]


def test_validation_error_names_each_property(http: httpx.Client) -> None:
    response = http.post(CALLS, json={"properties": {"hs_call_direction": "SIDEWAYS", "nope": "1",
                                                     "hs_lastmodifieddate": "1"}})
    body = response.json()
    assert response.status_code == 400 and body["category"] == "VALIDATION_ERROR"
    assert {e["in"] for e in body["errors"]} == {"hs_call_direction", "nope", "hs_lastmodifieddate", "hs_timestamp"}
    assert {e["code"] for e in body["errors"]} == {"INVALID_OPTION", "PROPERTY_DOESNT_EXIST", "READ_ONLY_VALUE",
                                                   "REQUIRED_PROPERTY"}


def test_batch_create_is_207_only_with_trace_ids(http: httpx.Client) -> None:
    good, bad = _call("a1"), _call("a2", hs_call_status="NOPE")
    partial = http.post(f"{CALLS}/batch/create", json={"inputs": [good, bad]})
    assert partial.status_code == 207 and partial.json()["numErrors"] == 1
    assert partial.json()["errors"][0]["context"]["objectWriteTraceId"] == ["a2"]
    untraced = [{"properties": {"daktela_activity_name": "a3", "hs_timestamp": "1764237600000"}},
                {"properties": {"hs_timestamp": "x"}}]
    assert http.post(f"{CALLS}/batch/create", json={"inputs": untraced}).status_code == 400
    assert http.get(f"{CALLS}/a3", params={"idProperty": "daktela_activity_name"}).status_code == 404
    assert http.post(f"{CALLS}/batch/create", json={"inputs": [_call(f"n{i}") for i in range(101)]}).status_code == 400


def test_unique_property_and_upsert_rules(http: httpx.Client) -> None:
    assert http.post(CALLS, json=_call("u1")).status_code == 201
    duplicate = http.post(CALLS, json=_call("u1"))
    assert duplicate.status_code == 409 and duplicate.json()["category"] == "CONFLICT"
    non_unique = http.post(f"{CALLS}/batch/upsert", json={"inputs": [
        {"idProperty": "hs_call_title", "id": "x", "properties": {"hs_timestamp": "1764237600000"}}]})
    assert non_unique.status_code == 400 and "non-unique" in non_unique.json()["message"]
    twice = {"idProperty": "daktela_activity_name", "id": "u2", "properties": {"hs_timestamp": "1764237600000"}}
    assert http.post(f"{CALLS}/batch/upsert", json={"inputs": [twice, twice]}).status_code == 400
    upsert = http.post(f"{CALLS}/batch/upsert", json={"inputs": [
        {"idProperty": "daktela_activity_name", "id": "u1", "properties": {"hs_call_title": "t"}}, twice]})
    flags = {r["properties"]["daktela_activity_name"]: r["new"] for r in upsert.json()["results"]}
    assert upsert.status_code == 200 and flags == {"u1": False, "u2": True}
    by_unique = http.get(f"{CALLS}/u1", params={"idProperty": "daktela_activity_name", "properties": "hs_call_title"})
    assert by_unique.json()["properties"]["hs_call_title"] == "t"
    assert http.get(f"{CALLS}/nope", params={"idProperty": "daktela_activity_name"}).status_code == 404
    record_id = by_unique.json()["id"]
    assert http.delete(f"{CALLS}/{record_id}").status_code == 204
    assert http.post(CALLS, json=_call("u1")).status_code == 201, "an archived record frees its unique value"


def test_search_limits_and_operators(http: httpx.Client, hubspot_sim: HubSpotSimHandle) -> None:
    from datetime import UTC, datetime

    hubspot_sim.add_contact({"lastname": "Nováková", "email": "jana@example.cz"}, datetime(2026, 1, 1, tzinfo=UTC))
    too_many = {"filterGroups": [{"filters": [{"propertyName": "email", "operator": "HAS_PROPERTY"}]}] * 6}
    assert http.post("/crm/v3/objects/contacts/search", json=too_many).status_code == 400
    assert http.post("/crm/v3/objects/contacts/search", json={"limit": 201}).status_code == 400
    found = http.post("/crm/v3/objects/contacts/search", json={"filterGroups": [{"filters": [
        {"propertyName": "email", "operator": "IN", "values": ["JANA@example.cz", "x@y.z"]},
        {"propertyName": "lastmodifieddate", "operator": "LT", "value": "1767225600001"}]}]})
    assert found.status_code == 200 and found.json()["total"] == 1
    assert "X-HubSpot-RateLimit-Daily" not in found.headers, "search responses carry no rate-limit headers"
    assert "X-HubSpot-RateLimit-Daily" in http.get("/crm/v3/objects/contacts").headers


def test_association_type_ids_must_fit_the_pair(http: httpx.Client, hubspot_sim: HubSpotSimHandle) -> None:
    from datetime import UTC, datetime

    contact = hubspot_sim.add_contact({"lastname": "A"}, datetime(2026, 1, 1, tzinfo=UTC))
    wrong = {**_call("as1"), "associations": [{"to": {"id": contact}, "types": [
        {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 198}]}]}
    assert http.post(CALLS, json=wrong).status_code == 400
    right = {**_call("as1"), "associations": [{"to": {"id": contact}, "types": [
        {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 194}]}]}
    created = http.post(CALLS, json=right).json()
    listed = http.get(f"/crm/v4/objects/contacts/{contact}/associations/calls").json()["results"]
    assert [r["toObjectId"] for r in listed] == [int(created["id"])]


def test_rate_limit_policies() -> None:
    with run_hubspot_simulator(burst_limit=2, search_rate_per_s=1, daily_limit=4) as sim:
        with httpx.Client(base_url=sim.base_url, headers={"Authorization": f"Bearer {sim.token}"}) as http:
            first = http.get("/crm/v3/objects/contacts")
            assert first.headers["X-HubSpot-RateLimit-Remaining"] == "1"
            http.get("/crm/v3/objects/contacts")
            burst = http.get("/crm/v3/objects/contacts")
            assert burst.status_code == 429 and burst.json()["policyName"] == "TEN_SECONDLY_ROLLING"
            assert burst.json()["errorType"] == "RATE_LIMIT" and "Retry-After" in burst.headers
        sim.app.limits.burst.clear()
        with httpx.Client(base_url=sim.base_url, headers={"Authorization": f"Bearer {sim.token}"}) as http:
            assert http.post("/crm/v3/objects/contacts/search", json={}).status_code == 200
            secondly = http.post("/crm/v3/objects/contacts/search", json={})
            assert secondly.status_code == 429 and secondly.json()["policyName"] == "SECONDLY"
            sim.app.limits.burst.clear()
            http.get("/crm/v3/objects/contacts")
            daily = http.get("/crm/v3/objects/contacts")
            assert daily.status_code == 429 and daily.json()["policyName"] == "DAILY"
            assert float(daily.headers["Retry-After"]) > 0
            usage = http.get("/account-info/v3/api-usage/daily/private-apps")
            assert usage.status_code == 429  # the quota covers every endpoint
        sim.app.add_fault(SimFault("GET /crm/v3/objects/contacts", 502, times=1))
        sim.app.limits.used_today = 0
        with httpx.Client(base_url=sim.base_url, headers={"Authorization": f"Bearer {sim.token}"}) as http:
            sim.app.limits.burst.clear()
            assert http.get("/crm/v3/objects/contacts").status_code == 502
            assert http.get("/account-info/v3/api-usage/daily/private-apps").json()["results"][0]["usageLimit"] == 4


def test_search_index_lag_knob() -> None:
    import time
    from datetime import UTC, datetime

    with run_hubspot_simulator(search_rate_per_s=None, index_lag_ms=300) as sim:
        contact = sim.add_contact({"lastname": "Late"}, datetime(2026, 1, 1, tzinfo=UTC))
        with httpx.Client(base_url=sim.base_url, headers={"Authorization": f"Bearer {sim.token}"}) as http:
            assert http.post("/crm/v3/objects/contacts/search", json={}).json()["total"] == 0
            assert http.get(f"/crm/v3/objects/contacts/{contact}").status_code == 200, "reads by id see it at once"
            time.sleep(0.35)
            assert http.post("/crm/v3/objects/contacts/search", json={}).json()["total"] == 1
