"""PHP ``date()`` format strings, compiled once into a renderer and a parser.

Existing mapping files use PHP format letters (``Y-m-d H:i:s``, ``c``), so we accept them
as they are. Rendering supports every letter PHP's ``date()`` documents except Swatch time
(``B``); parsing follows ``DateTimeImmutable::createFromFormat`` for the letters that identify
a point in time, but refuses what PHP would roll over (``ImpossibleDateError``). Datetimes
given to the renderer are always zone-aware: the caller decides the zone explicitly.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

from crmsync_pipelines.zones import UnknownZoneError, zone_named

DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip


def _offset(dt: datetime, colon: bool, z_for_utc: bool = False) -> str:
    delta = dt.utcoffset() or timedelta(0)
    seconds = int(delta.total_seconds())
    if z_for_utc and seconds == 0:
        return "Z"
    sign = "-" if seconds < 0 else "+"
    seconds = abs(seconds)
    hours, minutes = divmod(seconds // 60, 60)
    return f"{sign}{hours:02d}{':' if colon else ''}{minutes:02d}"


def _zone_name(dt: datetime) -> str:
    zone = dt.tzinfo
    if isinstance(zone, ZoneInfo):
        return zone.key
    if zone is UTC:
        return "UTC"
    return _offset(dt, True)


def _abbreviation(dt: datetime) -> str:
    name = dt.tzname() or ""
    if name.startswith("UTC") and len(name) > 3:
        return _offset(dt, True)
    return name or _offset(dt, True)


def _hour12(dt: datetime) -> int:
    return dt.hour % 12 or 12


def _iso8601(dt: datetime) -> str:
    """PHP's ``c``: ``2004-02-12T15:19:21+00:00`` (seconds of an offset are dropped, as PHP does).

    ``isoformat`` writes the same text 2-3x faster wherever it agrees with ``strftime``: a
    4-digit year and an offset in whole minutes (it would add ``:SS`` for a local mean time).
    """
    offset = dt.utcoffset()
    whole_minutes = offset is not None and not offset.seconds % 60 and not offset.microseconds
    if whole_minutes and type(dt) is datetime and dt.year >= 1000:
        return dt.isoformat(timespec="seconds")
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + _offset(dt, True)


_RENDER: dict[str, Callable[[datetime], str]] = {
    "d": lambda dt: f"{dt.day:02d}",
    "D": lambda dt: DAYS[dt.weekday()][:3],
    "j": lambda dt: str(dt.day),
    "l": lambda dt: DAYS[dt.weekday()],
    "N": lambda dt: str(dt.isoweekday()),
    "S": lambda dt: "th" if 11 <= dt.day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(dt.day % 10, "th"),
    "w": lambda dt: str(dt.isoweekday() % 7),
    "z": lambda dt: str(dt.timetuple().tm_yday - 1),
    "W": lambda dt: f"{dt.isocalendar()[1]:02d}",
    "F": lambda dt: MONTHS[dt.month - 1],
    "m": lambda dt: f"{dt.month:02d}",
    "M": lambda dt: MONTHS[dt.month - 1][:3],
    "n": lambda dt: str(dt.month),
    "t": lambda dt: str(calendar.monthrange(dt.year, dt.month)[1]),
    "L": lambda dt: "1" if calendar.isleap(dt.year) else "0",
    "o": lambda dt: str(dt.isocalendar()[0]),
    "Y": lambda dt: f"{dt.year:04d}",
    "y": lambda dt: f"{dt.year % 100:02d}",
    "a": lambda dt: "am" if dt.hour < 12 else "pm",
    "A": lambda dt: "AM" if dt.hour < 12 else "PM",
    "g": lambda dt: str(_hour12(dt)),
    "G": lambda dt: str(dt.hour),
    "h": lambda dt: f"{_hour12(dt):02d}",
    "H": lambda dt: f"{dt.hour:02d}",
    "i": lambda dt: f"{dt.minute:02d}",
    "s": lambda dt: f"{dt.second:02d}",
    "u": lambda dt: f"{dt.microsecond:06d}",
    "v": lambda dt: f"{dt.microsecond // 1000:03d}",
    "e": _zone_name,
    "I": lambda dt: "1" if (dt.dst() or timedelta(0)) != timedelta(0) else "0",
    "O": lambda dt: _offset(dt, False),
    "P": lambda dt: _offset(dt, True),
    "p": lambda dt: _offset(dt, True, z_for_utc=True),
    "T": _abbreviation,
    "Z": lambda dt: str(int((dt.utcoffset() or timedelta(0)).total_seconds())),
    "c": _iso8601,
    "r": lambda dt: (
        f"{DAYS[dt.weekday()][:3]}, {dt.day:02d} {MONTHS[dt.month - 1][:3]} {dt.year:04d} "
        f"{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d} {_offset(dt, False)}"
    ),
    "U": lambda dt: str(int(dt.timestamp())),
}


def _tokens(fmt: str) -> list[tuple[str, str]]:
    """(kind, text) pairs, kind ``letter``, ``char`` or ``escaped`` (after a backslash, as in PHP)."""
    tokens: list[tuple[str, str]] = []
    escaped = False
    for char in fmt:
        if escaped:
            tokens.append(("escaped", char))
            escaped = False
        elif char == "\\":
            escaped = True
        elif char.isascii() and char.isalpha():
            tokens.append(("letter", char))
        else:
            tokens.append(("char", char))
    return tokens


def compile_renderer(fmt: str) -> Callable[[datetime], str]:
    """A function rendering an aware datetime with a PHP format; unknown letters are rejected."""
    parts: list[Callable[[datetime], str] | str] = []
    for kind, text in _tokens(fmt):
        if kind != "letter":
            parts.append(text)
            continue
        render = _RENDER.get(text)
        if render is None:
            raise ValueError(f"unsupported format letter {text!r} in {fmt!r}")
        parts.append(render)
    if all(isinstance(part, str) for part in parts):
        constant = "".join(part for part in parts if isinstance(part, str))
        return lambda dt: constant
    if len(parts) == 1 and not isinstance(parts[0], str):
        return parts[0]  # one letter (``c``, ``U``): no join per value
    return lambda dt: "".join(part if isinstance(part, str) else part(dt) for part in parts)


# -- parsing: DateTimeImmutable::createFromFormat semantics -----------------------------------
# Source of the rules: the PHP manual's createFromFormat table
# (https://www.php.net/manual/en/datetimeimmutable.createfromformat.php). Numbers are read
# greedily and never given back (possessive quantifiers), as PHP's left-to-right parser does.
# Where PHP *overflows* an out-of-range value (day 30 of February -> 1 March, a weekday name
# that does not match -> the next such day, hour 24) the value is refused instead.

_ISO = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})"
_ZONE = r"Z|[+-]\d{1,2}(?::?\d{2})?|(?i:UTC|GMT)[+-]\d{1,2}(?::?\d{2})?|[A-Za-z]+(?:[/_+\-][A-Za-z0-9_+\-]+)*"
#: ``GMT+1``, ``UTC-05:30``: an offset written after a UTC name.
_UTC_PLUS = re.compile(r"(?i:UTC|GMT)([+-]\d{1,2}(?::?\d{2})?)")
_WORD = r"[A-Za-z]+"

#: Parsing: letter -> (regex, component name).
_PARSE: dict[str, tuple[str, str]] = {
    "d": (r"\d{1,2}+", "day"),  # PHP: "2 digits with or without leading zeros"
    "j": (r"\d{1,2}+", "day"),
    "D": (_WORD, "weekday"),  # PHP: D and l both accept "Mon" or "Monday"
    "l": (_WORD, "weekday"),
    "S": (r"(?i:st|nd|rd|th)", "suffix"),  # ignored, as in PHP
    "z": (r"\d{1,3}+", "yday"),  # day of the year from 0; needs a year
    "F": (_WORD, "month_name"),  # PHP: F and M both accept "January" or "Jan"
    "M": (_WORD, "month_name"),
    "m": (r"\d{1,2}+", "month"),  # PHP: "with or without leading zeros"
    "n": (r"\d{1,2}+", "month"),
    "Y": (r"\d{4}", "year"),  # PHP reads "up to 4 digits"; a 1-3 digit year is refused here
    "y": (r"\d{2}", "year2"),  # pivot 1970-2069, as PHP
    "a": (r"(?i:[ap]\.?m\.?)", "ampm"),
    "A": (r"(?i:[ap]\.?m\.?)", "ampm"),
    "g": (r"\d{1,2}+", "hour12"),
    "h": (r"\d{1,2}+", "hour12"),
    "G": (r"\d{1,2}+", "hour"),
    "H": (r"\d{1,2}+", "hour"),
    "i": (r"\d{2}", "minute"),  # PHP: exactly two digits
    "s": (r"\d{2}", "second"),
    "v": (r"\d{1,3}+", "milli"),  # a fraction: "12" is 0.12 s
    "u": (r"\d{1,6}+", "micro"),
    "e": (_ZONE, "zone"),  # PHP: e, O, P, p and T all accept any zone form
    "O": (_ZONE, "zone"),
    "P": (_ZONE, "zone"),
    "p": (_ZONE, "zone"),
    "T": (_ZONE, "zone"),
    "U": (r"-?\d+", "epoch"),
    "c": (_ISO, "iso"),  # not a createFromFormat letter in PHP; accepted for symmetry with date()
}

#: Format characters with a parsing meaning of their own (when not escaped).
_SEPARATORS = ";:/.,-()"
_SPECIAL: dict[str, str] = {
    " ": r"[ \t\u00a0\u202f]*",  # PHP 8: zero or more spaces, tabs, NBSP or NNBSP
    "#": "[" + re.escape(_SEPARATORS) + "]",
    "?": ".",
    "*": r"[^\s" + re.escape(_SEPARATORS) + r"\d]*+",
    "!": "",  # resets: unparsed fields are always the epoch's (never the current time) here
    "|": "",
}

#: Components ``_build`` reads as plain integers, in ``datetime``'s argument order.
_PLAIN = ("year", "month", "day", "hour", "minute", "second")

_TIME_COMPONENTS = frozenset({"hour", "hour12", "minute", "second", "micro", "milli", "epoch", "iso"})

#: Zone abbreviations PHP knows, as fixed offsets in hours (the ones CRM exports use).
_ABBREVIATIONS: dict[str, float] = {
    "UTC": 0, "GMT": 0, "Z": 0, "WET": 0, "WEST": 1, "BST": 1, "CET": 1, "CEST": 2, "MET": 1, "MEST": 2,
    "EET": 2, "EEST": 3, "MSK": 3, "EST": -5, "EDT": -4, "CST": -6, "CDT": -5, "MST": -7, "MDT": -6,
    "PST": -8, "PDT": -7,
}  # fmt: skip


class ImpossibleDateError(ValueError):
    """The text follows the format but names no real moment (30 February, hour 24, ...)."""


def _parse_offset(text: str) -> tzinfo:
    """``Z``, ``±H``, ``±HH``, ``±HHMM`` or ``±HH:MM`` (PHP: "difference to UTC in hours")."""
    if text in ("Z", "z"):
        return UTC
    sign = -1 if text[0] == "-" else 1
    body = text[1:]
    if ":" in body:
        hours, minutes = body.split(":")
    elif len(body) > 2:
        hours, minutes = body[:-2], body[-2:]
    else:
        hours, minutes = body, "0"
    if int(hours) >= 24 or int(minutes) >= 60:
        raise ImpossibleDateError(f"offset {text!r} is out of range")
    return timezone(sign * timedelta(hours=int(hours), minutes=int(minutes)))


def _parse_zone(text: str) -> tzinfo:
    if text[0] in "+-" or text in ("Z", "z"):
        return _parse_offset(text)
    upper = text.upper()
    if upper in _ABBREVIATIONS:
        hours = _ABBREVIATIONS[upper]
        return UTC if hours == 0 else timezone(timedelta(hours=hours), upper)
    offset = _UTC_PLUS.fullmatch(text)
    if offset:  # PHP reads "GMT+1" and "UTC+05:30" as offsets (not POSIX's inverted Etc/GMT+1)
        return _parse_offset(offset.group(1))
    try:
        return zone_named(text)
    except UnknownZoneError:
        raise ImpossibleDateError(f"unknown time zone {text!r}") from None


def _name_index(text: str, names: tuple[str, ...], what: str) -> int:
    lowered = text.lower()
    for index, name in enumerate(names):
        if lowered in (name.lower(), name[:3].lower()) or (name == "September" and lowered == "sept"):
            return index
    raise ImpossibleDateError(f"unknown {what} name {text!r}")


@dataclass(frozen=True)
class PhpDateParser:
    """Parses strings written with one PHP format; naive results mean "no zone in the text"."""

    fmt: str
    pattern: re.Pattern[str]
    components: tuple[str, ...]
    #: The format reads year, month, day[, hour[, minute[, second]]] as plain numbers in this
    #: order (``Y-m-d H:i:s``, ``Y/m/d G:i``): ``parse`` builds the datetime without ``_build``.
    plain: bool = False

    @property
    def has_time(self) -> bool:
        return any(name in _TIME_COMPONENTS for name in self.components)

    def parse(self, text: str) -> datetime | None:
        """The datetime; None when ``text`` does not follow the format.

        Raises ``ImpossibleDateError`` when it follows the format but names no real moment.
        """
        match = self.pattern.fullmatch(text.strip())
        if match is None:
            return None
        if self.plain:
            try:
                return datetime(*map(int, match.groups()))  # type: ignore[arg-type]  # 3-6 ints: never tzinfo
            except (ValueError, OverflowError) as exc:  # as _build's, below
                raise ImpossibleDateError(str(exc)) from None
        found: dict[str, str] = {}
        for name, value in zip(self.components, match.groups(), strict=True):
            found[name] = value
        try:
            return _build(found)
        except ImpossibleDateError:
            raise
        except (ValueError, OverflowError, OSError) as exc:
            raise ImpossibleDateError(str(exc)) from None


def _year(found: dict[str, str]) -> int:
    if "year" in found:
        return int(found["year"])
    if "year2" in found:
        short = int(found["year2"])
        return 2000 + short if short < 70 else 1900 + short  # PHP: 1970-2069
    raise ImpossibleDateError("the format has no year")


def _hour(found: dict[str, str]) -> int:
    if "hour12" not in found:
        return int(found.get("hour", "0"))
    hour12 = int(found["hour12"])
    if not 1 <= hour12 <= 12:
        raise ImpossibleDateError(f"12-hour clock hour {hour12} is not 1-12")
    if "ampm" not in found:
        return hour12  # PHP adjusts a 12-hour clock only when a meridian was read
    hour = hour12 % 12
    return hour + 12 if found["ampm"].lower().startswith("p") else hour


def _fraction(found: dict[str, str]) -> int:
    """Microseconds from ``u`` (up to 6 digits) or ``v`` (up to 3): both are decimal fractions."""
    if "milli" in found:
        return int(found["milli"].ljust(3, "0")) * 1000
    return int(found["micro"].ljust(6, "0")) if "micro" in found else 0


def _from_day_of_year(found: dict[str, str], year: int, month: int, day: int) -> tuple[int, int]:
    """(month, day) of ``z``; when the format also has a month or day they must agree."""
    moment = date(year, 1, 1) + timedelta(days=int(found["yday"]))
    if moment.year != year:
        raise ImpossibleDateError(f"day of the year {found['yday']} is past the end of {year}")
    has_month = "month" in found or "month_name" in found
    if (has_month and month != moment.month) or ("day" in found and day != moment.day):
        raise ImpossibleDateError(f"day of the year {found['yday']} of {year} is {moment.isoformat()}")
    return moment.month, moment.day


def _build(found: dict[str, str]) -> datetime:
    if "iso" in found:
        return datetime.fromisoformat(found["iso"].replace("Z", "+00:00"))
    if "epoch" in found:
        return datetime.fromtimestamp(int(found["epoch"]), UTC).replace(microsecond=_fraction(found))
    year = _year(found)
    if "month" in found:
        month = int(found["month"])
    elif "month_name" in found:
        month = _name_index(found["month_name"], MONTHS, "month") + 1
    else:
        month = 1
    day = int(found.get("day", "1"))
    if "yday" in found:
        month, day = _from_day_of_year(found, year, month, day)
    micro = _fraction(found)
    zone = _parse_zone(found["zone"]) if "zone" in found else None
    moment_dt = datetime(
        year, month, day, _hour(found), int(found.get("minute", "0")), int(found.get("second", "0")), micro, tzinfo=zone
    )
    if "weekday" in found:
        weekday = _name_index(found["weekday"], DAYS, "weekday")
        if weekday != moment_dt.weekday():
            raise ImpossibleDateError(
                f"{moment_dt.date().isoformat()} is a {DAYS[moment_dt.weekday()]}, not a {DAYS[weekday]}"
            )
    return moment_dt


def compile_parser(fmt: str) -> PhpDateParser:
    """A parser for ``fmt``; letters that do not identify a point in time are rejected (ValueError)."""
    regex = ""
    components: list[str] = []
    trailing = False
    for kind, text in _tokens(fmt):
        if kind == "letter":
            spec = _PARSE.get(text)
            if spec is None:
                raise ValueError(f"format letter {text!r} cannot be used to parse dates (in {fmt!r})")
            regex += f"({spec[0]})"
            components.append(spec[1])
        elif kind == "char" and text == "+":
            trailing = True
        elif kind == "char" and text in _SPECIAL:
            regex += _SPECIAL[text]
        else:
            regex += re.escape(text)
    if not components:
        raise ValueError(f"format {fmt!r} has no date letters")
    if "yday" in components and not {"year", "year2"} & set(components[: components.index("yday")]):
        raise ValueError(f"format letter 'z' must follow a year (Y or y) in {fmt!r}, as in PHP")
    if trailing:
        regex += r"(?s:.*)"
    plain = len(components) >= 3 and tuple(components) == _PLAIN[: len(components)]
    return PhpDateParser(fmt, re.compile(regex), tuple(components), plain)
