"""Webhook events are never stranded or hidden (issue 10 §2-3), over a real Dagster instance,
the simulator and the demo CRM:

- events whose record does not exist end ``failed`` ("not found at the source"), fail their
  run, and show in the run's metadata, ``/healthz`` and ``crmsync inbox list``;
- events whose run failed are re-requested, at most ``max_attempts`` times, then ``failed``;
- events whose run died (kill -9: the run stays STARTED, its lease stops being renewed) or
  was never launched are re-requested once the lease lapses; a run waiting to start keeps it;
- ``crmsync inbox requeue`` puts failed events back.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pytest
from click.testing import CliRunner

from crmsync_pipelines.cli.main import cli
from crmsync_pipelines.defs.webhooks import CLAIM_TAG, InboxResource, webhook_inbox_sensor, webhook_sync
from crmsync_pipelines.simulator import Fault
from crmsync_pipelines.staging import StagingStore
from crmsync_pipelines.webhooks.app import create_app
from crmsync_pipelines.webhooks.inbox import Inbox
from crmsync_pipelines.webhooks.server import BackgroundServer
from crmsync_tests.fixtures.pipeline import PipelineWorld

pytestmark = pytest.mark.slow


def _inbox_resource(world: PipelineWorld, **settings: Any) -> InboxResource:
    return InboxResource(config_path=str(world.paths.config), **settings)


def _resources(world: PipelineWorld, inbox: InboxResource) -> dict[str, Any]:
    return {**world.resources(), "webhook_inbox": inbox}


def _tick(instance: dg.DagsterInstance, inbox: InboxResource) -> list[dg.RunRequest]:
    result = webhook_inbox_sensor(
        dg.build_sensor_context(instance=instance, resources={"webhook_inbox": inbox})
    )
    if isinstance(result, dg.SkipReason):
        return []
    assert isinstance(result, dg.SensorResult)
    return list(result.run_requests or [])


def _execute(instance: dg.DagsterInstance, world: PipelineWorld, inbox: InboxResource,
             request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    return webhook_sync.execute_in_process(
        run_config=request.run_config, instance=instance, resources=_resources(world, inbox),
        tags=request.tags, raise_on_error=False,
    )


def _add(world: PipelineWorld, event: str, name: str, *, source: str = "daktela") -> int:
    prefix = event.split("_", 1)[0]
    entity, kind = (prefix, None) if prefix in ("contact", "account") else ("activity", prefix)
    with Inbox(world.paths.inbox) as inbox:
        seq, _ = inbox.add(source=source, event=event, entity=entity, activity_type=kind,  # type: ignore[arg-type]
                           record_id=name, body={"event": event, "name": name})
    return seq


def _events(world: PipelineWorld) -> dict[int, tuple[str, str | None]]:
    with Inbox(world.paths.inbox) as inbox:
        return {e.seq: (e.status, e.error) for e in inbox.events()}


def _crm_calls(world: PipelineWorld, name: str) -> int:
    with sqlite3.connect(world.paths.crm) as con:
        return int(con.execute("SELECT COUNT(*) FROM activities WHERE external_id = ?", [name]).fetchone()[0])


def _a_call(world: PipelineWorld) -> str:
    calls = [a for a in world.simulator.all("activities") if a.get("type") == "CALL"]
    assert calls, "the demo seed has calls"
    return str(calls[0]["name"])


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def _failure_metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    data = failure.step_failure_data.user_failure_data
    assert data is not None
    return {key: getattr(value, "value", value) for key, value in data.metadata.items()}


def test_events_for_records_that_do_not_exist_fail_visibly(
    pipeline_world: PipelineWorld, dagster_instance: dg.DagsterInstance
) -> None:
    world = pipeline_world
    call = _a_call(world)
    placeholder = _add(world, "call_close", "{{name}}")        # a Daktela test delivery
    real = _add(world, "call_close", call)
    unknown = _add(world, "call_close", "no_such_call_0001")
    gone_contact = _add(world, "contact_update", "crm_999999")  # Daktela name of a CRM id that does not exist
    inbox = _inbox_resource(world)

    requests = _tick(dagster_instance, inbox)
    assert [r.run_key for r in requests] == [f"webhook:activity:{placeholder}-{unknown}",
                                             f"webhook:contact:{gone_contact}-{gone_contact}"]
    activity_run = _execute(dagster_instance, world, inbox, requests[0])
    contact_run = _execute(dagster_instance, world, inbox, requests[1])

    # The run fails (alerting and the run list see it) although every outcome was recorded.
    assert not activity_run.success and not contact_run.success
    assert _crm_calls(world, call) == 1
    events = _events(world)
    assert events[placeholder] == ("failed", "not found at the source: activity '{{name}}' does not exist in Daktela")
    assert events[real] == ("processed", None)
    assert events[unknown] == ("failed",
                               "not found at the source: activity 'no_such_call_0001' does not exist in Daktela")
    assert events[gone_contact] == ("failed", "not found at the source: contact '999999' does not exist in the CRM")
    metadata = _failure_metadata(activity_run)
    assert (metadata["inbox_events"], metadata["inbox_processed"], metadata["inbox_failed"],
            metadata["inbox_not_found"]) == (3, 1, 2, 2)
    assert [(s["seq"], s["record_id"]) for s in metadata["inbox_failed_sample"]] == [
        (placeholder, "{{name}}"), (unknown, "no_such_call_0001")]
    assert _failure_metadata(contact_run)["inbox_not_found"] == 1

    # /healthz counts them.
    with Inbox(world.paths.inbox) as box:
        app = create_app(inbox=box, secret="s3cret", enabled_entities={"activity", "contact"},
                         activity_types={"call"})
        with BackgroundServer(app) as server:
            health = httpx.get(f"{server.url}/healthz", timeout=10).json()
    assert health == {"status": "ok", "inbox": {"pending": 0, "processed": 1, "failed": 3, "ignored": 0,
                                                 "recorded_delete": 0, "leased": 0}}

    # The CLI lists them with the reason ...
    code, out = _cli("inbox", "list", "--status", "failed")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == "inbox: pending 0, processed 1, failed 3, ignored 0, recorded_delete 0 (leased 0)"
    rows = [line.split(None, 8) for line in lines[3:]]
    assert [(int(r[0]), r[2], r[5]) for r in rows] == [
        (placeholder, "failed", "{{name}}"), (unknown, "failed", "no_such_call_0001"),
        (gone_contact, "failed", "crm_999999")]
    assert all(r[8].startswith("not found at the source: ") for r in rows)

    # ... and re-queues one: the next tick hands it to a new run (a fresh run key).
    code, out = _cli("inbox", "requeue", str(placeholder))
    assert (code, out) == (0, f"requeued 1 event(s): {placeholder}\n")
    [again] = _tick(dagster_instance, inbox)
    assert (again.run_key or '').startswith(f"webhook:activity:{placeholder}-{placeholder}:attempt1:")
    assert not _execute(dagster_instance, world, inbox, again).success
    assert _events(world)[placeholder][0] == "failed"


def test_requeue_refuses_what_it_cannot_do(pipeline_world: PipelineWorld) -> None:
    world = pipeline_world
    code, out = _cli("inbox", "list")
    assert code == 1 and f"no webhook inbox at {world.paths.inbox}" in out
    seq = _add(world, "call_close", "c1")
    code, out = _cli("inbox", "list", "--status", "failed")
    assert (code, out.splitlines()[1:]) == (0, ["no failed events"])
    code, out = _cli("inbox", "requeue")
    assert code == 2 and "give the seqs of failed events, or --all-failed" in out
    code, out = _cli("inbox", "requeue", str(seq), "99")
    assert code == 1
    assert "no event with seq 99; seq 1 is pending, not failed" in out
    code, out = _cli("inbox", "requeue", "--all-failed")
    assert (code, out) == (0, "requeued 0 event(s)\n")


def test_a_failing_run_is_re_requested_then_its_events_fail_after_max_attempts(
    pipeline_world: PipelineWorld, dagster_instance: dg.DagsterInstance
) -> None:
    world = pipeline_world
    call = _a_call(world)
    seq = _add(world, "call_close", call)
    inbox = _inbox_resource(world, max_attempts=3)
    world.simulator.add_fault(Fault(route="GET /api/v6/activities.json", kind="status", status=401, times=None))
    keys: list[str] = []
    for attempt in (1, 2, 3):
        [request] = _tick(dagster_instance, inbox)
        keys.append(request.run_key or "")
        result = _execute(dagster_instance, world, inbox, request)
        assert not result.success
        status, error = _events(world)[seq]
        assert status == ("pending" if attempt < 3 else "failed")
        assert error is not None and error.startswith("auth: ") and f"[run {result.run_id}]" in error
    assert keys[0] == f"webhook:activity:{seq}-{seq}"
    assert keys[1].startswith(f"webhook:activity:{seq}-{seq}:attempt2:")
    assert keys[2].startswith(f"webhook:activity:{seq}-{seq}:attempt3:")
    assert "(gave up after 3 attempts; requeue with `crmsync inbox requeue`)" in (_events(world)[seq][1] or "")
    assert _tick(dagster_instance, inbox) == []  # no fourth attempt

    world.simulator.clear_faults()
    assert _cli("inbox", "requeue", "--all-failed") == (0, f"requeued 1 event(s): {seq}\n")
    [request] = _tick(dagster_instance, inbox)
    assert _execute(dagster_instance, world, inbox, request).success
    assert _events(world)[seq] == ("processed", None)
    assert _crm_calls(world, call) == 1


def test_a_dead_run_s_events_are_re_requested_when_its_lease_lapses(
    pipeline_world: PipelineWorld, dagster_instance: dg.DagsterInstance
) -> None:
    world = pipeline_world
    call = _a_call(world)
    seq = _add(world, "call_close", call)
    inbox = _inbox_resource(world, lease_s=1.0)
    [request] = _tick(dagster_instance, inbox)
    # The run started and took the lease, then its process vanished: the run stays STARTED.
    run = dagster_instance.create_run_for_job(webhook_sync, run_config=request.run_config, tags=request.tags,
                                              status=dg.DagsterRunStatus.STARTED)
    with Inbox(world.paths.inbox) as box:
        assert box.start_lease([seq], request.run_key or "", run.run_id) == [seq]
    assert _tick(dagster_instance, inbox) == []  # the lease is fresh: the run may still be working
    time.sleep(1.1)
    [again] = _tick(dagster_instance, inbox)
    assert (again.run_key or '').startswith(f"webhook:activity:{seq}-{seq}:attempt2:")
    with Inbox(world.paths.inbox) as box:
        [event] = box.get([seq])
    assert (event.status, event.lease_token, event.attempts) == ("pending", again.run_key, 2)
    assert f"run {run.run_id} (STARTED) stopped renewing its lease 1s ago" in (event.error or "")
    assert _execute(dagster_instance, world, inbox, again).success
    assert _events(world)[seq][0] == "processed"
    assert _crm_calls(world, call) == 1


def test_a_run_not_started_yet_keeps_its_lease_and_a_never_launched_one_loses_it(
    pipeline_world: PipelineWorld, dagster_instance: dg.DagsterInstance
) -> None:
    world = pipeline_world
    queued_seq = _add(world, "call_close", "c_queued")
    inbox = _inbox_resource(world, lease_s=0.5)
    [queued] = _tick(dagster_instance, inbox)
    # Created, waiting for a slot (NOT_STARTED; QUEUED behaves the same): it has not had its chance.
    dagster_instance.create_run_for_job(webhook_sync, run_config=queued.run_config, tags=queued.tags,
                                        status=dg.DagsterRunStatus.NOT_STARTED)
    lost_seq = _add(world, "contact_update", "crm_1")
    [lost] = _tick(dagster_instance, inbox)  # its RunRequest is never launched
    assert lost.tags[CLAIM_TAG] == lost.run_key
    time.sleep(0.6)
    [again] = _tick(dagster_instance, inbox)
    assert (again.run_key or '').startswith(f"webhook:contact:{lost_seq}-{lost_seq}:attempt2:")
    with Inbox(world.paths.inbox) as box:
        queued_event, lost_event = box.get([queued_seq, lost_seq])
    assert (queued_event.lease_token, queued_event.attempts) == (queued.run_key, 1)
    assert f"no run was launched for {lost.run_key} within 0.5s" == lost_event.error


_KILLED_RUN = """
import json, sys
import dagster as dg
from crmsync_pipelines.defs.resources import default_sync_engine
from crmsync_pipelines.defs.webhooks import InboxResource, webhook_sync

