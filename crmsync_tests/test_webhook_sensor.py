"""Daktela-name resolution, batching, and the Dagster sensor over a real inbox file."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import pytest

from crmsync_pipelines.defs.webhooks import InboxResource, webhook_inbox_sensor
from crmsync_pipelines.mapping import load_mapping
from crmsync_pipelines.webhooks.batching import plan_batches
from crmsync_pipelines.webhooks.inbox import Inbox
from crmsync_pipelines.webhooks.resolution import NameResolver, Unresolvable, name_resolver, unresolved_reason

REPO = Path(__file__).resolve().parents[1]
CONTACTS = """
entity: contact
lookup_field: name
mappings:
  - cc_field: name
    crm_field: id
    transformers: [{name: prefix, params: {value: "crm_"}}]
  - cc_field: title
    crm_field: full_name
"""
ACCOUNTS = """
entity: account
lookup_field: name
mappings:
  - cc_field: name
    crm_field: id
    transformers: [{name: prefix, params: {value: "crm_acc_"}}]
  - cc_field: title
    crm_field: name
"""
AUTO_CONTACT = """
entity: contact
lookup_field: name
mappings:
  - cc_field: name
    crm_field: id
    transformers: [{name: prefix, params: {value: "crm_acc_contact_"}}]
  - cc_field: title
    crm_field: name
"""
ACTIVITIES = """
entity: activity
lookup_field: external_id
mappings:
  - cc_field: name
    crm_field: external_id
"""
SYNC = """
daktela: {instance_url: "http://127.0.0.1:9", access_token: token, database: default}
sync:
  entities:
    account:
      enabled: true
      direction: crm_to_cc
      mapping_file: accounts.yaml
      auto_create_contact: {mapping_file: account-contact.yaml}
    contact: {enabled: true, direction: crm_to_cc, mapping_file: contacts.yaml}
    activity: {enabled: true, direction: cc_to_crm, mapping_file: activities.yaml, activity_types: [call, email]}
