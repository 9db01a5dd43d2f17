"""Single-record sync: ``crmsync sync --entity X --id ...`` over the simulator and demo CRM.

Exact API calls (the simulator's request log), ledger rows, and the field-level output.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from crmsync_pipelines.cli.main import cli
from crmsync_pipelines.staging import StagingStore
from crmsync_tests.fixtures.pipeline import PipelineWorld

pytestmark = pytest.mark.slow


def run(*args: str, input: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)
    return result.exit_code, result.output


def _ledger(world: PipelineWorld, entity: str) -> list[dict[str, object]]:
    return StagingStore(world.paths.staging).ledger_rows(entity=entity)


def _writes(world: PipelineWorld, method: str, model: str) -> list[str]:
    return [r.path for r in world.simulator.request_log if r.method == method and f"/{model}" in r.path]


def _contact_with_account(world: PipelineWorld) -> tuple[str, str]:
    with sqlite3.connect(world.paths.crm) as con:
        row = con.execute("SELECT id, account_id FROM contacts WHERE account_id IS NOT NULL "
                          "AND last_name IS NOT NULL AND phone IS NULL ORDER BY id LIMIT 1").fetchone()
        if row is None:
            row = con.execute("SELECT id, account_id FROM contacts WHERE account_id IS NOT NULL "
                              "AND last_name IS NOT NULL ORDER BY id LIMIT 1").fetchone()
    return str(row[0]), str(row[1])


def test_sync_one_contact_creates_it_and_its_account_then_updates_one_field(pipeline_world: PipelineWorld) -> None:
    world = pipeline_world
    contact_id, account_id = _contact_with_account(world)
    world.simulator.reset_log()

    code, out = run("sync", "--entity", "contact", "--id", contact_id)
    assert code == 0, out
    assert f"contact {contact_id} -> crm_{contact_id}: created" in out
    assert f"    name: None -> 'crm_{contact_id}'" in out
    # The referenced account was missing from Daktela: synced on the fly first, then the contact.
    # (the account's auto-created switchboard contact is the second contact POST).
    posted = [r.json["name"] for r in world.simulator.request_log
              if r.method == "POST" and r.path == "/api/v6/contacts.json"]
    auto = [r["lookup_key"] for r in _ledger(world, "auto_contact")]
    assert sorted(posted) == sorted([f"crm_{contact_id}", *auto]) and len(auto) <= 1
    assert _writes(world, "POST", "accounts") == ["/api/v6/accounts.json"]
    assert world.simulator.get("contacts", f"crm_{contact_id}") is not None
    assert world.simulator.get("accounts", f"crm_acc_{account_id}") is not None
    rows = _ledger(world, "contact")
    assert [(r["source_id"], r["outcome"], r["lookup_key"]) for r in rows] == [
        (contact_id, "created", f"crm_{contact_id}")]

    # Again: unchanged by hash, no API write, one more ledger row.
    world.simulator.reset_log()
    code, out = run("sync", "--entity", "contact", "--id", contact_id)
    assert code == 0, out
    assert f"contact {contact_id} -> crm_{contact_id}: unchanged" in out
    assert world.writes() == 0
    assert [r["outcome"] for r in _ledger(world, "contact")] == ["created", "unchanged"]

    # Change one field in the CRM: exactly one PUT with that field, printed old -> new.
    with sqlite3.connect(world.paths.crm) as con:
        con.execute("UPDATE contacts SET job_title = 'Chief Tester' WHERE id = ?", [int(contact_id)])
    world.simulator.reset_log()
    code, out = run("sync", "--entity", "contact", "--id", contact_id)
    assert code == 0, out
    assert f"contact {contact_id} -> crm_{contact_id}: updated" in out
    assert "    description: " in out and "-> 'Chief Tester'" in out
    puts = [r for r in world.simulator.request_log if r.method == "PUT"]
    assert [r.path for r in puts] == [f"/api/v6/contacts/crm_{contact_id}.json"]
    assert set(puts[0].json) == {"description"}
    assert world.simulator.get("contacts", f"crm_{contact_id}")["description"] == "Chief Tester"
    assert [r["outcome"] for r in _ledger(world, "contact")] == ["created", "unchanged", "updated"]


def test_several_ids_an_id_file_and_a_missing_id(pipeline_world: PipelineWorld, tmp_path: Path) -> None:
    world = pipeline_world
    with sqlite3.connect(world.paths.crm) as con:
        accounts = [str(r[0]) for r in con.execute("SELECT id FROM accounts ORDER BY id LIMIT 3")]
    id_file = tmp_path / "ids.txt"
    id_file.write_text(f"{accounts[1]}\n\n{accounts[2]}\n999999\n", encoding="utf-8")
    world.simulator.reset_log()

    code, out = run("sync", "--entity", "account", "--id", accounts[0], "--id-file", str(id_file))
    assert code == 1, out                                  # 999999 does not exist in the CRM
    for account in accounts:
        assert f"account {account} -> crm_acc_{account}: created" in out
    assert "account 999999: not_found" in out
    assert "1 requested id(s) not found at the source: 999999" in out
    assert len(_writes(world, "POST", "accounts")) == 3
    rows = _ledger(world, "account")
    assert sorted(str(r["source_id"]) for r in rows) == sorted(accounts)
    assert {r["outcome"] for r in rows} == {"created"}


def test_a_failing_record_prints_its_error_and_lands_in_failed_records(pipeline_world: PipelineWorld) -> None:
    world = pipeline_world
    with sqlite3.connect(world.paths.crm) as con:
        contact_id = str(con.execute("SELECT id FROM contacts ORDER BY id LIMIT 1").fetchone()[0])
        con.execute("UPDATE contacts SET last_name = NULL, first_name = NULL WHERE id = ?", [int(contact_id)])
    world.simulator.reset_log()
    code, out = run("sync", "--entity", "contact", "--id", contact_id)
    assert code == 1, out
    assert f"contact {contact_id}" in out and ": failed [validation]" in out
    assert world.writes() == 0
    failed = StagingStore(world.paths.staging).failed_records("contact")
    assert [(r["source_id"], r["error_class"]) for r in failed] == [(contact_id, "validation")]


def test_an_activity_by_its_daktela_name(pipeline_world: PipelineWorld) -> None:
    world = pipeline_world
    names = [a["name"] for a in world.simulator.all("activities")][:1]
    assert names
    code, out = run("sync", "--entity", "activity", "--id", names[0])
    assert code == 0, out
    assert f"activity {names[0]} -> " in out and ": created" in out
    with sqlite3.connect(world.paths.crm) as con:
        stored = [r[0] for r in con.execute("SELECT external_id FROM activities")]
    assert stored == [names[0]]
    assert [(r["source_id"], r["outcome"]) for r in _ledger(world, "activity")] == [(names[0], "created")]


def test_id_usage_errors(pipeline_world: PipelineWorld, tmp_path: Path) -> None:
    code, out = run("sync", "--id", "1")
    assert code == 2 and "exactly one --entity" in out
    code, out = run("sync", "--entity", "contact", "--entity", "account", "--id", "1")
    assert code == 2
    code, out = run("sync", "--entity", "contact", "--id", "1", "--since", "2026-01-01")
    assert code == 2
    code, out = run("sync", "--entity", "contact", "--id-file", str(tmp_path / "missing.txt"))
    assert code == 2 and "cannot read" in out
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    code, out = run("sync", "--entity", "contact", "--id-file", str(empty))
    assert code == 2 and "named no id" in out


def test_dagster_sync_records_job_from_run_config(pipeline_world: PipelineWorld, dagster_instance: object) -> None:
    import dagster as dg

    from crmsync_pipelines.definitions import defs

    world = pipeline_world
    with sqlite3.connect(world.paths.crm) as con:
        account = str(con.execute("SELECT id FROM accounts ORDER BY id LIMIT 1").fetchone()[0])
    job = defs().resolve_job_def("sync_records")
    world.simulator.reset_log()
    result = job.execute_in_process(
        instance=dagster_instance,  # type: ignore[arg-type]
        run_config={"ops": {"sync_named_records": {"config": {"entity": "account", "ids": [account]}}}},
    )
    assert result.success
    assert [r.path for r in world.simulator.request_log if r.method == "POST" and "accounts" in r.path] == [
        "/api/v6/accounts.json"]
    rows = _ledger(world, "account")
    assert [(r["run_id"], r["source_id"], r["outcome"]) for r in rows] == [(result.run_id, account, "created")]
    output = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_OUTPUT)
    metadata = output.step_output_data.metadata  # type: ignore[union-attr]
    assert metadata["count_created"].value == 1
    [record] = metadata["results"].value
    assert record["source_id"] == account and record["outcome"] == "created"
    assert {"field": "name", "old": None, "new": f"crm_acc_{account}"} in record["changes"]

    # A missing id fails the run (no retry), with the outcome in the failure metadata.
    failed = job.execute_in_process(
        instance=dagster_instance,  # type: ignore[arg-type]
        run_config={"ops": {"sync_named_records": {"config": {"entity": "account", "ids": ["424242"]}}}},
        raise_on_error=False,
    )
    assert not failed.success
    failure = next(e for e in failed.all_events if e.is_step_failure)
    description = failure.step_failure_data.user_failure_data.description  # type: ignore[union-attr]
    assert "1 of 1 record(s) did not sync (1 not found at the source)" in description
    assert not [e for e in failed.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
