"""Load activities into the CRM, idempotent by the Daktela activity name (the external id).

Per chunk: unchanged hashes cost nothing; the rest are looked up in the CRM in one batch
(``find_activities_by_external_ids``), compared on mapped fields, and only new or changed
activities are upserted (W13: no duplicates, no blind re-writes).

Two optional adapter hooks (see docs/writing-a-crm-adapter.md):

* ``activity_lookup = "ledger"``: the CRM has no cheap batch lookup by external id (Raynet),
  so new versus changed comes from our ledger instead of the CRM; each record is sent with
  the CRM id the ledger knows under ``"id"`` (absent for new ones), and the adapter's
  upsert must stay idempotent on its own (Raynet refuses a duplicate extId). ``--force-full``
  (``verify``) still looks every record up in the CRM.
* ``write_only_activity_fields``: payload keys the CRM does not store (routing and linking
  hints); they are never compared with what the CRM holds.

A ``QuotaExhaustedError`` (a daily request budget used up) stops writing for the rest of the
run: every record not written is filed as a ``transient`` failure, retried by the next run,
and the stage ends with its report instead of crashing.
"""

from __future__ import annotations

from typing import Any

from crmsync_pipelines.engine.apply import failed, split_unchanged, succeeded
from crmsync_pipelines.engine.compare import changed_fields, project
from crmsync_pipelines.engine.context import EngineContext
from crmsync_pipelines.engine.load_daktela import LoadOutcome
from crmsync_pipelines.engine.paths import flatten
from crmsync_pipelines.engine.reports import FieldChange, PlannedChange
from crmsync_pipelines.errors import NotSupportedError, QuotaExhaustedError
from crmsync_pipelines.staging.store import MappedRow, RecordResult

_QUOTA_NOTE = "not sent: the CRM's request budget ran out during this run; retried by the next run"


