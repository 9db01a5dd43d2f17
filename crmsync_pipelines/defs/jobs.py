"""Asset jobs per flow, plus one for everything.

Steps run in one process, one after another: every stage writes the same DuckDB file, which
allows a single writer, so parallel steps would only wait on each other's locks. Transient
failures (rate limits, timeouts) get a bounded retry with backoff; permanent ones are raised
as ``dg.Failure(allow_retries=False)`` by the assets.
"""

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from crmsync_pipelines.defs.partitions import sync_partitions

FLOW_TAG = "crmsync/flow"

STEP_RETRY_POLICY = dg.RetryPolicy(
    max_retries=2, delay=15, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


def _flow_job(name: str, selection: dg.AssetSelection, description: str) -> UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        name=name,
        selection=selection,
        description=description,
        partitions_def=sync_partitions,
        executor_def=dg.in_process_executor,
        op_retry_policy=STEP_RETRY_POLICY,
        tags={FLOW_TAG: name},
    )


crm_to_daktela_job = _flow_job(
    "crm_to_daktela",
    dg.AssetSelection.groups("crm_to_daktela"),
    "Accounts, then contacts, from the CRM into Daktela for the partition window.",
)
daktela_to_crm_job = _flow_job(
    "daktela_to_crm",
    dg.AssetSelection.groups("daktela_to_crm"),
    "Activities from Daktela into the CRM for the partition window.",
)
full_sync_job = _flow_job(
    "full_sync",
    dg.AssetSelection.groups("crm_to_daktela", "daktela_to_crm"),
    "Both flows for the partition window (what `make demo` runs).",
)
