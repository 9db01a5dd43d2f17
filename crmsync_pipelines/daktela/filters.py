"""A small typed filter model and its wire encoding.

Daktela accepts three filter encodings; we always emit the nested group form
(``filter[logic]``, ``filter[filters][i][field|operator|value]``) because it is the only one
that expresses OR and nested groups, which keyset paging needs. Building filters as objects
instead of query-string fragments means an operator typo or a scalar passed to ``in`` fails
here, before a request is sent, instead of as a 400 from the server.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

Scalar = str | int | float | bool

#: Operators Daktela understands (section 3.2 of the API notes).
SCALAR_OPERATORS = frozenset(
    {
        "eq", "neq", "gt", "gte", "lt", "lte", "like", "notlike",
        "contains", "doesnotcontain", "startswith", "endswith",
    }
)  # fmt: skip
LIST_OPERATORS = frozenset({"in", "notin"})
NULL_OPERATORS = frozenset({"isnull", "isnotnull"})
OPERATORS = SCALAR_OPERATORS | LIST_OPERATORS | NULL_OPERATORS

SortDir = Literal["asc", "desc"]
SortSpec = Sequence[tuple[str, SortDir]]


@dataclass(frozen=True)
class F:
    """One condition: ``F("edited", "gte", "2024-01-01 00:00:00")``, ``F("name", "in", ["a", "b"])``."""

    field: str
    operator: str
    value: Scalar | Sequence[Scalar] | None = None

    def __post_init__(self) -> None:
        if not self.field:
            raise ValueError("filter field must not be empty")
        if self.operator not in OPERATORS:
            raise ValueError(f"unknown filter operator {self.operator!r}; allowed: {', '.join(sorted(OPERATORS))}")
        if self.operator in LIST_OPERATORS:
            if isinstance(self.value, (str, bytes)) or not isinstance(self.value, Sequence):
                raise ValueError(f"operator {self.operator!r} on {self.field!r} needs a list value")
        elif self.operator in NULL_OPERATORS:
            if self.value is not None:
                raise ValueError(f"operator {self.operator!r} on {self.field!r} takes no value")
        elif self.value is None or isinstance(self.value, (list, tuple)):
            raise ValueError(f"operator {self.operator!r} on {self.field!r} needs a single value")


@dataclass(frozen=True, init=False)
class And:
    """All conditions must hold."""

    filters: tuple[Filter, ...]

    def __init__(self, *filters: Filter) -> None:
        object.__setattr__(self, "filters", tuple(filters))


@dataclass(frozen=True, init=False)
class Or:
    """At least one condition must hold."""

    filters: tuple[Filter, ...]

    def __init__(self, *filters: Filter) -> None:
        object.__setattr__(self, "filters", tuple(filters))


Filter = F | And | Or


def _wire_value(value: Scalar) -> str:
    """Booleans go as ``true``/``false`` (what PHP's filter parser expects), the rest as text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _encode_group(prefix: str, logic: str, members: Iterable[Filter], out: list[tuple[str, str]]) -> None:
    out.append((f"{prefix}[logic]", logic))
    for i, member in enumerate(members):
        _encode_member(f"{prefix}[filters][{i}]", member, out)


def _encode_member(prefix: str, member: Filter, out: list[tuple[str, str]]) -> None:
    if isinstance(member, And):
        _encode_group(prefix, "and", member.filters, out)
    elif isinstance(member, Or):
        _encode_group(prefix, "or", member.filters, out)
    else:
        out.append((f"{prefix}[field]", member.field))
        out.append((f"{prefix}[operator]", member.operator))
        if member.operator in LIST_OPERATORS:
            assert isinstance(member.value, Sequence)
            for j, item in enumerate(member.value):
                out.append((f"{prefix}[value][{j}]", _wire_value(item)))
        elif member.operator not in NULL_OPERATORS:
            assert member.value is not None and not isinstance(member.value, (list, tuple))
            out.append((f"{prefix}[value]", _wire_value(member.value)))  # type: ignore[arg-type]


def encode_filter(flt: Filter | Sequence[Filter] | None) -> list[tuple[str, str]]:
    """Query parameters for a filter; a sequence or a single condition becomes an AND group."""
    if flt is None:
        return []
    out: list[tuple[str, str]] = []
    if isinstance(flt, Or):
        _encode_group("filter", "or", flt.filters, out)
    elif isinstance(flt, And):
        _encode_group("filter", "and", flt.filters, out)
    elif isinstance(flt, F):
        _encode_group("filter", "and", (flt,), out)
    else:
        members = tuple(flt)
        if not members:
            return []
        _encode_group("filter", "and", members, out)
    return out


def encode_sort(sort: SortSpec | None) -> list[tuple[str, str]]:
    """``sort[i][field]`` / ``sort[i][dir]`` parameters."""
    out: list[tuple[str, str]] = []
    for i, (field, direction) in enumerate(sort or ()):
        if direction not in ("asc", "desc"):
            raise ValueError(f"sort direction for {field!r} must be 'asc' or 'desc', got {direction!r}")
        out.append((f"sort[{i}][field]", field))
        out.append((f"sort[{i}][dir]", direction))
    return out


def encode_fields(fields: Sequence[str] | None) -> list[tuple[str, str]]:
    """``fields[i]`` projection parameters."""
    if isinstance(fields, str):
        raise ValueError("fields must be a list of field names, not a string")
    return [(f"fields[{i}]", f) for i, f in enumerate(fields or ())]
