"""The framework-free sync engine."""

from crmsync_pipelines.engine.engine import SyncEngine
from crmsync_pipelines.engine.reports import (
    CheckOutcome,
    FailureSample,
    FieldChange,
    PlannedChange,
    StageReport,
    Window,
)

__all__ = [
    "CheckOutcome",
    "FailureSample",
    "FieldChange",
    "PlannedChange",
    "StageReport",
    "SyncEngine",
    "Window",
]
