"""``crmsync sync --entity contact --id 123 --id 456`` (and ``--id-file``): single-record sync.

The PHP SDK's ``syncContact(crmId)`` / ``syncAccount(crmId)`` / ``syncActivity(ccId)``
(reference-sdk-behaviour.md G5). Here the records go through the engine's ``sync_ids``, the
same extract -> map -> diff -> load -> ledger path as a window run (and as webhooks), so an
unchanged record costs no write and every outcome is in the ledger. Ids are CRM ids for
accounts, contacts and custom entities, Daktela activity names for activities.

Each record's field-level result is printed (created fields, ``old -> new`` of updated ones,
the error of a failed one). Exit codes as for ``crmsync sync``; a requested id the source does
not have counts as a failure (exit 1): the operator asked for a record that is not there.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import click

from crmsync_pipelines.cli.common import (
    EXIT_OK,
    EXIT_RECORDS_FAILED,
    load_rows,
    new_run_id,
    printable,
    render_table,
)
from crmsync_pipelines.config.models import SyncConfig
from crmsync_pipelines.engine.custom import all_entities, engine_for
from crmsync_pipelines.engine.record_outcomes import NOT_FOUND, RecordOutcome, record_outcomes
from crmsync_pipelines.engine.reports import StageReport

#: Field changes printed per record before "… n more".
MAX_FIELDS = 30


def read_id_file(path: str) -> list[str]:
    """Ids from a file (``-`` is stdin), one per line.

    Only the line break is removed: ids are kept exactly as written (the engine keeps
    ``' padded '`` source ids as the source gave them); empty lines are skipped.
    """
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"cannot read {path}: {exc}", param_hint="--id-file") from exc
    return [line for line in text.splitlines() if line.strip()]


def requested_ids(ids: Sequence[str], id_files: Sequence[str]) -> list[str]:
    """``--id`` values then ``--id-file`` lines, each id once, in order."""
    collected = list(ids)
    for path in id_files:
        collected.extend(read_id_file(path))
    return list(dict.fromkeys(i for i in collected if i.strip()))


def outcome_lines(outcome: RecordOutcome, max_fields: int = MAX_FIELDS) -> list[str]:
    """The human-readable result of one record (also used by the examples and the docs)."""
    target = f" -> {outcome.target_key}" if outcome.target_key else ""
    head = f"{outcome.entity} {outcome.source_id}{target}: {outcome.outcome}"
    if outcome.outcome == NOT_FOUND:
        return [head + " (the source has no such record)"]
    if outcome.error_class or outcome.error_message:
        head += f" [{outcome.error_class or '?'}] {outcome.error_message or ''}".rstrip()
    lines = [head]
    for change in outcome.changes[:max_fields]:
        lines.append(f"    {change.field}: {change.old!r} -> {change.new!r}")
    if len(outcome.changes) > max_fields:
        lines.append(f"    … {len(outcome.changes) - max_fields} more field(s)")
    return [printable(line) for line in lines]  # ids and vendors' messages are text from outside


def report_outcomes(staging_report: StageReport, outcomes: list[RecordOutcome],
                    ids: Sequence[str]) -> list[RecordOutcome]:
    """``outcomes`` in the order of ``ids``, with a ``not_found`` outcome for ids the source lacks."""
    found = {o.source_id: o for o in outcomes}
    gone = set(staging_report.not_found)
    ordered: list[RecordOutcome] = []
    for rid in ids:
        if rid in found:
            ordered.append(found[rid])
        elif rid in gone:
            ordered.append(RecordOutcome(staging_report.entity, rid, NOT_FOUND))
    return ordered


def sync_by_ids(config: SyncConfig, entity: str, ids: list[str]) -> None:
    """Sync exactly ``ids`` of ``entity``, print each record's result and exit with the sync exit code."""
    from crmsync_pipelines.cli.common import selected_entities
    from crmsync_pipelines.cli.sync_cmds import _TABLE, _exit_code, _print_failures, open_engine

    run_id = new_run_id("sync")
    with open_engine(config) as engine:
        selected_entities([entity], all_entities(engine))
        click.echo(f"run {run_id}: {len(ids)} {entity} record(s) by id")
        report = engine_for(engine, entity).sync_ids(entity, ids, run_id)  # type: ignore[arg-type]
        outcomes = report_outcomes(report, record_outcomes(engine.staging, run_id, entity, ids), ids)
        related = [o for name in ("auto_contact",) if entity == "account"
                   for o in record_outcomes(engine.staging, run_id, name)]
    for outcome in [*outcomes, *related]:
        click.echo("\n".join(outcome_lines(outcome)))
    rows = load_rows([report])
    click.echo("")
    click.echo(render_table(rows, _TABLE))
    _print_failures([report], total=sum(int(row["failed"]) for row in rows))
    for check in report.checks:
        if not check.passed:
            click.echo(click.style(f"check {report.entity}/{check.name} failed: {check.description}", fg="red"))
    code = _exit_code([report], rows)
    if report.not_found:
        click.echo(click.style(f"{len(report.not_found)} requested id(s) not found at the source: "
                               f"{', '.join(report.not_found[:10])}", fg="red"))
        code = EXIT_RECORDS_FAILED
    if code != EXIT_OK:
        raise SystemExit(code)


__all__ = ["outcome_lines", "read_id_file", "requested_ids", "sync_by_ids"]
