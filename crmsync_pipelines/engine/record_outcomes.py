"""What happened to each record of one run, field by field, read back from staging.

Single-record sync (``crmsync sync --id``, the ``sync_records`` Dagster job, the library's
``sync_ids``) prints, per requested record, the outcome and the fields it wrote. Nothing is
kept in memory for that: the load stage already records every decision in staging, and this
module reads it back for one run:

* ``ledger`` — the outcome (created / updated / unchanged / failed / skipped), target key and
  id, error class and message (the last row of the run per record wins: a record retried
  inside the run reports its final state);
* ``mapped_records`` — the new value of each field (the mapped payload);
* ``target_snapshot`` — the value the target held before this run's write (saved by the load
  stage for every record it looked up in this run); an updated record's changes are the
  load stage's own comparison (``compare.changed_fields``) of the two;
* ``diffs`` — the changed field names, when no snapshot exists (activities of a CRM whose
  adapter looks them up through the ledger); the old value is then unknown (``None``).

A created record lists every mapped field with ``old=None``; an unchanged one lists none.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from crmsync_pipelines.engine.compare import changed_fields
from crmsync_pipelines.engine.paths import flatten, read_path
from crmsync_pipelines.engine.reports import FieldChange
from crmsync_pipelines.staging.store import StagingStore

#: The outcome of a requested id the source does not have (not a ledger outcome: no record exists).
NOT_FOUND = "not_found"


@dataclass(frozen=True)
class RecordOutcome:
    """One record's result in one run.

    ``entity`` is the ledger entity (``contact``, ``account``, ``auto_contact``, ``activity``,
    ``custom:<name>``); ``outcome`` one of created, updated, unchanged, failed, skipped,
    not_found; ``changes`` the written fields (dotted paths, ``customFields.email``).
    """

    entity: str
    source_id: str
    outcome: str
    target_key: str | None = None
    target_id: str | None = None
    error_class: str | None = None
    error_message: str | None = None
    changes: tuple[FieldChange, ...] = ()

    @property
    def ok(self) -> bool:
        return self.outcome in ("created", "updated", "unchanged")


def record_outcomes(staging: StagingStore, run_id: str, entity: str,
                    source_ids: Iterable[str] | None = None) -> list[RecordOutcome]:
    """The final outcome of each record of ``entity`` ledgered in ``run_id`` (all, or ``source_ids``),
    in the order of ``source_ids`` when given, else in ledger order."""
    wanted = None if source_ids is None else list(dict.fromkeys(source_ids))
    with staging.connect() as con:
        ledger = con.execute(
            "SELECT source_id, outcome, lookup_key, target_id, error_class, error_message, batch_id "
            "FROM ledger WHERE run_id = ? AND entity = ? "
            "AND (?::VARCHAR[] IS NULL OR list_contains(?::VARCHAR[], source_id)) ORDER BY recorded_at",
            [run_id, entity, wanted, wanted],
        ).fetchall()
        diffs = con.execute(
            "SELECT source_id, batch_id, changed_fields FROM diffs WHERE run_id = ? AND entity = ? "
            "ORDER BY decided_at", [run_id, entity],
        ).fetchall()
        last: dict[str, tuple[Any, ...]] = {str(row[0]): row for row in ledger}
        batches = sorted({str(row[6]) for row in last.values() if row[6] is not None})
        payloads = con.execute(
            "SELECT batch_id, source_id, payload FROM mapped_records "
            "WHERE batch_id IN (SELECT unnest(?::VARCHAR[])) AND source_id IN (SELECT unnest(?::VARCHAR[]))",
            [batches, list(last)],
        ).fetchall()
        keys = sorted({str(row[2]) for row in last.values() if row[2] is not None})
        snapshots = con.execute(
            "SELECT lookup_key, payload FROM target_snapshot WHERE entity = ? AND run_id = ? "
            "AND lookup_key IN (SELECT unnest(?::VARCHAR[]))", [entity, run_id, keys],
        ).fetchall()
    changed = {(str(sid), str(batch)): json.loads(fields) if fields else [] for sid, batch, fields in diffs}
    mapped = {(str(batch), str(sid)): json.loads(p) if p else None for batch, sid, p in payloads}
    before = {str(key): json.loads(p) if p else None for key, p in snapshots}
    outcomes: dict[str, RecordOutcome] = {}
    for sid, (source_id, outcome, key, target_id, error_class, message, batch) in last.items():
        payload = mapped.get((str(batch), sid)) or {}
        changes: tuple[FieldChange, ...] = ()
        if outcome == "created":
            changes = tuple(FieldChange(path, None, value) for path, value in flatten(payload).items())
        elif outcome == "updated":
            old = before.get(str(key)) if key is not None else None
            if old is not None:  # the same comparison the load stage made
                changes = tuple(changed_fields(payload, old))
            else:  # no snapshot (a CRM looked up through the ledger): the diff's field names
                changes = tuple(FieldChange(path, None, read_path(payload, path))
                                for path in changed.get((sid, str(batch)), []))
        outcomes[sid] = RecordOutcome(
            entity=entity, source_id=str(source_id), outcome=str(outcome),
            target_key=None if key is None else str(key), target_id=None if target_id is None else str(target_id),
            error_class=error_class, error_message=message, changes=changes,
        )
    if wanted is None:
        return list(outcomes.values())
    return [outcomes[sid] for sid in wanted if sid in outcomes]


__all__ = ["NOT_FOUND", "RecordOutcome", "record_outcomes"]
