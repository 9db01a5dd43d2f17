"""``crmsync plan | sync | reset-state | retry-failed``: the engine without Dagster.

These run the same engine stages the Dagster assets run, over the same default window (the
current partition), and record to the same ledger, so a CLI run and a scheduled run never
duplicate each other's work. Exit codes (``EXIT_CODES_HELP``, docs/operations.md): 0 clean,
1 records failed in this run (or the command could not run at all), 2 bad usage, 3 nothing
failed in this run but records wait in the failed-records table from earlier runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from crmsync_pipelines.cli.common import (
    ENTITY_CHOICE,
    EXIT_FAILURES_WAITING,
    EXIT_OK,
    EXIT_RECORDS_FAILED,
    EntityParam,
    config_option,
    load_config_or_fail,
    load_rows,
    new_run_id,
    printable,
    render_table,
    resolve_window,
    selected_entities,
)
from crmsync_pipelines.config.models import SyncConfig
from crmsync_pipelines.engine.auto_contacts import LEDGER_ENTITY as AUTO_CONTACT
from crmsync_pipelines.engine.custom import all_entities, engine_for, retry_all
from crmsync_pipelines.engine.engine import SyncEngine
from crmsync_pipelines.engine.reports import FailureSample, PlannedChange, StageReport
from crmsync_pipelines.errors import CrmsyncError

_TABLE = ("entity", "created", "updated", "unchanged", "failed", "skipped", "api_calls", "duration_s")

entity_option = click.option(
    "--entity", "entities", type=ENTITY_CHOICE, multiple=True,
    help="Entity to process (repeatable; default: every enabled entity, accounts first).",
)
since_option = click.option(
    "--since", default=None, help="Window start, ISO date/datetime (instance time zone if naive)."
)
until_option = click.option("--until", default=None, help="Window end (exclusive), ISO date/datetime.")

#: The exit codes, shown in ``--help`` (``\b`` keeps click from re-wrapping the lines).
EXIT_CODES_HELP = f"""
\b
Exit codes:
  {EXIT_OK}  clean: nothing failed and nothing waits in failed_records
  {EXIT_RECORDS_FAILED}  records failed in this run (or the command could not run)
  2  bad usage (unknown option, bad --since)
  {EXIT_FAILURES_WAITING}  nothing failed in this run, but records wait in failed_records
     from earlier runs (held back until their data changes): crmsync retry-failed
"""


@contextmanager
def open_engine(config: SyncConfig) -> Iterator[SyncEngine]:
    """The engine, closed at the end; engine errors become a clear one-line message."""
    try:
        engine = SyncEngine.from_config(config)
    except CrmsyncError as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc
    try:
        yield engine
    except CrmsyncError as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc
    finally:
        engine.close()


def _failure_samples(reports: list[StageReport]) -> list[tuple[str, FailureSample]]:
    """(ledger entity, sample) once per record: the map stage and the load stage of one run
    both report the records the map stage quarantined."""
    seen: dict[tuple[str, str], tuple[str, FailureSample]] = {}
    for report in [r for top in reports for r in (top, *top.all_side_reports())]:
        for sample in report.failures:
            entity = sample.entity or report.entity
            seen.setdefault((entity, sample.source_id), (entity, sample))
    return list(seen.values())


def _print_failures(reports: list[StageReport], total: int | None = None, limit: int = 10) -> None:
    """``total``: how many records failed (the samples are capped at 20 per stage)."""
    failures = _failure_samples(reports)
    if not failures:
        return
    count = max(total or 0, len(failures))
    shown = min(limit, len(failures))
    click.echo(click.style(f"\n{count} failed record(s) (first {shown}):", fg="red"))
    for entity, sample in failures[:limit]:
        click.echo(f"  {entity} {printable(sample.source_id)}  [{sample.error_class}]  {printable(sample.message)}")


def _exit_code(reports: list[StageReport], rows: list[dict[str, object]]) -> int:
    if any(row["failed"] for row in rows) or any(not c.passed and not _only_waiting(r, c.name)
                                                 for r in reports for c in r.checks):
        return EXIT_RECORDS_FAILED
    return EXIT_FAILURES_WAITING if any(r.waiting for r in reports) else EXIT_OK


def _only_waiting(report: StageReport, check_name: str) -> bool:
    """A failed ``no_failed_records`` check of a stage where nothing failed in this run."""
    return check_name == "no_failed_records" and report.failed == 0


def _crm_usage_lines(reports: list[StageReport], adapter: str) -> list[str]:
    """What the CRM's quota was charged in this run, from the adapter's ``usage()`` figures.

    The adapter lives for the whole command, so the figures of the last stage cover the run:
    requests sent, the daily budget left (of its limit, and when it resets) and whether it ran
    out (the records not sent then wait as transient failures: docs/operations.md).
    """
    figures = [r.metadata for top in reports for r in (top, *top.all_side_reports()) if r.metadata]
    latest = next((m for m in reversed(figures) if isinstance(m.get("crm_requests_used"), int)), None)
    if latest is None:
        return []
    used = latest["crm_requests_used"]
    line = f"{adapter}: {used} request{'' if used == 1 else 's'} in this run"
    remaining = latest.get("crm_budget_remaining")
    if isinstance(remaining, int):
        limit = latest.get("crm_budget_limit", latest.get("crm_daily_limit"))
        line += f"; daily budget left {remaining}" + (f" of {limit}" if isinstance(limit, int) else "")
        resets = latest.get("crm_budget_resets_at")
        line += f" (resets at {resets})" if isinstance(resets, str) and resets else ""
    lines = [line]
    if any(m.get("crm_quota_exhausted") is True for m in figures):
        lines.append(click.style("the CRM's daily request budget is used up: the records not sent wait as "
                                 "transient failures for the next run after the reset", fg="red"))
    return lines


def _finish(reports: list[StageReport], config: SyncConfig | None = None) -> None:
    code = _summary(reports, config)
    if code != EXIT_OK:
        raise SystemExit(code)


def _summary(reports: list[StageReport], config: SyncConfig | None) -> int:
    """Print the table, the CRM's usage, the failed records and failed checks; return the exit code."""
    rows = load_rows(reports)
    click.echo(render_table(rows, _TABLE))
    if config is not None:
        for line in _crm_usage_lines(reports, config.crm.adapter):
            click.echo(line)
    _print_failures(reports, total=sum(int(row["failed"]) for row in rows))
    for report in reports:
        for check in report.checks:
            if not check.passed:
                message = f"check {report.entity}/{check.name} failed: {check.description}"
                click.echo(click.style(message, fg="red"))
    return _exit_code(reports, rows)


