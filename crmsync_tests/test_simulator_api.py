"""Routes, auth, envelopes, writes and validation of the simulator over real HTTP."""

from __future__ import annotations

import re

import httpx
import pytest

from crmsync_pipelines.simulator import SimulatorHandle, run_simulator

#: one shared client: creating an httpx client per call costs more than the request itself
HTTP = httpx.Client(timeout=10)
DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


def new_contact(**extra: object) -> dict:
    return {"title": "Jana Nová", "lastname": "Nová", "database": "default", **extra}


# ---------------------------------------------------------------- auth


def test_auth_header_query_and_cookie(simulator: SimulatorHandle) -> None:
    url = f"{simulator.api_url}/users.json"
    assert HTTP.get(url, headers={"X-AUTH-TOKEN": simulator.token}).status_code == 200
    assert HTTP.get(url, params={"accessToken": simulator.token}).status_code == 200
    with httpx.Client(cookies={"c_user": simulator.token}) as with_cookie:
        assert with_cookie.get(url).status_code == 200


@pytest.mark.parametrize("headers", [{}, {"X-AUTH-TOKEN": "wrong"}])
def test_missing_or_wrong_token_is_401(simulator: SimulatorHandle, headers: dict) -> None:
    response = HTTP.get(f"{simulator.api_url}/contacts.json", headers=headers)
    assert response.status_code == 401
    assert response.json()["result"] is None


def test_login_only_token_then_refresh_rotates(simulator: SimulatorHandle) -> None:
    login = f"{simulator.api_url}/login.json"
    body = {"username": "api", "password": "sim-password", "only_token": 1}
    token = HTTP.post(login, json=body).json()["result"]
    assert isinstance(token, str)
    assert HTTP.get(f"{simulator.api_url}/whoim.json", headers={"X-AUTH-TOKEN": token}).status_code == 200
    full = HTTP.post(login, data={"username": "api", "password": "sim-password"}).json()["result"]
    assert set(full) == {"accessToken", "refreshToken", "accessTokenExpirationDate"}
    assert DATETIME.match(full["accessTokenExpirationDate"])
    rotated = HTTP.put(login, json={"refreshToken": full["refreshToken"]}).json()["result"]
    assert rotated["accessToken"] != full["accessToken"]
    assert HTTP.put(login, json={"refreshToken": full["refreshToken"]}).status_code == 401
    assert HTTP.post(login, json={"username": "api", "password": "nope"}).status_code == 401


def test_login_tokens_expire() -> None:
    with run_simulator(seed=None, login_token_ttl_s=-1) as sim:
        token = HTTP.post(f"{sim.api_url}/login.json?username=api&password=sim-password&only_token=1").json()
        response = HTTP.get(f"{sim.api_url}/whoim.json", headers={"X-AUTH-TOKEN": token["result"]})
        assert response.status_code == 401


def test_forbidden_model_is_403() -> None:
    with run_simulator(seed=None, forbidden_models=("tickets",)) as sim:
        headers = {"X-AUTH-TOKEN": sim.token}
        assert HTTP.get(f"{sim.api_url}/tickets.json", headers=headers).status_code == 403
        assert HTTP.get(f"{sim.api_url}/users.json", headers=headers).status_code == 200


# ---------------------------------------------------------------- routes and envelopes


def test_list_envelope_shape(simulator_client: httpx.Client) -> None:
    body = simulator_client.get("/queues.json").json()
    assert set(body) == {"error", "result", "_time", "_timezone"}
    assert body["error"] == [] and body["_timezone"] == "Europe/Prague" and DATETIME.match(body["_time"])
    assert body["result"]["total"] == 7 and len(body["result"]["data"]) == 7
    assert all(q["_sys"]["model"] == "queues" and isinstance(q["name"], int) for q in body["result"]["data"])


def test_unknown_model_missing_suffix_and_unknown_record_are_404(simulator_client: httpx.Client) -> None:
    assert simulator_client.get("/widgets.json").status_code == 404
    assert simulator_client.get("/contacts").status_code == 404
    missing = simulator_client.get("/contacts/nobody.json")
    assert missing.status_code == 404 and missing.json()["error"] == "Object not exist"
    assert simulator_client.put("/contacts/nobody.json", json={"title": "x"}).status_code == 404
    assert simulator_client.delete("/contacts/nobody.json").status_code == 404


