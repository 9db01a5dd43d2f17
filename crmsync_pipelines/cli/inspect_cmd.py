"""``crmsync crm-inspect``: look at the CRM through the configured adapter, before syncing anything.

An integration engineer uses it to check that the adapter connects (``ping``), what fields the
records really carry (``fields``, the input to writing a mapping), and single records
(``show``/``find``/``search``). Semantics follow the PHP SDK's ``bin/crm-inspect`` so its users
feel at home: ``--limit`` (20), ``--json``, exit code 1 on "not found" and on any failure.
Unlike the PHP tool, an iteration that fails half-way still prints what it got but exits 1.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import click

from crmsync_pipelines.cli.common import config_option, load_config_or_fail
from crmsync_pipelines.crm.base import CrmAdapter, Record
from crmsync_pipelines.crm.registry import load_crm_adapter
from crmsync_pipelines.errors import CrmsyncError

COMMANDS = ("ping", "fields", "list", "show", "find", "search")
ENTITIES = ("contact", "account")
#: Columns ``list`` prefers, in order; the first five keys of a record otherwise.
PREFERRED_COLUMNS = {
    "contact": ("id", "first_name", "last_name", "firstName", "lastName", "full_name", "fullName", "email"),
    "account": ("id", "name", "email", "city"),
    "activity": ("id", "external_id", "type", "subject", "status"),
}
CELL_WIDTH = 60

_COMMANDS_HELP = """Commands:
  ping                          check that the CRM answers (JSON: success, response_time_ms)
  fields <contact|account>      field names of --limit sampled records, with coverage
  list <contact|account>        the first --limit records as a table
  show <entity> <id>            one record by id (entity: contact, account, activity)
  find <entity> <field> <value> the first record whose field equals value
  search <contact|account> <q>  free-text search (the remaining words are the query)
"""
USAGE = f"""Usage: crmsync crm-inspect [-c sync.yaml] [--limit N] [--json] COMMAND [ARGS]...

{_COMMANDS_HELP}"""
#: ``--help``: click prints the usage line itself; ``\b`` keeps it from re-wrapping the table.
HELP = f"""Inspect the CRM through the adapter configured in sync.yaml.

\b
{_COMMANDS_HELP}
Exit code 1 when a record is not found or the CRM fails."""


class InspectFailure(Exception):
    """Ends the command with exit code 1 after its message is printed."""


def _entity(value: str, allowed: tuple[str, ...]) -> str:
    entity = value.strip().lower()
    entity = {"contacts": "contact", "accounts": "account", "activities": "activity"}.get(entity, entity)
    if entity not in allowed:
        raise click.UsageError(f"entity must be one of {', '.join(allowed)}, got {value!r}")
    return entity


def _need(args: tuple[str, ...], count: int, usage: str) -> None:
    if len(args) < count:
        raise click.UsageError(f"usage: crmsync crm-inspect {usage}")


def flatten(record: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts become dotted keys; lists stay leaves (as the PHP tool reports them)."""
    if not isinstance(record, dict):
        return {prefix: record} if prefix else {}
    flat: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            flat.update(flatten(value, name))
        else:
            flat[name] = value
    return flat


def _cell(value: Any) -> str:
    text = "" if value is None else value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = text.replace("\n", " ")
    return text if len(text) <= CELL_WIDTH else text[: CELL_WIDTH - 1] + "…"


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) if cells else len(c) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells)
    return "\n".join(line.rstrip() for line in lines)


def _columns(entity: str, records: list[Record]) -> list[str]:
    present: dict[str, None] = {}
    for record in records:
        present.update(dict.fromkeys(record))
    preferred = [c for c in PREFERRED_COLUMNS.get(entity, ("id",)) if c in present]
    if len(preferred) > 1:
        return preferred
    return list(present)[:5]


