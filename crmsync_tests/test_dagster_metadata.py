"""What the figures on materializations say: API calls per ledger entity, range-run totals."""

from __future__ import annotations

import dagster as dg
import pytest

from crmsync_pipelines.defs.materialize import current_partition_key, materialize_partition
from crmsync_pipelines.defs.partitions import sync_partitions
from crmsync_pipelines.defs.run_figures import api_calls_by_entity
from crmsync_pipelines.engine.reports import StageReport, Window
from crmsync_tests.fixtures.pipeline import PipelineWorld
from crmsync_tests.test_dagster_range_runs import CRM_TO_DAKTELA, _assets, _range, _range_tags

pytestmark = pytest.mark.slow


def _values(event: dg.EventLogRecord) -> dict[str, object]:
    materialization = event.asset_materialization
    assert materialization is not None
    return {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}


def _latest(instance: dg.DagsterInstance, key: str) -> dict[str, object]:
    records = instance.fetch_materializations(dg.AssetKey.from_user_string(key), limit=1).records
    return _values(records[0])


def test_api_calls_are_attributed_to_the_entity_they_were_made_for(
    pipeline_world: PipelineWorld, dagster_instance: dg.DagsterInstance
) -> None:
    world = pipeline_world
    # Contacts first, alone: every account they reference is created on the fly by their load.
    assets = _assets(["crm/contacts", "staging/contacts_mapped", "daktela/contacts"])
    world.simulator.reset_log()
    result = dg.materialize(assets, instance=dagster_instance, resources=world.resources(),
                            partition_key=current_partition_key())
    assert result.success
    contacts = _latest(dagster_instance, "daktela/contacts")
    account_posts = world.simulator.request_count("POST", "/api/v6/accounts.json")
    assert world.ledger(result.run_id).get(("account", "created"), 0) == account_posts > 0
    assert contacts["api_calls_for_account"] >= account_posts  # type: ignore[operator]
    assert contacts["api_calls_for_contact"] >= world.simulator.request_count("POST", "/api/v6/contacts.json") - (
        world.ledger(result.run_id).get(("auto_contact", "created"), 0))
    split = {k: v for k, v in contacts.items() if str(k).startswith("api_calls_for_")}
    assert sum(split.values()) == contacts["api_calls_total"]  # type: ignore[arg-type]
    # The contacts auto-created for those accounts have calls of their own.
    if world.ledger(result.run_id).get(("auto_contact", "created"), 0):
        assert contacts["api_calls_for_auto_contact"] > 0  # type: ignore[operator]


def test_the_demo_summary_counts_each_entitys_calls_once(
    pipeline_world: PipelineWorld, dagster_instance: dg.DagsterInstance
) -> None:
    world = pipeline_world
    world.simulator.reset_log()
    summary = materialize_partition(instance=dagster_instance, resources=world.resources())
    assert summary.success
    assert summary.api_calls["auto_contact"] > 0
    assert set(summary.api_calls) >= {"account", "contact", "activity", "auto_contact"}
    # Every call of every stage is attributed to exactly one entity, and counted once.
    figures = [_latest(dagster_instance, key) for key in summary.materialized]
    assert sum(summary.api_calls.values()) == sum(int(f["api_calls_total"]) for f in figures)  # type: ignore[call-overload]
    daktela = sum(int(f.get("api_calls_daktela", 0)) for f in figures)  # type: ignore[call-overload]
    # The simulator saw those requests, plus the reconciliation checks' reads.
    assert 0 < daktela <= world.simulator.request_count()


def test_range_run_figures_are_labelled_as_run_totals(
    pipeline_world: PipelineWorld, dagster_instance: dg.DagsterInstance
) -> None:
    start, end, keys = _range(3)
    result = dg.materialize(_assets(CRM_TO_DAKTELA), instance=dagster_instance,
                            resources=pipeline_world.resources(), tags=_range_tags(start, end))
    assert result.success
    records = dagster_instance.fetch_materializations(dg.AssetKey(["daktela", "contacts"]), limit=10).records
    assert sorted(r.partition_key for r in records) == keys  # type: ignore[type-var]
    created = pipeline_world.ledger(result.run_id).get(("contact", "created"), 0)
    for record in records:
        values = _values(record)
        assert "dagster/row_count" not in values
        assert values["run_row_count"] == created
        assert f"{len(keys)} partitions, {keys[0]} to {keys[-1]}" in str(values["figures_cover"])


def test_a_single_partition_keeps_its_row_count(
    pipeline_world: PipelineWorld, dagster_instance: dg.DagsterInstance
) -> None:
    key = current_partition_key()
    result = dg.materialize(_assets(CRM_TO_DAKTELA), instance=dagster_instance,
                            resources=pipeline_world.resources(), partition_key=key)
    assert result.success
    values = _latest(dagster_instance, "daktela/contacts")
    window = sync_partitions.time_window_for_partition_key(key)
    assert values["window_start"] == window.start.isoformat()
    assert values["dagster/row_count"] == pipeline_world.ledger(result.run_id).get(("contact", "created"), 0)
    assert "figures_cover" not in values


def _report(entity: str, total: int, **kwargs: object) -> StageReport:
    return StageReport(entity=entity, stage="load", run_id="r", window=Window(None, None),  # type: ignore[arg-type]
                       api_calls={"daktela": total}, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("report", "expected"), [
    (_report("account", 10, related_api_calls={"daktela": 4}), {"account": 6, "auto_contact": 4}),
    (_report("contact", 30, side_reports=[_report("account", 12, related_api_calls={"daktela": 5})]),
     {"contact": 18, "account": 7, "auto_contact": 5}),
    # nested: an on-the-fly sync that itself synced related records
    (_report("contact", 9, side_reports=[_report("account", 6, side_reports=[_report("contact", 2)])]),
     {"contact": 3 + 2, "account": 4}),
    (_report("activity", 0), {}),
])
def test_api_call_split_adds_up_to_the_stage_total(report: StageReport, expected: dict[str, int]) -> None:
    split = api_calls_by_entity(report)
    assert split == expected
    assert sum(split.values()) == sum(report.api_calls.values())
