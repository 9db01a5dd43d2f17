"""Issue 10, section 1, end to end: a sync over the simulator when Daktela answers badly.

Real engine, real DuckDB staging, real SQLite CRM, the simulator over HTTP with faults; every
test asserts the exact API calls and what ended in Daktela, the ledger and failed_records.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from datetime import UTC, datetime, timedelta

import pytest

from crmsync_pipelines.daktela import DaktelaAuthError
from crmsync_pipelines.engine import Window
from crmsync_pipelines.engine.context import EngineSettings
from crmsync_pipelines.simulator import Fault, run_simulator
from crmsync_pipelines.staging import StagingStore
from crmsync_tests.fixtures.engine import EngineEnv, _env
from crmsync_tests.fixtures.faults import crm_activity_ids, crm_ids, fast_engine, tune
from crmsync_tests.fixtures.pipeline import PipelineWorld

ALL = Window(None, None)
CONTACTS = "/api/v6/contacts.json"


def _outcomes(engine: object, run_id: str) -> dict[tuple[str, str], int]:
    return {(r["entity"], r["outcome"]): r["count"] for r in engine.staging.ledger_summary(run_id)}  # type: ignore[attr-defined]


def test_token_revoked_mid_run_stops_writing_and_the_next_run_completes(engine_env: EngineEnv) -> None:
    config = tune(engine_env.write_config(), write_concurrency=1)
    engine = fast_engine(config)
    engine.sync("account", ALL, "run-0")
    total = len(crm_ids(engine_env, "contacts"))
    engine_env.sim.reset_log()
    # The token is revoked after the 10th create: every later request with it is refused.
    engine_env.sim.add_fault(Fault(route=f"POST {CONTACTS}", kind="status", status=401, after=10, times=None))

    load = engine.sync("contact", ALL, "run-1")[-1]

    assert engine_env.sim.request_count("POST", CONTACTS) == 11  # 10 created, 1 refused, then nothing
    assert engine_env.sim.request_count("PUT") == 0
    assert engine_env.sim.request_log[-1].status == 401  # the refused create was the last request
    assert engine_env.sim.count("contacts") == 10
    assert load.counts.get("created") == 10 and load.counts.get("failed") == total - 10
    failed = engine.staging.failed_records("contact")
    assert len(failed) == total - 10 and {f["error_class"] for f in failed} == {"auth"}
    assert sum("not sent" in f["error_message"] for f in failed) == total - 11
    assert engine_env.sim.token not in " ".join(f["error_message"] for f in failed)
    assert not next(c for c in load.checks if c.name == "no_failed_records").passed

    # A later run with a valid token writes exactly the records that were held, even when its
    # window no longer contains them (the next partition): auth failures are retried by themselves.
    engine_env.sim.clear_faults()
    engine_env.sim.reset_log()
    again = engine.sync("contact", Window(datetime.now(UTC) + timedelta(days=1), None), "run-2")[-1]
    assert again.counts.get("retried") == total - 10
    assert again.counts.get("created") == total - 10 and again.counts.get("failed", 0) == 0
    assert engine_env.sim.request_count("POST", CONTACTS) == total - 10
    assert engine.staging.failed_records() == []
    assert {c["name"] for c in engine_env.sim.all("contacts")} == {f"crm_{i}" for i in crm_ids(engine_env, "contacts")}


def test_a_token_that_never_worked_fails_the_stage_and_writes_nothing(engine_env: EngineEnv) -> None:
    """A wrong token in the configuration is not the records' fault: nothing is filed."""
    config = engine_env.write_config()
    fast_engine(config).sync("account", ALL, "run-0")
    engine_env.sim.reset_log()
    engine_env.sim.add_fault(Fault(route="*", kind="status", status=401, times=None))
    engine = fast_engine(config)  # a new process: the token has not worked for it yet
    with pytest.raises(DaktelaAuthError):
        engine.sync("contact", ALL, "run-1")
    assert engine_env.sim.request_count() == 1
    assert engine_env.sim.request_count("POST") == 0
    assert engine.staging.failed_records("contact") == []


def test_token_revoked_between_entities_files_the_next_entity_without_calls(engine_env: EngineEnv) -> None:
    engine = fast_engine(engine_env.write_config())
    engine.sync("account", ALL, "run-1")
    engine_env.sim.reset_log()
    engine_env.sim.add_fault(Fault(route="*", kind="status", status=401, times=None))
    load = engine.sync("contact", ALL, "run-1")[-1]
    total = len(crm_ids(engine_env, "contacts"))
    assert engine_env.sim.request_count() == 1  # the one refused lookup
    assert load.counts.get("failed") == total
    assert {f["error_class"] for f in engine.staging.failed_records("contact")} == {"auth"}


