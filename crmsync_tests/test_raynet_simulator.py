"""The Raynet simulator's wire format, asserted with plain httpx (what a reversed client would meet)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from crmsync_pipelines.crm.raynet.simulator import RaynetSimulatorHandle, run_raynet_simulator


@pytest.fixture
def api(raynet_sim: RaynetSimulatorHandle) -> Iterator[httpx.Client]:
    config = raynet_sim.config
    with httpx.Client(base_url=raynet_sim.api_url, auth=(config.username, config.api_key),
                      headers={"X-Instance-Name": config.instance_name}, timeout=10) as client:
        yield client


def _call(owner: int, **extra: object) -> dict[str, object]:
    return {"title": "Hovor", "priority": "DEFAULT", "owner": owner, **extra}


def test_auth_needs_basic_credentials_and_the_instance_header(raynet_sim: RaynetSimulatorHandle,
                                                              api: httpx.Client) -> None:
    config = raynet_sim.config
    no_instance = httpx.get(raynet_sim.api_url + "company/", auth=(config.username, config.api_key))
    wrong_key = httpx.get(raynet_sim.api_url + "company/", auth=(config.username, "nope"),
                          headers={"X-Instance-Name": config.instance_name})
    for answer in (no_instance, wrong_key):
        assert answer.status_code == 401
        assert answer.json()["message"] == "AuthenticationException"
        headers = ("X-Ratelimit-Limit", "X-Ratelimit-Remaining", "X-Ratelimit-Reset")
        assert all(name in answer.headers for name in headers)
    assert api.get("company/").status_code == 200
    assert all(r.headers.get("authorization") in (None, "***") for r in raynet_sim.request_log)


def test_verbs_are_put_to_create_and_post_to_update(raynet_sim: RaynetSimulatorHandle, api: httpx.Client) -> None:
    owner = raynet_sim.user_ids[0]
    assert api.post("phoneCall/", json=_call(owner)).status_code == 405
    created = api.put("phoneCall/", json=_call(owner))
    assert created.status_code == 201 and created.json() == {"success": True, "data": {"id": 1}}
    assert api.put("phoneCall/1/", json={"title": "x"}).status_code == 405
    updated = api.post("phoneCall/1/", json={"title": "Nový", "status": "COMPLETED", "tags": "a,b"})
    assert updated.status_code == 200 and updated.json() == {"success": True}
    detail = api.get("phoneCall/1/").json()
    assert detail["success"] == "true"
    record = detail["data"]
    assert (record["title"], record["status"], record["tags"], record["_version"]) == ("Nový", "COMPLETED",
                                                                                     ["a", "b"], 2)
    assert record["owner"] == {"id": owner, "fullName": "Alena Agentová"}
    assert record["rowInfo.updatedAt"] is not None
    assert api.get("phoneCall/99/").status_code == 404


def test_lists_page_with_offset_and_a_capped_limit(raynet_sim: RaynetSimulatorHandle, api: httpx.Client) -> None:
    for index in range(25):
        raynet_sim.store.insert("company", {"name": f"Firma {index:02d}"})
    default = api.get("company/").json()
    assert default["success"] == "true" and default["totalCount"] == 25 and len(default["data"]) == 20
    page = api.get("company/", params={"offset": 20, "limit": 5000, "sortColumn": "name"}).json()
    assert [c["name"] for c in page["data"]] == [f"Firma {i}" for i in range(20, 25)]
    with run_raynet_simulator(seed=None, limit_mode="error") as strict:
        config = strict.config
        refused = httpx.get(strict.api_url + "company/", params={"limit": 1001},
                            auth=(config.username, config.api_key), headers={"X-Instance-Name": config.instance_name})
        assert refused.status_code == 400


def test_filters_follow_the_documented_columns_and_operators(raynet_sim: RaynetSimulatorHandle,
                                                             api: httpx.Client) -> None:
    raynet_sim.store.insert("company", {"name": "Pivovar Hradec", "regNumber": "12345678",
                                        "primaryAddress": {"contactInfo": {"email": "info@pivo.cz"}}})
    raynet_sim.store.insert("company", {"name": "Kovo Ostrava", "regNumber": "87654321"})
    assert api.get("company/", params={"name[LIKE_NOCASE]": "piv%"}).json()["totalCount"] == 1
    assert api.get("company/", params={"regNumber": "87654321"}).json()["data"][0]["name"] == "Kovo Ostrava"
    assert api.get("company/", params={"primaryAddress-contactInfo.email[EQ]": ""}).json()["totalCount"] == 1
    unknown = api.get("company/", params={"primaryAddress-contactInfo.tel1": "1"})
    assert unknown.status_code == 400 and unknown.json()["message"].startswith("Unsupported filter column")
    assert api.get("company/", params={"regNumber[LIKE]": "1%"}).status_code == 400
    assert api.get("company/", params={"fulltext": "OSTRAVA"}).json()["totalCount"] == 1
    assert api.get("company/", params={"fulltext": "hradec"}).json()["data"][0]["name"] == "Pivovar Hradec"


def test_dates_render_in_the_user_zone_or_iso(raynet_sim: RaynetSimulatorHandle, api: httpx.Client) -> None:
    raynet_sim.store.insert("company", {"name": "A"}, at=datetime(2026, 1, 15, 9, 30, 12, tzinfo=UTC))
    plain = api.get("company/1/").json()["data"]
    iso = api.get("company/1/", params={"dateFormat": "ISO8601"}).json()["data"]
    assert plain["rowInfo.createdAt"] == "2026-01-15 10:30"
    assert iso["rowInfo.createdAt"] == "2026-01-15T10:30:12.000+01:00"
    window = {"rowInfo.lastModifiedAt[GE]": "2026-01-15T09:30:12.000+00:00",
              "rowInfo.lastModifiedAt[LT]": "2026-01-15 10:31"}
    assert api.get("company/", params=window).json()["totalCount"] == 1


def test_ext_ids_are_set_looked_up_unique_and_removed(raynet_sim: RaynetSimulatorHandle, api: httpx.Client) -> None:
    owner = raynet_sim.user_ids[0]
    api.put("phoneCall/", json=_call(owner, extId="daktela:a.1"))
    found = api.get("phoneCall/ext/daktela:a.1/")
    assert found.status_code == 200 and found.json()["data"]["extIds"] == ["daktela:a.1"]
    duplicate = api.put("phoneCall/", json=_call(owner, extId="daktela:a.1"))
    assert duplicate.status_code == 500
    assert duplicate.json()["message"] == "TranslatedApplicationException: exception.duplicateKey"
    api.put("phoneCall/", json=_call(owner))
    assert api.put("phoneCall/2/extId/", json={"extId": "erp:9"}).json() == {"success": "true"}
    assert api.get("phoneCall/ext/erp:9/").json()["data"]["id"] == 2
    assert api.delete("phoneCall/2/extId/erp:9").status_code == 200
    assert api.get("phoneCall/ext/erp:9/").status_code == 404
    assert api.get("email/ext/daktela:a.1/").status_code == 404  # per entity


def test_activity_validation_uses_raynets_500_shapes(raynet_sim: RaynetSimulatorHandle, api: httpx.Client) -> None:
    owner = raynet_sim.user_ids[0]
    task = api.put("task/", json=_call(owner))
    assert task.status_code == 500
    assert task.json()["message"] == "TranslatedApplicationException: exception.validation.required"
    assert "'resolver'" in task.json()["translatedMessage"]
    customer = raynet_sim.store.insert("person", {"firstName": "Jan", "lastName": "Novák"})["id"]
    not_a_user = api.put("phoneCall/", json=_call(customer))
    assert not_a_user.status_code == 500 and "'owner'" in not_a_user.json()["translatedMessage"]
    tags_as_text = api.put("phoneCall/", json=_call(owner, tags="a,b"))
    assert tags_as_text.status_code == 500
    unknown_field = api.put("phoneCall/", json=_call(owner, customFields={"Nope_1": "x"}))
    assert unknown_field.status_code == 500 and "'Nope_1'" in unknown_field.json()["translatedMessage"]
    fields = api.get("customField/config/").json()["data"]
    assert {f["label"] for f in fields["PhoneCall"]} >= {"Směr", "Fronta"}


def test_daily_quota_headers_and_exhaustion(raynet_sim: RaynetSimulatorHandle, api: httpx.Client) -> None:
    raynet_sim.set_daily_limit(3)
    first = api.get("company/")
    assert (first.headers["X-Ratelimit-Limit"], first.headers["X-Ratelimit-Remaining"]) == ("3", "2")
    reset = int(first.headers["X-Ratelimit-Reset"])
    assert reset % 86_400 == 0 and reset > datetime.now(UTC).timestamp()
    api.get("company/")
    api.get("company/")
    refused = api.get("company/")
    assert refused.status_code == 429 and refused.json()["type"] == "RequestLimitReached"
    assert "Retry-After" not in refused.headers and refused.headers["X-Ratelimit-Remaining"] == "0"
    raynet_sim.next_day()
    assert api.get("company/").headers["X-Ratelimit-Remaining"] == "2"


def test_custom_fields_are_created_with_generated_keys_and_validated(api: httpx.Client,
                                                                     raynet_sim: RaynetSimulatorHandle) -> None:
    created = api.put("customField/config/phoneCall/", json={"label": "Daktela fronta", "groupName": "Daktela",
                                                             "dataType": "STRING"})
    assert created.status_code == 201
    key = created.json()["data"]["fieldName"]
    assert key.startswith("Daktela_fronta_") and len(key) == len("Daktela_fronta_") + 5
    owner = raynet_sim.user_ids[0]
    assert api.put("phoneCall/", json=_call(owner, customFields={key: "Podpora"})).status_code == 201
    assert api.get("phoneCall/1/").json()["data"]["customFields"] == {key: "Podpora"}
    assert api.put("customField/config/phoneCall/", json={"label": "X", "groupName": "Daktela",
                                                          "dataType": "STRING"}).status_code == 500
