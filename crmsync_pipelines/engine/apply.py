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


def split_unchanged(
    staging: StagingStore, entity: str, rows: list[MappedRow], *, verify: bool
) -> tuple[list[RecordResult], list[MappedRow]]:
    """Rows whose payload hash equals what we last wrote are unchanged at zero API cost.

    ``verify`` (``--force-full``) skips the memory so every record is compared with the target.
    """
    known = {} if verify else staging.synced_hashes(entity, [r.lookup_key or "" for r in rows])
    unchanged: list[RecordResult] = []
    todo: list[MappedRow] = []
    for row in rows:
        memory = known.get(row.lookup_key or "")
        if memory is not None and memory[0] == row.payload_hash:
            unchanged.append(RecordResult(row.source_id, "unchanged", row.lookup_key, memory[1],
                                          row.payload_hash, remember=False))
        else:
            todo.append(row)
    return unchanged, todo


def samples(results: list[RecordResult], limit: int = 20) -> list[FailureSample]:
    return [
        FailureSample(r.source_id, r.error_class or "", r.error_message or "")
        for r in results if r.outcome == "failed"
    ][:limit]