def _take(description: str, records: Callable[[], Iterator[Record]], limit: int) -> tuple[list[Record], str | None]:
    """Up to ``limit`` records, and the error that stopped the iteration early, if any."""
    taken: list[Record] = []
    iterator: Iterator[Record] | None = None
    try:
        iterator = records()
        taken.extend(islice(iterator, limit))
    except CrmsyncError as exc:
        return taken, f"{description} failed after {len(taken)} record(s): {exc}"
    except (OSError, ValueError, LookupError, RuntimeError) as exc:
        return taken, f"{description} failed after {len(taken)} record(s): {type(exc).__name__}: {exc}"
    finally:
        close = getattr(iterator, "close", None)
        if callable(close):
            close()
    return taken, None


class _Inspector:
    """One crm-inspect invocation: an adapter, the output mode and the limit."""

    def __init__(self, adapter: CrmAdapter, *, as_json: bool, limit: int) -> None:
        self.adapter = adapter
        self.as_json = as_json
        self.limit = limit

    def emit(self, payload: Any, text: str) -> None:
        click.echo(json.dumps(payload, ensure_ascii=False, indent=2, default=str) if self.as_json else text)

    def ping(self) -> None:
        started = time.perf_counter()
        try:
            ok = self.adapter.ping() is True
            problem = None if ok else self._why_ping_failed()
        except Exception as exc:  # ping reports every failure, whatever the adapter raises
            ok, problem = False, f"{type(exc).__name__}: {exc}"
        elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
        payload: dict[str, Any] = {"success": ok, "response_time_ms": elapsed_ms}
        if problem:
            payload["error"] = problem
        self.emit(payload, f"OK: {self.adapter.name} answered in {elapsed_ms} ms" if ok else f"FAILED: {problem}")
        if not ok:
            raise InspectFailure()

    def _why_ping_failed(self) -> str:
        """The contract's ``ping()`` only says False; one record read names the reason (401, DNS…)."""
        _, problem = _take("iter_accounts", self.adapter.iter_accounts, 1)
        return f"ping returned False; {problem}" if problem else "ping returned False"

    def _iterate(self, entity: str) -> Callable[[], Iterator[Record]]:
        return self.adapter.iter_contacts if entity == "contact" else self.adapter.iter_accounts

    def fields(self, entity: str) -> None:
        records, problem = _take(f"iter_{entity}s", self._iterate(entity), self.limit)
        counts: dict[str, int] = {}
        examples: dict[str, Any] = {}
        for record in records:
            for key, value in flatten(record).items():
                counts.setdefault(key, 0)
                if value not in (None, "", [], {}):
                    counts[key] += 1
                    examples.setdefault(key, value)
        sampled = len(records)
        rows = [
            {
                "field": key,
                "filled": count,
                "coverage_pct": round(100.0 * count / sampled, 1) if sampled else 0.0,
                "example": examples.get(key),
            }
            for key, count in counts.items()
        ]
        text = f"{entity} fields in {sampled} sampled record(s):\n" + _table(
            [{**r, "coverage_pct": f"{r['coverage_pct']}%"} for r in rows],
            ["field", "filled", "coverage_pct", "example"],
        )
        self.emit({"entity": entity, "sampled": sampled, "fields": rows}, text)
        self._after_iteration(problem)

    def list_records(self, entity: str) -> None:
        records, problem = _take(f"iter_{entity}s", self._iterate(entity), self.limit)
        self._records(entity, records, problem)
        self._after_iteration(problem)

    def search(self, entity: str, query: str) -> None:
        search = self.adapter.search_contacts if entity == "contact" else self.adapter.search_accounts
        records, problem = _take(f"search_{entity}s", lambda: search(query), self.limit)
        self._records(entity, records, problem)
        self._after_iteration(problem)
        if not records:
            raise InspectFailure(f"no {entity} matches {query!r}")

    def show(self, entity: str, record_id: str) -> None:
        if entity == "activity":
            record = self.adapter.find_activity_by("id", record_id)
        else:
            record = self.adapter.get_contact(record_id) if entity == "contact" else self.adapter.get_account(record_id)
        self._single(entity, record, f"{entity} {record_id!r} not found")

    def find(self, entity: str, field: str, value: str) -> None:
        finder = {
            "contact": self.adapter.find_contact_by,
            "account": self.adapter.find_account_by,
            "activity": self.adapter.find_activity_by,
        }[entity]
        try:
            record = finder(field, value)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from exc
        self._single(entity, record, f"no {entity} with {field} = {value!r}")

    def _single(self, entity: str, record: Record | None, missing: str) -> None:
        if record is None:
            if self.as_json:
                click.echo("null")
            raise InspectFailure(missing)
        flat = flatten(record)
        width = max(len(k) for k in flat) if flat else 0
        self.emit(record, "\n".join(f"{k.ljust(width)}  {_cell(v)}" for k, v in flat.items()))

    def _records(self, entity: str, records: list[Record], problem: str | None = None) -> None:
        if problem and not records:
            return  # the failure is the answer: "(no contacts)" next to it would read as an empty CRM
        text = _table(records, _columns(entity, records)) if records else f"(no {entity}s)"
        self.emit(records, text)

    @staticmethod
    def _after_iteration(problem: str | None) -> None:
        if problem:
            click.echo(f"Warning: {problem}", err=True)
            raise InspectFailure()


