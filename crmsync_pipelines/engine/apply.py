"""Turning write results and exceptions into ledger rows."""

from __future__ import annotations

import json
from typing import Any

from crmsync_pipelines.engine.reports import FailureSample
from crmsync_pipelines.errors import classify
from crmsync_pipelines.staging.store import MappedRow, RecordResult


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


def samples(results: list[RecordResult], limit: int = 20) -> list[FailureSample]:
    return [
        FailureSample(r.source_id, r.error_class or "", r.error_message or "")
        for r in results if r.outcome == "failed"
    ][:limit]
