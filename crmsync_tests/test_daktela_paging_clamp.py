"""A Daktela server that serves fewer records per page than the ``take`` asked for (issue 9 §5).

The simulator's ``take_max`` (``crmsync simulator --max-take 500``) clamps every page, as real
instances and proxies may. Paging must compare what it read with the envelope's ``total`` and
go on, never read a short page as the last one: 4,200 activities are 4,200, not 500.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from crmsync_pipelines.daktela import DaktelaAdapter, DaktelaClient, DaktelaProtocolError
from crmsync_pipelines.engine import Window
from crmsync_pipelines.simulator import SimulatorHandle, run_simulator
from crmsync_tests.fixtures.engine import _env

ACTIVITIES = "/api/v6/activities.json"
CONTACTS = "/api/v6/contacts.json"
COUNT = 4_200
CAP = 500
BASE = datetime(2026, 11, 20, 8, 0)


def _adapter(sim: SimulatorHandle, transport: httpx.BaseTransport | None = None) -> DaktelaAdapter:
    client = DaktelaClient(sim.base_url, sim.token, rate_limit_per_s=None, max_retries=1, backoff_base_s=0.01,
                           backoff_max_s=0.02, timeout_s=10.0, transport=transport)
    return DaktelaAdapter(client, database="default", page_size=1000)


def _activities(count: int) -> list[dict[str, Any]]:
    return [
        {"name": f"activities_cap{i:05d}", "type": "CALL", "queue": 3001, "action": "CLOSE",
         "time": (BASE + timedelta(seconds=i)).strftime("%Y-%m-%d %H:%M:%S")}
        for i in range(count)
    ]


@pytest.fixture
def capped() -> Any:
    with run_simulator(seed=None, take_max=CAP) as sim:
        sim.insert_many("activities", _activities(COUNT))
        yield sim


def test_every_activity_is_read_when_the_server_caps_pages(capped: SimulatorHandle) -> None:
    adapter = _adapter(capped)
    capped.reset_log()
    rows = list(adapter.iter_activities("call", since=None, until=None))
    assert len(rows) == COUNT
    assert sorted(r["id"] for r in rows) == [f"activities_cap{i:05d}" for i in range(COUNT)]
    assert all(len(entry.query) and entry.query.get("take") == "1000" for entry in capped.request_log)
    assert capped.request_count("GET", ACTIVITIES) == math.ceil(COUNT / CAP)
    adapter.close()


def test_a_window_is_read_whole_when_the_server_caps_pages(capped: SimulatorHandle) -> None:
    adapter = _adapter(capped)
    since = adapter.from_instance_time((BASE + timedelta(seconds=100)).strftime("%Y-%m-%d %H:%M:%S"))
    until = adapter.from_instance_time((BASE + timedelta(seconds=3_900)).strftime("%Y-%m-%d %H:%M:%S"))
    rows = list(adapter.iter_activities("call", since=since, until=until))
    assert sorted(r["id"] for r in rows) == [f"activities_cap{i:05d}" for i in range(100, 3_900)]
    adapter.close()


def test_capped_pages_without_date_filters_use_total_too() -> None:
    """The fallback for instances that refuse date filters pages by offset and ``total``."""
    with run_simulator(seed=None, take_max=CAP, reject_activity_date_filters=True) as sim:
        sim.insert_many("activities", _activities(1_234))
        adapter = _adapter(sim)
        since = datetime(2026, 1, 1, tzinfo=UTC)
        rows = list(adapter.iter_activities("call", since=since, until=None))
        assert len(rows) == 1_234 and len({r["id"] for r in rows}) == 1_234
        adapter.close()


def test_contacts_are_read_whole_when_the_server_caps_pages() -> None:
    with run_simulator(seed=None, take_max=7) as sim:
        sim.insert_many("contacts", [{"name": f"contacts_{i:03d}", "title": f"C {i}", "database": "default"}
                                     for i in range(53)])
        adapter = _adapter(sim)
        sim.reset_log()
        names = [r["name"] for r in adapter.iter_records("contacts")]
        assert sorted(names) == [f"contacts_{i:03d}" for i in range(53)]
        # one more request first: the records whose ``edited`` is empty (none here)
        assert sim.request_count("GET", CONTACTS) == math.ceil(53 / 7) + 1
        adapter.close()


def test_an_empty_page_while_total_says_more_fails_visibly(capped: SimulatorHandle) -> None:
    """A server whose pages stop while ``total`` still counts records: an error, not a silent end."""

    def lying(request: httpx.Request) -> httpx.Response:
        body = {"error": [], "result": {"data": [], "total": 42}, "_timezone": "Europe/Prague"}
        return httpx.Response(200, json=body)

    adapter = _adapter(capped, transport=httpx.MockTransport(lying))
    with pytest.raises(DaktelaProtocolError, match="42 more records"):
        list(adapter.iter_activities("call", since=None, until=None))
    adapter.close()


def test_engine_extracts_every_activity_when_the_server_caps_pages(
    capped: SimulatorHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine's extract stage stages all 4,200 (loading them is the same as for any page size)."""
    env = _env(tmp_path, capped, monkeypatch)
    engine = env.engine(accounts=False, contacts=False, activities=True)
    report = engine.extract("activity", Window(None, None), "run-1")
    assert report.counts["extracted"] == COUNT
    batch = engine.staging.latest_batch("activity", None, None, run_id="run-1")
    assert batch is not None
    staged = {sid for chunk in engine.staging.iter_raw(batch.batch_id) for sid, _ in chunk}
    assert staged == {f"activities_cap{i:05d}" for i in range(COUNT)}
    engine.close()
