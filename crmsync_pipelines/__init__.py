"""crmsync: keep a Daktela Contact Centre V6 instance and a CRM in sync.

The framework-free core (``config``, ``mapping``, ``daktela``, ``crm``, ``staging``,
``engine``, ``webhooks``) never imports Dagster; only ``defs`` and ``definitions`` do, so
the same engine runs from the CLI, from tests and from Dagster.

The library API (docs/library.md) is importable from here: ``crmsync_pipelines.sync``,
``sync_ids``, ``plan``, ``retry_failed``, ``reset_state`` and their result types. They are
loaded on first use, so ``import crmsync_pipelines`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Names re-exported from ``crmsync_pipelines.api`` on first access.
_API = ("sync", "sync_ids", "plan", "retry_failed", "reset_state", "SyncResult", "EntityResult",
        "FailedRecord", "PlanResult", "EntityPlan")

if TYPE_CHECKING:
    from crmsync_pipelines.api import (
        EntityPlan,
        EntityResult,
        FailedRecord,
        PlanResult,
        SyncResult,
        plan,
        reset_state,
        retry_failed,
        sync,
        sync_ids,
    )


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module("crmsync_pipelines.api"), name)
    raise AttributeError(f"module 'crmsync_pipelines' has no attribute {name!r}")


__all__ = ["EntityPlan", "EntityResult", "FailedRecord", "PlanResult", "SyncResult", "__version__", "plan",
           "reset_state", "retry_failed", "sync", "sync_ids"]
