"""Materialize every crmsync asset for one partition through a real Dagster run.

``crmsync demo`` and the end-to-end tests use this instead of bypassing Dagster, so what
they show (run in the instance's history, materializations with metadata, check results)
is exactly what a scheduled run produces. The result is returned as plain data so callers
outside ``defs/`` need no Dagster import.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from crmsync_pipelines.defs.partitions import sync_partitions
from crmsync_pipelines.defs.run_figures import API_CALLS_FOR

#: The asset groups crmsync syncs (other groups, such as the webhook job's, are left out).
FLOW_GROUPS = ("crm_to_daktela", "daktela_to_crm")
_ENTITY_BY_NAME = {"accounts": "account", "accounts_mapped": "account", "contacts": "contact",
                   "contacts_mapped": "contact", "activities": "activity", "activities_mapped": "activity"}


@dataclass
class RunSummary:
    run_id: str
    success: bool
    partition_key: str
    #: ledger entity -> API calls made for it in all stages (``api_calls_for_<entity>`` metadata).
    api_calls: dict[str, int] = field(default_factory=dict)
    materialized: list[str] = field(default_factory=list)
    failed_steps: list[str] = field(default_factory=list)
    failed_checks: list[str] = field(default_factory=list)


def current_partition_key(now: datetime | None = None) -> str:
    return sync_partitions.get_partition_key_for_timestamp((now or datetime.now(UTC)).timestamp())


def flow_assets(defs: dg.Definitions) -> list[dg.AssetsDefinition]:
    """The partitioned crmsync assets and their checks, from the loaded definitions."""
    selected: list[dg.AssetsDefinition] = []
    for item in defs.assets or []:
        if isinstance(item, dg.AssetsDefinition) and any(
            item.group_names_by_key.get(key) in FLOW_GROUPS for key in item.keys
        ):
            selected.append(item)
    for check in defs.asset_checks or []:
        if isinstance(check, dg.AssetChecksDefinition) and any(
            key.asset_key.path[0] in ("daktela", "crm", "staging") for key in check.check_keys
        ):
            selected.append(check)
    return selected


def materialize_partition(
    *,
    defs: dg.Definitions | None = None,
    partition_key: str | None = None,
    instance: dg.DagsterInstance | None = None,
    resources: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
    console_log_level: str | None = None,
) -> RunSummary:
    """Run every flow asset (and check) for ``partition_key`` (default: the current one).

    ``console_log_level`` (``"WARNING"``, ...) raises the level of the run's console logger
    only; the instance's event log (what the UI shows) keeps every line.
    """
    key = partition_key or current_partition_key()
    if instance is None:
        # Entered before the definitions load: loading reads state through the active instance.
        with dg.DagsterInstance.get() as persistent:
            return materialize_partition(defs=defs, partition_key=key, instance=persistent,
                                         resources=resources, tags=tags, console_log_level=console_log_level)
    if defs is None:
        from crmsync_pipelines.definitions import defs as load_defs

        defs = load_defs()
    result = dg.materialize(
        flow_assets(defs),
        instance=instance,
        resources=resources if resources is not None else dict(defs.resources or {}),
        partition_key=key,
        raise_on_error=False,
        tags={"crmsync/flow": "full_sync", "crmsync/trigger": "manual", **(tags or {})},
        run_config=(
            {"loggers": {"console": {"config": {"log_level": console_log_level}}}} if console_log_level else None
        ),
    )
    return summarize(result, key)


def _calls_by_entity(asset: dg.AssetKey, metadata: Mapping[str, Any]) -> dict[str, int]:
    """API calls of one materialization per ledger entity (``api_calls_for_<entity>``)."""
    split = {key[len(API_CALLS_FOR):]: int(value.value) for key, value in metadata.items()
             if key.startswith(API_CALLS_FOR)}
    if split:
        return split
    entity = _ENTITY_BY_NAME.get(asset.path[-1])
    total = metadata.get("api_calls_total")
    return {entity: int(total.value)} if entity and total is not None else {}


def summarize(result: dg.ExecuteInProcessResult, partition_key: str) -> RunSummary:
    summary = RunSummary(run_id=result.run_id, success=result.success, partition_key=partition_key)
    for event in result.all_events:
        if event.is_step_materialization:
            materialization = event.step_materialization_data.materialization
            asset = materialization.asset_key
            name = asset.to_user_string()
            if name in summary.materialized:
                continue  # a range run repeats the run's figures on each partition: count them once
            summary.materialized.append(name)
            for entity, calls in _calls_by_entity(asset, materialization.metadata).items():
                summary.api_calls[entity] = summary.api_calls.get(entity, 0) + calls
        elif event.is_step_failure and event.step_key:
            summary.failed_steps.append(event.step_key)
        elif event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.event_specific_data
            if evaluation is not None and not evaluation.passed:  # type: ignore[union-attr]
                key = evaluation.asset_check_key  # type: ignore[union-attr]
                summary.failed_checks.append(f"{key.asset_key.to_user_string()}:{key.name}")
    summary.materialized.sort()
    return summary
