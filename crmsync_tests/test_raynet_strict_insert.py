"""A Raynet instance that refuses ``status`` / ``customFields`` on create (the reading the docs
mark undocumented; the simulator's ``strict_activity_insert``) still gets every activity:
the refused create is sent again without them and followed by one update carrying them, and
the rest of the run creates that way directly (2 requests each) instead of failing every
activity as a validation error. Real simulator over HTTP."""

from __future__ import annotations

from collections import Counter

from crmsync_pipelines.crm.raynet import RaynetAdapter, RaynetSettings
from crmsync_pipelines.crm.raynet.simulator import run_raynet_simulator


def _call(name: str) -> dict[str, object]:
    return {"extId": name, "type": "call", "title": "Hovor", "scheduledFrom": "2026-11-30T10:00:00+00:00",
            "completed": "2026-11-30T10:05:00+00:00", "status": "COMPLETED"}


def test_strict_instances_get_create_then_update() -> None:
    with run_raynet_simulator(seed=None, strict_activity_insert=True) as sim:
        adapter = RaynetAdapter(RaynetSettings.parse(sim.settings(activities={"owner_id": sim.user_ids[2]})),
                                sleep=lambda _s: None)
        try:
            results = adapter.upsert_activities("extId", [_call("c1"), _call("c2"), _call("c3")])
        finally:
            adapter.close()
        assert all(isinstance(r, dict) for r in results), results
        stored = {ext: r for r in sim.store.all("phoneCall") for ext in r["extIds"]}
        assert set(stored) == {"daktela:c1", "daktela:c2", "daktela:c3"}
        assert {r["status"] for r in stored.values()} == {"COMPLETED"}
        writes = Counter((r.method, r.status) for r in sim.request_log if r.method in ("PUT", "POST"))
        assert writes == Counter({("PUT", 500): 1, ("PUT", 201): 3, ("POST", 200): 3})
        assert adapter.usage()["activities_created"] == 3