def test_create_that_timed_out_and_landed_late_is_recorded_as_created(engine_env: EngineEnv) -> None:
    config = tune(engine_env.write_config(), write_concurrency=1, timeout_s=2.0)
    engine = fast_engine(config)
    engine.sync("account", ALL, "run-0")
    engine_env.sim.reset_log()
    # POST 1 lands 3 s after it was sent (after the client's 2 s timeout and its lookup);
    # the re-POST reaches the server 1.5 s after it was sent, when POST 1 is stored.
    # Every step has 0.5 s of slack, so a busy machine does not change the order.
    engine_env.sim.add_fault(Fault(route=f"POST {CONTACTS}", kind="slow", delay_s=3.0))
    engine_env.sim.add_fault(Fault(route=f"POST {CONTACTS}", kind="slow", delay_s=1.5))
    total = len(crm_ids(engine_env, "contacts"))

    load = engine.sync("contact", ALL, "run-1")[-1]

    assert load.counts.get("created") == total and load.counts.get("failed", 0) == 0
    assert [r.status for r in engine_env.sim.request_log if r.method == "POST"][:2] == [201, 400]
    assert engine.staging.failed_records() == []
    assert engine_env.sim.count("contacts") == total
    assert engine_env.sim.request_count("POST", CONTACTS) == total + 1
    # Nothing is held back: the next run has nothing to write.
    engine_env.sim.reset_log()
    assert engine.sync("contact", ALL, "run-2")[-1].counts.get("unchanged") == total
    assert engine_env.sim.request_count("POST") + engine_env.sim.request_count("PUT") == 0


def test_empty_200_on_a_list_read_does_not_abort_the_entity(engine_env: EngineEnv) -> None:
    engine = fast_engine(engine_env.write_config())
    engine.sync("account", ALL, "run-0")
    engine_env.sim.reset_log()
    engine_env.sim.add_fault(Fault(route=f"GET {CONTACTS}", kind="status", status=200, times=2))
    load = engine.sync("contact", ALL, "run-1")[-1]
    total = len(crm_ids(engine_env, "contacts"))
    assert load.counts.get("created") == total and load.counts.get("failed", 0) == 0
    assert [r.status for r in engine_env.sim.request_log if r.path == CONTACTS][:3] == [200, 200, 200]
    assert [r.fault for r in engine_env.sim.request_log if r.path == CONTACTS][:3] == ["status", "status", None]
    assert engine.staging.failed_records() == []


