"""The *mapping version*: one digest of everything besides the raw record that a mapping reads.

The map stage reuses an earlier mapped payload for a record whose raw payload hash and
mapping version are both unchanged (``map_memo``, decided set-wise in DuckDB), so an
unchanged re-scan costs no mapping. The version therefore covers every input of
``FieldMapper.map`` and of the map stage's own checks:

* the mapping's rules (and the rules of every mapping a relation of it resolves through);
* the direction, the entity's required fields, and the Daktela instance zone (``from_tz: instance``);
* the transformer registry: every registered transformer and callback, identified by its
  code, its constants, its defaults and what its closure captured (recursively for captured
  functions), so registering or changing a custom transformer re-maps everything;
* the versions of crmsync and of the libraries the built-in transformers call (phonenumbers).

What cannot be fingerprinted (a transformer reading a global that changes between runs) is
outside the contract of a transformer: a transformer is a function of its value and params.
``--force-full`` re-maps every record regardless of the version.
"""

from __future__ import annotations

import hashlib
import json
import types
from importlib import metadata
from typing import TYPE_CHECKING, Any

from crmsync_pipelines.engine.entities import spec

if TYPE_CHECKING:
    from crmsync_pipelines.engine.context import EngineContext

#: Bump when the map stage's own logic (lookup key, required fields, quarantine rules) changes.
MAP_STAGE_VERSION = "1"
_SIMPLE = (str, int, float, bool, type(None), bytes)


def _package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "-"


def _value_fingerprint(value: Any, seen: set[int], depth: int) -> Any:
    """A stable, JSON-able picture of a captured value (no memory addresses)."""
    if isinstance(value, _SIMPLE):
        return repr(value)
    if depth > 8 or id(value) in seen:
        return type(value).__qualname__
    seen.add(id(value))
    if isinstance(value, types.MethodType) or isinstance(getattr(value, "__code__", None), types.CodeType):
        return function_fingerprint(value, seen, depth + 1)
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_value_fingerprint(v, seen, depth + 1) for v in value]
        return sorted(items, key=str) if isinstance(value, (set, frozenset)) else items
    if isinstance(value, dict):
        return sorted(([repr(k), _value_fingerprint(v, seen, depth + 1)] for k, v in value.items()), key=str)
    if isinstance(value, types.ModuleType):
        return value.__name__
    kind = f"{type(value).__module__}.{type(value).__qualname__}"
    call = next((k.__dict__["__call__"] for k in type(value).__mro__ if "__call__" in k.__dict__), None)
    picture: list[Any] = [kind]
    if isinstance(getattr(call, "__code__", None), types.CodeType):  # a callable object defined in Python
        picture.append(function_fingerprint(call, seen, depth + 1))
    for attr in ("func", "args", "keywords", "__wrapped__"):  # functools.partial / wraps
        if hasattr(value, attr):
            picture.append(_value_fingerprint(getattr(value, attr), seen, depth + 1))
    state = getattr(value, "__dict__", None)
    if isinstance(state, dict):
        picture.append(_value_fingerprint(state, seen, depth + 1))
    return picture


def _code_fingerprint(code: types.CodeType) -> list[Any]:
    consts = [_code_fingerprint(c) if isinstance(c, types.CodeType) else repr(c) for c in code.co_consts]
    return [code.co_name, hashlib.sha256(code.co_code).hexdigest(), consts, list(code.co_names)]


def function_fingerprint(fn: Any, seen: set[int] | None = None, depth: int = 0) -> Any:
    """Code, constants, defaults and closure of ``fn`` (a bound method: its function and object)."""
    seen = set() if seen is None else seen
    if isinstance(fn, types.MethodType):
        return [function_fingerprint(fn.__func__, seen, depth + 1), _value_fingerprint(fn.__self__, seen, depth + 1)]
    code = getattr(fn, "__code__", None)
    if not isinstance(code, types.CodeType):
        return _value_fingerprint(fn, seen, depth + 1)
    closure = [_value_fingerprint(cell.cell_contents, seen, depth + 1) for cell in (fn.__closure__ or ())
               if _cell_filled(cell)]
    return [getattr(fn, "__module__", None), getattr(fn, "__qualname__", None), _code_fingerprint(code),
            _value_fingerprint(getattr(fn, "__defaults__", None) or (), seen, depth + 1),
            _value_fingerprint(getattr(fn, "__kwdefaults__", None) or {}, seen, depth + 1), closure]


def _cell_filled(cell: types.CellType) -> bool:
    try:
        cell.cell_contents  # noqa: B018 - an empty cell raises ValueError
    except ValueError:
        return False
    return True


def registry_fingerprint(registry: Any) -> str:
    """Digest of every transformer factory and callback in a ``TransformerRegistry``."""
    picture = [[kind, name, function_fingerprint(fn)] for kind, name, fn in registry.functions()]
    return hashlib.sha256(json.dumps(picture, default=str).encode("utf-8")).hexdigest()


def _mapping_picture(mapping: Any) -> Any:
    return mapping.model_dump(mode="json")


def mapping_version(ctx: EngineContext, entity: str) -> str:
    """The version of ``entity``'s mapping as the map stage would run it now (hex digest)."""
    mapping = ctx.mapping(entity)
    related = sorted({rule.relation.entity for rule in mapping.mappings if rule.relation is not None})
    related_pictures = []
    for name in related:
        entry = ctx.config.sync.entities.get(name)
        related_pictures.append([name, None if entry is None or entry.mapping is None
                                 else _mapping_picture(entry.mapping)])
    entity_spec = spec(entity)
    picture = {
        "stage": MAP_STAGE_VERSION,
        "entity": entity,
        "direction": entity_spec.direction,
        "required": list(entity_spec.required),
        "mapping": _mapping_picture(mapping),
        "related": related_pictures,
        "zone": ctx.instance_timezone(),
        "registry": registry_fingerprint(ctx.mapper.registry),
        "packages": [_package_version("crmsync"), _package_version("phonenumbers")],
    }
    return hashlib.sha256(json.dumps(picture, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def memo_relations(mapping: Any) -> list[tuple[str, str]] | None:
    """(related entity, JSON path of the source field) per relation rule, or None when the mapping
    has a relation the memo cannot follow set-wise (resolved through a CRM call, not staging)."""
    out: list[tuple[str, str]] = []
    for rule in mapping.mappings:
        if rule.relation is None:
            continue
        if not rule.crm_field or rule.relation.resolve_from != "id":
            return None
        out.append((rule.relation.entity, "$." + ".".join(json.dumps(part) for part in rule.crm_field.split("."))))
    return out
