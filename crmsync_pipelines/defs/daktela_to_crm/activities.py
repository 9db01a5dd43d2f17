"""Activities: what happened in the contact centre lands in the CRM's activity history."""

from crmsync_pipelines.defs.stage_assets import build_extract_asset, build_load_asset, build_map_asset

GROUP = "daktela_to_crm"

daktela_activities = build_extract_asset(
    entity="activity",
    key=["daktela", "activities"],
    group=GROUP,
    kinds={"daktela", "duckdb"},
    description="Activities (calls, emails, chats, SMS, Messenger, WhatsApp, Viber) created in "
    "Daktela during the partition window, plus recent ones re-scanned for late changes "
    "(closed, dispositioned, recorded). Staged raw in DuckDB.",
)

staging_activities_mapped = build_map_asset(
    entity="activity",
    key=["staging", "activities_mapped"],
    upstream=["daktela", "activities"],
    group=GROUP,
    description="Activities translated into the CRM's activity shape, keyed by the Daktela "
    "activity name. Blocking checks keep a bad batch away from the CRM.",
)

crm_activities = build_load_asset(
    entity="activity",
    key=["crm", "activities"],
    upstream=["staging", "activities_mapped"],
    group=GROUP,
    kinds={"crm"},
    description="Activities in the CRM after the sync, idempotent by the Daktela activity name "
    "stored as the external id: a re-run never duplicates a call.",
)