@click.command(
    name="crm-inspect",
    context_settings={"ignore_unknown_options": False, "help_option_names": ["-h", "--help"]},
    help=HELP,
    options_metavar="[-c sync.yaml] [--limit N] [--json]",
)
@config_option
@click.option("--limit", type=click.IntRange(min=1, max=10_000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.argument("args", nargs=-1, metavar="COMMAND [ARGS]...")
def crm_inspect(config_path: Path | None, limit: int, as_json: bool, args: tuple[str, ...]) -> None:
    """Inspect the CRM through the adapter configured in sync.yaml."""
    if not args or args[0] == "help":
        click.echo(USAGE)
        return
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        click.echo(f"Unknown command: {command}\n\n{USAGE}", err=True)
        sys.exit(1)
    _check_arguments(command, rest)
    path, config = load_config_or_fail(config_path)
    base_dir = (config.source_path or path.resolve()).parent
    try:
        adapter = load_crm_adapter(config.crm, base_dir=base_dir)
    except CrmsyncError as exc:
        raise click.ClickException(str(exc)) from exc  # click prints "Error: " itself
    inspector = _Inspector(adapter, as_json=as_json, limit=limit)
    try:
        _dispatch(inspector, command, rest)
    except InspectFailure as failure:
        if str(failure):
            click.echo(str(failure), err=True)
        sys.exit(1)
    except CrmsyncError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    finally:
        adapter.close()


def _check_arguments(command: str, rest: tuple[str, ...]) -> None:
    """Usage errors before the config is loaded, so a typo costs no CRM connection."""
    usages = {
        "fields": (1, "fields <contact|account>"),
        "list": (1, "list <contact|account>"),
        "show": (2, "show <contact|account|activity> <id>"),
        "find": (3, "find <contact|account|activity> <field> <value>"),
        "search": (2, "search <contact|account> <query...>"),
    }
    if command in usages:
        count, usage = usages[command]
        _need(rest, count, usage)
        _entity(rest[0], (*ENTITIES, "activity") if command in ("show", "find") else ENTITIES)


def _dispatch(inspector: _Inspector, command: str, rest: tuple[str, ...]) -> None:
    if command == "ping":
        inspector.ping()
        return
    if command in ("show", "find"):
        entity = _entity(rest[0], (*ENTITIES, "activity"))
        if command == "show":
            inspector.show(entity, rest[1])
        else:
            inspector.find(entity, rest[1], " ".join(rest[2:]))
        return
    entity = _entity(rest[0], ENTITIES)
    if command == "fields":
        inspector.fields(entity)
    elif command == "list":
        inspector.list_records(entity)
    else:
        inspector.search(entity, " ".join(rest[1:]))
