"""Turning write results and exceptions into ledger rows."""

from __future__ import annotations

import json
from typing import Any

from crmsync_pipelines.engine.reports import FailureSample
from crmsync_pipelines.errors import classify
from crmsync_pipelines.staging.store import MappedRow, RecordResult, StagingStore


def error_message(exc: BaseException) -> str:
    """The error text for the ledger; structured field errors (Daktela ``form``) are kept verbatim."""
    message = str(exc) or exc.__class__.__name__
    form = getattr(exc, "form", None)
    if form and "form" not in message:
        message = f"{message} form={json.dumps(form, ensure_ascii=False, default=str)}"
    return message[:2000]


def failed(row: MappedRow, exc: BaseException, note: str | None = None) -> RecordResult:
    return RecordResult(
        row.source_id, "failed", lookup_key=row.lookup_key, payload_hash=row.payload_hash,
        error_class=classify(exc).value, error_message=error_message(exc), payload=row.payload, note=note,
    )


def succeeded(row: MappedRow, outcome: str, target: dict[str, Any] | None, id_field: str,
              note: str | None = None) -> RecordResult:
    target_id = None if target is None else target.get(id_field)
    return RecordResult(
        row.source_id, outcome, lookup_key=row.lookup_key,
        target_id=None if target_id is None else str(target_id), payload_hash=row.payload_hash, note=note,
    )


#: Failure classes that only new data can fix: retrying the same payload again is a wasted call.
DATA_FAILURES = ("validation", "conflict")


def split_unchanged(
    staging: StagingStore, entity: str, rows: list[MappedRow], *, verify: bool, retry_held: bool = False
) -> tuple[list[RecordResult], list[MappedRow]]:
    """Rows that need no API call, and the rest.

    A row whose payload hash equals what we last wrote is unchanged. A row that failed for a
    data reason with exactly this payload before is held back (ledgered as ``skipped``, still
    in ``failed_records``) until its data changes or ``crmsync retry-failed`` asks for it
    (``retry_held``). ``verify`` (``--force-full``) skips the memory and compares every
    record, held-back ones included: a record held as ``validation`` may be in the target
    after all (a create that landed after its answer was lost), and a full verification is
    where that is found out.
    """
    keys = [r.lookup_key or "" for r in rows]
    known = {} if verify else staging.synced_hashes(entity, keys)
    held = {} if retry_held or verify else staging.failed_hashes(entity, [r.source_id for r in rows])
    done: list[RecordResult] = []
    todo: list[MappedRow] = []
    for row in rows:
        memory = known.get(row.lookup_key or "")
        failure = held.get(row.source_id)
        if memory is not None and memory[0] == row.payload_hash:
            done.append(RecordResult(row.source_id, "unchanged", row.lookup_key, memory[1],
                                     row.payload_hash, remember=False))
        elif failure is not None and failure[0] in DATA_FAILURES and failure[1] == row.payload_hash:
            done.append(RecordResult(
                row.source_id, "skipped", row.lookup_key, payload_hash=row.payload_hash, error_class=failure[0],
                error_message="held back: same data as the last failed attempt; change the record in the "
                              "source or run `crmsync retry-failed`",
                remember=False,
            ))
        else:
            todo.append(row)
    return done, todo


def samples(results: list[RecordResult], limit: int = 20) -> list[FailureSample]:
    return [
        FailureSample(r.source_id, r.error_class or "", r.error_message or "")
        for r in results if r.outcome == "failed"
    ][:limit]
