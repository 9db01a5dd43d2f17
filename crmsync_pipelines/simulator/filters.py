"""Filters, sorting and their translation to SQL over the JSON record store.

All three filter encodings seen on the wire (nested group, flat list, single) normalise to one
tree; the tree compiles to a SQL ``WHERE`` so a page of 100,000 records costs SQLite work, not
Python work per record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from crmsync_pipelines.simulator.messages import QueryError
from crmsync_pipelines.simulator.models import MODELS, Kind, ModelDef

POSITIVE_OPERATORS = {
    "eq", "gt", "gte", "lt", "lte", "like", "in", "isnull", "contains", "startswith", "endswith",
}
#: negated operator -> the positive operator it negates
NEGATIONS = {
    "neq": "eq", "notlike": "like", "notin": "in", "isnotnull": "isnull",
    "doesnotcontain": "contains", "notbegins": "startswith", "notends": "endswith",
}
#: alias -> canonical operator name
OPERATOR_ALIASES = {"begins": "startswith", "ends": "endswith", "not_in": "notin"}
ALL_OPERATORS = POSITIVE_OPERATORS | set(NEGATIONS) | set(OPERATOR_ALIASES)
_LIKE_FAMILY = {"like", "contains", "startswith", "endswith"}
_SAFE_KEY = re.compile(r"^[A-Za-z0-9_]+$")
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2})(:\d{2})?(\.\d+)?([+-]\d{2}:?\d{2}|Z)?$")


@dataclass
class Condition:
    """One ``field operator value`` test."""

    field: str
    operator: str
    value: Any = None
    ignore_case: bool = False


@dataclass
class Group:
    """``and``/``or`` over conditions and nested groups."""

    logic: str = "and"
    children: list[Condition | Group] = field(default_factory=list)


def parse_filter(raw: Any) -> Group | None:
    """Normalise the nested (a), flat (b) and single (c) encodings into one tree."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, list):
        return Group("and", [_parse_node(item) for item in raw])
    if isinstance(raw, dict):
        node = _parse_node(raw)
        return node if isinstance(node, Group) else Group("and", [node])
    raise QueryError("filter must be a bracket array, e.g. filter[field]=...&filter[operator]=...")


def _parse_node(raw: Any) -> Condition | Group:
    if not isinstance(raw, dict):
        raise QueryError(f"malformed filter entry: {raw!r}")
    if "filters" in raw or ("logic" in raw and "field" not in raw):
        logic = str(raw.get("logic", "and")).lower()
        if logic not in ("and", "or"):
            raise QueryError(f"unknown filter logic {logic!r}; allowed: and, or")
        children = raw.get("filters", [])
        if isinstance(children, dict):
            children = [children] if ("field" in children or "filters" in children) else list(children.values())
        if not isinstance(children, list):
            raise QueryError("filter[filters] must be a list")
        return Group(logic, [_parse_node(child) for child in children])
    if "field" not in raw:
        raise QueryError("filter entry has no field")
    operator = str(raw.get("operator", "eq")).lower()
    if operator not in ALL_OPERATORS:
        raise QueryError(f"unknown filter operator {operator!r}")
    operator = OPERATOR_ALIASES.get(operator, operator)
    ignore_case = str(raw.get("ignoreCase", "false")).lower() in ("true", "1")
    return Condition(str(raw["field"]), operator, raw.get("value"), ignore_case)


def normalise_datetime(value: str) -> str:
    """Bring a filter datetime to the stored ``YYYY-MM-DD HH:MM:SS`` form (a bare date = midnight)."""
    if _DATE_ONLY.match(value):
        return f"{value} 00:00:00"
    match = _DATETIME.match(value)
    if match:
        return f"{match.group(1)} {match.group(2)}{match.group(3) or ':00'}"
    return value


