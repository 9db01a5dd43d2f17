"""Group pending inbox events into sync batches: one batch per (entity, activity type).

Framework-free so the grouping and run-key rules are tested without Dagster; the sensor
only turns each batch into a ``RunRequest``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from crmsync_pipelines.webhooks.inbox import InboxEvent
from crmsync_pipelines.webhooks.resolution import NameResolver, Unresolvable, unresolved_reason

ResolverFactory = Callable[[str], "NameResolver | Unresolvable"]


@dataclass(frozen=True)
class WebhookBatch:
    """Events to sync in one run; ``record_ids[i]`` is the id to sync for ``seqs[i]``."""

    entity: str
    activity_type: str | None
    record_ids: tuple[str, ...]
    seqs: tuple[int, ...]

    @property
    def run_key(self) -> str:
        """Unique per batch and stable for the same events, so a re-tick never re-runs them."""
        return f"webhook:{self.entity}:{self.seqs[0]}-{self.seqs[-1]}"

    @property
    def unique_ids(self) -> list[str]:
        """The ids to sync, each once, in first-seen order."""
        return list(dict.fromkeys(self.record_ids))


@dataclass(frozen=True)
class BatchPlan:
    batches: list[WebhookBatch]
    #: ``(seq, reason)`` of events that cannot be synced (for example unresolvable names).
    ignored: list[tuple[int, str]]


def plan_batches(events: Sequence[InboxEvent], resolver_for: ResolverFactory) -> BatchPlan:
    """Group ``events`` (oldest first); Daktela contact/account names become CRM ids.

    ``resolver_for(entity)`` is called at most once per entity and only when a Daktela
    contact or account event needs it, so a tick with only activities never loads mappings.
    """
    resolvers: dict[str, NameResolver | Unresolvable] = {}
    groups: dict[tuple[str, str | None], list[tuple[int, str]]] = {}
    ignored: list[tuple[int, str]] = []
    for event in events:
        record_id = event.record_id
        if event.source == "daktela" and event.entity in ("contact", "account"):
            resolver = resolvers.get(event.entity)
            if resolver is None:
                resolver = resolvers[event.entity] = resolver_for(event.entity)
            resolved = resolver(event.record_id)
            if resolved is None:
                ignored.append((event.seq, unresolved_reason(resolver, event.record_id)))
                continue
            record_id = resolved
        groups.setdefault((event.entity, event.activity_type), []).append((event.seq, record_id))
    batches = [
        WebhookBatch(
            entity=entity,
            activity_type=activity_type,
            record_ids=tuple(rid for _, rid in members),
            seqs=tuple(seq for seq, _ in members),
        )
        for (entity, activity_type), members in groups.items()
    ]
    batches.sort(key=lambda b: b.seqs[0])
    return BatchPlan(batches=batches, ignored=ignored)
