"""Pure-function parts of the Daktela package: filter encoding, normalization, flattening, timing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from crmsync_pipelines.daktela.activities import flatten_activity, type_code
from crmsync_pipelines.daktela.client import normalize_instance_url, parse_error_field, quote_name
from crmsync_pipelines.daktela.errors import (
    DaktelaAuthError,
    DaktelaNotFoundError,
    DaktelaServerError,
    DaktelaValidationError,
)
from crmsync_pipelines.daktela.filters import And, F, Or, encode_fields, encode_filter, encode_sort
from crmsync_pipelines.daktela.normalize import comparable, normalize_record
from crmsync_pipelines.daktela.ratelimit import TokenBucket
from crmsync_pipelines.daktela.retry import MIN_RETRY_AFTER_S, RetryPolicy, parse_retry_after
from crmsync_pipelines.errors import ErrorClass, classify


def test_single_condition_is_wrapped_in_an_and_group() -> None:
    assert encode_filter(F("edited", "gte", "2024-01-01 00:00:00")) == [
        ("filter[logic]", "and"),
        ("filter[filters][0][field]", "edited"),
        ("filter[filters][0][operator]", "gte"),
        ("filter[filters][0][value]", "2024-01-01 00:00:00"),
    ]


def test_nested_groups_lists_nulls_and_booleans() -> None:
    flt = And(
        F("stage", "in", ["OPEN", "WAIT"]),
        Or(F("user", "eq", "alice"), F("user", "isnull")),
        F("answered", "eq", True),
    )
    assert encode_filter(flt) == [
        ("filter[logic]", "and"),
        ("filter[filters][0][field]", "stage"),
        ("filter[filters][0][operator]", "in"),
        ("filter[filters][0][value][0]", "OPEN"),
        ("filter[filters][0][value][1]", "WAIT"),
        ("filter[filters][1][logic]", "or"),
        ("filter[filters][1][filters][0][field]", "user"),
        ("filter[filters][1][filters][0][operator]", "eq"),
        ("filter[filters][1][filters][0][value]", "alice"),
        ("filter[filters][1][filters][1][field]", "user"),
        ("filter[filters][1][filters][1][operator]", "isnull"),
        ("filter[filters][2][field]", "answered"),
        ("filter[filters][2][operator]", "eq"),
        ("filter[filters][2][value]", "true"),
    ]


def test_top_level_or_and_empty_sequences() -> None:
    assert encode_filter(Or(F("a", "eq", 1)))[0] == ("filter[logic]", "or")
    assert encode_filter([]) == []
    assert encode_filter(None) == []


@pytest.mark.parametrize(
    ("field", "operator", "value", "message"),
    [
        ("name", "equals", "x", "unknown filter operator"),
        ("name", "in", "abc", "needs a list"),
        ("name", "eq", None, "needs a single value"),
        ("name", "eq", ["a"], "needs a single value"),
        ("name", "isnull", "x", "takes no value"),
        ("", "eq", "x", "must not be empty"),
    ],
)
def test_bad_filters_fail_before_any_request(field: str, operator: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        F(field, operator, value)  # type: ignore[arg-type]


def test_sort_and_fields_encoding() -> None:
    assert encode_sort([("edited", "asc"), ("name", "desc")]) == [
        ("sort[0][field]", "edited"),
        ("sort[0][dir]", "asc"),
        ("sort[1][field]", "name"),
        ("sort[1][dir]", "desc"),
    ]
    assert encode_fields(["name", "customFields.email"]) == [("fields[0]", "name"), ("fields[1]", "customFields.email")]
    with pytest.raises(ValueError, match="asc"):
        encode_sort([("name", "up")])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="list of field names"):
        encode_fields("name")


def test_instance_url_and_name_quoting() -> None:
    assert normalize_instance_url("acme.daktela.com") == "https://acme.daktela.com"
    assert normalize_instance_url("http://127.0.0.1:8080/api/v6/") == "http://127.0.0.1:8080"
    assert normalize_instance_url("https://user:pw@acme.daktela.com") == "https://acme.daktela.com"
    with pytest.raises(ValueError, match="empty"):
        normalize_instance_url("  ")
    with pytest.raises(ValueError, match="http"):
        normalize_instance_url("ftp://acme")
    assert quote_name("activities_ab.cd/e@f g") == "activities_ab%2Ecd%2Fe%40f%20g"
    assert quote_name(9674) == "9674"


def test_error_field_shapes() -> None:
    assert parse_error_field([]) == ({}, [])
    assert parse_error_field("Object not exist") == ({}, ["Object not exist"])
    assert parse_error_field(["a", "b"]) == ({}, ["a", "b"])
    form = {"lastname": "Item is mandatory", "customFields": {"email": ["E-mail is not valid"]}}
    assert parse_error_field({"form": form, "primary": ["No device"]}) == (
        form,
        ["lastname: Item is mandatory", "customFields.email: E-mail is not valid", "No device"],
    )


def test_error_classes_map_to_the_shared_hierarchy() -> None:
    assert classify(DaktelaAuthError("x")) is ErrorClass.AUTH
    assert classify(DaktelaValidationError("x")) is ErrorClass.VALIDATION
    assert classify(DaktelaServerError("x")) is ErrorClass.TRANSIENT
    assert classify(DaktelaNotFoundError("x")) is ErrorClass.VALIDATION


def test_normalize_record_reduces_relations_and_custom_fields() -> None:
    raw = {
        "name": "contacts_1",
        "title": "Jan",
        "description": "",
        "account": {"name": "acme", "title": "Acme", "_sys": {}},
        "user": None,
        "statuses": [{"name": "s1", "title": "S1"}, {"name": "s2"}],
        "customFields": {"email": ["a@b.cz"], "number": "123", "note": [None], "web": None},
        "_sys": {"hash": "1", "model": "contacts"},
    }
    assert normalize_record(raw) == {
        "name": "contacts_1",
        "title": "Jan",
        "description": "",
        "account": "acme",
        "user": None,
        "statuses": ["s1", "s2"],
        "customFields": {"email": ["a@b.cz"], "number": ["123"], "note": [], "web": []},
    }
    assert normalize_record({"name": 9674, "customFields": []}) == {"name": "9674", "customFields": {}}


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (None, ""),
        ("", []),
        ([], {}),
        (["a@b.cz"], "a@b.cz"),
        (["b", "a"], ["a", "b"]),
        ("  Jan   Novák ", "Jan Novák"),
        ("2024-05-01T10:00", "2024-05-01 10:00:00"),
        (1, "1"),
        (1.0, 1),
        ({"name": "acme", "title": "Acme"}, "acme"),
        ({"email": ["x"], "number": []}, {"email": "x"}),
    ],
)
def test_comparable_equal(left: object, right: object) -> None:
    assert comparable(left) == comparable(right)


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("0420", "420"),
        ("1.0", 1),
        ("1e3", "1000"),
        (True, "1"),
        ("a", "b"),
        ({"email": "x", "number": "1"}, {"email": "x"}),
        ({"name": "n", "options": {}}, "n"),
    ],
)
def test_comparable_different(left: object, right: object) -> None:
    assert comparable(left) != comparable(right)


def test_flatten_call_activity() -> None:
    raw = {
        "name": "activities_1.2",
        "type": "CALL",
        "action": "CLOSE",
        "title": "Call",
        "time": "2024-05-01 10:00:00",
        "duration": 30,
        "queue": {"name": 3001, "title": "Line"},
        "user": {"name": "jan.novak", "title": "Jan", "email": "", "emailAuth": "jan@x.cz"},
        "contact": None,
        "ticket": "123",
        "record": None,
        "statuses": [{"name": "statuses_sale", "title": "Sale"}],
        "options": {"x": 1},
        "item": {"id_call": "c1", "direction": "IN", "answered": True, "id_queue": {"name": 3001}, "cdr": [1]},
        "customFields": [],
        "_sys": {},
    }
    row = flatten_activity(raw, "call")
    assert row == {
        "name": "activities_1.2",
        "id": "activities_1.2",
        "type": "CALL",
        "action": "CLOSE",
        "title": "Call",
        "time": "2024-05-01 10:00:00",
        "duration": 30,
        "statuses": ["statuses_sale"],
        "activity_type": "call",
        "queue_name": "3001",
        "queue_title": "Line",
        "user_name": "jan.novak",
        "user_title": "Jan",
        "user_email": "jan@x.cz",
        "user_login": "jan.novak",
        "contact_name": None,
        "contact_title": None,
        "ticket_name": "123",
        "ticket_title": None,
        "record_name": None,
        "record_title": None,
        "item_id_call": "c1",
        "item_direction": "IN",
        "item_answered": True,
        "item_id_queue_name": "3001",
        "direction": "in",
        "customFields": {},
    }
    assert flatten_activity({"name": "x", "type": "CHAT", "item": None})["activity_type"] == "web"
    with pytest.raises(ValueError, match="unknown activity type"):
        type_code("fax")


def test_retry_after_formats() -> None:
    now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("2", now=now) == 2.0
    assert parse_retry_after("0", now=now) == MIN_RETRY_AFTER_S
    assert parse_retry_after(format_datetime(now + timedelta(seconds=3), usegmt=True), now=now) == 3.0
    assert parse_retry_after(format_datetime(now - timedelta(hours=1), usegmt=True), now=now) == MIN_RETRY_AFTER_S
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None


def test_backoff_is_bounded_full_jitter() -> None:
    policy = RetryPolicy(backoff_base_s=0.5, backoff_max_s=4.0)
    delays = [policy.backoff_s(attempt) for attempt in range(10) for _ in range(20)]
    assert all(0 <= d <= 4.0 for d in delays)
    assert max(policy.backoff_s(0) for _ in range(50)) <= 0.5
    with pytest.raises(ValueError):
        RetryPolicy(max_retries=-1)


def test_token_bucket_paces_after_the_burst() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)

    bucket = TokenBucket(10.0, capacity=2, clock=lambda: now[0], sleep=sleep)
    waits = [bucket.acquire() for _ in range(4)]
    assert waits == [0.0, 0.0, pytest.approx(0.1), pytest.approx(0.2)]
    now[0] = 10.0  # a long pause refills up to the capacity only
    assert [bucket.acquire() for _ in range(3)] == [0.0, 0.0, pytest.approx(0.1)]
    with pytest.raises(ValueError):
        TokenBucket(0)
