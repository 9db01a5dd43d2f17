"""``crmsync staging query "SQL"``: read the DuckDB staging file with the DuckDB crmsync ships.

The DuckDB command-line shell is not installed with crmsync; this command runs one query
through the ``duckdb`` Python package the project depends on, on a **read-only**
connection, and prints an aligned table. DuckDB lets no other process open the file while a
run writes it, so the command waits briefly and then says so instead of failing with a lock
error (the tables are described in docs/staging.md).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from crmsync_pipelines.cli.common import config_option, load_config_or_fail, render_table

#: How long to wait for a run to release the staging file.
_WAIT_S = 10.0


def _connect_read_only(path: Path, wait_s: float) -> Any:
    import duckdb

    deadline = time.monotonic() + wait_s
    while True:
        try:
            return duckdb.connect(str(path), read_only=True)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                raise click.ClickException(
                    f"cannot open {path} read-only: another process is writing it (a sync or Dagster run). "
                    "Wait for it to finish, or query a copy: cp the file and pass --db."
                ) from None
            time.sleep(0.25)


@click.group("staging")
def staging() -> None:
    """The DuckDB staging file: raw extracts, mapped payloads, diffs, ledger, failed records."""


@staging.command("query")
@config_option
@click.option("--db", "db_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="DuckDB file to query (default: staging.path of the config).")
@click.option("--limit", type=click.IntRange(min=1), default=200, show_default=True,
              help="Print at most this many rows.")
@click.argument("sql")
def query(config_path: Path | None, db_path: Path | None, limit: int, sql: str) -> None:
    """Run one read-only SQL query, e.g. "select entity, outcome, count(*) from ledger group by all".

    Tables: batches, raw_records, mapped_records, key_map, target_snapshot, diffs,
    synced_state, ledger, failed_records, unsettled_activities (docs/staging.md).
    """
    import duckdb

    if db_path is None:
        _, config = load_config_or_fail(config_path)
        db_path = Path(config.staging.path)
    if not db_path.is_file():
        raise click.ClickException(f"no staging file at {db_path}: run a sync first (make demo)")
    con = _connect_read_only(db_path, _WAIT_S)
    try:
        cursor = con.execute(sql)
        if cursor.description is None:
            click.echo("OK (the statement returned no rows)")
            return
        columns = [column[0] for column in cursor.description]
        rows = cursor.fetchmany(limit + 1)
    except duckdb.Error as exc:
        raise click.ClickException(f"query failed: {exc}") from None
    finally:
        con.close()
    shown = [dict(zip(columns, row, strict=True)) for row in rows[:limit]]
    if not shown:
        click.echo("  ".join(columns) + "\n(no rows)")
        return
    click.echo("\n".join(line.rstrip() for line in render_table(shown, columns).splitlines()))
    if len(rows) > limit:
        click.echo(f"… more rows not shown (--limit {limit})")
