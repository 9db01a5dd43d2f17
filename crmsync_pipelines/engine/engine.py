"""The sync engine facade: extract -> stage -> map -> diff -> apply -> record, per entity.

This is the only place sync logic lives. Dagster assets, the CLI, the webhook sensor and the
tests all call these methods; each returns a ``StageReport``.
"""

from __future__ import annotations

from crmsync_pipelines.engine.reports import CheckOutcome, Entity, StageReport, Window


class SyncEngine:
    """Facade over the per-entity pipelines (interface fixed; implementation in progress)."""

    def enabled_entities(self) -> list[Entity]:
        raise NotImplementedError

    def extract(self, entity: Entity, window: Window, run_id: str) -> StageReport:
        raise NotImplementedError

    def map(self, entity: Entity, window: Window, run_id: str) -> StageReport:
        raise NotImplementedError

    def load(self, entity: Entity, window: Window, run_id: str) -> StageReport:
        raise NotImplementedError

    def plan(self, entity: Entity, window: Window, run_id: str) -> StageReport:
        raise NotImplementedError

    def sync(self, entity: Entity, window: Window, run_id: str) -> list[StageReport]:
        raise NotImplementedError

    def sync_ids(self, entity: Entity, ids: list[str], run_id: str) -> StageReport:
        raise NotImplementedError

    def retry_failed(self, entity: Entity | None, run_id: str) -> list[StageReport]:
        raise NotImplementedError

    def reconcile(self, entity: Entity, window: Window) -> CheckOutcome:
        raise NotImplementedError

    def reset_state(self, entity: Entity | None = None) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError
