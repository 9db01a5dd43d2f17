"""Extract: read the source side of an entity into ``raw_records``, streaming in chunks.

Accounts and contacts come from the CRM (records modified in the window); activities from
Daktela (activities created in the window, one query per channel so no channel can starve
another — W1), plus every activity still waiting to settle, so late changes reach the CRM.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from crmsync_pipelines.crm.base import RECORD_ERROR_KEY
from crmsync_pipelines.daktela.activities import raw_fields
from crmsync_pipelines.engine.context import EngineContext
from crmsync_pipelines.engine.reports import Window

#: Source ids of records that came without one: the prefix, then a digest of the record.
INVALID_ID_PREFIX = "<no-id>:"


def _has_id(raw: Any) -> bool:
    return raw is not None and str(raw).strip() != ""


def _content_key(record: dict[str, Any]) -> str:
    """The same record gives the same key in every window, so its dead letter is updated, not
    duplicated (a position in the batch would change whenever other records do)."""
    canonical = json.dumps(record, sort_keys=True, ensure_ascii=False, default=str, separators=(",", ":"))
    return INVALID_ID_PREFIX + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:24]


def _identified(record: dict[str, Any], source: str) -> tuple[str, dict[str, Any]]:
    """(source id, record): ids are kept exactly as the source gave them (``' padded '`` too).

    A record without an id gets a content key and, when the adapter did not say why, a reason
    naming the adapter method that broke the contract (the map stage fails it with that reason).
    """
    if not isinstance(record, dict):
        record = {"value": repr(record)[:500],
                  RECORD_ERROR_KEY: f"{source} yielded a {type(record).__name__}, not a dict record"}
    raw = record.get("id")
    if _has_id(raw):
        return str(raw), record
    if not record.get(RECORD_ERROR_KEY):
        record = {**record, RECORD_ERROR_KEY: (
            f"{source} yielded a record without an 'id' (every record needs its source id; "
            f"see crmsync_pipelines.crm.base), keys: {', '.join(sorted(map(str, record))) or 'none'}")}
    return _content_key(record), record


def _stage(ctx: EngineContext, batch_id: str, entity: str, records: Iterable[dict[str, Any]],
           source: str = "the source") -> int:
    """Stage ``records`` in chunks; an adapter that repeats a record gets one row (the first),
    dropped set-wise by ``finish_extract`` so no set of every id is held in memory."""
    chunk: list[tuple[str, dict[str, Any]]] = []
    count = 0
    for original in records:
        chunk.append(_identified(original, source))
        if len(chunk) >= ctx.settings.chunk_size:
            ctx.staging.insert_raw(batch_id, entity, chunk)
            count += len(chunk)
            ctx.log.info("%s: extracted %d records so far", entity, count)
            chunk = []
            ctx.staging.let_waiters_in()
    ctx.staging.insert_raw(batch_id, entity, chunk)
    return ctx.staging.finish_extract(batch_id)


def _crm_method(ctx: EngineContext, entity: str, method: str) -> str:
    """``"<adapter name> adapter's iter_contacts()"``: how failures name the code that broke the contract."""
    return f"the {getattr(ctx.crm.adapter, 'name', 'crm')!s} adapter's {method}()"


def _crm_records(ctx: EngineContext, entity: str, window: Window) -> Iterator[dict[str, Any]]:
    method = ctx.crm.adapter.iter_accounts if entity == "account" else ctx.crm.adapter.iter_contacts
    yield from ctx.crm.iterate(method, window.start, window.end)


def _is_settled(ctx: EngineContext, row: dict[str, Any], settle: timedelta, now: datetime) -> bool:
    """Closed, and closed long enough ago that wrap-up, disposition and recording are final."""
    closed = row.get("time_close")
    if not closed or str(row.get("action") or "").upper() not in ("CLOSE", ""):
        return False
    try:
        return ctx.daktela.from_instance_time(str(closed)) <= now - settle
    except ValueError:
        return False


def _activity_records(ctx: EngineContext, window: Window) -> Iterator[dict[str, Any]]:
    entry = ctx.entity_config("activity")
    settle = timedelta(minutes=entry.settle_minutes)
    now = datetime.now(UTC)
    # The activities still waiting to settle (oldest first, at most 5,000): those the window does
    # not read again are re-read by name afterwards. Kept instead of a set of every name read,
    # and the settle bookkeeping is written every chunk, so memory does not grow with the window.
    waiting = dict.fromkeys(name for name, _ in ctx.staging.unsettled())
    unsettled: list[tuple[str, str]] = []
    settled: list[str] = []

    def flush() -> None:
        ctx.staging.mark_unsettled(unsettled)
        ctx.staging.clear_unsettled(settled)
        unsettled.clear()
        settled.clear()

    def track(row: dict[str, Any]) -> dict[str, Any]:
        name = str(row.get("name"))
        waiting.pop(name, None)
        if _is_settled(ctx, row, settle, now):
            settled.append(name)
        else:
            unsettled.append((name, str(row.get("activity_type") or "")))
        if len(settled) + len(unsettled) >= ctx.settings.chunk_size:
            flush()
        return row

    # Only the fields the mapping and the engine read are requested (a fields[] projection).
    mapping = entry.mapping
    wanted = raw_fields(rule.cc_field for rule in mapping.mappings if not rule.has_value) if mapping else None
    for activity_type in entry.activity_types:
        for row in ctx.daktela.iter_activities(str(activity_type), since=window.start, until=window.end,
                                               fields=wanted):
            yield track(row)
    pending = list(waiting)
    if pending:
        ctx.log.info("activity: re-reading %d activities that were not settled yet", len(pending))
        found = ctx.daktela.get_activities(pending)
        for row in found.values():
            yield track(row)
        settled.extend(name for name in pending if name not in found)  # deleted in Daktela: stop asking
    flush()


def extract_window(ctx: EngineContext, entity: str, window: Window, run_id: str) -> tuple[str, int]:
    batch_id = ctx.staging.new_batch(entity, "window", run_id, window.start, window.end)
    if entity == "activity":
        return batch_id, _stage(ctx, batch_id, entity, _activity_records(ctx, window), "Daktela activities")
    source = _crm_method(ctx, entity, f"iter_{entity}s")
    return batch_id, _stage(ctx, batch_id, entity, _crm_records(ctx, entity, window), source)


def fetch_by_ids(ctx: EngineContext, entity: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Source records for explicit ids: CRM ids for accounts/contacts, Daktela names for activities.

    Content keys of records that came without an id (``INVALID_ID_PREFIX``) are no source ids:
    they are never sent to the source, and come back as not found.
    """
    ids = [i for i in ids if not i.startswith(INVALID_ID_PREFIX)]
    if entity == "activity":
        return dict(ctx.daktela.get_activities(ids))
    if entity == "account":
        return dict(ctx.crm.get_accounts(ids))
    return dict(ctx.crm.get_contacts(ids))


def extract_ids(ctx: EngineContext, entity: str, ids: list[str], run_id: str) -> tuple[str, int, list[str]]:
    """Stage exactly these records; returns the ids the source no longer has."""
    wanted = list(dict.fromkeys(i for i in ids if i))
    found = fetch_by_ids(ctx, entity, wanted)
    batch_id = ctx.staging.new_batch(entity, "ids", run_id, None, None)
    source = "Daktela activities" if entity == "activity" else _crm_method(ctx, entity, f"get_{entity}s")
    count = _stage(ctx, batch_id, entity, (found[i] | {"id": i} if entity != "activity" else found[i]
                                            for i in wanted if i in found), source)
    return batch_id, count, [i for i in wanted if i not in found]
