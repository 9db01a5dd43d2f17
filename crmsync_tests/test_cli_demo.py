"""``crmsync demo`` (what ``make demo`` runs): one real Dagster run, then a second that writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from crmsync_pipelines.cli.main import cli

pytestmark = pytest.mark.slow


def _table(output: str) -> dict[str, dict[str, str]]:
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("entity "))
    header = lines[start].split()
    rows = {}
    for line in lines[start + 2:]:
        cells = line.split()
        if len(cells) != len(header) or not cells[1].isdigit():
            break
        rows[cells[0]] = dict(zip(header, cells, strict=True))
    return rows


def test_demo_syncs_everything_then_a_second_demo_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("DAKTELA_INSTANCE_URL", "DAKTELA_ACCESS_TOKEN", "CRMSYNC_CONFIG", "DAGSTER_HOME"):
        monkeypatch.delenv(name, raising=False)
    data = tmp_path / "data"
    args = ["demo", "--data-dir", str(data), "--accounts", "10", "--contacts", "30", "--simulator-port", "0"]

    first = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert first.exit_code == 0, first.output
    assert "succeeded" in first.output and "12 assets materialized" in first.output
    rows = _table(first.output)
    assert set(rows) >= {"account", "contact", "activity"}
    for entity in ("account", "contact", "activity"):
        assert int(rows[entity]["created"]) > 0, first.output
        assert int(rows[entity]["failed"]) == 0
        assert int(rows[entity]["api_calls"]) > 0
    # Each entity's row counts the API calls made for it: auto-contacts have their own calls,
    # and the accounts created on the fly during the contact load count under account.
    assert int(rows["auto_contact"]["created"]) > 0 and int(rows["auto_contact"]["api_calls"]) > 0
    # The demo's custom entity (partners -> Daktela contacts) has its own row.
    assert int(rows["custom:partners"]["created"]) > 0 and int(rows["custom:partners"]["failed"]) == 0
    assert int(rows["custom:partners"]["api_calls"]) > 0
    # Only warnings reach the terminal before the summary; the run's event log keeps the rest.
    assert " - INFO - " not in first.output and " - DEBUG - " not in first.output
    for kept in ("daktela-simulator.sqlite", "demo-crm.sqlite", "crmsync.duckdb", "sync.yaml",
                 "dagster_home/dagster.yaml", "crmsync.env"):
        assert (data / kept).exists(), kept

    second = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert second.exit_code == 0, second.output
    rows = _table(second.output)
    assert all(int(row["created"]) == 0 and int(row["updated"]) == 0 for row in rows.values()), second.output
    assert int(rows["contact"]["unchanged"]) > 0
    assert "nothing to write" in second.output
    # The run history persists in the data directory's Dagster instance.
    import dagster as dg

    with dg.DagsterInstance.from_config(str(data / "dagster_home")) as instance:
        assert len(instance.get_runs()) == 2
    # The demo restored the caller's environment.
    import os

    assert "DAKTELA_ACCESS_TOKEN" not in os.environ


def test_demo_instance_fails_a_crashed_run_so_its_flow_is_not_stuck(tmp_path: Path) -> None:
    """kill -9 of a run leaves it STARTED; the shipped dagster.yaml's run monitoring fails it
    once it is past ``max_runtime_seconds`` (freeing the one-run-per-flow slot), and its run
    retries re-launch a run that died, not a step that failed."""
    import logging
    from datetime import UTC, datetime, timedelta

    import dagster as dg
    from dagster._core.events import DagsterEvent, DagsterEventType
    from dagster._core.test_utils import create_run_for_test
    from dagster._daemon.monitoring.run_monitoring import monitor_started_run

    from crmsync_pipelines.cli.demo_setup import write_dagster_yaml

    home = tmp_path / "dagster_home"
    write_dagster_yaml(home)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_start_timeout_seconds == 180
        assert instance.run_monitoring_max_runtime_seconds == 3600
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 1
        assert instance.run_retries_retry_on_asset_or_op_failure is False

        crashed = create_run_for_test(instance, job_name="crm_to_daktela", status=dg.DagsterRunStatus.STARTED,
                                      tags={"crmsync/flow": "crm_to_daktela"})
        recent = create_run_for_test(instance, job_name="daktela_to_crm", status=dg.DagsterRunStatus.STARTED,
                                     tags={"crmsync/flow": "daktela_to_crm"})
        for run, started in ((crashed, datetime.now(UTC) - timedelta(hours=2)),
                             (recent, datetime.now(UTC) - timedelta(minutes=5))):
            instance.run_storage.handle_run_event(
                run.run_id, DagsterEvent(DagsterEventType.RUN_START.value, job_name=run.job_name),
                update_timestamp=started,
            )
            record = instance.get_run_record_by_id(run.run_id)
            assert record is not None
            monitor_started_run(instance, None, record, logging.getLogger("test"))  # type: ignore[arg-type]
        crashed_after = instance.get_run_by_id(crashed.run_id)
        recent_after = instance.get_run_by_id(recent.run_id)
        assert crashed_after is not None and crashed_after.status == dg.DagsterRunStatus.FAILURE
        assert recent_after is not None and recent_after.status == dg.DagsterRunStatus.STARTED


def test_an_unedited_dagster_yaml_of_an_earlier_release_is_upgraded_an_edited_one_kept(tmp_path: Path) -> None:
    from crmsync_pipelines.cli import demo_setup

    old, edited = tmp_path / "old", tmp_path / "edited"
    for home in (old, edited):
        home.mkdir()
    (old / "dagster.yaml").write_text(demo_setup._PREVIOUS_DAGSTER_YAMLS[0], encoding="utf-8")
    (edited / "dagster.yaml").write_text("telemetry: {enabled: false}\n", encoding="utf-8")
    assert demo_setup.write_dagster_yaml(old).read_text(encoding="utf-8") == demo_setup.DAGSTER_YAML
    assert demo_setup.write_dagster_yaml(edited).read_text(encoding="utf-8") == "telemetry: {enabled: false}\n"


def test_a_taken_simulator_port_is_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli, ["demo", "--data-dir", str(tmp_path / "data"), "--accounts", "5",
                                          "--contacts", "10", "--simulator-port", str(port)])
    assert result.exit_code == 1
    assert f"port {port} on 127.0.0.1 is in use" in result.output and "--simulator-port" in result.output
    assert "Traceback" not in result.output


def test_env_file_points_a_new_shell_at_the_demo_world(tmp_path: Path) -> None:
    """``source data/crmsync.env`` in a fresh shell: crmsync on PATH and the demo's variables set."""
    import subprocess
    import sys

    from crmsync_pipelines.cli.demo_setup import DemoPaths, demo_environment, write_env_file

    paths = DemoPaths.under(tmp_path / "data with space")
    env = demo_environment(paths, base_url="http://127.0.0.1:8765", token="sim-token")
    write_env_file(paths, env)
    shell = subprocess.run(
        ["bash", "-c", f"source {paths.env_file.as_posix()!r} && command -v crmsync && echo \"$DAGSTER_HOME\" "
                       "&& echo \"$DAKTELA_INSTANCE_URL\" && echo \"$CRMSYNC_CONFIG\""],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}, capture_output=True, text=True, check=True,
    )
    lines = shell.stdout.splitlines()
    assert lines == [str(Path(sys.executable).parent / "crmsync"), str(paths.dagster_home),
                     "http://127.0.0.1:8765", str(paths.config)]
