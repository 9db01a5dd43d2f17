"""Builders of the three stage assets every flow has: extract -> mapped -> load.

Each asset calls exactly one engine stage over the run's partition window (a range run pages
the whole range at once) and turns the engine's ``StageReport`` into metadata and check
results. Errors that a retry cannot fix (bad credentials, bad config, unsupported operation)
fail the step without retries; anything else is left to the job's retry policy.
"""

import hashlib
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from pathlib import Path

import dagster as dg
import yaml

from crmsync_pipelines.defs.check_events import CheckEvent, materialize_events
from crmsync_pipelines.defs.metadata import check_result, report_metadata
from crmsync_pipelines.defs.node_labels import node_description, node_kinds, node_tags
from crmsync_pipelines.defs.partitions import config_path_from_env, sync_partitions
from crmsync_pipelines.defs.run_figures import attribution_metadata, label_run_totals
from crmsync_pipelines.engine.custom import all_entities, engine_for
from crmsync_pipelines.engine.engine import SyncEngine
from crmsync_pipelines.engine.reports import CheckOutcome, Entity, StageReport, Window
from crmsync_pipelines.errors import ErrorClass, classify

#: Every stage writes the DuckDB staging file, which allows one writer at a time.
STAGING_POOL = "crmsync_staging"

#: Blocking checks on each mapped asset: a batch that fails one never reaches the target.
MAPPED_CHECKS: dict[str, str] = {
    "lookup_key_present": "Every mapped record has a value in the lookup field.",
    "lookup_key_unique": "No two mapped records share a lookup key (they would overwrite each other).",
    "required_fields_present": "Every mapped record carries the fields the target requires.",
}
#: The WARN check on each load asset.
NO_FAILED_RECORDS = "no_failed_records"
#: On the load assets (what users of Daktela and the CRM see): schedules refresh every 15
#: minutes, so a sync that silently stopped (schedule off, daemon down, runs stuck in the
#: queue) shows as overdue after 30 minutes (two missed ticks) and failing after two hours,
#: although no run failed. Both are below the UI's rounding thresholds (it shows 45 minutes as
#: "an hour"), so the UI says exactly these numbers.
FRESHNESS_WARN = timedelta(minutes=30)
FRESHNESS_FAIL = timedelta(hours=2)
LOAD_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=FRESHNESS_FAIL, warn_window=FRESHNESS_WARN)

_PERMANENT = {ErrorClass.AUTH, ErrorClass.VALIDATION, ErrorClass.NOT_SUPPORTED, ErrorClass.CONFLICT}

Stage = Callable[[SyncEngine, Entity, Window, str], StageReport]


