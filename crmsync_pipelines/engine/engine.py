"""The sync engine facade: extract -> stage -> map -> diff -> apply -> record, per entity.

This is the only place sync logic is orchestrated. Dagster assets, the CLI, the webhook sensor
and the tests all call these methods; each returns a ``StageReport`` (counts, API calls,
duration, failure samples, check outcomes) and never raises for a single bad record.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from crmsync_pipelines.config.models import SyncConfig
from crmsync_pipelines.crm.base import CrmAdapter
from crmsync_pipelines.engine.auto_contacts import LEDGER_ENTITY as AUTO_CONTACT
from crmsync_pipelines.engine.auto_contacts import AutoContactCreator
from crmsync_pipelines.engine.context import EngineContext, EngineSettings
from crmsync_pipelines.engine.counting import CountingCrm
from crmsync_pipelines.engine.entities import ORDER
from crmsync_pipelines.engine.extract import INVALID_ID_PREFIX, extract_ids, extract_window
from crmsync_pipelines.engine.load_crm import CrmActivityLoader
from crmsync_pipelines.engine.load_daktela import DaktelaLoader, LoadOutcome
from crmsync_pipelines.engine.mapstage import map_batch
from crmsync_pipelines.engine.reconcile import reconcile
from crmsync_pipelines.engine.reports import (
    RELATED_LEDGER_ENTITIES,
    CheckOutcome,
    Entity,
    FailureSample,
    Stage,
    StageReport,
    Window,
)
from crmsync_pipelines.errors import CrmsyncError
from crmsync_pipelines.staging.store import RecordResult, StagingStore

if TYPE_CHECKING:
    from crmsync_pipelines.daktela.adapter import DaktelaAdapter

LOG = logging.getLogger("crmsync.engine")


class MissingExtractError(CrmsyncError):
    """A later stage was asked for a window nobody extracted yet."""


class SyncEngine:
    """One engine per run: holds the adapters and the staging store, no other state."""

    def __init__(
        self,
        config: SyncConfig,
        *,
        crm: CrmAdapter,
        daktela: DaktelaAdapter,
        staging: StagingStore,
        logger: logging.Logger | None = None,
        settings: EngineSettings | None = None,
    ) -> None:
        self.config = config
        self.staging = staging
        self.ctx = EngineContext(
            config=config, crm=CountingCrm(crm), daktela=daktela, staging=staging,
            log=logger or LOG, settings=settings or EngineSettings(),
        )

    @classmethod
    def from_config(cls, config: SyncConfig, *, logger: logging.Logger | None = None) -> SyncEngine:
        from crmsync_pipelines.crm.registry import load_crm_adapter
        from crmsync_pipelines.daktela.adapter import DaktelaAdapter

        base_dir = Path(config.source_path).parent if config.source_path else Path.cwd()
        return cls(
            config,
            crm=load_crm_adapter(config.crm, base_dir=base_dir),
            daktela=DaktelaAdapter.from_config(config.daktela),
            staging=StagingStore(config.staging.path, lock_timeout_s=config.staging.lock_timeout_s,
                                 keep_batches=config.staging.keep_batches),
            logger=logger,
        )

    @property
    def log(self) -> logging.Logger:
        return self.ctx.log

    def enabled_entities(self) -> list[Entity]:
        return [e for e in ORDER if self.config.entity(e) is not None]

    # -- stages -------------------------------------------------------------------------------
    def extract(self, entity: Entity, window: Window, run_id: str) -> StageReport:
        with self._stage(entity, "extract", window, run_id) as report:
            self.ctx.entity_config(entity)
            batch_id, count = extract_window(self.ctx, entity, self._extract_window(entity, window), run_id)
            report.counts.update({"extracted": count})
            self.log.info("%s: extracted %d records for %s (batch %s)", entity, count, window.label(), batch_id)
        return report

    def map(self, entity: Entity, window: Window, run_id: str, *, remap: bool = False) -> StageReport:
        """``remap`` (``--force-full``) maps every record, none reused from ``map_memo``."""
        with self._stage(entity, "map", window, run_id) as report, self.staging.entity_lock(entity):
            batch = self._batch(entity, window, run_id)
            counts, checks, failures = map_batch(self.ctx, entity, batch, run_id, remap=remap)
            report.counts.update(counts)
            report.checks.extend(checks)
            report.failures.extend(failures)
        return report

    def load(self, entity: Entity, window: Window, run_id: str, *, verify: bool = False) -> StageReport:
        with self._stage(entity, "load", window, run_id) as report, self.staging.entity_lock(entity):
            batch = self._batch(entity, window, run_id)
            if not self.staging.is_mapped(batch):
                map_batch(self.ctx, entity, batch, run_id, remap=verify)
            quarantined = self.staging.mapped_quality(batch)["invalid"]
            report.failures.extend(
                FailureSample(sid, "validation", reason) for sid, reason in self.staging.invalid_reasons(batch, "", 20)
            )
            if quarantined:
                report.counts["failed"] = quarantined
            self._load_batch(entity, batch, run_id, report, verify=verify)
            self._retry_transient(entity, batch, run_id, report)
            with self.staging.session():
                self.staging.finish_load(batch)
                self.staging.prune(entity)
            report.waiting = self.waiting_failures(entity, run_id)
            report.checks.append(_no_failures_check(report))
        return report

    def plan(self, entity: Entity, window: Window, run_id: str) -> StageReport:
        """Extract and map for real (staging only), then diff without writing to either system."""
        self.extract(entity, window, run_id)
        with self._stage(entity, "load", window, run_id) as report:
            batch = self._batch(entity, window, run_id)
            counts, checks, failures = map_batch(self.ctx, entity, batch, run_id, record_invalid=False)
            report.checks.extend(checks)
            report.failures.extend(failures)
            outcome = self._loader(entity, batch, run_id, dry_run=True).run()
            report.counts.update({"would_create": outcome.counts["created"],
                                  "would_update": outcome.counts["updated"],
                                  "unchanged": outcome.counts["unchanged"], "invalid": counts["invalid"]})
            report.planned.extend(outcome.planned)
        return report

    def sync(self, entity: Entity, window: Window, run_id: str, *, verify: bool = False) -> list[StageReport]:
        """Extract, map and — unless a blocking check failed — load one entity.

        The three stages share one staging connection (one checkpoint instead of three).
        """
        with self.staging.hold():
            return self._sync(entity, window, run_id, verify=verify)

    def _sync(self, entity: Entity, window: Window, run_id: str, *, verify: bool) -> list[StageReport]:
        reports = [self.extract(entity, window, run_id), self.map(entity, window, run_id, remap=verify)]
        blocked = [c for c in reports[1].checks if not c.passed]
        if blocked:
            self.log.error("%s: load skipped, blocking checks failed: %s", entity,
                           "; ".join(c.description for c in blocked))
            blocked_count = reports[1].counts.get("mapped", 0)
            skipped = StageReport(entity, "load", run_id, window, counts={"blocked": blocked_count})
            skipped.checks.extend(blocked)
            reports.append(skipped)
            return reports
        reports.append(self.load(entity, window, run_id, verify=verify))
        return reports

    def sync_ids(self, entity: Entity, ids: list[str], run_id: str) -> StageReport:
        """Exactly these records (webhooks, retries), through the same map, diff and ledger."""
        window = Window(None, None)
        with self._stage(entity, "webhook", window, run_id) as report, self.staging.entity_lock(entity):
            self._sync_ids_into(entity, ids, run_id, report)
            report.waiting = self.waiting_failures(entity, run_id)
            report.checks.append(_no_failures_check(report))
        return report

    def retry_failed(self, entity: Entity | Literal["auto_contact"] | None, run_id: str) -> list[StageReport]:
        """Re-read and re-sync every record waiting in ``failed_records``, held-back ones included.

        Auto-created contacts are retried through their account (``entity="auto_contact"``
        retries only them, ``"account"`` both): the account is re-read from the CRM, synced
        (normally unchanged, no call), and its auto-contact is created again.
        """
        reports = []
        for name in [entity] if entity else self.enabled_entities():
            owner: Entity = "account" if name == AUTO_CONTACT else name  # type: ignore[assignment]
            ids = self._retry_ids(name)
            window = Window(None, None)
            with self._stage(owner, "retry", window, run_id) as report, self.staging.entity_lock(owner):
                report.counts["queued"] = len(ids)
                if ids:
                    self._sync_ids_into(owner, ids, run_id, report, retry_held=True)
                    self._forget_gone(owner, report.not_found, run_id, report)
                    self._forget_disabled_auto_contacts(owner, run_id, report)
                report.waiting = self.waiting_failures(owner, run_id)
                report.checks.append(_no_failures_check(report))
            reports.append(report)
        return reports

    def waiting_failures(self, entity: Entity, run_id: str | None = None) -> int:
        """Rows of ``failed_records`` for ``entity`` and its related ledger entities
        (``auto_contact`` for accounts) that did not fail in ``run_id`` (all rows when ``None``)."""
        names = [entity, *RELATED_LEDGER_ENTITIES.get(entity, ())]
        with self.staging.connect() as con:
            row = con.execute(
                "SELECT count(*) FROM failed_records WHERE entity IN (SELECT unnest(?::VARCHAR[])) "
                "AND (?::VARCHAR IS NULL OR last_run_id <> ?)",
                [names, run_id, run_id],
            ).fetchone()
        return int(row[0]) if row else 0

    def _forget_gone(self, entity: Entity, gone: list[str], run_id: str, report: StageReport) -> None:
        """Failed records whose source record no longer exists leave ``failed_records``.

        Nothing is left to sync (deletions are not propagated), so keeping them would hold
        every later run at exit code 3 with no way out. Each gets a ledger row (``skipped``,
        ``not found at the source``) so its end stays traceable. Content keys of id-less rows
        (``<no-id>:…``) are never looked up by id, so they stay until the row is fixed.
        """
        ids = {i for i in gone if not i.startswith(INVALID_ID_PREFIX)}
        if not ids:
            return
        forgotten = sum(self._retire(name, ids, run_id, "gone",
                                     f"not found at the source: the {entity} no longer exists")
                        for name in [entity, *RELATED_LEDGER_ENTITIES.get(entity, ())])
        if forgotten:
            report.counts["gone_from_failed_records"] = forgotten
            self.log.warning("%s: %d failed records no longer exist at the source; removed from failed_records "
                             "(ledger outcome skipped, note 'gone')", entity, forgotten)

    def _forget_disabled_auto_contacts(self, entity: Entity, run_id: str, report: StageReport) -> None:
        """Failed auto-contacts after ``auto_create_contact`` was switched off: nothing will ever
        retry them, so ``retry-failed`` retires them (ledger row, note ``auto_create_contact off``)
        instead of leaving every later run at exit code 3."""
        if entity != "account":
            return
        settings = self.ctx.entity_config("account").auto_create_contact
        if settings is not None and settings.mapping is not None:
            return
        ids = set(self.staging.failed_ids(AUTO_CONTACT))
        forgotten = self._retire(AUTO_CONTACT, ids, run_id, "auto_create_contact off",
                                 "auto_create_contact is no longer configured for accounts") if ids else 0
        if forgotten:
            report.counts[f"{AUTO_CONTACT}_retired"] = forgotten
            self.log.warning("account: %d failed auto-contacts removed from failed_records: auto_create_contact "
                             "is off", forgotten)

    def _retire(self, name: str, ids: set[str], run_id: str, note: str, reason: str) -> int:
        """Remove these ids' rows of ``name`` from ``failed_records``, each with a ``skipped``
        ledger row saying why; returns how many there were."""
        rows = [r for r in self.staging.failed_records(name) if str(r["source_id"]) in ids]
        if not rows:
            return 0
        results = [RecordResult(str(r["source_id"]), "skipped", lookup_key=r.get("lookup_key"),
                                error_class=str(r["error_class"]), remember=False, note=note,
                                error_message=f"{reason}; removed from failed_records (was: {r['error_class']})")
                   for r in rows]
        with self.staging.session():
            self.staging.record_results(run_id, None, name, results)
            with self.staging.connect() as con:
                con.execute("DELETE FROM failed_records WHERE entity = ? "
                            "AND source_id IN (SELECT unnest(?::VARCHAR[]))", [name, [r.source_id for r in results]])
        return len(results)

    def _retry_ids(self, name: str) -> list[str]:
        """The source ids to retry for ``name``; account ids of failed auto-contacts count as accounts."""
        own = self.staging.failed_ids(name)
        for related in RELATED_LEDGER_ENTITIES.get(name, ()):
            own.extend(self.staging.failed_ids(related))
        return list(dict.fromkeys(own))

    def reconcile(self, entity: Entity, window: Window) -> CheckOutcome:
        return reconcile(self.ctx, entity, self._extract_window(entity, window))

    def reset_state(self, entity: Entity | None = None) -> None:
        self.staging.reset_state(entity)
        if entity in (None, "account"):
            self.staging.reset_state(AUTO_CONTACT)

    def close(self) -> None:
        self.ctx.crm.adapter.close()
        self.ctx.daktela.close()  # its writer pool, then its HTTP client

    # -- internals -------------------------------------------------------------------------------
    @contextmanager
    def _stage(self, entity: Entity, stage: Stage, window: Window, run_id: str) -> Iterator[StageReport]:
        report = StageReport(entity=entity, stage=stage, run_id=run_id, window=window)
        before = self.ctx.api_snapshot()
        started = time.monotonic()
        try:
            with self.staging.hold():  # one staging connection per stage (not per call)
                yield report
        finally:
            report.api_calls = self.ctx.api_delta(before)
            report.duration_s = round(time.monotonic() - started, 3)
            report.metadata.update(_adapter_usage(self.ctx.crm.adapter, self.log))

    def _extract_window(self, entity: Entity, window: Window) -> Window:
        """Activities also re-scan trailing partitions so late changes (close, disposition) land."""
        entry = self.config.entity(entity)
        if entity != "activity" or entry is None or window.start is None or entry.rescan_partitions <= 0:
            return window
        from datetime import timedelta

        step = timedelta(days=1) if self.config.partitions.granularity == "daily" else timedelta(hours=1)
        return Window(window.start - step * entry.rescan_partitions, window.end)

    def _batch(self, entity: Entity, window: Window, run_id: str) -> str:
        batch = self.staging.latest_batch(entity, *_bounds(self._extract_window(entity, window)), run_id=run_id)
        if batch is None:
            raise MissingExtractError(
                f"no extract of {entity} for {window.label()}; materialize the extract step "
                f"({'daktela/activities' if entity == 'activity' else 'crm/' + entity + 's'}) first"
            )
        return batch.batch_id

    def _loader(self, entity: Entity, batch: str, run_id: str, *, dry_run: bool = False,
                verify: bool = False, retry_held: bool = False,
                side_reports: list[StageReport] | None = None) -> DaktelaLoader | CrmActivityLoader:
        """``side_reports`` collects the reports of on-the-fly syncs of related records."""
        if entity == "activity":
            return CrmActivityLoader(self.ctx, run_id, batch, dry_run=dry_run, verify=verify, retry_held=retry_held)
        sink = side_reports if side_reports is not None else []
        ensure = None if dry_run else (
            lambda rel_entity, ids: sink.append(self._ensure_related(rel_entity, ids, run_id)))
        return DaktelaLoader(self.ctx, entity, run_id, batch, dry_run=dry_run, verify=verify, ensure_related=ensure,
                             retry_held=retry_held)

    def _load_batch(self, entity: Entity, batch: str, run_id: str, report: StageReport, *,
                    verify: bool = False, retry_held: bool = False) -> None:
        outcome = self._loader(entity, batch, run_id, verify=verify, retry_held=retry_held,
                               side_reports=report.side_reports).run()
        _merge(report, outcome)
        if entity == "account":
            creator = AutoContactCreator(self.ctx, run_id, batch, verify=verify, retry_held=retry_held)
            if creator.enabled:
                before = self.ctx.api_snapshot()
                auto = creator.run()
                for system, calls in self.ctx.api_delta(before).items():
                    report.related_api_calls[system] = report.related_api_calls.get(system, 0) + calls
                for key, value in auto.counts.items():
                    report.counts[f"{AUTO_CONTACT}_{key}"] = report.counts.get(f"{AUTO_CONTACT}_{key}", 0) + value
                report.failures.extend(dataclasses.replace(f, entity=AUTO_CONTACT)
                                       for f in auto.failures[: max(0, 20 - len(report.failures))])

    def _sync_ids_into(self, entity: Entity, ids: list[str], run_id: str, report: StageReport, *,
                       retry_held: bool = False) -> None:
        batch, count, gone = extract_ids(self.ctx, entity, ids, run_id)
        report.counts["extracted"] = report.counts.get("extracted", 0) + count
        if gone:
            report.counts["not_found"] = report.counts.get("not_found", 0) + len(gone)
            report.not_found.extend(gone)
            self.log.warning("%s: %d requested records no longer exist at the source: %s", entity, len(gone),
                             ", ".join(gone[:10]))
        counts, _checks, failures = map_batch(self.ctx, entity, batch, run_id)
        report.counts["failed"] = report.counts.get("failed", 0) + counts["invalid"]
        report.failures.extend(failures)
        self._load_batch(entity, batch, run_id, report, retry_held=retry_held)
        self.staging.finish_load(batch)

    def _ensure_related(self, entity: Entity, source_ids: list[str], run_id: str) -> StageReport:
        """Sync referenced records first; the report joins the caller's ``side_reports`` so its
        failures (and its auto-contacts' failures) count in the run like any other."""
        with self._stage(entity, "load", Window(None, None), run_id) as report:
            self._sync_ids_into(entity, source_ids, run_id, report)
        self.log.info("on-the-fly %s sync for relations: %s", entity, report.summary_line())
        if report.failed:
            self.log.warning("on-the-fly %s sync for relations: %d records failed", entity, report.failed)
        return report

    def _retry_transient(self, entity: Entity, batch: str, run_id: str, report: StageReport) -> None:
        """Transient and auth dead letters from earlier runs are retried automatically (bounded).

        An ``auth`` failure says nothing about the record (the token was refused mid-run), so
        it is retried like a transient one once a run gets through with a valid token. A failed
        auto-contact is retried through its account, as ``retry-failed`` does.
        """
        classes, limit = ["transient", "auth"], self.ctx.settings.auto_retry_limit
        candidates = self.staging.failed_ids(entity, classes, limit)
        for related in RELATED_LEDGER_ENTITIES.get(entity, ()):
            candidates.extend(self.staging.failed_ids(related, classes, limit))
        candidates = list(dict.fromkeys(candidates))
        if not candidates:
            return
        in_batch = self.staging.batch_source_ids(batch, candidates)
        ids = [i for i in candidates if i not in in_batch]
        if ids:
            self.log.info("%s: retrying %d records that failed transiently before", entity, len(ids))
            report.counts["retried"] = len(ids)
            self._sync_ids_into(entity, ids, run_id, report)


def _adapter_usage(adapter: CrmAdapter, log: logging.Logger) -> dict[str, Any]:
    """The optional ``usage()`` figures of the CRM adapter (requests used, budget left), prefixed ``crm_``.

    A hook that fails is logged and skipped: reporting must never fail a stage.
    """
    usage = getattr(adapter, "usage", None)
    if not callable(usage):
        return {}
    try:
        figures = usage()
    except Exception as exc:  # an adapter's reporting bug must not fail the sync
        log.warning("crm adapter usage() failed: %s", exc)
        return {}
    if not isinstance(figures, dict):
        return {}
    return {f"crm_{key}": value for key, value in figures.items() if isinstance(value, (str, int, float, bool))}


def _bounds(window: Window) -> tuple[Any, Any]:
    return window.start, window.end


def _merge(report: StageReport, outcome: LoadOutcome) -> None:
    for key, value in outcome.counts.items():
        report.counts[key] = report.counts.get(key, 0) + value
    report.metadata.update(outcome.metadata)
    report.failures.extend(outcome.failures[: max(0, 20 - len(report.failures))])


def _no_failures_check(report: StageReport) -> CheckOutcome:
    """Passes only when nothing failed in this stage AND nothing waits from earlier runs.

    Held-back failures (same data as the last failed attempt) are not retried by a run, so a
    check that only looked at this run's failures would turn green while records are missing
    from the target.
    """
    failed, waiting = report.failed, report.waiting
    side_failed: dict[str, int] = {}
    for side in report.all_side_reports():
        if side.failed:
            side_failed[side.entity] = side_failed.get(side.entity, 0) + side.failed
    parts = []
    if failed:
        parts.append(f"{failed} records failed in this run")
    for entity, count in side_failed.items():
        parts.append(f"{count} {entity} records synced on the fly (referenced by this batch) failed")
    if waiting:
        parts.append(f"{waiting} records from earlier runs still wait in failed_records")
    description = "; ".join(parts) + " (retry: `crmsync retry-failed`)" if parts else "no record failed"
    metadata: dict[str, Any] = {"failed": failed, "waiting_from_earlier_runs": waiting,
                                **{f"on_the_fly_{entity}_failed": n for entity, n in side_failed.items()}}
    for related in RELATED_LEDGER_ENTITIES.get(report.entity, ()):
        metadata[f"{related}_failed"] = report.counts.get(f"{related}_failed", 0)
    metadata["sample"] = [f"{f.entity + ' ' if f.entity else ''}{f.source_id}: [{f.error_class}] {f.message}"
                          for f in report.failures[:5]]
    return CheckOutcome(name="no_failed_records", passed=not failed and not waiting and not side_failed,
                        description=description, metadata=metadata)


__all__ = ["MissingExtractError", "SyncEngine"]
