"""Bad data, bad mappings, crashes and concurrency: nothing is lost, nothing is duplicated."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import duckdb
import pytest

from crmsync_pipelines.engine import Window
from crmsync_pipelines.errors import StagingBusyError
from crmsync_pipelines.staging import StagingStore
from crmsync_tests.fixtures.engine import MAPPINGS, EngineEnv

ALL = Window(None, None)


def _contacts(env: EngineEnv) -> int:
    with sqlite3.connect(env.crm_path) as con:
        return int(con.execute("SELECT count(*) FROM contacts").fetchone()[0])


def _mapping_variant(env: EngineEnv, old: str, new: str) -> Path:
    text = (MAPPINGS / "contacts.yaml").read_text(encoding="utf-8")
    assert old in text
    path = env.tmp / "contacts-variant.yaml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


def test_a_broken_mapping_fails_the_blocking_check_and_writes_nothing(engine_env: EngineEnv) -> None:
    broken = _mapping_variant(engine_env, "    crm_field: id\n", "    crm_field: no_such_column\n")
    engine = engine_env.engine(accounts=True, contact_mapping=broken)
    reports = engine.sync("contact", ALL, "run-1")
    check = {c.name: c for c in reports[1].checks}["lookup_key_present"]
    assert not check.passed and check.metadata["quarantined"] == _contacts(engine_env)
    assert reports[2].counts == {"blocked": 0}
    assert engine_env.writes() == 0
    assert engine_env.sim.count("contacts") == 0


def test_bad_records_are_quarantined_alone_with_their_reason(engine_env: EngineEnv) -> None:
    with sqlite3.connect(engine_env.crm_path) as con:
        ids = [r[0] for r in con.execute("SELECT id FROM contacts ORDER BY id LIMIT 2")]
        con.execute("UPDATE contacts SET last_name = NULL, first_name = NULL WHERE id = ?", [ids[0]])
        con.execute("UPDATE contacts SET account_id = 424242 WHERE id = ?", [ids[1]])
    engine = engine_env.engine()
    engine.sync("account", ALL, "run-1")
    reports = engine.sync("contact", ALL, "run-1")
    assert all(c.passed for c in reports[1].checks)
    load = reports[2]
    assert load.counts["failed"] == 2 and load.counts["created"] == _contacts(engine_env) - 2
    dead = {d["source_id"]: d for d in engine.staging.failed_records("contact")}
    assert dead[str(ids[0])]["error_message"].startswith("[required] missing required field(s): title, lastname")
    assert dead[str(ids[1])]["error_message"].startswith("[relation] account_id='424242'")
    assert {d["error_class"] for d in dead.values()} == {"validation"}


def test_two_records_claiming_one_daktela_key_are_both_held_back(engine_env: EngineEnv) -> None:
    by_email = _mapping_variant(engine_env, "    crm_field: id\n", "    crm_field: email\n")
    with sqlite3.connect(engine_env.crm_path) as con:
        con.execute("UPDATE contacts SET email = 'c' || id || '@example.cz'")
        ids = [r[0] for r in con.execute("SELECT id FROM contacts ORDER BY id LIMIT 2")]
        con.execute("UPDATE contacts SET email = 'same@example.cz' WHERE id IN (?, ?)", ids)
    engine = engine_env.engine(contact_mapping=by_email)
    engine.sync("account", ALL, "run-1")
    load = engine.sync("contact", ALL, "run-1")[-1]
    assert load.counts["failed"] == 2
    dead = engine.staging.failed_records("contact")
    assert {d["error_class"] for d in dead} == {"conflict"}
    assert all("crm_same@example.cz" in d["error_message"] for d in dead)
    assert engine_env.sim.count("contacts") == _contacts(engine_env) - 2


def test_auto_create_contact_honours_skip_if_empty_and_skip_if_exists(engine_env: EngineEnv) -> None:
    with sqlite3.connect(engine_env.crm_path) as con:
        accounts = [r[0] for r in con.execute("SELECT id FROM accounts ORDER BY id")]
        con.execute("UPDATE accounts SET email = NULL, phone = NULL WHERE id = ?", [accounts[0]])
        con.execute("UPDATE accounts SET email = 'shared@firma.cz', phone = '+420601000111' WHERE id = ?",
                    [accounts[1]])
    plain = engine_env.engine(contacts=False)
    plain.sync("account", ALL, "run-0")
    # Somebody already created a contact for account #2 with the account's e-mail by hand.
    engine_env.sim.insert("contacts", {
        "name": "manual_1", "title": "Recepce", "lastname": "Recepce", "database": "default",
        "account": f"crm_acc_{accounts[1]}",
        "customFields": {"email": ["shared@firma.cz"], "number": ["+420777000000"]},
    })
    engine = engine_env.engine(contacts=False, auto_contact=True, mode="any")
    load = engine.sync("account", ALL, "run-1")[-1]
    assert load.counts["unchanged"] == len(accounts)
    assert load.counts["auto_contact_skipped_empty"] == 1
    assert load.counts["auto_contact_skipped"] == 1
    assert load.counts["auto_contact_created"] == len(accounts) - 2
    created = engine_env.sim.get("contacts", f"crm_acc_contact_{accounts[2]}")
    assert created is not None
    account = created["account"]
    assert (account["name"] if isinstance(account, dict) else account) == f"crm_acc_{accounts[2]}"

    # mode "all": the manual contact shares the e-mail but not the number, so it does not count.
    engine_all = engine_env.engine(contacts=False, auto_contact=True, mode="all",
                                   skip_if_exists="[customFields.email, customFields.number]")
    load = engine_all.sync("account", ALL, "run-2")[-1]
    assert load.counts.get("auto_contact_created") == 1
    assert engine_env.sim.get("contacts", f"crm_acc_contact_{accounts[1]}") is not None
    again = engine_all.sync("account", ALL, "run-3")[-1]
    assert again.counts.get("auto_contact_created", 0) == 0 and again.api_calls["daktela"] == 0


CRASH_SCRIPT = textwrap.dedent(
    """
    import sys
    from crmsync_pipelines.config import load_config
    from crmsync_pipelines.engine import SyncEngine, Window
    engine = SyncEngine.from_config(load_config(sys.argv[1]))
    engine.sync(sys.argv[2], Window(None, None), sys.argv[3])
    print("finished", flush=True)
    """
)


def _spawn(env: EngineEnv, config: Path, entity: str, run_id: str) -> subprocess.Popen[str]:
    script = env.tmp / "run_sync.py"
    script.write_text(CRASH_SCRIPT, encoding="utf-8")
    return subprocess.Popen([sys.executable, str(script), str(config), entity, run_id],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))


def test_a_crash_mid_load_then_a_rerun_completes_without_duplicates(engine_env: EngineEnv) -> None:
    config = engine_env.write_config()
    engine = engine_env.engine()
    engine.sync("account", ALL, "run-0")
    engine_env.sim.set_latency(40)
    proc = _spawn(engine_env, config, "contact", "run-crash")
    deadline = time.monotonic() + 60
    while engine_env.sim.request_count("POST", "/api/v6/contacts.json") < 8:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    engine_env.sim.set_latency(0)
    # Requests already on the wire when the client died still complete server-side: wait for them.
    landed = -1
    while landed != engine_env.sim.count("contacts"):
        landed = engine_env.sim.count("contacts")
        time.sleep(0.5)
    assert 0 < landed < _contacts(engine_env)
    # Writes are ledgered every sync.batch_size (5) records: at most one batch is unrecorded.
    recorded = {(r["entity"], r["outcome"]): r["count"] for r in engine.staging.ledger_summary("run-crash")}
    assert 0 <= landed - recorded.get(("contact", "created"), 0) <= 5

    load = engine.sync("contact", ALL, "run-after")[-1]
    total = _contacts(engine_env)
    assert load.counts.get("failed", 0) == 0
    assert load.counts["created"] + load.counts.get("unchanged", 0) == total
    assert load.counts["created"] == total - landed
    assert engine_env.sim.count("contacts") == total
    assert engine.staging.failed_records() == []


def test_two_concurrent_runs_serialise_and_never_duplicate(engine_env: EngineEnv) -> None:
    config = engine_env.write_config()
    engine_env.engine().sync("account", ALL, "run-0")
    engine_env.sim.set_latency(10)
    first, second = _spawn(engine_env, config, "contact", "run-a"), _spawn(engine_env, config, "contact", "run-b")
    outputs = [p.communicate(timeout=180) for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], outputs
    total = _contacts(engine_env)
    assert engine_env.sim.count("contacts") == total
    assert engine_env.sim.request_count("POST", "/api/v6/contacts.json") == total
    summary = StagingStore(engine_env.tmp / "crmsync.duckdb").ledger_summary()
    by = {(r["entity"], r["outcome"]): r["count"] for r in summary}
    assert by[("contact", "created")] == total and by[("contact", "unchanged")] == total


def test_a_held_staging_file_gives_a_clear_error_instead_of_hanging(tmp_path: Path) -> None:
    path = tmp_path / "crmsync.duckdb"
    StagingStore(path).table_counts()
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb,time; c=duckdb.connect({str(path)!r}); print('held', flush=True); "
                               "time.sleep(30)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        store = StagingStore(path, lock_timeout_s=1.0)
        store._schema_ready = True
        with pytest.raises(StagingBusyError, match="held by another process"):
            store.table_counts()
    finally:
        holder.kill()
        holder.wait()
    assert StagingStore(path).table_counts()["ledger"] == 0


def test_entity_lock_makes_the_second_loader_wait(tmp_path: Path) -> None:
    store = StagingStore(tmp_path / "crmsync.duckdb", lock_timeout_s=0.5)
    entered = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with store.entity_lock("contact"):
            entered.set()
            release.wait(5)

    worker = threading.Thread(target=hold)
    worker.start()
    assert entered.wait(5)
    with pytest.raises(StagingBusyError, match="loading contact records"), store.entity_lock("contact"):
        pass
    with store.entity_lock("account"):
        pass  # other entities are independent
    release.set()
    worker.join()
    with store.entity_lock("contact"):
        pass
    assert duckdb.__version__
