"""``sync_records``: re-sync named records from the Dagster UI's launchpad.

The operator's counterpart of ``crmsync sync --entity contact --id 123``: run config names
the entity and the ids, the op runs the engine's ``sync_ids`` (same diff, ledger and
failed-records table as every other run) and records each record's field-level result as
run metadata. The run fails (no retries: the same ids would fail the same way) when a record
failed or an id does not exist at the source, so the run list shows it.

Launchpad run config::

    ops:
      sync_named_records:
        config:
          entity: contact          # account | contact | activity | custom:<name>
          ids: ["123", "456"]      # CRM ids; Daktela activity names for activity

(No ``from __future__ import annotations`` here: Dagster reads the op's config annotation
at decoration time.)
"""

from typing import Any

import dagster as dg

from crmsync_pipelines.defs.resources import SyncEngineResource
from crmsync_pipelines.defs.stage_assets import STAGING_POOL

#: Records whose field-level result is kept in the run's metadata (the ledger has them all).
METADATA_RECORDS = 50


class SyncRecordsConfig(dg.Config):
    """Which records to sync: ``entity`` and its source ids (kept exactly as given)."""

    entity: str
    ids: list[str]


def _record_json(outcome: Any) -> dict[str, Any]:
    return {
        "entity": outcome.entity,
        "source_id": outcome.source_id,
        "outcome": outcome.outcome,
        "target_key": outcome.target_key,
        "error": f"[{outcome.error_class}] {outcome.error_message}" if outcome.error_class else None,
        "changes": [{"field": c.field, "old": c.old, "new": c.new} for c in outcome.changes],
    }


@dg.op(name="sync_named_records", pool=STAGING_POOL)
def sync_records_op(context: dg.OpExecutionContext, config: SyncRecordsConfig,
                    sync_engine: SyncEngineResource) -> None:
    """Sync exactly ``config.ids`` of ``config.entity`` and report each record."""
    from crmsync_pipelines.cli.sync_ids import outcome_lines, report_outcomes
    from crmsync_pipelines.engine.custom import all_entities, engine_for
    from crmsync_pipelines.engine.record_outcomes import NOT_FOUND, record_outcomes
    from crmsync_pipelines.errors import CrmsyncError

    ids = list(dict.fromkeys(i for i in config.ids if i.strip()))
    if not ids:
        raise dg.Failure("sync_records: `ids` names no record", allow_retries=False)
    try:
        with sync_engine.open(logger=context.log) as engine:
            enabled = all_entities(engine)
            if config.entity not in enabled:
                raise dg.Failure(f"entity {config.entity!r} is not enabled in sync.yaml "
                                 f"(enabled: {', '.join(enabled) or 'none'})", allow_retries=False)
            report = engine_for(engine, config.entity).sync_ids(config.entity, ids, context.run_id)  # type: ignore[arg-type]
            outcomes = report_outcomes(report, record_outcomes(engine.staging, context.run_id, config.entity, ids),
                                       ids)
    except CrmsyncError as exc:
        raise dg.Failure(f"{type(exc).__name__}: {exc}", allow_retries=False) from exc
    for outcome in outcomes:
        context.log.info("\n".join(outcome_lines(outcome)))
    by_outcome: dict[str, int] = {}
    for outcome in outcomes:
        by_outcome[outcome.outcome] = by_outcome.get(outcome.outcome, 0) + 1
    metadata: dict[str, Any] = {
        "entity": config.entity,
        "records": len(ids),
        **{f"count_{name}": count for name, count in sorted(by_outcome.items())},
        "api_calls": dg.MetadataValue.json(report.api_calls),
        "results": dg.MetadataValue.json([_record_json(o) for o in outcomes[:METADATA_RECORDS]]),
    }
    bad = [o for o in outcomes if not o.ok]
    if bad or report.failed:
        missing = sum(1 for o in bad if o.outcome == NOT_FOUND)
        raise dg.Failure(
            description=f"{len(bad)} of {len(ids)} record(s) did not sync ({missing} not found at the source); "
                        "see the results metadata, `crmsync retry-failed` retries the failed ones",
            metadata=metadata,
            allow_retries=False,
        )
    context.add_output_metadata(metadata)


@dg.job(
    name="sync_records",
    executor_def=dg.in_process_executor,
    tags={"crmsync/flow": "sync_records"},
    description="Re-sync named records (run config: entity and ids) through the same diff and ledger.",
    config={"ops": {"sync_named_records": {"config": {"entity": "contact", "ids": []}}}},
)
def sync_records() -> None:
    sync_records_op()


@dg.definitions
def sync_records_definitions() -> dg.Definitions:
    return dg.Definitions(jobs=[sync_records])
