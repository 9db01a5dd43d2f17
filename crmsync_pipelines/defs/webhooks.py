"""The webhook sensor and the job it launches: inbox events -> ``engine.sync_ids`` runs.

The receiver (``crmsync serve-webhooks``) only stores events; this sensor batches the
pending ones per (entity, activity type) and requests one ``webhook_sync`` run per batch.
Runs go through the same engine path (diff, ledger, failed-records table) as the batch
assets, so a record synced by a webhook is never duplicated by the next batch run.

The sensor is RUNNING by default: with no receiver the inbox stays empty (or absent) and a
tick costs one SQLite query, while the demo works without clicking anything.

(No ``from __future__ import annotations`` here: Dagster reads the op's config annotation
at decoration time.)
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, cast

import dagster as dg

from crmsync_pipelines.defs.partitions import config_path_from_env
from crmsync_pipelines.defs.resources import SyncEngineResource
from crmsync_pipelines.defs.stage_assets import STAGING_POOL
from crmsync_pipelines.webhooks.batching import WebhookBatch, plan_batches
from crmsync_pipelines.webhooks.inbox import Inbox
from crmsync_pipelines.webhooks.resolution import NameResolver, Unresolvable, name_resolver

if TYPE_CHECKING:
    from crmsync_pipelines.config.models import SyncConfig
    from crmsync_pipelines.engine.reports import Entity

#: Upper bound of events one tick turns into runs; the rest waits for the next tick.
MAX_EVENTS_PER_TICK = 5000
SYNC_ENTITIES = ("account", "contact", "activity")


class InboxResource(dg.ConfigurableResource):
    """The webhook inbox file: ``path`` when set, else ``webhook.inbox_path`` of ``sync.yaml``.

    ``sync.yaml`` is also where the contact/account mappings come from, whose ``name`` rule
    turns the Daktela names of ``contact_*``/``account_*`` events back into CRM ids.
    """

    config_path: str = ""
    path: str = ""

    def load_config(self) -> "SyncConfig":
        from crmsync_pipelines.config import load_config

        if not self.config_path:
            raise dg.Failure("InboxResource needs config_path (sync.yaml) to resolve Daktela names")
        return load_config(Path(self.config_path))

    def inbox_path(self) -> Path:
        return Path(self.path) if self.path else Path(self.load_config().webhook.inbox_path)

    @contextmanager
    def open(self) -> Iterator[Inbox]:
        inbox = Inbox(self.inbox_path())
        try:
            yield inbox
        finally:
            inbox.close()

    def resolver_for(self, entity: str) -> NameResolver | Unresolvable:
        config = self.load_config()
        entry = config.entity(entity)
        account = config.entity("account")
        auto_create = account.auto_create_contact if account is not None else None
        others = [auto_create.mapping] if entity == "contact" and auto_create and auto_create.mapping else []
        return name_resolver(entry.mapping if entry is not None else None, entity, others)


class WebhookBatchConfig(dg.Config):
    """One batch of inbox events; ``record_ids[i]`` is the record of ``inbox_seqs[i]``."""

    entity: str
    activity_type: str | None = None
    record_ids: list[str]
    inbox_seqs: list[int]


def run_config_for(batch: WebhookBatch) -> dict[str, object]:
    return {
        "ops": {
            "sync_webhook_events": {
                "config": {
                    "entity": batch.entity,
                    "activity_type": batch.activity_type,
                    "record_ids": list(batch.record_ids),
                    "inbox_seqs": list(batch.seqs),
                }
            }
        }
    }


def _error_text(exc: BaseException) -> str:
    from crmsync_pipelines.errors import classify

    return f"{classify(exc).value}: {type(exc).__name__}: {exc}"[:2000]


@dg.op(pool=STAGING_POOL)
def sync_webhook_events(
    context: dg.OpExecutionContext,
    config: WebhookBatchConfig,
    sync_engine: SyncEngineResource,
    webhook_inbox: InboxResource,
) -> None:
    """Sync exactly the batch's records, then record each inbox event's outcome."""
    if config.entity not in SYNC_ENTITIES:
        raise dg.Failure(f"unknown entity {config.entity!r} (known: {', '.join(SYNC_ENTITIES)})")
    if len(config.record_ids) != len(config.inbox_seqs) or not config.record_ids:
        raise dg.Failure("record_ids and inbox_seqs must be non-empty lists of the same length")
    batch = WebhookBatch(config.entity, config.activity_type, tuple(config.record_ids), tuple(config.inbox_seqs))
    ids = batch.unique_ids
    context.log.info(f"syncing {len(ids)} {batch.entity} record(s) from inbox seqs {batch.seqs[0]}-{batch.seqs[-1]}")
    try:
        with sync_engine.open() as engine:
            report = engine.sync_ids(cast("Entity", batch.entity), ids, run_id=context.run_id)
            wanted = set(ids)
            failed = {
                str(row["source_id"]): f"{row['error_class']}: {row.get('error_message') or ''}"
                for row in engine.staging.failed_records(batch.entity)
                if row.get("last_run_id") == context.run_id and str(row["source_id"]) in wanted
            }
    except Exception as exc:
        with webhook_inbox.open() as inbox:
            inbox.mark(batch.seqs, "failed", run_id=context.run_id, error=_error_text(exc))
        raise
    failed_seqs = [seq for seq, rid in zip(batch.seqs, batch.record_ids, strict=True) if rid in failed]
    done_seqs = [seq for seq, rid in zip(batch.seqs, batch.record_ids, strict=True) if rid not in failed]
    with webhook_inbox.open() as inbox:
        inbox.mark(done_seqs, "processed", run_id=context.run_id)
        for seq, rid in zip(batch.seqs, batch.record_ids, strict=True):
            if rid in failed:
                inbox.mark([seq], "failed", run_id=context.run_id, error=failed[rid][:2000])
    context.log.info(report.summary_line())
    context.add_output_metadata(
        {
            "entity": batch.entity,
            "records": len(ids),
            "inbox_events": len(batch.seqs),
            "inbox_processed": len(done_seqs),
            "inbox_failed": len(failed_seqs),
            **{f"count_{k}": v for k, v in sorted(report.counts.items())},
        }
    )


@dg.job(
    name="webhook_sync",
    executor_def=dg.in_process_executor,
    tags={"crmsync/flow": "webhook"},
    description="Sync the records named by one batch of webhook inbox events.",
)
def webhook_sync() -> None:
    sync_webhook_events()


def _cursor_seq(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        return int(cursor)
    except ValueError:
        raise dg.Failure(f"webhook_inbox_sensor cursor must be an inbox seq, got {cursor[:40]!r}") from None


@dg.sensor(
    name="webhook_inbox_sensor",
    job=webhook_sync,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Turns new webhook inbox events into webhook_sync runs, one per entity batch.",
)
def webhook_inbox_sensor(
    context: dg.SensorEvaluationContext, webhook_inbox: InboxResource
) -> dg.SensorResult | dg.SkipReason:
    after = _cursor_seq(context.cursor)
    path = webhook_inbox.inbox_path()
    if not path.exists():
        return dg.SkipReason(f"no webhook inbox at {path} yet (is crmsync serve-webhooks running?)")
    with webhook_inbox.open() as inbox:
        events = inbox.pending_after(after, limit=MAX_EVENTS_PER_TICK)
        context.log.info(f"found {len(events)} events since seq {after}")
        if not events:
            return dg.SkipReason(f"no pending webhook events since seq {after}")
        plan = plan_batches(events, webhook_inbox.resolver_for)
        for seq, reason in plan.ignored:
            inbox.mark([seq], "ignored", error=reason)
    run_requests = [
        dg.RunRequest(
            run_key=batch.run_key,
            run_config=run_config_for(batch),
            tags={"crmsync/entity": batch.entity, "crmsync/activity_type": batch.activity_type or ""},
        )
        for batch in plan.batches
    ]
    return dg.SensorResult(run_requests=run_requests, cursor=str(events[-1].seq))


def default_webhook_inbox() -> InboxResource:
    """Production wiring: the same ``sync.yaml`` as the engine (``CRMSYNC_CONFIG``)."""
    return InboxResource(config_path=str(config_path_from_env()))


@dg.definitions
def webhook_definitions() -> dg.Definitions:
    return dg.Definitions(
        jobs=[webhook_sync],
        sensors=[webhook_inbox_sensor],
        resources={"webhook_inbox": default_webhook_inbox()},
    )
