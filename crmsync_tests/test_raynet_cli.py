"""``crmsync crm-simulator raynet`` and ``crmsync crm-inspect`` against a Raynet simulator."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from crmsync_pipelines.cli.main import cli
from crmsync_pipelines.crm.raynet.simulator import RaynetSimulatorHandle
from crmsync_tests.fixtures.raynet import shipped_raynet_config


def test_crm_simulator_raynet_serves_until_sigterm(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "crmsync_pipelines.cli.main", "crm-simulator", "raynet", "--port", "0",
         "--daily-limit", "5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(7)]
        url = next(line.split("=", 1)[1].strip() for line in lines if "RAYNET_BASE_URL" in line)
        answer = httpx.get(url + "person/", auth=("integrace@example.com", "sim-raynet-api-key"),
                           headers={"X-Instance-Name": "demo-crm"}, params={"limit": 1})
        assert answer.status_code == 200 and answer.json()["totalCount"] == 43  # 40 demo persons + 3 users
        assert answer.headers["X-Ratelimit-Limit"] == "5"
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert "Raynet simulator stopped." in err


@pytest.fixture
def raynet_config(raynet_demo_sim: RaynetSimulatorHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return shipped_raynet_config(raynet_demo_sim, tmp_path, monkeypatch)


def test_crm_inspect_works_on_raynet(raynet_demo_sim: RaynetSimulatorHandle, raynet_config: Path) -> None:
    runner = CliRunner()

    def inspect(*args: str) -> str:
        result = runner.invoke(cli, ["crm-inspect", "-c", str(raynet_config), *args])
        assert result.exit_code == 0, result.output
        return result.output

    assert json.loads(inspect("--json", "ping"))["success"] is True
    listed = inspect("--limit", "3", "list", "contact")
    assert "firstName" in listed and "lastName" in listed
    fields = inspect("--limit", "5", "fields", "account")
    assert "primaryAddress.contactInfo.email" in fields
    person = next(p for p in raynet_demo_sim.store.all("person") if not p.get("userAccount"))
    shown = json.loads(inspect("--json", "find", "contact", "contactInfo.email", person["contactInfo"]["email"]))
    assert str(person["id"]) in json.dumps(shown)
    assert person["lastName"] in inspect("search", "contact", person["lastName"])
    missing = runner.invoke(cli, ["crm-inspect", "-c", str(raynet_config), "show", "contact", "99999"])
    assert missing.exit_code == 1
    assert raynet_demo_sim.config.api_key not in listed + fields + missing.output


def test_raynet_demo_world_keeps_its_data_between_runs(tmp_path: Path) -> None:
    from crmsync_pipelines.cli.demo_setup import DemoPaths, patched_environ
    from crmsync_pipelines.config import load_config
    from crmsync_pipelines.crm.raynet.demo import raynet_demo
    from crmsync_pipelines.crm.registry import load_crm_adapter

    paths = DemoPaths.under(tmp_path / "data")
    paths.data_dir.mkdir(parents=True)
    env = {"DAKTELA_INSTANCE_URL": "https://x.daktela.com", "DAKTELA_ACCESS_TOKEN": "t"}
    with raynet_demo(paths) as raynet_env, patched_environ({**env, **raynet_env}):
        config = load_config(paths.config)
        assert config.crm.adapter == "raynet"
        adapter = load_crm_adapter(config.crm, base_dir=paths.data_dir)
        assert adapter.ping() is True
        [created] = adapter.upsert_activities("extId", [{"extId": "demo-1", "type": "call", "title": "Demo"}])
        assert isinstance(created, dict)
        adapter.close()
    assert "sim-raynet-api-key" not in paths.config.read_text(encoding="utf-8")  # ${RAYNET_API_KEY} stays a reference
    with raynet_demo(paths) as raynet_env, patched_environ({**env, **raynet_env}):
        adapter = load_crm_adapter(load_config(paths.config).crm, base_dir=paths.data_dir)
        found = adapter.find_activity_by("extId", "demo-1")
        assert found is not None and found["id"] == created["id"]
        adapter.close()


@pytest.mark.slow
def test_crmsync_demo_with_the_raynet_crm_writes_then_writes_nothing(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("CRMSYNC_CONFIG", "DAGSTER_HOME", "CRMSYNC_ALERT_WEBHOOK_URL"):
        monkeypatch.delenv(name, raising=False)
    args = ["demo", "--crm", "raynet", "--data-dir", str(tmp_path / "data"), "--simulator-port", "0"]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert "records written" in first.output and "nothing to write" not in first.output
    assert (tmp_path / "data" / "raynet" / "raynet-simulator.json").is_file()
    second = CliRunner().invoke(cli, args)
    assert second.exit_code == 0, second.output
    assert "nothing to write: both systems already agree" in second.output


def test_crm_inspect_names_why_a_refused_key_fails(
    raynet_demo_sim: RaynetSimulatorHandle, raynet_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ping`` says only False by contract; crm-inspect must still say *why* (the 401), and a
    listing that failed must not also print "(no contacts)" as if the CRM were empty."""
    monkeypatch.setenv("RAYNET_API_KEY", "revoked-key-4711")
    runner = CliRunner()
    pinged = runner.invoke(cli, ["crm-inspect", "-c", str(raynet_config), "ping"])
    assert pinged.exit_code == 1
    assert "FAILED: ping returned False; iter_accounts failed after 0 record(s)" in pinged.output
    assert "401" in pinged.output or "refused" in pinged.output.lower()
    assert "revoked-key-4711" not in pinged.output
    listed = runner.invoke(cli, ["crm-inspect", "-c", str(raynet_config), "list", "contact"])
    assert listed.exit_code == 1
    assert "(no contacts)" not in listed.output and "iter_contacts failed" in listed.output
