"""Write coercion, validation and read rendering of records.

Writes accept relations as names (or objects with a name) and store names; reads expand them
to full objects, render empty custom fields as ``[]`` and add ``_sys`` — the quirks a client
must cope with, reproduced in one place.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from crmsync_pipelines.simulator.filters import normalise_datetime
from crmsync_pipelines.simulator.messages import QueryError, message
from crmsync_pipelines.simulator.models import MODELS, Field, Kind, ModelDef

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_STORED_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
READ_ONLY_KEYS = {"_sys", "created", "edited"}


def local_now(timezone: str) -> str:
    """The instance-local wall clock, second precision, naive — how Daktela writes times."""
    return datetime.now(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M:%S")


class FormErrors:
    """Collects per-field validation messages in the ``error.form`` shape of a 400."""

    def __init__(self, locale: str) -> None:
        self.locale = locale
        self.form: dict[str, Any] = {}

    def add(self, field_name: str, key: str) -> None:
        self.form.setdefault(field_name, message(self.locale, key))

    def add_custom(self, cf_key: str, key: str) -> None:
        nested = self.form.setdefault("customFields", {})
        nested.setdefault(cf_key, []).append(message(self.locale, key))

    def __bool__(self) -> bool:
        return bool(self.form)


def default_value(name: str, spec: Field) -> Any:
    if spec.kind is Kind.CUSTOM:
        return {}
    if spec.kind is Kind.RELLIST:
        return []
    if spec.kind is Kind.BOOL:
        return False
    if name == "description":
        return ""
    return None


def relation_name(value: Any, target: ModelDef | None) -> Any:
    """A relation as written by a client: a name, or an object carrying one."""
    if isinstance(value, dict):
        value = value.get("name", value.get("id_call")) if value else None
    if value is None or value == "":
        return None
    if target is not None and target.int_key:
        return int(value)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError("relation must be a name")
    return str(value)


def coerce_field(name: str, spec: Field, value: Any) -> Any:
    """Bring one written value to its stored form; ValueError when it cannot be."""
    if value is None:
        return default_value(name, spec) if spec.kind in (Kind.CUSTOM, Kind.RELLIST) else None
    kind = spec.kind
    if kind is Kind.STR:
        if isinstance(value, dict | list):
            raise ValueError("not a string")
        return value if isinstance(value, str) else str(value)
    if kind is Kind.INT:
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, str) and value.strip() == "":
            return None
        return int(value)
    if kind is Kind.BOOL:
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text in ("true", "1"):
            return True
        if text in ("false", "0", ""):
            return False
        raise ValueError("not a boolean")
    if kind is Kind.DATETIME:
        if value == "":
            return None
        text = normalise_datetime(str(value))
        if not _STORED_DATETIME.match(text):
            raise ValueError("not a datetime")
        return text
    if kind is Kind.REL:
        return relation_name(value, MODELS.get(spec.target or ""))
    if kind is Kind.RELLIST:
        items = value if isinstance(value, list) else [value]
        target = MODELS.get(spec.target or "")
        return [n for n in (relation_name(v, target) for v in items) if n is not None]
    if kind is Kind.ITEM:
        return relation_name(value, None)
    if kind is Kind.CUSTOM:
        return coerce_custom_fields(value)
    return value


class CustomFieldNotArrayError(ValueError):
    """Custom field values that are not JSON arrays; real Daktela answers 400 "Value must be an array"."""

    def __init__(self, keys: list[str]) -> None:
        super().__init__(f"custom field(s) {', '.join(keys)}: value must be an array")
        self.keys = keys


def coerce_custom_fields(value: Any) -> dict[str, list[Any]]:
    """Every custom field value must be a list (daktela-v6-api.md §5.5); null means "empty"."""
    if value == [] or value == {}:
        return {}
    if not isinstance(value, dict):
        raise ValueError("customFields must be an object of lists")
    scalars = [str(key) for key, raw in value.items() if raw is not None and not isinstance(raw, list)]
    if scalars:
        raise CustomFieldNotArrayError(scalars)
    result: dict[str, list[Any]] = {}
    for key, raw in value.items():
        items = raw if isinstance(raw, list) else [raw]
        result[str(key)] = [None if v is None else str(v) for v in items]
    return result


def coerce_record(
    model: ModelDef, body: dict[str, Any], errors: FormErrors, *, keep_unknown: bool, api: bool
) -> dict[str, Any]:
    """Coerce every known field; API writes drop unknown and read-only keys, server-side keeps them."""
    out: dict[str, Any] = {}
    for name, value in body.items():
        spec = model.fields.get(name)
        if spec is None:
            if keep_unknown and name != "_sys":
                out[name] = value
            continue
        if api and (not spec.writable or name in READ_ONLY_KEYS):
            continue
        try:
            out[name] = coerce_field(name, spec, value)
        except CustomFieldNotArrayError as exc:
            for key in exc.keys:
                errors.add_custom(key, "not_array")
            out[name] = value
        except (ValueError, TypeError):
            errors.add(name, "bad_value")
            out[name] = value
    return out


def validate_record(
    model: ModelDef,
    record: dict[str, Any],
    written: dict[str, Any],
    errors: FormErrors,
    *,
    creating: bool,
    exists: Callable[[str, Any], bool],
) -> None:
    """Required fields, foreign keys and EMAIL custom fields, as the real server checks them."""
    for name in model.required + (model.required_on_create if creating else ()):
        value = record.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            errors.add(name, "required")
    for name, spec in model.relation_fields.items():
        if name not in written or name in errors.form or spec.target is None:
            continue
        value = written[name]
        names = value if isinstance(value, list) else [value]
        if any(n is not None and not exists(spec.target, n) for n in names):
            errors.add(name, "fk")
    custom = written.get("customFields")
    if isinstance(custom, dict) and "customFields" not in errors.form:
        for key, values in custom.items():
            if model.cf_scheme.get(key, {}).get("type") != "EMAIL":
                continue
            if any(v not in (None, "") and not _EMAIL.match(str(v)) for v in values):
                errors.add_custom(key, "email")


def echo(model: ModelDef, record: dict[str, Any]) -> dict[str, Any]:
    """The ``result`` echo of a rejected write: what was sent, with ``_sys.hash`` null."""
    out = {k: v for k, v in record.items() if k != "_sys"}
    out["_sys"] = {"hash": None, "model": model.name}
    return out


def projection_roots(fields: Any, model: ModelDef) -> list[str] | None:
    """The requested ``fields`` (``fields[i]=`` or comma form) as dotted paths, validated."""
    if fields is None or fields == "":
        return None
    items = fields if isinstance(fields, list) else [fields]
    paths: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise QueryError("fields must be fields[i]=name or fields=a,b")
        paths.extend(p.strip() for p in item.split(",") if p.strip())
    for path in paths:
        root = path.split(".", 1)[0]
        if root != "_sys" and root not in model.fields:
            raise QueryError(f"unknown field {path!r} in fields on {model.name}")
    return paths


def project(record: dict[str, Any], paths: list[str]) -> dict[str, Any]:
    """Keep only the requested dotted paths of a rendered record."""
    out: dict[str, Any] = {}
    for path in paths:
        source: Any = record
        target = out
        parts = path.split(".")
        for depth, part in enumerate(parts):
            if not isinstance(source, dict) or part not in source:
                if depth > 0 and isinstance(source, list) and not source:
                    target.setdefault(part, None)
                break
            if depth == len(parts) - 1:
                target[part] = source[part]
            else:
                source = source[part]
                if not isinstance(source, dict):
                    target[part] = source
                    break
                nxt = target.get(part)
                if not isinstance(nxt, dict):
                    nxt = {}
                    target[part] = nxt
                target = nxt
    return out
