"""Resources: thin, EnvVar-configured wrappers that build the framework-free sync engine.

Nothing here is read at import time: ``EnvVar`` values are resolved when a run starts, so
the code location loads without any secret, and the secrets never show in the UI. The
engine, its adapters and its DuckDB staging store are opened per step and closed right
after, because DuckDB allows one writer per file and holding it across steps would block
concurrent runs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from crmsync_pipelines.defs.partitions import config_path_from_env

if TYPE_CHECKING:
    from crmsync_pipelines.config.models import SyncConfig
    from crmsync_pipelines.crm.base import CrmAdapter
    from crmsync_pipelines.daktela.adapter import DaktelaAdapter
    from crmsync_pipelines.engine.engine import SyncEngine


class CrmsyncConfigResource(dg.ConfigurableResource):
    """Where ``sync.yaml`` lives; the file is validated when a run starts, before any API call."""

    config_path: str

    def load(self) -> SyncConfig:
        from crmsync_pipelines.config import load_config

        return load_config(Path(self.config_path))


class DaktelaResource(dg.ConfigurableResource):
    """The Daktela instance; URL and token come from the environment, never from code.

    An empty ``database`` keeps the value of ``sync.yaml``.
    """

    instance_url: str
    access_token: str
    database: str = ""

    def apply(self, config: SyncConfig) -> SyncConfig:
        """``config`` with this resource's connection settings in its ``daktela`` section."""
        update: dict[str, str] = {"instance_url": self.instance_url, "access_token": self.access_token}
        if self.database:
            update["database"] = self.database
        return config.model_copy(update={"daktela": config.daktela.model_copy(update=update)})

    def build(self, config: SyncConfig) -> DaktelaAdapter:
        from crmsync_pipelines.daktela.adapter import DaktelaAdapter

        return DaktelaAdapter.from_config(self.apply(config).daktela)


class CrmResource(dg.ConfigurableResource):
    """The CRM adapter selected in ``sync.yaml`` (``crm.adapter``); fields here override it.

    ``adapter`` replaces ``crm.adapter`` and ``path`` replaces ``crm.path`` when set, so a
    deployment can point the same config at another CRM file without editing it.
    """

    adapter: str = ""
    path: str = ""

    def build(self, config: SyncConfig) -> CrmAdapter:
        from crmsync_pipelines.config.models import CrmSection
        from crmsync_pipelines.crm.registry import load_crm_adapter

        section = config.crm
        if self.adapter or self.path:
            data = {"adapter": section.adapter, **section.settings}
            if self.adapter:
                data["adapter"] = self.adapter
            if self.path:
                data["path"] = self.path
            section = CrmSection(**data)
        base_dir = config.source_path.parent if config.source_path else Path.cwd()
        return load_crm_adapter(section, base_dir=base_dir)


class StagingResource(dg.ConfigurableResource):
    """The DuckDB staging file; empty keeps ``staging.path`` of ``sync.yaml``."""

    path: str = ""

    def resolve(self, config: SyncConfig) -> Path:
        return Path(self.path) if self.path else Path(config.staging.path)


class SyncEngineResource(dg.ConfigurableResource):
    """Builds a ``SyncEngine`` from the nested resources for the length of one step."""

    config: CrmsyncConfigResource
    daktela: DaktelaResource
    crm: CrmResource
    staging: StagingResource

    def load_config(self) -> SyncConfig:
        """The validated config with the Daktela connection of this resource applied."""
        return self.daktela.apply(self.config.load())

    @contextmanager
    def open(self, logger: logging.Logger | None = None) -> Iterator[SyncEngine]:
        """An engine whose adapters and staging store are closed when the block ends."""
        from crmsync_pipelines.engine.engine import SyncEngine
        from crmsync_pipelines.staging import StagingStore

        config = self.load_config()
        crm = self.crm.build(config)
        try:
            daktela = self.daktela.build(config)
            staging = StagingStore(
                self.staging.resolve(config),
                lock_timeout_s=config.staging.lock_timeout_s,
                keep_batches=config.staging.keep_batches,
            )
        except BaseException:
            crm.close()
            raise
        engine = SyncEngine(
            config,
            crm=crm,
            daktela=daktela,
            staging=staging,
            logger=logger or dg.get_dagster_logger("crmsync.engine"),
        )
        try:
            yield engine
        finally:
            engine.close()


def default_sync_engine() -> SyncEngineResource:
    """The production wiring: config path from ``CRMSYNC_CONFIG``, secrets from ``EnvVar``."""
    return SyncEngineResource(
        config=CrmsyncConfigResource(config_path=str(config_path_from_env())),
        daktela=DaktelaResource(
            instance_url=dg.EnvVar("DAKTELA_INSTANCE_URL"),
            access_token=dg.EnvVar("DAKTELA_ACCESS_TOKEN"),
        ),
        crm=CrmResource(),
        staging=StagingResource(),
    )


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources={"sync_engine": default_sync_engine()})
