"""``crmsync demo`` (``make demo``) and ``crmsync dev`` (``make dev``).

``demo`` proves the whole product in one command: the Daktela simulator and the demo CRM
start, every asset of the current partition is materialized by a real Dagster run recorded
in a persistent instance, and the ledger says what happened per entity. Running it again
writes nothing, because nothing changed. ``dev`` sets up the same world and opens the
Dagster UI on it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from crmsync_pipelines.cli.common import ENTITY_ORDER, EXIT_RECORDS_FAILED, render_table
from crmsync_pipelines.cli.demo_setup import (
    BUNDLED_CONFIG,
    DEFAULT_SIMULATOR_PORT,
    DemoPaths,
    SimulatorPortInUse,
    running_demo,
)

_OUTCOMES = ("created", "updated", "unchanged", "failed", "skipped")

data_dir_option = click.option(
    "--data-dir", type=click.Path(path_type=Path, file_okay=False), default=Path("data"), show_default=True,
    help="Where the simulator, demo CRM, staging, inbox and Dagster history live.",
)
accounts_option = click.option("--accounts", default=200, show_default=True, help="Demo CRM accounts (first run).")
contacts_option = click.option("--contacts", default=1000, show_default=True, help="Demo CRM contacts (first run).")
simulator_port_option = click.option(
    "--simulator-port", type=click.IntRange(0, 65535), default=DEFAULT_SIMULATOR_PORT, show_default=True,
    envvar="CRMSYNC_SIMULATOR_PORT", show_envvar=True,
    help="Loopback port of the Daktela simulator (fixed, so crmsync.env stays valid); 0 picks a free one.",
)


crm_option = click.option(
    "--crm", type=click.Choice(["sql", "raynet", "hubspot"]), default="sql", show_default=True,
    help="The CRM side: the SQLite demo CRM, or the Raynet / HubSpot simulator (its own data in "
         "<data-dir>/raynet or <data-dir>/hubspot).",
)


@contextmanager
def _demo_world(data_dir: Path, accounts: int, contacts: int, simulator_port: int,
                crm: str = "sql") -> Iterator[DemoPaths]:
    """:func:`running_demo`, with a taken port reported as a clear CLI error.

    ``crm="raynet"`` / ``"hubspot"`` also runs that CRM's simulator (data kept in
    ``<data-dir>/<crm>``, apart from the SQL demo's staging and ledger) and points the config at
    it (docs/crms/raynet.md, docs/crms/hubspot.md).
    """
    if crm in ("raynet", "hubspot"):
        data_dir = data_dir / crm
    try:
        with running_demo(data_dir, accounts=accounts, contacts=contacts, simulator_port=simulator_port) as paths:
            if crm not in ("raynet", "hubspot"):
                yield paths
                return
            from crmsync_pipelines.cli.demo_setup import patched_environ

            if crm == "hubspot":
                from crmsync_pipelines.crm.hubspot.demo import hubspot_demo

                with hubspot_demo(paths) as hubspot_env, patched_environ(hubspot_env):
                    yield paths
                return
            from crmsync_pipelines.crm.raynet.demo import raynet_demo

            with raynet_demo(paths) as raynet_env, patched_environ(raynet_env):
                yield paths
    except SimulatorPortInUse as exc:
        raise click.ClickException(str(exc)) from None


def ledger_table(paths: DemoPaths, run_id: str, api_calls: dict[str, int]) -> list[dict[str, Any]]:
    """Per-entity outcome counts of one run, from the staging ledger."""
    from crmsync_pipelines.staging import StagingStore

    def empty(entity: str) -> dict[str, Any]:
        return {"entity": entity, **dict.fromkeys(_OUTCOMES, 0), "api_calls": api_calls.get(entity, 0)}

    from crmsync_pipelines.defs.custom_entities import enabled_custom_entries

    customs = [f"custom:{entry['name']}" for entry in enabled_custom_entries(paths.config)]
    rows: dict[str, dict[str, Any]] = {entity: empty(entity) for entity in (*ENTITY_ORDER, *customs)}
    for entry in StagingStore(paths.staging).ledger_summary(run_id):
        # Entities beyond the three (e.g. contacts auto-created from accounts) get their own row.
        row = rows.setdefault(entry["entity"], empty(entry["entity"]))
        row[entry["outcome"]] = row.get(entry["outcome"], 0) + int(entry["count"])
    return list(rows.values())


@click.command("demo")
@data_dir_option
@accounts_option
@contacts_option
@simulator_port_option
@crm_option
def demo(data_dir: Path, accounts: int, contacts: int, simulator_port: int, crm: str) -> None:
    """Sync the demo CRM and the Daktela simulator through one real Dagster run."""
    with _demo_world(data_dir, accounts, contacts, simulator_port, crm) as paths:
        click.echo(f"data directory: {paths.data_dir}")
        click.echo(f"config: {paths.config}  |  Dagster home: {paths.dagster_home}")
        # Imported only now: the code location reads CRMSYNC_CONFIG when it loads.
        from crmsync_pipelines.defs.materialize import materialize_partition

        # Warnings and errors on the terminal; every log line is in the run's event log (make dev).
        summary = materialize_partition(tags={"crmsync/trigger": "demo"}, console_log_level="WARNING")
        click.echo(f"Dagster run {summary.run_id}: partition {summary.partition_key}, "
                   f"{len(summary.materialized)} assets materialized, "
                   f"{'succeeded' if summary.success else 'FAILED'}")
        rows = ledger_table(paths, summary.run_id, summary.api_calls)
    click.echo(render_table(rows, ("entity", *_OUTCOMES, "api_calls")))
    for step in summary.failed_steps:
        click.echo(click.style(f"step failed: {step}", fg="red"))
    for check in summary.failed_checks:
        click.echo(click.style(f"check failed: {check}", fg="yellow"))
    written = sum(row["created"] + row["updated"] for row in rows)
    click.echo("nothing to write: both systems already agree" if written == 0 else f"{written} records written")
    if crm in ("raynet", "hubspot"):
        name = {"raynet": "Raynet", "hubspot": "HubSpot"}[crm]
        click.echo(f"The {name} simulator stopped with the demo; its data is kept for the next `--crm {crm}` run.")
    else:
        click.echo("Open the Dagster UI on this data with: make dev")
        click.echo(f"Use the CLI on it from any shell after: source {_shown(paths.env_file)}")
    if not summary.success or any(row["failed"] for row in rows):
        raise SystemExit(EXIT_RECORDS_FAILED)


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is inside it (shorter to copy)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@click.command("dev")
@data_dir_option
@accounts_option
@contacts_option
@simulator_port_option
@click.option("--port", default=3000, show_default=True, help="Dagster UI port.")
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]),
              default="warning", show_default=True,
              help="Terminal log level of the Dagster webserver and daemon (sensor ticks are info). "
              "Runs log everything to their event log in the UI whatever this says.")
def dev(data_dir: Path, accounts: int, contacts: int, simulator_port: int, port: int, log_level: str) -> None:
    """The Dagster UI wired to the simulator and the demo CRM (Ctrl-C stops everything)."""
    project_root = BUNDLED_CONFIG.parents[1]
    workspace = project_root / "workspace.yaml"
    if not workspace.is_file():
        raise click.ClickException(f"workspace.yaml not found in {project_root}")
    with _demo_world(data_dir, accounts, contacts, simulator_port) as paths:
        click.echo(f"Daktela simulator on {os.environ['DAKTELA_INSTANCE_URL']} and demo CRM ready; "
                   f"Dagster home {paths.dagster_home}")
        click.echo("To use the CLI on this world from another terminal (simulator credentials only):")
        click.echo(f"  source {_shown(paths.env_file)}")
        click.echo("  (or export these:)")
        for name in ("DAKTELA_INSTANCE_URL", "DAKTELA_ACCESS_TOKEN", "CRMSYNC_CONFIG", "CRMSYNC_CRM_PATH",
                     "DAGSTER_HOME"):
            click.echo(f"  export {name}={os.environ[name]}")
        click.echo(f"Dagster UI: http://127.0.0.1:{port}  (Ctrl-C to stop)")
        # `dg dev` (the project's Dagster CLI) with the project's workspace.yaml.
        command = [str(Path(sys.executable).parent / "dg"), "dev", "-w", str(workspace), "--host", "127.0.0.1",
                   "--port", str(port), "--log-level", log_level]
        process = subprocess.Popen(command, cwd=project_root)
        # A SIGTERM (process manager, `timeout`) stops the UI the same way Ctrl-C does.
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            code = process.wait()
        except KeyboardInterrupt:
            process.terminate()
            try:
                code = process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                code = process.wait()
    if code not in (0, -15, 130):
        raise SystemExit(code)
