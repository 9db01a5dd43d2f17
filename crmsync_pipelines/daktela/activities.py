"""Flatten Daktela activities into one-level rows for mapping and staging.

An activity embeds its queue, contact, user, ticket and channel record (``item``) as full
objects, several levels deep. Mapping files and DuckDB staging want flat columns with stable
names, so each relation becomes ``<relation>_name`` / ``<relation>_title`` and the channel
record becomes ``item_<field>``. The relation columns are always present (``None`` when the
relation is empty) so every row of a type has the same columns.
"""

from __future__ import annotations

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


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _relation_parts(value: Any) -> tuple[Any, Any, dict[str, Any]]:
    """(name, title, the object) of a relation given as an object, a bare name or null."""
    if isinstance(value, dict):
        name = value.get("name")
        if isinstance(name, int) and not isinstance(name, bool):
            name = str(name)
        return (name if name != "" else None), value.get("title"), value
    if value is None or value == "" or value == []:
        return None, None, {}
    return str(value), None, {}


def _flatten_item(item: dict[str, Any], row: dict[str, Any]) -> None:
    for key, value in item.items():
        if key in ("_sys", "customFields"):
            continue
        if isinstance(value, dict):
            if "name" in value:
                row[f"item_{key}_name"] = _relation_parts(value)[0]
        elif _is_scalar(value):
            row[f"item_{key}"] = value


def flatten_activity(record: dict[str, Any], activity_type: str | None = None) -> dict[str, Any]:
    """One flat row; ``activity_type`` defaults to the type derived from ``record["type"]``."""
    row: dict[str, Any] = {}
    for key, value in record.items():
        if key in RELATIONS or key in ("_sys", "item", "customFields"):
            continue
        if _is_scalar(value):
            row[key] = value
        elif isinstance(value, dict) and "name" in value:
            row[f"{key}_name"] = _relation_parts(value)[0]
        elif isinstance(value, list) and value and all(isinstance(v, dict) and "name" in v for v in value):
            row[key] = [_relation_parts(v)[0] for v in value]
    name = row.get("name")
    if isinstance(name, int) and not isinstance(name, bool):
        row["name"] = name = str(name)
    row["id"] = name
    code = record.get("type")
    row["activity_type"] = activity_type or (ACTIVITY_TYPES_BY_CODE.get(code) if isinstance(code, str) else None)

    for relation in RELATIONS:
        rel_name, rel_title, rel_obj = _relation_parts(record.get(relation))
        row[f"{relation}_name"] = rel_name
        row[f"{relation}_title"] = rel_title
        if relation == "user":
            row["user_email"] = rel_obj.get("email") or rel_obj.get("emailAuth") or None
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
