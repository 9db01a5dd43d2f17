"""CRM side: the adapter contract, the built-in SQL adapter, the demo CRM and adapter selection."""

from crmsync_pipelines.crm.base import RECORD_ERROR_KEY, CrmAdapter, ReadOnlyActivitiesMixin, Record
from crmsync_pipelines.crm.demo_data import (
    DemoCrmSeeder,
    DemoCrmStats,
    MutationStats,
    create_demo_crm,
    mutate_demo_crm,
)
from crmsync_pipelines.crm.registry import built_in_adapters, load_crm_adapter, register_adapter
from crmsync_pipelines.crm.sql import SqlCrmAdapter
from crmsync_pipelines.crm.sql_settings import ActivityTableSettings, EntityTableSettings, SqlCrmSettings
from crmsync_pipelines.errors import NotSupportedError

__all__ = [
    "RECORD_ERROR_KEY",
    "ActivityTableSettings",
    "CrmAdapter",
    "DemoCrmSeeder",
    "DemoCrmStats",
    "EntityTableSettings",
    "MutationStats",
    "NotSupportedError",
    "ReadOnlyActivitiesMixin",
    "Record",
    "SqlCrmAdapter",
    "SqlCrmSettings",
    "built_in_adapters",
    "create_demo_crm",
    "load_crm_adapter",
    "mutate_demo_crm",
    "register_adapter",
]
