"""Loading and validating ``sync.yaml``."""

from crmsync_pipelines.config.models import (
    ActivityType,
    AutoCreateContact,
    CrmSection,
    DaktelaSection,
    Direction,
    EntityConfig,
    SyncConfig,
)

__all__ = [
    "ActivityType",
    "AutoCreateContact",
    "CrmSection",
    "DaktelaSection",
    "Direction",
    "EntityConfig",
    "SyncConfig",
    "load_config",
]


def load_config(path: "str | object") -> SyncConfig:  # replaced by the loader module
    from crmsync_pipelines.config.loader import load_config as _load

    return _load(path)  # type: ignore[arg-type]
