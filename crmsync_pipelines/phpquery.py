"""PHP-style bracket query parsing (``a[b][0]=x``), as the real PHP server does it.

Shared by the Daktela simulator (query strings) and the webhook receiver (form-encoded
bodies from Daktela automations), because both speak PHP's wire format.

Clients encode brackets differently (httpx percent-encodes them, others send them raw); PHP
decodes first and then splits on brackets, so both spellings land in the same tree.

The parser is linear in the input and never recurses, so hostile input (40,000 ``a[]=1``
fields, keys nested 1,500 levels) costs time proportional to its length and cannot raise
``RecursionError``. PHP bounds the same input with ``max_input_vars`` (default 1000) and
``max_input_nesting_level`` (default 64); callers that face the network pass ``max_fields``
and ``max_depth`` and get a ``QueryLimitError`` instead of PHP's silent truncation.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_plus

#: PHP turns a decimal key into an integer key only when it fits PHP_INT_MAX (64-bit).
_PHP_INT_MAX = 2**63 - 1
_PHP_INT_MAX_DIGITS = len(str(_PHP_INT_MAX))


class QueryLimitError(ValueError):
    """The query exceeds ``max_fields`` or ``max_depth``; ``limit`` names which one."""

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(message)
        self.limit = limit


class _Node(dict[str, Any]):
    """A dict that remembers PHP's "next free index" for ``key[]=`` appends (O(1) per append)."""

    __slots__ = ("next_index",)

    def __init__(self) -> None:
        super().__init__()
        self.next_index = 0


def parse_query(
    query: str, *, max_fields: int | None = None, max_depth: int | None = None, errors: str = "replace"
) -> dict[str, Any]:
    """Parse a raw query string into nested dicts; nested all-numeric-key dicts become lists.

    ``max_fields`` bounds the number of ``key=value`` fields and ``max_depth`` the nesting
    (``a=1`` is depth 1, ``a[b]=1`` depth 2); exceeding either raises ``QueryLimitError``
    before the tree is built past the limit. The top level is always a dict, like PHP's
    ``$_GET``/``$_POST``. ``errors`` is how percent-encoded bytes that are not UTF-8 are
    decoded (``"strict"`` raises ``UnicodeDecodeError`` instead of writing U+FFFD).
    """
    pairs = [pair for pair in query.split("&") if pair]
    if max_fields is not None and len(pairs) > max_fields:
        raise QueryLimitError("fields", f"more than {max_fields} form fields ({len(pairs)})")
    root = _Node()
    for pair in pairs:
        raw_key, _, raw_value = pair.partition("=")
        parts = _split_key(unquote_plus(raw_key, errors=errors), max_depth)
        if parts:
            _assign(root, parts, unquote_plus(raw_value, errors=errors))
    return _listify(root)


def _split_key(key: str, max_depth: int | None) -> list[str]:
    """``a[b][]`` -> ``["a", "b", ""]``; text after a closing bracket not followed by ``[`` is ignored (as PHP)."""
    bracket = key.find("[")
    if bracket <= 0 or not key.endswith("]"):
        return [key] if key else []
    parts = [key[:bracket]]
    position = bracket
    while position < len(key) and key[position] == "[":
        end = key.find("]", position)
        if end < 0:
            break
        parts.append(key[position + 1 : end])
        if max_depth is not None and len(parts) > max_depth:
            raise QueryLimitError("depth", f"form key nested deeper than {max_depth} levels")
        position = end + 1
    return parts


def _index(key: str) -> int | None:
    """The integer PHP would use for ``key``, or ``None`` when it stays a string key."""
    if not (key.isascii() and key.isdigit()) or len(key) > _PHP_INT_MAX_DIGITS:
        return None
    value = int(key)
    return value if value <= _PHP_INT_MAX else None


def _assign(node: _Node, parts: list[str], value: str) -> None:
    last = len(parts) - 1
    for position, part in enumerate(parts):
        if part == "":
            part = str(node.next_index)
        index = _index(part)
        if index is not None and index >= node.next_index:
            node.next_index = index + 1
        if position == last:
            node[part] = value
            return
        child = node.get(part)
        if not isinstance(child, _Node):
            child = _Node()
            node[part] = child
        node = child


def _listify(root: _Node) -> dict[str, Any]:
    """Plain dicts and lists, children before parents, without recursion."""
    order: list[tuple[_Node, _Node | None, str]] = []
    stack: list[tuple[_Node, _Node | None, str]] = [(root, None, "")]
    while stack:
        entry = stack.pop()
        order.append(entry)
        node = entry[0]
        stack.extend((child, node, key) for key, child in node.items() if isinstance(child, _Node))
    converted_root: dict[str, Any] = {}
    for node, parent, key in reversed(order):
        if parent is None:
            converted_root = dict(node)
            continue
        indexes = [_index(k) for k in node]
        numbered = [i for i in indexes if i is not None]
        converted: Any
        if numbered and len(numbered) == len(indexes):
            pairs = sorted(zip(numbered, node.values(), strict=True), key=lambda pair: pair[0])
            converted = [item for _, item in pairs]
        else:
            converted = dict(node)
        parent[key] = converted
    return converted_root
