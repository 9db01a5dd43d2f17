"""Reconciliation: do the two systems agree on the keys of a window?

Reads the target for every valid key the last extract of the window produced (batched), so
a record deleted in Daktela by hand, or a write that silently did not land, shows up as a
failed check instead of staying invisible behind the change-detection memory.
"""

from __future__ import annotations

from crmsync_pipelines.engine.context import EngineContext
from crmsync_pipelines.engine.reports import CheckOutcome, Window
from crmsync_pipelines.errors import QuotaExhaustedError


def _keys(ctx: EngineContext, batch_id: str) -> list[str]:
    keys: list[str] = []
    for chunk in ctx.staging.iter_mapped(batch_id, ctx.settings.chunk_size, valid=True):
        keys.extend(r.lookup_key for r in chunk if r.lookup_key)
    return keys


def reconcile(ctx: EngineContext, entity: str, window: Window) -> CheckOutcome:
    name = "reconciliation"
    batch = ctx.staging.latest_batch(entity, window.start, window.end)
    if batch is None:
        return CheckOutcome(name, True, f"no {entity} extract for {window.label()} yet; nothing to compare")
    keys = _keys(ctx, batch.batch_id)
    failed = {r["lookup_key"] for r in ctx.staging.failed_records(entity) if r.get("lookup_key")}
    present: set[str] = set()
    size = ctx.settings.chunk_size
    for start in range(0, len(keys), size):
        chunk = keys[start:start + size]
        if entity == "activity":
            lookup = ctx.mapping("activity").lookup_field
            try:
                present.update(ctx.crm.find_activities_by_external_ids(lookup, chunk))
            except QuotaExhaustedError as exc:  # not a crash: the next run reconciles
                return CheckOutcome(name, False, f"not checked: the CRM's request budget ran out ({exc}); "
                                    "the next run reconciles this window",
                                    metadata={"source_keys": len(keys), "skipped": True})
        else:
            lookup = ctx.mapping(entity).lookup_field
            found = ctx.daktela.get_by_field(ctx.spec(entity).model, lookup, chunk)  # type: ignore[arg-type]
            present.update(k for k, v in found.items() if v)
    missing = [k for k in keys if k not in present]
    unexplained = [k for k in missing if k not in failed]
    target = "the CRM" if entity == "activity" else "Daktela"
    return CheckOutcome(
        name=name,
        passed=not unexplained,
        description=(f"{len(keys)} source keys, {len(present)} found in {target}, "
                     f"{len(missing)} missing ({len(missing) - len(unexplained)} of them in failed_records)"),
        metadata={"source_keys": len(keys), "found": len(present), "missing": len(missing),
                  "missing_unexplained": len(unexplained), "sample": unexplained[:10]},
    )
