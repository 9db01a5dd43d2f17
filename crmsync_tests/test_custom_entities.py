"""Custom entities (``sync.custom_entities``): the demo CRM's ``partners`` table -> Daktela contacts.

Over the simulator and a real SQLite demo CRM: the CLI (window, --id, plan, retry-failed,
reset-state), the ownership rule, a crash mid-load, and the adapter contract defaults.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from crmsync_pipelines.crm.base import CrmAdapter
from crmsync_pipelines.errors import NotSupportedError
from crmsync_pipelines.simulator import Fault
from crmsync_pipelines.staging import StagingStore
from crmsync_tests.fixtures.pipeline import PipelineWorld
from crmsync_tests.test_cli_sync import _row, run

pytestmark = pytest.mark.slow

ENTITY = "custom:partners"


def _partners(world: PipelineWorld) -> list[dict[str, Any]]:
    with sqlite3.connect(world.paths.crm) as con:
        con.row_factory = sqlite3.Row
        return [dict(r) for r in con.execute("SELECT * FROM partners ORDER BY id")]


def _add_partners(world: PipelineWorld, count: int, start: int = 1000) -> list[str]:
    with sqlite3.connect(world.paths.crm) as con:
        con.executemany(
            "INSERT INTO partners (id, first_name, last_name, company, email, phone, account_id, level, updated_at) "
            "VALUES (?, ?, ?, ?, ?, NULL, NULL, 'gold', '2026-11-01T10:00:00+00:00')",
            [(i, f"Petr{i}", f"Partner{i}", f"Firma {i} s.r.o.", f"p{i}@example.cz")
             for i in range(start, start + count)],
        )
    return [str(i) for i in range(start, start + count)]


def _ledger(world: PipelineWorld, run_id: str | None = None) -> list[dict[str, Any]]:
    return StagingStore(world.paths.staging).ledger_rows(run_id, ENTITY)


def test_partners_sync_end_to_end_keyed_custom_and_then_nothing_changes(pipeline_world: PipelineWorld) -> None:
    world = pipeline_world
    partners = _partners(world)
    assert len(partners) == world.crm_stats.partners == 3
    world.simulator.reset_log()

    code, out = run("sync", "--entity", ENTITY, "--since", "2000-01-01")
    assert code == 0, out
    assert int(_row(out, ENTITY)["created"]) == 3
    for partner in partners:
        stored = world.simulator.get("contacts", f"partner_{partner['id']}")
        assert stored is not None
        assert stored["lastname"] == partner["last_name"] and stored["description"] == partner["company"]
        if partner["account_id"] is not None:  # the related account was synced on the fly first
            account = stored["account"]
            name = account["name"] if isinstance(account, dict) else account
            assert name == f"crm_acc_{partner['account_id']}"
            assert world.simulator.get("accounts", name) is not None
    rows = _ledger(world)
    assert sorted((r["source_id"], r["outcome"], r["lookup_key"]) for r in rows) == sorted(
        (str(p["id"]), "created", f"partner_{p['id']}") for p in partners)
    store = StagingStore(world.paths.staging)
    with store.connect() as con:
        keys = con.execute("SELECT lookup_key FROM synced_state WHERE entity = ? ORDER BY 1", [ENTITY]).fetchall()
        native = con.execute("SELECT count(*) FROM synced_state WHERE entity = 'contact'").fetchone()
    assert [k[0] for k in keys] == sorted(f"partner_{p['id']}" for p in partners)
    assert native is not None and native[0] == 0  # no native contact was synced or remembered

    world.simulator.reset_log()
    code, out = run("sync", "--entity", ENTITY, "--since", "2000-01-01")
    assert code == 0, out
    assert world.writes() == 0
    assert int(_row(out, ENTITY)["unchanged"]) == 3

    # One field changes in the CRM: exactly one PUT, with that field.
    first = partners[0]
    with sqlite3.connect(world.paths.crm) as con:
        con.execute("UPDATE partners SET company = 'Nová firma a.s.' WHERE id = ?", [first["id"]])
    world.simulator.reset_log()
    code, out = run("sync", "--entity", ENTITY, "--id", str(first["id"]))
    assert code == 0, out
    assert f"{ENTITY} {first['id']} -> partner_{first['id']}: updated" in out
    assert f"    description: '{first['company']}' -> 'Nová firma a.s.'" in out
    puts = [r for r in world.simulator.request_log if r.method == "PUT"]
    assert [(r.path, set(r.json)) for r in puts] == [(f"/api/v6/contacts/partner_{first['id']}.json", {"description"})]


def test_a_full_cli_sync_runs_custom_entities_last_with_their_own_row(pipeline_world: PipelineWorld) -> None:
    code, out = run("sync", "--force-full")
    assert code in (0, 1), out
    lines = [line.split()[0] for line in out.splitlines() if line and line.split()[0] in
             ("account", "auto_contact", "contact", "activity", ENTITY)]
    assert lines[-1] == ENTITY and lines[:1] == ["account"]
    assert int(_row(out, ENTITY)["created"]) == 3


def test_plan_and_reset_state_accept_a_custom_entity(pipeline_world: PipelineWorld) -> None:
    world = pipeline_world
    world.simulator.reset_log()
    code, out = run("plan", "--entity", ENTITY, "--since", "2000-01-01")
    assert code == 0, out
    assert f"{ENTITY}: 3 would be created, 0 would be updated" in out
    assert world.writes() == 0
    run("sync", "--entity", ENTITY, "--since", "2000-01-01")
    code, out = run("reset-state", "--entity", ENTITY, "--yes")
    assert code == 0 and f"sync state reset for {ENTITY}" in out
    with StagingStore(world.paths.staging).connect() as con:
        left = con.execute("SELECT count(*) FROM synced_state WHERE entity = ?", [ENTITY]).fetchone()
    assert left is not None and left[0] == 0
    world.simulator.reset_log()
    code, out = run("sync", "--entity", ENTITY, "--since", "2000-01-01")
    assert code == 0 and int(_row(out, ENTITY)["unchanged"]) == 3 and world.writes() == 0


def test_unknown_or_disabled_custom_entities_are_refused(pipeline_world: PipelineWorld) -> None:
    code, out = run("sync", "--entity", "custom:nope", "--since", "2000-01-01")
    assert code == 1 and "entity not enabled in sync.yaml: custom:nope" in out
    code, out = run("sync", "--entity", "custom:")
    assert code == 2
    code, out = run("retry-failed", "--entity", "custom:nope")
    assert code == 1 and "custom:nope" in out
    code, out = run("reset-state", "--entity", "custom:nope", "--yes")
    assert code == 1 and "entity not enabled in sync.yaml: custom:nope" in out


def test_failed_partners_wait_under_their_own_key_and_retry_failed_recovers_them(
    pipeline_world: PipelineWorld,
) -> None:
    world = pipeline_world
    run("sync", "--entity", "account", "--since", "2000-01-01")
    world.simulator.add_fault(Fault(route="POST /api/v6/contacts.json", kind="status", status=400, times=None))
    code, out = run("sync", "--entity", ENTITY, "--since", "2000-01-01")
    assert code == 1, out
    assert int(_row(out, ENTITY)["failed"]) == 3
    failed = StagingStore(world.paths.staging).failed_records(ENTITY)
    assert sorted(r["source_id"] for r in failed) == sorted(str(p["id"]) for p in _partners(world))
    assert {r["error_class"] for r in failed} == {"validation"}
    assert StagingStore(world.paths.staging).failed_records("contact") == []
    world.simulator.clear_faults()

    code, out = run("retry-failed", "--entity", ENTITY)
    assert code == 0, out
    assert "retrying 3 failed record(s)" in out and "0 record(s) still failed" in out
    assert int(_row(out, ENTITY)["created"]) == 3
    assert StagingStore(world.paths.staging).failed_records(ENTITY) == []


def test_two_custom_entities_writing_one_daktela_name_conflict_visibly(pipeline_world: PipelineWorld) -> None:
    world = pipeline_world
    raw = yaml.safe_load(world.paths.config.read_text(encoding="utf-8"))
    twin = dict(raw["sync"]["custom_entities"][0], name="partners_twin")
    raw["sync"]["custom_entities"].append(twin)
    world.paths.config.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    code, out = run("sync", "--entity", ENTITY, "--entity", "custom:partners_twin", "--since", "2000-01-01")
    assert code == 1, out
    assert int(_row(out, ENTITY)["created"]) == 3
    assert int(_row(out, "custom:partners_twin")["failed"]) == 3
    assert "[conflict]" in out and "is already synced from custom:partners" in out
    failed = StagingStore(world.paths.staging).failed_records("custom:partners_twin")
    assert {r["error_class"] for r in failed} == {"conflict"} and len(failed) == 3
    assert world.simulator.count("contacts") >= 3


CRASH_SCRIPT = textwrap.dedent(
    """
    import sys
    from crmsync_pipelines.config import load_config
    from crmsync_pipelines.engine import SyncEngine, Window
    from crmsync_pipelines.engine.custom import engine_for
    engine = SyncEngine.from_config(load_config(sys.argv[1]))
    engine_for(engine, sys.argv[2]).sync(sys.argv[2], Window(None, None), sys.argv[3])
    print("finished", flush=True)
    """
)


def test_a_crash_mid_load_then_a_rerun_completes_without_duplicates(pipeline_world: PipelineWorld) -> None:
    world = pipeline_world
    raw = yaml.safe_load(world.paths.config.read_text(encoding="utf-8"))
    raw["sync"]["batch_size"] = 5
    world.paths.config.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    _add_partners(world, 40)
    total = len(_partners(world))
    script = world.paths.data_dir / "run_sync.py"
    script.write_text(CRASH_SCRIPT, encoding="utf-8")
    world.simulator.set_latency(40)
    proc = subprocess.Popen([sys.executable, str(script), str(world.paths.config), ENTITY, "run-crash"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    deadline = time.monotonic() + 60
    while world.simulator.request_count("POST", "/api/v6/contacts.json") < 12:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    world.simulator.set_latency(0)

    def landed() -> int:
        return sum(1 for c in world.simulator.all("contacts") if str(c.get("name", "")).startswith("partner_"))

    seen = -1
    while seen != landed():
        seen = landed()
        time.sleep(0.5)
    assert 0 < seen < total
    recorded = sum(1 for r in _ledger(world, "run-crash") if r["outcome"] == "created")
    assert 0 <= seen - recorded <= 5  # writes are ledgered every batch_size (5) records

    from crmsync_pipelines.config import load_config
    from crmsync_pipelines.engine import SyncEngine, Window
    from crmsync_pipelines.engine.custom import engine_for

    engine = SyncEngine.from_config(load_config(world.paths.config))
    try:
        load = engine_for(engine, ENTITY).sync(ENTITY, Window(None, None), "run-after")[-1]
    finally:
        engine.close()
    assert load.counts.get("failed", 0) == 0
    assert load.counts["created"] + load.counts.get("unchanged", 0) == total
    assert load.counts["created"] == total - seen
    assert landed() == total
    assert StagingStore(world.paths.staging).failed_records(ENTITY) == []


def test_the_adapter_contract_defaults_raise_not_supported() -> None:
    class Minimal(CrmAdapter):
        name = "minimal"

        def ping(self) -> bool: return True
        def iter_accounts(self, since: Any = None, until: Any = None) -> Any: return iter(())
        def get_account(self, account_id: str) -> Any: return None
        def find_account_by(self, field: str, value: Any) -> Any: return None
        def search_accounts(self, query: str) -> Any: return iter(())
        def iter_contacts(self, since: Any = None, until: Any = None) -> Any: return iter(())
        def get_contact(self, contact_id: str) -> Any: return None
        def find_contact_by(self, field: str, value: Any) -> Any: return None
        def search_contacts(self, query: str) -> Any: return iter(())
        def find_activity_by(self, field: str, value: Any) -> Any: return None
        def create_activity(self, record: Any) -> Any: return record
        def update_activity(self, activity_id: str, record: Any) -> Any: return record
        def upsert_activity(self, lookup_field: str, record: Any) -> Any: return record

    adapter = Minimal()
    with pytest.raises(NotSupportedError, match="minimal adapter does not support custom entities"):
        adapter.iter_custom("partners")
    with pytest.raises(NotSupportedError):
        adapter.get_custom("partners", ["1"])


def test_the_sql_adapter_reads_configured_custom_tables_only(tmp_path: Path) -> None:
    from crmsync_pipelines.crm.demo_data import create_demo_crm
    from crmsync_pipelines.crm.sql import SqlCrmAdapter
    from crmsync_pipelines.errors import ConfigError

    path = tmp_path / "crm.sqlite"
    stats = create_demo_crm(path, accounts=30, contacts=5, seed=3)
    adapter = SqlCrmAdapter.from_settings(
        {"path": str(path), "custom_sources": {"partners": {"table": "partners", "reference_columns": ["account_id"]}}},
        base_dir=tmp_path)
    try:
        records = list(adapter.iter_custom("partners"))
        assert len(records) == stats.partners == 3
        assert all(isinstance(r["id"], str) for r in records)
        assert all(r["account_id"] is None or isinstance(r["account_id"], str) for r in records)
        assert adapter.get_custom("partners", ["2", "999"]) == {"2": next(r for r in records if r["id"] == "2")}
        with pytest.raises(ConfigError, match="custom source 'erp' is not configured"):
            adapter.iter_custom("erp")
    finally:
        adapter.close()
    with pytest.raises(ConfigError, match=r"custom_sources\.partners"):
        SqlCrmAdapter.from_settings({"path": str(path), "custom_sources": {"partners": {"table": "nope"}}},
                                    base_dir=tmp_path)


def test_dagster_crm_to_daktela_materializes_the_partners_chain(
    pipeline_world: PipelineWorld, dagster_instance: Any
) -> None:
    import dagster as dg

    from crmsync_pipelines.definitions import defs
    from crmsync_pipelines.defs.materialize import current_partition_key
    from crmsync_pipelines.defs.partitions import sync_partitions

    world = pipeline_world
    key = current_partition_key()
    window = sync_partitions.time_window_for_partition_key(key)
    in_window = [p for p in _partners(world)
                 if window.start <= datetime.fromisoformat(p["updated_at"]) < window.end]
    assert in_window  # the demo always has a partner modified today
    result = defs().resolve_job_def("crm_to_daktela").execute_in_process(instance=dagster_instance,
                                                                          partition_key=key)
    assert result.success
    for partner in in_window:
        assert world.simulator.get("contacts", f"partner_{partner['id']}") is not None
    rows = _ledger(world, result.run_id)
    assert sorted(r["source_id"] for r in rows) == sorted(str(p["id"]) for p in in_window)
    assert {r["outcome"] for r in rows} == {"created"}
    event = dagster_instance.get_latest_materialization_event(dg.AssetKey(["daktela", "custom_partners"]))
    metadata = {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}
    assert metadata["dagster/row_count"] == len(in_window)
    checks = {(e.asset_check_evaluation_data.check_name, e.asset_check_evaluation_data.passed)
              for e in result.all_events if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
              and e.asset_check_evaluation_data.asset_key == dg.AssetKey(["daktela", "custom_partners"])}
    assert checks == {("no_failed_records", True), ("reconciliation", True)}
    order = [e.step_key for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_SUCCESS]
    assert order.index("daktela__custom_partners") > order.index("daktela__contacts")


# -- the conformance kit covers custom sources ---------------------------------------------------------
from crmsync_pipelines.crm.conformance import CrmAdapterConformance  # noqa: E402
from crmsync_pipelines.crm.demo_data import DemoCrmSeeder  # noqa: E402


class PartnerSeeder(DemoCrmSeeder):
    def add_custom(self, source: str, record: Any, modified: datetime) -> str:
        assert source == "partners"
        return self._insert("partners", record, modified)


class TestSqlCustomSourceConformance(CrmAdapterConformance):
    """The SQL adapter with a configured custom source passes the kit, custom checks included."""

    custom_source = "partners"

    @pytest.fixture
    def adapter(self, tmp_path: Path) -> Any:
        from crmsync_pipelines.crm.demo_data import create_demo_crm
        from crmsync_pipelines.crm.sql import SqlCrmAdapter

        path = create_demo_crm(tmp_path / "conformance.sqlite", accounts=0, contacts=0).path
        adapter = SqlCrmAdapter.from_settings(
            {"path": str(path), "custom_sources": {"partners": {"table": "partners"}}}, base_dir=tmp_path)
        yield adapter
        adapter.close()

    @pytest.fixture
    def seed(self, adapter: Any) -> PartnerSeeder:
        return PartnerSeeder(adapter.path)


class TestPlainAdapterWithoutCustomSources(TestSqlCustomSourceConformance):
    """An adapter keeping the base class's defaults: the custom checks skip, the default raises."""

    custom_source = None

    @pytest.fixture
    def adapter(self, tmp_path: Path) -> Any:
        from crmsync_pipelines.crm.demo_data import create_demo_crm
        from crmsync_pipelines.crm.sql import SqlCrmAdapter

        class NoCustom(SqlCrmAdapter):
            iter_custom = CrmAdapter.iter_custom
            get_custom = CrmAdapter.get_custom

        path = create_demo_crm(tmp_path / "conformance.sqlite", accounts=0, contacts=0).path
        adapter = NoCustom.from_settings({"path": str(path)}, base_dir=tmp_path)
        yield adapter
        adapter.close()


