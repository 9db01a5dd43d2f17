"""What the webhook receiver accepts at most, and the check of a decoded body against it.

The receiver faces the network, so every dimension of a body is bounded before anything
else looks at it: its bytes (``max_body_bytes``, 413), its nesting (``max_depth``, 400), the
number of keys and list items (``max_keys``, 413), the length of each string
(``max_string_length``, 413) and of each number literal (``max_number_length``, 400).
The defaults follow PHP's own input limits where PHP has one (``max_input_vars`` = 1000,
``max_input_nesting_level`` = 64): a Daktela automation template is a handful of keys.

The check walks the decoded value iteratively (no recursion, linear in its size) and also
refuses strings that are not valid Unicode, i.e. lone UTF-16 surrogates such as
``"\\ud800"``: RFC 8259 §8.2 leaves their meaning unpredictable, and they cannot be stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crmsync_pipelines.errors import ConfigError

DEFAULT_MAX_BODY_BYTES = 262_144
DEFAULT_MAX_DEPTH = 32
DEFAULT_MAX_KEYS = 1_000
DEFAULT_MAX_STRING_LENGTH = 65_536
#: Digits (and sign, dot, exponent) of one JSON number. CPython refuses int() of more than
#: 4300 digits with a ValueError, and converting long ones costs quadratic time.
MAX_NUMBER_LENGTH = 100


class BodyLimitError(Exception):
    """A body over one of the limits; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class BodyLimits:
    """Upper bounds for one webhook body (see ``docs/webhooks.md``, "Limits")."""

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_depth: int = DEFAULT_MAX_DEPTH
    max_keys: int = DEFAULT_MAX_KEYS
    max_string_length: int = DEFAULT_MAX_STRING_LENGTH

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_depth", "max_keys", "max_string_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"must be a positive integer, got {value!r}", path=f"webhook.{name}")


def check_structure(value: Any, limits: BodyLimits) -> None:
    """Raise ``BodyLimitError`` when ``value`` (decoded JSON or form) breaks a limit.

    Depth counts containers from the top: ``{"a": 1}`` is 1, ``{"a": {"b": 1}}`` is 2.
    Keys counts every object key and list item in the whole body.
    """
    keys = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            items: Any = node.items()
        elif isinstance(node, list):
            items = enumerate(node)
        else:
            continue
        if depth > limits.max_depth:
            raise BodyLimitError(400, f"body nested deeper than {limits.max_depth} levels")
        keys += len(node)
        if keys > limits.max_keys:
            raise BodyLimitError(413, f"body has more than {limits.max_keys} keys and list items")
        for key, child in items:
            if isinstance(key, str):
                _check_string(key, limits)
            if isinstance(child, str):
                _check_string(child, limits)
            elif isinstance(child, (dict, list)):
                stack.append((child, depth + 1))


def _check_string(text: str, limits: BodyLimits) -> None:
    if len(text) > limits.max_string_length:
        raise BodyLimitError(413, f"a string in the body is longer than {limits.max_string_length} characters")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            code = ord(text[exc.start])
            raise BodyLimitError(
                400,
                f"body contains a lone UTF-16 surrogate (\\u{code:04x}), which is not valid Unicode (RFC 8259 §8.2)",
            ) from None
