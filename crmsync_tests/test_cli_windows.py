"""The CLI's default window is the Dagster partition that contains "now"."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import click
import pytest

from crmsync_pipelines.cli.common import current_window, resolve_window, selected_entities
from crmsync_pipelines.config.models import DaktelaSection, PartitionsSection, SyncConfig
from crmsync_pipelines.defs.partitions import PartitionSettings, build_partitions_def

PRAGUE = ZoneInfo("Europe/Prague")


def _config(granularity: str = "daily", tz: str = "Europe/Prague") -> SyncConfig:
    return SyncConfig(daktela=DaktelaSection(timezone=tz),
                      partitions=PartitionsSection(granularity=granularity, start_date=date(2026, 1, 1)))


@pytest.mark.parametrize("granularity", ["daily", "hourly"])
@pytest.mark.parametrize("now", [
    datetime(2026, 11, 27, 23, 30, tzinfo=UTC),     # already tomorrow in Prague
    datetime(2026, 10, 25, 0, 30, tzinfo=UTC),      # DST ends that night (25-hour day)
    datetime(2026, 3, 29, 1, 15, tzinfo=UTC),       # DST starts (23-hour day)
])
def test_cli_window_equals_the_dagster_partition_window(granularity: str, now: datetime) -> None:
    partitions = build_partitions_def(PartitionSettings(granularity, date(2026, 1, 1), "Europe/Prague"))
    key = partitions.get_partition_key_for_timestamp(now.timestamp())
    expected = partitions.time_window_for_partition_key(key)
    window = current_window(_config(granularity), now)
    assert (window.start, window.end) == (expected.start, expected.end)


def test_naive_since_is_in_the_instance_zone_and_force_full_opens_the_start() -> None:
    window = resolve_window(_config(), "2026-11-01", "2026-11-08T12:00:00+00:00")
    assert window.start == datetime(2026, 11, 1, tzinfo=PRAGUE)
    assert window.end == datetime(2026, 11, 8, 12, tzinfo=UTC)
    full = resolve_window(_config(), "2026-11-01", None, force_full=True)
    assert full.start is None and full.end is None


def test_default_window_is_one_day_containing_now() -> None:
    window = current_window(_config())
    assert window.start is not None and window.end is not None
    assert window.start <= datetime.now(UTC) < window.end
    assert timedelta(hours=23) <= window.end - window.start <= timedelta(hours=25)


def test_entity_selection_keeps_sync_order_and_refuses_disabled() -> None:
    assert selected_entities(("activity", "account"), ["account", "contact", "activity"]) == ["account", "activity"]
    assert selected_entities((), ["activity", "account"]) == ["account", "activity"]
    with pytest.raises(click.ClickException, match="not enabled"):
        selected_entities(("contact",), ["account"])
