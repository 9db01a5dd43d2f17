"""``crmsync inbox list | requeue``: see and recover webhook inbox events.

Events whose record does not exist at the source, whose run failed ``max_attempts`` times, or
whose records failed to sync end as ``failed`` in the inbox (docs/operations.md). ``list``
shows them with the reason; ``requeue`` puts them back to ``pending`` with fresh attempts, and
the ``webhook_inbox_sensor`` hands them to a new ``webhook_sync`` run on its next tick.

Only ``webhook.*`` of ``sync.yaml`` is read (like ``serve-webhooks``), so neither system's
credentials are needed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from crmsync_pipelines.cli.common import config_option, existing_config_path, render_table
from crmsync_pipelines.errors import ConfigError
from crmsync_pipelines.webhooks.inbox import EVENT_STATUSES, Inbox, InboxEvent

_COLUMNS = ("seq", "received_at", "status", "event", "entity", "record_id", "attempts", "run_id", "error")
#: Longest error text shown in the table (the full text is in the inbox file).
ERROR_WIDTH = 100


@contextmanager
def _open_inbox(config_path: Path | None) -> Iterator[Inbox]:
    from crmsync_pipelines.config import load_webhook_settings

    path = existing_config_path(config_path)
    try:
        inbox_path = Path(load_webhook_settings(path).webhook.inbox_path)
    except ConfigError as exc:
        raise click.ClickException(f"Configuration error: {exc}") from exc
    if not inbox_path.is_file():
        raise click.ClickException(f"no webhook inbox at {inbox_path} (has crmsync serve-webhooks run yet?)")
    inbox = Inbox(inbox_path)
    try:
        yield inbox
    finally:
        inbox.close()


def _row(event: InboxEvent) -> dict[str, object]:
    error = " ".join((event.error or "").split())
    return {
        "seq": event.seq,
        "received_at": event.received_at[:19],
        "status": "leased" if event.status == "pending" and event.lease_token else event.status,
        "event": event.event,
        "entity": event.entity if event.activity_type is None else f"{event.entity}/{event.activity_type}",
        "record_id": event.record_id,
        "attempts": event.attempts,
        "run_id": (event.lease_run_id or event.run_id or "")[:8],
        "error": error if len(error) <= ERROR_WIDTH else error[: ERROR_WIDTH - 1] + "…",
    }


@click.group("inbox")
def inbox() -> None:
    """The webhook inbox: list events by status, re-queue failed ones."""


@inbox.command("list")
@config_option
@click.option("--status", type=click.Choice(list(EVENT_STATUSES)), default=None,
              help="Only events with this status (default: all).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1),
              help="Show at most this many events (oldest first).")
def list_events(config_path: Path | None, status: str | None, limit: int) -> None:
    """Events of the inbox with their status, attempts, run and error (oldest first).

    ``leased`` is a pending event a webhook_sync run holds right now.
    """
    with _open_inbox(config_path) as box:
        counts = box.counts()
        events = box.events(status, limit=limit)  # type: ignore[arg-type]
        leased = box.leased_count()
    click.echo("inbox: " + ", ".join(f"{name} {n}" for name, n in counts.items()) + f" (leased {leased})")
    if not events:
        click.echo(f"no {status or ''} events".replace("  ", " "))
        return
    click.echo(render_table([_row(e) for e in events], _COLUMNS))
    total = counts[status] if status else sum(counts.values())
    if total > len(events):
        click.echo(f"… {total - len(events)} more (use --limit)")


@inbox.command("requeue")
@config_option
@click.argument("seqs", nargs=-1, type=click.IntRange(min=1))
@click.option("--all-failed", is_flag=True, help="Every failed event (instead of listing seqs).")
def requeue(config_path: Path | None, seqs: tuple[int, ...], all_failed: bool) -> None:
    """Put failed events back to pending; the webhook sensor syncs them on its next tick.

    Give the SEQS from `crmsync inbox list --status failed`, or --all-failed.
    """
    if bool(seqs) == all_failed:
        raise click.UsageError("give the seqs of failed events, or --all-failed (not both)")
    with _open_inbox(config_path) as box:
        if seqs:
            known = {e.seq: e.status for e in box.get(seqs)}
            unknown = [s for s in seqs if s not in known]
            not_failed = [s for s in seqs if known.get(s) not in (None, "failed")]
            if unknown or not_failed:
                problems = ([f"no event with seq {', '.join(map(str, unknown))}"] if unknown else []) + [
                    f"seq {s} is {known[s]}, not failed" for s in not_failed
                ]
                raise click.ClickException("; ".join(problems))
        done, twins = box.requeue(list(seqs) if seqs else None)
    click.echo(f"requeued {len(done)} event(s)" + (f": {', '.join(map(str, done))}" if done else ""))
    if twins:
        click.echo(f"left {len(twins)} failed event(s) whose identical delivery is already pending: "
                   + ", ".join(map(str, twins)))
