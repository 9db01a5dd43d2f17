"""Raynet activity datetimes: a value without a UTC offset is refused with its field before
any request (never read as UTC: ``2026-11-30T10:00:00`` from a mapping that dropped the zone
was written two hours off for a Prague call), and every ISO-8601 offset is accepted, negative
ones and the space separator included. Real simulator over HTTP."""

from __future__ import annotations

import pytest

from crmsync_pipelines.crm.raynet.client import RaynetValidationError
from crmsync_pipelines.crm.raynet.simulator import RaynetSimulatorHandle
from crmsync_tests.fixtures.raynet import RaynetFactory


def _call(extid: str, when: object) -> dict[str, object]:
    return {"extId": extid, "type": "call", "title": "Hovor", "scheduledFrom": when}


@pytest.mark.parametrize("naive", ["2026-11-30T10:00:00", "2026-11-30 10:00:00", "2026-11-30T10:00", "2026-11-30",
                                   "20261130T100000"])
def test_datetimes_without_an_offset_are_refused_with_the_field(
        raynet_sim: RaynetSimulatorHandle, make_raynet: RaynetFactory, naive: str) -> None:
    adapter = make_raynet()
    raynet_sim.reset_log()
    [refused] = adapter.upsert_activities("extId", [_call("naive", naive)])
    assert isinstance(refused, RaynetValidationError) and refused.field == "scheduledFrom", refused
    assert raynet_sim.request_count("PUT") == 0


@pytest.mark.parametrize(("aware", "utc"), [
    ("2026-11-30T10:00:00-05:00", "2026-11-30T15:00:00+00:00"),
    ("2026-11-30 10:00:00-05:00", "2026-11-30T15:00:00+00:00"),
    ("2026-11-30 10:00:00+01:00", "2026-11-30T09:00:00+00:00"),
    ("2026-11-30T10:00:00Z", "2026-11-30T10:00:00+00:00"),
    ("2026-11-30T10:00:00.250+00:00", "2026-11-30T10:00:00+00:00"),
])
def test_every_offset_form_is_accepted_and_written_in_utc(
        raynet_sim: RaynetSimulatorHandle, make_raynet: RaynetFactory, aware: str, utc: str) -> None:
    adapter = make_raynet()
    [written] = adapter.upsert_activities("extId", [_call("aware", aware)])
    assert isinstance(written, dict), written
    stored = adapter.find_activity_by("extId", "aware")
    assert stored is not None and stored["scheduledFrom"] == utc
