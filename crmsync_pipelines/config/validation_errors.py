"""Turning pydantic ``ValidationError``s into ``ConfigError``s a user can act on.

Pydantic reports ``loc`` tuples and messages written for developers; users need the file,
the dotted path inside it (``sync.entities.contact.direction``, ``mappings[3].cc_field``)
and what is allowed there. Values of secret keys are never echoed.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ValidationError

from crmsync_pipelines.errors import ConfigError

SECRET_KEYS = frozenset({"access_token", "secret", "password", "token", "api_key"})

_BOOL_ALLOWED = "true/false, yes/no, on/off, 1/0"


def format_loc(loc: Iterable[int | str]) -> str:
    """``("mappings", 3, "transformers", 0, "name")`` -> ``mappings[3].transformers[0].name``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _split_expected(expected: str) -> list[str]:
    """Pydantic's ``"'a', 'b' or 'c'"`` -> ``["a", "b", "c"]``."""
    cleaned = expected.replace(" or ", ", ")
    return [item.strip().strip("'\"") for item in cleaned.split(",") if item.strip()]


def _unwrap(annotation: Any) -> list[Any]:
    """The concrete types an annotation can hold (Optional/Union unpacked)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        result: list[Any] = []
        for arg in typing.get_args(annotation):
            result.extend(_unwrap(arg))
        return result
    return [annotation]


def _model_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The pydantic model class that owns the key at the end of ``loc`` (for "allowed keys")."""
    current: Any = model
    for part in loc:
        candidates = _unwrap(current)
        nxt: Any = None
        for cand in candidates:
            if isinstance(cand, type) and issubclass(cand, BaseModel) and isinstance(part, str):
                field = cand.model_fields.get(part)
                if field is not None:
                    nxt = field.annotation
                    break
            origin = typing.get_origin(cand)
            if origin in (list, tuple) and isinstance(part, int):
                nxt = typing.get_args(cand)[0]
                break
            if origin is dict:
                nxt = typing.get_args(cand)[1]
                break
        if nxt is None:
            return None
        current = nxt
    for cand in _unwrap(current):
        if isinstance(cand, type) and issubclass(cand, BaseModel):
            return cand
    return None


def _public_fields(model: type[BaseModel]) -> list[str]:
    """The keys a user may write: not excluded, and not marked ``json_schema_extra={"internal": True}``."""
    def internal(field: Any) -> bool:
        extra = field.json_schema_extra
        return isinstance(extra, dict) and bool(extra.get("internal"))

    return [name for name, field in model.model_fields.items() if not field.exclude and not internal(field)]


_BOUND_KINDS = frozenset({"greater_than", "greater_than_equal", "less_than", "less_than_equal", "finite_number"})
_NUMBER_KINDS = frozenset(
    {"int_parsing", "int_type", "int_from_float", "float_parsing", "float_type", "number_not_boolean"}
)


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def allowed_range(model: type[BaseModel], loc: tuple[int | str, ...]) -> str | None:
    """``"1..1000"``, ``"more than 0, at most 3600"``... for the numeric field at ``loc``, from its bounds."""
    if not loc or not isinstance(loc[-1], str):
        return None
    owner = _model_at(model, loc[:-1])
    field = owner.model_fields.get(loc[-1]) if owner is not None else None
    if field is None:
        return None
    bounds: dict[str, Any] = {}
    for item in field.metadata:
        for name in ("gt", "ge", "lt", "le"):
            value = getattr(item, name, None)
            if value is not None:
                bounds[name] = value
    if not bounds:
        return None
    if "ge" in bounds and "le" in bounds:
        return f"{_number(bounds['ge'])}..{_number(bounds['le'])}"
    parts = []
    if "gt" in bounds:
        parts.append(f"more than {_number(bounds['gt'])}")
    if "ge" in bounds:
        parts.append(f"at least {_number(bounds['ge'])}")
    if "lt" in bounds:
        parts.append(f"less than {_number(bounds['lt'])}")
    if "le" in bounds:
        parts.append(f"at most {_number(bounds['le'])}")
    return ", ".join(parts)


def _shown_input(loc: tuple[int | str, ...], value: Any) -> str:
    if any(isinstance(part, str) and part in SECRET_KEYS for part in loc):
        return "(hidden)"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def describe_error(error: Any, model: type[BaseModel]) -> tuple[tuple[int | str, ...], str]:
    """(location, message) for one pydantic error dict."""
    loc: tuple[int | str, ...] = tuple(error.get("loc", ()))
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    value = error.get("input")
    if loc and loc[-1] == "[key]":
        loc = loc[:-1]
        allowed = ctx.get("expected")
        message = f"unknown key {_shown_input(loc, loc[-1] if loc else value)}"
        if allowed:
            message += f"; allowed: {', '.join(_split_expected(allowed))}"
        return loc, message
    if kind == "missing":
        message = "required key is missing"
    elif kind == "extra_forbidden":
        owner = _model_at(model, loc[:-1])
        message = "unknown key"
        if owner is not None:
            message += f"; allowed: {', '.join(_public_fields(owner))}"
    elif kind in ("enum", "literal_error"):
        allowed = ", ".join(_split_expected(str(ctx.get("expected", ""))))
        message = f"invalid value {_shown_input(loc, value)}; allowed: {allowed}"
    elif kind in ("bool_parsing", "bool_type"):
        message = f"invalid boolean {_shown_input(loc, value)}; allowed: {_BOOL_ALLOWED}"
    elif kind in _BOUND_KINDS:
        message = f"{_shown_input(loc, value)} is out of range"
    elif kind in ("int_parsing", "int_type", "int_from_float"):
        message = f"expected an integer, got {_shown_input(loc, value)}"
    elif kind in ("float_parsing", "float_type", "number_not_boolean"):
        message = f"expected a number, got {_shown_input(loc, value)}"
    elif kind in ("string_type",):
        message = f"expected a string, got {type(value).__name__}"
    elif kind in ("list_type",):
        message = f"expected a list, got {type(value).__name__}"
    elif kind in ("dict_type", "model_type", "model_attributes_type"):
        message = f"expected a mapping, got {type(value).__name__}"
    elif kind == "value_error":
        message = str(ctx.get("error", error.get("msg", "invalid value")))
    else:
        message = str(error.get("msg", "invalid value"))
        if not any(isinstance(part, str) and part in SECRET_KEYS for part in loc):
            message = f"{message} (got {_shown_input(loc, value)})"
    if kind in _BOUND_KINDS or kind in _NUMBER_KINDS:
        allowed = allowed_range(model, loc)
        if allowed is not None:
            message += f"; allowed: {allowed}"
    return loc, message


def config_error_from_validation(
    exc: ValidationError, *, file: str, model: type[BaseModel], prefix: tuple[int | str, ...] = ()
) -> ConfigError:
    """One ``ConfigError`` listing every problem, the first one in the headline.

    ``prefix`` is prepended to every path, for models validated from a sub-tree of a file.
    """
    described = []
    for error in exc.errors(include_url=False):
        loc, message = describe_error(error, model)
        described.append((format_loc((*prefix, *loc)), message))
    first_path, first_message = described[0]
    extra = "".join(f"\n{file}: {p}: {m}" for p, m in described[1:])
    return ConfigError(first_message + extra, file=file, path=first_path or None)
