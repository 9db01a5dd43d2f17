"""``crm.budget_reserve`` of the Raynet adapter: refused at load when it leaves no budget, and
named in the refusal when a run stops at it (instead of "the budget is used up" while
requests are left). Real simulator over HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from crmsync_pipelines.cli.main import cli
from crmsync_pipelines.crm.raynet.simulator import RaynetSimulatorHandle
from crmsync_pipelines.crm.registry import load_crm_adapter
from crmsync_pipelines.errors import ConfigError, QuotaExhaustedError
from crmsync_tests.fixtures.raynet import RAYNET_MAPPINGS, RaynetFactory, raynet_environment


@pytest.mark.parametrize(("reserve", "budget"), [(24_000, None), (30_000, None), (500, 500), (0, 0)])
def test_a_reserve_that_leaves_no_budget_is_refused_with_its_key(
        raynet_sim: RaynetSimulatorHandle, reserve: int, budget: int | None) -> None:
    settings = {"adapter": "raynet", **raynet_sim.settings(), "budget_reserve": reserve}
    if budget is not None:
        settings["daily_budget"] = budget
    with pytest.raises(ConfigError) as refused:
        load_crm_adapter(settings, base_dir=Path.cwd())
    assert refused.value.path == ("crm.daily_budget" if budget == 0 else "crm.budget_reserve")
    assert "sim-raynet-api-key" not in str(refused.value)


def test_crmsync_validate_refuses_a_reserve_above_the_daily_budget(
        raynet_sim: RaynetSimulatorHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = (RAYNET_MAPPINGS / "sync.yaml").read_text(encoding="utf-8").replace("../../data/", f"{tmp_path}/")
    path = tmp_path / "sync.yaml"
    path.write_text(config.replace("mapping_file: ", f"mapping_file: {RAYNET_MAPPINGS}/"), encoding="utf-8")
    for name, value in {**raynet_environment(raynet_sim), "DAKTELA_INSTANCE_URL": "https://x.daktela.com",
                        "DAKTELA_ACCESS_TOKEN": "t", "RAYNET_BUDGET_RESERVE": "30000"}.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(cli, ["validate", "-c", str(path)])
    assert result.exit_code == 1, result.output
    assert "crm.budget_reserve" in result.output and "24000" in result.output
    assert "Traceback" not in result.output
    assert raynet_sim.request_count() == 0


def test_stopping_at_the_reserve_says_how_many_requests_are_kept(
        raynet_sim: RaynetSimulatorHandle, make_raynet: RaynetFactory) -> None:
    raynet_sim.set_daily_limit(10)
    adapter = make_raynet(budget_reserve=4)
    for _ in range(6):
        assert adapter.ping() is True
    with pytest.raises(QuotaExhaustedError) as stopped:
        adapter.ping()
    assert raynet_sim.request_count() == 6
    message = str(stopped.value)
    assert "4 left are kept as crm.budget_reserve (4)" in message
    assert "sim-raynet-api-key" not in message
    assert adapter.usage()["budget_remaining"] == 4
