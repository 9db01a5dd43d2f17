"""The run-failure sensor and the StageReport -> metadata translation."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import dagster as dg
import pytest

from crmsync_pipelines.defs.metadata import check_result, failures_markdown, report_metadata
from crmsync_pipelines.defs.sensors import crmsync_run_failure_alert
from crmsync_pipelines.engine.reports import CheckOutcome, FailureSample, StageReport, Window

SECRET = "tok-0123456789abcdef"


@dg.op
def leaky_op() -> None:
    raise RuntimeError(f"upstream said: bad token {SECRET}")


@dg.job(tags={"crmsync/flow": "crm_to_daktela"})
def failing_job() -> None:
    leaky_op()


class _Capture(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []
    status = 200

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def alert_server() -> Iterator[tuple[str, type[_Capture]]]:
    handler = type("Capture", (_Capture,), {"received": [], "status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", handler
    finally:
        server.shutdown()
        server.server_close()


def _failure_context(instance: dg.DagsterInstance) -> dg.RunFailureSensorContext:
    result = failing_job.execute_in_process(instance=instance, raise_on_error=False,
                                            tags={"dagster/partition": "2026-11-27"})
    assert not result.success
    return dg.build_run_status_sensor_context(
        sensor_name="crmsync_run_failure_alert",
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_failure_event(),
    ).for_run_failure()


def test_failure_is_posted_to_the_alert_webhook_without_the_secret(
    alert_server: tuple[str, type[_Capture]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, handler = alert_server
    monkeypatch.setenv("CRMSYNC_ALERT_WEBHOOK_URL", url)
    monkeypatch.setenv("DAKTELA_ACCESS_TOKEN", SECRET)
    with dg.instance_for_test() as instance:
        context = _failure_context(instance)
        crmsync_run_failure_alert(context)
    assert len(handler.received) == 1
    alert = handler.received[0]
    assert alert["job_name"] == "failing_job"
    assert alert["flow"] == "crm_to_daktela"
    assert alert["partition"] == "2026-11-27"
    assert alert["run_id"] == context.dagster_run.run_id
    assert "failing_job" in alert["text"]
    # The cause, not just "Steps failed: ['leaky_op']" (and the token masked in it).
    assert alert["steps"] == [{"step": "leaky_op", "error": "RuntimeError: upstream said: bad token ***"}]
    assert "leaky_op: RuntimeError: upstream said: bad token ***" in alert["text"]
    assert SECRET not in json.dumps(alert)


def test_alert_of_a_revoked_token_names_the_auth_error(
    pipeline_world: object, dagster_instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real run with a wrong token: the alert says which step failed and why (HTTP 401)."""
    from crmsync_pipelines.definitions import defs
    from crmsync_pipelines.defs.materialize import current_partition_key
    from crmsync_pipelines.defs.sensors import failure_alert

    bad_token = "revoked-token-7c1d2e3f"
    monkeypatch.setenv("DAKTELA_ACCESS_TOKEN", bad_token)
    result = defs().resolve_job_def("daktela_to_crm").execute_in_process(
        instance=dagster_instance, partition_key=current_partition_key(), raise_on_error=False)
    assert not result.success
    context = dg.build_run_status_sensor_context(
        sensor_name="crmsync_run_failure_alert", dagster_instance=dagster_instance,
        dagster_run=result.dagster_run, dagster_event=result.get_run_failure_event(),
    ).for_run_failure()
    alert = failure_alert(context)
    assert [s["step"] for s in alert["steps"]] == ["daktela__activities"]
    error = alert["steps"][0]["error"]
    assert "AuthError" in error and "401" in error, error
    assert "daktela__activities: " in alert["text"]
    assert bad_token not in json.dumps(alert)


def test_unreachable_or_failing_alert_webhook_never_breaks_the_sensor(
    alert_server: tuple[str, type[_Capture]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, handler = alert_server
    handler.status = 500
    with dg.instance_for_test() as instance:
        context = _failure_context(instance)
        monkeypatch.setenv("CRMSYNC_ALERT_WEBHOOK_URL", url)
        crmsync_run_failure_alert(context)            # HTTP 500: logged, not raised
        monkeypatch.setenv("CRMSYNC_ALERT_WEBHOOK_URL", "http://127.0.0.1:9/closed")
        crmsync_run_failure_alert(context)            # connection refused: logged, not raised
    assert len(handler.received) == 1


def test_without_a_webhook_url_nothing_is_posted(
    alert_server: tuple[str, type[_Capture]], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, handler = alert_server
    monkeypatch.delenv("CRMSYNC_ALERT_WEBHOOK_URL", raising=False)
    with dg.instance_for_test() as instance:
        crmsync_run_failure_alert(_failure_context(instance))
    assert handler.received == []


WINDOW = Window(datetime(2026, 11, 27, tzinfo=UTC), datetime(2026, 11, 28, tzinfo=UTC))


def test_load_report_metadata_tells_the_sync_story() -> None:
    report = StageReport(
        "contact", "load", "run-1", WINDOW,
        counts={"created": 3, "updated": 2, "unchanged": 10, "failed": 1},
        api_calls={"daktela": 7, "crm": 1}, duration_s=1.23456,
        failures=[FailureSample("42", "validation", "title | is required\nreally")],
    )
    metadata = report_metadata(report, partitions_in_run=3)
    values = {key: getattr(value, "value", value) for key, value in metadata.items()}
    assert values["dagster/row_count"] == 16
    assert values["records_created"] == 3 and values["records_failed"] == 1
    assert values["api_calls_daktela"] == 7 and values["api_calls_crm"] == 1 and values["api_calls_total"] == 8
    assert values["duration_s"] == 1.235
    assert values["partitions_in_run"] == 3
    assert values["window_start"] == "2026-11-27T00:00:00+00:00"
    assert "| 42 | validation | title \\| is required really |" in values["failures_sample"]


def test_failure_sample_is_capped() -> None:
    samples = [FailureSample(str(i), "transient", "timeout") for i in range(25)]
    text = failures_markdown(samples, limit=20)
    assert text.count("| transient |") == 20
    assert "5 more" in text
    assert failures_markdown([]) == "No failed records."


def test_a_check_the_engine_did_not_report_fails() -> None:
    key = dg.AssetKey(["staging", "contacts_mapped"])
    missing = check_result(None, check_name="lookup_key_unique", asset_key=key, severity=dg.AssetCheckSeverity.ERROR)
    assert missing.passed is False
    reported = check_result(
        CheckOutcome("lookup_key_unique", True, "ok", {"total": 5, "sample": ["a"], "percent": 0.5}),
        check_name="lookup_key_unique", asset_key=key, severity=dg.AssetCheckSeverity.ERROR,
    )
    assert reported.passed is True
    assert reported.metadata["total"].value == 5
