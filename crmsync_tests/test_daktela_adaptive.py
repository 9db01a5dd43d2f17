"""Adaptive write concurrency (AIMD): grows while latency and errors stay flat, halves when the
server pushes back, never exceeds its maximum nor an explicit ``rate_limit_per_s``.

Unit tests drive ``AdaptiveConcurrency`` with a fake clock; the end-to-end ones write through
the real client to the simulator with ``max_concurrent`` (429 beyond N requests in flight).
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from crmsync_pipelines.config import load_config
from crmsync_pipelines.daktela import DaktelaAdapter, DaktelaClient
from crmsync_pipelines.daktela.adapter import WriteOp
from crmsync_pipelines.daktela.ratelimit import AdaptiveConcurrency
from crmsync_pipelines.simulator import run_simulator


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _round(gate: AdaptiveConcurrency, clock: Clock, latency_s: float, *, overloaded: bool = False) -> None:
    """One round: ``limit`` writes start, then all finish ``latency_s`` later."""
    n = gate.limit
    for _ in range(n):
        gate.acquire()
    clock.now += latency_s
    for _ in range(n):
        gate.release(latency_s, overloaded=overloaded)


def test_holds_while_measuring_then_grows_to_the_maximum_while_latency_is_flat() -> None:
    clock = Clock()
    gate = AdaptiveConcurrency(4, 32, clock=clock)
    for _ in range(4):
        _round(gate, clock, 0.05)
    assert gate.limit == 4  # four rounds of baseline latency first
    limits = []
    for _ in range(6):
        _round(gate, clock, 0.05)
        limits.append(gate.limit)
    assert limits[0] > 4 and limits == sorted(limits)
    assert gate.limit == 32  # and never more
    _round(gate, clock, 0.05)
    assert gate.limit == 32 and gate.snapshot()["peak"] == 32


def test_rising_latency_holds_the_limit() -> None:
    clock = Clock()
    gate = AdaptiveConcurrency(4, 32, clock=clock)
    for _ in range(5):
        _round(gate, clock, 0.05)
    held = gate.limit
    # The server queues our writes: latency five times the baseline. The smoothed latency
    # crosses twice the baseline within the first round, and from then on nothing grows.
    _round(gate, clock, 0.25)
    crossed = gate.limit
    assert crossed <= held + 3
    for _ in range(30):
        _round(gate, clock, 0.25)
    assert gate.limit == crossed


def test_an_overload_halves_once_per_round_trip_and_recovers_below_it() -> None:
    clock = Clock()
    gate = AdaptiveConcurrency(16, 32, clock=clock)
    for _ in range(6):
        _round(gate, clock, 0.05)
    top = gate.limit
    assert top == 32
    _round(gate, clock, 0.05, overloaded=True)  # 32 refusals in one round trip: one halving
    assert gate.limit == 16
    assert gate.snapshot()["overloads"] == 32
    for _ in range(20):
        _round(gate, clock, 0.05)
    assert 28 <= gate.limit <= 32  # back close to the level that overloaded, probing slowly


def test_never_below_one_nor_above_the_maximum() -> None:
    clock = Clock()
    gate = AdaptiveConcurrency(2, 3, clock=clock)
    for _ in range(10):
        _round(gate, clock, 1.0, overloaded=True)
    assert gate.limit == 1
    for _ in range(200):
        _round(gate, clock, 0.01)
    assert gate.limit == 3
    with pytest.raises(ValueError):
        AdaptiveConcurrency(0, 4)


def test_acquire_blocks_beyond_the_limit() -> None:
    gate = AdaptiveConcurrency(2, 2)
    gate.acquire()
    gate.acquire()
    entered = threading.Event()

    def third() -> None:
        gate.acquire()
        entered.set()

    thread = threading.Thread(target=third)
    thread.start()
    assert not entered.wait(0.2)
    gate.release(0.01, overloaded=False)
    assert entered.wait(5)
    thread.join()


def _contact(name: str) -> dict[str, Any]:
    return {"name": name, "title": f"T {name}", "lastname": "L", "database": "default"}


def _adapter(sim: Any, gate: AdaptiveConcurrency, rate: float | None = None) -> DaktelaAdapter:
    client = DaktelaClient(sim.base_url, sim.token, rate_limit_per_s=rate, max_retries=10,
                           backoff_base_s=0.01, write_concurrency=gate)
    return DaktelaAdapter(client, database="default", write_concurrency=gate.limit)


def test_a_server_capping_concurrency_is_found_and_every_write_lands() -> None:
    with run_simulator(seed=None, latency_ms=20, max_concurrent=6) as sim:
        gate = AdaptiveConcurrency(2, 24)
        adapter = _adapter(sim, gate)
        ops = [WriteOp(key=f"k{i}", model="contacts", action="create", payload=_contact(f"c{i}"))
               for i in range(300)]
        results = list(adapter.apply_writes(ops))
        adapter.close()
        assert all(r.error is None for r in results)
        assert sim.count("contacts") == 300
        refused = sim.request_count("POST") - 300
        pace = gate.snapshot()
        assert pace["peak"] > 2  # it grew ...
        assert pace["overloads"] == refused >= 1  # ... met the cap, and backed off each time
        assert pace["limit"] < 24
        assert refused < 60  # a few probes, not a 429 per write


def test_an_explicit_rate_limit_is_never_exceeded() -> None:
    with run_simulator(seed=None, latency_ms=0) as sim:
        gate = AdaptiveConcurrency(8, 32)
        adapter = _adapter(sim, gate, rate=40)
        ops = [WriteOp(key=f"k{i}", model="contacts", action="create", payload=_contact(f"r{i}"))
               for i in range(120)]
        assert all(r.error is None for r in adapter.apply_writes(ops))
        adapter.close()
        times = sorted(r.at for r in sim.request_log if r.method == "POST")
        assert len(times) == 120
        # Token bucket of 40/s with a burst of 40: no second holds more than 40 + 40 requests,
        # and after the burst the pace is 40/s.
        worst = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
        assert worst <= 80
        assert times[-1] - times[0] >= (120 - 40) / 40 * 0.9


def test_sync_yaml_defaults_adapt_and_set_no_rate(tmp_path: Any) -> None:
    path = tmp_path / "sync.yaml"
    path.write_text("daktela:\n  instance_url: http://127.0.0.1:9\n  access_token: t\n  database: d\n",
                    encoding="utf-8")
    section = load_config(path).daktela
    assert (section.rate_limit_per_s, section.write_concurrency, section.max_write_concurrency) == (0, 4, 32)
    adapter = DaktelaAdapter.from_config(section)
    assert adapter.max_write_concurrency == 32
    assert adapter.write_pace()["limit"] == 4
    assert adapter.client._limiter is None
    adapter.close()
