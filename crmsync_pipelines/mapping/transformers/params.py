"""Load-time checking of transformer ``params``.

A transformer factory validates its params once, when a mapping is loaded or compiled, so a
typo (``case: camel``) fails before any API call instead of on every record.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: A transformer as users register it: ``fn(value, params) -> value``.
TransformerFn = Callable[[Any, dict[str, Any]], Any]
#: A transformer with its params bound: ``fn(value) -> value``.
CompiledTransformer = Callable[[Any], Any]


class TransformerParamError(ValueError):
    """Bad params for a transformer; ``param`` names the offending key (None: the whole map)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def check_keys(params: dict[str, Any], allowed: tuple[str, ...]) -> None:
    """Reject param keys the transformer does not read (typos would otherwise be silent)."""
    for key in params:
        if key not in allowed:
            shown = ", ".join(allowed) if allowed else "(none)"
            raise TransformerParamError(f"unknown param {key!r}; allowed: {shown}", key)


def get_str(params: dict[str, Any], key: str, default: str | None = None, *, allow_empty: bool = True) -> str:
    """A string param; ``None`` default makes it required."""
    if key not in params:
        if default is None:
            raise TransformerParamError(f"param {key!r} is required", key)
        return default
    value = params[key]
    if not isinstance(value, str):
        raise TransformerParamError(f"param {key!r} must be a string, got {type(value).__name__}", key)
    if not allow_empty and value == "":
        raise TransformerParamError(f"param {key!r} must not be empty", key)
    return value


def get_bool(params: dict[str, Any], key: str, default: bool) -> bool:
    value = params.get(key, default)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in (
        "true",
        "false",
        "yes",
        "no",
        "1",
        "0",
        "on",
        "off",
    ):
        return value.strip().lower() in ("true", "yes", "1", "on")
    raise TransformerParamError(f"param {key!r} must be a boolean, got {value!r}", key)


def get_choice(params: dict[str, Any], key: str, default: str, choices: tuple[str, ...]) -> str:
    value = params.get(key, default)
    if not isinstance(value, str) or value not in choices:
        raise TransformerParamError(f"invalid {key} {value!r}; allowed: {', '.join(choices)}", key)
    return value
