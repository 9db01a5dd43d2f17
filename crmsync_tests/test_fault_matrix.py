"""The fault matrix (issue 10, "Done when"): a small first sync under each kind of bad answer.

Each case injects one fault into every Daktela API route at a 20 % rate (a seeded draw) for
both runs, syncs accounts and contacts twice, then verifies without faults. It asserts that
the second run ends clean (no failure, ``failed_records`` empty), that Daktela holds exactly
the CRM's records with the CRM's values (a verifying run finds every record unchanged and
writes nothing), and that no record was created twice.

Writes run on one thread so the seeded fault draws fall on the same requests every time.
Some cases tune the client so the fault can bite: small lookup chunks give the empty-200 and
malformed cases several list reads per run; the slow case keeps a real backoff, so a repeated
POST often reaches the server after the slow one landed (the "landed late" refusal).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from crmsync_pipelines.crm.demo_data import create_demo_crm
from crmsync_pipelines.engine import Window
from crmsync_pipelines.engine.reports import Entity
from crmsync_pipelines.simulator import Fault, RequestRecord, SimulatorHandle
from crmsync_tests.fixtures.engine import EngineEnv
from crmsync_tests.fixtures.faults import crm_ids, fast_engine, tune

ALL = Window(None, None)
RATE = 0.2
ENTITIES: tuple[tuple[Entity, str, str], ...] = (("account", "accounts", "crm_acc_"), ("contact", "contacts", "crm_"))


@dataclass(frozen=True)
class Case:
    fault: dict[str, Any]
    daktela: dict[str, Any] = field(default_factory=dict)
    backoff_base_s: float = 0.01


CASES: dict[str, Case] = {
    "429": Case({"kind": "rate_limit", "status": 429, "retry_after": "0"}),
    "5xx-with-retry-after": Case({"kind": "status", "status": 503, "retry_after": "1"}),
    "empty-200": Case({"kind": "status", "status": 200, "apply_after": True}, {"lookup_chunk_size": 4}),
    "malformed-json": Case({"kind": "malformed_json"}, {"lookup_chunk_size": 4}),
    "reset": Case({"kind": "reset"}),
    "slow-past-timeout": Case({"kind": "slow", "delay_s": 0.6}, {"timeout_s": 0.3}, backoff_base_s=0.6),
    "write-then-5xx": Case({"kind": "status", "status": 500, "apply_after": True}),
}


@pytest.fixture
def small_env(tmp_path: Path, simulator: SimulatorHandle, monkeypatch: pytest.MonkeyPatch) -> Iterator[EngineEnv]:
    """6 accounts and 20 contacts: enough requests for the faults to bite, few enough to be quick."""
    crm_path = tmp_path / "crm.sqlite"
    create_demo_crm(crm_path, accounts=6, contacts=20, seed=7)
    monkeypatch.setenv("DAKTELA_INSTANCE_URL", simulator.base_url)
    monkeypatch.setenv("DAKTELA_ACCESS_TOKEN", simulator.token)
    yield EngineEnv(sim=simulator, crm_path=crm_path, tmp=tmp_path)


def _retry_after_was_waited(log: list[RequestRecord]) -> None:
    """Every request answered 503 + ``Retry-After: 1`` was repeated no sooner than 1 s later."""
    for i, record in enumerate(log):
        if record.status != 503:
            continue
        repeat = next((r for r in log[i + 1:] if (r.method, r.path) == (record.method, record.path)), None)
        if repeat is not None:
            assert repeat.at - record.at >= 0.95, f"{record.method} {record.path} repeated too soon"


@pytest.mark.parametrize("name", list(CASES))
def test_a_first_sync_under_faults_is_complete_and_clean_by_the_second_run(small_env: EngineEnv, name: str) -> None:
    engine_env = small_env
    case = CASES[name]
    sim = engine_env.sim
    knobs: dict[str, Any] = {"write_concurrency": 1, "max_retries": 3, "timeout_s": 5, **case.daktela}
    config = tune(engine_env.write_config(), **knobs)
    engine = fast_engine(config, backoff_base_s=case.backoff_base_s)
    sim.add_fault(Fault(route="*", probability=RATE, times=None, **case.fault))

    first = [engine.sync(entity, ALL, "run-1")[-1] for entity, _, _ in ENTITIES]
    second = [engine.sync(entity, ALL, "run-2")[-1] for entity, _, _ in ENTITIES]
    log = sim.request_log
    sim.clear_faults()

    assert sum(1 for r in log if r.fault) >= 4, "the fault fired too rarely to test anything"
    if case.fault.get("retry_after") == "1":
        _retry_after_was_waited(log)
    assert all(r.counts.get("failed", 0) == 0 for r in second), [r.counts for r in first + second]
    assert all(all(c.passed for c in r.checks) for r in second), [c for r in second for c in r.checks]
    assert engine.staging.failed_records() == []
    for entity, model, prefix in ENTITIES:
        names = [str(r["name"]) for r in sim.all(model)]
        assert len(names) == len(set(names))
        assert sorted(names) == sorted(f"{prefix}{i}" for i in crm_ids(engine_env, model)), entity
    # target == source, field by field: a verifying run compares every record and writes nothing.
    sim.reset_log()
    for entity, model, _ in ENTITIES:
        verified = engine.sync(entity, ALL, "verify", verify=True)[-1]
        assert verified.counts.get("unchanged") == len(crm_ids(engine_env, model)), verified.counts
    assert sim.request_count("POST") + sim.request_count("PUT") == 0
