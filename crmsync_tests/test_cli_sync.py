"""``crmsync plan | sync | retry-failed | reset-state`` against the simulator and demo CRM."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from crmsync_pipelines.cli.main import cli
from crmsync_pipelines.simulator import Fault
from crmsync_tests.fixtures.pipeline import PipelineWorld

pytestmark = pytest.mark.slow


def run(*args: str, input: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)
    return result.exit_code, result.output


def _row(output: str, entity: str) -> dict[str, str]:
    lines = output.splitlines()
    header = next(line for line in lines if line.startswith("entity "))
    row = next(line for line in lines if line.startswith(entity + " "))
    return dict(zip(header.split(), row.split(), strict=True))


def test_plan_writes_nothing_then_sync_writes_then_sync_again_writes_nothing(pipeline_world: PipelineWorld) -> None:
    world = pipeline_world
    world.simulator.reset_log()
    code, out = run("plan", "--entity", "account", "--entity", "contact", "--sample", "2")
    assert code == 0, out
    assert world.writes() == 0, "plan must not write to Daktela"
    assert "would be created" in out and "create crm_" in out
    assert "-> " in out                      # field-level old -> new
    planned = int(out.split("contact")[1].split(":")[1].split("would be created")[0])
    assert planned > 0

    code, out = run("sync", "--entity", "account", "--entity", "contact")
    assert code == 0, out
    assert int(_row(out, "contact")["created"]) == planned
    assert world.writes() > 0

    world.simulator.reset_log()
    code, out = run("sync", "--entity", "contact")
    assert code == 0, out
    assert world.writes() == 0
    assert int(_row(out, "contact")["unchanged"]) == planned
    assert int(_row(out, "contact")["created"]) == 0


def test_failed_records_give_exit_1_and_retry_failed_recovers_them(pipeline_world: PipelineWorld) -> None:
    world = pipeline_world
    run("sync", "--entity", "account")
    world.simulator.add_fault(Fault(route="POST /api/v6/contacts.json", kind="status", status=400, times=None))
    code, out = run("sync", "--entity", "contact")
    assert code == 1, out
    failed = int(_row(out, "contact")["failed"])
    assert failed > 0
    assert "[validation]" in out
    world.simulator.clear_faults()

    code, out = run("retry-failed", "--entity", "contact")
    assert code == 0, out
    assert f"retrying {failed} failed record(s)" in out
    assert "0 record(s) still failed" in out
    assert int(_row(out, "contact")["created"]) == failed


def test_bad_arguments_are_clear_errors(pipeline_world: PipelineWorld) -> None:
    code, out = run("sync", "--since", "yesterday")
    assert code == 2 and "not an ISO date" in out
    code, out = run("sync", "--since", "2026-11-27", "--until", "2026-11-01")
    assert code == 2 and "--since must be before --until" in out
    code, out = run("sync", "--entity", "opportunity")
    assert code == 2


def test_a_disabled_entity_is_refused(pipeline_world: PipelineWorld) -> None:
    config = pipeline_world.paths.config
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("activity:\n      enabled: true", "activity:\n      enabled: false"),
                      encoding="utf-8")
    code, out = run("sync", "--entity", "activity")
    assert code == 1 and "entity not enabled in sync.yaml: activity" in out


def test_reset_state_asks_first_and_then_forgets(pipeline_world: PipelineWorld) -> None:
    run("sync", "--entity", "account")
    code, out = run("reset-state", "--entity", "account", input="n\n")
    assert code == 1 and "Aborted" in out
    code, out = run("reset-state", "--entity", "account", "--yes")
    assert code == 0 and "sync state reset for account" in out
    # After a reset the next run re-diffs against Daktela: still no duplicate, no write.
    pipeline_world.simulator.reset_log()
    code, out = run("sync", "--entity", "account")
    assert code == 0, out
    assert pipeline_world.simulator.request_count("POST", "/api/v6/accounts.json") == 0
