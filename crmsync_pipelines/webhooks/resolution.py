"""Turn the Daktela name carried by ``contact_*``/``account_*`` events back into a CRM id.

Daktela automations only know Daktela's record name, while the sync reads contacts and
accounts FROM the CRM (the source of truth) by CRM id. The PHP SDK passed the Daktela name
as a CRM id and so looked up the wrong record (W19). The bundled mappings derive the name
from the CRM id with ``prefix`` transformers (``crm_<id>``, ``crm_acc_<id>``), which can be
inverted exactly; any other name rule cannot, and such events are ignored with a reason
rather than guessed at.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from crmsync_pipelines.mapping.models import Mapping, MappingRule

#: The Daktela field a contact or account event names its record by.
DAKTELA_NAME_FIELD = "name"
#: The CRM field that holds the record id the engine's ``sync_ids`` expects.
CRM_ID_FIELD = "id"


@dataclass(frozen=True)
class NameResolver:
    """Inverse of a ``name <- id`` rule made only of ``prefix`` transformers."""

    prefixes: tuple[str, ...]
    #: Names made by ANOTHER rule that happens to share our prefix (``crm_acc_contact_<id>``
    #: of auto-created contacts vs ``crm_<id>``): never mistake them for our records.
    foreign_prefixes: tuple[str, ...] = ()

    @property
    def full_prefix(self) -> str:
        """The text in front of the CRM id (prefixes apply in order, each in front)."""
        return "".join(reversed(self.prefixes))

    def __call__(self, daktela_name: str) -> str | None:
        if any(daktela_name.startswith(p) for p in self.foreign_prefixes):
            return None
        value = daktela_name
        # Prefixes were applied in order, so the last one is outermost: strip in reverse.
        for prefix in reversed(self.prefixes):
            if not value.startswith(prefix):
                return None
            value = value[len(prefix) :]
        return value or None


@dataclass(frozen=True)
class Unresolvable:
    """Why a mapping's name rule cannot be inverted (recorded as the events' ignore reason)."""

    reason: str

    def __call__(self, daktela_name: str) -> str | None:
        return None


def _name_rule(mapping: Mapping) -> MappingRule | None:
    return mapping.rule_for_target(DAKTELA_NAME_FIELD, "crm_to_cc")


def name_resolver(
    mapping: Mapping | None, entity: str, other_mappings: Sequence[Mapping] = ()
) -> NameResolver | Unresolvable:
    """The resolver for ``entity``'s mapping, or an ``Unresolvable`` that says why not.

    ``other_mappings`` write Daktela names of the same entity by other rules (the
    ``auto_create_contact`` mapping); names they produce are refused, not misread.
    """
    resolver = _prefix_resolver(mapping, entity)
    if isinstance(resolver, Unresolvable):
        return resolver
    ours = resolver.full_prefix
    foreign = []
    for other in other_mappings:
        theirs = _prefix_resolver(other, entity)
        if isinstance(theirs, NameResolver) and theirs.full_prefix.startswith(ours) and theirs.full_prefix != ours:
            foreign.append(theirs.full_prefix)
    return NameResolver(resolver.prefixes, tuple(foreign))


def _prefix_resolver(mapping: Mapping | None, entity: str) -> NameResolver | Unresolvable:
    if mapping is None:
        return Unresolvable(f"entity '{entity}' has no mapping")
    rule = _name_rule(mapping)
    if rule is None:
        return Unresolvable(f"the {entity} mapping does not write the Daktela '{DAKTELA_NAME_FIELD}'")
    if rule.has_value or rule.crm_field != CRM_ID_FIELD or rule.relation or rule.multi_value or rule.append:
        return Unresolvable(
            f"the {entity} mapping's '{DAKTELA_NAME_FIELD}' rule is not a plain rule on the CRM "
            f"'{CRM_ID_FIELD}', so a Daktela name cannot be turned back into a CRM id"
        )
    prefixes: list[str] = []
    for spec in rule.transformers:
        value = spec.params.get("value", "")
        if spec.name != "prefix" or not isinstance(value, str):
            return Unresolvable(
                f"the {entity} mapping's '{DAKTELA_NAME_FIELD}' rule uses the '{spec.name}' "
                "transformer, which cannot be inverted (only 'prefix' can)"
            )
        prefixes.append(value)
    return NameResolver(tuple(prefixes))


def unresolved_reason(resolver: NameResolver | Unresolvable, daktela_name: str) -> str:
    """The ignore reason for a name ``resolver`` returned ``None`` for."""
    if isinstance(resolver, Unresolvable):
        return resolver.reason
    shown = daktela_name[:80]
    for foreign in resolver.foreign_prefixes:
        if daktela_name.startswith(foreign):
            return (
                f"Daktela name {shown!r} belongs to a contact auto-created from an account "
                f"(prefix {foreign!r}); the account's sync keeps it current"
            )
    return (
        f"Daktela name {shown!r} was not created by this sync "
        f"(expected the prefix {resolver.full_prefix!r} followed by a CRM id)"
    )
