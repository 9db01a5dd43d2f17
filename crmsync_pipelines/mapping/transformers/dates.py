"""The ``date_format`` transformer.

Fixes the PHP SDK's date pitfalls (W25): zones are explicit (``from_tz`` for values that
carry no offset, default UTC; ``to_tz`` to convert before rendering; ``instance`` for the
Daktela instance's zone, see ``mapping.instance``), a value without a time part is midnight
rather than the current time of day, relative words such as ``now`` are rejected, and a
value that is unparseable, names no real date (``2024-02-30``, read as PHP's
``createFromFormat`` would but never rolled over) or a local time a DST change skips is
refused under ``on_invalid`` (default ``fail``; see ``mapping.refusals``) instead of passing
through unchanged.
"""

from __future__ import annotations

import numbers
import re
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from crmsync_pipelines.mapping.instance import INSTANCE, current_instance_timezone
from crmsync_pipelines.mapping.refusals import NOTES_REFUSALS, on_invalid_param, quote, refuse
from crmsync_pipelines.mapping.transformers.params import (
    CompiledTransformer,
    TransformerParamError,
    check_keys,
    get_str,
)
from crmsync_pipelines.mapping.transformers.phpdate import (
    ImpossibleDateError,
    PhpDateParser,
    compile_parser,
    compile_renderer,
)
from crmsync_pipelines.zones import UnknownZoneError, zone_named

if TYPE_CHECKING:
    from crmsync_pipelines.mapping.transformers.registry import TransformerRegistry

#: Unambiguous human formats tried after ``from`` and ISO-8601 (day-first Czech style included;
#: US month-first ``m/d/Y`` is deliberately absent because it is ambiguous with ``d/m/Y``).
_FALLBACK_FORMATS = (
    "F j, Y", "M j, Y", "j F Y", "j M Y", "F j, Y G:i", "F j, Y G:i:s",
    "j. n. Y", "j.n.Y", "j. n. Y G:i", "j.n.Y G:i", "j.n.Y G:i:s", "j. n. Y G:i:s",
    "Y/m/d", "Y/m/d G:i", "Y/m/d G:i:s", "D, d M Y H:i:s O", "D, j M Y H:i:s O",
)  # fmt: skip
_FALLBACK_PARSERS = tuple(compile_parser(fmt) for fmt in _FALLBACK_FORMATS)
#: ISO-8601 basic format's time designator (``20250115T1030``).
_ISO_BASIC_TIME = re.compile(r"\dT\d", re.IGNORECASE)


class _UnknownInstanceZone(tzinfo):
    """Stands in for ``instance`` when the mapper was given no instance zone: using it fails."""

    def _refuse(self, dt: datetime | None) -> timedelta:
        raise ValueError(
            "the Daktela instance time zone is not known here (from_tz/to_tz: instance); the engine "
            "takes it from daktela.timezone and the API's _timezone, elsewhere pass "
            "FieldMapper(instance_timezone=...)"
        )

    utcoffset = _refuse
    dst = _refuse

    def tzname(self, dt: datetime | None) -> str:
        return "instance"


def _zone(params: dict[str, Any], key: str) -> tzinfo | None:
    if key not in params or params[key] in (None, ""):
        return None
    name = get_str(params, key)
    if name == INSTANCE:
        known = current_instance_timezone()
        if known is None:
            return _UnknownInstanceZone()
        name = known
    if name.upper() == "UTC":
        return UTC
    try:
        return zone_named(name)
    except UnknownZoneError:
        raise TransformerParamError(
            f"unknown time zone {name!r} (use an IANA name like Europe/Prague, or {INSTANCE!r} for the "
            "Daktela instance's zone)",
            key,
        ) from None


def _localize(moment: datetime, zone: tzinfo, *, date_only: bool = False) -> datetime:
    """A naive wall time in ``zone``; a time the zone skips (a DST gap) is refused.

    A time the zone repeats (the hour after DST ends) is its first occurrence (``fold=0``),
    as PHP reads it. A *date* written without a time is that day even where its midnight is
    skipped (America/Sao_Paulo moved clocks at 00:00 until 2019): it starts when the gap
    ends, as PHP reads it; a whole skipped day (Pacific/Apia, 2011-12-30) is refused.
    """
    aware = moment.replace(tzinfo=zone)
    if isinstance(zone, ZoneInfo):
        if (type(moment) is datetime and not moment.fold and 1 < moment.year < 9999
                and zone.utcoffset(moment) == zone.utcoffset(moment.replace(fold=1))):
            # Both readings of the wall time agree, so it is in no gap (nor fold), and a year
            # away from datetime's limits its UTC time exists: the round trip below would give
            # it back unchanged. Cheaper than the round trip (issue 15).
            return aware
        back = aware.astimezone(UTC).astimezone(zone)
        if back.replace(tzinfo=None) != moment:
            if date_only and back.date() == moment.date():
                return back
            raise ImpossibleDateError(f"{moment.isoformat(' ')} does not exist in {zone.key} (clocks skip it for DST)")
    return aware