def iter_conditions(node: Group | Condition | None) -> list[Condition]:
    """Every condition in a tree, for checks such as "does it filter on a datetime"."""
    if node is None:
        return []
    if isinstance(node, Condition):
        return [node]
    found: list[Condition] = []
    for child in node.children:
        found.extend(iter_conditions(child))
    return found


@dataclass
class _Scalar:
    expr: str
    kind: Kind
    target: str | None = None


@dataclass
class _ListOf:
    alias: str
    path: str
    kind: Kind
    target: str | None = None


@dataclass
class _Via:
    expr: str
    target: ModelDef
    rest: str


class SqlCompiler:
    """Compiles filter trees and sort specs of one query into SQL with bound parameters."""

    def __init__(self) -> None:
        self.params: list[Any] = []
        self._aliases = 0

    def where(self, model: ModelDef, node: Group | Condition | None, alias: str = "r") -> str:
        if node is None:
            return "1"
        if isinstance(node, Condition):
            return self._condition(model, node, alias)
        parts = [self.where(model, child, alias) for child in node.children]
        if not parts:
            return "1"
        joiner = " AND " if node.logic == "and" else " OR "
        return "(" + joiner.join(parts) + ")"

    def order_by(self, model: ModelDef, sort: Any, alias: str = "r") -> str:
        entries = self._sort_entries(sort)
        clauses = []
        for sort_field, direction in entries:
            target = self.target(model, sort_field, alias)
            if isinstance(target, _Scalar):
                expr = target.expr
            elif isinstance(target, _ListOf):
                expr = f"json_extract({target.alias}.data, '{target.path}[0]')"
            else:
                raise QueryError(f"cannot sort by {sort_field!r}")
            clauses.append(f"{expr} {direction}")
        if not clauses:
            return f"{alias}.shuffle, {alias}.rowid"
        clauses.append(f"{alias}.rowid")
        return ", ".join(clauses)

    @staticmethod
    def _sort_entries(sort: Any) -> list[tuple[str, str]]:
        if sort is None or sort == "":
            return []
        items = sort if isinstance(sort, list) else [sort]
        entries = []
        for item in items:
            if isinstance(item, str):
                sort_field, direction = item, "asc"
            elif isinstance(item, dict) and "field" in item:
                sort_field, direction = str(item["field"]), str(item.get("dir", "asc")).lower()
            else:
                raise QueryError("sort must be sort[i][field]=...&sort[i][dir]=asc|desc")
            if direction not in ("asc", "desc"):
                raise QueryError(f"unknown sort direction {direction!r}; allowed: asc, desc")
            entries.append((sort_field, direction.upper()))
        return entries

    def target(self, model: ModelDef, path: str, alias: str) -> _Scalar | _ListOf | _Via:
        head, _, rest = path.partition(".")
        spec = model.fields.get(head)
        if spec is None:
            raise QueryError(f"unknown field {path!r} on {model.name}")
        if spec.kind is Kind.CUSTOM:
            if not rest or not _SAFE_KEY.match(rest):
                raise QueryError(f"custom field path must be customFields.<key>, got {path!r}")
            return _ListOf(alias, f'$."customFields"."{rest}"', Kind.STR)
        if spec.kind is Kind.RELLIST:
            if rest:
                raise QueryError(f"cannot filter on a sub-field of list relation {head!r}")
            return _ListOf(alias, f'$."{head}"', Kind.REL, spec.target)
        expr = self._column(model, head, alias)
        if spec.kind is Kind.REL and rest:
            assert spec.target is not None
            return _Via(expr, MODELS[spec.target], rest)
        if rest:
            if spec.kind is not Kind.JSON or not all(_SAFE_KEY.match(p) for p in rest.split(".")):
                raise QueryError(f"unknown field {path!r} on {model.name}")
            dotted = ".".join(f'"{p}"' for p in rest.split("."))
            return _Scalar(f"json_extract({alias}.data, '$.\"{head}\".{dotted}')", Kind.STR)
        return _Scalar(expr, spec.kind, spec.target)

    @staticmethod
    def _column(model: ModelDef, name: str, alias: str) -> str:
        if name == model.key:
            return f"CAST({alias}.k AS INTEGER)" if model.int_key else f"{alias}.k"
        if name == model.ts_field:
            return f"{alias}.ts"
        return f"json_extract({alias}.data, '$.\"{name}\"')"

    def _condition(self, model: ModelDef, cond: Condition, alias: str) -> str:
        target = self.target(model, cond.field, alias)
        negated = cond.operator in NEGATIONS
        operator = NEGATIONS.get(cond.operator, cond.operator)
        if isinstance(target, _Via):
            self._aliases += 1
            sub = f"s{self._aliases}"
            key = f"CAST({sub}.k AS INTEGER)" if target.target.int_key else f"{sub}.k"
            self.params.append(target.target.name)
            inner = self._condition(
                target.target, Condition(target.rest, cond.operator, cond.value, cond.ignore_case), sub
            )
            return f"{target.expr} IN (SELECT {key} FROM records {sub} WHERE {sub}.model = ? AND {inner})"
        if isinstance(target, _ListOf):
            if operator == "isnull":
                test = "je.value IS NOT NULL AND je.value != ''"
                exists = f"EXISTS (SELECT 1 FROM json_each({target.alias}.data, '{target.path}') je WHERE {test})"
                return exists if negated else f"NOT {exists}"
            test = self._test("je.value", target.kind, target.target, operator, cond)
            exists = f"EXISTS (SELECT 1 FROM json_each({target.alias}.data, '{target.path}') je WHERE {test})"
            return f"NOT {exists}" if negated else exists
        if operator == "isnull":
            test = f"({target.expr} IS NULL OR {target.expr} = '')"
            return f"NOT {test}" if negated else test
        test = self._test(target.expr, target.kind, target.target, operator, cond)
        return f"NOT ({test})" if negated else test

    def _test(self, expr: str, kind: Kind, target: str | None, operator: str, cond: Condition) -> str:
        if operator in _LIKE_FAMILY:
            pattern = "" if cond.value is None else str(cond.value)
            if operator != "like":
                escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                pattern = {
                    "contains": f"%{escaped}%", "startswith": f"{escaped}%", "endswith": f"%{escaped}"
                }[operator]
            self.params.append(pattern)
            return f"{expr} LIKE ? ESCAPE '\\'"
        lowered = cond.ignore_case and kind in (Kind.STR, Kind.REL, Kind.ITEM)
        left = f"lower({expr})" if lowered else expr
        if operator == "in":
            values = cond.value if isinstance(cond.value, list) else [cond.value]
            if not values:
                return "0"
            coerced = [self._coerce(v, kind, target, cond, lowered) for v in values]
            self.params.extend(coerced)
            return f"{left} IN ({', '.join('?' for _ in coerced)})"
        sql_op = {"eq": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[operator]
        if isinstance(cond.value, list):
            raise QueryError(f"operator {operator!r} on {cond.field!r} takes one value, not a list")
        self.params.append(self._coerce(cond.value, kind, target, cond, lowered))
        return f"{left} {sql_op} ?"

    @staticmethod
    def _coerce(value: Any, kind: Kind, target: str | None, cond: Condition, lowered: bool) -> Any:
        if value is None:
            return None
        text = str(value)
        try:
            if kind is Kind.INT or (kind in (Kind.REL,) and target and MODELS[target].int_key):
                return int(text)
            if kind is Kind.BOOL:
                if text.lower() in ("true", "1"):
                    return 1
                if text.lower() in ("false", "0", ""):
                    return 0
                raise ValueError(text)
        except ValueError:
            raise QueryError(f"invalid value {text!r} for field {cond.field!r}") from None
        if kind is Kind.DATETIME:
            return normalise_datetime(text)
        return text.casefold() if lowered else text
