"""Raynet JSON <-> crmsync records: ids as strings, datetimes as UTC ISO-8601, stable shapes.

Raynet returns references as small objects (``owner {id, fullName}``), audit data as flat
dotted keys (``rowInfo.createdAt``) and datetimes as ``2022-01-01T12:00:00.000+01:00`` when
asked with ``dateFormat=ISO8601`` (Raynet API v2, "Datové typy"). crmsync records keep
Raynet's field names so mappings read like Raynet's own documentation, with three
normalisations the sync needs:

* every ``id`` (top level and inside reference objects) is a string, so relation lookups
  and ledger keys never compare ``5`` with ``"5"``;
* every datetime is rendered in UTC as ``YYYY-MM-DDTHH:MM:SS+00:00`` (what the mappings'
  ``date_format: {to: c, to_tz: UTC}`` produces), so a value we wrote reads back equal;
* detail-only keys (``addresses``, ``relationships``, ``participants``) are dropped and empty
  custom fields removed, so a record read from a list equals the same record read by id.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

#: Keys only the detail view carries; dropped so list and detail records agree.
DETAIL_ONLY_KEYS = frozenset({"addresses", "relationships", "participants", "attachments"})
#: Audit keys (flat, dotted, as Raynet sends them) that hold datetimes.
ROW_INFO_DATES = ("rowInfo.createdAt", "rowInfo.updatedAt")
#: Activity fields holding datetimes.
ACTIVITY_DATES = ("scheduledFrom", "scheduledTill", "completed", "deadline")
#: The computed modified time (created or last updated) crmsync windows filter on.
MODIFIED_KEY = "rowInfo.lastModifiedAt"


def parse_datetime(value: Any, *, user_zone: str = "UTC") -> datetime | None:
    """A Raynet datetime (ISO-8601, or ``yyyy-MM-dd HH:mm`` in the API user's zone) as aware UTC.

    Raises ``ValueError`` for text that is neither form.
    """
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        text = str(value).strip()
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            moment = datetime.strptime(text, "%Y-%m-%d %H:%M")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(user_zone))
    return moment.astimezone(UTC)


def utc_text(moment: datetime) -> str:
    """``2026-03-01T12:00:00+00:00``: the canonical form of every datetime in crmsync records."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


def raynet_iso(moment: datetime) -> str:
    """A bound or body value Raynet accepts without the user's time zone: ISO-8601 with offset."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}+00:00"


def _canonical_date(value: Any) -> Any:
    try:
        moment = parse_datetime(value)
    except (TypeError, ValueError):
        return value
    return None if moment is None else utc_text(moment)


def _ids_as_text(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (str(v) if k == "id" and v is not None and not isinstance(v, dict) else _ids_as_text(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_ids_as_text(v) for v in value]
    return value


def _custom_fields(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if v not in (None, "")}


def modified_at(raw: dict[str, Any]) -> datetime | None:
    """``max(created, updated)``: Raynet's ``rowInfo.lastModifiedAt`` (not sent in records); ``None`` if unreadable."""
    present = []
    for key in (MODIFIED_KEY, *ROW_INFO_DATES):
        try:
            moment = parse_datetime(raw.get(key))
        except (TypeError, ValueError):
            continue
        if moment is not None:
            present.append(moment)
    return max(present) if present else None


def entity_record(raw: dict[str, Any]) -> dict[str, Any]:
    """A company or person as a crmsync record (see the module docstring)."""
    record = {k: v for k, v in raw.items() if k not in DETAIL_ONLY_KEYS}
    record = _ids_as_text(record)
    for key in ROW_INFO_DATES:
        if key in record:
            record[key] = _canonical_date(record[key])
    modified = modified_at(raw)
    record[MODIFIED_KEY] = utc_text(modified) if modified else None
    record["customFields"] = _custom_fields(raw.get("customFields"))
    record["id"] = None if raw.get("id") is None else str(raw["id"])
    return record


def _ref_id(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("id")
    if value in (None, ""):
        return None
    return str(value)


def activity_id(entity: str, raw_id: Any) -> str:
    """crmsync's activity id: the Raynet entity and its id (ids are only unique per entity)."""
    return f"{entity}:{raw_id}"


def split_activity_id(activity: str) -> tuple[str, str]:
    """``"phoneCall:12"`` -> ``("phoneCall", "12")``; ``ValueError`` for anything else."""
    entity, sep, raw_id = str(activity).partition(":")
    if not sep or not entity or not raw_id.strip().isdigit():
        raise ValueError(f"{activity!r} is not a Raynet activity id of the form '<entity>:<id>', e.g. 'phoneCall:12'")
    return entity, raw_id.strip()


def activity_record(entity: str, raw: dict[str, Any], ext_prefix: str) -> dict[str, Any]:
    """A Raynet activity as crmsync reads it back: references as id strings, dates in UTC."""
    ext_ids = [str(e) for e in raw.get("extIds") or []]
    ours = next((e[len(ext_prefix):] for e in ext_ids if e.startswith(ext_prefix)), None)
    record: dict[str, Any] = {
        "id": activity_id(entity, raw.get("id")),
        "entity": entity,
        "extId": ours,
        "extIds": ext_ids,
    }
    for key, value in raw.items():
        if key in DETAIL_ONLY_KEYS or key in ("id", "extIds"):
            continue
        if key in ("person", "company", "owner", "resolver", "category", "businessCase"):
            record[key] = _ref_id(value)
        elif key in ACTIVITY_DATES or key in ROW_INFO_DATES:
            record[key] = _canonical_date(value)
        elif key == "customFields":
            record[key] = _custom_fields(value)
        else:
            record[key] = value
    record.setdefault("customFields", {})
    return record
