"""Query parsing, filters (all encodings, every operator), sorting, paging and projection."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from crmsync_pipelines.phpquery import parse_query
from crmsync_pipelines.simulator import SimulatorHandle, run_simulator


def test_php_query_parses_encoded_and_raw_brackets_identically() -> None:
    raw = "filter[filters][0][field]=edited&filter[filters][0][value][0]=a&filter[filters][0][value][1]=b&take=5"
    encoded = raw.replace("[", "%5B").replace("]", "%5D")
    expected = {"filter": {"filters": [{"field": "edited", "value": ["a", "b"]}]}, "take": "5"}
    assert parse_query(raw) == expected
    assert parse_query(encoded) == expected


def test_php_query_appends_empty_brackets_and_decodes_plus() -> None:
    assert parse_query("fields[]=name&fields[]=title&q=a+b%20c") == {"fields": ["name", "title"], "q": "a b c"}


ROWS: list[dict[str, Any]] = [
    {
        "name": "c1",
        "title": "Alice Nováková",
        "lastname": "Nováková",
        "firstname": "Alice",
        "edited": "2024-05-01 08:00:00",
        "user": "jan.novak",
        "nps_score": 5,
        "customFields": {"email": ["alice@example.cz", "a2@example.cz"], "number": ["+420111"]},
    },
    {
        "name": "c2",
        "title": "Bob Dvořák",
        "lastname": "Dvořák",
        "firstname": "Bob",
        "edited": "2024-05-02 09:30:00",
        "user": "petra.svobodova",
        "nps_score": 7,
        "customFields": {"email": ["bob@example.cz"]},
    },
    {
        "name": "c3",
        "title": "carol 100%",
        "lastname": "Černá",
        "firstname": None,
        "edited": "2024-05-03 10:00:00",
        "user": None,
        "nps_score": 9,
        "customFields": {},
    },
    {
        "name": "c4",
        "title": "Dan_X",
        "lastname": "Horák",
        "firstname": "Dan",
        "edited": "2024-05-03 10:00:00",
        "user": "jan.novak",
        "nps_score": 1,
        "customFields": {"number": ["+420444"]},
    },
]


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorHandle]:
    with run_simulator(seed=None) as handle:
        for row in ROWS:
            handle.insert("contacts", {**row, "database": "default"})
        handle.insert("accounts", {"name": "acme", "title": "ACME", "database": "default"})
        handle.update_record("contacts", "c2", {"account": "acme", "edited": "2024-05-02 09:30:00"})
        yield handle


@pytest.fixture(scope="module")
def client(sim: SimulatorHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.api_url, headers={"X-AUTH-TOKEN": sim.token}) as http:
        yield http


def names(client: httpx.Client, params: Any) -> list[str]:
    response = client.get("/contacts.json", params=params)
    assert response.status_code == 200, response.text
    return sorted(r["name"] for r in response.json()["result"]["data"])


def single(field: str, operator: str, value: Any = None, **extra: str) -> dict[str, Any]:
    params: dict[str, Any] = {"filter[field]": field, "filter[operator]": operator}
    if isinstance(value, list):
        params.update({f"filter[value][{i}]": v for i, v in enumerate(value)})
    elif value is not None:
        params["filter[value]"] = value
    params.update({f"filter[{k}]": v for k, v in extra.items()})
    return params


@pytest.mark.parametrize(
    ("field", "operator", "value", "expected"),
    [
        ("name", "eq", "c2", ["c2"]),
        ("name", "neq", "c2", ["c1", "c3", "c4"]),
        ("edited", "gt", "2024-05-02 09:30:00", ["c3", "c4"]),
        ("edited", "gte", "2024-05-02 09:30:00", ["c2", "c3", "c4"]),
        ("edited", "lt", "2024-05-02", ["c1"]),
        ("edited", "lte", "2024-05-02T09:30:00", ["c1", "c2"]),
        ("nps_score", "gt", "5", ["c2", "c3"]),
        ("title", "like", "%NOVÁ%", ["c1"]),
        ("title", "like", "alice%", ["c1"]),
        ("title", "notlike", "%o%", ["c4"]),
        ("name", "in", ["c1", "c3"], ["c1", "c3"]),
        ("name", "notin", ["c1", "c3"], ["c2", "c4"]),
        ("firstname", "isnull", None, ["c3"]),
        ("firstname", "isnotnull", None, ["c1", "c2", "c4"]),
        ("user", "isnull", "", ["c3"]),
        ("title", "contains", "100%", ["c3"]),
        ("title", "doesnotcontain", "a", ["c2"]),
        ("title", "startswith", "Dan_", ["c4"]),
        ("title", "begins", "Bob", ["c2"]),
        ("title", "notbegins", "Bob", ["c1", "c3", "c4"]),
        ("title", "endswith", "ák", ["c2"]),
        ("title", "ends", "%", ["c3"]),
        ("title", "notends", "%", ["c1", "c2", "c4"]),
        ("user", "eq", "jan.novak", ["c1", "c4"]),
        ("account", "eq", "acme", ["c2"]),
        ("user.title", "like", "Petra%", ["c2"]),
        ("customFields.email", "eq", "a2@example.cz", ["c1"]),
        ("customFields.email", "like", "%@example.cz", ["c1", "c2"]),
        ("customFields.email", "isnull", None, ["c3", "c4"]),
        ("customFields.number", "neq", "+420111", ["c2", "c3", "c4"]),
    ],
)
def test_single_filter_operators(client: httpx.Client, field: str, operator: str, value: Any, expected: list) -> None:
    assert names(client, single(field, operator, value)) == expected


def test_ignore_case_on_eq(client: httpx.Client) -> None:
    assert names(client, single("lastname", "eq", "dvořák")) == []
    assert names(client, single("firstname", "eq", "BOB", ignoreCase="true")) == ["c2"]
    assert names(client, single("lastname", "eq", "DVOŘÁK", ignoreCase="true")) == ["c2"]


def test_nested_group_with_or_subgroup(client: httpx.Client) -> None:
    params = {
        "filter[logic]": "and",
        "filter[filters][0][field]": "edited",
        "filter[filters][0][operator]": "gte",
        "filter[filters][0][value]": "2024-05-02 00:00:00",
        "filter[filters][1][logic]": "or",
        "filter[filters][1][filters][0][field]": "user",
        "filter[filters][1][filters][0][operator]": "eq",
        "filter[filters][1][filters][0][value]": "jan.novak",
        "filter[filters][1][filters][1][field]": "user",
        "filter[filters][1][filters][1][operator]": "isnull",
    }
    assert names(client, params) == ["c3", "c4"]


def test_flat_indexed_filters_are_anded(client: httpx.Client) -> None:
    params = {
        "filter[0][field]": "edited",
        "filter[0][operator]": "gte",
        "filter[0][value]": "2024-05-02 00:00:00",
        "filter[1][field]": "edited",
        "filter[1][operator]": "lte",
        "filter[1][value]": "2024-05-02 23:59:59",
    }
    assert names(client, params) == ["c2"]


def test_raw_unencoded_brackets_are_accepted(client: httpx.Client, sim: SimulatorHandle) -> None:
    url = f"{sim.api_url}/contacts.json?filter[field]=name&filter[operator]=in&filter[value][0]=c4&filter[value][1]=c1"
    response = client.get(httpx.URL(url))
    assert sorted(r["name"] for r in response.json()["result"]["data"]) == ["c1", "c4"]


@pytest.mark.parametrize(
    "params",
    [
        single("bogus", "eq", "x"),
        single("name", "approx", "x"),
        single("nps_score", "eq", "many"),
        single("customFields", "eq", "x"),
        {"filter[logic]": "xor", "filter[filters][0][field]": "name", "filter[filters][0][value]": "c1"},
        {"sort[0][field]": "nope"},
        {"sort[0][field]": "name", "sort[0][dir]": "sideways"},
        {"take": "ten"},
        {"skip": "-1"},
        {"fields[0]": "nope"},
    ],
)
def test_bad_query_is_400_with_error_list(client: httpx.Client, params: dict[str, Any]) -> None:
    response = client.get("/contacts.json", params=params)
    assert response.status_code == 400
    body = response.json()
    assert body["result"] is None
    assert isinstance(body["error"], list) and body["error"]


def test_multi_key_sort(client: httpx.Client) -> None:
    params = {"sort[0][field]": "edited", "sort[0][dir]": "desc", "sort[1][field]": "name", "sort[1][dir]": "asc"}
    data = client.get("/contacts.json", params=params).json()["result"]["data"]
    assert [r["name"] for r in data] == ["c3", "c4", "c2", "c1"]
    params["sort[1][dir]"] = "desc"
    data = client.get("/contacts.json", params=params).json()["result"]["data"]
    assert [r["name"] for r in data] == ["c4", "c3", "c2", "c1"]


def test_unsorted_order_is_deterministic_but_not_insertion_order() -> None:
    rows = [{"name": f"n{i:03d}", "title": "t", "lastname": "l", "database": "default"} for i in range(50)]
    orders = []
    for _ in range(2):
        with run_simulator(seed=None) as handle:
            handle.insert_many("contacts", rows)
            with httpx.Client(base_url=handle.api_url, headers={"X-AUTH-TOKEN": handle.token}) as http:
                data = http.get("/contacts.json", params={"take": 50}).json()["result"]["data"]
            orders.append([r["name"] for r in data])
    assert orders[0] == orders[1]
    assert orders[0] != sorted(orders[0])


def test_paging_total_counts_before_skip_take(client: httpx.Client) -> None:
    params = {"sort[0][field]": "name", "skip": 1, "take": 2}
    result = client.get("/contacts.json", params=params).json()["result"]
    assert result["total"] == 4
    assert [r["name"] for r in result["data"]] == ["c2", "c3"]
    result = client.get("/contacts.json", params={**params, "skip": 4}).json()["result"]
    assert result == {"data": [], "total": 4}


def test_take_is_clamped_to_1000_or_rejected() -> None:
    rows = [{"name": f"n{i:04d}", "title": "t", "lastname": "l"} for i in range(1005)]
    with run_simulator(seed=None, default_take=3) as handle:
        handle.insert_many("contacts", rows)
        with httpx.Client(base_url=handle.api_url, headers={"X-AUTH-TOKEN": handle.token}) as http:
            assert len(http.get("/contacts.json", params={"take": 5000}).json()["result"]["data"]) == 1000
            assert len(http.get("/contacts.json").json()["result"]["data"]) == 3
    with (
        run_simulator(seed=None, take_max_mode="error") as handle,
        httpx.Client(base_url=handle.api_url, headers={"X-AUTH-TOKEN": handle.token}) as http,
    ):
        assert http.get("/contacts.json", params={"take": 1001}).status_code == 400
        assert http.get("/contacts.json", params={"take": 1000}).status_code == 200


def test_fields_projection_indexed_comma_and_dotted(client: httpx.Client) -> None:
    params = {
        "fields[0]": "name",
        "fields[1]": "customFields.email",
        "fields[2]": "user.title",
        "filter[field]": "name",
        "filter[value]": "c1",
    }
    data = client.get("/contacts.json", params=params).json()["result"]["data"]
    assert data == [
        {"name": "c1", "customFields": {"email": ["alice@example.cz", "a2@example.cz"]}, "user": {"title": "Jan Novák"}}
    ]
    data = client.get("/contacts.json", params={"fields": "name,edited", "sort[0][field]": "name", "take": 1})
    assert data.json()["result"]["data"] == [{"name": "c1", "edited": "2024-05-01 08:00:00"}]
    one = client.get("/contacts/c2.json", params={"fields[0]": "title"}).json()["result"]
    assert one == {"title": "Bob Dvořák"}


def test_full_text_search_q(client: httpx.Client) -> None:
    assert names(client, {"q": "bob@example"}) == ["c2"]


@pytest.mark.parametrize(("value", "expected"), [("true", 1), ("1", 1), ("false", 7), ("0", 7)])
def test_boolean_filters_accept_true_false_and_digits(
    client: httpx.Client, sim: SimulatorHandle, value: str, expected: int
) -> None:
    sim.update_record("users", "admin", {"deactivated": True})
    params = single("deactivated", "eq", value)
    assert client.get("/users.json", params=params).json()["result"]["total"] == expected
    sim.update_record("users", "admin", {"deactivated": False})


def test_integer_keyed_relation_filter(client: httpx.Client) -> None:
    result = client.get("/queues.json", params=single("name", "in", ["3001", "3007"])).json()["result"]
    assert sorted(q["name"] for q in result["data"]) == [3001, 3007]
