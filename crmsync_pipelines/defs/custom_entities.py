"""One asset chain per enabled custom entity, built from ``sync.yaml`` when definitions load.

For ``sync.custom_entities: [{name: partners, enabled: true, ...}]`` the code location gets
``crm/custom_partners -> staging/custom_partners_mapped -> daktela/custom_partners`` in the
``crm_to_daktela`` group (so ``crm_to_daktela`` and ``full_sync`` run it), built by the same
builders as the native chains: the same blocking mapped checks, ``no_failed_records``,
``reconciliation`` and metadata. The load waits for ``daktela/accounts`` and
``daktela/contacts``, so native records are written first (custom entities run last, as in
the PHP SDK's ``fullSync``) and the ownership rule (docs/configuration.md) favours them.

Only the raw YAML is read here (no secret is needed to load the code location); a file that
cannot be read gives no custom chains (the native ones still load, and the run itself reports
the config error). Names that are not Dagster key-safe are spelled with ``_`` in asset keys
(``my-partners`` -> ``custom_my_partners``); the entity stays ``custom:my-partners``.
"""

import logging
import re
from typing import Any

import dagster as dg
import yaml

from crmsync_pipelines.defs.checks import build_reconciliation_check
from crmsync_pipelines.defs.partitions import config_path_from_env
from crmsync_pipelines.defs.stage_assets import build_extract_asset, build_load_asset, build_map_asset

GROUP = "crm_to_daktela"
LOG = logging.getLogger("crmsync.defs")


def key_part(name: str) -> str:
    """``custom_<name>`` with every character Dagster does not allow in a key replaced by ``_``."""
    return "custom_" + re.sub(r"[^A-Za-z0-9_]", "_", name)


def enabled_custom_entries(config_path: Any = None) -> list[dict[str, Any]]:
    """Enabled ``sync.custom_entities`` entries of the raw ``sync.yaml`` (``[]`` when unreadable)."""
    from crmsync_pipelines.config.yaml_file import read_yaml_document
    from crmsync_pipelines.errors import ConfigError

    path = config_path or config_path_from_env()
    try:
        raw = read_yaml_document(path, kind="configuration file") or {}
        entries = (raw.get("sync") or {}).get("custom_entities") or []
    except (OSError, yaml.YAMLError, ConfigError, AttributeError, TypeError):
        return []
    found: list[dict[str, Any]] = []
    seen: set[str] = set()
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or entry.get("enabled") is not True or not entry.get("name"):
            continue
        part = key_part(str(entry["name"]))
        if part in seen:  # two names spelled alike in keys: the second gets no chain (logged)
            LOG.warning("custom entity %r: asset key %s is taken by another entry; no asset chain", entry["name"],
                        part)
            continue
        seen.add(part)
        found.append(entry)
    return found


def build_custom_chain(entry: dict[str, Any]) -> list[Any]:
    """The three assets and the reconciliation check of one custom entity."""
    name = str(entry["name"])
    entity: Any = f"custom:{name}"
    part = key_part(name)
    target = str(entry.get("target") or "contact")
    source = str(entry.get("source") or name)
    extract = build_extract_asset(
        entity=entity,
        key=["crm", part],
        group=GROUP,
        kinds={"crm", "duckdb"},
        description=f"Custom entity {name!r}: records of the CRM source {source!r} changed in the partition "
        "window, staged raw in DuckDB.",
    )
    mapped = build_map_asset(
        entity=entity,
        key=["staging", f"{part}_mapped"],
        upstream=["crm", part],
        group=GROUP,
        description=f"Custom entity {name!r} translated into Daktela {target}s by its mapping, with payload "
        "hashes. Blocking checks keep a bad batch away from Daktela.",
    )
    load = build_load_asset(
        entity=entity,
        key=["daktela", part],
        upstream=["staging", f"{part}_mapped"],
        extra_deps=[["daktela", "accounts"], ["daktela", "contacts"]],
        group=GROUP,
        kinds={"daktela"},
        description=f"Custom entity {name!r} in Daktela as {target}s after the sync (keyed custom:{name} in "
        "the ledger); a record never overwrites a Daktela record another entity wrote.",
    )
    reconciliation = build_reconciliation_check(
        entity, ["daktela", part],
        f"Every record of custom entity {name!r} changed in the window exists in Daktela under its lookup key.",
    )
    return [extract, mapped, load, reconciliation]


@dg.definitions
def custom_entity_definitions() -> dg.Definitions:
    built = [d for entry in enabled_custom_entries() for d in build_custom_chain(entry)]
    return dg.Definitions(
        assets=[d for d in built if isinstance(d, dg.AssetsDefinition) and not isinstance(d, dg.AssetChecksDefinition)],
        asset_checks=[d for d in built if isinstance(d, dg.AssetChecksDefinition)],
    )
