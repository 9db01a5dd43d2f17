"""Schedules: keep the current partition fresh, and re-run yesterday's activities at night.

Both run in the Daktela instance's time zone, the one partitions are cut in. The 15-minute
schedules target the partition that contains the tick (the current, still-open window);
the nightly one re-syncs the previous day's activities, because calls are closed,
dispositioned and recorded after the first sync saw them.
"""

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from crmsync_pipelines.defs.partitions import partition_settings, sync_partitions

TRIGGER_TAG = "crmsync/trigger"
FRESHNESS_CRON = "*/15 * * * *"
NIGHTLY_CRON = "30 2 * * *"


def current_partition_key(at: datetime) -> str:
    """The key of the partition whose window contains ``at``."""
    if at < sync_partitions.start:
        raise ValueError(f"no partition exists at {at.isoformat()} (the start date is later)")
    return sync_partitions.get_partition_key_for_timestamp(at.timestamp())


def previous_day_partition_keys(at: datetime) -> list[str]:
    """The keys of the calendar day before ``at`` in the instance time zone (1 or ~24 keys)."""
    zone = ZoneInfo(sync_partitions.timezone or "UTC")
    today = at.astimezone(zone).date()
    start = datetime.combine(today - timedelta(days=1), time(), tzinfo=zone)
    end = datetime.combine(today, time(), tzinfo=zone)
    return list(sync_partitions.get_partition_keys_in_time_window(dg.TimeWindow(start, end)))


def _fresh_run_request(context: dg.ScheduleEvaluationContext, flow: str) -> dg.RunRequest | dg.SkipReason:
    tick = context.scheduled_execution_time
    try:
        key = current_partition_key(tick)
    except ValueError as exc:
        return dg.SkipReason(str(exc))
    context.log.info(f"{flow}: refreshing partition {key}")
    return dg.RunRequest(
        run_key=f"{flow}:{key}:{tick.isoformat()}",
        partition_key=key,
        tags={TRIGGER_TAG: "schedule"},
    )


@dg.schedule(
    name="crm_to_daktela_every_15_minutes",
    cron_schedule=FRESHNESS_CRON,
    job_name="crm_to_daktela",
    execution_timezone=partition_settings.timezone,
    description="Syncs accounts and contacts changed in the current partition every 15 minutes.",
)
def crm_to_daktela_every_15_minutes(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    return _fresh_run_request(context, "crm_to_daktela")


@dg.schedule(
    name="daktela_to_crm_every_15_minutes",
    cron_schedule=FRESHNESS_CRON,
    job_name="daktela_to_crm",
    execution_timezone=partition_settings.timezone,
    description="Syncs activities of the current partition every 15 minutes.",
)
def daktela_to_crm_every_15_minutes(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    return _fresh_run_request(context, "daktela_to_crm")


@dg.schedule(
    name="activities_nightly_rescan",
    cron_schedule=NIGHTLY_CRON,
    job_name="daktela_to_crm",
    execution_timezone=partition_settings.timezone,
    description="Re-syncs yesterday's activities so late changes (closing, disposition, recording) "
    "reach the CRM. Hourly partitions are re-run as one range run.",
)
def activities_nightly_rescan(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    keys = previous_day_partition_keys(context.scheduled_execution_time)
    if not keys:
        return dg.SkipReason("yesterday is before the partitions' start date")
    context.log.info(f"activities: nightly re-scan of {keys[0]} .. {keys[-1]}")
    tags = {TRIGGER_TAG: "nightly_rescan"}
    if len(keys) == 1:
        return dg.RunRequest(run_key=f"nightly:{keys[0]}", partition_key=keys[0], tags=tags)
    return dg.RunRequest(
        run_key=f"nightly:{keys[0]}...{keys[-1]}",
        tags={
            **tags,
            "dagster/asset_partition_range_start": keys[0],
            "dagster/asset_partition_range_end": keys[-1],
        },
    )
