"""Relation resolution through staging (contact.account -> the Daktela account name).

The value written is what the *related entity's mapping* produces (transformers included),
so a contact always points at the account name the accounts flow writes (W5). ``resolve_from``
is honoured: ``id`` looks related records up by CRM id (staging first, then one batched CRM
call); any other field uses ``find_*_by`` (W6).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from crmsync_pipelines.engine.context import EngineContext
from crmsync_pipelines.engine.entities import spec
from crmsync_pipelines.engine.paths import key_of, read_path
from crmsync_pipelines.errors import ConfigError, MappingError

Relations = dict[str, dict[str, str]]

#: Related values a resolver remembers across chunks. Past this many it forgets them at the
#: next chunk (they are resolved again from staging when referenced), so a run's memory stays
#: bounded by a constant (~20 MB), not by the number of related records.
CACHE_LIMIT = 100_000


class RelationResolver:
    """Resolves relation values chunk by chunk, caching what it learned for the rest of the run."""

    def __init__(self, ctx: EngineContext) -> None:
        self.ctx = ctx
        self._cache: dict[tuple[str, str, str], str | None] = {}
        #: Related records that exist but cannot be mapped (a refused value): why, per value.
        self._unmappable: dict[tuple[str, str, str], str] = {}

    def related_mapping(self, entity: str) -> Any:
        entry = self.ctx.config.sync.entities.get(entity)  # type: ignore[call-overload]
        if entry is None or entry.mapping is None:
            raise ConfigError(
                f"a relation points at {entity!r}, so sync.entities.{entity}.mapping_file must be configured",
                file=str(self.ctx.config.source_path) if self.ctx.config.source_path else None,
            )
        return entry.mapping

    def resolve(self, mapping: Any, records: Iterable[dict[str, Any]]) -> Relations:
        """The relation values of one chunk of records: ``{related entity: {value: target}}``."""
        if len(self._cache) > CACHE_LIMIT:  # at a chunk boundary: ``unresolved`` needs this chunk's entries
            self._cache.clear()
            self._unmappable.clear()
        relations: Relations = {}
        rules = [rule for rule in mapping.mappings if rule.relation is not None and rule.crm_field]
        if not rules:
            return relations
        records = list(records)
        for rule in rules:
            rel = rule.relation
            values = {key_of(read_path(r, rule.crm_field)) for r in records} - {None}
            resolved = self._resolve_values(rel.entity, rel.resolve_from, rel.resolve_to, values)  # type: ignore[arg-type]
            relations.setdefault(rel.entity, {}).update(resolved)
        return relations

    def _resolve_values(self, entity: str, resolve_from: str, resolve_to: str, values: set[str]) -> dict[str, str]:
        missing = [v for v in values if (entity, resolve_from, v) not in self._cache]
        if missing:
            related = self._fetch_related(entity, resolve_from, missing)
            mapping = self.related_mapping(entity)
            pairs: list[tuple[str, str]] = []
            for value in missing:
                record = related.get(value)
                target: str | None = None
                if record is not None:
                    try:
                        payload = self.ctx.mapper.map(record, mapping, spec(entity).direction)
                    except MappingError as exc:  # the related record fails on its own; this one with it
                        self._unmappable[(entity, resolve_from, value)] = str(exc)
                        self._cache[(entity, resolve_from, value)] = None
                        continue
                    target = key_of(read_path(payload, resolve_to))
                    key = key_of(read_path(payload, mapping.lookup_field))
                    if key is not None and record.get("id") is not None:
                        pairs.append((str(record["id"]), key))
                self._cache[(entity, resolve_from, value)] = target
            self.ctx.staging.upsert_key_map(entity, pairs)
        out: dict[str, str] = {}
        for value in values:
            target = self._cache.get((entity, resolve_from, value))
            if target is not None:
                out[value] = target
        return out

    def _fetch_related(self, entity: str, resolve_from: str, values: list[str]) -> dict[str, dict[str, Any]]:
        if resolve_from == "id":
            found = self.ctx.staging.latest_raw(entity, values)
            rest = [v for v in values if v not in found]
            if rest:
                getter = self.ctx.crm.get_accounts if entity == "account" else self.ctx.crm.get_contacts
                found.update({str(k): dict(v) | {"id": str(k)} for k, v in getter(rest).items()})
            return found
        finder = self.ctx.crm.find_account_by if entity == "account" else self.ctx.crm.find_contact_by
        result: dict[str, dict[str, Any]] = {}
        for value in values:
            record = finder(resolve_from, value)
            if record is not None:
                result[value] = dict(record)
        return result

    def unresolved(self, mapping: Any, record: dict[str, Any], relations: Relations) -> list[str]:
        """Human-readable reasons for relation values of this record that point at nothing."""
        reasons: list[str] = []
        for rule in mapping.mappings:
            if rule.relation is None or not rule.crm_field:
                continue
            value = key_of(read_path(record, rule.crm_field))
            if value is not None and value not in relations.get(rule.relation.entity, {}):
                why = self._unmappable.get((rule.relation.entity, rule.relation.resolve_from, value))
                if why is not None:
                    reasons.append(f"{rule.crm_field}={value!r}: the {rule.relation.entity} cannot be mapped: {why}")
                    continue
                reasons.append(
                    f"{rule.crm_field}={value!r}: no {rule.relation.entity} with "
                    f"{rule.relation.resolve_from}={value!r} in the CRM"
                )
        return reasons
