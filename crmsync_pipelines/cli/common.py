"""What every sync-related command shares: the config option, config loading with clear
errors, the default window (the current partition) and the per-entity report table.

Kept free of Dagster so the CLI runs the engine directly; the window rule mirrors the
Dagster partitions (daily or hourly in the Daktela instance's time zone) so ``crmsync sync``
and a scheduled run of the current partition cover the same records.
"""

from __future__ import annotations

import os
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import click

from crmsync_pipelines.config.models import SyncConfig
from crmsync_pipelines.engine.reports import RELATED_LEDGER_ENTITIES, Entity, StageReport, Window
from crmsync_pipelines.errors import ConfigError

#: Environment variables naming the config file, in order (the second is the PHP SDK's).
CONFIG_ENV_VARS = ("CRMSYNC_CONFIG", "SYNC_CONFIG_PATH")
DEFAULT_CONFIG_PATH = Path("mappings/sync.yaml")
#: The order entities sync in: contacts link to accounts, so accounts go first.
ENTITY_ORDER: tuple[Entity, ...] = ("account", "contact", "activity")


class EntityParam(click.ParamType):
    """``account``, ``contact``, ``activity`` or ``custom:<name>`` (a ``sync.custom_entities``
    entry; whether it is enabled is checked against the config by ``selected_entities``)."""

    name = "entity"

    def __init__(self, extra: Sequence[str] = ()) -> None:
        #: Further accepted names (``auto_contact`` for ``retry-failed``).
        self.extra = tuple(extra)

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return f"[{'|'.join((*ENTITY_ORDER, *self.extra))}|custom:<name>]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        if text in ENTITY_ORDER or text in self.extra or (text.startswith("custom:") and len(text) > len("custom:")):
            return text
        self.fail(f"{text!r} is not one of {', '.join(repr(e) for e in (*ENTITY_ORDER, *self.extra))} "
                  "or 'custom:<name>'",
                  param, ctx)


ENTITY_CHOICE = EntityParam()
#: Exit codes of ``sync``, ``retry-failed`` and ``plan`` (documented in docs/operations.md):
#: 0 clean; 1 records failed in THIS run (or the command could not run: config or engine error);
#: 2 bad usage (click's own code); 3 nothing failed in this run, but records of the synced
#: entities wait in ``failed_records`` from earlier runs (held back until their data changes).
EXIT_OK = 0
EXIT_RECORDS_FAILED = 1
EXIT_USAGE = 2
EXIT_FAILURES_WAITING = 3

F = TypeVar("F", bound=Callable[..., Any])


def config_option(func: F) -> F:
    decorator = click.option(
        "-c",
        "--config",
        "config_path",
        type=click.Path(path_type=Path, dir_okay=False),
        default=None,
        help="sync.yaml to use (default: $CRMSYNC_CONFIG, $SYNC_CONFIG_PATH, then mappings/sync.yaml).",
    )
    return decorator(func)


def resolve_config_path(config_path: Path | None) -> Path:
    if config_path is not None:
        return config_path
    for name in CONFIG_ENV_VARS:
        value = os.environ.get(name, "").strip()
        if value:
            return Path(value)
    return DEFAULT_CONFIG_PATH


def existing_config_path(config_path: Path | None) -> Path:
    """The config file ``resolve_config_path`` names; a missing one ends the command (exit code 1)."""
    path = resolve_config_path(config_path)
    if not path.is_file():
        raise click.ClickException(
            f"Config file not found: {path}\n"
            "Hint: pass -c path/to/sync.yaml or set CRMSYNC_CONFIG (see docs/configuration.md)."
        )
    return path


def load_config_or_fail(config_path: Path | None) -> tuple[Path, SyncConfig]:
    """The validated config; a missing or invalid file ends the command with exit code 1."""
    from crmsync_pipelines.config import load_config

    path = existing_config_path(config_path)
    try:
        return path, load_config(path)
    except ConfigError as exc:
        raise click.ClickException(f"Configuration error: {exc}") from exc


def new_run_id(prefix: str = "cli") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def current_window(config: SyncConfig, now: datetime | None = None) -> Window:
    """The partition window containing ``now``: the same window a scheduled run syncs."""
    zone = ZoneInfo(config.daktela.timezone)
    local = (now or datetime.now(UTC)).astimezone(zone)
    if config.partitions.granularity == "hourly":
        start = local.replace(minute=0, second=0, microsecond=0)
        end = (start.astimezone(UTC) + timedelta(hours=1)).astimezone(zone)
        return Window(start, end)
    day = local.date()
    return Window(
        datetime.combine(day, time(), tzinfo=zone),
        datetime.combine(day + timedelta(days=1), time(), tzinfo=zone),
    )


