"""What the figures on a materialization cover: API calls per ledger entity, and range runs.

Two things the plain ``StageReport`` -> metadata translation does not say:

* **Whose API calls.** A contact load also creates the accounts its contacts reference but
  Daktela lacks (on-the-fly relation syncs, ``StageReport.side_reports``), and an account
  load creates the ``auto_contact`` contacts (``StageReport.related_api_calls``). Both are
  included in the stage's ``api_calls``; ``api_calls_for_<entity>`` splits them by the ledger
  entity they were made for, so an account created during the contact load is counted under
  ``account`` and ``auto_contact`` shows its own calls.
* **Range runs.** A range backfill is one run over the whole range, and Dagster records one
  materialization per partition of it with the same metadata. Those figures are totals of
  the run, not of the partition, so in a range run they are labelled as such:
  ``figures_cover`` says so, and ``dagster/row_count`` (which the UI shows and charts as the
  partition's row count) becomes ``run_row_count``. Per-record outcomes stay exact in the
  ledger (by ``run_id``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg

from crmsync_pipelines.engine.reports import RELATED_LEDGER_ENTITIES, StageReport

#: Metadata key prefix of the per-entity API call split.
API_CALLS_FOR = "api_calls_for_"
ROW_COUNT = "dagster/row_count"


def api_calls_by_entity(report: StageReport) -> dict[str, int]:
    """``report``'s API calls split by ledger entity; the values add up to its ``api_calls``.

    Side reports (records of other entities synced on the fly) are split recursively, and the
    calls made for related ledger entities (``auto_contact``) are their own entry.
    """
    split: dict[str, int] = {}

    def add(entity: str, calls: int) -> None:
        if calls:
            split[entity] = split.get(entity, 0) + calls

    own = sum(report.api_calls.values())
    for side in report.side_reports:
        for entity, calls in api_calls_by_entity(side).items():
            add(entity, calls)
        own -= sum(side.api_calls.values())
    related = sum(report.related_api_calls.values())
    related_entities = RELATED_LEDGER_ENTITIES.get(report.entity, ())
    if related and related_entities:
        add(related_entities[0], related)
        own -= related
    add(report.entity, max(own, 0))
    return split


def attribution_metadata(report: StageReport) -> dict[str, dg.MetadataValue]:
    """``api_calls_for_<entity>`` for every entity the stage made API calls for."""
    return {f"{API_CALLS_FOR}{entity}": dg.MetadataValue.int(calls)
            for entity, calls in sorted(api_calls_by_entity(report).items())}


def label_run_totals(metadata: Mapping[str, Any], partition_keys: list[str]) -> dict[str, Any]:
    """``metadata`` as it should be shown on each partition of a run over ``partition_keys``."""
    labelled = dict(metadata)
    if len(partition_keys) <= 1:
        return labelled
    if ROW_COUNT in labelled:
        labelled["run_row_count"] = labelled.pop(ROW_COUNT)
    labelled["figures_cover"] = dg.MetadataValue.text(
        f"the whole range run ({len(partition_keys)} partitions, {partition_keys[0]} to {partition_keys[-1]}); "
        "the same on each of its partitions. Per-record outcomes: the ledger, by run_id."
    )
    return labelled
