"""``date_format`` reads PHP letters as ``DateTimeImmutable::createFromFormat`` does, and never rolls over.

Issue 9 section 2's examples first, then each letter of the PHP manual's createFromFormat
table, impossible dates, leap years, DST gaps and the ``instance`` zone keyword.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from crmsync_pipelines.mapping import RefusedValueError, TransformerRegistry
from crmsync_pipelines.mapping.instance import instance_timezone
from crmsync_pipelines.mapping.transformers.params import TransformerParamError

REGISTRY = TransformerRegistry.with_defaults()


def fmt(value: Any, **params: Any) -> Any:
    return REGISTRY.compile("date_format", params)(value)


# -- issue 9, section 2 ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "source", "expected"),
    [
        ("23.10.75", "d.m.y", "1975-10-23"),  # y pivots like PHP: 1970-2069
        ("1/2/2025", "d/m/Y", "2025-02-01"),  # d and m take one or two digits
    ],
)
def test_issue_examples(value: str, source: str, expected: str) -> None:
    assert fmt(value, **{"from": source, "to": "Y-m-d"}) == expected


def test_issue_impossible_date_is_refused_not_rolled_over() -> None:
    with pytest.raises(RefusedValueError) as info:
        fmt("2024-02-30", **{"from": "Y-m-d"})
    assert str(info.value) == "'2024-02-30' is not a real date or time: day is out of range for month"
    assert info.value.raw == "2024-02-30"


# -- every letter of the createFromFormat table ---------------------------------------------------

PARSED: list[tuple[str, str, str, str]] = [
    # y: two digits, 1970-2069
    ("23.10.69", "d.m.y", "Y-m-d", "2069-10-23"),
    ("23.10.70", "d.m.y", "Y-m-d", "1970-10-23"),
    ("01.01.00", "d.m.y", "Y-m-d", "2000-01-01"),
    ("31.12.99", "d.m.y", "Y-m-d", "1999-12-31"),
    # d j m n: one or two digits
    ("01/02/2025", "d/m/Y", "Y-m-d", "2025-02-01"),
    ("1/12/2025", "j/n/Y", "Y-m-d", "2025-12-01"),
    ("09.9.2025", "j.n.Y", "Y-m-d", "2025-09-09"),
    ("2025-1-5", "Y-m-d", "Y-m-d", "2025-01-05"),
    # numbers are read greedily and never given back, as PHP's parser does
    ("20250115", "Ymd", "Y-m-d", "2025-01-15"),
    ("2025115", "Ymd", "Y-m-d", "2025-11-05"),
    # Y: four digits (what is written, even an odd year)
    ("15.01.0025", "d.m.Y", "Y-m-d", "0025-01-15"),
    # F M: full or short month names, any case; D l: day names, checked against the date
    ("15 Sept 2025", "d M Y", "Y-m-d", "2025-09-15"),
    ("15 jan 2025", "d M Y", "Y-m-d", "2025-01-15"),
    ("15 January 2025", "d M Y", "Y-m-d", "2025-01-15"),
    ("Wed, 15 Jan 2025", "D, d M Y", "Y-m-d", "2025-01-15"),
    ("Wednesday 15 January 2025", "l d F Y", "Y-m-d", "2025-01-15"),
    ("wednesday 15 january 2025", "l d F Y", "Y-m-d", "2025-01-15"),
    # S: ignored; z: day of the year from 0, after a year
    ("15th January 2025", "jS F Y", "Y-m-d", "2025-01-15"),
    ("2025 045", "Y z", "Y-m-d", "2025-02-15"),
    ("2024 365", "Y z", "Y-m-d", "2024-12-31"),  # leap year
    ("2025 0", "Y z", "Y-m-d", "2025-01-01"),
    # G H g h: one or two digits; i s: exactly two; a A: am/pm in any case, with dots
    ("13:30 15.1.2025", "G:i j.n.Y", "Y-m-d H:i", "2025-01-15 13:30"),
    ("2025-01-15 7:05:09", "Y-m-d H:i:s", "H:i:s", "07:05:09"),
    ("1:30 pm 15.1.2025", "g:i a j.n.Y", "Y-m-d H:i", "2025-01-15 13:30"),
    ("12:30 A.M. 15.1.2025", "g:i A j.n.Y", "H:i", "00:30"),
    ("12:00 PM 2025-01-05", "h:i A Y-m-d", "H:i", "12:00"),
    ("05:45 Pm 2025-01-05", "h:i A Y-m-d", "H:i", "17:45"),
    ("12:30 2025-01-05", "g:i Y-m-d", "H:i", "12:30"),  # no meridian: the hour as written
    ("1736937000.25", "U.v", "c", "2025-01-15T10:30:00+00:00"),
    ("1736937000.25", "U.u", "Y-m-d H:i:s.v", "2025-01-15 10:30:00.250"),
    # v u: fractions ("12" is 0.12 s)
    ("1.5.2025 10:15:30.250", "j.n.Y H:i:s.v", "H:i:s.u", "10:15:30.250000"),
    ("1.5.2025 10:15:30.12", "j.n.Y H:i:s.v", "H:i:s.v", "10:15:30.120"),
    ("1.5.2025 10:15:30.45", "j.n.Y H:i:s.u", "H:i:s.u", "10:15:30.450000"),
    # e O P p T: any zone form for each letter
    ("2025-01-15 10:30:00 +02", "Y-m-d H:i:s O", "c", "2025-01-15T10:30:00+02:00"),
    ("2025-01-15 10:30:00 +0200", "Y-m-d H:i:s O", "c", "2025-01-15T10:30:00+02:00"),
    ("2025-01-15 10:30:00 +05:30", "Y-m-d H:i:s P", "c", "2025-01-15T10:30:00+05:30"),
    ("2025-01-15 10:30:00 -0330", "Y-m-d H:i:s P", "c", "2025-01-15T10:30:00-03:30"),
    ("2025-01-15 10:30:00 Z", "Y-m-d H:i:s p", "c", "2025-01-15T10:30:00+00:00"),
    ("2025-01-15 10:30:00 CEST", "Y-m-d H:i:s T", "c", "2025-01-15T10:30:00+02:00"),
    ("2025-01-15 10:30:00 EST", "Y-m-d H:i:s T", "c", "2025-01-15T10:30:00-05:00"),
    ("2025-01-15 10:30:00 GMT", "Y-m-d H:i:s T", "c", "2025-01-15T10:30:00+00:00"),
    ("2025-07-15 10:30:00 Europe/Prague", "Y-m-d H:i:s e", "c", "2025-07-15T10:30:00+02:00"),
    ("2025-07-15 10:30:00 America/New_York", "Y-m-d H:i:s T", "c", "2025-07-15T10:30:00-04:00"),
    # U: seconds since the epoch, negative too
    ("-86400", "U", "c", "1969-12-31T00:00:00+00:00"),
    ("0", "U", "c", "1970-01-01T00:00:00+00:00"),
    # separators and specials: # ? * ! | + and escapes
    ("2025/01/15", "Y#m#d", "Y-m-d", "2025-01-15"),
    ("2025(01)15", "Y#m#d", "Y-m-d", "2025-01-15"),
    ("2025x01x15", "Y?m?d", "Y-m-d", "2025-01-15"),
    ("2025-aWord-01-15", "Y-*-m-d", "Y-m-d", "2025-01-15"),
    ("2025-01-15", "!Y-m-d", "Y-m-d H:i:s", "2025-01-15 00:00:00"),
    ("2025-01-15", "Y-m-d|", "Y-m-d H:i:s", "2025-01-15 00:00:00"),
    ("2025-01-15 trailing data", "Y-m-d+", "Y-m-d", "2025-01-15"),
    ("2025-01-15T10:30:00", "Y-m-d\\TH:i:s", "c", "2025-01-15T10:30:00+00:00"),
    ("!2025-01-15", "\\!Y-m-d", "Y-m-d", "2025-01-15"),
    # a space matches any run of spaces, tabs and no-break spaces (PHP 8), or none
    ("2025-01-15  10:30:00", "Y-m-d H:i:s", "H:i", "10:30"),
    ("2025-01-15\t10:30:00", "Y-m-d H:i:s", "H:i", "10:30"),
    ("2025-01-15\u00a010:30:00", "Y-m-d H:i:s", "H:i", "10:30"),
    (" 2025-01-15 10:30:00 ", "Y-m-d H:i:s", "H:i", "10:30"),
    # leap years
    ("2024-02-29", "Y-m-d", "Y-m-d", "2024-02-29"),
    ("2000-02-29", "Y-m-d", "Y-m-d", "2000-02-29"),
    ("29.2.2028", "j.n.Y", "Y-m-d", "2028-02-29"),
]


@pytest.mark.parametrize(("value", "source", "target", "expected"), PARSED)
def test_php_letters(value: str, source: str, target: str, expected: str) -> None:
    assert fmt(value, **{"from": source, "to": target}) == expected


REFUSED: list[tuple[Any, dict[str, Any], str]] = [
    # impossible dates and times: PHP would roll them over; we refuse
    ("2023-02-29", {"from": "Y-m-d"}, "is not a real date or time: day is out of range for month"),
    ("2100-02-29", {"from": "Y-m-d"}, "day is out of range for month"),  # not a leap year
    ("2025-04-31", {"from": "Y-m-d"}, "day is out of range for month"),
    ("31.6.2025", {"from": "j.n.Y"}, "day is out of range for month"),
    ("2025-00-10", {"from": "Y-m-d"}, "month must be in 1..12"),
    ("2025-13-01", {"from": "Y-m-d"}, "month must be in 1..12"),
    ("2025-01-00", {"from": "Y-m-d"}, "day is out of range for month"),
    ("2025-01-32", {"from": "Y-m-d"}, "day is out of range for month"),
    ("2025-01-15 24:00:00", {}, "hour must be in 0..23"),
    ("2025-01-15 23:60:00", {}, "minute must be in 0..59"),
    ("2025-01-15 23:59:60", {}, "second must be in 0..59"),
    ("13:30 pm 15.1.2025", {"from": "g:i a j.n.Y"}, "12-hour clock hour 13 is not 1-12"),
    ("0:30 am 15.1.2025", {"from": "g:i a j.n.Y"}, "12-hour clock hour 0 is not 1-12"),
    ("2025 365", {"from": "Y z"}, "day of the year 365 is past the end of 2025"),
    ("Thu, 15 Jan 2025", {"from": "D, d M Y"}, "2025-01-15 is a Wednesday, not a Thursday"),
    ("15 Foo 2025", {"from": "d M Y"}, "unknown month name 'Foo'"),
    ("2025-01-15 10:30:00 Mars/Base", {"from": "Y-m-d H:i:s e"}, "unknown time zone 'Mars/Base'"),
    ("2025-01-15 10:30:00 +25:00", {"from": "Y-m-d H:i:s P"}, "offset '+25:00' is out of range"),
    ("31.2.2025", {}, "'31.2.2025' is not a real date or time"),  # a fallback layout, impossible too
    # layouts that do not follow the format: i and s take exactly two digits, Y four, y two
    ("2025-01-15 07:5:09", {}, "cannot parse '2025-01-15 07:5:09' as a date"),
    ("15.01.25", {"from": "d.m.Y"}, "cannot parse '15.01.25' as a date (format 'd.m.Y' or ISO-8601)"),
    ("15-01-2025", {"from": "d-m-y"}, "cannot parse"),
    ("123.10.2025", {"from": "d.m.Y"}, "cannot parse"),
    ("202511", {"from": "Ymd"}, "cannot parse"),  # PHP does not give digits back to fit the format
    ("2025-01-15 trailing", {"from": "Y-m-d"}, "cannot parse"),
    # relative words and ambiguous layouts
    ("now", {}, "cannot parse 'now' as a date"),
    ("01/02/2025", {}, "cannot parse '01/02/2025' as a date"),
    # out-of-range epochs and wrong types
    (99999999999999999, {"from": "U"}, "99999999999999999 is out of range for a Unix time"),
    ("99999999999999999", {"from": "U"}, "is not a real date or time"),
    (1736937000, {}, "expected a date string, got int 1736937000"),
]


@pytest.mark.parametrize(("value", "params", "message"), REFUSED)
def test_refused(value: Any, params: dict[str, Any], message: str) -> None:
    with pytest.raises(RefusedValueError, match=re.escape(message)):
        fmt(value, **params)


@pytest.mark.parametrize(("value", "params", "message"), REFUSED[:5])
def test_on_invalid_keep_and_drop(value: Any, params: dict[str, Any], message: str) -> None:
    assert fmt(value, on_invalid="keep", **params) == value
    assert fmt(value, on_invalid="drop", **params) is None


# -- zones: DST gaps refused, repeated hours are the first occurrence, the instance keyword ------


@pytest.mark.parametrize(
    ("value", "zone", "expected"),
    [
        ("2026-03-29 01:59:59", "Europe/Prague", "2026-03-29T00:59:59+00:00"),  # last second of winter time
        ("2026-03-29 03:00:00", "Europe/Prague", "2026-03-29T01:00:00+00:00"),  # first of summer time
        ("2026-10-25 02:30:00", "Europe/Prague", "2026-10-25T00:30:00+00:00"),  # repeated hour: the first one
        ("2026-10-25 03:30:00", "Europe/Prague", "2026-10-25T02:30:00+00:00"),
        ("2026-11-01 01:30:00", "America/New_York", "2026-11-01T05:30:00+00:00"),
        ("2026-07-01 10:00:00", "America/New_York", "2026-07-01T14:00:00+00:00"),
        ("2026-01-15 10:00:00", "America/New_York", "2026-01-15T15:00:00+00:00"),
    ],
)
def test_local_times_across_dst(value: str, zone: str, expected: str) -> None:
    assert fmt(value, from_tz=zone, to="c", to_tz="UTC") == expected


@pytest.mark.parametrize(
    ("value", "zone"),
    [("2026-03-29 02:30:00", "Europe/Prague"), ("2026-03-08 02:00:00", "America/New_York")],
)
def test_a_local_time_skipped_by_dst_is_refused(value: str, zone: str) -> None:
    with pytest.raises(RefusedValueError, match=re.escape(f"{value} does not exist in {zone}")):
        fmt(value, from_tz=zone, to="c", to_tz="UTC")


@pytest.mark.parametrize(
    ("zone", "expected"),
    [("America/New_York", "2026-07-01T14:00:00+00:00"), ("Europe/Prague", "2026-07-01T08:00:00+00:00")],
)
def test_instance_keyword_reads_the_zone_given_at_compile_time(zone: str, expected: str) -> None:
    with instance_timezone(zone):
        transform = REGISTRY.compile("date_format", {"from_tz": "instance", "to": "c", "to_tz": "UTC"})
    assert transform("2026-07-01 10:00:00") == expected


def test_instance_keyword_as_target_zone() -> None:
    with instance_timezone("America/New_York"):
        transform = REGISTRY.compile("date_format", {"from": "c", "to": "Y-m-d H:i:s", "to_tz": "instance"})
    assert transform("2026-07-01T14:00:00+00:00") == "2026-07-01 10:00:00"


def test_instance_keyword_without_a_zone_refuses_each_value() -> None:
    transform = REGISTRY.compile("date_format", {"from_tz": "instance", "to": "c", "to_tz": "UTC"})
    with pytest.raises(RefusedValueError, match="the Daktela instance time zone is not known here"):
        transform("2026-07-01 10:00:00")
    assert transform(None) is None


# -- second review: the edges of the calendar are refused under the rule's policy ---------------


@pytest.mark.parametrize(
    ("value", "params"),
    [
        ("9999-12-31 23:59:59", {"to_tz": "Asia/Tokyo"}),  # UTC -> +09:00 passes year 9999
        ("0001-01-01 00:00:00", {"from_tz": "Europe/Prague"}),  # a local time before year 1 in UTC
        ("0001-01-01 00:00:00", {"to_tz": "America/New_York"}),
        ("9999-12-31T23:00:00-05:00", {"to_tz": "UTC"}),
    ],
)
def test_a_moment_outside_datetime_range_is_refused_not_a_crash(value: str, params: dict[str, Any]) -> None:
    message = f"{value!r} is out of the range of representable dates in its zones"
    with pytest.raises(RefusedValueError, match=re.escape(message)):
        fmt(value, to="c", **params)
    assert fmt(value, to="c", on_invalid="drop", **params) is None  # drop means null, not a failed record
    assert fmt(value, to="c", on_invalid="keep", **params) == value


@pytest.mark.parametrize(
    ("value", "source", "expected"),
    [
        ("Wed, 15 Jan 2025 10:00:00 +0100", "D, d M Y H:i:s O", "2025-01-15T10:00:00+01:00"),
        ("1736935200.123456", "U.u", "2025-01-15T10:00:00+00:00"),
        ("15/01/69", "!d/m/y", "2069-01-15T00:00:00+00:00"),  # the pivot's last year
        ("15/01/70", "!d/m/y", "1970-01-15T00:00:00+00:00"),  # and its first
        ("29.2.2000", "j.n.Y G:i", "2000-02-29T00:00:00+00:00"),  # no time: the j.n.Y fallback, midnight
        ("2025-02-29 7:05", "Y-m-d G:i", None),  # 2025 is not a leap year
        ("29.2.2000 7:05", "j.n.Y G:i", "2000-02-29T07:05:00+00:00"),  # 2000 is a leap year
    ],
)
def test_php_letter_combinations(value: str, source: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(RefusedValueError, match="day is out of range for month"):
            fmt(value, **{"from": source, "to": "c"})
    else:
        assert fmt(value, **{"from": source, "to": "c"}) == expected


@pytest.mark.parametrize("value", ["29.2.2100 7:05", "29.2.1900 7:05"])
def test_century_years_that_are_not_leap_years_are_refused(value: str) -> None:
    with pytest.raises(RefusedValueError, match="day is out of range for month"):
        fmt(value, **{"from": "j.n.Y G:i", "to": "c"})


@pytest.mark.parametrize(
    ("value", "params", "expected"),
    [
        # America/Sao_Paulo moved clocks from 00:00 to 01:00 on 2018-11-04: the *date* still exists
        ("2018-11-04", {"from": "Y-m-d", "to": "Y-m-d"}, "2018-11-04"),
        ("2018-11-04", {"from": "Y-m-d", "to": "c"}, "2018-11-04T01:00:00-02:00"),  # where the day starts (PHP)
        ("4.11.2018", {"to": "Y-m-d"}, "2018-11-04"),  # the j.n.Y fallback
        ("November 4, 2018", {"to": "Y-m-d"}, "2018-11-04"),
        ("20181104", {"to": "Y-m-d"}, "2018-11-04"),  # ISO-8601 basic
    ],
)
def test_a_date_whose_midnight_dst_skips_is_still_that_date(value: str, params: dict[str, Any], expected: str) -> None:
    # was refused: '2018-11-04 00:00:00 does not exist in America/Sao_Paulo'
    assert fmt(value, from_tz="America/Sao_Paulo", **params) == expected


@pytest.mark.parametrize(
    ("value", "zone", "source"),
    [
        ("2018-11-04 00:30:00", "America/Sao_Paulo", "Y-m-d H:i:s"),  # a written time in the gap
        ("2018-11-04T00:00", "America/Sao_Paulo", "Y-m-d H:i:s"),  # a written midnight (ISO fallback)
        ("04.11.2018 00:00", "America/Sao_Paulo", "d.m.Y H:i"),
        ("2011-12-30", "Pacific/Apia", "Y-m-d"),  # Samoa skipped the whole day
    ],
)
def test_times_and_whole_days_a_zone_skips_stay_refused(value: str, zone: str, source: str) -> None:
    with pytest.raises(RefusedValueError, match="does not exist in"):
        fmt(value, **{"from": source, "to": "c", "from_tz": zone})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-01-15 10:00:00 GMT+1", "2025-01-15T10:00:00+01:00"),  # was refused: unknown time zone 'GMT+1'
        ("2025-01-15 10:00:00 UTC+05:30", "2025-01-15T10:00:00+05:30"),
        ("2025-01-15 10:00:00 utc-3", "2025-01-15T10:00:00-03:00"),
        ("2025-01-15 10:00:00 Etc/GMT+1", "2025-01-15T10:00:00-01:00"),  # the IANA name keeps POSIX's sign
    ],
)
def test_offsets_written_after_utc_or_gmt(value: str, expected: str) -> None:
    assert fmt(value, **{"from": "Y-m-d H:i:s T", "to": "c"}) == expected


@pytest.mark.parametrize("name", ["localtime", "posixrules", "Factory"])
def test_tz_database_files_that_are_no_place_are_refused(name: str) -> None:
    # 'localtime' is the host's /etc/localtime: a value or a rule naming it meant the server's zone
    with pytest.raises(RefusedValueError, match=re.escape(f"unknown time zone {name!r}")):
        fmt(f"2025-01-15 10:00:00 {name}", **{"from": "Y-m-d H:i:s T", "to": "c"})
    with pytest.raises(TransformerParamError, match=re.escape(f"unknown time zone {name!r}")):
        fmt("2025-01-15 10:00:00", from_tz=name)
    with pytest.raises(TransformerParamError, match=re.escape(f"unknown time zone {name!r}")):
        fmt("2025-01-15 10:00:00", to_tz=name)


def test_a_list_of_dates_is_converted_element_by_element() -> None:
    # a Daktela custom field holds a list; [wrap_array, date_format] gave 'expected a date string, got list'
    assert fmt(["15.1.2025", "2025-02-01", None, ""], to="Y-m-d") == ["2025-01-15", "2025-02-01", None, ""]
    assert fmt(("1.2.2025",), to="Y-m-d") == ["2025-02-01"]
    with pytest.raises(RefusedValueError, match=re.escape("cannot parse 'soon'")):
        fmt(["15.1.2025", "soon"], to="Y-m-d")
    assert fmt(["15.1.2025", "soon"], to="Y-m-d", on_invalid="drop") == ["2025-01-15"]
    assert fmt(["15.1.2025", "soon"], to="Y-m-d", on_invalid="keep") == ["2025-01-15", "soon"]


def test_numpy_values_are_read_like_python_ones() -> None:
    np = pytest.importorskip("numpy")
    # np.int64 epoch seconds were 'expected a date string, got int64'
    assert fmt(np.int64(1736935200), **{"from": "U", "to": "c"}) == "2025-01-15T10:00:00+00:00"
    assert fmt(np.float64(1736935200.5), **{"from": "U", "to": "Y-m-d H:i:s.u"}) == "2025-01-15 10:00:00.500000"
    assert fmt(np.str_("15.1.2025"), to="Y-m-d") == "2025-01-15"
    with pytest.raises(RefusedValueError, match="expected a date string, got bool"):
        fmt(np.bool_(True), **{"from": "U", "to": "c"})


# -- the fast paths (issue 15) write what the general ones wrote ---------------------------------


@pytest.mark.parametrize(
    ("value", "params", "expected"),
    [
        # ``c`` for a 3-digit year and a local mean time offset (seconds dropped, as PHP):
        ("0999-05-01 03:04:05", {"from": "Y-m-d H:i:s", "to": "c"}, "999-05-01T03:04:05+00:00"),
        ("1850-01-01 00:00:00", {"from": "Y-m-d H:i:s", "from_tz": "Europe/Prague", "to": "c"},
         "1850-01-01T00:00:00+00:57"),
        ("1850-01-01 00:00:00", {"from": "Y-m-d H:i:s", "from_tz": "America/New_York", "to": "c"},
         "1850-01-01T00:00:00-04:56"),
        ("2026-11-01 08:00:00", {"from": "Y-m-d H:i:s", "from_tz": "Europe/Prague", "to": "c", "to_tz": "UTC"},
         "2026-11-01T07:00:00+00:00"),
        ("2024/1/5 7:05", {"from": "Y/m/d G:i", "from_tz": "Asia/Kolkata", "to": "c"}, "2024-01-05T07:05:00+05:30"),
    ],
)
def test_plain_formats_and_c_render_as_before(value: str, params: dict[str, Any], expected: str) -> None:
    assert fmt(value, **params) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("2024-02-30 10:00:00", "day is out of range for month"),
        ("2024-13-01 00:00:00", "month must be in 1..12"),
        ("0000-01-01 00:00:00", "year 0 is out of range"),
        ("2024-01-01 24:00:00", "hour must be in 0..23"),
    ],
)
def test_plain_format_refusals_keep_their_reason(value: str, reason: str) -> None:
    with pytest.raises(RefusedValueError, match=re.escape(f"{value!r} is not a real date or time: {reason}")):
        fmt(value, **{"from": "Y-m-d H:i:s", "to": "c"})