class CrmActivityLoader:
    def __init__(self, ctx: EngineContext, run_id: str, batch_id: str, *, dry_run: bool = False,
                 verify: bool = False, retry_held: bool = False) -> None:
        self.ctx = ctx
        self.run_id = run_id
        self.batch_id = batch_id
        self.dry_run = dry_run
        self.verify = verify
        self.retry_held = retry_held
        self.lookup = ctx.mapping("activity").lookup_field
        adapter = ctx.crm.adapter
        #: The CRM id of known records comes from the ledger (``activity_lookup = "ledger"``).
        self.ledger_ids = getattr(adapter, "activity_lookup", "crm") == "ledger"
        self.write_only = frozenset(getattr(adapter, "write_only_activity_fields", ()) or ())
        #: Set once the CRM's request budget is gone: nothing more is sent in this run.
        self.quota: QuotaExhaustedError | None = None
        self.deferred = 0

    def run(self) -> LoadOutcome:
        outcome = LoadOutcome(plan_limit=self.ctx.settings.plan_sample_limit if self.dry_run else 0)
        # Unchanged activities (payload hash = synced_state) are ledgered set-wise in DuckDB.
        set_wise = not self.dry_run and not self.verify
        done = 0
        if set_wise:
            done = self.ctx.staging.record_unchanged(self.run_id, self.batch_id, "activity")
            if done:
                outcome.counts["unchanged"] += done
        for chunk in self.ctx.staging.iter_mapped(self.batch_id, self.ctx.settings.chunk_size, valid=True,
                                                  pending_only=set_wise):
            outcome.add(self.process(chunk, outcome))
            done += len(chunk)
            self.ctx.staging.let_waiters_in()
            self.ctx.log.info("activity: %d records processed (%s)", done,
                              ", ".join(f"{k} {v}" for k, v in sorted(outcome.counts.items())))
        if self.quota is not None:
            self.ctx.log.warning("activity: the CRM request budget ran out; %d records were not sent and wait as "
                                 "transient failures for the next run (%s)", self.deferred, self.quota)
        return outcome

    def _defer(self, rows: list[MappedRow], exc: QuotaExhaustedError) -> list[RecordResult]:
        self.quota = self.quota or exc
        self.deferred += len(rows)
        return [failed(r, exc, note=_QUOTA_NOTE) for r in rows]

    def process(self, rows: list[MappedRow], outcome: LoadOutcome) -> list[RecordResult]:
        """Diff and write one chunk on one staging connection (``StagingStore.hold``)."""
        with self.ctx.staging.hold():
            return self._process(rows, outcome)

    def _process(self, rows: list[MappedRow], outcome: LoadOutcome) -> list[RecordResult]:
        results, todo = split_unchanged(self.ctx.staging, "activity", rows, verify=self.verify,
                                        retry_held=self.retry_held)
        if todo and self.quota is not None and not self.dry_run:
            results.extend(self._defer(todo, self.quota))
            todo = []
        if not todo:
            self._record(results)
            return results
        use_ledger = self.ledger_ids and not self.verify
        known: dict[str, Any] = {}
        existing: dict[str, Any] = {}
        try:
            if use_ledger:
                known = self.ctx.staging.synced_hashes("activity", [r.lookup_key or "" for r in todo])
            else:
                existing = self.ctx.crm.find_activities_by_external_ids(self.lookup, [r.lookup_key for r in todo])
        except QuotaExhaustedError as exc:
            results.extend(self._defer(todo, exc))
            self._record(results)
            return results
        except NotSupportedError as exc:
            results.extend(failed(r, exc) for r in todo)
            self._record(results)
            return results
        except Exception as exc:  # the CRM could not answer: every record of the chunk fails, none is lost
            results.extend(failed(r, exc) for r in todo)
            self._record(results)
            return results
        writes: list[tuple[MappedRow, bool, str | None]] = []
        snapshot: list[tuple[str, str | None, dict[str, Any]]] = []
        for row in todo:
            key = row.lookup_key or ""
            payload = row.payload or {}
            if use_ledger:
                memory = known.get(key)
                target = None if memory is None or memory[1] is None else str(memory[1])
                if outcome.wants_plan:
                    fields = tuple(FieldChange(p, None, v) for p, v in flatten(payload).items())
                    outcome.planned.append(PlannedChange("activity", row.source_id, key,
                                                         "create" if target is None else "update", fields))
                writes.append((row, target is None, target))
                continue
            current = existing.get(key)
            if current is None:
                if outcome.wants_plan:
                    fields = tuple(FieldChange(p, None, v) for p, v in flatten(payload).items())
                    outcome.planned.append(PlannedChange("activity", row.source_id, key, "create", fields))
                writes.append((row, True, None))
                continue
            compared = {k: v for k, v in payload.items() if k not in self.write_only}
            snapshot.append((key, str(current.get("id")), project(current, compared)))
            changes = changed_fields(compared, current)
            if not changes:
                results.append(succeeded(row, "unchanged", current, "id"))
            else:
                if outcome.wants_plan:
                    outcome.planned.append(PlannedChange("activity", row.source_id, key, "update", tuple(changes)))
                writes.append((row, False, str(current.get("id"))))
        if self.dry_run:
            results.extend(RecordResult(r.source_id, "created" if new else "updated", r.lookup_key)
                           for r, new, _target in writes)
            return results
        with self.ctx.staging.session():
            self.ctx.staging.save_snapshot("activity", self.run_id, snapshot)
            self._record(results)
        # Ledger rows (and dead letters) every batch_size writes: at most that many unrecorded
        # after a crash; the synced_state memory of the chunk's writes follows once, set-wise.
        size = max(1, self.ctx.config.sync.batch_size)
        written_all: list[RecordResult] = []
        for start in range(0, len(writes), size):
            batch = writes[start:start + size]
            if self.quota is not None:
                written = self._defer([row for row, _new, _target in batch], self.quota)
            else:
                written = self._write(batch)
            self._record(written, settle=False)
            written_all.extend(written)
        self._record(written_all, ledger=False)
        results.extend(written_all)
        return results

    def _write(self, batch: list[tuple[MappedRow, bool, str | None]]) -> list[RecordResult]:
        payloads = [
            {**(row.payload or {}), "id": target} if self.ledger_ids and target else (row.payload or {})
            for row, _new, target in batch
        ]
        try:
            stored = self.ctx.crm.upsert_activities(self.lookup, payloads)
        except QuotaExhaustedError as exc:
            return self._defer([row for row, _new, _target in batch], exc)
        written: list[RecordResult] = []
        for (row, new, _target), result in zip(batch, stored, strict=True):
            if isinstance(result, QuotaExhaustedError):
                written.extend(self._defer([row], result))
            elif isinstance(result, BaseException):
                written.append(failed(row, result))
            else:
                written.append(succeeded(row, "created" if new else "updated", result, "id"))
        return written

    def _record(self, results: list[RecordResult], *, ledger: bool = True, settle: bool = True) -> None:
        if self.dry_run or not results:
            return
        self.ctx.staging.record_results(self.run_id, self.batch_id, "activity", results, ledger=ledger,
                                        settle=settle)
