"""PHP ``date()`` format strings, compiled once into a renderer and a parser.

Existing mapping files use PHP format letters (``Y-m-d H:i:s``, ``c``), so we accept them
as they are. Rendering supports every letter PHP documents except Swatch time (``B``);
parsing supports the letters that identify a point in time. Datetimes given to the
renderer are always zone-aware: the caller decides the zone explicitly.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

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
    "c": lambda dt: dt.strftime("%Y-%m-%dT%H:%M:%S") + _offset(dt, True),
    "r": lambda dt: (
        f"{DAYS[dt.weekday()][:3]}, {dt.day:02d} {MONTHS[dt.month - 1][:3]} {dt.year:04d} "
        f"{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d} {_offset(dt, False)}"
    ),
    "U": lambda dt: str(int(dt.timestamp())),
}


def _tokens(fmt: str) -> list[tuple[bool, str]]:
    """(is_letter, text) pairs; a backslash makes the next character literal, as in PHP."""
    tokens: list[tuple[bool, str]] = []
    escaped = False
    for char in fmt:
        if escaped:
            tokens.append((False, char))
            escaped = False
        elif char == "\\":
            escaped = True
        elif char.isascii() and char.isalpha():
            tokens.append((True, char))
        else:
            tokens.append((False, char))
    return tokens


def compile_renderer(fmt: str) -> Callable[[datetime], str]:
    """A function rendering an aware datetime with a PHP format; unknown letters are rejected."""
    parts: list[Callable[[datetime], str] | str] = []
    for is_letter, text in _tokens(fmt):
        if not is_letter:
            parts.append(text)
            continue
        render = _RENDER.get(text)
        if render is None:
            raise ValueError(f"unsupported format letter {text!r} in {fmt!r}")
        parts.append(render)
    if all(isinstance(part, str) for part in parts):
        constant = "".join(part for part in parts if isinstance(part, str))
        return lambda dt: constant
    return lambda dt: "".join(part if isinstance(part, str) else part(dt) for part in parts)


_ISO = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})"

#: Parsing: letter -> (regex, component name).
_PARSE: dict[str, tuple[str, str]] = {
    "Y": (r"\d{4}", "year"),
    "y": (r"\d{2}", "year2"),
    "m": (r"\d{2}", "month"),
    "n": (r"\d{1,2}", "month"),
    "M": (r"[A-Za-z]{3}", "month_abbr"),
    "F": (r"[A-Za-z]+", "month_name"),
    "d": (r"\d{2}", "day"),
    "j": (r"\d{1,2}", "day"),
    "D": (r"[A-Za-z]{3}", "weekday"),
    "l": (r"[A-Za-z]+", "weekday"),
    "S": (r"st|nd|rd|th", "suffix"),
    "H": (r"\d{2}", "hour"),
    "G": (r"\d{1,2}", "hour"),
    "h": (r"\d{2}", "hour12"),
    "g": (r"\d{1,2}", "hour12"),
    "A": (r"AM|PM|am|pm", "ampm"),
    "a": (r"AM|PM|am|pm", "ampm"),
    "i": (r"\d{2}", "minute"),
    "s": (r"\d{2}", "second"),
    "u": (r"\d{1,6}", "micro"),
    "v": (r"\d{1,3}", "milli"),
    "e": (r"[A-Za-z_]+(?:/[A-Za-z_+\-0-9]+)*|[+-]\d{2}:?\d{2}", "zone"),
    "T": (r"[A-Za-z]{1,5}|[+-]\d{2}:?\d{2}", "zone"),
    "P": (r"[+-]\d{2}:\d{2}", "offset"),
    "p": (r"Z|[+-]\d{2}:\d{2}", "offset"),
    "O": (r"[+-]\d{4}", "offset"),
    "U": (r"-?\d+", "epoch"),
    "c": (_ISO, "iso"),
}

_TIME_COMPONENTS = frozenset({"hour", "hour12", "minute", "second", "micro", "milli", "epoch", "iso"})


def _parse_offset(text: str) -> tzinfo:
    if text in ("Z", "z"):
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    return timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:4])))


def _parse_zone(text: str) -> tzinfo:
    if text[0] in "+-":
        return _parse_offset(text)
    if text.upper() in ("UTC", "GMT", "Z"):
        return UTC
    try:
        return ZoneInfo(text)
    except (KeyError, ValueError, OSError):
        raise ValueError(f"unknown time zone {text!r}") from None


def _month_from_name(text: str) -> int:
    lowered = text.lower()
    for index, name in enumerate(MONTHS):
        if lowered in (name.lower(), name[:3].lower()):
            return index + 1
    raise ValueError(f"unknown month name {text!r}")


@dataclass(frozen=True)
class PhpDateParser:
    """Parses strings written with one PHP format; naive results mean "no zone in the text"."""

    fmt: str
    pattern: re.Pattern[str]
    components: tuple[str, ...]

    @property
    def has_time(self) -> bool:
        return any(name in _TIME_COMPONENTS for name in self.components)

    def parse(self, text: str) -> datetime | None:
        """The datetime, or None when ``text`` does not follow the format."""
        match = self.pattern.fullmatch(text.strip())
        if match is None:
            return None
        values = match.groups()
        found: dict[str, str] = {}
        for name, value in zip(self.components, values, strict=True):
            found[name] = value
        try:
            return _build(found)
        except ValueError:
            return None


def _build(found: dict[str, str]) -> datetime:
    if "iso" in found:
        return datetime.fromisoformat(found["iso"].replace("Z", "+00:00"))
    if "epoch" in found:
        return datetime.fromtimestamp(int(found["epoch"]), UTC)
    year = int(found["year"]) if "year" in found else (2000 + int(found["year2"]) if "year2" in found else None)
    if year is None:
        raise ValueError("no year")
    if "month" in found:
        month = int(found["month"])
    elif "month_abbr" in found:
        month = _month_from_name(found["month_abbr"])
    elif "month_name" in found:
        month = _month_from_name(found["month_name"])
    else:
        month = 1
    day = int(found.get("day", "1"))
    if "hour12" in found:
        hour = int(found["hour12"]) % 12
        if found.get("ampm", "am").lower() == "pm":
            hour += 12
    else:
        hour = int(found.get("hour", "0"))
    minute = int(found.get("minute", "0"))
    second = int(found.get("second", "0"))
    micro = int(found["micro"].ljust(6, "0")) if "micro" in found else 0
    if "milli" in found:
        micro = int(found["milli"].ljust(3, "0")) * 1000
    zone: tzinfo | None = None
    if "offset" in found:
        zone = _parse_offset(found["offset"])
    elif "zone" in found:
        zone = _parse_zone(found["zone"])
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=zone)


def compile_parser(fmt: str) -> PhpDateParser:
    """A parser for ``fmt``; letters that do not identify a point in time are rejected."""
    regex = ""
    components: list[str] = []
    for is_letter, text in _tokens(fmt):
        if not is_letter:
            regex += r"\s+" if text == " " else re.escape(text)
            continue
        spec = _PARSE.get(text)
        if spec is None:
            raise ValueError(f"format letter {text!r} cannot be used to parse dates (in {fmt!r})")
        regex += f"({spec[0]})"
        components.append(spec[1])
    if not components:
        raise ValueError(f"format {fmt!r} has no date letters")
    return PhpDateParser(fmt, re.compile(regex), tuple(components))
