"""The streaming write loop: a long-lived writer pool kept full, ledger commits while writes are
in flight, and the crash bound "at most ``sync.batch_size`` writes without a ledger row".

Real simulator over HTTP (with latency, so writes overlap), real SQLite CRM, real DuckDB.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from crmsync_pipelines.engine import Window
from crmsync_pipelines.simulator import Fault
from crmsync_pipelines.staging.store import StagingStore
from crmsync_tests.fixtures.engine import EngineEnv

ALL = Window(None, None)
CONTACTS = "/api/v6/contacts.json"


def _watch_unrecorded(env: EngineEnv, engine: Any) -> list[int]:
    """Before every ledger commit: POSTs the simulator answered minus write results ledgered so far."""
    store = engine.staging
    original = store.record_results
    recorded = [0]
    seen: list[int] = []
    lock = threading.Lock()

    def record_results(run_id: str, batch_id: str | None, entity: str, results: Any, **kwargs: Any) -> None:
        if kwargs.get("ledger", True):  # the once-per-chunk settle call writes no ledger row
            with lock:
                seen.append(env.sim.request_count("POST", CONTACTS) - recorded[0])
                recorded[0] += sum(1 for r in results if r.outcome == "created"
                                   or (r.outcome == "failed" and (r.note or "") != "map"
                                       and not (r.error_message or "").startswith("not sent")))
        original(run_id, batch_id, entity, results, **kwargs)

    store.record_results = record_results  # type: ignore[method-assign]
    return seen


def _crm_contacts(env: EngineEnv) -> int:
    with sqlite3.connect(env.crm_path) as con:
        return int(con.execute("SELECT count(*) FROM contacts").fetchone()[0])


def test_at_most_batch_size_writes_are_ever_unrecorded(engine_env: EngineEnv) -> None:
    engine = engine_env.engine()
    engine.sync("account", ALL, "run-1")
    engine_env.sim.set_latency(15)
    engine_env.sim.reset_log()
    seen = _watch_unrecorded(engine_env, engine)
    load = engine.sync("contact", ALL, "run-1")[-1]
    batch_size = engine.config.sync.batch_size
    assert batch_size == 5
    written = load.counts["created"]
    assert written + load.counts.get("failed", 0) == _crm_contacts(engine_env)
    assert engine_env.sim.request_count("POST", CONTACTS) == written
    assert seen and max(seen) <= batch_size
    # Commits came while writes were still going: more than one per batch of writes is not
    # needed, and the loop never waited for the pool to drain (several commits saw writes in flight).
    assert sum(1 for s in seen if s > 0) >= 2


def test_the_writer_pool_lives_across_batches_and_stages(engine_env: EngineEnv) -> None:
    engine = engine_env.engine()
    threads: set[str] = set()
    adapter = engine.ctx.daktela
    original = adapter.create

    def create(*args: Any, **kwargs: Any) -> Any:
        threads.add(threading.current_thread().name)
        return original(*args, **kwargs)

    adapter.create = create  # type: ignore[method-assign]
    engine.sync("account", ALL, "run-1")
    pool = adapter._pool
    assert pool is not None
    engine.sync("contact", ALL, "run-1")
    assert adapter._pool is pool  # one pool for the adapter's life, not one per batch
    assert len(threads) <= adapter.max_write_concurrency
    assert all(name.startswith("daktela-write") for name in threads)
    engine.close()
    assert adapter._pool is None


def test_a_refused_token_stops_the_stream_and_files_the_rest(engine_env: EngineEnv) -> None:
    engine = engine_env.engine()
    engine.sync("account", ALL, "run-1")
    engine_env.sim.set_latency(10)
    engine_env.sim.reset_log()
    engine_env.sim.add_fault(Fault(route=f"POST {CONTACTS}", kind="status", status=401, after=7, times=None))
    load = engine.sync("contact", ALL, "run-1")[-1]
    posts = engine_env.sim.request_count("POST", CONTACTS)
    concurrency = engine.ctx.daktela.write_pace()["limit"]
    assert 8 <= posts <= 7 + concurrency  # only the writes already on the wire after the refusal
    assert load.counts["created"] == 7 == engine_env.sim.count("contacts")
    failed = {f["source_id"]: f for f in engine.staging.failed_records("contact")}
    auth = [f for f in failed.values() if f["error_class"] == "auth"]
    assert len(auth) == _crm_contacts(engine_env) - 7 - sum(
        1 for f in failed.values() if f["error_class"] != "auth")
    # Every record of the window is in the ledger of this run or failed_records.
    ledgered = {r["source_id"] for r in engine.staging.ledger_rows("run-1", "contact")}
    assert len(ledgered | set(failed)) == _crm_contacts(engine_env)


def test_a_stage_holding_the_file_lets_a_waiting_process_in_between_chunks(tmp_path: Path) -> None:
    """One connection per stage, yet two processes interleave: the waiter leaves a marker and
    the holder gives the file up at its next chunk boundary."""
    path = tmp_path / "crmsync.duckdb"
    store = StagingStore(path)
    store.table_counts()
    script = (
        "import sys, time; from crmsync_pipelines.staging.store import StagingStore; "
        f"s = StagingStore({str(path)!r}, lock_timeout_s=20); t = time.monotonic(); "
        "s.new_batch('contact', 'ids', 'other-process', None, None); "
        "print(f'in after {time.monotonic() - t:.2f}s', flush=True)"
    )
    with store.hold():
        store.new_batch("account", "ids", "holder", None, None)
        other = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while other.poll() is None:  # the holder's chunk loop
            assert time.monotonic() < deadline
            store.new_batch("account", "ids", "holder", None, None)
            store.let_waiters_in()
            time.sleep(0.05)
        out, _ = other.communicate()
        assert other.returncode == 0 and out.startswith("in after"), out
        store.new_batch("account", "ids", "holder", None, None)  # the holder has the file again
    with store.connect() as con:
        runs = dict(con.execute("SELECT run_id, count(*) FROM batches GROUP BY 1").fetchall())
    assert runs["other-process"] == 1 and runs["holder"] >= 3
    assert not store._waiting_marker.exists()
