"""Load activities into the CRM, idempotent by the Daktela activity name (the external id).

Per chunk: unchanged hashes cost nothing; the rest are looked up in the CRM in one batch
(``find_activities_by_external_ids``), compared on mapped fields, and only new or changed
activities are upserted (W13: no duplicates, no blind re-writes).
"""

from __future__ import annotations

from typing import Any

from crmsync_pipelines.engine.apply import failed, split_unchanged, succeeded
from crmsync_pipelines.engine.compare import changed_fields, project
from crmsync_pipelines.engine.context import EngineContext
from crmsync_pipelines.engine.load_daktela import LoadOutcome
from crmsync_pipelines.engine.paths import flatten
from crmsync_pipelines.engine.reports import FieldChange, PlannedChange
from crmsync_pipelines.errors import NotSupportedError
from crmsync_pipelines.staging.store import MappedRow, RecordResult


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

    def run(self) -> LoadOutcome:
        outcome = LoadOutcome(plan_limit=self.ctx.settings.plan_sample_limit if self.dry_run else 0)
        done = 0
        for chunk in self.ctx.staging.iter_mapped(self.batch_id, self.ctx.settings.chunk_size, valid=True):
            outcome.add(self.process(chunk, outcome))
            done += len(chunk)
            self.ctx.log.info("activity: %d records processed (%s)", done,
                              ", ".join(f"{k} {v}" for k, v in sorted(outcome.counts.items())))
        return outcome

    def process(self, rows: list[MappedRow], outcome: LoadOutcome) -> list[RecordResult]:
        results, todo = split_unchanged(self.ctx.staging, "activity", rows, verify=self.verify,
                                        retry_held=self.retry_held)
        if not todo:
            self._record(results)
            return results
        try:
            existing = self.ctx.crm.find_activities_by_external_ids(self.lookup, [r.lookup_key for r in todo])
        except NotSupportedError as exc:
            results.extend(failed(r, exc) for r in todo)
            self._record(results)
            return results
        except Exception as exc:  # the CRM could not answer: every record of the chunk fails, none is lost
            results.extend(failed(r, exc) for r in todo)
            self._record(results)
            return results
        writes: list[tuple[MappedRow, bool]] = []
        snapshot: list[tuple[str, str | None, dict[str, Any]]] = []
        for row in todo:
            key = row.lookup_key or ""
            payload = row.payload or {}
            current = existing.get(key)
            if current is None:
                if outcome.wants_plan:
                    fields = tuple(FieldChange(p, None, v) for p, v in flatten(payload).items())
                    outcome.planned.append(PlannedChange("activity", row.source_id, key, "create", fields))
                writes.append((row, True))
                continue
            snapshot.append((key, str(current.get("id")), project(current, payload)))
            changes = changed_fields(payload, current)
            if not changes:
                results.append(succeeded(row, "unchanged", current, "id"))
            else:
                if outcome.wants_plan:
                    outcome.planned.append(PlannedChange("activity", row.source_id, key, "update", tuple(changes)))
                writes.append((row, False))
        if self.dry_run:
            results.extend(RecordResult(r.source_id, "created" if new else "updated", r.lookup_key)
                           for r, new in writes)
            return results
        with self.ctx.staging.session():
            self.ctx.staging.save_snapshot("activity", self.run_id, snapshot)
            self._record(results)
        size = max(1, self.ctx.config.sync.batch_size)
        for start in range(0, len(writes), size):
            batch = writes[start:start + size]
            stored = self.ctx.crm.upsert_activities(self.lookup, [r.payload or {} for r, _ in batch])
            written = [
                failed(row, result) if isinstance(result, BaseException)
                else succeeded(row, "created" if new else "updated", result, "id")
                for (row, new), result in zip(batch, stored, strict=True)
            ]
            self._record(written)
            results.extend(written)
        return results

    def _record(self, results: list[RecordResult]) -> None:
        if self.dry_run or not results:
            return
        self.ctx.staging.record_results(self.run_id, self.batch_id, "activity", results)


