"""The webhook sensor and the job it launches: inbox events -> ``engine.sync_ids`` runs.

The receiver (``crmsync serve-webhooks``) only stores events; this sensor batches the
pending ones per (entity, activity type) and requests one ``webhook_sync`` run per batch.
Runs go through the same engine path (diff, ledger, failed-records table) as the batch
assets, so a record synced by a webhook is never duplicated by the next batch run.

The sensor is RUNNING by default: with no receiver the inbox stays empty (or absent) and a
tick costs one SQLite query, while the demo works without clicking anything.

Leases (docs/webhooks.md): the sensor claims the events of each batch under the run key it
requests; the run records its id on them when it starts and renews the lease while it works.
A run that fails releases its events; a run that died (kill -9) stops renewing; either way a
later tick hands the events to a new run, at most ``max_attempts`` times, then marks them
``failed``. An event whose record does not exist at the source is ``failed`` ("not found at
the source") and fails its run, so a test delivery is never mistaken for a sync.

(No ``from __future__ import annotations`` here: Dagster reads the op's config annotation
at decoration time.)
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import dagster as dg

from crmsync_pipelines.defs.partitions import config_path_from_env
from crmsync_pipelines.defs.resources import SyncEngineResource
from crmsync_pipelines.defs.stage_assets import STAGING_POOL
from crmsync_pipelines.webhooks.batching import WebhookBatch, plan_batches
from crmsync_pipelines.webhooks.inbox import Inbox, Lease
from crmsync_pipelines.webhooks.resolution import NameResolver, Unresolvable, name_resolver

if TYPE_CHECKING:
    from crmsync_pipelines.config.models import SyncConfig
    from crmsync_pipelines.engine.engine import SyncEngine
    from crmsync_pipelines.engine.reports import Entity

#: Upper bound of events one tick turns into runs; the rest waits for the next tick.
MAX_EVENTS_PER_TICK = 5000
SYNC_ENTITIES = ("account", "contact", "activity")
#: Run tag carrying the claim token (the run key) the run's events were leased under.
CLAIM_TAG = "crmsync/inbox_claim"
#: The reason of an event whose record is gone; ``crmsync inbox list`` and docs quote it.
NOT_FOUND_REASON = "not found at the source"
_FAILED_RUN = (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
_WAITING_RUN = (dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED)


class InboxResource(dg.ConfigurableResource):
    """The webhook inbox file: ``path`` when set, else ``webhook.inbox_path`` of ``sync.yaml``.

    ``sync.yaml`` is also where the contact/account mappings come from, whose ``name`` rule
    turns the Daktela names of ``contact_*``/``account_*`` events back into CRM ids.
    """

    config_path: str = ""
    path: str = ""
    #: Seconds a run may go without renewing its lease before its events go to another run.
    #: Runs renew every third of it, so only a dead process (kill -9, lost node) lets it lapse.
    lease_s: float = 300.0
    #: Runs an event is handed to before it is marked ``failed`` for good.
    max_attempts: int = 3

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
    token = context.run.tags.get(CLAIM_TAG, "")
    with webhook_inbox.open() as inbox:
        owned = set(inbox.start_lease(config.inbox_seqs, token, context.run_id))
    pairs = [(seq, rid) for seq, rid in zip(config.inbox_seqs, config.record_ids, strict=True) if seq in owned]
    if not pairs:
        context.log.info("none of the batch's events is pending under this run's claim any more; nothing to do")
        context.add_output_metadata({"entity": config.entity, "inbox_events": 0})
        return
    batch = WebhookBatch(config.entity, config.activity_type, tuple(r for _, r in pairs), tuple(s for s, _ in pairs))
    ids = batch.unique_ids
    context.log.info(f"syncing {len(ids)} {batch.entity} record(s) from inbox seqs {batch.seqs[0]}-{batch.seqs[-1]}")
    try:
        with _heartbeat(webhook_inbox, context.run_id), sync_engine.open() as engine:
            report = engine.sync_ids(cast("Entity", batch.entity), ids, run_id=context.run_id)
            failed = _still_failed(engine, batch.entity, set(ids), context.run_id)
    except Exception as exc:
        with webhook_inbox.open() as inbox:
            released = inbox.release(token or context.run_id, f"{_error_text(exc)} [run {context.run_id}]",
                                     max_attempts=webhook_inbox.max_attempts)
        context.log.error(f"inbox: {len(released.requeued)} event(s) go to a new run, "
                          f"{len(released.failed)} failed for good after {webhook_inbox.max_attempts} attempts")
        raise
    source = "Daktela" if batch.entity == "activity" else "the CRM"
    for rid in report.not_found:
        failed[rid] = f"{NOT_FOUND_REASON}: {batch.entity} {rid!r} does not exist in {source}"
    failed_seqs = [seq for seq, rid in zip(batch.seqs, batch.record_ids, strict=True) if rid in failed]
    done_seqs = [seq for seq, rid in zip(batch.seqs, batch.record_ids, strict=True) if rid not in failed]
    with webhook_inbox.open() as inbox:
        inbox.mark(done_seqs, "processed", run_id=context.run_id)
        for seq, rid in zip(batch.seqs, batch.record_ids, strict=True):
            if rid in failed:
                inbox.mark([seq], "failed", run_id=context.run_id, error=failed[rid][:2000])
    context.log.info(report.summary_line())
    not_found = sorted(set(report.not_found))
    metadata: dict[str, Any] = {
        "entity": batch.entity,
        "records": len(ids),
        "inbox_events": len(batch.seqs),
        "inbox_processed": len(done_seqs),
        "inbox_failed": len(failed_seqs),
        "inbox_not_found": sum(1 for rid in batch.record_ids if rid in set(not_found)),
        **{f"count_{k}": v for k, v in sorted(report.counts.items())},
    }
    if failed_seqs:
        metadata["inbox_failed_sample"] = dg.MetadataValue.json(
            [{"seq": seq, "record_id": rid, "error": failed[rid][:300]}
             for seq, rid in zip(batch.seqs, batch.record_ids, strict=True) if rid in failed][:20]
        )
        # Every event has its outcome recorded; the run still fails so alerting and the run
        # list show it (a test delivery or a record that is gone is not a successful sync).
        raise dg.Failure(
            description=f"{len(failed_seqs)} of {len(batch.seqs)} inbox event(s) failed "
            f"({metadata['inbox_not_found']} {NOT_FOUND_REASON}); see `crmsync inbox list --status failed`",
            metadata=metadata,
        )
    context.add_output_metadata(metadata)


def _still_failed(engine: "SyncEngine", entity: str, wanted: set[str], run_id: str) -> dict[str, str]:
    """Record id -> error, for the batch's records that are in ``failed_records`` after this run:
    failed now, held back (same data as an earlier failed attempt, so not even tried), or whose
    auto-created contact failed. An event for such a record is ``failed``, never ``processed``."""
    from crmsync_pipelines.engine.reports import RELATED_LEDGER_ENTITIES

    failed: dict[str, str] = {}
    for name in (entity, *RELATED_LEDGER_ENTITIES.get(entity, ())):
        for row in engine.staging.failed_records(name):
            source_id = str(row["source_id"])
            if source_id not in wanted or source_id in failed:
                continue
            text = f"{row['error_class']}: {row.get('error_message') or ''}"
            if name != entity:
                text = f"{name} {text}"
            if row.get("last_run_id") != run_id:
                text = (f"held back (same data as the failed attempt of run {row.get('last_run_id')}; change the "
                        f"record or run `crmsync retry-failed`): {text}")
            failed[source_id] = text
    return failed


@contextmanager
def _heartbeat(webhook_inbox: "InboxResource", run_id: str) -> Iterator[None]:
    """Renew this run's leases every third of ``lease_s`` while the body runs."""
    stop = threading.Event()

    def beat() -> None:
        with webhook_inbox.open() as inbox:
            while not stop.wait(max(0.05, webhook_inbox.lease_s / 3)):
                inbox.renew(run_id)

    thread = threading.Thread(target=beat, name=f"inbox-lease-{run_id[:8]}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


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
        expired = _expire_leases(context, inbox, webhook_inbox)
        # Not "after the cursor": events whose run died or failed are older than the cursor.
        events = inbox.unclaimed(limit=MAX_EVENTS_PER_TICK)
        context.log.info(f"found {len(events)} unclaimed pending events ({expired} released from dead or failed runs)")
        if not events:
            return dg.SkipReason(f"no unclaimed pending webhook events (cursor at seq {after})")
        claims = {e.seq: (e.claims, e.attempts) for e in events}
        plan = plan_batches(events, webhook_inbox.resolver_for)
        for seq, reason in plan.ignored:
            inbox.mark([seq], "ignored", error=reason)
        run_requests = []
        for batch in plan.batches:
            handed = max(claims[seq][0] for seq in batch.seqs)
            attempt = max(claims[seq][1] for seq in batch.seqs) + 1
            # Dagster never runs a run key twice, so a re-request needs its own key.
            token = batch.run_key if handed == 0 else f"{batch.run_key}:attempt{attempt}:{_retry_stamp()}"
            taken = inbox.claim(batch.seqs, token)
            if not taken:
                continue
            run_requests.append(
                dg.RunRequest(
                    run_key=token,
                    run_config=run_config_for(batch),
                    tags={"crmsync/entity": batch.entity, "crmsync/activity_type": batch.activity_type or "",
                          CLAIM_TAG: token},
                )
            )
    cursor = str(max(after, events[-1].seq))
    if not run_requests:
        return dg.SensorResult(skip_reason=dg.SkipReason("every pending event was ignored"), cursor=cursor)
    return dg.SensorResult(run_requests=run_requests, cursor=cursor)


def _retry_stamp() -> str:
    """A compact UTC timestamp that keeps re-request run keys unique."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")


def _expire_leases(context: dg.SensorEvaluationContext, inbox: Inbox, resource: InboxResource) -> int:
    """Release the leases of runs that failed, were canceled, or died; returns events released."""
    now = datetime.now(UTC)
    released = 0
    for lease in inbox.leases():
        reason = _lease_gone(context.instance, lease, now, resource.lease_s)
        if reason is None:
            continue
        outcome = inbox.release(lease.token, reason, max_attempts=resource.max_attempts)
        released += len(outcome.requeued) + len(outcome.failed)
        context.log.warning(f"inbox lease {lease.token}: {reason}; {len(outcome.requeued)} event(s) re-requested, "
                            f"{len(outcome.failed)} failed after {resource.max_attempts} attempts")
    return released


def _lease_gone(instance: dg.DagsterInstance, lease: Lease, now: datetime, lease_s: float) -> str | None:
    """Why the lease's run will never record its events, or ``None`` while it still may."""
    run = instance.get_run_by_id(lease.run_id) if lease.run_id else None
    if run is None:
        found = instance.get_runs(filters=dg.RunsFilter(tags={CLAIM_TAG: lease.token}), limit=1)
        run = found[0] if found else None
    if run is not None and run.status in _FAILED_RUN:
        return f"run {run.run_id} ended {run.status.value}"
    if run is not None and run.status == dg.DagsterRunStatus.SUCCESS:
        return f"run {run.run_id} succeeded without recording these events"
    if run is not None and run.status in _WAITING_RUN:
        return None  # queued behind other runs: it has not had its chance yet
    if not lease.expired(now, lease_s):
        return None
    if run is None:
        return f"no run was launched for {lease.token} within {lease_s:g}s"
    return (f"run {run.run_id} ({run.status.value}) stopped renewing its lease {lease_s:g}s ago "
            "(process killed or lost)")


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
