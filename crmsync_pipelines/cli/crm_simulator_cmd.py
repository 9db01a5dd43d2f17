"""``crmsync crm-simulator <crm>``: run a bundled CRM simulator in the foreground.

One sub-command per simulated CRM (``raynet``, ``hubspot``; another CRM adds its own with
``@crm_simulator.command("<name>")`` and reuses ``serve_until_stopped``). Each prints the
settings a ``sync.yaml`` needs to reach it and runs until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import errno
import signal
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from types import FrameType
from typing import Any

import click

from crmsync_pipelines.simulator import Fault


def parse_faults(specs: tuple[str, ...]) -> list[Fault]:
    """``ROUTE=WHAT[xTIMES]`` specs (the Daktela simulator's syntax) as faults; bad ones are usage errors."""
    faults = []
    for spec in specs:
        try:
            faults.append(Fault.parse(spec))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--fault") from None
    return faults


def listen_error(exc: OSError, host: str, port: int) -> click.ClickException:
    """A one-line answer to a simulator that could not bind ``host:port`` (exit code 1)."""
    reason = exc.strerror or str(exc)
    hint = "another process uses it" if exc.errno == errno.EADDRINUSE else "check --host and --port"
    return click.ClickException(f"cannot listen on {host}:{port}: {reason} ({hint}); "
                                "pick another --port, or --port 0 for a free one")


def enter_simulator(stack: ExitStack, running: AbstractContextManager[Any], host: str, port: int) -> Any:
    """Start a simulator inside ``stack``; a bind failure becomes ``listen_error`` (never a traceback)."""
    try:
        return stack.enter_context(running)
    except OSError as exc:
        raise listen_error(exc, host, port) from None


def serve_until_stopped(running: AbstractContextManager[Any], describe: Any, *, host: str, port: int) -> None:
    """Enter ``running`` (a simulator context manager), print ``describe(handle)``, wait for a signal."""
    stop = threading.Event()

    def _request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with ExitStack() as stack:
            handle = enter_simulator(stack, running, host, port)
            lines: Iterator[str] = describe(handle)
            for line in lines:
                click.echo(line)
            click.echo("Press Ctrl-C to stop.", err=True)
            while not stop.wait(0.5):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@click.group("crm-simulator")
def crm_simulator() -> None:
    """Run a bundled CRM simulator on loopback (for demos, tests and trying crmsync without a CRM)."""


@crm_simulator.command("raynet")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind (keep it loopback).")
@click.option("--port", default=8766, show_default=True, type=int, help="Port; 0 picks a free one.")
@click.option("--seed", default="demo", show_default=True, help="Demo data seed; 'none' for users only.")
@click.option("--companies", default=12, show_default=True, type=int, help="Demo companies.")
@click.option("--persons", default=40, show_default=True, type=int, help="Demo persons.")
@click.option("--instance", "instance_name", default="demo-crm", show_default=True, help="X-Instance-Name.")
@click.option("--username", default="integrace@example.com", show_default=True, help="The API user's login.")
@click.option("--api-key", default="sim-raynet-api-key", show_default=True, help="The valid API key.")
@click.option("--user-zone", default="Europe/Prague", show_default=True, help="The API user's time zone.")
@click.option("--daily-limit", default=24_000, show_default=True, type=int, help="Requests per UTC day.")
@click.option("--quota-status", type=click.Choice(["429", "503"]), default="429", show_default=True,
              help="Answer once the daily budget is spent (503: the older docs).")
@click.option("--limit-mode", type=click.Choice(["clamp", "error"]), default="clamp", show_default=True,
              help="What limit > 1000 does.")
@click.option("--strict-activity-insert", is_flag=True, help="Refuse status/customFields in activity creates.")
@click.option("--filter-precision", type=click.Choice(["second", "minute"]), default="second", show_default=True,
              help="How date filters compare.")
@click.option("--latency-ms", default=0.0, show_default=True, type=float, help="Added to every request.")
@click.option("--fault", "faults", multiple=True,
              help="ROUTE=WHAT[xTIMES], e.g. 'PUT /api/v2/phoneCall/=500x2' or '*=429:5' (Retry-After 5).")
def raynet(host: str, port: int, seed: str, companies: int, persons: int, instance_name: str, username: str,
           api_key: str, user_zone: str, daily_limit: int, quota_status: str, limit_mode: str,
           strict_activity_insert: bool, filter_precision: str, latency_ms: float, faults: tuple[str, ...]) -> None:
    """The Raynet CRM API v2 simulator (docs/crms/raynet.md)."""
    from crmsync_pipelines.crm.raynet.simulator import RaynetSimConfig, RaynetSimulatorHandle, run_raynet_simulator

    parsed = parse_faults(faults)
    config = RaynetSimConfig(
        host=host, port=port, seed=None if seed.lower() in ("none", "") else seed, companies=companies,
        persons=persons, instance_name=instance_name, username=username, api_key=api_key, user_zone=user_zone,
        daily_limit=daily_limit, quota_status=int(quota_status),  # type: ignore[arg-type]
        limit_mode=limit_mode,  # type: ignore[arg-type]
        strict_activity_insert=strict_activity_insert, latency_ms=latency_ms,
        filter_precision=filter_precision,  # type: ignore[arg-type]
    )

    def describe(handle: RaynetSimulatorHandle) -> Iterator[str]:
        for fault in parsed:
            handle.add_fault(fault)
        yield f"Raynet simulator listening on {handle.base_url}"
        yield "Point crm: {adapter: raynet} at it with:"
        yield f"  export RAYNET_BASE_URL={handle.api_url}"
        yield f"  export RAYNET_INSTANCE={handle.config.instance_name}"
        yield f"  export RAYNET_USERNAME={handle.config.username}"
        yield f"  export RAYNET_API_KEY={handle.config.api_key}"
        yield f"  export RAYNET_OWNER_ID={handle.user_ids[-1]}"

    serve_until_stopped(run_raynet_simulator(config), describe, host=host, port=port)
    click.echo("Raynet simulator stopped.", err=True)


def _hubspot_faults(specs: tuple[str, ...]) -> list[Any]:
    """``METHOD PATH=STATUS[:RETRY_AFTER][xTIMES]`` (``'POST /crm/v3/objects/calls/batch/*=429:2x3'``)."""
    from crmsync_pipelines.crm.hubspot.simulator import SimFault

    faults = []
    for spec in specs:
        route, _, what = spec.rpartition("=")
        status_part, _, times = what.partition("x")
        status, _, retry_after = status_part.partition(":")
        if not route.strip() or not status.isdigit() or (times and not times.isdigit()):
            raise click.BadParameter(f"{spec!r} is not ROUTE=STATUS[:RETRY_AFTER][xTIMES]", param_hint="--fault")
        faults.append(SimFault(route.strip(), int(status), times=int(times) if times else None,
                               retry_after=retry_after or None))
    return faults


def _check_state(path: Path) -> None:
    """``--state`` must be a portal a HubSpot simulator saved: loaded into a scratch store first,
    so a broken file is a usage error and is never overwritten by the portal saved on stop."""
    from crmsync_pipelines.crm.hubspot.sim_store import SimStore

    try:
        SimStore().load(path)
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise click.BadParameter(f"{path} is not a portal saved by the HubSpot simulator "
                                 f"({type(exc).__name__}: {exc})", param_hint="--state") from None


@crm_simulator.command("hubspot")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind (keep it loopback).")
@click.option("--port", default=8767, show_default=True, type=int, help="Port; 0 picks a free one.")
@click.option("--seed", default="demo", show_default=True, help="Demo data seed; 'none' for an empty portal.")
@click.option("--token", default="pat-na1-sim-token", show_default=True, help="The valid private-app token.")
@click.option("--account-timezone", default="Europe/Prague", show_default=True,
              help="The portal's time zone (the daily limit resets at its midnight).")
@click.option("--burst-limit", default=100, show_default=True, type=int, help="Requests per rolling 10 s; 0 = off.")
@click.option("--daily-limit", default=250_000, show_default=True, type=int, help="Requests per day; 0 = off.")
@click.option("--search-rate", default=4.0, show_default=True, type=float,
              help="Search requests per second; 0 = off.")
@click.option("--search-cap", default=10_000, show_default=True, type=int, help="Results one search may page to.")
@click.option("--latency-ms", default=0.0, show_default=True, type=float, help="Added to every request.")
@click.option("--state", "state_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="JSON file the portal is loaded from (instead of seeding) and saved to on stop.")
@click.option("--fault", "faults", multiple=True,
              help="ROUTE=STATUS[:RETRY_AFTER][xTIMES], e.g. 'POST /crm/v3/objects/calls/batch/*=429:2x3'.")
def hubspot(host: str, port: int, seed: str, token: str, account_timezone: str, burst_limit: int,
            daily_limit: int, search_rate: float, search_cap: int, latency_ms: float, state_path: Path | None,
            faults: tuple[str, ...]) -> None:
    """The HubSpot CRM API simulator (docs/crms/hubspot.md)."""
    from crmsync_pipelines.crm.hubspot.simulator import HubSpotSimConfig, HubSpotSimHandle, run_hubspot_simulator

    parsed = _hubspot_faults(faults)
    if state_path is not None and state_path.is_file():
        _check_state(state_path)
    config = HubSpotSimConfig(
        host=host, port=port, seed=None if seed.lower() in ("none", "") else seed, token=token,
        account_timezone=account_timezone, burst_limit=burst_limit or None, daily_limit=daily_limit or None,
        search_rate_per_s=search_rate or None, search_cap=search_cap, latency_ms=latency_ms, state_path=state_path,
    )

    def describe(handle: HubSpotSimHandle) -> Iterator[str]:
        for fault in parsed:
            handle.app.add_fault(fault)
        yield f"HubSpot simulator listening on {handle.base_url}"
        yield "Point crm: {adapter: hubspot} at it with:"
        yield f"  export HUBSPOT_BASE_URL={handle.base_url}"
        yield f"  export HUBSPOT_ACCESS_TOKEN={handle.token}"

    serve_until_stopped(run_hubspot_simulator(config), describe, host=host, port=port)
    click.echo("HubSpot simulator stopped.", err=True)
