"""The library facade (``crmsync_pipelines.sync`` & co.) over the simulator and the demo CRM."""

from __future__ import annotations

import sqlite3
from datetime import date, datetime, timedelta

import pytest

import crmsync_pipelines
from crmsync_pipelines.errors import ConfigError
from crmsync_pipelines.simulator import Fault
from crmsync_pipelines.staging import StagingStore
from crmsync_tests.fixtures.pipeline import PipelineWorld

pytestmark = pytest.mark.slow


def _ledger_counts(world: PipelineWorld, run_id: str) -> dict[tuple[str, str], int]:
    return world.ledger(run_id)


def test_sync_returns_counts_equal_to_the_ledger_then_nothing_changes(pipeline_world: PipelineWorld) -> None:
    world = pipeline_world
    world.simulator.reset_log()
    result = crmsync_pipelines.sync(world.paths.config, entities=["account", "contact"], force_full=True)
    assert result.ok, result.failed_records
    assert list(result.entities) == ["account", "auto_contact", "contact"]
    ledger = _ledger_counts(world, result.run_id)
    for entity, counts in result.entities.items():
        for outcome in ("created", "updated", "unchanged", "failed", "skipped"):
            assert getattr(counts, outcome) == ledger.get((entity, outcome), 0), (entity, outcome)
    assert result.entities["account"].created == world.crm_stats.accounts
    assert result.entities["contact"].created + result.entities["contact"].failed == world.crm_stats.contacts
    posts = world.simulator.request_count("POST")
    assert posts == sum(r.created for r in result.entities.values())
    assert result.entities["account"].api_calls["daktela"] > 0
    assert "Account: " in result.summary() and " created" in result.summary()

    again = crmsync_pipelines.sync(world.paths.config, entities=["contact"], force_full=True)
    assert again.entities["contact"].created == 0 and again.entities["contact"].updated == 0
    assert again.entities["contact"].unchanged == result.entities["contact"].created


def test_every_failed_record_is_returned_not_a_sample(pipeline_world: PipelineWorld) -> None:
    world = pipeline_world
    crmsync_pipelines.sync(world.paths.config, entities=["account"], force_full=True)
    world.simulator.add_fault(Fault(route="POST /api/v6/contacts.json", kind="status", status=400, times=None))
    result = crmsync_pipelines.sync(world.paths.config, entities=["contact"], force_full=True)
    contact = result.entities["contact"]
    assert not result.ok
    assert contact.failed == world.crm_stats.contacts >= 21  # more than the engine's 20-sample cap
    assert len(result.failed_records) == contact.failed == len(contact.failures)
    assert {f.error_class for f in result.failed_records} == {"validation"}
    failed_ids = {f.source_id for f in result.failed_records}
    waiting = {str(r["source_id"]) for r in StagingStore(world.paths.staging).failed_records("contact")}
    assert failed_ids == waiting
    assert all(f.message for f in result.failed_records)

    world.simulator.clear_faults()
    retried = crmsync_pipelines.retry_failed(world.paths.config, "contact")
    assert retried.ok
    assert retried.entities["contact"].created == contact.failed
    assert StagingStore(world.paths.staging).failed_records("contact") == []


def test_sync_ids_gives_field_level_records_in_order(pipeline_world: PipelineWorld) -> None:
    world = pipeline_world
    with sqlite3.connect(world.paths.crm) as con:
        ids = [str(r[0]) for r in con.execute("SELECT id FROM accounts ORDER BY id LIMIT 2")]
    result = crmsync_pipelines.sync_ids(world.paths.config, "account", [ids[1], "999999", ids[0]])
    assert [(r.source_id, r.outcome) for r in result.records] == [
        (ids[1], "created"), ("999999", "not_found"), (ids[0], "created")]
    assert result.entities["account"].not_found == 1 and not result.ok
    first = result.records[0]
    assert first.target_key == f"crm_acc_{ids[1]}"
    assert ("name", None, f"crm_acc_{ids[1]}") in [(c.field, c.old, c.new) for c in first.changes]
    assert world.simulator.get("accounts", f"crm_acc_{ids[1]}") is not None

    with sqlite3.connect(world.paths.crm) as con:
        con.execute("UPDATE accounts SET name = 'Renamed s.r.o.' WHERE id = ?", [int(ids[0])])
    before = world.simulator.get("accounts", f"crm_acc_{ids[0]}")
    assert before is not None
    result = crmsync_pipelines.sync_ids(world.paths.config, "account", [ids[0]])
    [record] = result.records
    assert record.outcome == "updated"
    assert [(c.field, c.old, c.new) for c in record.changes] == [("title", before["title"], "Renamed s.r.o.")]


def test_plan_writes_nothing(pipeline_world: PipelineWorld) -> None:
    world = pipeline_world
    world.simulator.reset_log()
    planned = crmsync_pipelines.plan(world.paths.config, entities=["account"], since=date(2000, 1, 1))
    assert world.writes() == 0
    account = planned.entities["account"]
    assert account.would_create == world.crm_stats.accounts and account.would_update == 0
    assert len(account.changes) == account.would_create
    assert planned.window.start == datetime(2000, 1, 1, tzinfo=planned.window.start.tzinfo)


def test_errors_raise_before_any_record(pipeline_world: PipelineWorld) -> None:
    world = pipeline_world
    with pytest.raises(ConfigError, match="configuration file not found"):
        crmsync_pipelines.sync(world.paths.data_dir / "nope.yaml")
    with pytest.raises(ConfigError, match=r"entity not enabled in sync\.yaml: lead"):
        crmsync_pipelines.sync(world.paths.config, entities=["lead"])
    with pytest.raises(ValueError, match="is not an ISO date"):
        crmsync_pipelines.sync(world.paths.config, since="yesterday")
    now = datetime.now().astimezone()
    with pytest.raises(ValueError, match="must be before"):
        crmsync_pipelines.sync(world.paths.config, since=now, until=now - timedelta(hours=1))
    with pytest.raises(ValueError, match="at least one id"):
        crmsync_pipelines.sync_ids(world.paths.config, "contact", [" "])
    assert world.writes() == 0


def test_a_loaded_config_object_and_reset_state(pipeline_world: PipelineWorld) -> None:
    from crmsync_pipelines.config import load_config

    world = pipeline_world
    config = load_config(world.paths.config)
    first = crmsync_pipelines.sync(config, entities=["account"], force_full=True)
    assert first.entities["account"].created == world.crm_stats.accounts
    crmsync_pipelines.reset_state(config, "account")
    world.simulator.reset_log()
    again = crmsync_pipelines.sync(config, entities=["account"], since="2000-01-01")
    # The memory is gone, so every account is looked up again, found equal: no write.
    assert again.entities["account"].unchanged == world.crm_stats.accounts
    assert world.writes() == 0
    assert world.simulator.request_count("GET") > 0
