"""Your own Dagster code location, built on crmsync's definitions.

crmsync ships assets, jobs, schedules, sensors and resources (docs/dagster.md). A team that
wants its own timing adds to them instead of forking: here, a schedule that re-syncs the
CRM -> Daktela flow every 10 minutes during office hours on weekdays, and a sensor that
launches the ``sync_records`` job for records a team drops into a folder (one ``<entity>.txt``
file of ids per entity, e.g. ``contact.txt``) — say, from a CRM export after a bulk edit.

Load it like any code location::

    dg dev -f examples/dagster_user_code/definitions.py     # or list it in workspace.yaml

``CRMSYNC_CONFIG``, ``DAKTELA_INSTANCE_URL`` and ``DAKTELA_ACCESS_TOKEN`` are read by
crmsync's resources when a run starts, exactly as in crmsync's own code location.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from crmsync_pipelines.definitions import defs as crmsync_defs
from crmsync_pipelines.defs.jobs import crm_to_daktela_job
from crmsync_pipelines.defs.partitions import sync_partitions

#: Where the sensor looks for id files (one id per line): ``$RESYNC_DROP_DIR`` or ./resync.
DROP_DIR = Path(os.environ.get("RESYNC_DROP_DIR", "resync"))


def _office_hours_request(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """The partition the tick falls into, like crmsync's own schedules (idempotent run key)."""
    moment = context.scheduled_execution_time
    key = sync_partitions.get_partition_key_for_timestamp(moment.timestamp())
    return dg.RunRequest(run_key=f"office-hours-{moment.isoformat()}", partition_key=key)


office_hours_crm_to_daktela = dg.ScheduleDefinition(
    name="office_hours_crm_to_daktela",
    job=crm_to_daktela_job,
    cron_schedule="*/10 8-17 * * 1-5",
    execution_timezone="Europe/Prague",
    execution_fn=_office_hours_request,
    default_status=dg.DefaultScheduleStatus.STOPPED,  # switch on in the UI once deployed
)


@dg.sensor(job_name="sync_records", minimum_interval_seconds=60,
           default_status=dg.DefaultSensorStatus.STOPPED)
def resync_drop_folder(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """One ``sync_records`` run per new ``<entity>.txt`` file; the file is renamed ``.done``."""
    requests = []
    for path in sorted(DROP_DIR.glob("*.txt")):
        entity = path.stem.replace("__", ":")  # custom__partners.txt -> custom:partners
        ids = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        done = path.with_suffix(".done")
        path.rename(done)
        if ids:
            requests.append(dg.RunRequest(
                run_key=f"{done.name}-{done.stat().st_mtime_ns}",
                run_config={"ops": {"sync_named_records": {"config": {"entity": entity, "ids": ids}}}},
                tags={"crmsync/trigger": "drop-folder"},
            ))
    return dg.SensorResult(run_requests=requests)


defs = dg.Definitions.merge(
    crmsync_defs(),
    dg.Definitions(schedules=[office_hours_crm_to_daktela], sensors=[resync_drop_folder]),
)
