"""What differs between the three entities, in one table instead of ``if`` chains."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from crmsync_pipelines.engine.reports import Entity

MappingDirection = Literal["crm_to_cc", "cc_to_crm"]


@dataclass(frozen=True)
class EntitySpec:
    name: Entity
    #: The Daktela model the entity lives in.
    model: str
    direction: MappingDirection
    #: Target fields a mapped payload must carry (Daktela rejects the record otherwise).
    required: tuple[str, ...]


SPECS: dict[str, EntitySpec] = {
    "account": EntitySpec("account", "accounts", "crm_to_cc", ("title",)),
    "contact": EntitySpec("contact", "contacts", "crm_to_cc", ("title", "lastname")),
    "activity": EntitySpec("activity", "activities", "cc_to_crm", ()),
}

#: Dependency order for a full sync: contacts refer to accounts.
ORDER: tuple[Entity, ...] = ("account", "contact", "activity")


#: ``custom:<name>`` -> the spec of its target model under that name; filled by
#: ``engine.custom.custom_spec`` when a custom entity's engine is built, so code that holds only
#: the entity name (``spec(entity)``) gets the target's model and required fields.
CUSTOM_SPECS: dict[str, EntitySpec] = {}


def spec(entity: str) -> EntitySpec:
    try:
        return SPECS[entity] if entity in SPECS else CUSTOM_SPECS[entity]
    except KeyError:
        raise ValueError(f"unknown entity {entity!r} (known: {', '.join(SPECS)})") from None