@click.command("sync", epilog=EXIT_CODES_HELP)
@config_option
@entity_option
@since_option
@until_option
@click.option("--force-full", is_flag=True,
              help="Ignore the window start and compare every record with the target (no hash shortcut).")
@click.option("--id", "ids", multiple=True,
              help="Sync exactly this record (repeatable; with one --entity): a CRM id, or a Daktela "
                   "activity name for --entity activity. Prints each record's field-level result.")
@click.option("--id-file", "id_files", multiple=True,
              help="A file with one id per line ('-' reads stdin), like --id.")
def sync(config_path: Path | None, entities: tuple[str, ...], since: str | None, until: str | None,
         force_full: bool, ids: tuple[str, ...] = (), id_files: tuple[str, ...] = ()) -> None:
    """Sync the window (default: the current partition) entity by entity, or exactly the
    records named by --id / --id-file."""
    if ids or id_files:
        from crmsync_pipelines.cli.sync_ids import requested_ids, sync_by_ids

        if len(entities) != 1 or since or until or force_full:
            raise click.UsageError("--id/--id-file take exactly one --entity and no --since/--until/--force-full")
        wanted = requested_ids(ids, id_files)
        if not wanted:
            raise click.UsageError("--id/--id-file named no id")
        _, config = load_config_or_fail(config_path)
        sync_by_ids(config, entities[0], wanted)
        return
    _, config = load_config_or_fail(config_path)
    window = resolve_window(config, since, until, force_full=force_full)
    run_id = new_run_id("sync")
    reports: list[StageReport] = []
    stopped_at: str | None = None
    stop: CrmsyncError | None = None
    with open_engine(config) as engine:
        chosen: list[str] = list(selected_entities(entities, all_entities(engine)))
        click.echo(f"run {run_id}: window {window.label()}")
        with click.progressbar(chosen, label="syncing", item_show_func=lambda e: e or "") as bar:
            for entity in bar:
                try:
                    reports.extend(engine_for(engine, entity).sync(entity, window, run_id,  # type: ignore[arg-type]
                                                                   verify=force_full))
                except CrmsyncError as exc:  # a stage that cannot run (auth, quota while reading, ...)
                    stopped_at, stop = entity, exc
                    break
    if stop is None or stopped_at is None:
        _finish(reports, config)
        return
    # What ran before still counts: its summary and failures are shown, then why the run stopped.
    if reports:
        _summary(reports, config)
    click.echo(click.style(f"{stopped_at}: {type(stop).__name__}: {stop}", fg="red"), err=True)
    rest = chosen[chosen.index(stopped_at) + 1:]
    if rest:
        click.echo(f"not run: {', '.join(rest)} (the run stopped at {stopped_at})", err=True)
    raise SystemExit(EXIT_RECORDS_FAILED)


def _change_lines(change: PlannedChange, max_fields: int) -> list[str]:
    lines = [f"  {change.action} {change.target_key} (source {change.source_id})"]
    for field_change in change.changes[:max_fields]:
        lines.append(f"      {field_change.field}: {field_change.old!r} -> {field_change.new!r}")
    if len(change.changes) > max_fields:
        lines.append(f"      … {len(change.changes) - max_fields} more field(s)")
    return lines


