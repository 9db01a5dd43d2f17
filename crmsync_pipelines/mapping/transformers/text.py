"""The value-shaping transformers: boolean, string_case, default_value, callback, prefix,
strip_prefix, wrap_array, url, join and value_map.

Behaviour follows the PHP SDK (reference section C) except where its behaviour lost data
silently; those places raise a ``ValueError`` (which the mapper reports per record) or are
rejected at load time. Each factory validates params once and returns a one-argument
callable, so the per-record cost is a single call.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from crmsync_pipelines.mapping.transformers.params import (
    CompiledTransformer,
    TransformerParamError,
    check_keys,
    get_bool,
    get_choice,
    get_str,
)

if TYPE_CHECKING:
    from crmsync_pipelines.mapping.transformers.registry import TransformerRegistry

_TRUE_WORDS = frozenset({"1", "true", "yes", "on", "y", "t"})
_FALSE_WORDS = frozenset({"0", "false", "no", "off", "n", "f", ""})
_TITLE_WORD_START = re.compile(r"(^|[\s\-])(\w)")


def to_text(value: Any) -> str:
    """Stringify a scalar the way every transformer does: null -> "", booleans -> true/false."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def boolean(params: dict[str, Any], registry: TransformerRegistry) -> CompiledTransformer:
    """Strings by word (trimmed, case-insensitive); other values by truthiness.

    Unlike the PHP SDK, a string that is neither a true nor a false word is an error rather
    than silently ``false``.
    """
    check_keys(params, ())

    def run(value: Any) -> Any:
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            word = value.strip().lower()
            if word in _TRUE_WORDS:
                return True
            if word in _FALSE_WORDS:
                return False
            raise ValueError(f"not a boolean word: {value!r}")
        return bool(value)

    return run


def _title(text: str) -> str:
    return _TITLE_WORD_START.sub(lambda m: m.group(1) + m.group(2).upper(), text.lower())


def string_case(params: dict[str, Any], registry: TransformerRegistry) -> CompiledTransformer:
    """lower / upper / title, unicode-aware; non-strings pass through."""
    check_keys(params, ("case",))
    case = get_choice(params, "case", "lower", ("lower", "upper", "title"))
    convert = {"lower": str.lower, "upper": str.upper, "title": _title}[case]

    def run(value: Any) -> Any:
        return convert(value) if isinstance(value, str) else value

    return run


def default_value(params: dict[str, Any], registry: TransformerRegistry) -> CompiledTransformer:
    """Replaces only null; ``""`` is a value the CRM chose."""
    check_keys(params, ("value",))
    default = params.get("value")

    def run(value: Any) -> Any:
        return default if value is None else value

    return run


def callback(params: dict[str, Any], registry: TransformerRegistry) -> CompiledTransformer:
    """A Python callable registered with ``TransformerRegistry.register_callback``.

    Params other than ``name`` are passed to the callable, so one callable can serve
    several rules.
    """
    name = get_str(params, "name", allow_empty=False)
    fn = registry.callback(name)
    if fn is None:
        known = ", ".join(registry.callback_names()) or "(none)"
        raise TransformerParamError(f"unknown callback {name!r} (registered: {known})", "name")
    extra = {key: value for key, value in params.items() if key != "name"}

    def run(value: Any) -> Any:
        return fn(value, extra)

    return run


def prefix(params: dict[str, Any], registry: TransformerRegistry) -> CompiledTransformer:
    """Prepend a string; null and "" pass through; a list gets each element prefixed."""
    check_keys(params, ("value",))
    head = get_str(params, "value", "")

    def one(value: Any) -> Any:
        if type(value) is str:
            return head + value if value else value
        if value is None:
            return value
        if isinstance(value, dict):
            raise ValueError("cannot prefix a mapping")
        return head + to_text(value)

    def run(value: Any) -> Any:
        if isinstance(value, list):
            return [one(item) for item in value]
        return one(value)

    return run


def strip_prefix(params: dict[str, Any], registry: TransformerRegistry) -> CompiledTransformer:
    """Remove a prefix; with ``strict: true`` a value without it becomes null.

    An empty prefix is rejected at load time (in the PHP SDK it nulled every value when strict).
    """
    check_keys(params, ("value", "strict"))
    head = get_str(params, "value", allow_empty=False)
    strict = get_bool(params, "strict", False)
    size = len(head)

    def run(value: Any) -> Any:
        if not isinstance(value, str) or value == "":
            return value
        if value.startswith(head):
            return value[size:]
        return None if strict else value

    return run


def as_list(value: Any) -> list[Any]:
    """null and "" -> [], a list stays, a tuple becomes a list, a scalar -> [scalar]."""
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, tuple):
        return list(value)
    return [value]


def wrap_array(params: dict[str, Any], registry: TransformerRegistry) -> CompiledTransformer:
    """``as_list`` as a transformer (Daktela custom fields are lists; the mapper also wraps them)."""
    check_keys(params, ())
    return as_list


def url(params: dict[str, Any], registry: TransformerRegistry) -> CompiledTransformer:
    """Fill ``{value}`` in a template; ``encode: true`` percent-encodes the value."""
    check_keys(params, ("template", "encode"))
    template = get_str(params, "template", "{value}")
    if "{value}" not in template:
        raise TransformerParamError("param 'template' must contain {value}", "template")
    encode = get_bool(params, "encode", False)

    def run(value: Any) -> Any:
        if value is None or value == "":
            return value
        text = to_text(value)
        return template.replace("{value}", quote(text, safe="") if encode else text)

    return run


def join(params: dict[str, Any], registry: TransformerRegistry) -> CompiledTransformer:
    """Lists: drop null and "" (keep 0), join, trim; strings pass; other scalars stringified."""
    check_keys(params, ("separator",))
    separator = get_str(params, "separator", " ")

    def run(value: Any) -> Any:
        if isinstance(value, list):
            return separator.join(to_text(item) for item in value if item is not None and item != "").strip()
        if isinstance(value, str):
            return value
        return to_text(value)

    return run


def _map_key(value: Any) -> str:
    if value is None:
        return "null"
    return to_text(value)


def value_map(params: dict[str, Any], registry: TransformerRegistry) -> CompiledTransformer:
    """Dictionary lookup on the stringified value; unmatched -> ``default`` if given, else unchanged."""
    check_keys(params, ("map", "default"))
    table = params.get("map")
    if not isinstance(table, dict):
        raise TransformerParamError("param 'map' must be a mapping of value -> replacement", "map")
    lookup = {_map_key(key): replacement for key, replacement in table.items()}
    has_default = "default" in params
    default = params.get("default")

    def run(value: Any) -> Any:
        if isinstance(value, (list, dict)):
            return default if has_default else value
        key = _map_key(value)
        if key in lookup:
            return lookup[key]
        return default if has_default else value

    return run


def strval(value: Any, params: dict[str, Any]) -> str:
    """The built-in ``strval`` callback: null -> "", else the value as text."""
    return to_text(value)
