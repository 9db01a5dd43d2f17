"""The CRM adapter conformance kit against the Raynet adapter, over real HTTP to the simulator."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, ClassVar

import pytest

from crmsync_pipelines.crm.base import CrmAdapter
from crmsync_pipelines.crm.conformance import CrmAdapterConformance
from crmsync_pipelines.crm.raynet import RaynetAdapter
from crmsync_pipelines.crm.raynet.simulator import RaynetSimulatorHandle
from crmsync_tests.fixtures.raynet import RaynetFactory


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"contactInfo.email": x}`` -> ``{"contactInfo": {"email": x}}`` (the kit's records use dotted keys)."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        node = nested
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return nested


class RaynetSeeder:
    """Writes companies and persons straight into the simulator with exact modified times."""

    def __init__(self, sim: RaynetSimulatorHandle) -> None:
        self.sim = sim

    def add_account(self, record: Mapping[str, Any], modified: datetime) -> str:
        values = {"rating": "A", "state": "B_ACTUAL", "role": "A_SUBSCRIBER", "person": False, **_nest(record)}
        return str(self.sim.store.insert("company", values, at=modified)["id"])

    def add_contact(self, record: Mapping[str, Any], modified: datetime) -> str:
        return str(self.sim.store.insert("person", _nest(record), at=modified)["id"])


class TestRaynetConformance(CrmAdapterConformance):
    supports_activities = True
    activity_lookup_field = "extId"
    activity_update_field = "title"
    account_find_field = "primaryAddress.contactInfo.email"
    contact_find_field = "contactInfo.email"
    account_search_field = "name"
    contact_search_field = "lastName"
    iteration_size: ClassVar[int] = 9

    @pytest.fixture
    def adapter(self, make_raynet: RaynetFactory) -> CrmAdapter:
        # A page size below the seeded counts, so every check also crosses page boundaries.
        return make_raynet(page_size=2)

    @pytest.fixture
    def seed(self, raynet_sim: RaynetSimulatorHandle) -> RaynetSeeder:
        return RaynetSeeder(raynet_sim)

    @pytest.fixture
    def broken_adapter(self, make_raynet: RaynetFactory) -> Iterator[RaynetAdapter]:
        yield make_raynet(api_key="not-the-key")

    def make_account(self, index: int) -> dict[str, Any]:
        return {"name": f"Conformance Account {index}",
                "primaryAddress.contactInfo.email": f"account{index}@conformance.example"}

    def make_contact(self, index: int) -> dict[str, Any]:
        return {"firstName": "Conformance", "lastName": f"Contact{index}",
                "contactInfo.email": f"contact{index}@conformance.example"}

    def make_activity(self, external_id: str) -> dict[str, Any]:
        return {"extId": external_id, "type": "call", "title": "first",
                "scheduledFrom": "2026-03-01T12:00:00+00:00"}
