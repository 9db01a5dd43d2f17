"""Pydantic models of a mapping file (schema compatible with the PHP SDK's files).

A ``Mapping`` is pure data: it is validated at load time (``load_mapping``) and compiled
into fast per-rule steps by ``FieldMapper``; nothing here runs transformers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Direction = Literal["crm_to_cc", "cc_to_crm"]
MultiValueStrategy = Literal["as_array", "join", "split", "first", "last"]

#: The direction the engine syncs each entity in; a mapping's direction follows its entity.
ENTITY_DIRECTIONS: dict[str, Direction] = {
    "account": "crm_to_cc",
    "contact": "crm_to_cc",
    "activity": "cc_to_crm",
}

#: Entities a relation can point at (records the engine can resolve into a Daktela name).
RELATION_ENTITIES: tuple[str, ...] = ("account", "contact")


def direction_for_entity(entity: str) -> Direction:
    """The direction a mapping for ``entity`` is used in.

    Raises ``ValueError`` for an entity the engine does not sync.
    """
    try:
        return ENTITY_DIRECTIONS[entity]
    except KeyError:
        allowed = ", ".join(ENTITY_DIRECTIONS)
        raise ValueError(f"unknown entity {entity!r}; allowed: {allowed}") from None


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TransformerSpec(_Frozen):
    name: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("params", mode="before")
    @classmethod
    def _null_params_are_empty(cls, value: Any) -> Any:
        # The PHP SDK's files sometimes write ``params:`` with nothing after it.
        return {} if value is None else value


class MultiValue(_Frozen):
    strategy: MultiValueStrategy
    separator: str = ","


class Relation(_Frozen):
    entity: str = Field(min_length=1)
    resolve_from: str = Field(min_length=1)
    resolve_to: str = Field(min_length=1)


class MappingRule(_Frozen):
    """One field rule; ``has_value`` tells a static ``value: null`` from no static value."""

    cc_field: str = Field(min_length=1)
    crm_field: str | None = Field(default=None, min_length=1)
    transformers: list[TransformerSpec] = Field(default_factory=list)
    multi_value: MultiValue | None = None
    relation: Relation | None = None
    append: bool = False
    value: Any = None
    #: Set by the loader from the presence of ``value``; not a key users write (so the
    #: "allowed keys" of an error do not list it).
    has_value: bool = Field(default=False, json_schema_extra={"internal": True})

    @model_validator(mode="before")
    @classmethod
    def _mark_static_value(cls, data: Any) -> Any:
        if isinstance(data, dict) and "value" in data and "has_value" not in data:
            return {**data, "has_value": True}
        return data

    @field_validator("transformers", mode="before")
    @classmethod
    def _null_transformers_are_empty(cls, value: Any) -> Any:
        return [] if value is None else value

    @field_validator("cc_field", "crm_field")
    @classmethod
    def _no_empty_segment(cls, value: str | None) -> str | None:
        # 'address..city' or 'name.' is a typo: it reads null for every record (so the rule
        # clears the target everywhere) or writes under an empty key.
        if value is not None and "" in value.split("."):
            raise ValueError(f"{value!r} has an empty segment in its dotted path (a stray '.')")
        return value

    @model_validator(mode="after")
    def _needs_a_source(self) -> MappingRule:
        if self.crm_field is None and not self.has_value:
            raise ValueError("crm_field is required unless the rule has a static 'value'")
        return self

    def source_field(self, direction: Direction) -> str | None:
        """The field read from the source record (None for a static value)."""
        if self.has_value:
            return None
        return self.crm_field if direction == "crm_to_cc" else self.cc_field

    def target_field(self, direction: Direction) -> str | None:
        """The field written in the output (None when the rule cannot write in this direction)."""
        return self.cc_field if direction == "crm_to_cc" else self.crm_field


class Mapping(_Frozen):
    entity: str = Field(min_length=1)
    lookup_field: str = Field(min_length=1)
    mappings: list[MappingRule]
    source_path: Path | None = Field(default=None, exclude=True)

    @property
    def direction(self) -> Direction:
        """The direction this mapping is used in, from its entity."""
        return direction_for_entity(self.entity)

    def target_fields(self, direction: Direction) -> list[str]:
        """The fields a ``map()`` result writes, in first-written order, without duplicates."""
        seen: dict[str, None] = {}
        for rule in self.mappings:
            target = rule.target_field(direction)
            if target is not None:
                seen.setdefault(target, None)
        return list(seen)

    def rule_for_target(self, field: str, direction: Direction) -> MappingRule | None:
        """The rule whose value ends up in ``field`` (the last one writing it), if any."""
        found: MappingRule | None = None
        for rule in self.mappings:
            if rule.target_field(direction) == field:
                found = rule
        return found

    def relations(self) -> list[MappingRule]:
        """The rules that resolve a related record (contact -> account)."""
        return [rule for rule in self.mappings if rule.relation is not None]
