"""``crmsync crm-inspect`` against a real demo SQLite file and a sync.yaml in tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from crmsync_pipelines.cli.main import cli
from crmsync_pipelines.crm.sql import SqlCrmAdapter


@pytest.fixture
def sync_yaml(demo_crm_path: Path) -> Path:
    config = demo_crm_path.parent / "sync.yaml"
    config.write_text(f"crm:\n  adapter: sql\n  path: {demo_crm_path.name}\n")
    return config


def _inspect(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["crm-inspect", "-c", str(config), *args])


def test_ping(sync_yaml: Path) -> None:
    result = _inspect(sync_yaml, "--json", "ping")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["success"] is True and payload["response_time_ms"] >= 0
    assert _inspect(sync_yaml, "ping").output.startswith("OK: sql answered")


def test_corrupt_database_fails_at_start_with_exit_1(sync_yaml: Path, demo_crm_path: Path) -> None:
    demo_crm_path.write_bytes(b"garbage" * 200)
    for suffix in ("-wal", "-shm"):
        Path(f"{demo_crm_path}{suffix}").unlink(missing_ok=True)
    result = _inspect(sync_yaml, "ping")
    assert result.exit_code == 1
    assert "crm.path" in result.output and "not a usable SQLite database" in result.output
    assert "Error: Error:" not in result.output and result.output.count("Error:") == 1


def test_help_lists_one_command_per_line(sync_yaml: Path) -> None:
    result = CliRunner().invoke(cli, ["crm-inspect", "--help"], terminal_width=100)
    assert result.exit_code == 0
    lines = result.output.splitlines()
    for command in ("ping", "fields <contact|account>", "show <entity> <id>", "find <entity> <field> <value>",
                    "search <contact|account> <q>"):
        assert any(line.strip().startswith(command) for line in lines), (command, result.output)
    assert result.output.count("Usage:") == 1


def test_list_and_limit(sync_yaml: Path, demo_crm_adapter: SqlCrmAdapter) -> None:
    result = _inspect(sync_yaml, "--limit", "3", "list", "account")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].split() == ["id", "name", "email", "city"]
    assert len(lines) == 2 + 3
    first = next(demo_crm_adapter.iter_accounts())
    assert lines[2].startswith(first["id"]) and first["city"] in lines[2]
    as_json = json.loads(_inspect(sync_yaml, "--json", "--limit", "5", "list", "contacts").output)
    assert [r["id"] for r in as_json] == [r["id"] for r in list(demo_crm_adapter.iter_contacts())[:5]]


def test_fields_reports_coverage(sync_yaml: Path) -> None:
    result = _inspect(sync_yaml, "--json", "--limit", "50", "fields", "contact")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["sampled"] == 50
    fields = {f["field"]: f for f in payload["fields"]}
    assert set(fields) >= {"id", "first_name", "last_name", "email", "phone", "account_id", "tags"}
    assert fields["id"]["coverage_pct"] == 100.0
    assert fields["account_id"]["coverage_pct"] < 100.0
    assert "coverage_pct" in _inspect(sync_yaml, "fields", "account").output


def test_show_find_search(sync_yaml: Path, demo_crm_adapter: SqlCrmAdapter) -> None:
    contact = demo_crm_adapter.get_contact("7")
    assert contact is not None
    shown = _inspect(sync_yaml, "--json", "show", "contact", "7")
    assert shown.exit_code == 0 and json.loads(shown.output) == contact
    text = _inspect(sync_yaml, "show", "contact", "7").output
    assert f"last_name   {contact['last_name']}" in text

    missing = _inspect(sync_yaml, "show", "account", "99999")
    assert missing.exit_code == 1 and "account '99999' not found" in missing.output

    found = _inspect(sync_yaml, "--json", "find", "contact", "last_name", contact["last_name"])
    assert found.exit_code == 0 and json.loads(found.output)["last_name"] == contact["last_name"]
    not_found = _inspect(sync_yaml, "--json", "find", "contact", "email", "nobody@example.invalid")
    assert not_found.exit_code == 1 and not_found.output.startswith("null")

    query = contact["last_name"].strip()
    searched = _inspect(sync_yaml, "--json", "search", "contact", query)
    assert searched.exit_code == 0 and contact["id"] in [r["id"] for r in json.loads(searched.output)]
    nothing = _inspect(sync_yaml, "search", "account", "zzz", "qqq")
    assert nothing.exit_code == 1 and "no account matches 'zzz qqq'" in nothing.output


def test_activity_show_and_find(sync_yaml: Path, demo_crm_adapter: SqlCrmAdapter) -> None:
    stored = demo_crm_adapter.upsert_activity("external_id", {"external_id": "call_42", "type": "call"})
    shown = _inspect(sync_yaml, "--json", "show", "activity", stored["id"])
    assert shown.exit_code == 0 and json.loads(shown.output)["external_id"] == "call_42"
    found = _inspect(sync_yaml, "--json", "find", "activity", "external_id", "call_42")
    assert json.loads(found.output)["id"] == stored["id"]
    refused = _inspect(sync_yaml, "list", "activity")
    assert refused.exit_code == 2 and "entity must be one of contact, account" in refused.output


def test_usage_and_errors(sync_yaml: Path, tmp_path: Path) -> None:
    helped = _inspect(sync_yaml)
    assert helped.exit_code == 0 and "Commands:" in helped.output
    assert _inspect(sync_yaml, "help").exit_code == 0
    unknown = _inspect(sync_yaml, "frobnicate")
    assert unknown.exit_code == 1 and "Unknown command: frobnicate" in unknown.output
    short = _inspect(sync_yaml, "find", "contact", "email")
    assert short.exit_code == 2 and "find <contact|account|activity> <field> <value>" in short.output
    bad_field = _inspect(sync_yaml, "find", "contact", "nickname", "x")
    assert bad_field.exit_code == 2 and "no field 'nickname'" in bad_field.output
    no_config = _inspect(tmp_path / "absent.yaml", "ping")
    assert no_config.exit_code == 1 and "Config file not found" in no_config.output


def test_bad_adapter_in_config_exits_1_naming_it(tmp_path: Path) -> None:
    config = tmp_path / "sync.yaml"
    config.write_text("crm:\n  adapter: nowhere.module:Adapter\n")
    result = _inspect(config, "ping")
    assert result.exit_code == 1
    assert "crm.adapter" in result.output and "nowhere.module" in result.output


def test_config_from_environment(sync_yaml: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRMSYNC_CONFIG", str(sync_yaml))
    result = CliRunner().invoke(cli, ["crm-inspect", "--json", "ping"])
    assert result.exit_code == 0 and json.loads(result.output)["success"] is True
