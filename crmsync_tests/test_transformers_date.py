"""``date_format``: PHP format letters, explicit zones, no current-time leaks, strict failures."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from crmsync_pipelines.mapping import TransformerRegistry
from crmsync_pipelines.mapping.transformers.phpdate import compile_parser, compile_renderer

REGISTRY = TransformerRegistry.with_defaults()


def fmt(value: Any, **params: Any) -> Any:
    return REGISTRY.compile("date_format", params)(value)


@pytest.mark.parametrize(
    ("value", "params", "expected"),
    [
        # defaults: from Y-m-d H:i:s to Y-m-d
        ("2025-01-15 10:30:00", {}, "2025-01-15"),
        ("2025-01-15 10:30:00", {"to": "d.m.Y H:i"}, "15.01.2025 10:30"),
        ("15.01.2025", {"from": "d.m.Y", "to": "Y-m-d H:i:s"}, "2025-01-15 00:00:00"),  # W25: midnight, not now
        ("2025-01-15", {"from": "Y-m-d", "to": "c"}, "2025-01-15T00:00:00+00:00"),
        ("1/5/25 3:07 pm", {"from": "n/j/y g:i a", "to": "Y-m-d H:i"}, "2025-01-05 15:07"),
        ("12:00 AM 2025-01-05", {"from": "h:i A Y-m-d", "to": "Y-m-d H:i"}, "2025-01-05 00:00"),
        ("Wed, 15 Jan 2025 10:30:00 +0100", {"from": "D, d M Y H:i:s O", "to": "c"}, "2025-01-15T10:30:00+01:00"),
        ("1736937000", {"from": "U", "to": "c"}, "2025-01-15T10:30:00+00:00"),
        (1736937000, {"from": "U", "to": "Y-m-d H:i:s", "to_tz": "Europe/Prague"}, "2025-01-15 11:30:00"),
        ("2025-01-15 10:30:00.123456", {"from": "Y-m-d H:i:s.u", "to": "H:i:s.v u"}, "10:30:00.123 123456"),
        ("2025-01-15T10:30:00+02:00", {"from": "c", "to": "Y-m-d H:i:s P"}, "2025-01-15 10:30:00 +02:00"),
        (
            "2025-01-15 10:30 Europe/Prague",
            {"from": "Y-m-d H:i e", "to": "c", "to_tz": "UTC"},
            "2025-01-15T09:30:00+00:00",
        ),
        ("15 January 2025", {"from": "j F Y"}, "2025-01-15"),
        (
            "2025-01-15 10:30:00 at the office",
            {"from": "Y-m-d H:i:s \\a\\t \\t\\h\\e \\o\\f\\f\\i\\c\\e"},
            "2025-01-15",
        ),
        # the Daktela case: naive instance-local time -> UTC ISO-8601 (summer and winter offsets)
        ("2026-03-01 10:00:00", {"from_tz": "Europe/Prague", "to": "c", "to_tz": "UTC"}, "2026-03-01T09:00:00+00:00"),
        ("2026-07-01 10:00:00", {"from_tz": "Europe/Prague", "to": "c", "to_tz": "UTC"}, "2026-07-01T08:00:00+00:00"),
        ("2026-07-01 10:00:00", {"from_tz": "Europe/Prague", "to": "c"}, "2026-07-01T10:00:00+02:00"),
        ("2026-07-01 10:00:00", {"to": "c"}, "2026-07-01T10:00:00+00:00"),  # no zone given: UTC, never the host's
        # ISO-8601 input is accepted whatever "from" says
        ("2025-01-15T10:30:00Z", {"to": "Y-m-d H:i:s", "to_tz": "Europe/Prague"}, "2025-01-15 11:30:00"),
        ("2025-01-15T10:30:00.5+00:00", {"to": "Y-m-d H:i:s.v"}, "2025-01-15 10:30:00.500"),
        ("2025-01-15", {"to": "Y-m-d H:i:s"}, "2025-01-15 00:00:00"),
        ("2025-01-15T10:30", {"to": "Y-m-d H:i:s"}, "2025-01-15 10:30:00"),
        # unambiguous human forms
        ("January 15, 2025", {}, "2025-01-15"),
        ("Jan 5, 2025", {}, "2025-01-05"),
        ("15. 1. 2025", {}, "2025-01-15"),
        ("15.1.2025 8:05", {"to": "Y-m-d H:i"}, "2025-01-15 08:05"),
        ("2025/01/15", {}, "2025-01-15"),
        # date and datetime objects
        (date(2025, 1, 15), {"to": "c"}, "2025-01-15T00:00:00+00:00"),
        (
            datetime(2025, 1, 15, 10, 30),
            {"from_tz": "Europe/Prague", "to": "c", "to_tz": "UTC"},
            "2025-01-15T09:30:00+00:00",
        ),
        (datetime(2025, 1, 15, 10, 30, tzinfo=UTC), {"to": "H:i T", "to_tz": "Europe/Prague"}, "11:30 CET"),
        # empty values pass through
        (None, {}, None),
        ("", {}, ""),
    ],
)
def test_date_format(value: Any, params: dict[str, Any], expected: Any) -> None:
    assert fmt(value, **params) == expected


@pytest.mark.parametrize(
    ("value", "params", "message"),
    [
        ("now", {}, "cannot parse 'now' as a date"),
        ("tomorrow", {}, "cannot parse 'tomorrow' as a date"),
        ("+1 day", {}, "cannot parse"),
        ("2025-13-01 10:00:00", {}, "'2025-13-01 10:00:00' is not a real date or time: month must be in 1..12"),
        ("2025-02-30", {"from": "Y-m-d"}, "'2025-02-30' is not a real date or time: day is out of range for month"),
        ("01/02/2025", {}, "cannot parse '01/02/2025' as a date (format 'Y-m-d H:i:s' or ISO-8601)"),  # ambiguous
        ("   ", {}, "cannot parse"),
        (1736937000, {}, "expected a date string, got int"),
        (True, {"from": "U"}, "expected a date string, got bool"),
        ({"date": "2025-01-15"}, {}, "expected a date string, got dict"),  # a list is converted element-wise
    ],
)
def test_unparseable_values_raise(value: Any, params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        fmt(value, **params)


PRAGUE = ZoneInfo("Europe/Prague")


@pytest.mark.parametrize(
    ("letters", "moment", "expected"),
    [
        ("Y y m n d j", datetime(2024, 2, 9, tzinfo=UTC), "2024 24 02 2 09 9"),
        ("D l N w z", datetime(2024, 2, 4, tzinfo=UTC), "Sun Sunday 7 0 34"),
        ("F M t L", datetime(2024, 2, 9, tzinfo=UTC), "February Feb 29 1"),
        ("t L", datetime(2023, 2, 9, tzinfo=UTC), "28 0"),
        ("W o", datetime(2021, 1, 3, tzinfo=UTC), "53 2020"),
        ("jS jS jS jS jS", datetime(2024, 1, 1, tzinfo=UTC), "1st 1st 1st 1st 1st"),
        ("S", datetime(2024, 1, 12, tzinfo=UTC), "th"),
        ("S S", datetime(2024, 1, 22, tzinfo=UTC), "nd nd"),
        ("G g h H A a", datetime(2024, 1, 1, 0, 5, tzinfo=UTC), "0 12 12 00 AM am"),
        ("G g h H A a", datetime(2024, 1, 1, 13, 5, tzinfo=UTC), "13 1 01 13 PM pm"),
        ("i s u v", datetime(2024, 1, 1, 0, 5, 9, 42_000, tzinfo=UTC), "05 09 042000 042"),
        ("e T P O p Z I", datetime(2024, 7, 1, 12, tzinfo=PRAGUE), "Europe/Prague CEST +02:00 +0200 +02:00 7200 1"),
        ("e T P p I", datetime(2024, 1, 1, 12, tzinfo=PRAGUE), "Europe/Prague CET +01:00 +01:00 0"),
        ("e T p", datetime(2024, 1, 1, 12, tzinfo=UTC), "UTC UTC Z"),
        ("e T O", datetime(2024, 1, 1, 12, tzinfo=timezone(timedelta(hours=-5, minutes=-30))), "-05:30 -05:30 -0530"),
        ("c", datetime(2024, 1, 1, 12, tzinfo=PRAGUE), "2024-01-01T12:00:00+01:00"),
        ("r", datetime(2024, 1, 1, 12, tzinfo=PRAGUE), "Mon, 01 Jan 2024 12:00:00 +0100"),
        ("U", datetime(2024, 1, 1, 1, tzinfo=PRAGUE), "1704067200"),
        ("\\Y\\-m \\\\", datetime(2024, 3, 1, tzinfo=UTC), "Y-03 \\"),
        ("Y-m-d, č", datetime(2024, 3, 1, tzinfo=UTC), "2024-03-01, č"),
        ("---", datetime(2024, 3, 1, tzinfo=UTC), "---"),
    ],
)
def test_renderer_letters(letters: str, moment: datetime, expected: str) -> None:
    assert compile_renderer(letters)(moment) == expected


def test_parser_reports_time_part() -> None:
    assert compile_parser("Y-m-d").has_time is False
    assert compile_parser("Y-m-d H:i").has_time is True
    # PHP: m and d take one or two digits
    assert compile_parser("Y-m-d").parse("2025-1-15") == datetime(2025, 1, 15)
    assert compile_parser("Y-m-d").parse("2025-1-15 x") is None


def test_result_does_not_depend_on_the_host_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    results = []
    for zone in ("UTC", "America/New_York", "Asia/Tokyo"):
        monkeypatch.setenv("TZ", zone)
        time.tzset()
        results.append(fmt("2026-01-15 10:00:00", from_tz="Europe/Prague", to="c", to_tz="UTC"))
        results.append(fmt("2026-01-15 10:00:00", to="c"))
    monkeypatch.delenv("TZ")
    time.tzset()
    assert set(results) == {"2026-01-15T09:00:00+00:00", "2026-01-15T10:00:00+00:00"}
