"""Everything a stage needs, passed as one object so stage functions stay small and pure-ish."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crmsync_pipelines.config.models import EntityConfig, SyncConfig
from crmsync_pipelines.engine.counting import CountingCrm
from crmsync_pipelines.engine.entities import EntitySpec, spec
from crmsync_pipelines.errors import ConfigError
from crmsync_pipelines.mapping import FieldMapper
from crmsync_pipelines.staging.store import StagingStore

if TYPE_CHECKING:
    from crmsync_pipelines.daktela.adapter import DaktelaAdapter


@dataclass(frozen=True)
class EngineSettings:
    #: Rows per staging chunk: bounds memory while streaming 100k+ records.
    chunk_size: int = 5000
    #: A blocking check fails when more than this share of a batch is invalid ...
    max_invalid_percent: float = 10.0
    #: ... and at least this many records are (so one typo in a batch of five does not block it).
    min_invalid_to_block: int = 3
    #: Transient dead letters retried automatically at the end of each load.
    auto_retry_limit: int = 1000
    #: Planned writes a dry run (``crmsync plan``) describes field by field; counts cover all.
    plan_sample_limit: int = 1000


@dataclass
class EngineContext:
    config: SyncConfig
    crm: CountingCrm
    daktela: DaktelaAdapter
    staging: StagingStore
    log: logging.Logger
    settings: EngineSettings = field(default_factory=EngineSettings)
    mapper: FieldMapper = field(default_factory=FieldMapper)

    def __post_init__(self) -> None:
        # ``from_tz: instance`` in a mapping means the zone the Daktela adapter uses right now.
        if self.mapper.instance_timezone is None:
            self.mapper.instance_timezone = self.instance_timezone

    def instance_timezone(self) -> str:
        """The Daktela instance's IANA zone: ``daktela.timezone``, or the API's ``_timezone`` once announced."""
        return self.daktela.tz.key

    def entity_config(self, entity: str) -> EntityConfig:
        """``sync.entities.<entity>``, or for ``custom:<name>`` its ``sync.custom_entities`` entry."""
        if entity.startswith("custom:"):
            from crmsync_pipelines.engine.custom import custom_entity_config

            entry = custom_entity_config(self.config, entity)
        else:
            entry = self.config.entity(entity)
        if entry is None:
            raise ConfigError(f"entity {entity!r} is not enabled in sync.entities", file=self._file())
        if entry.mapping is None:
            raise ConfigError(f"entity {entity!r} has no mapping_file", file=self._file())
        return entry

    def mapping(self, entity: str) -> Any:
        return self.entity_config(entity).mapping

    def spec(self, entity: str) -> EntitySpec:
        if entity.startswith("custom:"):
            from crmsync_pipelines.engine.custom import custom_spec

            return custom_spec(self.config, entity)
        return spec(entity)

    def api_snapshot(self) -> dict[str, int]:
        return {"daktela": int(self.daktela.client.stats.snapshot()["requests"]), "crm": self.crm.counter.total}

    def api_delta(self, before: dict[str, int]) -> dict[str, int]:
        now = self.api_snapshot()
        return {k: now[k] - before.get(k, 0) for k in now}

    def _file(self) -> str | None:
        return str(self.config.source_path) if self.config.source_path else None
