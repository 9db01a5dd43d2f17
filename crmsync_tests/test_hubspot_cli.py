"""``crmsync validate`` and ``crmsync crm-inspect`` with ``crm: {adapter: hubspot}``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from crmsync_pipelines.cli.main import cli
from crmsync_pipelines.crm.hubspot.simulator import HubSpotSimHandle

SECRET = "pat-na1-1234-do-not-print"


def _config(tmp_path: Path, crm: str) -> Path:
    path = tmp_path / "sync.yaml"
    path.write_text(f"crm:\n  adapter: hubspot\n{crm}", encoding="utf-8")
    return path


def _run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


@pytest.mark.parametrize(("crm", "key"), [
    ("  base_url: https://api.hubapi.com\n", "crm.access_token"),
    ("  access_token: ''\n", "crm.access_token"),
    (f"  access_token: {SECRET}\n  search_rate_per_s: -1\n", "crm.search_rate_per_s"),
    (f"  access_token: {SECRET}\n  activities: {{channels: {{sms: tasks}}}}\n", "crm.activities.channels.sms"),
])
def test_validate_refuses_bad_hubspot_settings_naming_the_key(tmp_path: Path, crm: str, key: str) -> None:
    result = _run("validate", "-c", str(_config(tmp_path, crm)))
    assert result.exit_code == 1 and key in result.output, result.output
    assert SECRET not in result.output


def test_validate_names_an_unset_token_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HUBSPOT_ACCESS_TOKEN", raising=False)
    result = _run("validate", "-c", str(_config(tmp_path, "  access_token: ${HUBSPOT_ACCESS_TOKEN}\n")))
    assert result.exit_code == 1 and "HUBSPOT_ACCESS_TOKEN" in result.output and "crm.access_token" in result.output


def test_crm_inspect_works_against_the_simulator(tmp_path: Path, hubspot_sim: HubSpotSimHandle,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import UTC, datetime

    contact = hubspot_sim.add_contact({"firstname": "Jana", "lastname": "Nováková", "email": "jana@example.cz"},
                                      datetime(2026, 11, 1, tzinfo=UTC))
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", hubspot_sim.token)
    config = _config(tmp_path, f"  access_token: ${{HUBSPOT_ACCESS_TOKEN}}\n  base_url: {hubspot_sim.base_url}\n")
    ping = _run("crm-inspect", "-c", str(config), "--json", "ping")
    assert ping.exit_code == 0 and json.loads(ping.output)["success"] is True, ping.output
    shown = _run("crm-inspect", "-c", str(config), "show", "contact", contact)
    assert shown.exit_code == 0 and "Nováková" in shown.output
    found = _run("crm-inspect", "-c", str(config), "find", "contact", "email", "jana@example.cz")
    assert found.exit_code == 0 and contact in found.output
    searched = _run("crm-inspect", "-c", str(config), "search", "contact", "nováková")
    assert searched.exit_code == 0 and "jana@example.cz" in searched.output
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", SECRET)
    refused = _run("crm-inspect", "-c", str(config), "ping")
    assert refused.exit_code == 1 and SECRET not in refused.output


def test_the_setup_commands_in_the_docs_create_the_unique_property(monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/crms/hubspot.md setup step 2, run as written (curl) against a portal without the property."""
    import re
    import shutil
    import subprocess
    import textwrap

    from crmsync_pipelines.crm.hubspot.simulator import run_hubspot_simulator
    from crmsync_tests.fixtures.hubspot import hubspot_adapter

    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    text = (Path(__file__).resolve().parents[1] / "docs" / "crms" / "hubspot.md").read_text(encoding="utf-8")
    blocks = [textwrap.dedent(b) for b in re.findall(r"```bash\n(.*?)```", text, re.S)]
    setup = [b for b in blocks if "/properties/$object" in b or "properties/calls/daktela_activity_name" in b]
    assert len(setup) == 2
    with run_hubspot_simulator(search_rate_per_s=None, bootstrap_external_id=None) as sim:
        env = {"HUBSPOT_BASE_URL": sim.base_url, "HUBSPOT_ACCESS_TOKEN": sim.token, "PATH": "/usr/bin:/bin"}
        for block in setup:
            done = subprocess.run(["bash", "-euo", "pipefail", "-c", block], env=env, capture_output=True,
                                  text=True, timeout=60)
            assert done.returncode == 0 and '"hasUniqueValue":true' in done.stdout, done.stdout + done.stderr
        adapter = hubspot_adapter(sim)
        [stored] = adapter.upsert_activities("daktela_activity_name", [
            {"daktela_activity_name": "doc1", "channel": "sms", "timestamp": "2026-11-27T10:00:00Z", "body": "Hi"}])
        assert isinstance(stored, dict)
        adapter.close()


@pytest.mark.slow
def test_crmsync_demo_with_the_hubspot_crm_writes_then_writes_nothing(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("CRMSYNC_CONFIG", "DAGSTER_HOME", "CRMSYNC_ALERT_WEBHOOK_URL", "HUBSPOT_ACCESS_TOKEN",
                 "HUBSPOT_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    args = ["demo", "--crm", "hubspot", "--data-dir", str(tmp_path / "data"), "--simulator-port", "0"]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert "records written" in first.output and "nothing to write" not in first.output
    state = tmp_path / "data" / "hubspot" / "hubspot-simulator.json"
    assert state.is_file()
    portal = json.loads(state.read_text(encoding="utf-8"))
    written = [o for t in ("calls", "emails", "communications") for o in portal["objects"][t]]
    assert written, "the demo's Daktela activities must reach HubSpot"
    second = CliRunner().invoke(cli, args)
    assert second.exit_code == 0, second.output
    assert "nothing to write: both systems already agree" in second.output
    again = json.loads(state.read_text(encoding="utf-8"))
    assert sum(len(again["objects"][t]) for t in ("calls", "emails", "communications")) == len(written)