def parse_instant(value: str, config: SyncConfig, option: str) -> datetime:
    """An ISO date or datetime; naive values are in the Daktela instance's time zone."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise click.BadParameter(
            f"{value!r} is not an ISO date or datetime (e.g. 2026-11-01 or 2026-11-01T08:00:00+01:00)",
            param_hint=option,
        ) from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo(config.daktela.timezone))
    return parsed


def resolve_window(
    config: SyncConfig, since: str | None, until: str | None, *, force_full: bool = False
) -> Window:
    """The window of a command: ``--since/--until`` when given, else the current partition."""
    if force_full:
        end = parse_instant(until, config, "--until") if until else None
        return Window(None, end)
    if since is None and until is None:
        return current_window(config)
    start = parse_instant(since, config, "--since") if since else None
    end = parse_instant(until, config, "--until") if until else None
    if start and end and start >= end:
        raise click.BadParameter("--since must be before --until", param_hint="--since")
    return Window(start, end)


def selected_entities(requested: Sequence[str], enabled: Iterable[str]) -> list[Entity]:
    """``requested`` (or every enabled entity) in sync order — natives in ``ENTITY_ORDER``, then
    custom entities (``custom:<name>``) in the order of ``enabled``; a disabled request is an error."""
    enabled_list = list(enabled)
    enabled_set = set(enabled_list)
    order = [*ENTITY_ORDER, *(e for e in enabled_list if e not in ENTITY_ORDER)]
    if not requested:
        return [entity for entity in order if entity in enabled_set]  # type: ignore[misc]
    disabled = [entity for entity in requested if entity not in enabled_set]
    if disabled:
        raise click.ClickException(
            f"entity not enabled in sync.yaml: {', '.join(disabled)} "
            f"(enabled: {', '.join(sorted(enabled_set)) or 'none'})"
        )
    return [entity for entity in order if entity in requested]  # type: ignore[misc]


REPORT_COLUMNS = ("created", "updated", "unchanged", "failed", "skipped")


def load_rows(reports: Iterable[StageReport]) -> list[dict[str, Any]]:
    """One row per entity: load outcomes, API calls of all its stages, total duration."""
    rows: dict[str, dict[str, Any]] = {}

    def row_of(name: str) -> dict[str, Any]:
        return rows.setdefault(
            name, {"entity": name, **dict.fromkeys(REPORT_COLUMNS, 0), "api_calls": 0, "duration_s": 0.0},
        )

    for report in _with_side_reports(reports):
        row = row_of(report.entity)
        related_calls = int(sum(report.related_api_calls.values()))
        side_calls = int(sum(sum(side.api_calls.values()) for side in report.side_reports))
        side_duration = float(sum(side.duration_s for side in report.side_reports))
        if report.stage in ("load", "retry", "webhook"):
            for column in REPORT_COLUMNS:
                row[column] += int(report.counts.get(column, 0))
            # Related ledger entities (auto-created contacts of accounts) get their own row,
            # so their failures are never hidden inside the account's numbers.
            for related in RELATED_LEDGER_ENTITIES.get(report.entity, ()):
                counts = report.related_counts(related)
                if counts or related_calls or related in rows:
                    extra = row_of(related)
                    for column in REPORT_COLUMNS:
                        extra[column] += int(counts.get(column, 0))
                    extra["api_calls"] += related_calls
        row["api_calls"] += int(sum(report.api_calls.values())) - related_calls - side_calls
        row["duration_s"] += float(report.duration_s) - side_duration
    return list(rows.values())


def _with_side_reports(reports: Iterable[StageReport]) -> list[StageReport]:
    """Each report followed by the on-the-fly syncs it made (their rows count like any other)."""
    flat: list[StageReport] = []
    for report in reports:
        flat.append(report)
        flat.extend(report.all_side_reports())
    return flat



def printable(value: Any) -> str:
    """``str(value)`` safe for one line of a terminal: control characters (``\\n``, ``ESC``,
    ``BEL``, NUL ...) and the Unicode line/paragraph separators are written as Python escapes.

    Cells hold text from outside (webhook payloads, CRM records, vendors' error messages): a
    newline must not forge a second row and an escape sequence must not drive the terminal.
    Letters, accents and emoji are kept as they are.
    """
    text = str(value)
    if text.isprintable():
        return text
    out: list[str] = []
    for char in text:
        if unicodedata.category(char) in ("Cc", "Zl", "Zp"):
            escaped = char.encode("unicode_escape").decode("ascii")
            out.append(escaped)
        else:
            out.append(char)
    return "".join(out)


def render_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A plain aligned text table (no colour, so it pastes cleanly into tickets); every cell
    goes through ``printable`` so one record is always one line."""
    def cell(value: Any) -> str:
        return f"{value:.2f}" if isinstance(value, float) else printable(value)

    widths = [max(len(column), *(len(cell(row.get(column, ""))) for row in rows)) for column in columns]
    lines = ["  ".join(column.ljust(width) for column, width in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * width for width in widths))
    for row in rows:
        lines.append("  ".join(cell(row.get(column, "")).ljust(width)
                               for column, width in zip(columns, widths, strict=True)))
    return "\n".join(lines)
