"""``crmsync simulator``: run the bundled Daktela V6 simulator in the foreground.

Used by ``make demo``/``make dev`` and benchmarks that need an out-of-process instance; the
``/_sim`` control API then adjusts faults and latency at runtime.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click

from crmsync_pipelines.cli.crm_simulator_cmd import parse_faults, serve_until_stopped
from crmsync_pipelines.simulator import SimulatorConfig, SimulatorHandle, run_simulator


@click.command("simulator")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind (keep it loopback).")
@click.option("--port", default=8765, show_default=True, type=int, help="Port; 0 picks a free one.")
@click.option("--seed", default="demo", show_default=True, help="Demo data seed; 'none' for an empty instance.")
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="SQLite file; state survives restarts. Default: in memory.")
@click.option("--token", default="sim-token", show_default=True, help="The valid static access token.")
@click.option("--timezone", default="Europe/Prague", show_default=True, help="Instance time zone.")
@click.option("--latency-ms", default=0.0, show_default=True, type=float, help="Added to every API request.")
@click.option("--rate-limit", default=None, type=int, help="Requests allowed per window, then 429.")
@click.option("--rate-window-s", default=1.0, show_default=True, type=float, help="Rate-limit window.")
@click.option("--max-take", "take_max", default=1000, show_default=True, type=click.IntRange(min=1),
              help="Largest page served; a bigger `take` is clamped to it (or refused, see --take-max-mode).")
@click.option("--take-max-mode", type=click.Choice(["clamp", "error"]), default="clamp", show_default=True)
@click.option("--default-take", default=100, show_default=True, type=int)
@click.option("--locale", type=click.Choice(["en", "cs"]), default="en", show_default=True)
@click.option("--custom-fields-put", type=click.Choice(["merge", "replace"]), default="merge", show_default=True)
@click.option("--reject-activity-date-filters", is_flag=True, help="Answer 400 to date filters on activities*.")
@click.option("--fault", "faults", multiple=True, help="ROUTE=WHAT[xTIMES], e.g. 'POST /api/v6/contacts.json=500x2'.")
@click.option("--webhook-url", default=None, help="POST activity events here.")
@click.option("--webhook-secret", default=None, help="Sent as X-Webhook-Secret.")
@click.option("--webhook-format", type=click.Choice(["json", "form"]), default="json", show_default=True)
def simulator(
    host: str, port: int, seed: str, db_path: Path | None, token: str, timezone: str, latency_ms: float,
    rate_limit: int | None, rate_window_s: float, take_max: int, take_max_mode: str, default_take: int, locale: str,
    custom_fields_put: str, reject_activity_date_filters: bool, faults: tuple[str, ...],
    webhook_url: str | None, webhook_secret: str | None, webhook_format: str,
) -> None:
    """Run the Daktela V6 simulator until Ctrl-C or SIGTERM."""
    parsed_faults = parse_faults(faults)
    config = SimulatorConfig(
        host=host, port=port, seed=None if seed.lower() in ("none", "") else seed, db_path=db_path, token=token,
        timezone=timezone, latency_ms=latency_ms, rate_limit=rate_limit, rate_window_s=rate_window_s,
        take_max=take_max, take_max_mode=take_max_mode,  # type: ignore[arg-type]
        default_take=default_take, locale=locale,  # type: ignore[arg-type]
        custom_fields_put=custom_fields_put,  # type: ignore[arg-type]
        reject_activity_date_filters=reject_activity_date_filters,
        webhook_url=webhook_url, webhook_secret=webhook_secret,
        webhook_format=webhook_format,  # type: ignore[arg-type]
    )

    def describe(handle: SimulatorHandle) -> Iterator[str]:
        for fault in parsed_faults:
            handle.add_fault(fault)
        yield f"Daktela simulator listening on {handle.base_url}"
        yield f"instance_url: {handle.base_url}"
        yield f"access_token: {handle.token}"

    serve_until_stopped(run_simulator(config), describe, host=host, port=port)
    click.echo("Daktela simulator stopped.", err=True)
