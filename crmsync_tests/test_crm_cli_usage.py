"""What a user of the built-in HTTP CRMs (Raynet, HubSpot) sees about the CRM's requests.

The ``api_calls`` of a stage count the HTTP requests the CRM answered (not the adapter's
method calls: one ``upsert_activities`` call is 22 Raynet requests), and ``crmsync sync``
prints the CRM's request count and the daily budget left, so a run that used up Raynet's
24,000 requests says so in its summary. Real simulators over HTTP, real DuckDB.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from crmsync_pipelines.cli.main import cli
from crmsync_pipelines.config import load_config
from crmsync_pipelines.engine import SyncEngine, Window
from crmsync_pipelines.simulator.config import Fault
from crmsync_tests.fixtures.hubspot import HubSpotWorld
from crmsync_tests.fixtures.raynet import RaynetEngineEnv

ALL = Window(None, None)


def _crm_calls(reports: list) -> int:  # type: ignore[type-arg]
    return sum(r.api_calls.get("crm", 0) for r in reports)


def test_raynet_api_calls_are_the_requests_raynet_answered(raynet_engine_env: RaynetEngineEnv) -> None:
    env = raynet_engine_env
    engine = env.engine(accounts=True, contacts=True)
    try:
        env.raynet.reset_log()
        reports = [r for entity in ("account", "contact", "activity") for r in engine.sync(entity, ALL, "run-1")]
    finally:
        engine.close()
    activities = len(env.daktela.all("activities"))
    assert sum(1 for r in env.raynet.request_log if r.method == "PUT") == activities  # one create each
    assert _crm_calls(reports) == env.raynet.request_count()


@pytest.mark.slow
def test_hubspot_api_calls_are_the_requests_hubspot_answered(hubspot_world: HubSpotWorld) -> None:
    world = hubspot_world
    engine = SyncEngine.from_config(load_config(world.paths.config))
    try:
        world.hubspot.app.reset_log()
        reports = [r for entity in ("account", "contact", "activity") for r in engine.sync(entity, ALL, "run-1")]
    finally:
        engine.close()
    assert _crm_calls(reports) == world.hubspot.app.request_count() > 0


def _cli_sync(config: Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["sync", "-c", str(config), "--entity", "activity", "--since", "2000-01-01"])
    return result.exit_code, result.output


def test_cli_summary_shows_raynet_requests_and_budget_left_and_when_it_ran_out(
        raynet_engine_env: RaynetEngineEnv) -> None:
    env = raynet_engine_env
    config = env.write_config()
    total = len(env.daktela.all("activities"))
    env.raynet.set_daily_limit(13)  # 1 person-index page + 12 creates, then nothing more is sent today
    code, output = _cli_sync(config)
    assert code == 1, output
    assert env.raynet.request_count() == 13
    assert "raynet: 13 requests in this run; daily budget left 0 of 13 (resets at " in output
    assert ("the CRM's daily request budget is used up: the records not sent wait as transient failures "
            "for the next run after the reset") in output
    assert f"activity  12       0        0          {total - 12}" in output

    env.raynet.next_day()
    env.raynet.set_daily_limit(100)
    env.raynet.reset_log()
    code, output = _cli_sync(config)
    assert code == 0, output
    used = env.raynet.request_count()
    assert used == total - 12 + 1  # the rest, once each, and one person-index page
    assert f"raynet: {used} requests in this run; daily budget left {100 - used} of 100 (resets at " in output
    assert "used up" not in output
    assert "sim-raynet-api-key" not in output


def test_an_entity_that_cannot_run_still_shows_what_the_run_did_before(raynet_engine_env: RaynetEngineEnv) -> None:
    """Accounts land, then Raynet refuses the person list: the summary of the accounts, the
    entity that stopped the run with its error, the entities not run, exit 1, no traceback."""
    env = raynet_engine_env
    config = env.write_config(accounts=True, contacts=True, activities=True)
    env.raynet.add_fault(Fault.parse("GET /api/v2/person/=401x*"))
    result = CliRunner().invoke(cli, ["sync", "-c", str(config), "--since", "2000-01-01"])
    assert result.exit_code == 1, result.output
    accounts = len(env.raynet.store.all("company"))
    assert re.search(rf"^account +{accounts} +0 +0 +0 ", result.output, re.MULTILINE), result.output
    assert "raynet: 1 request in this run;" in result.output
    assert "contact: AuthError: Raynet instance 'demo-crm'" in result.output
    assert "not run: activity" in result.output
    assert "Traceback" not in result.output and "sim-raynet-api-key" not in result.output