def test_not_found_error_list_form() -> None:
    with run_simulator(seed=None, not_found_error_form="list") as sim:
        response = HTTP.get(f"{sim.api_url}/contacts/x.json", headers={"X-AUTH-TOKEN": sim.token})
        assert response.json()["error"] == ["Object not exist"]


def test_names_with_dot_at_and_slash_are_url_decoded(
    simulator: SimulatorHandle, simulator_client: httpx.Client
) -> None:
    for name in ("activities_abc.123", "a@b.cz", "x/y"):
        simulator.insert("contacts", new_contact(name=name))
        encoded = name.replace(".", "%2E").replace("@", "%40").replace("/", "%2F")
        response = simulator_client.get(httpx.URL(f"{simulator.api_url}/contacts/{encoded}.json"))
        assert response.status_code == 200 and response.json()["result"]["name"] == name


def test_robustness_switches() -> None:
    with run_simulator(seed=None, total_as_string=True, data_as_object=True, omit_timezone=True) as sim:
        body = HTTP.get(f"{sim.api_url}/statuses.json", headers={"X-AUTH-TOKEN": sim.token}).json()
        assert body["result"]["total"] == "4"
        assert set(body["result"]["data"]) == {r["name"] for r in body["result"]["data"].values()}
        assert "_timezone" not in body


def test_whoim_returns_the_token_user(simulator_client: httpx.Client) -> None:
    assert simulator_client.get("/whoim.json").json()["result"]["name"] == "api"


# ---------------------------------------------------------------- records on read


def test_demo_records_expand_relations_and_use_quirks(demo_simulator: SimulatorHandle) -> None:
    headers = {"X-AUTH-TOKEN": demo_simulator.token}
    params = {"filter[field]": "account", "filter[operator]": "isnotnull", "take": 1}
    contact = HTTP.get(f"{demo_simulator.api_url}/contacts.json", headers=headers, params=params)
    record = contact.json()["result"]["data"][0]
    assert record["database"]["name"] == "default"
    assert set(record["account"]) >= {"name", "title", "customFields", "_sys"}
    assert {"name", "email", "emailAuth"} <= set(record["user"])
    assert record["_sys"]["cfScheme"]["email"]["type"] == "EMAIL"
    assert record["_sys"]["cfScheme"]["number"]["type"] == "PHONE"
    assert isinstance(record["customFields"]["email"], list)
    activity = HTTP.get(
        f"{demo_simulator.api_url}/activities.json",
        headers=headers,
        params={"filter[field]": "type", "filter[value]": "CALL", "take": 1},
    ).json()["result"]
    act = activity["data"][0]
    assert act["customFields"] == [] and act["queue"]["name"] == 3001
    assert act["item"]["id_call"] and act["item"]["id_queue"]["name"] == 3001
    assert "edited" not in act


def test_demo_seed_covers_every_channel_open_and_closed(demo_simulator: SimulatorHandle) -> None:
    activities = demo_simulator.all("activities")
    assert {a["type"] for a in activities} == {"CALL", "EMAIL", "CHAT", "SMS", "FBM", "WAP", "VBR"}
    assert any(a["action"] == "OPEN" and a["time_close"] is None for a in activities)
    assert any(a["action"] == "CLOSE" and a["time_close"] for a in activities)
    today = demo_simulator.state.now()[:10]
    for activity_type in ("CALL", "EMAIL", "CHAT", "SMS", "FBM", "WAP", "VBR"):
        assert any(a["type"] == activity_type and a["time"][:10] == today for a in activities)
    assert demo_simulator.count("users") == 8 and demo_simulator.count("queues") == 7


def test_demo_seed_is_deterministic_per_seed_string() -> None:
    def contact_names(seed: str) -> list[str]:
        with run_simulator(seed=seed) as sim:
            return sorted(c["title"] + c["name"] for c in sim.all("contacts"))

    assert contact_names("demo") == contact_names("demo")
    assert contact_names("demo") != contact_names("other")


