"""Loading and validating ``sync.yaml`` (see ``docs/configuration.md``)."""

from crmsync_pipelines.config.interpolation import interpolate, interpolate_string
from crmsync_pipelines.config.loader import (
    SUPPORTED_DIRECTIONS,
    WebhookSettings,
    load_config,
    load_raw_config,
    load_webhook_settings,
    webhook_settings,
)
from crmsync_pipelines.config.masking import mask_secret
from crmsync_pipelines.config.models import (
    ActivityType,
    AutoCreateContact,
    CrmSection,
    CustomEntity,
    DaktelaSection,
    Direction,
    EntityConfig,
    PartitionsSection,
    StagingSection,
    SyncConfig,
    SyncSection,
    WebhookSection,
)

__all__ = [
    "SUPPORTED_DIRECTIONS",
    "ActivityType",
    "AutoCreateContact",
    "CrmSection",
    "CustomEntity",
    "DaktelaSection",
    "Direction",
    "EntityConfig",
    "PartitionsSection",
    "StagingSection",
    "SyncConfig",
    "SyncSection",
    "WebhookSection",
    "WebhookSettings",
    "interpolate",
    "interpolate_string",
    "load_config",
    "load_raw_config",
    "load_webhook_settings",
    "mask_secret",
    "webhook_settings",
]
