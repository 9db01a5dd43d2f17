"""End to end: the simulator's emitter -> receiver -> inbox -> sensor -> webhook_sync job ->
engine.sync_ids -> the SQL demo CRM; the call lands exactly once, also after a second
delivery and a batch run."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from crmsync_pipelines.config import load_config
from crmsync_pipelines.crm.demo_data import create_demo_crm
from crmsync_pipelines.defs.resources import (
    CrmResource,
    CrmsyncConfigResource,
    DaktelaResource,
    StagingResource,
    SyncEngineResource,
)
from crmsync_pipelines.defs.webhooks import InboxResource, webhook_inbox_sensor, webhook_sync
from crmsync_pipelines.engine import SyncEngine, Window
from crmsync_pipelines.simulator import SimulatorHandle, run_simulator
from crmsync_pipelines.webhooks import Inbox
from crmsync_pipelines.webhooks.server import BackgroundServer, app_from_config

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SECRET = "e2e-webhook-secret"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[SimulatorHandle, Path, str]]:
    """The demo simulator, a demo CRM file, a sync.yaml, and the receiver wired to both."""
    with run_simulator(seed="demo") as sim:
        create_demo_crm(tmp_path / "crm.sqlite", accounts=5, contacts=20, seed=7)
        config_path = tmp_path / "sync.yaml"
        config_path.write_text(
            f"""
daktela: {{instance_url: "{sim.base_url}", access_token: "{sim.token}", database: default}}
crm: {{adapter: sql, path: crm.sqlite}}
staging: {{path: crmsync.duckdb}}
sync:
  entities:
    activity:
      enabled: true
      direction: cc_to_crm
      mapping_file: {REPO / "mappings/activities.yaml"}
      activity_types: [call, email, web, sms, fbm, wap, vbr]
webhook: {{secret: {SECRET}, inbox_path: inbox.sqlite}}
""",
            encoding="utf-8",
        )
        app, inbox = app_from_config(load_config(config_path))
        with BackgroundServer(app) as receiver:
            sim.configure_webhook(f"{receiver.url}/webhooks/daktela", SECRET)
            yield sim, config_path, receiver.url
            sim.configure_webhook(None)
        inbox.close()


def _resources(sim: SimulatorHandle, config_path: Path) -> dict[str, object]:
    return {
        "sync_engine": SyncEngineResource(
            config=CrmsyncConfigResource(config_path=str(config_path)),
            daktela=DaktelaResource(instance_url=sim.base_url, access_token=sim.token),
            crm=CrmResource(),
            staging=StagingResource(),
        ),
        "webhook_inbox": InboxResource(config_path=str(config_path)),
    }


def _crm_rows(config_path: Path, name: str) -> int:
    with sqlite3.connect(config_path.parent / "crm.sqlite") as conn:
        return int(conn.execute("SELECT COUNT(*) FROM activities WHERE external_id = ?", (name,)).fetchone()[0])


def _tick_and_run(
    instance: dg.DagsterInstance, sim: SimulatorHandle, config_path: Path, cursor: str | None
) -> tuple[str, list[dg.RunRequest]]:
    resources = _resources(sim, config_path)
    context = dg.build_sensor_context(
        cursor=cursor, instance=instance, resources={"webhook_inbox": resources["webhook_inbox"]}
    )
    result = webhook_inbox_sensor(context)
    assert isinstance(result, dg.SensorResult), result
    requests = list(result.run_requests or [])
    for request in requests:
        outcome = webhook_sync.execute_in_process(
            run_config=request.run_config, instance=instance, resources=resources, tags=request.tags
        )
        assert outcome.success
    assert result.cursor is not None
    return result.cursor, requests


def test_a_closed_call_lands_in_the_crm_exactly_once(world: tuple[SimulatorHandle, Path, str]) -> None:
    sim, config_path, _ = world
    open_calls = [a for a in sim.all("activities") if a.get("type") == "CALL" and a.get("action") != "CLOSE"]
    assert open_calls, "the demo seed has open calls"
    name = str(open_calls[0]["name"])
    sim.close_activity(name)
    assert sim.wait_webhooks(10)
    inbox_path = config_path.parent / "inbox.sqlite"
    with Inbox(inbox_path) as inbox:
        pending = inbox.pending_after(0)
    assert [(e.event, e.record_id) for e in pending] == [("call_close", name)]
    assert _crm_rows(config_path, name) == 0

    with dg.instance_for_test() as instance:
        cursor, requests = _tick_and_run(instance, sim, config_path, None)
        assert [r.run_key for r in requests] == [f"webhook:activity:{pending[0].seq}-{pending[0].seq}"]
        assert _crm_rows(config_path, name) == 1
        with Inbox(inbox_path) as inbox:
            [event] = inbox.get([pending[0].seq])
        assert event.status == "processed"
        assert event.run_id is not None and instance.get_run_by_id(event.run_id) is not None

        # A second delivery of the same notice (Daktela retried) is a new pending event
        # once the first was processed; syncing it again must not duplicate the call.
        sim.close_activity(name, description="follow-up note")
        assert sim.wait_webhooks(10)
        cursor, requests = _tick_and_run(instance, sim, config_path, cursor)
        assert len(requests) == 1
        assert _crm_rows(config_path, name) == 1
        # Ticking again requests nothing new.
        again = webhook_inbox_sensor(
            dg.build_sensor_context(
                cursor=cursor,
                instance=instance,
                resources={"webhook_inbox": InboxResource(config_path=str(config_path))},
            )
        )
        assert isinstance(again, dg.SkipReason)

    # The batch path sees the same record through the same ledger: still one row.
    now = datetime.now(UTC)
    engine = SyncEngine.from_config(load_config(config_path))
    try:
        engine.sync("activity", Window(now - timedelta(days=4), now + timedelta(hours=1)), run_id="batch-1")
    finally:
        engine.close()
    assert _crm_rows(config_path, name) == 1
    with sqlite3.connect(config_path.parent / "crm.sqlite") as conn:
        description = conn.execute("SELECT description FROM activities WHERE external_id = ?", (name,)).fetchone()[0]
    assert description == "follow-up note"


def test_an_unreachable_daktela_marks_the_events_failed_and_fails_the_run(tmp_path: Path) -> None:
    create_demo_crm(tmp_path / "crm.sqlite", accounts=2, contacts=5, seed=3)
    config_path = tmp_path / "sync.yaml"
    config_path.write_text(
        f"""
