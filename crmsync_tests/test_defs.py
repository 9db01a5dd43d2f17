"""Definitions-level tests: the code location loads without secrets, and the asset graph,
jobs, schedules and partitions are exactly what the data team and operators rely on."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import pytest

from crmsync_pipelines.defs.partitions import (
    DEFAULT_SETTINGS,
    PartitionSettings,
    build_partitions_def,
    read_partition_settings,
    sync_partitions,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]

EXPECTED_DEPS = {
    "crm/accounts": set(),
    "staging/accounts_mapped": {"crm/accounts"},
    "daktela/accounts": {"staging/accounts_mapped"},
    "crm/contacts": set(),
    "staging/contacts_mapped": {"crm/contacts"},
    "daktela/contacts": {"staging/contacts_mapped", "daktela/accounts"},
    "daktela/activities": set(),
    "staging/activities_mapped": {"daktela/activities"},
    "crm/activities": {"staging/activities_mapped"},
    # The bundled sync.yaml's custom entity (sync.custom_entities "partners"), loaded after the natives.
    "crm/custom_partners": set(),
    "staging/custom_partners_mapped": {"crm/custom_partners"},
    "daktela/custom_partners": {"staging/custom_partners_mapped", "daktela/accounts", "daktela/contacts"},
}
EXPECTED_GROUPS = {
    **dict.fromkeys(["crm/accounts", "staging/accounts_mapped", "daktela/accounts", "crm/contacts",
                     "staging/contacts_mapped", "daktela/contacts", "crm/custom_partners",
                     "staging/custom_partners_mapped", "daktela/custom_partners"], "crm_to_daktela"),
    **dict.fromkeys(["daktela/activities", "staging/activities_mapped", "crm/activities"], "daktela_to_crm"),
}
EXPECTED_KINDS = {
    "crm/accounts": {"crm", "duckdb"}, "crm/contacts": {"crm", "duckdb"},
    "daktela/activities": {"daktela", "duckdb"},
    "staging/accounts_mapped": {"python", "duckdb"}, "staging/contacts_mapped": {"python", "duckdb"},
    "staging/activities_mapped": {"python", "duckdb"},
    "daktela/accounts": {"daktela"}, "daktela/contacts": {"daktela"}, "crm/activities": {"crm"},
    "crm/custom_partners": {"crm", "duckdb"}, "staging/custom_partners_mapped": {"python", "duckdb"},
    "daktela/custom_partners": {"daktela"},
}


@pytest.fixture(scope="module")
def repo() -> dg.RepositoryDefinition:
    from crmsync_pipelines.definitions import defs

    definitions = defs()
    dg.Definitions.validate_loadable(definitions)
    return definitions.get_repository_def()


def _flow_keys(repo: dg.RepositoryDefinition) -> set[str]:
    return {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()
            if repo.asset_graph.get(k).group_name in ("crm_to_daktela", "daktela_to_crm")}


def test_asset_keys_deps_and_groups_are_exact(repo: dg.RepositoryDefinition) -> None:
    graph = repo.asset_graph
    assert _flow_keys(repo) == set(EXPECTED_DEPS)
    for key, deps in EXPECTED_DEPS.items():
        node = graph.get(dg.AssetKey.from_user_string(key))
        assert {p.to_user_string() for p in node.parent_keys} == deps, key
        assert node.group_name == EXPECTED_GROUPS[key], key
        # The CRM's own icon kind (sqlite for the bundled SQL adapter) joins on CRM nodes.
        assert set(node.kinds) - {"sqlite"} == EXPECTED_KINDS[key], key
        assert node.description and len(node.description) > 40, key


def test_each_node_says_its_system_and_role_at_a_glance(repo: dg.RepositoryDefinition) -> None:
    """The graph titles nodes by the last key part (two "accounts"): the node's first
    description line and its kinds tell them apart."""
    heads = {"crm": "[CRM · ", "daktela": "[Daktela · ", "staging": "[Staging · mapped]"}
    roles = {}
    for key in EXPECTED_DEPS:
        node = repo.asset_graph.get(dg.AssetKey.from_user_string(key))
        system = key.split("/")[0]
        assert node.description.startswith(heads[system]), (key, node.description)
        assert node.tags["crmsync/system"] == system
        roles[key] = node.tags["crmsync/role"]
        if system in ("crm", "daktela"):
            assert system in node.kinds, key
    assert roles == {"crm/accounts": "source", "crm/contacts": "source", "daktela/activities": "source",
                     "staging/accounts_mapped": "mapped", "staging/contacts_mapped": "mapped",
                     "staging/activities_mapped": "mapped", "daktela/accounts": "target",
                     "daktela/contacts": "target", "crm/activities": "target",
                     "crm/custom_partners": "source", "staging/custom_partners_mapped": "mapped",
                     "daktela/custom_partners": "target"}


def test_crm_adapter_kind_is_read_leniently(tmp_path: Path) -> None:
    from crmsync_pipelines.defs.node_labels import crm_adapter_kind

    config = tmp_path / "sync.yaml"
    for text, expected in (("crm: {adapter: sql}\n", "sqlite"), ("crm: {adapter: hubspot}\n", "hubspot"),
                           ("crm: {adapter: 'my.module:Crm'}\n", None), ("crm: [\n", None), ("", None)):
        config.write_text(text, encoding="utf-8")
        assert crm_adapter_kind(config) == expected, text
    assert crm_adapter_kind(tmp_path / "missing.yaml") is None


def test_every_flow_asset_shares_one_partitioning_single_run_backfills_and_a_pool(
    repo: dg.RepositoryDefinition,
) -> None:
    for key in EXPECTED_DEPS:
        node = repo.asset_graph.get(dg.AssetKey.from_user_string(key))
        assert node.partitions_def is sync_partitions, key
        assert node.backfill_policy == dg.BackfillPolicy.single_run(), key
        assert node.pools == {"crmsync_staging"}, key


def test_mapped_assets_carry_blocking_checks_and_loads_warn_and_reconcile(repo: dg.RepositoryDefinition) -> None:
    checks = {(k.asset_key.to_user_string(), k.name) for k in repo.asset_graph.asset_check_keys}
    for entity in ("accounts", "contacts", "activities"):
        for name in ("lookup_key_present", "lookup_key_unique", "required_fields_present"):
            assert (f"staging/{entity}_mapped", name) in checks
            spec = repo.asset_graph.get_check_spec(dg.AssetCheckKey(
                dg.AssetKey(["staging", f"{entity}_mapped"]), name))
            assert spec.blocking is True
    for target in ("daktela/accounts", "daktela/contacts", "crm/activities"):
        assert (target, "no_failed_records") in checks
        assert (target, "reconciliation") in checks


def test_mapped_code_version_is_the_mapping_file_hash(repo: dg.RepositoryDefinition) -> None:
    import hashlib

    node = repo.asset_graph.get(dg.AssetKey(["staging", "contacts_mapped"]))
    expected = hashlib.sha256((PROJECT_ROOT / "mappings" / "contacts.yaml").read_bytes()).hexdigest()[:16]
    assert node.code_version == expected


def test_jobs_resolve_with_flow_tags_and_an_in_process_executor(repo: dg.RepositoryDefinition) -> None:
    expected = {
        "crm_to_daktela": {k for k, g in EXPECTED_GROUPS.items() if g == "crm_to_daktela"},
        "daktela_to_crm": {k for k, g in EXPECTED_GROUPS.items() if g == "daktela_to_crm"},
        "full_sync": set(EXPECTED_DEPS),
    }
    for name, keys in expected.items():
        job = repo.get_job(name)
        assert job.tags["crmsync/flow"] == name
        assert job.executor_def is dg.in_process_executor
        assert job.partitions_def is sync_partitions
        assert {k.to_user_string() for k in job.asset_layer.selected_asset_keys} == keys


def _tick(repo: dg.RepositoryDefinition, name: str, at: datetime) -> list[dg.RunRequest]:
    schedule = repo.get_schedule_def(name)
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(instance=instance, scheduled_execution_time=at,
                                             repository_def=repo)
        data = schedule.evaluate_tick(context)
    return list(data.run_requests or [])


def test_fifteen_minute_schedules_target_the_partition_containing_the_tick(repo: dg.RepositoryDefinition) -> None:
    for name, job in (("crm_to_daktela_every_15_minutes", "crm_to_daktela"),
                      ("daktela_to_crm_every_15_minutes", "daktela_to_crm")):
        schedule = repo.get_schedule_def(name)
        assert schedule.cron_schedule == "*/15 * * * *"
        assert schedule.job_name == job
        assert schedule.execution_timezone == "Europe/Prague"
        # 23:30 UTC on Nov 27 is already Nov 28 in Prague (UTC+1).
        requests = _tick(repo, name, datetime(2026, 11, 27, 23, 30, tzinfo=UTC))
        assert [r.partition_key for r in requests] == ["2026-11-28"]
        assert requests[0].tags["crmsync/trigger"] == "schedule"
        requests = _tick(repo, name, datetime(2026, 11, 27, 10, 15, tzinfo=UTC))
        assert [r.partition_key for r in requests] == ["2026-11-27"]


def test_fifteen_minute_schedule_skips_before_the_start_date(repo: dg.RepositoryDefinition) -> None:
    assert _tick(repo, "crm_to_daktela_every_15_minutes", datetime(2025, 6, 1, tzinfo=UTC)) == []


def test_nightly_rescan_targets_yesterdays_activities(repo: dg.RepositoryDefinition) -> None:
    schedule = repo.get_schedule_def("activities_nightly_rescan")
    assert schedule.job_name == "daktela_to_crm"
    requests = _tick(repo, "activities_nightly_rescan", datetime(2026, 11, 28, 1, 30, tzinfo=UTC))
    assert [r.partition_key for r in requests] == ["2026-11-27"]
    assert requests[0].tags["crmsync/trigger"] == "nightly_rescan"


def test_nightly_rescan_of_hourly_partitions_is_one_range_run(monkeypatch: pytest.MonkeyPatch) -> None:
    from crmsync_pipelines.defs import schedules

    hourly = build_partitions_def(PartitionSettings("hourly", date(2026, 1, 1), "Europe/Prague"))
    monkeypatch.setattr(schedules, "sync_partitions", hourly)
    keys = schedules.previous_day_partition_keys(datetime(2026, 11, 28, 1, 30, tzinfo=UTC))
    assert len(keys) == 24
    assert (keys[0], keys[-1]) == ("2026-11-27-00:00", "2026-11-27-23:00")
    # DST end in Prague: 25 hourly partitions that day.
    assert len(schedules.previous_day_partition_keys(datetime(2026, 10, 26, 3, 0, tzinfo=UTC))) == 25


def test_partitions_are_daily_in_instance_zone_and_include_the_current_one() -> None:
    assert isinstance(sync_partitions, dg.DailyPartitionsDefinition)
    assert sync_partitions.timezone == "Europe/Prague"
    assert sync_partitions.end_offset == 1
    today = datetime.now(UTC).astimezone(__import__("zoneinfo").ZoneInfo("Europe/Prague")).date()
    assert sync_partitions.get_last_partition_key() == today.isoformat()


def test_hourly_granularity_gives_hourly_partitions_including_the_current_hour() -> None:
    hourly = build_partitions_def(PartitionSettings("hourly", date(2026, 11, 1), "UTC"))
    assert isinstance(hourly, dg.HourlyPartitionsDefinition)
    now = datetime.now(UTC)
    assert hourly.get_last_partition_key() == now.strftime("%Y-%m-%d-%H:00")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sync.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_settings_are_read_leniently_when_secrets_are_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UNSET_TOKEN_FOR_TEST", raising=False)
    monkeypatch.setenv("CRMSYNC_TEST_GRANULARITY", "hourly")
    path = _write(tmp_path, """
