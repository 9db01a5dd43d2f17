"""Run-failure alerting that needs no vendor SaaS.

Every failed run of this code location is logged on the sensor tick, and, when
``CRMSYNC_ALERT_WEBHOOK_URL`` is set, posted as JSON to that URL (Slack/Teams incoming
webhooks, Alertmanager, ntfy, a plain HTTP endpoint all accept it). Posting failures are
logged and swallowed: an alerting outage must never stop the sensor from seeing the next
failure. The payload carries no secret: the Daktela token is scrubbed from the error text in
case a third-party library ever echoed it.
"""

import os
from typing import Any

import dagster as dg
import httpx

ALERT_URL_ENV = "CRMSYNC_ALERT_WEBHOOK_URL"
_SECRET_ENVS = ("DAKTELA_ACCESS_TOKEN", "WEBHOOK_SECRET")
_POST_TIMEOUT_S = 5.0
_MAX_ERROR_CHARS = 500


def scrub_secrets(text: str) -> str:
    """``text`` with the value of every known secret variable replaced by ``***``."""
    for name in _SECRET_ENVS:
        value = os.environ.get(name, "")
        if len(value) >= 4:
            text = text.replace(value, "***")
    return text


def step_failures(context: dg.RunFailureSensorContext) -> list[dict[str, str]]:
    """``{"step", "error"}`` per failed step: the cause an operator needs, secrets masked.

    A ``dg.Failure`` raised by our assets carries the classified error as its description
    (``daktela: DaktelaAuthError: ... HTTP 401``); anything else is the exception's class and
    first line. Capped at :data:`_MAX_ERROR_CHARS` per step.
    """
    failures: list[dict[str, str]] = []
    for event in context.get_step_failure_events():
        data = event.step_failure_data
        description = data.user_failure_data.description if data.user_failure_data else None
        if description:
            error = description
        elif data.error is not None:
            # Dagster wraps the user's exception (DagsterExecutionStepExecutionError): its cause
            # is what went wrong. The message starts with the exception's class.
            info = data.error
            while info.cause is not None and info.cls_name and info.cls_name.startswith("Dagster"):
                info = info.cause
            error = info.message
        else:
            error = "failed"
        error = scrub_secrets(error.strip().splitlines()[0] if error.strip() else "failed")
        failures.append({"step": event.step_key or "?", "error": error[:_MAX_ERROR_CHARS]})
    return failures


def failure_alert(context: dg.RunFailureSensorContext) -> dict[str, Any]:
    """The alert payload of one failed run, with each failed step's error."""
    run = context.dagster_run
    tags = run.tags
    partition = tags.get("dagster/partition") or (
        f"{tags['dagster/asset_partition_range_start']}...{tags['dagster/asset_partition_range_end']}"
        if "dagster/asset_partition_range_start" in tags
        else None
    )
    message = scrub_secrets(context.failure_event.message or "run failed")
    steps = step_failures(context)
    text = f"crmsync run {run.run_id} of job {run.job_name} failed"
    if partition:
        text += f" (partition {partition})"
    causes = "; ".join(f"{s['step']}: {s['error']}" for s in steps) or message
    return {
        "text": f"{text}: {causes}",
        "steps": steps,
        "run_id": run.run_id,
        "job_name": run.job_name,
        "partition": partition,
        "flow": tags.get("crmsync/flow"),
        "trigger": tags.get("crmsync/trigger"),
        "message": message,
    }


def post_alert(url: str, payload: dict[str, Any]) -> int:
    """POST ``payload`` to ``url``; the HTTP status (raises on a transport error)."""
    response = httpx.post(url, json=payload, timeout=_POST_TIMEOUT_S)
    return response.status_code


@dg.run_failure_sensor(
    name="crmsync_run_failure_alert",
    description="Logs every failed crmsync run and posts it to CRMSYNC_ALERT_WEBHOOK_URL when set.",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
)
def crmsync_run_failure_alert(context: dg.RunFailureSensorContext) -> None:
    alert = failure_alert(context)
    context.log.error(alert["text"])
    url = os.environ.get(ALERT_URL_ENV, "").strip()
    if not url:
        return
    try:
        status = post_alert(url, alert)
    except httpx.HTTPError as exc:
        context.log.warning(f"alert webhook unreachable: {type(exc).__name__}")
        return
    if status >= 400:
        context.log.warning(f"alert webhook answered HTTP {status}")
    else:
        context.log.info(f"alert posted (HTTP {status})")
