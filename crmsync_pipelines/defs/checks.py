"""Reconciliation checks: after a load, do the two systems agree on the window's keys?

The blocking mapped checks and the ``no_failed_records`` check are emitted by the assets
themselves (they come from the same engine report); reconciliation asks both systems again,
so it is a separate check that can also be re-run on its own from the UI.
"""

from collections.abc import Iterator

import dagster as dg

from crmsync_pipelines.defs.check_events import CheckEvent, check_events
from crmsync_pipelines.defs.metadata import check_result
from crmsync_pipelines.defs.partitions import sync_partitions
from crmsync_pipelines.defs.stage_assets import STAGING_POOL, run_window
from crmsync_pipelines.engine.custom import all_entities, engine_for
from crmsync_pipelines.engine.reports import Entity

RECONCILIATION = "reconciliation"


def build_reconciliation_check(
    entity: Entity, target: list[str], description: str
) -> dg.AssetChecksDefinition:
    asset_key = dg.AssetKey(target)

    # A generator check (Dagster runs op generators); its stub only names AssetCheckResult.
    @dg.asset_check(  # type: ignore[arg-type]
        asset=asset_key,
        name=RECONCILIATION,
        description=description,
        partitions_def=sync_partitions,
        pool=STAGING_POOL,
        required_resource_keys={"sync_engine"},
    )
    def _reconcile(context: dg.AssetCheckExecutionContext) -> Iterator[CheckEvent]:
        window = run_window(context)
        with context.resources.sync_engine.open(logger=context.log) as engine:
            if entity not in all_entities(engine):
                disabled = dg.AssetCheckResult(asset_key=asset_key, check_name=RECONCILIATION, passed=True,
                                               description="entity disabled in sync.yaml")
                yield from check_events(context, [disabled])
                return
            outcome = engine_for(engine, entity).reconcile(entity, window)
        context.log.info(f"{entity}: reconciliation {'passed' if outcome.passed else 'FAILED'} "
                         f"for {window.label()}: {outcome.description}")
        # In a range run: one evaluation per partition, or the graph shows the check as skipped.
        yield from check_events(context, [check_result(outcome, check_name=RECONCILIATION, asset_key=asset_key,
                                                       severity=dg.AssetCheckSeverity.WARN)])

    return _reconcile


accounts_reconciliation = build_reconciliation_check(
    "account", ["daktela", "accounts"],
    "Every CRM account changed in the window exists in Daktela under its lookup key.",
)
contacts_reconciliation = build_reconciliation_check(
    "contact", ["daktela", "contacts"],
    "Every CRM contact changed in the window exists in Daktela under its lookup key.",
)
activities_reconciliation = build_reconciliation_check(
    "activity", ["crm", "activities"],
    "Every Daktela activity created in the window exists in the CRM under its external id.",
)
