"""StageReport -> Dagster metadata and check results.

The engine reports in plain dataclasses so it stays free of Dagster; this module is the one
translation point, so every asset shows the same story (counts per outcome, API calls,
duration, window, a sample of failures) and the UI can chart each number over time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dagster as dg

from crmsync_pipelines.engine.reports import CheckOutcome, FailureSample, StageReport, Window

#: How many failures the markdown sample shows; the full list is in the failed-records table.
FAILURE_SAMPLE_SIZE = 20
#: Counts of field *values*, not records: shown under their own name, left out of the row count.
VALUE_COUNTS = ("refused_values",)


def row_count(report: StageReport) -> int:
    """Records the stage handled: ``total`` when the engine reports it, else the sum of outcomes."""
    if "total" in report.counts:
        return int(report.counts["total"])
    return int(sum(count for outcome, count in report.counts.items() if outcome not in VALUE_COUNTS))


def window_metadata(window: Window) -> dict[str, Any]:
    return {
        "window_start": dg.MetadataValue.text(window.start.isoformat() if window.start else "open"),
        "window_end": dg.MetadataValue.text(window.end.isoformat() if window.end else "open"),
    }


def failures_markdown(failures: Sequence[FailureSample], limit: int = FAILURE_SAMPLE_SIZE) -> str:
    """A markdown table of the first ``limit`` failures (messages are already secret-free)."""
    if not failures:
        return "No failed records."
    lines = ["| source id | error class | message |", "|---|---|---|"]
    for sample in failures[:limit]:
        message = sample.message.replace("|", "\\|").replace("\n", " ")[:300]
        lines.append(f"| {sample.source_id} | {sample.error_class} | {message} |")
    if len(failures) > limit:
        lines.append(f"\n… and {len(failures) - limit} more in the failed-records table.")
    return "\n".join(lines)


def report_metadata(report: StageReport, *, partitions_in_run: int = 1) -> dict[str, Any]:
    """Materialization metadata for one engine stage.

    In a range run Dagster records one materialization per partition with identical metadata,
    so the totals say ``partitions_in_run`` and the window they cover.
    """
    metadata: dict[str, Any] = {
        "dagster/row_count": dg.MetadataValue.int(row_count(report)),
        "stage": dg.MetadataValue.text(report.stage),
        "duration_s": dg.MetadataValue.float(round(float(report.duration_s), 3)),
        "partitions_in_run": dg.MetadataValue.int(partitions_in_run),
        **window_metadata(report.window),
    }
    for outcome, count in sorted(report.counts.items()):
        metadata[outcome if outcome in VALUE_COUNTS else f"records_{outcome}"] = dg.MetadataValue.int(int(count))
    for system, calls in sorted(report.api_calls.items()):
        metadata[f"api_calls_{system}"] = dg.MetadataValue.int(int(calls))
    metadata["api_calls_total"] = dg.MetadataValue.int(int(sum(report.api_calls.values())))
    for key, value in sorted(report.metadata.items()):
        metadata[key] = _metadata_value(value)
    if report.stage == "load" or report.failures:
        metadata["failures_sample"] = dg.MetadataValue.md(failures_markdown(report.failures))
    return metadata


def check_result(
    outcome: CheckOutcome | None,
    *,
    check_name: str,
    asset_key: dg.AssetKey,
    severity: dg.AssetCheckSeverity,
) -> dg.AssetCheckResult:
    """The Dagster result of an engine check; a check the engine did not report fails loudly."""
    if outcome is None:
        return dg.AssetCheckResult(
            asset_key=asset_key,
            check_name=check_name,
            passed=False,
            severity=severity,
            description=f"the engine did not report the check {check_name!r}",
        )
    metadata = {key: _metadata_value(value) for key, value in outcome.metadata.items()}
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name=check_name,
        passed=bool(outcome.passed),
        severity=severity,
        description=outcome.description,
        metadata=metadata,
    )


def _metadata_value(value: Any) -> Any:
    if isinstance(value, bool):
        return dg.MetadataValue.bool(value)
    if isinstance(value, int):
        return dg.MetadataValue.int(value)
    if isinstance(value, float):
        return dg.MetadataValue.float(value)
    if isinstance(value, (list, tuple, dict)):
        return dg.MetadataValue.json(value if isinstance(value, dict) else list(value))
    return dg.MetadataValue.text(str(value))