def test_relation_route_lists_activities_of_a_record(demo_simulator: SimulatorHandle) -> None:
    activity = demo_simulator.all("activities")[0]
    contact = activity["contact"]["name"]
    headers = {"X-AUTH-TOKEN": demo_simulator.token}
    result = HTTP.get(f"{demo_simulator.api_url}/contacts/{contact}/activities.json", headers=headers).json()
    expected = sorted(a["name"] for a in demo_simulator.all("activities") if a["contact"]["name"] == contact)
    assert sorted(a["name"] for a in result["result"]["data"]) == expected and result["result"]["total"] == len(
        expected
    )
    queue = HTTP.get(f"{demo_simulator.api_url}/queues/3002/activities.json", headers=headers).json()
    assert queue["result"]["total"] == 5
    assert HTTP.get(f"{demo_simulator.api_url}/contacts/nobody/activities.json", headers=headers).status_code == 404


# ---------------------------------------------------------------- writes


def test_post_returns_201_full_record_with_generated_name(simulator_client: httpx.Client) -> None:
    response = simulator_client.post(
        "/contacts.json", json=new_contact(user="jan.novak", customFields={"email": ["a@b.cz"]})
    )
    assert response.status_code == 201
    record = response.json()["result"]
    assert re.match(r"^contacts_[0-9a-f]+$", record["name"])
    assert record["user"]["name"] == "jan.novak" and record["database"]["title"]
    assert record["customFields"] == {"email": ["a@b.cz"]}
    assert DATETIME.match(record["created"]) and record["created"] == record["edited"]
    assert record["_sys"]["hash"] is not None


def test_integer_names_for_queues_and_tickets(simulator_client: httpx.Client) -> None:
    assert simulator_client.post("/queues.json", json={"title": "New"}).json()["result"]["name"] == 3008
    ticket = simulator_client.post("/tickets.json", json={"title": "T"}).json()["result"]
    assert ticket["name"] == 1 and ticket["customFields"] == []


def test_put_is_partial_and_bumps_edited(simulator: SimulatorHandle, simulator_client: httpx.Client) -> None:
    simulator.insert(
        "contacts",
        new_contact(
            name="c1",
            firstname="Jana",
            edited="2020-01-01 00:00:00",
            created="2020-01-01 00:00:00",
            customFields={"email": ["a@b.cz"], "number": ["+420"]},
        ),
    )
    response = simulator_client.put("/contacts/c1.json", json={"customFields": {"number": ["+421"]}})
    assert response.status_code == 200
    record = response.json()["result"]
    assert record["firstname"] == "Jana" and record["title"] == "Jana Nová"
    assert record["customFields"] == {"email": ["a@b.cz"], "number": ["+421"]}
    assert record["edited"] > "2020-01-01 00:00:00" and record["created"] != record["edited"]


def test_put_custom_fields_replace_mode() -> None:
    with run_simulator(seed=None, custom_fields_put="replace") as sim:
        sim.insert("contacts", new_contact(name="c1", customFields={"email": ["a@b.cz"], "number": ["+420"]}))
        response = HTTP.put(
            f"{sim.api_url}/contacts/c1.json",
            headers={"X-AUTH-TOKEN": sim.token},
            json={"customFields": {"number": ["+421"]}},
        )
        assert response.json()["result"]["customFields"] == {"number": ["+421"]}


def test_delete_is_204_empty(simulator: SimulatorHandle, simulator_client: httpx.Client) -> None:
    simulator.insert("accounts", {"name": "acme", "title": "ACME", "database": "default"})
    response = simulator_client.delete("/accounts/acme.json")
    assert response.status_code == 204 and response.content == b""
    assert simulator.get("accounts", "acme") is None


