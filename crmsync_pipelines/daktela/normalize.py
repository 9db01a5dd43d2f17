"""Turn Daktela's read representation into plain records, and values into comparable forms.

Daktela returns relations as embedded objects but accepts names on write, returns
``customFields: []`` for "no custom fields", and wraps single values in lists. Normalizing on
read means the rest of the pipeline sees one shape: relation -> name, custom fields -> dict of
lists. ``comparable`` then decides equality for change detection, deliberately stricter than
the PHP SDK's loose equality (W10): ``"0420"`` and ``"420"`` are different phone numbers.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

_DATETIME_RE = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T](\d{2}):(\d{2})(?::(\d{2}))?$")
_WHITESPACE_RE = re.compile(r"\s+")


def _relation_name(value: dict[str, Any]) -> Any:
    name = value.get("name")
    return str(name) if isinstance(name, int) and not isinstance(name, bool) else name


def _is_relation(value: Any) -> bool:
    """An embedded related record: a dict carrying the related record's ``name``."""
    return isinstance(value, dict) and "name" in value


def normalize_custom_fields(value: Any) -> dict[str, list[Any]]:
    """``[]`` -> ``{}``; every value a list; ``[null]`` -> ``[]`` (a key sent empty)."""
    if not isinstance(value, dict):
        return {}
    out: dict[str, list[Any]] = {}
    for key, raw in value.items():
        if raw is None:
            items: list[Any] = []
        elif isinstance(raw, (list, tuple)):
            items = [v for v in raw if v is not None]
        else:
            items = [raw]
        out[str(key)] = items
    return out


def normalize_value(value: Any) -> Any:
    """Relations (and lists of them) -> names; everything else unchanged."""
    if _is_relation(value):
        return _relation_name(value)
    if isinstance(value, list) and value and all(_is_relation(v) for v in value):
        return [_relation_name(v) for v in value]
    return value


def normalize_record(record: dict[str, Any]) -> dict[str, Any]:
    """A Daktela record as the pipeline sees it (see the module docstring).

    ``""`` stays distinct from ``None`` here, so staging shows what Daktela really holds;
    ``comparable`` treats them as equal when diffing.
    """
    out: dict[str, Any] = {}
    for key, value in record.items():
        if key == "_sys":
            continue
        if key == "customFields":
            out[key] = normalize_custom_fields(value)
        elif key == "name" and isinstance(value, int) and not isinstance(value, bool):
            out[key] = str(value)
        else:
            out[key] = normalize_value(value)
    return out


def _comparable_scalar(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        text = _WHITESPACE_RE.sub(" ", value.strip())
        if not text:
            return None
        match = _DATETIME_RE.match(text)
        if match:
            day, hour, minute, second = match.groups()
            return f"{day} {hour}:{minute}:{second or '00'}"
        return text
    return value


def _sort_key(value: Any) -> tuple[str, str]:
    return (type(value).__name__, repr(value))


def comparable(value: Any) -> Any:
    """A canonical form for equality checks in change detection.

    - ``None``, ``""``, ``[]``, ``{}`` (and whitespace-only strings) -> ``None``;
    - a one-element list -> its element; longer lists -> a sorted tuple (order is not data);
    - dicts -> dicts of comparables without ``None`` entries, so ``{"phone": []}`` equals ``{}``;
      a relation object (a dict with ``name`` and either nothing else, ``title`` or ``_sys``)
      -> its name;
    - strings are stripped with inner whitespace collapsed; ``YYYY-MM-DD[ T]HH:MM[:SS]`` ->
      ``YYYY-MM-DD HH:MM:SS``;
    - numbers: an int equals its canonical decimal string (``1 == "1"``, ``420 != "0420"``,
      ``1 != "1.0"``); an integral float equals the int. No other numeric coercion.
    - booleans stay booleans (``True != "1"``).
    """
    if value is None:
        return None
    if isinstance(value, dict):
        if "name" in value and (len(value) == 1 or "title" in value or "_sys" in value):
            return comparable(value["name"])
        out = {str(k): c for k, v in value.items() if (c := comparable(v)) is not None}
        return out or None
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [c for v in value if (c := comparable(v)) is not None]
        if not items:
            return None
        if len(items) == 1:
            return items[0]
        return tuple(sorted(items, key=_sort_key))
    return _comparable_scalar(value)
