"""How an asset node says which system it belongs to, at a glance in the asset graph.

The keys repeat names on purpose (``crm/accounts`` and ``daktela/accounts``), but the graph
titles a node by the key's last part only, so two nodes read ``accounts``. What Dagster
shows on the node itself is the description's first line and the kinds (as badges, with an
icon for the systems Dagster knows), so every node gets:

* a description that starts with its system and role, ``[CRM · source]``,
  ``[Staging · mapped]`` or ``[Daktela · target]``;
* kinds naming the system (``crm``/``daktela``), DuckDB for staged data, and the CRM's own
  kind when Dagster has an icon for it (``sqlite`` for the bundled SQL adapter, ``hubspot``);
* tags ``crmsync/system`` and ``crmsync/role``, for selections (``tag:crmsync/system=crm``).

The CRM adapter is read leniently from the raw ``sync.yaml`` (no secret needed), like the
partition settings: a code location must load anywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from crmsync_pipelines.config.yaml_file import read_yaml_document
from crmsync_pipelines.defs.partitions import config_path_from_env
from crmsync_pipelines.errors import ConfigError

Role = Literal["source", "mapped", "target"]

SYSTEM_TITLES = {"crm": "CRM", "daktela": "Daktela", "staging": "Staging"}
#: ``crm.adapter`` -> the kind Dagster draws with that system's icon.
CRM_ADAPTER_KINDS = {"sql": "sqlite", "hubspot": "hubspot"}


def crm_adapter_kind(config_path: Path | None = None) -> str | None:
    """The icon kind of the configured CRM adapter, or ``None`` (unknown, unreadable, custom)."""
    path = config_path or config_path_from_env()
    try:  # the bounded reader: a hostile sync.yaml must not take the code location down
        raw = read_yaml_document(path, kind="configuration file") or {}
        adapter = str((raw.get("crm") or {}).get("adapter", "")).strip().lower()
    except (ConfigError, OSError, AttributeError):
        return None  # the config error itself is shown by the partition settings reader
    return CRM_ADAPTER_KINDS.get(adapter)


def node_kinds(system: str, base: set[str]) -> set[str]:
    """``base`` plus the CRM's icon kind for CRM nodes (Dagster shows at most three kinds)."""
    kinds = set(base)
    if system == "crm":
        extra = crm_adapter_kind()
        if extra and len(kinds) < 3:
            kinds.add(extra)
    return kinds


def node_description(system: str, role: Role, text: str) -> str:
    """``text`` headed by the system and role, the part of a description the node shows."""
    return f"[{SYSTEM_TITLES.get(system, system)} · {role}] {text}"


def node_tags(system: str, role: Role) -> dict[str, str]:
    return {"crmsync/system": system, "crmsync/role": role}