def run_window(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> Window:
    """The run's partition window; a range run gets the whole range as one window."""
    window = context.partition_time_window
    return Window(window.start, window.end)


def mapping_code_version(entity: str) -> str | None:
    """A short hash of the entity's mapping file, so the UI shows which mapping produced data.

    Read from the raw YAML (no secret needed), bounded like ``load_config`` (size, depth,
    alias expansion); ``None`` when the file cannot be found or read.
    """
    from crmsync_pipelines.config.yaml_file import read_yaml_document
    from crmsync_pipelines.errors import ConfigError

    config_path = config_path_from_env()
    try:
        raw = read_yaml_document(config_path, kind="configuration file") or {}
        if entity.startswith("custom:"):  # a sync.custom_entities entry, by name
            mapping_file = next(e for e in raw["sync"]["custom_entities"]
                                if isinstance(e, dict) and f"custom:{e.get('name')}" == entity)["mapping_file"]
        else:
            mapping_file = raw["sync"]["entities"][entity]["mapping_file"]
        path = Path(str(mapping_file))
        if not path.is_absolute():
            path = config_path.parent / path
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except (OSError, yaml.YAMLError, ConfigError, KeyError, TypeError, StopIteration):
        return None


def _run_stage(
    context: dg.AssetExecutionContext, entity: Entity, stage_name: str, stage: Stage
) -> tuple[StageReport | None, Window]:
    window = run_window(context)
    sync_engine = context.resources.sync_engine
    try:
        with sync_engine.open(logger=context.log) as engine:
            if entity not in all_entities(engine):
                context.log.info(f"{entity}: disabled in sync.yaml; nothing to do for {window.label()}")
                return None, window
            context.log.info(f"{entity}: {stage_name} over {window.label()}")
            report = stage(engine_for(engine, entity), entity, window, context.run.run_id)
    except Exception as exc:
        if classify(exc) in _PERMANENT:
            raise dg.Failure(
                description=f"{entity}: {type(exc).__name__}: {exc}", allow_retries=False
            ) from exc
        raise
    context.log.info(report.summary_line())
    return report, window


def _disabled_metadata(context: dg.AssetExecutionContext, window: Window) -> dict[str, dg.MetadataValue]:
    return label_run_totals({
        "entity_enabled": dg.MetadataValue.bool(False),
        "window": dg.MetadataValue.text(window.label()),
        "dagster/row_count": dg.MetadataValue.int(0),
    }, list(context.partition_keys))


def stage_metadata(context: dg.AssetExecutionContext, report: StageReport) -> dict[str, dg.MetadataValue]:
    """The stage's metadata with API calls split by entity, labelled as run totals in a range run."""
    keys = list(context.partition_keys)
    metadata = {**report_metadata(report, partitions_in_run=len(keys)), **attribution_metadata(report)}
    return label_run_totals(metadata, keys)


def build_extract_asset(
    *, entity: Entity, key: Sequence[str], group: str, kinds: set[str], description: str
) -> dg.AssetsDefinition:
    """The source system's records of the window, staged raw in DuckDB."""

    @dg.asset(
        key=list(key),
        group_name=group,
        kinds=node_kinds(key[0], kinds),
        description=node_description(key[0], "source", description),
        tags=node_tags(key[0], "source"),
        partitions_def=sync_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=STAGING_POOL,
        required_resource_keys={"sync_engine"},
    )
    def _extract(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        report, window = _run_stage(context, entity, "extract", lambda e, n, w, r: e.extract(n, w, r))
        if report is None:
            return dg.MaterializeResult(metadata=_disabled_metadata(context, window))
        metadata = stage_metadata(context, report)
        return dg.MaterializeResult(metadata=metadata)

    return _extract


def build_map_asset(
    *, entity: Entity, key: Sequence[str], upstream: Sequence[str], group: str, description: str
) -> dg.AssetsDefinition:
    """Mapped payloads with hashes, guarded by blocking checks."""
    asset_key = dg.AssetKey(list(key))
    specs = [
        # Partitioned like the asset, so each evaluation is recorded on its partition.
        dg.AssetCheckSpec(name, asset=asset_key, description=text, blocking=True, partitions_def=sync_partitions)
        for name, text in MAPPED_CHECKS.items()
    ]

    @dg.asset(
        key=list(key),
        deps=[dg.AssetKey(list(upstream))],
        group_name=group,
        kinds={"python", "duckdb"},
        description=node_description(key[0], "mapped", description),
        tags=node_tags(key[0], "mapped"),
        partitions_def=sync_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=STAGING_POOL,
        code_version=mapping_code_version(entity),
        check_specs=specs,
        required_resource_keys={"sync_engine"},
    )
    def _map(context: dg.AssetExecutionContext) -> Iterator[dg.MaterializeResult | CheckEvent]:
        report, window = _run_stage(context, entity, "map", lambda e, n, w, r: e.map(n, w, r))
        if report is None:
            passed = [
                dg.AssetCheckResult(asset_key=asset_key, check_name=name, passed=True,
                                    description="entity disabled in sync.yaml")
                for name in MAPPED_CHECKS
            ]
            yield from materialize_events(context, _disabled_metadata(context, window), passed)
            return
        outcomes = {outcome.name: outcome for outcome in report.checks}
        results = [
            check_result(outcomes.get(name), check_name=name, asset_key=asset_key,
                         severity=dg.AssetCheckSeverity.ERROR)
            for name in MAPPED_CHECKS
        ]
        for result in results:
            if not result.passed:
                context.log.error(f"{entity}: blocking check {result.check_name} failed: "
                                  f"{result.description}")
        yield from materialize_events(
            context, stage_metadata(context, report), results
        )

    return _map


def build_load_asset(
    *,
    entity: Entity,
    key: Sequence[str],
    upstream: Sequence[str],
    group: str,
    kinds: set[str],
    description: str,
    extra_deps: Sequence[Sequence[str]] = (),
) -> dg.AssetsDefinition:
    """The diff of the window applied to the target system, recorded in the ledger."""
    asset_key = dg.AssetKey(list(key))
    spec = dg.AssetCheckSpec(
        NO_FAILED_RECORDS,
        asset=asset_key,
        description="Every record of the window (and the contacts auto-created for accounts) was "
        "created, updated or unchanged, and nothing waits in the failed-records table from earlier "
        "runs (held-back failures keep this WARN-failed until `crmsync retry-failed` or a data fix).",
        partitions_def=sync_partitions,
    )

    @dg.asset(
        key=list(key),
        deps=[dg.AssetKey(list(upstream)), *(dg.AssetKey(list(dep)) for dep in extra_deps)],
        group_name=group,
        kinds=node_kinds(key[0], kinds),
        description=node_description(key[0], "target", description),
        tags=node_tags(key[0], "target"),
        partitions_def=sync_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=STAGING_POOL,
        check_specs=[spec],
        freshness_policy=LOAD_FRESHNESS,
        required_resource_keys={"sync_engine"},
    )
    def _load(context: dg.AssetExecutionContext) -> Iterator[dg.MaterializeResult | CheckEvent]:
        report, window = _run_stage(context, entity, "load", lambda e, n, w, r: e.load(n, w, r))
        if report is None:
            skipped = dg.AssetCheckResult(asset_key=asset_key, check_name=NO_FAILED_RECORDS, passed=True,
                                          description="entity disabled in sync.yaml")
            yield from materialize_events(context, _disabled_metadata(context, window), [skipped])
            return
        outcome = next((c for c in report.checks if c.name == NO_FAILED_RECORDS), None) or CheckOutcome(
            name=NO_FAILED_RECORDS,
            passed=report.failed == 0,
            description=f"{report.failed} records failed in this window",
        )
        result = check_result(outcome, check_name=NO_FAILED_RECORDS, asset_key=asset_key,
                              severity=dg.AssetCheckSeverity.WARN)
        if report.failed:
            context.log.warning(f"{entity}: {report.failed} records failed; see the failed-records table")
        yield from materialize_events(
            context, stage_metadata(context, report), [result]
        )

    return _load
