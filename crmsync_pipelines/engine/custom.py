"""Custom entities (``sync.custom_entities``): arbitrary CRM objects into Daktela contacts or accounts.

An entry ``{name, source, target: contact|account, mapping_file, enabled, direction}`` syncs
the records the CRM adapter yields for ``source`` (``iter_custom`` / ``get_custom``) into the
Daktela model of ``target``, through the same extract -> map -> diff -> load -> ledger path as
the native entities: the engine's own stages run with the entity name ``custom:<name>``, which
keys its rows in every staging table (raw and mapped records, ``key_map``, ``synced_state``,
the ledger, ``failed_records``), so a custom record never shares change-detection memory or a
dead letter with a native one, even when their source ids are equal.

How: ``custom_engine(engine, "custom:<name>")`` returns an engine sharing the Daktela client,
the staging store and the settings of ``engine``, whose CRM is a ``CustomSourceView``: the
adapter with ``iter_contacts``/``get_contacts`` answered by ``iter_custom(source)``/
``get_custom(source)``, everything else (accounts, for relations) by the adapter itself.

**Ownership rule (two sources writing one Daktela name).** A custom entity never overwrites a
Daktela record another entity wrote: a custom record whose lookup key (the Daktela ``name``)
is already in ``synced_state`` under another entity of the same Daktela model (``contact``,
``auto_contact`` or another custom entity for contacts; ``account`` or another custom entity
for accounts) fails as a ``conflict`` naming the owner, and waits in ``failed_records`` like
any conflict. Full syncs run custom entities last (as the PHP SDK's ``fullSync``), so the
native record wins. Native entities are not checked against custom ones: give each custom
entity a name prefix of its own in its mapping (the demo's partners use ``partner_``).

Relations in a custom mapping may point at accounts (``relation: {entity: account, ...}``),
resolved and synced on the fly like a contact's. Accounts targeted by a custom entity get no
``auto_create_contact`` (that belongs to ``sync.entities.account``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, cast

from crmsync_pipelines.config.models import CustomEntity, EntityConfig, SyncConfig
from crmsync_pipelines.crm.base import CrmAdapter, Record
from crmsync_pipelines.engine.apply import failed
from crmsync_pipelines.engine.engine import SyncEngine
from crmsync_pipelines.engine.entities import CUSTOM_SPECS, SPECS, EntitySpec
from crmsync_pipelines.engine.load_daktela import DaktelaLoader, LoadOutcome
from crmsync_pipelines.engine.reports import StageReport
from crmsync_pipelines.errors import ConfigError, ConflictError
from crmsync_pipelines.staging.store import MappedRow, RecordResult

PREFIX = "custom:"


def is_custom(entity: str) -> bool:
    return entity.startswith(PREFIX)


def custom_entity_name(entry: CustomEntity) -> str:
    """``custom:<name>``: the entity name in staging, the ledger, the CLI and reports."""
    return PREFIX + entry.name


def enabled_custom_entities(config: SyncConfig) -> list[CustomEntity]:
    """Enabled entries in config order (the order a full sync runs them in, after activities)."""
    return [entry for entry in config.sync.custom_entities if entry.enabled]


def custom_entry(config: SyncConfig, entity: str) -> CustomEntity | None:
    """The enabled entry of ``custom:<name>``, else ``None``."""
    if not is_custom(entity):
        return None
    name = entity[len(PREFIX):]
    return next((e for e in enabled_custom_entities(config) if e.name == name), None)


def custom_entity_config(config: SyncConfig, entity: str) -> EntityConfig | None:
    """The entry seen as an ``EntityConfig`` (what the engine's stages read), else ``None``."""
    entry = custom_entry(config, entity)
    if entry is None:
        return None
    return EntityConfig.model_construct(enabled=True, direction=entry.direction, mapping_file=entry.mapping_file,
                                        activity_types=[], auto_create_contact=None, settle_minutes=30,
                                        rescan_partitions=0, mapping=entry.mapping)


def custom_spec(config: SyncConfig, entity: str) -> EntitySpec:
    """The target model's spec (model, required fields) under the custom entity's name."""
    entry = custom_entry(config, entity)
    if entry is None:
        raise ConfigError(f"custom entity {entity!r} is not configured and enabled in sync.custom_entities",
                          file=str(config.source_path) if config.source_path else None)
    target = SPECS[entry.target]
    found = EntitySpec(cast(Any, entity), target.model, "crm_to_cc", target.required)
    CUSTOM_SPECS[entity] = found
    return found


def same_model_entities(config: SyncConfig, entity: str) -> list[str]:
    """Every ledger entity that writes the same Daktela model as ``entity`` (``entity`` excluded)."""
    entry = custom_entry(config, entity)
    target = entry.target if entry is not None else entity
    names = ["contact", "auto_contact"] if target == "contact" else [target]
    names += [custom_entity_name(e) for e in enabled_custom_entities(config) if e.target == target]
    return [n for n in names if n != entity]


class CustomSourceView(CrmAdapter):
    """The CRM adapter as the engine sees it while syncing one custom entity: contacts are the
    custom source's records; every other call goes to the adapter unchanged."""

    def __init__(self, adapter: CrmAdapter, source: str) -> None:
        self.adapter = adapter
        self.source = source
        self.name = getattr(adapter, "name", "crm")

    def __getattr__(self, name: str) -> Any:  # optional hooks (usage(), activity_lookup, ...)
        return getattr(self.adapter, name)

    def ping(self) -> bool:
        return self.adapter.ping()

    def close(self) -> None:
        """The engine that owns the adapter closes it, never the view."""

    def iter_contacts(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[Record]:
        return self.adapter.iter_custom(self.source, since, until)

    def get_contacts(self, contact_ids: Iterable[str]) -> dict[str, Record]:
        return self.adapter.get_custom(self.source, contact_ids)

    def get_contact(self, contact_id: str) -> Record | None:
        return self.adapter.get_custom(self.source, [contact_id]).get(contact_id)

    def find_contact_by(self, field: str, value: Any) -> Record | None:
        return self.adapter.find_contact_by(field, value)

    def search_contacts(self, query: str) -> Iterator[Record]:
        return self.adapter.search_contacts(query)

    def iter_accounts(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[Record]:
        return self.adapter.iter_accounts(since, until)

    def get_account(self, account_id: str) -> Record | None:
        return self.adapter.get_account(account_id)

    def get_accounts(self, account_ids: Iterable[str]) -> dict[str, Record]:
        return self.adapter.get_accounts(account_ids)

    def find_account_by(self, field: str, value: Any) -> Record | None:
        return self.adapter.find_account_by(field, value)

    def search_accounts(self, query: str) -> Iterator[Record]:
        return self.adapter.search_accounts(query)

    def find_activity_by(self, field: str, value: Any) -> Record | None:
        return self.adapter.find_activity_by(field, value)

    def create_activity(self, record: Record) -> Record:
        return self.adapter.create_activity(record)

    def update_activity(self, activity_id: str, record: Record) -> Record:
        return self.adapter.update_activity(activity_id, record)

    def upsert_activity(self, lookup_field: str, record: Record) -> Record:
        return self.adapter.upsert_activity(lookup_field, record)


class OwnershipCheckingLoader(DaktelaLoader):
    """The Daktela loader, refusing records whose Daktela name another entity already wrote."""

    def process(self, rows: list[MappedRow], outcome: LoadOutcome) -> list[RecordResult]:
        owners = self._owners([r.lookup_key for r in rows if r.lookup_key])
        clashes = [r for r in rows if r.lookup_key in owners]
        results: list[RecordResult] = []
        for row in clashes:
            owner_entity, owner_id = owners[row.lookup_key or ""]
            results.append(failed(row, ConflictError(
                f"Daktela {self.model} {row.lookup_key!r} is already synced from {owner_entity} {owner_id!r}; "
                f"{self.ledger_entity} does not overwrite another entity's record (give its mapping a name "
                "prefix of its own)")))
        if results and not self.dry_run:
            self.ctx.staging.record_results(self.run_id, self.batch_id, self.ledger_entity, results)
        keep = [r for r in rows if r.lookup_key not in owners]
        return results + (super().process(keep, outcome) if keep else [])

    def _owners(self, keys: list[str]) -> dict[str, tuple[str, str]]:
        others = same_model_entities(self.ctx.config, self.ledger_entity)
        if not keys or not others:
            return {}
        with self.ctx.staging.connect() as con:
            rows = con.execute(
                "SELECT lookup_key, entity, source_id FROM synced_state "
                "WHERE entity IN (SELECT unnest(?::VARCHAR[])) AND lookup_key IN (SELECT unnest(?::VARCHAR[])) "
                "ORDER BY synced_at",
                [others, sorted(set(keys))],
            ).fetchall()
        return {str(key): (str(entity), str(sid)) for key, entity, sid in rows}


class CustomEntityEngine(SyncEngine):
    """The engine of one custom entity: ``custom_engine`` builds it; its loads check ownership."""

    #: ``custom:<name>``.
    entity: str

    def _loader(self, entity: Any, batch: str, run_id: str, *, dry_run: bool = False, verify: bool = False,
                retry_held: bool = False, side_reports: list[StageReport] | None = None) -> Any:
        if not is_custom(entity):
            return super()._loader(entity, batch, run_id, dry_run=dry_run, verify=verify,
                                   retry_held=retry_held, side_reports=side_reports)
        sink = side_reports if side_reports is not None else []
        ensure = None if dry_run else (
            lambda rel_entity, ids: sink.append(self._ensure_related(rel_entity, ids, run_id)))
        return OwnershipCheckingLoader(self.ctx, entity, run_id, batch, dry_run=dry_run, verify=verify,
                                       ensure_related=ensure, retry_held=retry_held)

    def enabled_entities(self) -> list[Any]:
        return [self.entity]

    def close(self) -> None:
        """The parent engine owns (and closes) the shared clients."""


def custom_engine(engine: SyncEngine, entity: str) -> CustomEntityEngine:
    """An engine for ``custom:<name>`` sharing ``engine``'s Daktela client, CRM adapter, staging
    store, settings and logger (its ``close`` does nothing; ``engine`` closes them).

    Raises ``ConfigError`` when ``entity`` is not an enabled ``sync.custom_entities`` entry.
    """
    entry = custom_entry(engine.config, entity)
    if entry is None:
        configured = ", ".join(custom_entity_name(e) for e in enabled_custom_entities(engine.config)) or "none"
        raise ConfigError(f"{entity!r} is not an enabled custom entity (enabled: {configured})",
                          file=str(engine.config.source_path) if engine.config.source_path else None)
    custom_spec(engine.config, entity)  # registers the name for ``entities.spec``
    sub = CustomEntityEngine(engine.config, crm=CustomSourceView(engine.ctx.crm.adapter, entry.source),
                             daktela=engine.ctx.daktela, staging=engine.staging, logger=engine.log,
                             settings=engine.ctx.settings)
    sub.entity = entity
    sub.ctx.mapper = engine.ctx.mapper  # the same transformer registry and instance zone
    return sub


__all__ = [
    "PREFIX",
    "CustomEntityEngine",
    "CustomSourceView",
    "OwnershipCheckingLoader",
    "custom_engine",
    "custom_entity_config",
    "custom_entity_name",
    "custom_entry",
    "custom_spec",
    "enabled_custom_entities",
    "is_custom",
    "same_model_entities",
]


# -- dispatch helpers for the CLI, the library API and Dagster ---------------------------------------
def all_entities(engine: SyncEngine) -> list[str]:
    """Every enabled entity in full-sync order: accounts, contacts, activities, then the enabled
    custom entities in config order (as the PHP SDK's ``fullSync``, step 5)."""
    return [*engine.enabled_entities(), *(custom_entity_name(e) for e in enabled_custom_entities(engine.config))]


def engine_for(engine: SyncEngine, entity: str) -> SyncEngine:
    """``engine`` itself for a native entity, its ``custom_engine`` for ``custom:<name>``."""
    return custom_engine(engine, entity) if is_custom(entity) else engine


def retry_all(engine: SyncEngine, entity: str | None, run_id: str) -> list[StageReport]:
    """``retry_failed`` over the native entities and every enabled custom entity (``entity=None``),
    or over one of them."""
    if entity is not None:
        return engine_for(engine, entity).retry_failed(None if is_custom(entity) else entity, run_id)  # type: ignore[arg-type]
    reports = engine.retry_failed(None, run_id)
    for entry in enabled_custom_entities(engine.config):
        reports.extend(custom_engine(engine, custom_entity_name(entry)).retry_failed(None, run_id))
    return reports
