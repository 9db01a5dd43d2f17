"""The simulator commands answer a taken port or a broken ``--state`` file with one line and
exit code 1 / 2, never a Python traceback (``crmsync crm-simulator raynet|hubspot``,
``crmsync simulator``). A real socket holds the port."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from crmsync_pipelines.cli.main import cli


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield int(sock.getsockname()[1])


@pytest.mark.parametrize("command", [["crm-simulator", "raynet"], ["crm-simulator", "hubspot"], ["simulator"]])
def test_a_taken_port_is_one_line_not_a_traceback(taken_port: int, command: list[str]) -> None:
    result = CliRunner().invoke(cli, [*command, "--port", str(taken_port)])
    assert result.exit_code == 1, result.output
    assert f"cannot listen on 127.0.0.1:{taken_port}" in result.output and "--port 0" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output


@pytest.mark.parametrize("content", ["{bad json", "[1, 2]", '{"objects": 5}'])
def test_a_broken_hubspot_state_file_is_a_usage_error(tmp_path: Path, content: str) -> None:
    state = tmp_path / "portal.json"
    state.write_text(content, encoding="utf-8")
    result = CliRunner().invoke(cli, ["crm-simulator", "hubspot", "--port", "0", "--state", str(state)])
    assert result.exit_code == 2, result.output
    assert "--state" in result.output and str(state) in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert state.read_text(encoding="utf-8") == content  # never overwritten


@pytest.mark.parametrize(("crm", "state_file"), [("raynet", "raynet-simulator.json"),
                                                 ("hubspot", "hubspot-simulator.json")])
def test_demo_with_a_broken_saved_crm_state_says_which_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            crm: str, state_file: str) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("CRMSYNC_CONFIG", "DAGSTER_HOME", "CRMSYNC_ALERT_WEBHOOK_URL"):
        monkeypatch.delenv(name, raising=False)
    state = tmp_path / "data" / crm / state_file
    state.parent.mkdir(parents=True)
    state.write_text("{broken", encoding="utf-8")
    result = CliRunner().invoke(cli, ["demo", "--crm", crm, "--data-dir", str(tmp_path / "data"),
                                      "--simulator-port", "0"])
    assert result.exit_code == 1, result.output
    assert f"{state} is not a saved" in result.output and "delete it" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert state.read_text(encoding="utf-8") == "{broken"
