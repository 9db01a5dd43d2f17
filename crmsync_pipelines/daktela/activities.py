"""Flatten Daktela activities into one-level rows for mapping and staging.

An activity embeds its queue, contact, user, ticket and channel record (``item``) as full
objects, several levels deep. Mapping files and DuckDB staging want flat columns with stable
names, so each relation becomes ``<relation>_name`` / ``<relation>_title`` and the channel
record becomes ``item_<field>``. The relation columns are always present (``None`` when the
relation is empty) so every row of a type has the same columns.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from crmsync_pipelines.daktela.normalize import normalize_custom_fields

#: Our activity type names (config, webhooks) -> Daktela's ``type`` codes.
ACTIVITY_TYPE_CODES: dict[str, str] = {
    "call": "CALL",
    "email": "EMAIL",
    "web": "CHAT",
    "sms": "SMS",
    "fbm": "FBM",
    "wap": "WAP",
    "vbr": "VBR",
}
ACTIVITY_TYPES_BY_CODE: dict[str, str] = {code: name for name, code in ACTIVITY_TYPE_CODES.items()}

#: Relations flattened to ``<name>_name`` and ``<name>_title`` on every row.
RELATIONS = ("queue", "contact", "user", "ticket", "record")


def type_code(activity_type: str) -> str:
    """``"web"`` -> ``"CHAT"``; unknown types fail loudly instead of syncing nothing (W14)."""
    try:
        return ACTIVITY_TYPE_CODES[activity_type]
    except KeyError:
        allowed = ", ".join(ACTIVITY_TYPE_CODES)
        raise ValueError(f"unknown activity type {activity_type!r}; allowed: {allowed}") from None


_SCALAR_CLASSES = (str, int, float, bool)
#: The exact types JSON decodes scalars to: a set lookup instead of ``isinstance`` per value.
_SCALAR_TYPES = frozenset({str, int, float, bool, type(None)})
#: Top-level keys the first pass leaves to the relation and item passes (or drops).
_NOT_COPIED = frozenset((*RELATIONS, "_sys", "item", "customFields"))


def _is_scalar(value: Any) -> bool:
    return type(value) in _SCALAR_TYPES or isinstance(value, _SCALAR_CLASSES)


def _relation_name(value: dict[str, Any]) -> Any:
    """The name of a relation given as an object (an int name as text, ``""`` as None)."""
    name = value.get("name")
    if type(name) is int or (isinstance(name, int) and not isinstance(name, bool)):
        return str(name)
    return name if name != "" else None


def _flatten_item(item: dict[str, Any], row: dict[str, Any]) -> None:
    for key, value in item.items():
        if key == "_sys" or key == "customFields":
            continue
        if isinstance(value, dict):
            if "name" in value:
                row[f"item_{key}_name"] = _relation_name(value)
        elif _is_scalar(value):
            row[f"item_{key}"] = value


def flatten_activity(record: dict[str, Any], activity_type: str | None = None) -> dict[str, Any]:
    """One flat row; ``activity_type`` defaults to the type derived from ``record["type"]``.

    Runs once per activity read, on the thread that stages them while the next page is
    fetched: type checks are set lookups and the relations are unrolled (issue 15).
    """
    row: dict[str, Any] = {}
    scalar_types = _SCALAR_TYPES
    for key, value in record.items():
        if key in _NOT_COPIED:
            continue
        if type(value) in scalar_types or isinstance(value, _SCALAR_CLASSES):
            row[key] = value
        elif isinstance(value, dict) and "name" in value:
            row[f"{key}_name"] = _relation_name(value)
        elif isinstance(value, list) and value and all(isinstance(v, dict) and "name" in v for v in value):
            row[key] = [_relation_name(v) for v in value]
    name = row.get("name")
    if isinstance(name, int) and not isinstance(name, bool):
        row["name"] = name = str(name)
    row["id"] = name
    code = record.get("type")
    row["activity_type"] = activity_type or (ACTIVITY_TYPES_BY_CODE.get(code) if isinstance(code, str) else None)

    for relation in RELATIONS:
        value = record.get(relation)
        if isinstance(value, dict):
            rel_name = _relation_name(value)
            row[f"{relation}_name"] = rel_name
            row[f"{relation}_title"] = value.get("title")
            if relation == "user":
                row["user_email"] = value.get("email") or value.get("emailAuth") or None
                row["user_login"] = rel_name
            continue
        rel_name = None if value is None or value == "" or value == [] else str(value)
        row[f"{relation}_name"] = rel_name
        row[f"{relation}_title"] = None
        if relation == "user":
            row["user_email"] = None
            row["user_login"] = rel_name

    item = record.get("item")
    if isinstance(item, dict):
        _flatten_item(item, row)
    elif isinstance(item, int) and not isinstance(item, bool):
        row["item_name"] = str(item)

    direction = row.get("direction")
    if direction in (None, "") and isinstance(item, dict):
        direction = item.get("direction")
    row["direction"] = direction.lower() if isinstance(direction, str) and direction else None

    row["customFields"] = normalize_custom_fields(record.get("customFields"))
    return row


#: Activity fields the engine itself reads on every row (the name, the type, the settle check).
ENGINE_FIELDS = ("name", "type", "time", "time_close", "action")
_ROW_ALIASES = {"id": "name", "activity_type": "type"}


def raw_fields(row_fields: Iterable[str], time_field: str = "time") -> list[str]:
    """The raw activity fields (``fields[]`` projection roots) that give these flattened row
    fields, plus what the engine needs; the rest of a ~5 KB activity is never requested.

    ``contact_name``/``contact_title`` come from ``contact``, ``user_email`` from ``user``,
    ``item_*`` and ``direction`` from ``item`` (the channel record),
    ``customFields.x`` from ``customFields``; any other name is a top-level field.
    """
    wanted: dict[str, None] = dict.fromkeys((*ENGINE_FIELDS, time_field))
    for field in row_fields:
        root = field.split(".", 1)[0]
        relation = next((r for r in RELATIONS if root.startswith(f"{r}_")), None)
        if relation is not None and root in (f"{relation}_name", f"{relation}_title", "user_email", "user_login"):
            wanted.setdefault(relation, None)
        elif root.startswith("item_") or root == "direction":
            wanted.setdefault("item", None)
        else:
            wanted.setdefault(_ROW_ALIASES.get(root, root), None)
    return list(wanted)
