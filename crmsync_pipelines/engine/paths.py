"""Dotted-path access to nested payloads (``customFields.email``)."""

from __future__ import annotations

from typing import Any


def read_path(record: dict[str, Any] | None, path: str) -> Any:
    current: Any = record
    for part in path.split("."):
        if not isinstance(current, dict):
            return None
        current = current.get(part)
    return current


def flatten(payload: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts become dotted keys; lists and scalars are leaves."""
    flat: dict[str, Any] = {}
    for key, value in payload.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def key_of(value: Any) -> str | None:
    """The lookup key a value stands for: lists use their first non-empty element; blanks are no key."""
    if isinstance(value, list):
        value = next((v for v in value if v not in (None, "")), None)
    if value is None:
        return None
    text = str(value).strip()
    return text or None
