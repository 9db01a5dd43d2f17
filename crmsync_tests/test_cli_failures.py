"""Failures the CLI must never hide (issue 10 §2): auto-created contacts, held-back records,
quarantined records listed once, and the exit codes that tell them apart
(0 clean, 1 failed in this run, 3 waiting from earlier runs; docs/operations.md)."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime

import pytest
import yaml

from crmsync_pipelines.simulator import Fault
from crmsync_pipelines.staging import StagingStore
from crmsync_tests.fixtures.pipeline import PipelineWorld
from crmsync_tests.test_cli_sync import _row, run

pytestmark = pytest.mark.slow

CONTACTS = "/api/v6/contacts.json"


def _failed(world: PipelineWorld, entity: str) -> list[str]:
    return sorted(str(r["source_id"]) for r in StagingStore(world.paths.staging).failed_records(entity))


def _valid_phones(world: PipelineWorld) -> None:
    """The demo CRM has contacts whose phone never maps (they fail every run, exit 1); fix them."""
    with sqlite3.connect(world.paths.crm) as conn:
        conn.execute("UPDATE contacts SET phone = '+420 601 123 456'")


def _failure_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if re.match(r"^  (account|auto_contact|contact|activity) ", line)]


def test_failed_auto_contacts_fail_the_run_and_retry_failed_creates_them(pipeline_world: PipelineWorld) -> None:
    world = pipeline_world
    world.simulator.add_fault(Fault(route=f"POST {CONTACTS}", kind="status", status=400, times=None))
    code, out = run("sync", "--entity", "account")
    posts = world.simulator.request_count("POST", CONTACTS)
    assert posts > 0, "the demo accounts get auto-created contacts"
    failed = _failed(world, "auto_contact")
    assert len(failed) == posts
    assert code == 1, out
    assert _row(out, "account")["failed"] == "0"
    row = _row(out, "auto_contact")
    assert (row["created"], row["failed"]) == ("0", str(posts))
    assert f"\n{posts} failed record(s) (first {posts}):" in out
    assert sorted(line.split()[1] for line in _failure_lines(out)) == failed
    assert all(line.startswith("  auto_contact ") and "[validation]" in line for line in _failure_lines(out))
    assert f"check account/no_failed_records failed: {posts} records failed in this run" in out

    # Next run: the same data is held back (no write), but the run is not clean: exit 3.
    world.simulator.clear_faults()
    world.simulator.reset_log()
    code, out = run("sync", "--entity", "account")
    assert code == 3, out
    assert world.simulator.request_count("POST", CONTACTS) == 0
    assert world.simulator.request_count("GET", CONTACTS) == 0  # held back: not even looked up
    assert _row(out, "auto_contact")["skipped"] == str(posts)
    assert _row(out, "auto_contact")["api_calls"] == "0"
    assert _row(out, "auto_contact")["failed"] == "0"
    assert (f"check account/no_failed_records failed: {posts} records from earlier runs still wait "
            "in failed_records") in out

    # retry-failed really retries them: one POST each, three contact lookups, nothing else written.
    world.simulator.reset_log()
    code, out = run("retry-failed", "--entity", "auto_contact")
    assert code == 0, out
    assert f"retrying {posts} failed record(s)" in out
    assert "0 record(s) still failed" in out
    assert _row(out, "auto_contact")["created"] == str(posts)
    assert int(_row(out, "auto_contact")["api_calls"]) == posts + 3
    assert world.simulator.request_count("POST", CONTACTS) == posts
    assert world.simulator.request_count("GET", CONTACTS) == 3
    assert world.writes() == posts
    assert _failed(world, "auto_contact") == []
    created = {c["name"] for c in world.simulator.all("contacts")}
    assert {f"crm_acc_contact_{sid}" for sid in failed} <= created

    world.simulator.reset_log()
    code, out = run("sync", "--entity", "account")
    assert code == 0, out
    assert world.writes() == 0


def _sync_accounts_with_contact_posts_refused(world: PipelineWorld) -> int:
    """Sync accounts while Daktela refuses every contact POST (400), then lift the fault; the POSTs tried."""
    world.simulator.add_fault(Fault(route=f"POST {CONTACTS}", kind="status", status=400, times=None))
    assert run("sync", "--entity", "account")[0] == 1
    posts = world.simulator.request_count("POST", CONTACTS)
    world.simulator.clear_faults()
    world.simulator.reset_log()
    return posts


def test_retry_failed_account_includes_its_auto_contacts(pipeline_world: PipelineWorld) -> None:
    world = pipeline_world
    posts = _sync_accounts_with_contact_posts_refused(world)
    code, out = run("retry-failed", "--entity", "account")
    assert code == 0, out
    assert f"retrying {posts} failed record(s)" in out
    assert world.simulator.request_count("POST", CONTACTS) == posts
    assert _failed(world, "auto_contact") == []


def test_retry_failed_of_everything_retries_auto_contacts(pipeline_world: PipelineWorld) -> None:
    world = pipeline_world
    posts = _sync_accounts_with_contact_posts_refused(world)
    code, out = run("retry-failed")
    assert code == 0, out
    assert f"retrying {posts} failed record(s)" in out
    assert world.simulator.request_count("POST", CONTACTS) == posts
    assert StagingStore(world.paths.staging).failed_records() == []


def test_transient_auto_contact_failures_count_too(pipeline_world: PipelineWorld) -> None:
    world = pipeline_world
    world.simulator.add_fault(Fault(route=f"POST {CONTACTS}", kind="status", status=503, times=None))
    code, out = run("sync", "--entity", "account")
    assert code == 1, out
    failed = _failed(world, "auto_contact")
    assert failed and _row(out, "auto_contact")["failed"] == str(len(failed))
    assert all("[transient]" in line for line in _failure_lines(out))


def test_held_back_validation_failures_exit_3_until_retried(pipeline_world: PipelineWorld) -> None:
    world = pipeline_world
    _valid_phones(world)
    assert run("sync", "--entity", "account")[0] == 0
    world.simulator.add_fault(Fault(route=f"POST {CONTACTS}", kind="status", status=400, times=None))
    code, out = run("sync", "--entity", "contact")
    assert code == 1, out
    failed = _failed(world, "contact")
    assert failed and _row(out, "contact")["failed"] == str(len(failed))
    # Accounts the contacts reference but Daktela lacked were synced on the fly; their
    # auto-contacts hit the same fault and show up in this run too.
    on_the_fly = _failed(world, "auto_contact")
    assert on_the_fly and _row(out, "auto_contact")["failed"] == str(len(on_the_fly))
    assert (f"check contact/no_failed_records failed: {len(failed)} records failed in this run; "
            f"{len(on_the_fly)} account records synced on the fly (referenced by this batch) failed") in out
    world.simulator.clear_faults()

    for _ in range(2):  # every later run says so, without writing
        world.simulator.reset_log()
        code, out = run("sync", "--entity", "contact")
        assert code == 3, out
        assert world.writes() == 0
        assert _row(out, "contact")["failed"] == "0"
        assert _row(out, "contact")["skipped"] == str(len(failed))
        assert (f"check contact/no_failed_records failed: {len(failed)} records from earlier runs still wait "
                "in failed_records (retry: `crmsync retry-failed`)") in out
    code, out = run("sync", "--entity", "account")
    assert code == 3, out
    assert f"{len(on_the_fly)} records from earlier runs still wait" in out

    code, out = run("retry-failed", "--entity", "contact")
    assert code == 0, out
    code, out = run("sync", "--entity", "contact")
    assert code == 0, out
    assert "no_failed_records failed" not in out
    assert run("sync", "--entity", "account")[0] == 3  # its auto-contacts still wait
    assert run("retry-failed", "--entity", "account")[0] == 0
    assert run("sync", "--entity", "account")[0] == 0


def test_quarantined_records_are_listed_once(pipeline_world: PipelineWorld) -> None:
    world = pipeline_world
    _valid_phones(world)
    with sqlite3.connect(world.paths.crm) as conn:
        conn.execute("UPDATE contacts SET account_id = 999, updated_at = ? WHERE id IN (1, 2)",
                      (datetime.now(UTC).isoformat(),))
    code, out = run("sync", "--entity", "account", "--entity", "contact")
    assert code == 1, out
    assert _row(out, "contact")["failed"] == "2"
    reason = "[validation]  [relation] account_id='999': no account with id='999' in the CRM"
    assert "\n2 failed record(s) (first 2):\n" in out
    assert _failure_lines(out) == [f"  contact 1  {reason}", f"  contact 2  {reason}"]


def test_help_documents_the_exit_codes() -> None:
    for command in ("sync", "retry-failed", "plan"):
        code, out = run(command, "--help")
        assert code == 0
        assert "Exit codes:" in out
    out = run("sync", "--help")[1]
    assert "  0  clean: nothing failed and nothing waits in failed_records" in out
    assert "  1  records failed in this run (or the command could not run)" in out
    assert "  3  nothing failed in this run, but records wait in failed_records" in out


def test_retry_failed_clears_records_gone_from_the_source(pipeline_world: PipelineWorld) -> None:
    """A failed record deleted in the CRM has nothing left to sync: retry-failed ledgers it as
    skipped ('gone') and removes it, instead of holding every later run at exit 3."""
    world = pipeline_world
    world.simulator.add_fault(Fault(route=f"POST {CONTACTS}", kind="status", status=400, times=None))
    assert run("sync", "--entity", "account")[0] == 1
    failed = _failed(world, "auto_contact")
    assert len(failed) >= 2
    gone = failed[0]
    with sqlite3.connect(world.paths.crm) as conn:
        conn.execute("DELETE FROM accounts WHERE id = ?", (int(gone),))
    world.simulator.clear_faults()
    world.simulator.reset_log()
    code, out = run("retry-failed", "--entity", "auto_contact")
    assert code == 0, out
    assert "0 record(s) still failed" in out
    assert _row(out, "auto_contact")["created"] == str(len(failed) - 1)
    assert world.simulator.request_count("POST", CONTACTS) == len(failed) - 1
    assert _failed(world, "auto_contact") == []
    ledger = StagingStore(world.paths.staging).ledger_rows(entity="auto_contact")
    [row] = [r for r in ledger if r["source_id"] == gone and r["note"] == "gone"]
    assert row["outcome"] == "skipped"
    assert row["error_message"] == ("not found at the source: the account no longer exists; "
                                    "removed from failed_records (was: validation)")
    assert run("sync", "--entity", "account")[0] == 0


def test_retry_failed_retires_auto_contacts_once_auto_create_is_off(pipeline_world: PipelineWorld) -> None:
    world = pipeline_world
    world.simulator.add_fault(Fault(route=f"POST {CONTACTS}", kind="status", status=400, times=None))
    assert run("sync", "--entity", "account")[0] == 1
    failed = _failed(world, "auto_contact")
    assert failed
    config = yaml.safe_load(world.paths.config.read_text(encoding="utf-8"))
    del config["sync"]["entities"]["account"]["auto_create_contact"]
    world.paths.config.write_text(yaml.safe_dump(config), encoding="utf-8")
    world.simulator.clear_faults()

    code, out = run("sync", "--entity", "account")
    assert code == 3, out  # they still wait: nothing hides them
    world.simulator.reset_log()
    code, out = run("retry-failed", "--entity", "account")
    assert code == 0, out
    assert "0 record(s) still failed" in out
    assert world.writes() == 0
    assert _failed(world, "auto_contact") == []
    ledger = StagingStore(world.paths.staging).ledger_rows(entity="auto_contact")
    retired = sorted(r["source_id"] for r in ledger if r["note"] == "auto_create_contact off")
    assert retired == failed
    assert run("sync", "--entity", "account")[0] == 0
