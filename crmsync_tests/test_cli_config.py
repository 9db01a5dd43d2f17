"""``crmsync validate`` and ``crmsync config-view`` against real config files (no API call)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from crmsync_pipelines.cli.demo_setup import DemoPaths
from crmsync_pipelines.cli.main import cli
from crmsync_tests.fixtures.pipeline import demo_config_files

TOKEN = "abcd1234efgh5678"
SECRET = "whsec-0123456789"


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    paths = demo_config_files(tmp_path, monkeypatch, instance_url="https://acme.daktela.com", token=TOKEN,
                              webhook_secret=SECRET)
    return paths.config


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_validate_prints_an_ok_summary(config_file: Path) -> None:
    code, out = run("validate", "-c", str(config_file))
    assert code == 0, out
    assert out.startswith("OK ")
    assert "account: CRM -> Daktela" in out and "activity: Daktela -> CRM" in out
    assert "lookup field name" in out
    assert TOKEN not in out


def test_validate_reads_the_config_path_from_the_environment(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRMSYNC_CONFIG", str(config_file))
    code, out = run("validate")
    assert code == 0 and str(config_file) in out


def test_validate_names_file_and_path_of_a_bad_value(config_file: Path) -> None:
    config_file.write_text(config_file.read_text(encoding="utf-8").replace(
        "direction: crm_to_cc", "direction: sideways", 1), encoding="utf-8")
    code, out = run("validate", "-c", str(config_file))
    assert code == 1
    assert "Configuration error:" in out
    assert "sync.entities.account.direction" in out and "sync.yaml" in out


def test_validate_reports_an_unset_variable_without_leaking_others(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DAKTELA_INSTANCE_URL")
    code, out = run("validate", "-c", str(config_file))
    assert code == 1
    assert "DAKTELA_INSTANCE_URL" in out
    assert TOKEN not in out


def test_validate_of_a_missing_file_exits_1(tmp_path: Path) -> None:
    code, out = run("validate", "-c", str(tmp_path / "nope.yaml"))
    assert code == 1
    assert "Config file not found" in out


def test_config_view_masks_the_token_and_the_webhook_secret(config_file: Path) -> None:
    code, out = run("config-view", "-c", str(config_file))
    assert code == 0, out
    assert TOKEN not in out and SECRET not in out
    assert "abcd********5678" in out
    assert "whse********6789" in out
    assert "https://acme.daktela.com" in out
    # Rule table: the CRM column comes first for CRM -> Daktela entities.
    account_section = out.split("Entity: account")[1].split("Entity: contact")[0]
    header = next(line for line in account_section.splitlines() if "Daktela field" in line)
    assert header.split() == ["CRM", "field", "Daktela", "field", "Options"]
    activity_section = out.split("Entity: activity")[1]
    header = next(line for line in activity_section.splitlines() if "Daktela field" in line)
    assert header.split()[:2] == ["Daktela", "field"]
    assert "prefix" in out


def test_config_view_json_never_contains_the_token(config_file: Path) -> None:
    code, out = run("config-view", "-c", str(config_file), "--json")
    assert code == 0, out
    data = json.loads(out)
    assert TOKEN not in out and SECRET not in out
    assert data["daktela"] == {"instance_url": "https://acme.daktela.com", "database": "default"}
    assert data["webhook"] == {"secret_configured": True}
    assert set(data["entities"]) == {"account", "contact", "activity"}
    account = data["entities"]["account"]
    assert account["lookup_field"] == "name" and account["direction"] == "crm_to_cc"
    assert account["mappings"][0] == {"cc_field": "name", "crm_field": "id", "transformers": ["prefix"]}
    assert data["entities"]["activity"]["activity_types"] == ["call", "email", "web", "sms", "fbm", "wap", "vbr"]


def test_config_view_of_a_broken_file_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "sync.yaml"
    bad.write_text("daktela: [unclosed\n", encoding="utf-8")
    code, out = run("config-view", "-c", str(bad))
    assert code == 1 and "Configuration error" in out


def test_validate_lists_enabled_custom_entities(monkeypatch: pytest.MonkeyPatch) -> None:
    php_sdk = Path(__file__).parent / "data" / "config" / "php_sdk" / "sync.yaml"
    for name in ("DAKTELA_URL", "DAKTELA_TOKEN", "DAKTELA_DB", "WEBHOOK_SECRET", "RAYNET_INSTANCE", "RAYNET_API_KEY"):
        monkeypatch.setenv(name, "x" if name != "DAKTELA_URL" else "https://acme.daktela.com")
    code, output = run("validate", "-c", str(php_sdk))
    assert code == 0, output
    assert "  custom:companies: CRM source 'company' -> Daktela accounts, " in output
    assert "does not sync" not in output
    assert "'leads'" not in output  # disabled entries are not mentioned


def test_config_view_shows_the_crm_staging_and_partitions_sections(config_file: Path) -> None:
    import yaml

    raw = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    raw["crm"]["api_token"] = "crm-tok-9876543210"
    raw["partitions"] = {"granularity": "hourly", "start_date": "2026-03-01"}
    config_file.write_text(yaml.safe_dump(raw), encoding="utf-8")
    paths = DemoPaths.under(config_file.parent)

    code, out = run("config-view", "-c", str(config_file))
    assert code == 0, out
    for line in ("CRM", "  adapter:       sql", f"  path:          {paths.crm}", "Staging (DuckDB)",
                 f"  Path:          {paths.staging}", "Partitions", "  Granularity:   hourly (in Europe/Prague)",
                 "  Start date:    2026-03-01"):
        assert line in out.splitlines(), (line, out)
    assert "crm-tok-9876543210" not in out and "crm-**********3210" in out

    code, out = run("config-view", "-c", str(config_file), "--json")
    data = json.loads(out)
    assert (data["crm"]["adapter"], data["crm"]["path"], data["crm"]["api_token"]) == (
        "sql", str(paths.crm), "crm-**********3210")
    assert data["staging"]["path"] == str(paths.staging)
    assert data["partitions"] == {"granularity": "hourly", "start_date": "2026-03-01",
                                  "timezone": "Europe/Prague"}
