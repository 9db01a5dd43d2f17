"""Every script in examples/ runs as written (subprocesses, no CRMSYNC_CONFIG: each starts the
bundled simulator and the demo CRM through examples/bootstrap.py), and says the right thing."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def _env(data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CRMSYNC_", "DAKTELA_", "DAGSTER_", "WEBHOOK_", "PYTEST_"))}
    env["CRMSYNC_EXAMPLES_DIR"] = str(data)
    return env


def example(data: Path, script: str, *args: str) -> tuple[int, str]:
    done = subprocess.run([sys.executable, str(EXAMPLES / script), *args], cwd=ROOT, env=_env(data),
                          capture_output=True, text=True, timeout=180)
    output = done.stdout + done.stderr
    assert "Traceback (most recent call last)" not in output, output
    return done.returncode, done.stdout


def test_full_sync_then_again_writes_nothing(tmp_path: Path) -> None:
    code, out = example(tmp_path, "full_sync.py")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].startswith("Account: 20 total, 20 created,")
    assert "Contact: 60 total, 60 created," in out
    assert lines[-1].startswith("Custom:partners: 3 total, 3 created,")   # custom entities run last
    code, out = example(tmp_path, "full_sync.py")
    assert code == 0, out
    assert "Account: 20 total, 0 created, 0 updated, 20 unchanged" in out
    assert "Custom:partners: 3 total, 0 created, 0 updated, 3 unchanged" in out


def test_single_entity(tmp_path: Path) -> None:
    code, out = example(tmp_path, "single_entity.py", "--since", "2000-01-01")
    assert code == 0, out
    assert [line.split(":")[0] for line in out.splitlines()[:4]] == ["Account", "Auto_contact", "Contact", "Activity"]
    assert "0 failed record(s)" in out


def test_single_record_contact_custom_and_a_missing_one(tmp_path: Path) -> None:
    code, out = example(tmp_path, "single_record.py", "contact", "1")
    assert code == 0, out
    assert out.startswith("contact 1 -> crm_1: created")
    assert "  name: None -> 'crm_1'" in out
    code, out = example(tmp_path, "single_record.py", "contact", "1")
    assert code == 0 and out.strip() == "contact 1 -> crm_1: unchanged", out
    code, out = example(tmp_path, "single_record.py", "custom:partners", "2")
    assert code == 0 and out.startswith("custom:partners 2 -> partner_2: created"), out
    code, out = example(tmp_path, "single_record.py", "contact", "424242")
    assert code == 1 and out.strip() == "contact 424242 -> None: not_found", out
    code, out = example(tmp_path, "single_record.py")
    assert code == 1


def test_incremental_sync_keeps_its_mark_and_resets(tmp_path: Path) -> None:
    code, out = example(tmp_path, "incremental_sync.py")
    assert code == 0, out
    assert out.startswith("window [1970-01-01T00:00:00+00:00, ")
    assert "Contact: 60 total, 60 created" in out
    state = tmp_path / "data" / "sync-state.json"
    assert state.exists()
    code, out = example(tmp_path, "incremental_sync.py")
    assert code == 0, out
    assert "Contact: 0 total" in out or "Contact:" not in out  # nothing changed since the mark
    assert " created" not in out.replace(" 0 created", "")
    code, out = example(tmp_path, "incremental_sync.py", "--reset-state")
    assert code == 0 and out.strip() == "state reset" and not state.exists()


def test_webhook_endpoint_selftest_syncs_the_activity_and_refuses_a_wrong_secret(tmp_path: Path) -> None:
    code, out = example(tmp_path, "webhook_endpoint.py", "--selftest")
    assert code == 0, out
    ok, refused = out.strip().splitlines()
    assert ok.startswith('200 {"created": 1, "errors": [], "failed": 0, "not_found": 0,'), ok
    assert refused == '401 {"message": "invalid webhook secret", "status": "error"}'


@pytest.fixture
def user_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The example code location, imported inside a demo world (env set by bootstrap)."""
    for name in ("CRMSYNC_CONFIG", "DAKTELA_INSTANCE_URL", "DAKTELA_ACCESS_TOKEN", "DAGSTER_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CRMSYNC_EXAMPLES_DIR", str(tmp_path))
    monkeypatch.setenv("RESYNC_DROP_DIR", str(tmp_path / "resync"))
    monkeypatch.syspath_prepend(str(EXAMPLES))
    import bootstrap

    with bootstrap.world() as config:
        spec = importlib.util.spec_from_file_location("example_user_code", EXAMPLES / "dagster_user_code" /
                                                      "definitions.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        import dagster as dg

        # Loaded the way Dagster loads a code location: with a live instance in context (an
        # instance an earlier test left entered would otherwise be what the loader reaches).
        with dg.instance_for_test():
            spec.loader.exec_module(module)
        yield module, config


def test_dagster_user_code_schedule_and_drop_folder_sensor(user_code: Any, tmp_path: Path) -> None:
    import dagster as dg

    from crmsync_pipelines.staging import StagingStore

    module, config = user_code
    defs: dg.Definitions = module.defs
    with dg.instance_for_test() as instance:  # loaded, as Dagster does, with a live instance in context
        dg.Definitions.validate_loadable(defs)
        repo = defs.get_repository_def()
        assert repo.has_job("crm_to_daktela") and repo.has_job("sync_records")

        schedule = repo.get_schedule_def("office_hours_crm_to_daktela")
        at = datetime(2026, 11, 30, 9, 10, tzinfo=UTC)
        tick = schedule.evaluate_tick(dg.build_schedule_context(instance=instance, scheduled_execution_time=at,
                                                                repository_def=repo))
        assert [r.partition_key for r in tick.run_requests or []] == ["2026-11-30"]

        drop = tmp_path / "resync"
        drop.mkdir()
        (drop / "contact.txt").write_text("1\n2\n\n", encoding="utf-8")
        sensor = repo.get_sensor_def("resync_drop_folder")
        result = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, repository_def=repo))
        [request] = result.run_requests or []
        assert request.run_config == {"ops": {"sync_named_records": {"config": {"entity": "contact",
                                                                                "ids": ["1", "2"]}}}}
        assert not (drop / "contact.txt").exists() and (drop / "contact.done").exists()
        run = repo.get_job("sync_records").execute_in_process(instance=instance, run_config=request.run_config)
        assert run.success
    from crmsync_pipelines.config import load_config

    rows = StagingStore(load_config(config).staging.path).ledger_rows(run.run_id, "contact")
    assert sorted((r["source_id"], r["outcome"]) for r in rows) == [("1", "created"), ("2", "created")]