daktela: {instance_url: "https://x.daktela.com", access_token: "${UNSET_TOKEN_FOR_TEST}", timezone: UTC}
partitions: {granularity: "${CRMSYNC_TEST_GRANULARITY}", start_date: 2026-03-01}
""")
    assert read_partition_settings(path) == PartitionSettings("hourly", date(2026, 3, 1), "UTC")


@pytest.mark.parametrize("text", [
    "",                                          # empty file
    "[not, a, mapping]",                         # wrong shape
    "daktela: {timezone: Mars/Olympus}\n",       # unknown zone
    "partitions: {granularity: weekly}\n",       # not allowed
    "partitions: {granularity: '${UNSET_GRANULARITY_FOR_TEST}'}\n",
    "daktela: [unclosed\n",                      # YAML syntax error
])
def test_unreadable_settings_fall_back_to_defaults(tmp_path: Path, text: str) -> None:
    assert read_partition_settings(_write(tmp_path, text)) == DEFAULT_SETTINGS


def test_missing_config_file_falls_back_to_defaults(tmp_path: Path) -> None:
    assert read_partition_settings(tmp_path / "nope.yaml") == DEFAULT_SETTINGS


def test_variable_defaults_are_honoured_in_lenient_read(tmp_path: Path) -> None:
    path = _write(tmp_path, "daktela: {timezone: '${UNSET_TZ_FOR_TEST:-America/New_York}', access_token: "
                            "'${UNSET_TOKEN_FOR_TEST}'}\n")
    assert read_partition_settings(path).timezone == "America/New_York"


def test_code_location_validates_without_any_secret() -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DAKTELA_ACCESS_TOKEN", "DAKTELA_INSTANCE_URL", "CRMSYNC_CONFIG")}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dg"), "check", "defs"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=180, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All definitions loaded successfully" in result.stdout
    # Nothing of ours warns while the code location loads (superseded commands, beta params).
    assert "Warning" not in result.stdout + result.stderr, result.stdout + result.stderr


def test_load_assets_carry_the_freshness_policy(repo: dg.RepositoryDefinition) -> None:
    from crmsync_pipelines.defs.stage_assets import LOAD_FRESHNESS

    for key in EXPECTED_DEPS:
        policy = repo.asset_graph.get(dg.AssetKey.from_user_string(key)).freshness_policy
        is_load = key in ("daktela/accounts", "daktela/contacts", "crm/activities", "daktela/custom_partners")
        assert (policy == LOAD_FRESHNESS) if is_load else (policy is None), key


def test_a_custom_entity_mapped_asset_has_its_mapping_code_version(repo: dg.RepositoryDefinition) -> None:
    import hashlib

    node = repo.asset_graph.get(dg.AssetKey(["staging", "custom_partners_mapped"]))
    expected = hashlib.sha256((PROJECT_ROOT / "mappings" / "partners.yaml").read_bytes()).hexdigest()[:16]
    assert node.code_version == expected
