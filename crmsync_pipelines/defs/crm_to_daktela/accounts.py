"""Accounts: CRM companies become Daktela accounts, so agents see who a caller works for."""

from crmsync_pipelines.defs.stage_assets import build_extract_asset, build_load_asset, build_map_asset

GROUP = "crm_to_daktela"

crm_accounts = build_extract_asset(
    entity="account",
    key=["crm", "accounts"],
    group=GROUP,
    kinds={"crm", "duckdb"},
    description="Accounts (companies) changed in the CRM during the partition window, as the CRM "
    "holds them. Staged raw in DuckDB so every later step works from one consistent read.",
)

staging_accounts_mapped = build_map_asset(
    entity="account",
    key=["staging", "accounts_mapped"],
    upstream=["crm", "accounts"],
    group=GROUP,
    description="The same accounts translated into Daktela's shape by the account mapping, each "
    "with a payload hash. Blocking checks stop a batch with missing or duplicate keys here, "
    "before anything is written to Daktela.",
)

daktela_accounts = build_load_asset(
    entity="account",
    key=["daktela", "accounts"],
    upstream=["staging", "accounts_mapped"],
    group=GROUP,
    kinds={"daktela"},
    description="Accounts in Daktela after the sync: new ones created, changed ones updated, "
    "unchanged ones left alone (no API write). Every record ends in the ledger.",
)
