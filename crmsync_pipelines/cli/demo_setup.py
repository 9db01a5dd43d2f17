"""The demo environment behind ``make demo`` and ``make dev``, without Dagster.

Everything lives in one data directory: the simulator's SQLite file, the demo CRM, the
DuckDB staging file, the webhook inbox, a generated ``sync.yaml`` and a persistent
``DAGSTER_HOME``. Re-running reuses all of it, which is what makes the second ``make demo``
write nothing. The generated config is the bundled ``mappings/sync.yaml`` with its paths
pointed into the data directory, so the demo runs exactly the mappings users start from.
"""

from __future__ import annotations

import errno
import os
import shlex
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

#: Where ``make dev`` serves the Daktela simulator (``--simulator-port``/``$CRMSYNC_SIMULATOR_PORT``
#: change it): the same as ``crmsync simulator``'s default, so printed URLs stay valid.
DEFAULT_SIMULATOR_PORT = 8765

#: The bundled example config the demo config is derived from.
BUNDLED_CONFIG = Path(__file__).resolve().parents[2] / "mappings" / "sync.yaml"

_DAGSTER_YAML_CONCURRENCY = """\
# Written by `crmsync demo` / `crmsync dev`: a persistent local Dagster instance.
python_logs:
  python_log_level: INFO
  managed_python_loggers: [crmsync]
concurrency:
  runs:
    max_concurrent_runs: 4
    tag_concurrency_limits:
      # One run per flow at a time: two runs of a flow would diff the same window twice.
      - key: crmsync/flow
        value: {applyLimitPerUniqueValue: true}
        limit: 1
"""
_DAGSTER_YAML_TELEMETRY = """\
telemetry:
  enabled: false
"""

DAGSTER_YAML = _DAGSTER_YAML_CONCURRENCY + """\
# A run whose process died (kill -9, OOM, a lost host) must not hold its flow's slot forever:
# the daemon fails runs stuck starting or cancelling, and runs past max_runtime_seconds (the
# local run launcher cannot see a dead run worker, so the runtime cap is what frees a STARTED
# run; tag a long backfill with dagster/max_runtime_seconds to give it more). See
# docs/operations.md, "Stuck and crashed runs".
run_monitoring:
  enabled: true
  start_timeout_seconds: 180
  cancel_timeout_seconds: 180
  max_runtime_seconds: 3600
  poll_interval_seconds: 60
# A run that failed because its process died is re-launched once (from the failed steps).
# Step failures are not: the jobs' step retry policy already retried what a retry can fix.
run_retries:
  enabled: true
  max_retries: 1
  retry_on_asset_or_op_failure: false
""" + _DAGSTER_YAML_TELEMETRY

#: What earlier releases wrote (byte for byte); replaced by :data:`DAGSTER_YAML` unless the user edited it.
_PREVIOUS_DAGSTER_YAMLS = (_DAGSTER_YAML_CONCURRENCY + _DAGSTER_YAML_TELEMETRY,)


@dataclass(frozen=True)
class DemoPaths:
    data_dir: Path
    config: Path
    crm: Path
    staging: Path
    inbox: Path
    simulator_db: Path
    dagster_home: Path
    #: ``source`` it in a new shell: the CLI, ``dagster`` and ``dg`` then work on the demo world.
    env_file: Path

    @classmethod
    def under(cls, data_dir: Path) -> DemoPaths:
        root = data_dir.resolve()
        return cls(
            data_dir=root,
            config=root / "sync.yaml",
            crm=root / "demo-crm.sqlite",
            staging=root / "crmsync.duckdb",
            inbox=root / "webhook-inbox.sqlite",
            simulator_db=root / "daktela-simulator.sqlite",
            dagster_home=root / "dagster_home",
            env_file=root / "crmsync.env",
        )


def _absolute(path_value: Any, base: Path) -> str:
    path = Path(str(path_value))
    return str(path if path.is_absolute() else (base / path).resolve())


def write_demo_config(paths: DemoPaths, template: Path = BUNDLED_CONFIG, **overrides: Any) -> Path:
    """Write ``paths.config``: ``template`` with mapping files made absolute and the CRM,
    staging and inbox files pointed into the data directory. ``${VAR}`` strings stay as they
    are (secrets are never written to disk). ``overrides`` replace top-level sections.
    """
    raw: dict[str, Any] = yaml.safe_load(template.read_text(encoding="utf-8")) or {}
    base = template.resolve().parent
    for entity in (raw.get("sync", {}).get("entities") or {}).values():
        if entity.get("mapping_file"):
            entity["mapping_file"] = _absolute(entity["mapping_file"], base)
        auto = entity.get("auto_create_contact")
        if isinstance(auto, dict) and auto.get("mapping_file"):
            auto["mapping_file"] = _absolute(auto["mapping_file"], base)
    for custom in raw.get("sync", {}).get("custom_entities") or []:
        if custom.get("mapping_file"):
            custom["mapping_file"] = _absolute(custom["mapping_file"], base)
    raw.setdefault("crm", {"adapter": "sql"})["path"] = str(paths.crm)
    raw.setdefault("staging", {})["path"] = str(paths.staging)
    raw.setdefault("webhook", {})["inbox_path"] = str(paths.inbox)
    raw.update(overrides)
    paths.data_dir.mkdir(parents=True, exist_ok=True)
    header = f"# Generated by crmsync from {template}; edit that file, not this one.\n"
    body = yaml.safe_dump(raw, sort_keys=False, allow_unicode=True)
    paths.config.write_text(header + body, encoding="utf-8")
    return paths.config