def test_activities_sync_on_an_instance_that_refuses_date_filters(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with run_simulator(seed="demo", reject_activity_date_filters=True) as sim:
        env = _env(tmp_path, sim, monkeypatch)  # type: ignore[arg-type]
        engine = fast_engine(env.write_config(accounts=False, contacts=False, activities=True))
        now = datetime.now(UTC)
        times = {a["name"]: engine.ctx.daktela.from_instance_time(a["time"]) for a in sim.all("activities")}
        cut = sorted(times.values())[len(times) // 2]
        end = now + timedelta(days=1)
        window = Window(cut, end)
        expected = {name for name, at in times.items() if cut <= at < end}
        assert 0 < len(expected) < len(times)
        with caplog.at_level(logging.WARNING, logger="crmsync.daktela"):
            reports = engine.sync("activity", window, "run-1")
        assert reports[0].counts["extracted"] == len(expected)
        assert reports[-1].counts.get("created") == len(expected)
        assert crm_activity_ids(env) == expected
        refused = [r for r in sim.request_log if r.status == 400]
        assert len(refused) == 1  # one refused request for the whole run (seven activity types)
        assert len([r for r in caplog.records if "refuses date filters" in r.getMessage()]) == 1
        assert engine.staging.failed_records() == []


def test_retry_after_on_a_503_is_waited_during_a_sync(engine_env: EngineEnv) -> None:
    engine = fast_engine(engine_env.write_config())
    engine.sync("account", ALL, "run-0")
    engine_env.sim.add_fault(Fault(route=f"GET {CONTACTS}", kind="status", status=503, retry_after="1", times=2))
    started = time.monotonic()
    load = engine.sync("contact", ALL, "run-1")[-1]
    assert time.monotonic() - started >= 1.9
    assert load.counts.get("failed", 0) == 0 and engine.staging.failed_records() == []
    assert engine_env.sim.count("contacts") == len(crm_ids(engine_env, "contacts"))


def test_force_full_rechecks_a_record_held_as_validation_that_is_in_daktela(engine_env: EngineEnv) -> None:
    """The state older runs left behind: a create refused as a duplicate although our own
    first POST had landed, held as ``validation``. A verifying run finds it and clears it."""
    engine = fast_engine(engine_env.write_config())
    engine.sync("account", ALL, "run-0")
    engine_env.sim.add_fault(Fault(route=f"POST {CONTACTS}", kind="status", status=400, apply_after=True))
    engine.sync("contact", ALL, "run-1")
    held = engine.staging.failed_records("contact")
    assert [f["error_class"] for f in held] == ["validation"]
    landed = held[0]["lookup_key"]
    assert engine_env.sim.get("contacts", landed) is not None  # it is in Daktela all the same

    engine_env.sim.reset_log()
    again = engine.sync("contact", ALL, "run-2")[-1]
    assert again.counts.get("skipped") == 1 and engine_env.sim.request_count() == 0  # held back, as documented

    full = engine.sync("contact", ALL, "run-3", verify=True)[-1]
    assert full.counts.get("failed", 0) == 0 and full.counts.get("skipped", 0) == 0
    assert engine.staging.failed_records() == []
    assert engine_env.sim.request_count("POST") == 0
    assert engine_env.sim.count("contacts") == len(crm_ids(engine_env, "contacts"))


def test_token_revoked_between_chunks_files_the_rest_without_calls(engine_env: EngineEnv) -> None:
    """Refused on a lookup of the second chunk: nothing more is asked, the rest waits as auth."""
    engine = fast_engine(tune(engine_env.write_config(), write_concurrency=1), settings=EngineSettings(chunk_size=10))
    engine.sync("account", ALL, "run-0")
    engine_env.sim.reset_log()
    engine_env.sim.add_fault(Fault(route=f"GET {CONTACTS}", kind="status", status=401, after=1, times=None))
    total = len(crm_ids(engine_env, "contacts"))

    load = engine.sync("contact", ALL, "run-1")[-1]

    assert engine_env.sim.request_count("GET", CONTACTS) == 2  # chunk 1 looked up, chunk 2 refused
    assert engine_env.sim.request_count("POST", CONTACTS) == 10
    assert (load.counts.get("created"), load.counts.get("failed")) == (10, total - 10)
    assert {f["error_class"] for f in engine.staging.failed_records("contact")} == {"auth"}
    engine_env.sim.clear_faults()
    assert engine.sync("contact", ALL, "run-2")[-1].counts.get("created") == total - 10
    assert engine.staging.failed_records() == []


def test_the_cli_shows_a_revoked_token_and_the_next_run_is_clean(pipeline_world: PipelineWorld) -> None:
    """Exit code, summary and failure lines of `crmsync sync` when the token is revoked mid-run."""
    from crmsync_tests.test_cli_sync import _row, run

    world = pipeline_world
    with sqlite3.connect(world.paths.crm) as conn:  # the demo CRM has phones that never map
        conn.execute("UPDATE contacts SET phone = '+420 601 123 456'")
    assert run("sync", "--entity", "account")[0] == 0
    world.simulator.reset_log()
    world.simulator.add_fault(Fault(route=f"POST {CONTACTS}", kind="status", status=401, after=5, times=None))
    code, out = run("sync", "--entity", "contact")
    assert code == 1, out
    posts = [r.status for r in world.simulator.request_log if (r.method, r.path) == ("POST", CONTACTS)]
    assert posts.count(201) == 5
    # Refused: the writes already on the wire (write_concurrency 4), plus at most one of the
    # auto-contact stage of accounts synced on the fly; then nothing.
    assert 1 <= posts.count(401) <= 4 + 1 and len(posts) == 5 + posts.count(401)
    failed = StagingStore(world.paths.staging).failed_records("contact")
    assert failed and {f["error_class"] for f in failed} == {"auth"}
    assert _row(out, "contact")["failed"] == str(len(failed))
    assert "[auth]" in out and world.simulator.token not in out

    # Contacts of accounts synced on the fly were auto-created in the same stage: refused too.
    auto = StagingStore(world.paths.staging).failed_records("auto_contact")
    assert {f["error_class"] for f in auto} <= {"auth"}

    world.simulator.clear_faults()
    world.simulator.reset_log()
    code, out = run("sync", "--entity", "account", "--entity", "contact")
    assert code == 0, out
    assert world.simulator.request_count("POST", CONTACTS) == len(failed) + len(auto)
    assert StagingStore(world.paths.staging).failed_records() == []
