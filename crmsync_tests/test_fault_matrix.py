"""The fault matrix (issue 10, "Done when"): a small first sync under each kind of bad answer.

Each case injects one fault into every Daktela API route at a 20 % rate (a seeded draw) for
both runs, syncs accounts and contacts twice, then verifies without faults. It asserts that
the second run ends clean (no failure, ``failed_records`` empty), that Daktela holds exactly
the CRM's records with the CRM's values (a verifying run finds every record unchanged and
writes nothing), and that no record was created twice.

Writes run on one thread so the seeded fault draws fall on the same requests every time.
"""

from __future__ import annotations

from typing import Any

import pytest

from crmsync_pipelines.engine import Window
from crmsync_pipelines.simulator import Fault
from crmsync_tests.fixtures.engine import EngineEnv
from crmsync_tests.fixtures.faults import crm_ids, fast_engine, tune

ALL = Window(None, None)
RATE = 0.2
ENTITIES = (("account", "accounts", "crm_acc_"), ("contact", "contacts", "crm_"))

CASES: dict[str, dict[str, Any]] = {
    "429": {"kind": "rate_limit", "status": 429, "retry_after": "0"},
    "5xx-with-retry-after": {"kind": "status", "status": 503, "retry_after": "1"},
    "empty-200": {"kind": "status", "status": 200, "apply_after": True},
    "malformed-json": {"kind": "malformed_json"},
    "reset": {"kind": "reset"},
    "slow-past-timeout": {"kind": "slow", "delay_s": 0.6},
    "write-then-5xx": {"kind": "status", "status": 500, "apply_after": True},
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_first_sync_under_faults_is_complete_and_clean_by_the_second_run(engine_env: EngineEnv, case: str) -> None:
    sim = engine_env.sim
    timeout = 0.3 if case == "slow-past-timeout" else 5
    config = tune(engine_env.write_config(), write_concurrency=1, max_retries=3, timeout_s=timeout)
    engine = fast_engine(config)
    sim.add_fault(Fault(route="*", probability=RATE, times=None, **CASES[case]))

    first = [engine.sync(entity, ALL, "run-1")[-1] for entity, _, _ in ENTITIES]
    second = [engine.sync(entity, ALL, "run-2")[-1] for entity, _, _ in ENTITIES]
    faulted = sum(1 for r in sim.request_log if r.fault)
    sim.clear_faults()

    assert faulted >= 5, f"the fault fired only {faulted} times"
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
