"""The one time-window partitioning shared by every crmsync asset, job and schedule.

A partition is a window of the Daktela instance's local time: "records modified in that
window" for accounts and contacts, "activities created in that window" for activities. The
settings come from ``sync.yaml`` (``partitions.*`` and ``daktela.timezone``), but the code
location must load even where no secret is set (``dagster definitions validate`` in CI), so
they are read leniently: when the full config cannot load, only those non-secret keys are
read from the raw YAML, and anything unreadable falls back to the defaults.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dagster as dg

from crmsync_pipelines.config.models import DaktelaSection, PartitionsSection
from crmsync_pipelines.config.yaml_file import read_yaml_document
from crmsync_pipelines.errors import ConfigError

logger = logging.getLogger("crmsync.defs")

#: Where the code location reads ``sync.yaml`` from when ``CRMSYNC_CONFIG`` is not set.
DEFAULT_CONFIG_PATH = "mappings/sync.yaml"

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class PartitionSettings:
    granularity: str
    start_date: date
    timezone: str


DEFAULT_SETTINGS = PartitionSettings(
    granularity=PartitionsSection().granularity,
    start_date=PartitionsSection().start_date,
    timezone=DaktelaSection().timezone,
)


def config_path_from_env() -> Path:
    """The ``sync.yaml`` the code location uses (a path, never a secret)."""
    return Path(os.environ.get("CRMSYNC_CONFIG") or DEFAULT_CONFIG_PATH)


def read_partition_settings(config_path: Path) -> PartitionSettings:
    """Partition settings from ``config_path``; never raises (a code location must load)."""
    try:
        from crmsync_pipelines.config import load_config

        config = load_config(config_path)
        return PartitionSettings(
            granularity=config.partitions.granularity,
            start_date=config.partitions.start_date,
            timezone=config.daktela.timezone,
        )
    except ConfigError as exc:  # shown by `dagster definitions validate`; never holds a secret
        logger.warning("crmsync: %s (partition keys are read leniently; runs will refuse this config)", exc)
    except Exception as exc:  # any failure falls back to the lenient read
        logger.info("crmsync: full config not loadable at definitions load (%s); reading "
                    "partition keys leniently", type(exc).__name__)
    return _read_leniently(config_path)


def _read_leniently(config_path: Path) -> PartitionSettings:
    try:  # bounded like load_config: size, depth and alias expansion (no hang, no RecursionError)
        raw = read_yaml_document(config_path, kind="configuration file") or {}
    except ConfigError:
        return DEFAULT_SETTINGS
    if not isinstance(raw, dict):
        return DEFAULT_SETTINGS
    partitions = _section(raw, "partitions")
    daktela = _section(raw, "daktela")
    try:
        section = PartitionsSection(
            granularity=_resolved(partitions.get("granularity"), DEFAULT_SETTINGS.granularity),
            start_date=_resolved(partitions.get("start_date"), DEFAULT_SETTINGS.start_date),
        )
    except ValueError:
        section = PartitionsSection()
    timezone = str(_resolved(daktela.get("timezone"), DEFAULT_SETTINGS.timezone))
    if not _is_time_zone(timezone):
        timezone = DEFAULT_SETTINGS.timezone
    return PartitionSettings(section.granularity, section.start_date, timezone)


def _section(raw: dict[str, Any], name: str) -> dict[str, Any]:
    value = raw.get(name)
    return value if isinstance(value, dict) else {}


def _resolved(value: Any, default: Any) -> Any:
    """``value`` with ``${VAR}``/``${VAR:-d}`` resolved; ``default`` when a variable is unset."""
    if value is None:
        return default
    if not isinstance(value, str):
        return value
    missing = False

    def substitute(match: re.Match[str]) -> str:
        nonlocal missing
        name, fallback = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if fallback is not None:
            return fallback
        missing = True
        return ""

    text = _VARIABLE.sub(substitute, value)
    return default if missing or text == "" else text


def _is_time_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def build_partitions_def(settings: PartitionSettings) -> dg.TimeWindowPartitionsDefinition:
    """Daily or hourly windows in the instance time zone, including the current one.

    ``end_offset=1`` makes the window that is still in progress a partition, so schedules can
    keep "today" fresh instead of waiting for it to end.
    """
    if settings.granularity == "hourly":
        return dg.HourlyPartitionsDefinition(
            start_date=f"{settings.start_date.isoformat()}-00:00", timezone=settings.timezone, end_offset=1
        )
    return dg.DailyPartitionsDefinition(
        start_date=settings.start_date.isoformat(), timezone=settings.timezone, end_offset=1
    )


#: The settings the code location was loaded with.
partition_settings = read_partition_settings(config_path_from_env())
#: The shared partitions definition of every asset, job and schedule.
sync_partitions = build_partitions_def(partition_settings)
