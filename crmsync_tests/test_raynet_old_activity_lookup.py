"""Raynet batched extId lookups find activities written long ago, not only the last
``lookup_days``: reconciliation of a partition re-run a month later (a backfill, a rescan) and
``sync --force-full`` read them back. Before, only ``lookup_fallback_max`` (20) of them were
confirmed one by one and the rest reported missing: a false reconciliation failure, and
``--force-full`` re-created them (3 requests each through the duplicate-extId recovery).
The scan goes further back only when more values are missing than the fallback would confirm,
and stays one list request per 1000 activities. Real simulator over HTTP."""

from __future__ import annotations

from datetime import timedelta

from crmsync_pipelines.crm.raynet.simulator import RaynetSimulatorHandle
from crmsync_tests.fixtures.raynet import RaynetFactory


def test_activities_written_before_lookup_days_are_found_by_one_older_scan(
        raynet_sim: RaynetSimulatorHandle, make_raynet: RaynetFactory) -> None:
    old = raynet_sim.store.now() - timedelta(days=40)
    owner = raynet_sim.user_ids[2]
    names = [f"old-{i}" for i in range(45)]
    for name in names:
        raynet_sim.store.insert("phoneCall", {"title": "Hovor", "owner": owner, "priority": "DEFAULT",
                                              "extIds": [f"daktela:{name}"]}, at=old)
    adapter = make_raynet()
    recent = [f"new-{i}" for i in range(3)]
    written = adapter.upsert_activities("extId", [{"extId": n, "type": "call", "title": "Hovor",
                                                   "scheduledFrom": "2026-03-01T12:00:00+00:00"} for n in recent])
    assert all(isinstance(w, dict) for w in written)
    raynet_sim.reset_log()
    found = adapter.find_activities_by_external_ids("extId", [*names, *recent, "never-written"])
    assert set(found) == {*names, *recent}
    assert found["old-7"]["id"].startswith("phoneCall:")
    # phoneCall, email, task: one recent page each, then one older page each; no per-value GETs.
    assert raynet_sim.request_count() == 6, [(r.method, r.path) for r in raynet_sim.request_log]


def test_few_missing_values_are_still_confirmed_one_by_one(
        raynet_sim: RaynetSimulatorHandle, make_raynet: RaynetFactory) -> None:
    old = raynet_sim.store.now() - timedelta(days=40)
    raynet_sim.store.insert("phoneCall", {"title": "Hovor", "owner": raynet_sim.user_ids[2], "priority": "DEFAULT",
                                          "extIds": ["daktela:old-1"]}, at=old)
    adapter = make_raynet()
    raynet_sim.reset_log()
    found = adapter.find_activities_by_external_ids("extId", ["old-1", "x-1", "x-2"])
    assert set(found) == {"old-1"}
    assert raynet_sim.request_count("GET", "/api/v2/phoneCall/ext/*") >= 1