def write_dagster_yaml(dagster_home: Path) -> Path:
    """A ``dagster.yaml`` for a persistent local instance.

    Kept if the user edited it; a file exactly as an earlier release wrote it is upgraded.
    """
    dagster_home.mkdir(parents=True, exist_ok=True)
    target = dagster_home / "dagster.yaml"
    if not target.exists() or target.read_text(encoding="utf-8") in _PREVIOUS_DAGSTER_YAMLS:
        target.write_text(DAGSTER_YAML, encoding="utf-8")
    return target


def ensure_demo_crm(paths: DemoPaths, *, accounts: int, contacts: int) -> bool:
    """Create the demo CRM file when it is missing; True when it was created now."""
    from crmsync_pipelines.crm.demo_data import create_demo_crm

    if paths.crm.exists():
        from crmsync_pipelines.crm.demo_data import ensure_demo_partners

        ensure_demo_partners(paths.crm)  # a demo CRM made before the partners custom entity existed
        return False
    paths.data_dir.mkdir(parents=True, exist_ok=True)
    create_demo_crm(paths.crm, accounts=accounts, contacts=contacts)
    return True


def demo_environment(paths: DemoPaths, *, base_url: str, token: str) -> dict[str, str]:
    """The variables the config, the resources and Dagster read."""
    return {
        "DAKTELA_INSTANCE_URL": base_url,
        "DAKTELA_ACCESS_TOKEN": token,
        "CRMSYNC_CONFIG": str(paths.config),
        "CRMSYNC_CRM_PATH": str(paths.crm),
        "DAGSTER_HOME": str(paths.dagster_home),
    }


def write_env_file(paths: DemoPaths, env: dict[str, str]) -> Path:
    """``paths.env_file``: ``export`` lines for ``env`` and the venv's ``bin`` on ``PATH``.

    Only the simulator's own static token is written, never a real credential (the demo
    environment has none).
    """
    venv_bin = Path(sys.executable).parent
    lines = [
        "# Written by `make demo` / `make dev`. In a new shell: source data/crmsync.env",
        "# Puts crmsync, dagster and dg on PATH and points them at the demo world: its config,",
        "# CRM, Dagster home and the Daktela simulator that `make dev` serves on this URL.",
        f"export PATH={shlex.quote(str(venv_bin))}:\"$PATH\"",
        *(f"export {name}={shlex.quote(value)}" for name, value in env.items()),
    ]
    paths.data_dir.mkdir(parents=True, exist_ok=True)
    paths.env_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return paths.env_file


@contextmanager
def patched_environ(values: dict[str, str]) -> Iterator[None]:
    """``os.environ`` with ``values`` set for the block, restored afterwards."""
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class SimulatorPortInUse(RuntimeError):
    """The fixed simulator port is taken (usually by a running ``make dev``)."""


@contextmanager
def running_demo(
    data_dir: Path, *, accounts: int = 200, contacts: int = 1000, simulator_port: int = DEFAULT_SIMULATOR_PORT
) -> Iterator[DemoPaths]:
    """The simulator on ``simulator_port`` (0: a free one), the demo CRM, config, env and env file.

    The port is fixed by default so the URL in ``crmsync.env`` and the ``export`` lines stay
    valid across restarts of ``make dev``. Raises :class:`SimulatorPortInUse` when it is taken.
    """
    from crmsync_pipelines.simulator import SimulatorConfig, run_simulator

    paths = DemoPaths.under(data_dir)
    paths.data_dir.mkdir(parents=True, exist_ok=True)
    ensure_demo_crm(paths, accounts=accounts, contacts=contacts)
    write_demo_config(paths)
    write_dagster_yaml(paths.dagster_home)
    config = SimulatorConfig(db_path=paths.simulator_db, seed="demo", port=simulator_port)
    with ExitStack() as stack:
        try:
            simulator = stack.enter_context(run_simulator(config))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise SimulatorPortInUse(
                f"port {simulator_port} on 127.0.0.1 is in use (is `make dev` running?); stop that process "
                "or pick another port with --simulator-port (make: SIMULATOR_PORT=...)"
            ) from None
        env = demo_environment(paths, base_url=simulator.base_url, token=simulator.token)
        write_env_file(paths, env)
        with patched_environ(env):
            yield paths
