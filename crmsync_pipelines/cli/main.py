"""The ``crmsync`` command line.

Sub-commands live in their own modules and are imported only when invoked, so
``crmsync --help`` stays fast and one broken optional dependency cannot take the whole CLI
down.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

#: command name -> "module:attribute" of a click command.
COMMANDS: dict[str, str] = {
    "validate": "crmsync_pipelines.cli.config_cmds:validate",
    "config-view": "crmsync_pipelines.cli.config_cmds:config_view",
    "crm-inspect": "crmsync_pipelines.cli.inspect_cmd:crm_inspect",
    "plan": "crmsync_pipelines.cli.sync_cmds:plan",
    "sync": "crmsync_pipelines.cli.sync_cmds:sync",
    "reset-state": "crmsync_pipelines.cli.sync_cmds:reset_state",
    "retry-failed": "crmsync_pipelines.cli.sync_cmds:retry_failed",
    "staging": "crmsync_pipelines.cli.staging_cmd:staging",
    "serve-webhooks": "crmsync_pipelines.cli.webhooks_cmd:serve_webhooks",
    "inbox": "crmsync_pipelines.cli.inbox_cmd:inbox",
    "simulator": "crmsync_pipelines.cli.simulator_cmd:simulator",
    "crm-simulator": "crmsync_pipelines.cli.crm_simulator_cmd:crm_simulator",
    "demo-crm": "crmsync_pipelines.cli.demo_crm_cmd:demo_crm",
    "demo": "crmsync_pipelines.cli.demo_cmd:demo",
    "dev": "crmsync_pipelines.cli.demo_cmd:dev",
}


class LazyGroup(click.Group):
    """A click group that imports each sub-command on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        command: Any = getattr(importlib.import_module(module_name), attr)
        if not isinstance(command, click.Command):
            raise click.ClickException(f"{target} is not a click command")
        return command


@click.group(cls=LazyGroup)
@click.version_option(package_name="crmsync")
def cli() -> None:
    """Keep a Daktela Contact Centre V6 instance and a CRM in sync."""


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
