"""End to end through Dagster: Raynet simulator -> crmsync -> Daktela simulator -> back into Raynet.

Production wiring (``default_sync_engine``, EnvVar, the shipped ``mappings/raynet/sync.yaml``),
real materializations, both simulators over HTTP. Asserted: the persons modified today become
Daktela contacts, the calls made to them land in Raynet linked to those persons, a second
run writes nothing, and a call closed later updates its Raynet activity with one request.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from crmsync_pipelines.cli.demo_setup import DemoPaths, demo_environment, write_demo_config
from crmsync_pipelines.crm.raynet.simulator import RaynetSimulatorHandle
from crmsync_pipelines.defs.materialize import current_partition_key
from crmsync_pipelines.defs.partitions import sync_partitions
from crmsync_pipelines.simulator import SimulatorHandle
from crmsync_pipelines.staging import StagingStore
from crmsync_tests.fixtures.raynet import RAYNET_MAPPINGS, raynet_environment
from crmsync_tests.test_dagster_e2e import CRM_TO_DAKTELA, _assets
from crmsync_tests.test_dagster_lifecycle import DAKTELA_TO_CRM

pytestmark = pytest.mark.slow


def _resources() -> dict[str, Any]:
    from crmsync_pipelines.defs.resources import default_sync_engine

    return {"sync_engine": default_sync_engine()}


@pytest.fixture
def raynet_world(tmp_path: Path, demo_simulator: SimulatorHandle, raynet_demo_sim: RaynetSimulatorHandle,
                 monkeypatch: pytest.MonkeyPatch) -> Iterator[DemoPaths]:
    paths = DemoPaths.under(tmp_path / "data")
    template = RAYNET_MAPPINGS / "sync.yaml"
    crm = yaml.safe_load(template.read_text(encoding="utf-8"))["crm"]
    write_demo_config(paths, template=template, crm=crm)
    env = {**demo_environment(paths, base_url=demo_simulator.base_url, token=demo_simulator.token),
           **raynet_environment(raynet_demo_sim)}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CRMSYNC_ALERT_WEBHOOK_URL", raising=False)
    yield paths


def _metadata(instance: dg.DagsterInstance, key: str) -> dict[str, Any]:
    event = instance.get_latest_materialization_event(dg.AssetKey.from_user_string(key))
    assert event is not None and event.asset_materialization is not None
    return {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}


def _raynet_calls(raynet: RaynetSimulatorHandle) -> dict[str, dict[str, Any]]:
    calls: dict[str, dict[str, Any]] = {}
    for entity in ("phoneCall", "email", "task"):
        for record in raynet.store.all(entity):
            (ext,) = record["extIds"]
            assert ext not in calls, f"{ext} stored twice"
            calls[ext.removeprefix("daktela:")] = record
    return calls


def test_raynet_round_trip_through_dagster(
    raynet_world: DemoPaths, demo_simulator: SimulatorHandle, raynet_demo_sim: RaynetSimulatorHandle,
    dagster_instance: dg.DagsterInstance,
) -> None:
    daktela, raynet = demo_simulator, raynet_demo_sim
    key = current_partition_key()
    window = sync_partitions.time_window_for_partition_key(key)
    today = [p for p in raynet.store.all("person") if not p.get("userAccount")
             and window.start <= raynet.store.modified(p) < window.end]
    assert today, "the Raynet demo seed must have persons modified today"

    # 1. Raynet persons modified today -> Daktela contacts crm_<id>.
    first = dg.materialize(_assets(CRM_TO_DAKTELA), instance=dagster_instance, resources=_resources(),
                           partition_key=key)
    assert first.success
    ledger = {(r["entity"], r["outcome"]): int(r["count"])
              for r in StagingStore(raynet_world.staging).ledger_summary(first.run_id)}
    assert ledger.get(("contact", "created")) == len(today)
    names = {c["name"] for c in daktela.all("contacts")}
    assert {f"crm_{p['id']}" for p in today} <= names
    extract = _metadata(dagster_instance, "crm/contacts")
    assert extract["crm_requests_used"] >= 1 and 0 < extract["crm_budget_remaining"] < 24_000

    # 2. Agents call two of those customers; activities flow back into Raynet.
    now = datetime.now(window.start.tzinfo).strftime("%Y-%m-%d %H:%M:%S")
    called = today[:2]
    ours = [daktela.insert("activities", {
        "type": "CALL", "queue": 3001, "contact": f"crm_{p['id']}", "time": now, "title": "Dotaz na fakturu",
        "action": "OPEN", "priority": 0}) ["name"] for p in called]
    raynet.reset_log()
    back = dg.materialize(_assets(DAKTELA_TO_CRM), instance=dagster_instance, resources=_resources(),
                          partition_key=key)
    assert back.success
    calls = _raynet_calls(raynet)
    for name, person in zip(ours, called, strict=True):
        assert calls[name]["person"] == person["id"]
        assert calls[name]["status"] == "SCHEDULED"
    created = _metadata(dagster_instance, "crm/activities")["records_created"]
    assert created == len(calls) >= 2
    writes = [r for r in raynet.request_log if r.method in ("PUT", "POST")]
    assert len(writes) == created, "one Raynet write per activity"
    assert raynet.request_count("GET", "/api/v2/phoneCall/ext/*") == 0

    # 3. Nothing changed: nothing is written.
    raynet.reset_log()
    again = dg.materialize(_assets(DAKTELA_TO_CRM), instance=dagster_instance, resources=_resources(),
                           partition_key=key)
    assert again.success
    assert [r for r in raynet.request_log if r.method in ("PUT", "POST")] == []

    # 4. The agent closes one call: one POST updates the same Raynet activity.
    daktela.close_activity(ours[0])
    raynet.reset_log()
    late = dg.materialize(_assets(DAKTELA_TO_CRM), instance=dagster_instance, resources=_resources(),
                          partition_key=key)
    assert late.success
    meta = _metadata(dagster_instance, "crm/activities")
    assert meta["records_updated"] == 1
    assert [(r.method, r.path) for r in raynet.request_log if r.method != "GET"] == [
        ("POST", f"/api/v2/phoneCall/{calls[ours[0]]['id']}/")]
    closed = _raynet_calls(raynet)[ours[0]]
    assert closed["status"] == "COMPLETED" and closed["completed"] is not None and closed["_version"] == 2
    assert meta["crm_quota_exhausted"] is False and meta["crm_requests_used"] >= 1
    assert len(_raynet_calls(raynet)) == len(calls)
