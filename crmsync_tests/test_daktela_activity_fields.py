"""Activities extraction: only the fields the mapping and the engine read are requested
(``fields[]``), and the next page is fetched while the current one is processed.

Real simulator (demo seed, real activities) over HTTP; the bundled activities mapping.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest

from crmsync_pipelines.daktela import DaktelaAdapter, DaktelaClient
from crmsync_pipelines.daktela.activities import raw_fields
from crmsync_pipelines.mapping import FieldMapper, load_mapping
from crmsync_pipelines.simulator import SimulatorHandle

MAPPINGS = Path(__file__).resolve().parents[1] / "mappings"
ACTIVITIES = "/api/v6/activities.json"


def _adapter(sim: SimulatorHandle, page_size: int = 1000) -> DaktelaAdapter:
    client = DaktelaClient(sim.base_url, sim.token, rate_limit_per_s=None)
    return DaktelaAdapter(client, database="default", page_size=page_size)


def _bundled_fields() -> list[str]:
    mapping = load_mapping(MAPPINGS / "activities.yaml")
    return raw_fields(rule.cc_field for rule in mapping.mappings if not rule.has_value)


def test_raw_fields_translates_flattened_names_and_adds_what_the_engine_reads() -> None:
    assert raw_fields(["contact_name", "user_email", "queue_title", "item_caller", "direction", "activity_type",
                       "id", "customFields.topic", "duration"]) == [
        "name", "type", "time", "time_close", "action",
        "contact", "user", "queue", "item", "customFields", "duration",
    ]
    assert raw_fields([], time_field="time_open") == ["name", "type", "time", "time_close", "action", "time_open"]
    # The bundled mapping: no ticket, no record, no options — the heavy parts of an activity.
    fields = _bundled_fields()
    assert {"ticket", "record", "options"}.isdisjoint(fields)
    assert {"contact", "user", "queue", "title", "description", "duration"} <= set(fields)


def test_the_projected_read_maps_exactly_like_the_full_read(demo_simulator: SimulatorHandle) -> None:
    adapter = _adapter(demo_simulator)
    mapping = load_mapping(MAPPINGS / "activities.yaml")
    mapper = FieldMapper(instance_timezone="Europe/Prague")
    fields = _bundled_fields()
    for activity_type in ("call", "email", "web", "sms"):
        demo_simulator.reset_log()
        projected = list(adapter.iter_activities(activity_type, since=None, until=None, fields=fields))
        requests = [r for r in demo_simulator.request_log if r.path == ACTIVITIES]
        assert requests and all(r.query.get("fields") for r in requests)
        full = list(adapter.iter_activities(activity_type, since=None, until=None))
        assert projected, activity_type
        assert [mapper.map(r, mapping, "cc_to_crm") for r in projected] == \
               [mapper.map(r, mapping, "cc_to_crm") for r in full]
        # The rows themselves are smaller: the heavy relations were never requested.
        assert sum(len(str(r)) for r in projected) < sum(len(str(r)) for r in full)


def test_a_refused_projection_falls_back_to_whole_activities(demo_simulator: SimulatorHandle,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    adapter = _adapter(demo_simulator)
    full = list(adapter.iter_activities("call", since=None, until=None))
    demo_simulator.reset_log()
    with caplog.at_level(logging.WARNING, logger="crmsync.daktela"):
        rows = list(adapter.iter_activities("call", since=None, until=None, fields=["name", "no_such_field"]))
    assert rows == full
    statuses = [r.status for r in demo_simulator.request_log if r.path == ACTIVITIES]
    assert statuses[0] == 400 and set(statuses[1:]) == {200}
    assert "refused the activity field projection" in caplog.text



def test_a_refused_projection_is_not_sent_again_for_other_types(demo_simulator: SimulatorHandle,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    adapter = _adapter(demo_simulator)
    projection = ["name", "no_such_field"]
    with caplog.at_level(logging.WARNING, logger="crmsync.daktela"):
        for activity_type in ("call", "email", "web", "sms"):
            full = list(adapter.iter_activities(activity_type, since=None, until=None))
            demo_simulator.reset_log()
            assert list(adapter.iter_activities(activity_type, since=None, until=None, fields=projection)) == full
            statuses = [r.status for r in demo_simulator.request_log if r.path == ACTIVITIES]
            projected = [r for r in demo_simulator.request_log if r.path == ACTIVITIES and r.query.get("fields")]
            if activity_type == "call":  # refused once ...
                assert statuses[0] == 400 and len(projected) == 1
            else:  # ... then never asked again: every request reads whole activities
                assert 400 not in statuses and projected == []
    assert caplog.text.count("refused the activity field projection") == 1
    # Another projection is still tried.
    demo_simulator.reset_log()
    rows = list(adapter.iter_activities("call", since=None, until=None, fields=_bundled_fields()))
    assert rows and all(r.query.get("fields") for r in demo_simulator.request_log if r.path == ACTIVITIES)

def test_the_next_page_is_fetched_while_the_current_one_is_processed(demo_simulator: SimulatorHandle) -> None:
    adapter = _adapter(demo_simulator, page_size=5)
    demo_simulator.set_latency(50)
    demo_simulator.reset_log()
    rows = adapter.iter_activities("call", since=None, until=None, fields=_bundled_fields())
    first: Any = next(rows)
    assert first["name"]
    deadline = time.monotonic() + 5
    while demo_simulator.request_count("GET", ACTIVITIES) < 2:  # page 2 is asked for before we read on
        assert time.monotonic() < deadline
        time.sleep(0.01)
    rest = list(rows)
    demo_simulator.set_latency(0)
    names = [first["name"], *(r["name"] for r in rest)]
    assert len(names) == len(set(names)) == len([a for a in demo_simulator.all("activities") if a["type"] == "CALL"])