@pytest.mark.parametrize(
    ("body", "form_keys"),
    [
        ({"firstname": "x"}, {"title", "lastname", "database"}),
        (new_contact(user="nobody"), {"user"}),
        (new_contact(account="nope", database="nope"), {"account", "database"}),
        (new_contact(customFields={"email": ["not-an-email"]}), {"customFields"}),
    ],
)
def test_contact_validation_is_400_form_with_echo(
    simulator: SimulatorHandle, simulator_client: httpx.Client, body: dict, form_keys: set
) -> None:
    response = simulator_client.post("/contacts.json", json=body)
    assert response.status_code == 400
    payload = response.json()
    assert set(payload["error"]["form"]) == form_keys
    assert payload["result"]["_sys"]["hash"] is None
    assert simulator.count("contacts") == 0
    if "customFields" in form_keys:
        assert isinstance(payload["error"]["form"]["customFields"]["email"], list)


def test_account_validation_and_duplicate_name(simulator_client: httpx.Client) -> None:
    assert set(simulator_client.post("/accounts.json", json={}).json()["error"]["form"]) == {"title", "database"}
    body = {"name": "acme", "title": "ACME", "database": "default"}
    assert simulator_client.post("/accounts.json", json=body).status_code == 201
    duplicate = simulator_client.post("/accounts.json", json=body)
    assert duplicate.status_code == 400 and set(duplicate.json()["error"]["form"]) == {"name"}


def test_put_validation_keeps_stored_record(simulator: SimulatorHandle, simulator_client: httpx.Client) -> None:
    simulator.insert("contacts", new_contact(name="c1"))
    response = simulator_client.put("/contacts/c1.json", json={"title": "", "user": "ghost"})
    assert response.status_code == 400
    assert set(response.json()["error"]["form"]) == {"title", "user"}
    assert simulator.get("contacts", "c1")["title"] == "Jana Nová"


def test_relation_objects_accepted_on_write(simulator_client: httpx.Client) -> None:
    body = new_contact(user={"name": "jan.novak", "title": "whatever"}, database={"name": "default"})
    assert simulator_client.post("/contacts.json", json=body).json()["result"]["user"]["name"] == "jan.novak"


def test_malformed_body_is_400(simulator_client: httpx.Client) -> None:
    response = simulator_client.post(
        "/contacts.json", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert simulator_client.post("/contacts.json", json=["a"]).status_code == 400


def test_czech_locale_messages() -> None:
    with run_simulator(seed=None, locale="cs") as sim:
        response = HTTP.post(f"{sim.api_url}/contacts.json", headers={"X-AUTH-TOKEN": sim.token}, json={})
        assert response.json()["error"]["form"]["lastname"] == "Vstup je povinný"


def test_activity_post_creates_channel_record(simulator: SimulatorHandle, simulator_client: httpx.Client) -> None:
    body = {"type": "CALL", "queue": 3001, "user": "jan.novak", "title": "Hovor", "time": "2024-05-01 10:00:00"}
    response = simulator_client.post("/activities.json", json=body)
    assert response.status_code == 201
    record = response.json()["result"]
    assert record["action"] == "OPEN" and record["time"] == "2024-05-01 10:00:00"
    assert record["item"]["call_time"] == "2024-05-01 10:00:00"
    assert simulator.count("activitiesCall") == 1
    assert simulator_client.post("/activities.json", json={**body, "queue": 99}).status_code == 400


def test_activities_chat_alias_and_date_filter_rejection() -> None:
    with run_simulator(seed="demo", reject_activity_date_filters=True) as sim:
        headers = {"X-AUTH-TOKEN": sim.token}
        alias = HTTP.get(f"{sim.api_url}/activitiesChat.json", headers=headers).json()["result"]
        assert alias["total"] == 5
        params = {"filter[field]": "time", "filter[operator]": "gte", "filter[value]": "2020-01-01"}
        assert HTTP.get(f"{sim.api_url}/activities.json", headers=headers, params=params).status_code == 400
        assert (
            HTTP.get(
                f"{sim.api_url}/contacts.json", headers=headers, params={**params, "filter[field]": "edited"}
            ).status_code
            == 200
        )


def test_close_activity_sets_close_fields(demo_simulator: SimulatorHandle) -> None:
    open_one = next(a for a in demo_simulator.all("activities") if a["action"] == "OPEN")
    closed = demo_simulator.close_activity(open_one["name"])
    assert closed["action"] == "CLOSE" and DATETIME.match(closed["time_close"])
    assert closed["duration"] >= 0
