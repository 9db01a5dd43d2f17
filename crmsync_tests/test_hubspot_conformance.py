"""The conformance kit passes for HubSpotAdapter against the HubSpot simulator over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import pytest

from crmsync_pipelines.crm.base import CrmAdapter
from crmsync_pipelines.crm.conformance import CrmAdapterConformance
from crmsync_pipelines.crm.hubspot.simulator import HubSpotSimHandle
from crmsync_tests.fixtures.hubspot import hubspot_adapter


class HubSpotSeeder:
    """Writes companies and contacts into the simulator's store with exact modified times."""

    def __init__(self, sim: HubSpotSimHandle) -> None:
        self.sim = sim

    def add_account(self, record: Mapping[str, Any], modified: datetime) -> str:
        return self.sim.add_company(dict(record), modified)

    def add_contact(self, record: Mapping[str, Any], modified: datetime) -> str:
        return self.sim.add_contact(dict(record), modified)


class TestHubSpotAdapterConformance(CrmAdapterConformance):
    activity_lookup_field = "daktela_activity_name"
    activity_update_field = "title"
    account_find_field = "domain"
    contact_find_field = "email"
    contact_search_field = "lastname"

    @pytest.fixture
    def adapter(self, hubspot_sim: HubSpotSimHandle) -> Iterator[CrmAdapter]:
        adapter = hubspot_adapter(hubspot_sim)
        yield adapter
        adapter.close()

    @pytest.fixture
    def seed(self, hubspot_sim: HubSpotSimHandle) -> HubSpotSeeder:
        return HubSpotSeeder(hubspot_sim)

    @pytest.fixture
    def broken_adapter(self, hubspot_sim: HubSpotSimHandle) -> Iterator[CrmAdapter]:
        adapter = hubspot_adapter(hubspot_sim, access_token="pat-na1-revoked")
        yield adapter
        adapter.close()

    def make_account(self, index: int) -> dict[str, Any]:
        return {"name": f"Conformance Account {index}", "domain": f"account{index}.conformance.example"}

    def make_contact(self, index: int) -> dict[str, Any]:
        return {"firstname": "Conformance", "lastname": f"Contact{index}",
                "email": f"contact{index}@conformance.example"}

    def make_activity(self, external_id: str) -> dict[str, Any]:
        return {"daktela_activity_name": external_id, "channel": "call", "timestamp": "2026-03-01T12:00:00.000Z",
                self.activity_update_field: "first"}
