"""``crmsync serve-webhooks``: run the webhook receiver in the foreground.

The receiver only stores events in the inbox; the Dagster sensor ``webhook_inbox_sensor``
syncs them. Run it under a process manager, behind a TLS-terminating reverse proxy.

It reads only what it uses from ``sync.yaml`` (``webhook.*`` and each entity's ``enabled``
and ``activity_types``), so variables it never needs, such as ``DAKTELA_ACCESS_TOKEN``, may
be unset in its environment.
"""

from __future__ import annotations

from pathlib import Path

import click

from crmsync_pipelines.cli.common import config_option, existing_config_path
from crmsync_pipelines.errors import ConfigError


@click.command("serve-webhooks")
@config_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8090, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--inbox",
    "inbox_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Inbox SQLite file (default: webhook.inbox_path of sync.yaml).",
)
@click.option(
    "--insecure-dev",
    is_flag=True,
    help="Allow running WITHOUT a secret. Development machines only.",
)
@click.option(
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    default="info",
    show_default=True,
)
def serve_webhooks(
    config_path: Path | None,
    host: str,
    port: int,
    inbox_path: Path | None,
    insecure_dev: bool,
    log_level: str,
) -> None:
    """Receive Daktela and CRM webhooks into the durable inbox."""
    import logging

    from crmsync_pipelines.config import load_webhook_settings
    from crmsync_pipelines.webhooks.server import app_from_config, serve

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    path = existing_config_path(config_path)
    try:
        settings = load_webhook_settings(path)
        app, inbox = app_from_config(settings, insecure_dev=insecure_dev, inbox_path=inbox_path)
    except ConfigError as exc:
        raise click.ClickException(f"Configuration error: {exc}") from None
    click.echo(f"crmsync webhooks: http://{host}:{port}/webhooks/daktela  inbox: {inbox.path}", err=True)
    try:
        serve(app, host=host, port=port, log_level=log_level)
    finally:
        inbox.close()
