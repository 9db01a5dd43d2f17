"""``crmsync demo-crm``: create and mutate the bundled demo CRM (a SQLite file)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from crmsync_pipelines.crm.demo_data import create_demo_crm, mutate_demo_crm

_PATH_OPTION = click.option(
    "--path",
    "path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("demo-crm.sqlite"),
    show_default=True,
    help="The demo CRM SQLite file.",
)


def _parse_now(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not an ISO-8601 datetime", param_hint="--now") from exc
    if moment.tzinfo is None:
        raise click.BadParameter("give a time zone, e.g. 2026-11-27T10:00:00+00:00", param_hint="--now")
    return moment


@click.group(name="demo-crm")
def demo_crm() -> None:
    """Create or change the bundled demo CRM (Czech and Slovak accounts and contacts)."""


@demo_crm.command(name="create")
@_PATH_OPTION
@click.option("--accounts", type=click.IntRange(min=0), default=200, show_default=True)
@click.option("--contacts", type=click.IntRange(min=0), default=1000, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True, help="Same seed and --now: same data.")
@click.option("--now", "now_text", default=None, help="Pretend it is this time (ISO-8601 with offset).")
@click.option("--force", is_flag=True, help="Replace the file if it exists.")
def create(path: Path, accounts: int, contacts: int, seed: int, now_text: str | None, force: bool) -> None:
    """Create the demo CRM file with realistic, deliberately imperfect data."""
    try:
        stats = create_demo_crm(
            path, accounts=accounts, contacts=contacts, seed=seed, now=_parse_now(now_text), overwrite=force
        )
    except FileExistsError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"Created {stats.path}: {stats.accounts} accounts, {stats.contacts} contacts "
        f"({stats.contacts_without_account} without account, {stats.contacts_modified_today} modified today)"
    )


@demo_crm.command(name="mutate")
@_PATH_OPTION
@click.option(
    "--touch-pct",
    type=click.FloatRange(0, 100),
    default=1.0,
    show_default=True,
    help="Percent of accounts and contacts to change.",
)
@click.option("--add", type=click.IntRange(min=0), default=0, show_default=True, help="New contacts.")
@click.option("--delete", type=click.IntRange(min=0), default=0, show_default=True, help="Contacts to delete.")
@click.option("--seed", type=int, default=None, help="Repeatable changes (default: different every run).")
@click.option("--now", "now_text", default=None, help="Modified time of the changes (ISO-8601 with offset).")
def mutate(path: Path, touch_pct: float, add: int, delete: int, seed: int | None, now_text: str | None) -> None:
    """Change the demo CRM the way a day of CRM use does, so an incremental sync has work."""
    try:
        stats = mutate_demo_crm(path, touch_pct=touch_pct, add=add, delete=delete, seed=seed, now=_parse_now(now_text))
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"Mutated {path}: {stats.accounts_touched} accounts and {stats.contacts_touched} contacts changed, "
        f"{stats.contacts_added} contacts added, {stats.contacts_deleted} deleted"
    )