config_path, run_config, tags = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
with dg.DagsterInstance.get() as instance:
    webhook_sync.execute_in_process(
        run_config=run_config, tags=tags, instance=instance,
        resources={"sync_engine": default_sync_engine(),
                   "webhook_inbox": InboxResource(config_path=config_path, lease_s=1.5)},
    )
"""


def test_sigkill_of_a_webhook_sync_run_does_not_strand_its_events(
    pipeline_world: PipelineWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = pipeline_world
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    call = _a_call(world)
    seq = _add(world, "call_close", call)
    inbox = _inbox_resource(world, lease_s=1.5)
    with dg.DagsterInstance.get() as instance:
        [request] = _tick(instance, inbox)
    world.simulator.set_latency(20_000)  # the run hangs on its first Daktela read
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_RUN, str(world.paths.config), json.dumps(request.run_config),
         json.dumps(dict(request.tags))],
        env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            with Inbox(world.paths.inbox) as box:
                [event] = box.get([seq])
            if event.lease_run_id is not None:
                break
            assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, "the run did not start"
            time.sleep(0.1)
        time.sleep(1.0)  # mid-run: at least one lease renewal
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
        world.simulator.set_latency(0)
    run_id = event.lease_run_id

    with dg.DagsterInstance.get() as instance:
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.STARTED  # nobody will ever finish it
        with Inbox(world.paths.inbox) as box:
            [event] = box.get([seq])
        assert (event.status, event.lease_run_id) == ("pending", run_id)
        deadline = time.monotonic() + 10
        requests = _tick(instance, inbox)
        while not requests:
            assert time.monotonic() < deadline, "the dead run's lease never lapsed"
            time.sleep(0.3)
            requests = _tick(instance, inbox)
        [again] = requests
        assert (again.run_key or '').startswith(f"webhook:activity:{seq}-{seq}:attempt2:")
        result = _execute(instance, world, inbox, again)
        assert result.success
    assert _events(world)[seq] == ("processed", None)
    assert _crm_calls(world, call) == 1


def test_events_for_held_back_records_and_failed_auto_contacts_fail(
    pipeline_world: PipelineWorld, dagster_instance: dg.DagsterInstance
) -> None:
    """A record that stays in failed_records is not 'processed': held back (same data as its failed
    attempt, so not even tried) or its auto-created contact failed in this run."""
    world = pipeline_world
    with sqlite3.connect(world.paths.crm) as conn:  # no contact that fails mapping
        conn.execute("UPDATE contacts SET phone = '+420 601 123 456'")
    assert _cli("sync", "--entity", "account")[0] == 0
    world.simulator.add_fault(Fault(route="POST /api/v6/contacts.json", kind="status", status=400, times=None))
    assert _cli("sync", "--entity", "contact")[0] == 1
    with sqlite3.connect(world.paths.crm) as conn:
        account_id = conn.execute("SELECT MIN(id) FROM accounts").fetchone()[0]
    failed_contacts = sorted(str(r["source_id"]) for r in StagingStore(world.paths.staging).failed_records("contact"))
    assert failed_contacts
    held = _add(world, "contact_update", f"crm_{failed_contacts[0]}")
    # The account changes so its auto-contact is tried again, and fails again (the fault is still on).
    with sqlite3.connect(world.paths.crm) as conn:
        conn.execute("UPDATE accounts SET email = 'changed@example.com', phone = '+420 602 000 111' WHERE id = ?",
                     (account_id,))
    account = _add(world, "account_update", f"crm_acc_{account_id}")
    inbox = _inbox_resource(world)
    requests = _tick(dagster_instance, inbox)
    results = [_execute(dagster_instance, world, inbox, r) for r in requests]
    assert [r.success for r in results] == [False, False]
    events = _events(world)
    assert events[held][0] == "failed"
    assert (events[held][1] or "").startswith("held back (same data as the failed attempt of run ")
    assert "validation: " in (events[held][1] or "")
    assert events[account][0] == "failed"
    assert (events[account][1] or "").startswith("auto_contact validation: ")
