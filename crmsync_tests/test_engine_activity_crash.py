"""A sync of activities into the SQL CRM killed mid-load: at most ``sync.batch_size`` writes are
unrecorded, the re-run completes without a duplicate, and the run after writes nothing.

The child process is slowed after each batch write (a real SQLite write, then a pause) so the
kill lands while the load is writing; the CRM file, the staging file and the simulator are real.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

from crmsync_pipelines.engine import Window
from crmsync_tests.fixtures.engine import EngineEnv

ALL = Window(None, None)
BATCH_SIZE = 5  # sync.batch_size of the test configs

CHILD = textwrap.dedent(
    """
    import sys, time
    from crmsync_pipelines.config import load_config
    from crmsync_pipelines.crm.sql import SqlCrmAdapter
    from crmsync_pipelines.engine import SyncEngine, Window

    write = SqlCrmAdapter.upsert_activities

    def slow_write(self, lookup_field, records):
        stored = write(self, lookup_field, records)  # committed in the CRM, not ledgered yet
        time.sleep(0.1)
        return stored

    SqlCrmAdapter.upsert_activities = slow_write
    engine = SyncEngine.from_config(load_config(sys.argv[1]))
    engine.sync("activity", Window(None, None), sys.argv[2])
    print("finished", flush=True)
    """
)


def _crm_names(env: EngineEnv) -> list[str]:
    with sqlite3.connect(env.crm_path) as con:
        return [str(r[0]) for r in con.execute("SELECT external_id FROM activities")]


def test_activity_load_killed_mid_write_loses_at_most_one_batch_and_reruns_clean(demo_engine_env: EngineEnv) -> None:
    env = demo_engine_env
    config = env.write_config(accounts=False, contacts=False, activities=True)
    names = {a["name"] for a in env.sim.all("activities")}
    assert len(names) > 6 * BATCH_SIZE, "the demo seed must span many batches"
    script = env.tmp / "run_activity_sync.py"
    script.write_text(CHILD, encoding="utf-8")
    proc = subprocess.Popen([sys.executable, str(script), str(config), "run-crash"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    deadline = time.monotonic() + 120
    while len(_crm_names(env)) < 3 * BATCH_SIZE:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    landed = set(_crm_names(env))
    assert 3 * BATCH_SIZE <= len(landed) < len(names)

    engine = env.engine(accounts=False, contacts=False, activities=True)
    crashed = [r for r in engine.staging.ledger_rows("run-crash", "activity") if r["outcome"] == "created"]
    recorded = {r["source_id"] for r in crashed}
    assert recorded <= landed
    assert len(landed - recorded) <= BATCH_SIZE  # the crash bound: at most one batch unrecorded

    load = engine.sync("activity", ALL, "run-after")[-1]
    assert load.counts == {"created": len(names) - len(landed), "unchanged": len(landed)}
    assert sorted(_crm_names(env)) == sorted(names)  # no duplicate, none missing
    ledgered = {r["source_id"] for r in engine.staging.ledger_rows("run-after", "activity")}
    assert ledgered == names
    assert engine.staging.failed_records("activity") == []

    again = engine.sync("activity", ALL, "run-again")[-1]
    assert again.counts == {"unchanged": len(names)}
    assert again.api_calls["crm"] == 0
    engine.close()