def test_the_kit_catches_a_custom_window_that_ignores_until(tmp_path: Path) -> None:
    from crmsync_pipelines.crm.demo_data import create_demo_crm
    from crmsync_pipelines.crm.sql import SqlCrmAdapter

    class IgnoresUntil(SqlCrmAdapter):
        def iter_custom(self, source: str, since: Any = None, until: Any = None) -> Any:
            return super().iter_custom(source, since, None)

    path = create_demo_crm(tmp_path / "c.sqlite", accounts=0, contacts=0).path
    adapter = IgnoresUntil.from_settings({"path": str(path), "custom_sources": {"partners": {"table": "partners"}}},
                                         base_dir=tmp_path)
    try:
        with pytest.raises(AssertionError, match="since inclusive, until exclusive"):
            TestSqlCustomSourceConformance().test_custom_window_and_get_by_ids(adapter, PartnerSeeder(path))
    finally:
        adapter.close()


def test_the_kit_catches_a_get_custom_that_hides_unsupported(tmp_path: Path) -> None:
    from crmsync_pipelines.crm.demo_data import create_demo_crm
    from crmsync_pipelines.crm.sql import SqlCrmAdapter

    class QuietGet(SqlCrmAdapter):
        iter_custom = CrmAdapter.iter_custom

        def get_custom(self, source: str, record_ids: Any) -> Any:
            return {}

    path = create_demo_crm(tmp_path / "c.sqlite", accounts=0, contacts=0).path
    adapter = QuietGet.from_settings({"path": str(path)}, base_dir=tmp_path)
    try:
        with pytest.raises(AssertionError, match="get_custom"):
            TestPlainAdapterWithoutCustomSources().test_custom_defaults_raise_not_supported(adapter)
    finally:
        adapter.close()


def test_a_demo_crm_from_before_partners_gets_the_table_once(tmp_path: Path) -> None:
    from crmsync_pipelines.crm.demo_data import create_demo_crm, ensure_demo_partners

    path = create_demo_crm(tmp_path / "old.sqlite", accounts=40, contacts=10, seed=5).path
    with sqlite3.connect(path) as con:
        con.execute("DROP TABLE partners")
        before = con.execute("SELECT count(*), max(updated_at) FROM contacts").fetchone()
    assert ensure_demo_partners(path) == 4
    assert ensure_demo_partners(path) == 0
    with sqlite3.connect(path) as con:
        assert con.execute("SELECT count(*) FROM partners").fetchone()[0] == 4
        assert con.execute("SELECT count(*), max(updated_at) FROM contacts").fetchone() == before


def test_the_library_and_the_sync_records_job_accept_a_custom_entity(
    pipeline_world: PipelineWorld, dagster_instance: Any
) -> None:
    import crmsync_pipelines
    from crmsync_pipelines.definitions import defs

    world = pipeline_world
    planned = crmsync_pipelines.plan(world.paths.config, entities=[ENTITY], since="2000-01-01")
    assert planned.entities[ENTITY].would_create == 3 and world.writes() == 0
    result = crmsync_pipelines.sync(world.paths.config, entities=[ENTITY], since="2000-01-01")
    assert result.ok and list(result.entities)[-1] == ENTITY and result.entities[ENTITY].created == 3

    with sqlite3.connect(world.paths.crm) as con:
        con.execute("UPDATE partners SET last_name = 'Nováková' WHERE id = 3")
    run = defs().resolve_job_def("sync_records").execute_in_process(
        instance=dagster_instance,
        run_config={"ops": {"sync_named_records": {"config": {"entity": ENTITY, "ids": ["3"]}}}},
    )
    assert run.success
    rows = _ledger(world, run.run_id)
    assert [(r["source_id"], r["outcome"]) for r in rows] == [("3", "updated")]
    assert world.simulator.get("contacts", "partner_3")["lastname"] == "Nováková"


def test_retry_failed_without_an_entity_covers_custom_entities(pipeline_world: PipelineWorld) -> None:
    world = pipeline_world
    run("sync", "--entity", "account", "--since", "2000-01-01")
    world.simulator.add_fault(Fault(route="POST /api/v6/contacts.json", kind="status", status=503, times=None))
    code, out = run("sync", "--entity", ENTITY, "--since", "2000-01-01")
    assert code == 1 and int(_row(out, ENTITY)["failed"]) == 3, out
    assert {r["error_class"] for r in StagingStore(world.paths.staging).failed_records(ENTITY)} == {"transient"}
    world.simulator.clear_faults()
    code, out = run("retry-failed")
    assert code == 0, out
    assert int(_row(out, ENTITY)["created"]) == 3
    assert StagingStore(world.paths.staging).failed_records(ENTITY) == []


def test_a_custom_record_never_overwrites_a_native_contact_of_the_same_name(
    pipeline_world: PipelineWorld, tmp_path: Path
) -> None:
    world = pipeline_world
    raw = yaml.safe_load(world.paths.config.read_text(encoding="utf-8"))
    mapping = Path(raw["sync"]["custom_entities"][0]["mapping_file"]).read_text(encoding="utf-8")
    clashing = tmp_path / "partners-crm-prefix.yaml"
    clashing.write_text(mapping.replace("value: partner_", "value: crm_"), encoding="utf-8")
    raw["sync"]["custom_entities"][0]["mapping_file"] = str(clashing)
    world.paths.config.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")

    code, out = run("sync", "--entity", "contact", "--id", "1")
    assert code == 0 and "contact 1 -> crm_1: created" in out, out
    native = world.simulator.get("contacts", "crm_1")
    world.simulator.reset_log()
    code, out = run("sync", "--entity", ENTITY, "--id", "1")
    assert code == 1, out
    assert f"{ENTITY} 1 -> crm_1: failed [conflict] Daktela contacts 'crm_1' is already synced from contact '1'" in out
    assert world.writes() == 0                              # nothing was sent for the clashing record
    assert world.simulator.get("contacts", "crm_1") == native
    failed = StagingStore(world.paths.staging).failed_records(ENTITY)
    assert [(r["source_id"], r["error_class"]) for r in failed] == [("1", "conflict")]


def test_dagster_keys_of_custom_entity_names(tmp_path: Path) -> None:
    from crmsync_pipelines.defs.custom_entities import enabled_custom_entries, key_part

    assert key_part("partners") == "custom_partners"
    assert key_part("my-partners.v2") == "custom_my_partners_v2"
    config = tmp_path / "sync.yaml"
    config.write_text(yaml.safe_dump({"sync": {"custom_entities": [
        {"name": "my-partners", "enabled": True}, {"name": "my_partners", "enabled": True},
        {"name": "off", "enabled": False}, "not a mapping", {"enabled": True},
    ]}}), encoding="utf-8")
    assert [e["name"] for e in enabled_custom_entries(config)] == ["my-partners"]  # the twin spelling is skipped
    assert enabled_custom_entries(tmp_path / "missing.yaml") == []
    (tmp_path / "broken.yaml").write_text("sync: [unclosed\n", encoding="utf-8")
    assert enabled_custom_entries(tmp_path / "broken.yaml") == []
