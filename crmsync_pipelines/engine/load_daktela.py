"""Load accounts and contacts into Daktela: set-based diff, then only the real writes.

Per chunk of mapped rows:
1. rows whose payload hash equals what we last wrote (``synced_state``) are unchanged — zero calls;
2. the rest are looked up in Daktela with batched ``in`` filters (or, for a big first load,
   one scan of the whole model in pages of 1000 staged into ``target_snapshot``);
3. mapped fields are compared; only creates and real changes are written, with bounded
   concurrency; every record ends in the ledger, failures also in ``failed_records``.

Once Daktela refuses the access token mid-run (401/403 on a lookup or a write, after the
token worked for an earlier call of this client), the loader sends nothing more: every
record of the stage not yet written is filed as an ``auth`` failure without an API call, and
a later run (with a valid token) writes them. A token refused before it ever worked is a
configuration error, not a record's: it is raised and fails the stage before any write.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from crmsync_pipelines.daktela.adapter import WriteOp
from crmsync_pipelines.engine.apply import failed, samples, split_unchanged, succeeded
from crmsync_pipelines.engine.compare import changed_fields, project, update_body
from crmsync_pipelines.engine.context import EngineContext
from crmsync_pipelines.engine.paths import flatten, key_of
from crmsync_pipelines.engine.reports import FailureSample, FieldChange, PlannedChange
from crmsync_pipelines.errors import AuthError, ConflictError, ErrorClass
from crmsync_pipelines.staging.store import MappedRow, RecordResult

EnsureRelated = Callable[[str, list[str]], None]


@dataclass
class LoadOutcome:
    counts: Counter[str] = field(default_factory=Counter)
    failures: list[FailureSample] = field(default_factory=list)
    planned: list[PlannedChange] = field(default_factory=list)
    #: How many planned writes to keep field by field (dry runs only; 0 keeps none, so a real
    #: load of 100k records does not hold 100k change descriptions in memory).
    plan_limit: int = 0
    #: Figures for the stage's metadata (the adaptive write pace: ``daktela_write_*``).
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def wants_plan(self) -> bool:
        return len(self.planned) < self.plan_limit

    def add(self, results: list[RecordResult]) -> None:
        self.counts.update(r.outcome for r in results)
        self.failures.extend(samples(results, 20 - len(self.failures)) if len(self.failures) < 20 else [])


class DaktelaLoader:
    def __init__(
        self,
        ctx: EngineContext,
        entity: str,
        run_id: str,
        batch_id: str,
        *,
        dry_run: bool = False,
        verify: bool = False,
        ensure_related: EnsureRelated | None = None,
        ledger_entity: str | None = None,
        mapping: Any = None,
        retry_held: bool = False,
    ) -> None:
        self.ctx = ctx
        self.entity = entity
        self.ledger_entity = ledger_entity or entity
        self.run_id = run_id
        self.batch_id = batch_id
        self.dry_run = dry_run
        self.verify = verify
        self.retry_held = retry_held
        self.ensure_related = ensure_related
        self.model = ctx.spec(entity).model
        self.mapping = mapping if mapping is not None else ctx.mapping(entity)
        self.lookup = self.mapping.lookup_field
        self.scanned = False
        #: The first refusal of the access token in this stage; from then on nothing is sent.
        self.auth_refused: AuthError | None = None

    # -- public ------------------------------------------------------------------------------
    def run(self) -> LoadOutcome:
        outcome = LoadOutcome(plan_limit=self.ctx.settings.plan_sample_limit if self.dry_run else 0)
        # Unchanged rows (payload hash = synced_state) are ledgered set-wise in DuckDB: no row
        # of an unchanged re-scan passes through Python. A dry run and --force-full compare all.
        set_wise = not self.dry_run and not self.verify
        done = 0
        if set_wise:
            done = self.ctx.staging.record_unchanged(self.run_id, self.batch_id, self.ledger_entity)
            if done:
                outcome.counts["unchanged"] += done
        self._maybe_scan()
        for chunk in self.ctx.staging.iter_mapped(self.batch_id, self.ctx.settings.chunk_size, valid=True,
                                                  pending_only=set_wise):
            results = self.process(chunk, outcome)
            outcome.add(results)
            done += len(chunk)
            self.ctx.staging.let_waiters_in()
            self.ctx.log.info(
                "%s: %d records processed (%s)%s", self.ledger_entity, done,
                ", ".join(f"{k} {v}" for k, v in sorted(outcome.counts.items())), self._pace(outcome),
            )
        return outcome

    def _pace(self, outcome: LoadOutcome) -> str:
        """``; writers 12 (peak 16), 230 writes/s`` for progress lines; the figures go to metadata."""
        pace = self.ctx.daktela.write_pace()
        if not pace or not (outcome.counts.get("created") or outcome.counts.get("updated")):
            return ""
        outcome.metadata.update({"daktela_write_concurrency": pace["limit"],
                                 "daktela_write_concurrency_peak": pace["peak"],
                                 "daktela_writes_per_s": pace["writes_per_s"],
                                 "daktela_write_overloads": pace["overloads"]})
        return f"; writers {pace['limit']} (peak {pace['peak']}), {pace['writes_per_s']:g} writes/s"

    def process(self, rows: list[MappedRow], outcome: LoadOutcome) -> list[RecordResult]:
        """Diff and write one chunk; returns (and unless dry-run records) its results.

        The chunk keeps one staging connection (``StagingStore.hold``): its lookups, writes
        and ledger commits pay no file opening; it is released between chunks so another
        process waiting for the file gets its turn every ``chunk_size`` records.
        """
        with self.ctx.staging.hold():
            return self._process(rows, outcome)

    def _process(self, rows: list[MappedRow], outcome: LoadOutcome) -> list[RecordResult]:
        results, todo = split_unchanged(self.ctx.staging, self.ledger_entity, rows, verify=self.verify,
                                        retry_held=self.retry_held)
        targets: dict[str, list[dict[str, Any]]] = {}
        if self.auth_refused is None and todo:
            try:
                targets = self._targets([r.lookup_key for r in todo if r.lookup_key])
            except AuthError as exc:
                if not self.ctx.daktela.client.token_accepted:
                    raise
                self._stop(exc)
        if self.auth_refused is not None:
            results.extend(self._not_sent(todo))
            if not self.dry_run:
                self._record(results, [], {})
            return results
        creates: list[tuple[MappedRow, WriteOp]] = []
        updates: list[tuple[MappedRow, WriteOp]] = []
        snapshot: list[tuple[str, str | None, dict[str, Any]]] = []
        changed: dict[str, list[str]] = {}
        for row in todo:
            key = row.lookup_key or ""
            payload = row.payload or {}
            matches = targets.get(key, [])
            if len(matches) > 1:
                names = ", ".join(sorted(str(m.get("name")) for m in matches))
                results.append(failed(row, ConflictError(
                    f"{len(matches)} Daktela {self.model} match {self.lookup}={key!r}: {names}")))
                continue
            if not matches:
                creates.append((row, WriteOp(key=row.source_id, model=self.model, action="create",
                                             payload=payload, lookup_field=self.lookup)))
                if outcome.wants_plan:
                    fields = tuple(FieldChange(p, None, v) for p, v in flatten(payload).items())
                    outcome.planned.append(PlannedChange(self.entity, row.source_id, key, "create", fields))  # type: ignore[arg-type]
                continue
            target = matches[0]
            snapshot.append((key, str(target.get("name")), project(target, payload)))
            changes = changed_fields(payload, target)
            if not changes:
                results.append(succeeded(row, "unchanged", target, "name"))
                continue
            if outcome.wants_plan:
                outcome.planned.append(PlannedChange(self.entity, row.source_id, key, "update", tuple(changes)))  # type: ignore[arg-type]
            changed[row.source_id] = [c.field for c in changes]
            updates.append((row, WriteOp(key=row.source_id, model=self.model, action="update",
                                         payload=update_body(payload, target, changes),
                                         name=str(target.get("name")), lookup_field=self.lookup)))
        if not self.dry_run:
            work = creates + updates
            if self.ensure_related is not None and work:
                try:
                    self._ensure_related([op for _, op in work])
                except AuthError as exc:
                    if not self.ctx.daktela.client.token_accepted:
                        raise
                    self._stop(exc)
                    results.extend(self._not_sent([row for row, _ in work]))
                    self._record(results, snapshot, changed)
                    return results
            self._record(results, snapshot, changed)
            results.extend(self._write(work, changed))
        else:
            results.extend(RecordResult(row.source_id, "created" if op.action == "create" else "updated",
                                        row.lookup_key) for row, op in creates + updates)
        return results

    def _stop(self, refusal: AuthError) -> None:
        if self.auth_refused is None:
            self.auth_refused = refusal
            self.ctx.log.error("%s: Daktela refused the access token (%s); nothing more is sent in this stage, "
                               "the remaining records wait in failed_records as auth failures", self.ledger_entity,
                               refusal)

    def _not_sent(self, rows: list[MappedRow]) -> list[RecordResult]:
        """``rows`` as ``auth`` failures without an API call (after the token was refused)."""
        assert self.auth_refused is not None
        error = AuthError(f"not sent: Daktela refused the access token earlier in this stage ({self.auth_refused})")
        return [failed(row, error) for row in rows]

    def _record(self, results: list[RecordResult], snapshot: list[tuple[str, str | None, dict[str, Any]]],
                changed: dict[str, list[str]], *, ledger: bool = True) -> None:
        if not results and not snapshot:
            return
        with self.ctx.staging.session():
            if snapshot:
                self.ctx.staging.save_snapshot(self.ledger_entity, self.run_id, snapshot)
            self.ctx.staging.save_diffs(self.batch_id, self.run_id, self.ledger_entity, [
                (r.source_id, r.lookup_key, _action(r), changed.get(r.source_id, [])) for r in results
            ])
            self.ctx.staging.record_results(self.run_id, self.batch_id, self.ledger_entity, results, ledger=ledger)

    # -- target state ----------------------------------------------------------------------------
    def _maybe_scan(self) -> None:
        """For a big first load, one paged scan beats thousands of ``in`` lookups."""
        if self.lookup != "name" or self.dry_run:
            return
        unknown = self._count_unverified()
        per_lookup = max(1, self.ctx.config.daktela.lookup_chunk_size)
        if unknown <= 2 * per_lookup:
            return
        total = self.ctx.daktela.client.list(self.model, take=1, fields=["name"]).total
        page = max(1, self.ctx.config.daktela.page_size)
        if math.ceil(total / page) + 1 >= math.ceil(unknown / per_lookup):
            return
        self.ctx.log.info("%s: %d records to verify; scanning %d Daktela %s instead of lookups",
                          self.entity, unknown, total, self.model)
        chunk: list[tuple[str, str | None, dict[str, Any]]] = []
        for record in self.ctx.daktela.iter_records(self.model):  # type: ignore[arg-type]
            name = key_of(record.get("name"))
            if name is None:
                continue
            chunk.append((name, name, record))
            if len(chunk) >= 5000:
                self.ctx.staging.save_snapshot(self.ledger_entity, self.run_id, chunk)
                chunk = []
        self.ctx.staging.save_snapshot(self.ledger_entity, self.run_id, chunk)
        self.scanned = True

    def _count_unverified(self) -> int:
        with self.ctx.staging.connect() as con:
            row = con.execute(
                "SELECT count(*) FROM mapped_records m LEFT JOIN synced_state s "
                "ON s.entity = ? AND s.lookup_key = m.lookup_key "
                "WHERE m.batch_id = ? AND m.invalid_class IS NULL "
                "AND (s.payload_hash IS NULL OR s.payload_hash <> m.payload_hash OR ?)",
                [self.ledger_entity, self.batch_id, self.verify],
            ).fetchone()
        return int(row[0]) if row else 0

    def _targets(self, keys: list[str]) -> dict[str, list[dict[str, Any]]]:
        if not keys:
            return {}
        if self.scanned:
            return {k: [v] for k, v in self.ctx.staging.snapshot_records(self.ledger_entity, keys, self.run_id).items()}
        return self.ctx.daktela.get_by_field(self.model, self.lookup, keys)  # type: ignore[arg-type]

    # -- writes -------------------------------------------------------------------------------------
    def _ensure_related(self, ops: list[WriteOp]) -> None:
        """Accounts referenced by these contacts but absent from Daktela are synced first (W8)."""
        assert self.ensure_related is not None
        for rule in self.mapping.mappings:
            rel = rule.relation
            if rel is None:
                continue
            related_mapping = self.ctx.config.sync.entities.get(rel.entity)
            if related_mapping is None or related_mapping.mapping is None:
                continue
            if rel.resolve_to != related_mapping.mapping.lookup_field:
                continue
            keys = {k for k in (key_of(op.payload.get(rule.cc_field)) for op in ops) if k is not None}
            known = self.ctx.staging.known_keys(rel.entity, keys)
            unknown = sorted(keys - known)
            if not unknown:
                continue
            present = self.ctx.daktela.get_by_field(self.ctx.spec(rel.entity).model, rel.resolve_to, unknown)  # type: ignore[arg-type]
            missing = [k for k in unknown if not present.get(k)]
            source_ids = self.ctx.staging.source_ids_for_keys(rel.entity, missing)
            if source_ids:
                self.ctx.log.info("%s: syncing %d referenced %s records missing from Daktela first",
                                  self.entity, len(source_ids), rel.entity)
                self.ensure_related(rel.entity, sorted(source_ids.values()))

    def _write(self, work: list[tuple[MappedRow, WriteOp]], changed: dict[str, list[str]]) -> list[RecordResult]:
        """Stream ``work`` through the adapter's writer pool, recording results as they come.

        The pool is never drained between batches: results are ledgered every ``flush_at``
        results (ledger rows and dead letters only, one cheap commit) while up to ``depth``
        further writes stay queued or in flight, with ``flush_at + depth - 1 <= sync.batch_size``,
        so a crash leaves at most ``batch_size`` writes without a ledger row (the next run re-reads
        them by key; never a duplicate). Diffs and the ``synced_state`` memory follow once per chunk.
        After a refused token nothing more is sent: the rest are filed as ``auth`` failures.
        """
        if not work:
            return []
        size = max(1, self.ctx.config.sync.batch_size)
        concurrency = max(1, self.ctx.daktela.max_write_concurrency)
        depth = max(1, min(size, max(2 * concurrency, size // 2)))
        flush_at = size - depth + 1
        rows = {op.key: row for row, op in work}
        results: list[RecordResult] = []
        buffer: list[RecordResult] = []
        sent = [0]

        def ops() -> Iterator[WriteOp]:
            for _row, op in work:
                if self.auth_refused is not None:
                    return
                sent[0] += 1
                yield op

        for result in self.ctx.daktela.apply_writes(ops(), queue_limit=depth):
            row = rows[result.op.key]
            if result.error is not None:
                if isinstance(result.error, AuthError) and not str(result.error).startswith("not sent:"):
                    # The refusal itself, not one of the "not sent" results it caused, names the cause.
                    self._stop(result.error)
                buffer.append(failed(row, result.error))
            else:
                outcome = "created" if result.op.action == "create" else "updated"
                target = result.record or {"name": result.op.name or row.lookup_key}
                buffer.append(succeeded(row, outcome, target, "name"))
            if len(buffer) >= flush_at:
                self._ledger(buffer)
                results.extend(buffer)
                buffer = []
        if sent[0] < len(work):  # ops() stops only once the token was refused
            buffer.extend(self._not_sent([row for row, _ in work[sent[0]:]]))
        self._ledger(buffer)
        results.extend(buffer)
        # Once per chunk: diffs, the synced_state memory and cleared dead letters, set-wise.
        self._record(results, [], changed, ledger=False)
        return results

    def _ledger(self, results: list[RecordResult]) -> None:
        """The ledger rows (and dead letters) of written records: one cheap commit."""
        if results:
            self.ctx.staging.record_results(self.run_id, self.batch_id, self.ledger_entity, results, settle=False)


def _action(result: RecordResult) -> str:
    return {"created": "create", "updated": "update", "unchanged": "unchanged"}.get(result.outcome, "invalid")


__all__ = ["DaktelaLoader", "ErrorClass", "LoadOutcome"]
