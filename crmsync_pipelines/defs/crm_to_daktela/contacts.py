"""Contacts: CRM people become Daktela contacts, linked to their account."""

from crmsync_pipelines.defs.stage_assets import build_extract_asset, build_load_asset, build_map_asset

GROUP = "crm_to_daktela"

crm_contacts = build_extract_asset(
    entity="contact",
    key=["crm", "contacts"],
    group=GROUP,
    kinds={"crm", "duckdb"},
    description="Contacts (people) changed in the CRM during the partition window, staged raw in DuckDB.",
)

staging_contacts_mapped = build_map_asset(
    entity="contact",
    key=["staging", "contacts_mapped"],
    upstream=["crm", "contacts"],
    group=GROUP,
    description="Contacts translated into Daktela's shape by the contact mapping, with payload "
    "hashes. Blocking checks keep a bad batch away from Daktela.",
)

daktela_contacts = build_load_asset(
    entity="contact",
    key=["daktela", "contacts"],
    upstream=["staging", "contacts_mapped"],
    extra_deps=[["daktela", "accounts"]],
    group=GROUP,
    kinds={"daktela"},
    description="Contacts in Daktela after the sync, each linked to its Daktela account (which is "
    "why accounts load first). Unchanged contacts cost no API write.",
)
