"""Reading a CRM row's *modified time* in whatever layout the CRM stored it.

Windowed syncs select CRM rows by ``since <= modified < until``; a row whose modified time is
misread lands in the wrong window, and a row whose time cannot be read at all used to land in
no window (SQLite's ``strftime`` returns NULL for ``+0100`` offsets, European dates and epoch
text, and reads a bare number as a Julian day). This module reads every common layout in
Python and says *why* when it cannot, so the adapter can fail the row visibly instead.

The ``auto`` layout (``ModifiedTimeReader.read``) accepts:

========================================  ==============================================
value                                     read as
========================================  ==============================================
``2026-11-20T10:00:00+01:00``             ISO 8601 / RFC 3339 (Python ``fromisoformat``)
``2026-11-20T10:00:00+0100``              PHP ``DATE_ISO8601``: offset without colon
``2026-11-20T10:00:00+01``                offset in whole hours
``2026-11-20 10:00:00.123456789Z``        space separator, any fractional digits, ``Z``/``z``
``2026-11-20 10:00:00 +0100``             a space before the offset (Ruby, Go ``String()``)
``2026-11-20 10:00:00 UTC``               ``UTC`` / ``GMT`` suffix (Rails, PostgreSQL)
``2026-11-20 10:00`` / ``2026-11-20``     naive: wall-clock time in the configured zone
``30.11.2026 09:15`` / ``30. 11. 2026``   European ``d.m.Y H:i[:s]`` (configured zone)
``2026/11/30 09:15:00``                   ``Y/m/d H:i[:s]`` (configured zone)
``Fri, 20 Nov 2026 10:00:00 +0100``       RFC 2822 (e-mail and HTTP dates)
``2026-11-20T10:00+01:00[Europe/Prague]`` Java ``ZonedDateTime`` / RFC 9557 (the zone serves naive text)
``1764493200`` / ``1764493200.5``         Unix epoch seconds (number or digit string)
``1764493200000``                         Unix epoch milliseconds (13 digits)
``1764493200000000``                      Unix epoch microseconds (16 digits)
``2461009.5``                             a SQLite Julian day number (``julianday()``)
``20261130`` / ``20261130091500``         ISO 8601 basic date / MySQL numeric datetime
                                          (also as a REAL ``20261130091500.0``)
========================================  ==============================================

Numbers are told apart by size: Julian days are 2,000,000-3,000,000, epoch seconds
1e8-1e10 (1973-2286), milliseconds 1e12-1e13 (2001-2286), microseconds 1e15-1e16; anything
else (``0``, ``-1``, ``42``, and the sizes between, such as ``253402300799``, .NET's
``DateTime.MaxValue`` in seconds, which as milliseconds would be a day of 1978) is a
sentinel rather than a time and is refused. ``d/m/Y`` and ``m/d/Y`` are
refused because ``01/02/2026`` means two different days. An explicit layout
(``unixepoch``, ``unixepoch_ms``, ``julianday``, ``iso``) turns the guessing off.

Naive values take the configured IANA zone; a wall-clock time that happens twice (the autumn
DST change) is read as the first occurrence and one that never happens (spring) is shifted
by the gap, which is ``zoneinfo``'s ``fold=0`` rule — either way the row lands in a window.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

from crmsync_pipelines.zones import zone_named

#: Layout names of the ``modified_format`` setting.
ModifiedFormat = Literal["auto", "iso", "unixepoch", "unixepoch_ms", "julianday"]

#: The sortable UTC text every readable time is brought to (``0001-01-01T00:00:00.000000``);
#: fixed width, so text order is time order.
UTC_KEY_FORMAT = "%Y-%m-%dT%H:%M:%S.%f"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Julian day number of the Unix epoch (SQLite: ``julianday('1970-01-01')``).
_JULIAN_EPOCH = 2440587.5
_JULIAN_RANGE = (2_000_000.0, 3_000_000.0)
#: (low, high, units per second): each unit's range covers 1973/2001-2286 only, so no number
#: is both (a 12-digit number was seconds in year 3000-9999 or milliseconds in 1973-2001).
_EPOCH_UNITS: tuple[tuple[float, float, int], ...] = (
    (1e8, 1e10, 1),  # seconds: 1973-03-03 .. 2286-11-20
    (1e12, 1e13, 1_000),  # milliseconds: 2001-09-09 .. 2286-11-20
    (1e15, 1e16, 1_000_000),  # microseconds: 2001-09-09 .. 2286-11-20
)
#: A whole number written as a float (a REAL column, ``20261130091500.0``).
_INTEGRAL_TEXT = re.compile(r"([0-9]+)(?:\.0*)?")
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]*)?")
_ISO_LOOSE = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[Tt ](?P<time>\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?)"
    r"\s*(?P<zone>[Zz]|UTC|GMT|[+-]\d{2}(?::?\d{2})?)?"
)
_DAY_FIRST = re.compile(
    r"(?P<d>\d{1,2})\.\s?(?P<m>\d{1,2})\.\s?(?P<y>\d{4})"
    r"(?:[ ,]\s*(?P<H>\d{1,2}):(?P<i>\d{2})(?::(?P<s>\d{2})(?:[.,](?P<f>\d{1,9}))?)?)?"
)
_YEAR_SLASH = re.compile(
    r"(?P<y>\d{4})/(?P<m>\d{1,2})/(?P<d>\d{1,2})"
    r"(?:[ T](?P<H>\d{1,2}):(?P<i>\d{2})(?::(?P<s>\d{2})(?:[.,](?P<f>\d{1,9}))?)?)?"
)
#: Java's ``ZonedDateTime.toString()`` and RFC 9557: ``2026-11-20T10:00+01:00[Europe/Prague]``.
_ZONE_SUFFIX = re.compile(r"(?P<base>.+?)\[(?P<zone>[A-Za-z][A-Za-z0-9_+\-/]*)\]")
_RFC2822 = re.compile(
    r"(?:[A-Za-z]{3},\s*)?\d{1,2}\s+[A-Za-z]{3}\s+\d{4}\s+\d{2}:\d{2}(?::\d{2})?\s*(?:[+-]\d{4}|[A-Z]{2,3})?"
)
_AMBIGUOUS_SLASH = re.compile(r"\d{1,2}/\d{1,2}/\d{2,4}\b.*")
_EXPECTED = (
    "expected ISO 8601 (any offset, space or T), d.m.Y H:i, Y/m/d H:i, epoch seconds or milliseconds, "
    "or a Julian day"
)


class UnreadableTime(ValueError):
    """A modified time that cannot be read; the message says why, with the raw value."""


@dataclass(frozen=True)
class ModifiedTimeReader:
    """Reads modified times of one column: its layout and the zone of naive values.

    ``read(value)`` returns an aware ``datetime`` or raises ``UnreadableTime``;
    ``utc_key(value)`` returns the fixed-width UTC text used for window comparisons in SQL,
    or ``None`` when the value cannot be read (the adapter then fails that row, visibly).
    """

    layout: ModifiedFormat = "auto"
    zone_name: str = "UTC"
    zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "zone", zone_named(self.zone_name))  # never the host's 'localtime'

    def read(self, value: object) -> datetime:
        """The instant ``value`` names, as an aware datetime; ``UnreadableTime`` when it names none."""
        if value is None:
            raise UnreadableTime("is empty (NULL)")
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise UnreadableTime(f"{_shown(value)} is a {type(value).__name__}, not a time")
        try:
            moment = self._read(value)
        except (OverflowError, ValueError) as exc:
            if isinstance(exc, UnreadableTime):
                raise
            raise UnreadableTime(f"{_shown(value)} is not a time ({exc}); {_EXPECTED}") from None
        try:
            moment.astimezone(UTC)
        except (OverflowError, ValueError):
            raise UnreadableTime(f"{_shown(value)} is out of the representable range") from None
        return moment

    def utc_key(self, value: object) -> str | None:
        """Sortable UTC text of ``value`` (see ``UTC_KEY_FORMAT``), ``None`` when unreadable.

        Called by SQLite once per row of every window query, so the usual extended ISO 8601
        text takes a short path (same result as ``read``, without its layered fallbacks).
        """
        if type(value) is str and self.layout in ("auto", "iso") and len(value) > 10 and value[4] == "-":
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                pass
            else:
                if moment.tzinfo is None:
                    moment = moment.replace(tzinfo=self.zone)
                try:
                    return _key(moment)
                except (OverflowError, ValueError):
                    return None
        try:
            return _key(self.read(value))
        except UnreadableTime:
            return None

    # -- layouts ------------------------------------------------------------------------------
    def _read(self, value: str | int | float) -> datetime:
        if self.layout in ("unixepoch", "unixepoch_ms", "julianday"):
            return self._explicit_number(value)
        if isinstance(value, str):
            text = value.strip()
            if not text:
                raise UnreadableTime("is empty text")
            if _NUMBER.fullmatch(text):
                if self.layout == "iso":
                    raise UnreadableTime(f"{_shown(value)} is a number, but modified_format is 'iso'")
                return self._auto_number(text)
            return self._text(value, text)
        if self.layout == "iso":
            raise UnreadableTime(f"{_shown(value)} is a number, but modified_format is 'iso'")
        return self._auto_number(value)

    def _text(self, raw: str, text: str) -> datetime:
        if bracketed := _ZONE_SUFFIX.fullmatch(text):
            try:
                in_zone = reader(self.layout, bracketed["zone"])
            except ValueError:  # UnknownZoneError
                raise UnreadableTime(f"{_shown(raw)} names an unknown time zone {bracketed['zone']!r}") from None
            return in_zone._text(raw, bracketed["base"].strip())  # an offset in the text still wins
        try:
            return self._zoned(datetime.fromisoformat(text))
        except ValueError:
            pass
        if loose := _ISO_LOOSE.fullmatch(text):
            return self._loose_iso(loose)
        if day_first := _DAY_FIRST.fullmatch(text):
            return self._fields(day_first)
        if year_slash := _YEAR_SLASH.fullmatch(text):
            return self._fields(year_slash)
        if _AMBIGUOUS_SLASH.fullmatch(text):
            raise UnreadableTime(f"{_shown(raw)} is ambiguous (d/m/Y or m/d/Y); store ISO 8601 or d.m.Y")
        if _RFC2822.fullmatch(text):
            try:
                return self._zoned(parsedate_to_datetime(text))
            except (TypeError, ValueError):
                pass
        raise UnreadableTime(f"{_shown(raw)} is not a time; {_EXPECTED}")

    def _loose_iso(self, match: re.Match[str]) -> datetime:
        clock = match["time"].replace(",", ".")
        zone = (match["zone"] or "").upper()
        if zone in ("Z", "UTC", "GMT"):
            zone = "+00:00"
        elif zone and len(zone) == 3:
            zone += ":00"
        elif len(zone) == 5:
            zone = f"{zone[:3]}:{zone[3:]}"
        return self._zoned(datetime.fromisoformat(f"{match['date']}T{clock}{zone}"))

    def _fields(self, match: re.Match[str]) -> datetime:
        moment = datetime(
            int(match["y"]),
            int(match["m"]),
            int(match["d"]),
            int(match["H"] or 0),
            int(match["i"] or 0),
            int(match["s"] or 0),
            int((match["f"] or "0")[:6].ljust(6, "0")),
        )
        return self._zoned(moment)

    def _zoned(self, moment: datetime) -> datetime:
        return moment.replace(tzinfo=self.zone) if moment.tzinfo is None else moment

    def _auto_number(self, value: str | int | float) -> datetime:
        if isinstance(value, float):
            whole = str(int(value)) if value.is_integer() and value > 0 else None
        elif isinstance(value, int):
            whole = str(value) if value > 0 else None
        else:
            integral = _INTEGRAL_TEXT.fullmatch(value.strip())
            whole = integral.group(1) if integral else None
        if whole is not None and len(whole) in (8, 14):
            return self._compact(whole)
        number = float(value)
        if not math.isfinite(number):
            raise UnreadableTime(f"{_shown(value)} is not a finite number")
        if _JULIAN_RANGE[0] <= number < _JULIAN_RANGE[1]:
            return _from_julian(number)
        for low, high, per_second in _EPOCH_UNITS:
            if low <= number < high:
                return _from_epoch(value, per_second)
        raise UnreadableTime(
            f"{_shown(value)} is not a plausible time: not epoch seconds (1e8-1e10), milliseconds (1e12-1e13), "
            "microseconds (1e15-1e16), a Julian day or YYYYMMDD[HHMMSS]; set modified_format for a literal reading"
        )

    def _compact(self, digits: str) -> datetime:
        layout = "%Y%m%d" if len(digits) == 8 else "%Y%m%d%H%M%S"
        return self._zoned(datetime.strptime(digits, layout))

    def _explicit_number(self, value: str | int | float) -> datetime:
        if isinstance(value, str):
            text = value.strip()
            if not re.fullmatch(r"-?[0-9]+(?:\.[0-9]*)?", text):
                raise UnreadableTime(f"{_shown(value)} is not a number, but modified_format is {self.layout!r}")
            value = text
        if not math.isfinite(float(value)):
            raise UnreadableTime(f"{_shown(value)} is not a finite number")
        if self.layout == "julianday":
            return _from_julian(float(value))
        return _from_epoch(value, 1_000 if self.layout == "unixepoch_ms" else 1)


def _from_epoch(value: str | int | float, per_second: int) -> datetime:
    """Exact for integers and digit strings: decimal arithmetic, no float rounding of milliseconds."""
    try:
        micros = Decimal(value) * 1_000_000 / per_second
    except InvalidOperation:
        raise UnreadableTime(f"{_shown(value)} is not a number") from None
    return _EPOCH + timedelta(microseconds=int(micros.to_integral_value()))


def _from_julian(day: float) -> datetime:
    return _EPOCH + timedelta(days=day - _JULIAN_EPOCH)


def _key(moment: datetime) -> str:
    # isoformat zero-pads the year (strftime's %Y does not below 1000), so the width is fixed.
    return moment.astimezone(UTC).isoformat(timespec="microseconds")[:26]  # without "+00:00"


def utc_key_of(moment: datetime) -> str:
    """The ``UTC_KEY_FORMAT`` text of an aware datetime (a window bound)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()} has no instant")
    return _key(moment)


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


@lru_cache(maxsize=64)
def reader(layout: ModifiedFormat, zone_name: str) -> ModifiedTimeReader:
    """A shared reader per (layout, zone); building a ``ZoneInfo`` is not free."""
    return ModifiedTimeReader(layout, zone_name)


__all__ = [
    "UTC_KEY_FORMAT",
    "ModifiedFormat",
    "ModifiedTimeReader",
    "UnreadableTime",
    "reader",
    "utc_key_of",
]