def _has_time(value: object, parser: PhpDateParser) -> bool:
    """Whether the value names a time of day, not only a date (see ``_localize``)."""
    if isinstance(value, datetime):
        return True
    if not isinstance(value, str):
        return False
    text = value.strip()
    if parser.pattern.fullmatch(text):
        return parser.has_time
    return ":" in text or _ISO_BASIC_TIME.search(text) is not None  # the fallbacks and ISO-8601


def _parse_text(text: str, parser: PhpDateParser) -> datetime | None:
    parsed = parser.parse(text)
    if parsed is not None:
        return parsed
    stripped = text.strip()
    try:
        return datetime.fromisoformat(stripped[:-1] + "+00:00" if stripped.endswith("Z") else stripped)
    except ValueError:
        pass
    for fallback in _FALLBACK_PARSERS:
        parsed = fallback.parse(stripped)
        if parsed is not None:
            return parsed
    return None


def date_format(params: dict[str, Any], registry: TransformerRegistry) -> CompiledTransformer:
    check_keys(params, ("from", "to", "from_tz", "to_tz", "on_invalid"))
    source_format = get_str(params, "from", "Y-m-d H:i:s", allow_empty=False)
    target_format = get_str(params, "to", "Y-m-d", allow_empty=False)
    try:
        parser = compile_parser(source_format)
    except ValueError as exc:
        raise TransformerParamError(str(exc), "from") from None
    try:
        render = compile_renderer(target_format)
    except ValueError as exc:
        raise TransformerParamError(str(exc), "to") from None
    from_zone = _zone(params, "from_tz") or UTC
    to_zone = _zone(params, "to_tz")
    epoch_input = source_format == "U"
    policy = on_invalid_param(params)

    def text_moment(value: str) -> datetime:
        try:
            moment = _parse_text(value, parser)
        except ImpossibleDateError as exc:
            raise ValueError(f"{quote(value)} is not a real date or time: {exc}") from None
        if moment is None:
            raise ValueError(f"cannot parse {quote(value)} as a date (format {source_format!r} or ISO-8601)")
        return moment

    def moment_of(value: Any) -> datetime:
        if type(value) is str:  # the usual value first: none of the checks below matches a str
            return text_moment(value)
        if isinstance(value, datetime):
            return value
        if isinstance(value, date):
            return datetime(value.year, value.month, value.day)
        if isinstance(value, numbers.Real) and not isinstance(value, bool) and epoch_input:
            try:  # numbers.Real: NumPy's int64/float64 too
                return datetime.fromtimestamp(float(value) if not isinstance(value, int) else value, UTC)
            except (OverflowError, OSError, ValueError):
                raise ValueError(f"{quote(value)} is out of range for a Unix time") from None
        if isinstance(value, str):
            return text_moment(str(value))  # np.str_ and other subclasses
        raise ValueError(f"expected a date string, got {type(value).__name__} {quote(value)}")

    def run(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            # element by element (a Daktela custom field holds a list); a dropped one is left out
            converted = [(item, one(item)) for item in value]
            return [new for item, new in converted if new is not None or item is None]
        return one(value)

    def one(value: Any) -> Any:
        if value is None or value == "":
            return value
        try:
            moment = moment_of(value)
            if moment.tzinfo is None:
                try:
                    moment = _localize(moment, from_zone)
                except ImpossibleDateError:
                    if _has_time(value, parser):  # asked only in a DST gap: a regex match is not free
                        raise
                    moment = _localize(moment, from_zone, date_only=True)
            if to_zone is not None:
                moment = moment.astimezone(to_zone)
            return render(moment)
        except ValueError as exc:
            return refuse(value, str(exc), policy)
        except OverflowError:
            # Year 1 or 9999 moved across a zone: datetime cannot hold the result.
            return refuse(value, f"{quote(value)} is out of the range of representable dates in its zones", policy)

    setattr(run, NOTES_REFUSALS, policy != "fail")  # keep/drop notes refusals for the mapper to count
    return run
