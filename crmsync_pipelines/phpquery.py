"""PHP-style bracket query parsing (``a[b][0]=x``), as the real PHP server does it.

Shared by the Daktela simulator (query strings) and the webhook receiver (form-encoded
bodies from Daktela automations), because both speak PHP's wire format.

Clients encode brackets differently (httpx percent-encodes them, others send them raw); PHP
decodes first and then splits on brackets, so both spellings land in the same tree.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_plus


def parse_query(query: str) -> dict[str, Any]:
    """Parse a raw query string into nested dicts; all-numeric-key dicts become lists."""
    root: dict[str, Any] = {}
    for pair in query.split("&"):
        if not pair:
            continue
        raw_key, _, raw_value = pair.partition("=")
        key = unquote_plus(raw_key)
        value = unquote_plus(raw_value)
        parts = _split_key(key)
        if parts:
            _assign(root, parts, value)
    return _listify(root)


def _split_key(key: str) -> list[str]:
    bracket = key.find("[")
    if bracket <= 0 or not key.endswith("]"):
        return [key] if key else []
    parts = [key[:bracket]]
    rest = key[bracket:]
    while rest.startswith("["):
        end = rest.find("]")
        if end < 0:
            break
        parts.append(rest[1:end])
        rest = rest[end + 1 :]
    return parts


def _assign(node: dict[str, Any], parts: list[str], value: str) -> None:
    for position, part in enumerate(parts):
        last = position == len(parts) - 1
        if part == "":
            part = str(_next_index(node))
        if last:
            node[part] = value
            return
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child


def _next_index(node: dict[str, Any]) -> int:
    numeric = [int(k) for k in node if k.isdigit()]
    return max(numeric) + 1 if numeric else 0


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {k: _listify(v) for k, v in node.items()}
    if converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted
