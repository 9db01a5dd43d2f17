"""End-to-end Dagster runs against the real simulator, demo CRM and DuckDB staging.

Each run goes through ``dg.materialize`` with the production resources (EnvVar and all), so
what is asserted here — records written, API calls, ledger rows, metadata — is what a
scheduled run does.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import yaml

from crmsync_pipelines.defs.materialize import current_partition_key
from crmsync_pipelines.defs.partitions import sync_partitions
from crmsync_tests.fixtures.pipeline import PipelineWorld

pytestmark = pytest.mark.slow

CRM_TO_DAKTELA = ["crm/accounts", "staging/accounts_mapped", "daktela/accounts",
                  "crm/contacts", "staging/contacts_mapped", "daktela/contacts"]


def _assets(keys: list[str]) -> list[dg.AssetsDefinition]:
    from crmsync_pipelines.definitions import defs

    wanted = {dg.AssetKey.from_user_string(k) for k in keys}
    definitions = defs()
    assets = [a for a in definitions.assets or [] if isinstance(a, dg.AssetsDefinition) and set(a.keys) & wanted]
    checks = [c for c in definitions.asset_checks or []
              if isinstance(c, dg.AssetChecksDefinition) and {k.asset_key for k in c.check_keys} & wanted]
    return [*assets, *checks]


def _in_window(world: PipelineWorld, table: str, start: datetime, end: datetime) -> int:
    with sqlite3.connect(world.paths.crm) as con:
        row = con.execute(f"SELECT count(*) FROM {table} WHERE updated_at >= ? AND updated_at < ?",
                          (_iso(start), _iso(end))).fetchone()
    return int(row[0])


def _metadata(instance: dg.DagsterInstance, key: str) -> dict[str, object]:
    event = instance.get_latest_materialization_event(dg.AssetKey.from_user_string(key))
    assert event is not None and event.asset_materialization is not None
    return {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}


def test_first_sync_then_rerun_writes_nothing_then_incremental_writes_only_changes(
    pipeline_world: PipelineWorld, dagster_instance: dg.DagsterInstance
) -> None:
    world, instance = pipeline_world, dagster_instance
    key = current_partition_key()
    window = sync_partitions.time_window_for_partition_key(key)
    contacts_in_window = _in_window(world, "contacts", window.start, window.end)
    assert contacts_in_window > 0, "the demo CRM must have contacts modified today"
    assets = _assets(CRM_TO_DAKTELA)

    first = dg.materialize(assets, instance=instance, resources=world.resources(), partition_key=key)
    assert first.success
    ledger = world.ledger(first.run_id)
    assert ledger.get(("contact", "created"), 0) == contacts_in_window
    assert ledger.get(("contact", "failed"), 0) == 0
    assert world.simulator.count("contacts") >= contacts_in_window
    meta = _metadata(instance, "daktela/contacts")
    assert meta["records_created"] == contacts_in_window
    assert meta["api_calls_daktela"] > 0
    assert meta["window_start"] == window.start.isoformat()
    assert meta["failures_sample"] == "No failed records."
    daktela_contacts = world.simulator.count("contacts")

    world.simulator.reset_log()
    again = dg.materialize(assets, instance=instance, resources=world.resources(), partition_key=key)
    assert again.success
    assert world.writes() == 0, "re-materializing an unchanged partition must not write"
    assert world.simulator.count("contacts") == daktela_contacts
    assert world.ledger(again.run_id).get(("contact", "unchanged"), 0) == contacts_in_window
    assert _metadata(instance, "daktela/contacts")["records_unchanged"] == contacts_in_window

    from crmsync_pipelines.crm.demo_data import mutate_demo_crm

    before = _modified_times(world)
    synced = {cid for cid, at in before.items() if _iso(window.start) <= at < _iso(window.end)}
    mutation = mutate_demo_crm(world.paths.crm, touch_pct=25.0, seed=3)
    touched = {cid for cid, at in _modified_times(world).items() if before.get(cid) != at}
    assert mutation.contacts_touched == len(touched) > 0
    world.simulator.reset_log()
    incremental = dg.materialize(assets, instance=instance, resources=world.resources(), partition_key=key)
    assert incremental.success
    ledger = world.ledger(incremental.run_id)
    assert ledger.get(("contact", "updated"), 0) == len(touched & synced)
    assert ledger.get(("contact", "created"), 0) == len(touched - synced)
    assert ledger.get(("contact", "unchanged"), 0) == len(synced - touched)
    # Only the changes are written (auto-created account contacts are contacts too).
    assert world.simulator.request_count("PUT", "/api/v6/contacts/*") == (
        ledger.get(("contact", "updated"), 0) + ledger.get(("auto_contact", "updated"), 0))
    assert world.simulator.request_count("POST", "/api/v6/contacts.json") == (
        ledger.get(("contact", "created"), 0) + ledger.get(("auto_contact", "created"), 0))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _modified_times(world: PipelineWorld) -> dict[str, str]:
    with sqlite3.connect(world.paths.crm) as con:
        return {str(cid): at for cid, at in con.execute("SELECT id, updated_at FROM contacts")}


def test_range_backfill_runs_as_one_run_over_the_whole_window(
    pipeline_world: PipelineWorld, dagster_instance: dg.DagsterInstance
) -> None:
    world, instance = pipeline_world, dagster_instance
    today = current_partition_key()
    start_key = sync_partitions.get_partition_keys_between_indexes(0, 10_000)[-3]
    window_start = sync_partitions.time_window_for_partition_key(start_key).start
    window_end = sync_partitions.time_window_for_partition_key(today).end
    expected = _in_window(world, "contacts", window_start, window_end)

    result = dg.materialize(
        _assets(CRM_TO_DAKTELA), instance=instance, resources=world.resources(),
        tags={"dagster/asset_partition_range_start": start_key, "dagster/asset_partition_range_end": today},
    )
    assert result.success
    runs = instance.get_runs()
    assert len(runs) == 1, "a range backfill is one run"
    materialized = [e.partition for e in result.get_asset_materialization_events()
                    if e.asset_key == dg.AssetKey(["daktela", "contacts"])]
    assert sorted(materialized) == sync_partitions.get_partition_keys_in_range(dg.PartitionKeyRange(start_key, today))
    meta = _metadata(instance, "daktela/contacts")
    assert meta["partitions_in_run"] == 3
    assert (meta["window_start"], meta["window_end"]) == (window_start.isoformat(), window_end.isoformat())
    assert world.ledger(result.run_id).get(("contact", "created"), 0) == expected


def _break_account_mapping(world: PipelineWorld, tmp_path: Path) -> None:
    """A mapping bug in the world's config: every account gets the same Daktela name."""
    broken = tmp_path / "accounts-broken.yaml"
    broken.write_text(textwrap.dedent("""
        entity: account
        lookup_field: name
        mappings:
          - {cc_field: name, value: crm_acc_same}
          - {cc_field: title, crm_field: name}
    """), encoding="utf-8")
    config = yaml.safe_load(world.paths.config.read_text(encoding="utf-8"))
    config["sync"]["entities"]["account"]["mapping_file"] = str(broken)
    world.paths.config.write_text(yaml.safe_dump(config), encoding="utf-8")


def test_failing_blocking_check_stops_the_load_and_writes_nothing(
    pipeline_world: PipelineWorld, dagster_instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    world, instance = pipeline_world, dagster_instance
    _break_account_mapping(world, tmp_path)
    accounts_before = world.simulator.count("accounts")
    world.simulator.reset_log()

    result = dg.materialize(
        _assets(["crm/accounts", "staging/accounts_mapped", "daktela/accounts"]), instance=instance,
        resources=world.resources(), partition_key=current_partition_key(), raise_on_error=False,
    )
    assert not result.success
    evaluations = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert evaluations["lookup_key_unique"] is False
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "daktela/accounts" not in materialized
    assert world.writes() == 0
    assert world.simulator.count("accounts") == accounts_before


_CONCURRENT_RUN = """
import sys, dagster as dg
from crmsync_tests.test_dagster_e2e import _assets, CRM_TO_DAKTELA
from crmsync_pipelines.defs.resources import default_sync_engine
from crmsync_pipelines.defs.materialize import current_partition_key
with dg.DagsterInstance.get() as instance:
    result = dg.materialize(_assets(CRM_TO_DAKTELA), instance=instance, partition_key=current_partition_key(),
                            resources={"sync_engine": default_sync_engine()}, raise_on_error=False)
sys.exit(0 if result.success else 1)
"""


def test_two_concurrent_runs_of_one_partition_do_not_duplicate(
    pipeline_world: PipelineWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = pipeline_world
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry: {enabled: false}\n", encoding="utf-8")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    # Create the instance's storage first: two processes migrating a new SQLite home at once race.
    with dg.DagsterInstance.get():
        pass
    key = current_partition_key()
    window = sync_partitions.time_window_for_partition_key(key)
    expected = _in_window(world, "contacts", window.start, window.end)
    root = Path(__file__).resolve().parents[1]
    processes = [subprocess.Popen([sys.executable, "-c", _CONCURRENT_RUN], cwd=root,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for _ in range(2)]
    outputs = [p.communicate(timeout=240)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    names = [c["name"] for c in world.simulator.all("contacts") if str(c.get("name", "")).startswith("crm_")]
    assert len(names) == len(set(names)), "a contact was created twice"
    ledger = world.ledger()
    assert ledger.get(("contact", "created"), 0) == expected
    assert ledger.get(("contact", "unchanged"), 0) == expected


def test_window_start_is_in_the_instance_time_zone() -> None:
    key = current_partition_key(datetime(2026, 11, 27, 23, 30, tzinfo=UTC))
    assert key == "2026-11-28"
    window = sync_partitions.time_window_for_partition_key(key)
    assert window.end - window.start == timedelta(days=1)
    assert window.start.utcoffset() == timedelta(hours=1)


def test_bad_token_fails_the_load_once_without_retries_or_leaks(
    pipeline_world: PipelineWorld, dagster_instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crmsync_pipelines.definitions import defs

    bad_token = "wrong-token-5f1e0c9a"
    accounts_before = pipeline_world.simulator.count("accounts")
    monkeypatch.setenv("DAKTELA_ACCESS_TOKEN", bad_token)
    job = defs().resolve_job_def("crm_to_daktela")
    result = job.execute_in_process(instance=dagster_instance, partition_key=current_partition_key(),
                                    raise_on_error=False)
    assert not result.success
    failures = [e for e in result.all_events if e.is_step_failure]
    assert [e.step_key for e in failures] == ["daktela__accounts"]
    assert not [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
    message = failures[0].step_failure_data.user_failure_data.description  # type: ignore[union-attr]
    assert "AuthError" in message
    logs = " ".join(str(e.message) for e in result.all_events)
    assert bad_token not in logs and bad_token not in message
    assert pipeline_world.simulator.count("accounts") == accounts_before


def test_a_disabled_entity_materializes_as_a_no_op(
    pipeline_world: PipelineWorld, dagster_instance: dg.DagsterInstance
) -> None:
    config = yaml.safe_load(pipeline_world.paths.config.read_text(encoding="utf-8"))
    config["sync"]["entities"]["activity"]["enabled"] = False
    pipeline_world.paths.config.write_text(yaml.safe_dump(config), encoding="utf-8")
    pipeline_world.simulator.reset_log()
    result = dg.materialize(
        _assets(["daktela/activities", "staging/activities_mapped", "crm/activities"]),
        instance=dagster_instance, resources=pipeline_world.resources(), partition_key=current_partition_key(),
    )
    assert result.success
    assert _metadata(dagster_instance, "crm/activities")["entity_enabled"] is False
    assert pipeline_world.simulator.request_count() == 0
