"""Map: raw records -> target payloads with lookup key and hash, quarantining bad records.

A bad record (no id, a mapping error, no lookup key, a missing required field, a relation that
points at nothing, a key another record also claims) is quarantined with a ``[code] reason``
and fails alone; the blocking checks only stop a batch when the share of bad records says the
*mapping* is broken rather than a few records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crmsync_pipelines.engine.compare import payload_hash
from crmsync_pipelines.engine.context import EngineContext
from crmsync_pipelines.engine.extract import INVALID_ID_PREFIX
from crmsync_pipelines.engine.mapversion import mapping_version, memo_relations
from crmsync_pipelines.engine.paths import key_of, read_path
from crmsync_pipelines.engine.relations import RelationResolver
from crmsync_pipelines.engine.reports import CheckOutcome, FailureSample
from crmsync_pipelines.errors import ErrorClass, MappingError
from crmsync_pipelines.mapping import RecordMappingError, Refusal
from crmsync_pipelines.staging.store import MappedRow, RecordResult

CHECKS: tuple[tuple[str, str, str], ...] = (
    ("lookup_key_present", "missing_key", "every record has a non-empty lookup key"),
    ("lookup_key_unique", "duplicate_key", "no two records map to the same lookup key"),
    ("required_fields_present", "required", "every record carries the fields the target requires"),
)


#: Quarantine code of a record whose value a transformer refused (``on_invalid: fail``).
REFUSED_CODE = "refused_value"


@dataclass
class _WrittenRefusals:
    """Values refused but written under ``on_invalid: keep``/``drop``: counts and a bounded sample."""

    kept: int = 0
    dropped: int = 0
    sample: list[str] = field(default_factory=list)
    #: Records with a refused value are not remembered in ``map_memo``: mapped (and counted) every run.
    source_ids: set[str] = field(default_factory=set)

    def add(self, source_id: str, refusals: list[Refusal]) -> None:
        self.source_ids.add(source_id)
        for refusal in refusals:
            if refusal.policy == "keep":
                self.kept += 1
            else:
                self.dropped += 1
            if len(self.sample) < 5:
                self.sample.append(f"{source_id} {refusal.field}: {refusal.reason} ({refusal.policy})")


def _map_one(
    ctx: EngineContext,
    entity: str,
    mapping: Any,
    resolver: RelationResolver,
    relations: dict[str, dict[str, str]],
    source_id: str,
    record: dict[str, Any],
    written_refusals: _WrittenRefusals,
) -> MappedRow:
    def invalid(code: str, reason: str, payload: dict[str, Any] | None = None, klass: str = "validation") -> MappedRow:
        return MappedRow(source_id, None, payload, payload_hash(payload) if payload else None, klass,
                         f"[{code}] {reason}")

    if source_id.startswith(INVALID_ID_PREFIX):
        return invalid("no_id", str(record.get("_error") or "the source record has no id"))
    if record.get("_error"):  # identified, but the source could not read it (crm.base.RECORD_ERROR_KEY)
        return invalid("source", str(record["_error"]))
    spec = ctx.spec(entity)
    refused: list[Refusal] = []
    try:
        payload = ctx.mapper.map(record, mapping, spec.direction, relations, refusals=refused)
    except MappingError as exc:
        return invalid(REFUSED_CODE if isinstance(exc, RecordMappingError) and exc.refused else "mapping", str(exc))
    if refused:
        written_refusals.add(source_id, refused)
    key = key_of(read_path(payload, mapping.lookup_field))
    if key is None:
        return invalid("missing_key", f"lookup field {mapping.lookup_field!r} is empty", payload)
    missing = [f for f in spec.required if key_of(read_path(payload, f)) is None]
    if missing:
        return MappedRow(source_id, key, payload, payload_hash(payload), "validation",
                         f"[required] missing required field(s): {', '.join(missing)}")
    dangling = resolver.unresolved(mapping, record, relations)
    if dangling:
        return MappedRow(source_id, key, payload, payload_hash(payload), "validation",
                         f"[relation] {'; '.join(dangling)}")
    return MappedRow(source_id, key, payload, payload_hash(payload), None, None)


def map_batch(
    ctx: EngineContext, entity: str, batch_id: str, run_id: str, *, record_invalid: bool = True,
    remap: bool = False,
) -> tuple[dict[str, int], list[CheckOutcome], list[FailureSample]]:
    """Map a staged batch into ``mapped_records``.

    Records whose raw payload hash, mapping version (``engine.mapversion``) and relation
    witness equal their last clean mapping reuse it set-wise in DuckDB (``map_memo``) and are
    not mapped again; ``remap`` (``--force-full``) maps every record. Counts include
    ``reused`` (mappings taken from the memo).
    """
    mapping = ctx.mapping(entity)
    resolver = RelationResolver(ctx)
    ctx.staging.clear_mapped(batch_id)
    memo_relations_ = memo_relations(mapping)
    version = mapping_version(ctx, entity) if memo_relations_ is not None else None
    reused = 0
    if version is not None and not remap and memo_relations_ is not None:
        reused = ctx.staging.reuse_memo(batch_id, entity, version, memo_relations_)
        if reused:
            ctx.log.info("%s: %d records unchanged since their last mapping (raw payload and mapping version); "
                         "not mapped again", entity, reused)
    mapped = 0
    written_refusals = _WrittenRefusals()
    for chunk in ctx.staging.iter_raw(batch_id, ctx.settings.chunk_size, unmapped_only=reused > 0):
        relations = resolver.resolve(mapping, (record for _, record in chunk))
        rows = [_map_one(ctx, entity, mapping, resolver, relations, sid, rec, written_refusals) for sid, rec in chunk]
        with ctx.staging.session():
            ctx.staging.insert_mapped(batch_id, entity, rows)
            ctx.staging.upsert_key_map(entity, [(r.source_id, r.lookup_key) for r in rows if r.lookup_key])
        mapped += len(rows)
        ctx.log.info("%s: mapped %d records", entity, mapped)
        ctx.staging.let_waiters_in()
    failures: list[FailureSample] = []
    if version is not None and memo_relations_ is not None and mapped:
        # Range by range, each committed on its own (not in the session below): bounded memory.
        ctx.staging.save_memo(batch_id, entity, version, memo_relations_, written_refusals.source_ids)
    with ctx.staging.session():
        ctx.staging.mark_duplicate_keys(batch_id)
        quality = ctx.staging.mapped_quality(batch_id)
        checks = _checks(ctx, batch_id, quality)
    # One transaction per chunk of quarantined rows (not one for all): their dead letters
    # replace the last ones in place, and DuckDB holds replaced values in memory until commit.
    for bad in ctx.staging.iter_mapped(batch_id, ctx.settings.chunk_size, valid=False):
        if len(failures) < 20:
            failures.extend(FailureSample(r.source_id, r.invalid_class or "", r.invalid_reason or "")
                            for r in bad[: 20 - len(failures)])
        if record_invalid:
            ctx.staging.record_results(run_id, batch_id, entity, [
                RecordResult(r.source_id, "failed", lookup_key=r.lookup_key, payload_hash=r.payload_hash,
                             error_class=r.invalid_class or ErrorClass.VALIDATION.value,
                             error_message=r.invalid_reason, payload=r.payload, note="map")
                for r in bad
            ])
    ctx.staging.finish_map(batch_id)
    counts = {"mapped": quality["total"] - quality["invalid"], "invalid": quality["invalid"]}
    if reused:
        counts["reused"] = reused
    failed = quality.get(REFUSED_CODE, 0)
    refused_values = failed + written_refusals.kept + written_refusals.dropped
    if refused_values:
        # Values, not records: a record whose value was kept or dropped (on_invalid) still syncs.
        counts["refused_values"] = refused_values
        sample = "; ".join(written_refusals.sample)
        ctx.log.warning(
            "%s: %d refused value(s): %d failed their record, %d written unchanged (on_invalid: keep), "
            "%d left out (on_invalid: drop)%s", entity, refused_values, failed, written_refusals.kept,
            written_refusals.dropped, f"; e.g. {sample}" if sample else "",
        )
    return counts, checks, failures[:20]


def _checks(ctx: EngineContext, batch_id: str, quality: dict[str, int]) -> list[CheckOutcome]:
    total = quality["total"]
    outcomes = []
    for name, code, what in CHECKS:
        bad = quality.get(code, 0)
        share = 100.0 * bad / total if total else 0.0
        systemic = total > 0 and (bad == total or (
            bad >= ctx.settings.min_invalid_to_block and share > ctx.settings.max_invalid_percent))
        sample = ctx.staging.invalid_reasons(batch_id, f"[{code}]", limit=5) if bad else []
        outcomes.append(CheckOutcome(
            name=name,
            passed=not systemic,
            description=(f"{what}: {bad} of {total} records quarantined ({share:.1f}%)" if bad
                         else f"{what}: all {total} records pass"),
            metadata={"quarantined": bad, "total": total, "percent": round(share, 2),
                      "sample": [f"{sid}: {reason}" for sid, reason in sample]},
        ))
    return outcomes