webhook: {secret: "x-secret", inbox_path: inbox.sqlite}
"""


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    for name, text in {
        "contacts.yaml": CONTACTS,
        "accounts.yaml": ACCOUNTS,
        "account-contact.yaml": AUTO_CONTACT,
        "activities.yaml": ACTIVITIES,
        "sync.yaml": SYNC,
    }.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path / "sync.yaml"


@pytest.fixture
def inbox(config_path: Path) -> Iterator[Inbox]:
    box = Inbox(config_path.parent / "inbox.sqlite")
    yield box
    box.close()


def _daktela(inbox: Inbox, event: str, name: str) -> int:
    prefix = event.split("_", 1)[0]
    entity, kind = (prefix, None) if prefix in ("contact", "account") else ("activity", prefix)
    seq, _ = inbox.add(
        source="daktela",
        event=event,
        entity=entity,
        activity_type=kind,
        record_id=name,
        body={"event": event, "name": name},
    )
    return seq


def _crm(inbox: Inbox, entity: str, record_id: str) -> int:
    seq, _ = inbox.add(
        source="crm",
        event=f"{entity}_update",
        entity=entity,
        activity_type=None,
        record_id=record_id,
        body={"entity_type": entity, "entity_id": record_id},
    )
    return seq


Tick = Callable[[Path, "str | None"], "dg.SensorResult | dg.SkipReason"]


@pytest.fixture(scope="module")
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as test_instance:
        yield test_instance


@pytest.fixture
def tick(instance: dg.DagsterInstance) -> Tick:
    return lambda config_path, cursor: _tick(instance, config_path, cursor)


def _tick(instance: dg.DagsterInstance, config_path: Path, cursor: str | None) -> dg.SensorResult | dg.SkipReason:
    resource = InboxResource(config_path=str(config_path))
    context = dg.build_sensor_context(cursor=cursor, instance=instance, resources={"webhook_inbox": resource})
    result = webhook_inbox_sensor(context)
    assert isinstance(result, (dg.SensorResult, dg.SkipReason))
    return result


# -- resolution ------------------------------------------------------------------------------


def test_bundled_mappings_invert_their_name_rules() -> None:
    contacts = name_resolver(
        load_mapping(REPO / "mappings/contacts.yaml"), "contact", [load_mapping(REPO / "mappings/account-contact.yaml")]
    )
    accounts = name_resolver(load_mapping(REPO / "mappings/accounts.yaml"), "account")
    assert isinstance(contacts, NameResolver) and isinstance(accounts, NameResolver)
    assert contacts("crm_42") == "42"
    assert contacts("crm_acc_contact_7") is None
    assert "auto-created from an account" in unresolved_reason(contacts, "crm_acc_contact_7")
    assert contacts("novak_jiri") is None
    assert unresolved_reason(contacts, "novak_jiri") == (
        "Daktela name 'novak_jiri' was not created by this sync (expected the prefix 'crm_' followed by a CRM id)"
    )
    assert contacts("crm_") is None
    assert accounts("crm_acc_17") == "17"
    assert accounts("crm_17") is None


def test_nested_prefixes_strip_in_reverse(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        CONTACTS.replace(
            '[{name: prefix, params: {value: "crm_"}}]',
            '[{name: prefix, params: {value: "a_"}}, {name: prefix, params: {value: "b_"}}]',
        )
    )
    resolver = name_resolver(load_mapping(path), "contact")
    assert isinstance(resolver, NameResolver)
    assert resolver.full_prefix == "b_a_"
    assert resolver("b_a_9") == "9"
    assert resolver("a_b_9") is None


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        ("    crm_field: email\n", "is not a plain rule on the CRM 'id'"),
        (
            "    crm_field: id\n    transformers: [{name: string_case, params: {case: upper}}]\n",
            "uses the 'string_case' transformer, which cannot be inverted",
        ),
    ],
)
def test_non_invertible_name_rules_are_unresolvable(tmp_path: Path, rule: str, reason: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(f"entity: contact\nlookup_field: name\nmappings:\n  - cc_field: name\n{rule}")
    resolver = name_resolver(load_mapping(path), "contact")
    assert isinstance(resolver, Unresolvable)
    assert reason in resolver.reason
    assert resolver("crm_1") is None
    assert name_resolver(None, "account") == Unresolvable("entity 'account' has no mapping")


# -- batching --------------------------------------------------------------------------------


def test_plan_batches_groups_and_resolves(inbox: Inbox) -> None:
    _daktela(inbox, "call_close", "call_1")  # 1
    _daktela(inbox, "contact_update", "crm_5")  # 2
    _daktela(inbox, "email_create", "mail_1")  # 3
    _crm(inbox, "contact", "6")  # 4
    _daktela(inbox, "contact_update", "someone")  # 5 -> ignored
    _daktela(inbox, "call_answer", "call_1")  # 6
    _daktela(inbox, "account_update", "crm_acc_3")  # 7
    asked: list[str] = []

    def resolver_for(entity: str) -> NameResolver | Unresolvable:
        asked.append(entity)
        return NameResolver(("crm_acc_",)) if entity == "account" else NameResolver(("crm_",))

    plan = plan_batches(inbox.pending_after(0), resolver_for)
    assert asked == ["contact", "account"]
    assert [(b.entity, b.activity_type, b.record_ids, b.seqs, b.run_key) for b in plan.batches] == [
        ("activity", "call", ("call_1", "call_1"), (1, 6), "webhook:activity:1-6"),
        ("contact", None, ("5", "6"), (2, 4), "webhook:contact:2-4"),
        ("activity", "email", ("mail_1",), (3,), "webhook:activity:3-3"),
        ("account", None, ("3",), (7,), "webhook:account:7-7"),
    ]
    assert plan.batches[0].unique_ids == ["call_1"]
    assert [seq for seq, _ in plan.ignored] == [5]


# -- the sensor ------------------------------------------------------------------------------


def test_sensor_requests_one_run_per_batch_and_advances_the_cursor(config_path: Path, inbox: Inbox, tick: Tick) -> None:
    _daktela(inbox, "call_close", "call_1")
    _daktela(inbox, "contact_update", "crm_5")
    _daktela(inbox, "contact_update", "crm_acc_contact_2")
    _daktela(inbox, "call_close", "call_2")
    _crm(inbox, "account", "8")
    result = tick(config_path, None)
    assert isinstance(result, dg.SensorResult)
    assert result.cursor == "5"
    requests = result.run_requests or []
    assert [r.run_key for r in requests] == ["webhook:activity:1-4", "webhook:contact:2-2", "webhook:account:5-5"]
    assert requests[0].run_config == {
        "ops": {
            "sync_webhook_events": {
                "config": {
                    "entity": "activity",
                    "activity_type": "call",
                    "record_ids": ["call_1", "call_2"],
                    "inbox_seqs": [1, 4],
                }
            }
        }
    }
    assert requests[1].run_config["ops"]["sync_webhook_events"]["config"]["record_ids"] == ["5"]
    assert requests[0].tags["crmsync/entity"] == "activity"
    [ignored] = inbox.events("ignored")
    assert ignored.seq == 3
    assert "auto-created from an account" in (ignored.error or "")
    assert requests[0].tags["crmsync/inbox_claim"] == "webhook:activity:1-4"
    # Each requested event is leased under its run key until a run records its outcome.
    assert {(e.seq, e.lease_token, e.attempts) for e in inbox.pending_after(0)} == {
        (1, "webhook:activity:1-4", 1), (4, "webhook:activity:1-4", 1),
        (2, "webhook:contact:2-2", 1), (5, "webhook:account:5-5", 1),
    }
    # Ticking again requests nothing: the runs were not launched yet, their leases are fresh.
    again = tick(config_path, result.cursor)
    assert isinstance(again, dg.SkipReason)
    assert again.skip_message == "no unclaimed pending webhook events (cursor at seq 5)"


def test_retick_with_a_lost_cursor_requests_nothing_twice(config_path: Path, inbox: Inbox, tick: Tick) -> None:
    """If the cursor update were lost, the leases still keep events from being requested twice."""
    _daktela(inbox, "call_close", "call_1")
    first = tick(config_path, "0")
    second = tick(config_path, "0")
    assert isinstance(first, dg.SensorResult) and isinstance(second, dg.SkipReason)
    assert [r.run_key for r in first.run_requests or []] == ["webhook:activity:1-1"]


def test_events_arriving_later_get_new_runs(config_path: Path, inbox: Inbox, tick: Tick) -> None:
    _daktela(inbox, "call_close", "call_1")
    first = tick(config_path, None)
    assert isinstance(first, dg.SensorResult)
    _daktela(inbox, "call_close", "call_2")
    _daktela(inbox, "call_close", "call_1")  # seq 1 still pending: a duplicate, no new row
    second = tick(config_path, first.cursor)
    assert isinstance(second, dg.SensorResult)
    assert [r.run_key for r in second.run_requests or []] == ["webhook:activity:2-2"]
    assert second.cursor == "2"


def test_sensor_skips_without_an_inbox_file(tmp_path: Path, config_path: Path, tick: Tick) -> None:
    result = tick(config_path, None)
    assert isinstance(result, dg.SkipReason)
    assert "no webhook inbox at" in (result.skip_message or "")


def test_sensor_refuses_a_garbage_cursor(config_path: Path, inbox: Inbox, tick: Tick) -> None:
    with pytest.raises(Exception, match="cursor must be an inbox seq"):
        tick(config_path, "abc")


def test_definitions_load_the_sensor_job_and_resource() -> None:
    from crmsync_pipelines.defs.resources import resources
    from crmsync_pipelines.defs.webhooks import webhook_definitions

    defs = dg.Definitions.merge(webhook_definitions(), resources())
    dg.Definitions.validate_loadable(defs)
    assert defs.resolve_job_def("webhook_sync").name == "webhook_sync"
    sensor = defs.resolve_sensor_def("webhook_inbox_sensor")
    assert sensor.minimum_interval_seconds == 30
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