@click.command("plan", epilog=f"""
\b
Exit codes:
  {EXIT_OK}  every record of the window maps (or is unchanged)
  {EXIT_RECORDS_FAILED}  records would fail to map (invalid), or the command could not run
  2  bad usage
""")
@config_option
@entity_option
@since_option
@until_option
@click.option("--sample", default=10, show_default=True, type=click.IntRange(min=0),
              help="How many planned writes to show field by field, per entity.")
def plan(config_path: Path | None, entities: tuple[str, ...], since: str | None, until: str | None,
         sample: int) -> None:
    """Dry run: what a sync of the window would create and update. Writes to neither system."""
    _, config = load_config_or_fail(config_path)
    window = resolve_window(config, since, until)
    run_id = new_run_id("plan")
    click.echo(f"plan for window {window.label()} (nothing will be written)")
    failed = False
    with open_engine(config) as engine:
        for entity in selected_entities(entities, all_entities(engine)):
            report = engine_for(engine, entity).plan(entity, window, run_id)
            creates = sum(1 for c in report.planned if c.action == "create")
            updates = sum(1 for c in report.planned if c.action == "update")
            unchanged = report.counts.get("unchanged", 0)
            invalid = report.counts.get("invalid", 0) + report.failed
            failed = failed or invalid > 0
            click.echo(click.style(f"\n{entity}", bold=True)
                       + f": {creates} would be created, {updates} would be updated, {unchanged} unchanged"
                       + (f", {invalid} invalid" if invalid else ""))
            for change in report.planned[:sample]:
                click.echo("\n".join(_change_lines(change, max_fields=20)))
            if len(report.planned) > sample:
                click.echo(f"  … and {len(report.planned) - sample} more")
            _print_failures([report])
    if failed:
        raise SystemExit(EXIT_RECORDS_FAILED)


@click.command("reset-state")
@config_option
@click.option("--entity", type=ENTITY_CHOICE, default=None, help="Only this entity (default: all).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def reset_state(config_path: Path | None, entity: str | None, yes: bool) -> None:
    """Forget the change-detection memory so the next sync re-reads the target for every key.

    Neither system is touched; the next run re-reads and re-diffs, writing only real changes.
    """
    _, config = load_config_or_fail(config_path)
    scope = entity or "all entities"
    if not yes:
        click.confirm(f"Reset the sync state of {scope}?", abort=True)
    with open_engine(config) as engine:
        if entity is not None and entity.startswith("custom:"):  # a typo must not "reset" nothing
            selected_entities([entity], all_entities(engine))
        engine.reset_state(entity)  # type: ignore[arg-type]
    click.echo(f"sync state reset for {scope}")


def _failed_count(engine: SyncEngine, entity: str | None) -> int:
    """Rows of failed_records that ``retry-failed --entity`` covers (accounts include their auto-contacts)."""
    if entity is None:
        return len(engine.staging.failed_records(None))
    if entity == AUTO_CONTACT:
        return len(engine.staging.failed_records(AUTO_CONTACT))
    return engine.waiting_failures(entity)  # type: ignore[arg-type]


@click.command("retry-failed", epilog=f"""
\b
Exit codes:
  {EXIT_OK}  nothing is left in failed_records (for the chosen entity)
  {EXIT_RECORDS_FAILED}  records still failed (or the command could not run)
  2  bad usage
""")
@config_option
@click.option("--entity", type=EntityParam(extra=[AUTO_CONTACT]), default=None,
              help="Only this entity (default: all, custom entities included). 'account' includes the "
                   "contacts auto-created for accounts; 'auto_contact' retries only those.")
def retry_failed(config_path: Path | None, entity: str | None) -> None:
    """Retry the records in the failed-records table now, held-back ones included.

    Normally the next run retries transient failures; validation and conflict failures are
    held back until their data changes, or until this command asks for them.
    """
    _, config = load_config_or_fail(config_path)
    run_id = new_run_id("retry")
    with open_engine(config) as engine:
        if entity is not None:
            owner = "account" if entity == AUTO_CONTACT else entity
            selected_entities([owner], all_entities(engine))
        pending = _failed_count(engine, entity)
        click.echo(f"run {run_id}: retrying {pending} failed record(s)")
        reports = retry_all(engine, entity, run_id)
        remaining = _failed_count(engine, entity)
    rows = load_rows(reports)
    click.echo(render_table(rows, _TABLE))
    for line in _crm_usage_lines(reports, config.crm.adapter):
        click.echo(line)
    _print_failures(reports, total=sum(int(row["failed"]) for row in rows))
    click.echo(f"{remaining} record(s) still failed")
    if remaining:
        raise SystemExit(EXIT_RECORDS_FAILED)