daktela: {{instance_url: "http://127.0.0.1:9", access_token: "tok-never-logged", database: default,
          timeout_s: 1, max_retries: 0}}
crm: {{adapter: sql, path: crm.sqlite}}
staging: {{path: crmsync.duckdb}}
sync:
  entities:
    activity:
      enabled: true
      direction: cc_to_crm
      mapping_file: {REPO / "mappings/activities.yaml"}
      activity_types: [call]
webhook: {{secret: {SECRET}, inbox_path: inbox.sqlite}}
""",
        encoding="utf-8",
    )
    with Inbox(tmp_path / "inbox.sqlite") as inbox:
        for name in ("call_a", "call_b"):
            inbox.add(
                source="daktela",
                event="call_close",
                entity="activity",
                activity_type="call",
                record_id=name,
                body={"event": "call_close", "name": name},
            )
    resources: dict[str, object] = {
        "sync_engine": SyncEngineResource(
            config=CrmsyncConfigResource(config_path=str(config_path)),
            daktela=DaktelaResource(instance_url="http://127.0.0.1:9", access_token="tok-never-logged"),
            crm=CrmResource(),
            staging=StagingResource(),
        ),
        # One attempt: the run's failure ends the events (bounded re-requests: test_webhook_leases.py).
        "webhook_inbox": InboxResource(config_path=str(config_path), max_attempts=1),
    }
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources={"webhook_inbox": resources["webhook_inbox"]})
        result = webhook_inbox_sensor(context)
        assert isinstance(result, dg.SensorResult)
        [request] = result.run_requests or []
        outcome = webhook_sync.execute_in_process(
            run_config=request.run_config, instance=instance, resources=resources, raise_on_error=False
        )
    with Inbox(tmp_path / "inbox.sqlite") as inbox:
        events = inbox.events()
    assert [e.status for e in events] == ["failed", "failed"]
    assert all(e.run_id == outcome.run_id and e.error for e in events)
    assert all("tok-never-logged" not in (e.error or "") for e in events)
    assert not outcome.success  # visible to run-failure alerting
    assert all((e.error or "").startswith("transient: ") for e in events)
    assert all("Connection refused" in (e.error or "") for e in events)
