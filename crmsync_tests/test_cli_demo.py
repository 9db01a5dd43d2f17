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
    args = ["demo", "--data-dir", str(data), "--accounts", "10", "--contacts", "30"]

    first = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert first.exit_code == 0, first.output
    assert "succeeded" in first.output and "9 assets materialized" in first.output
    rows = _table(first.output)
    assert set(rows) >= {"account", "contact", "activity"}
    for entity in ("account", "contact", "activity"):
        assert int(rows[entity]["created"]) > 0, first.output
        assert int(rows[entity]["failed"]) == 0
        assert int(rows[entity]["api_calls"]) > 0
    for kept in ("daktela-simulator.sqlite", "demo-crm.sqlite", "crmsync.duckdb", "sync.yaml",
                 "dagster_home/dagster.yaml"):
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
