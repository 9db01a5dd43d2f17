"""Refusal bookkeeping in the mapper, and Daktela custom fields written as lists."""

from __future__ import annotations

from typing import Any

import pytest

from crmsync_pipelines.errors import ConfigError
from crmsync_pipelines.mapping import FieldMapper, RecordMappingError, Refusal, TransformerRegistry, mapping_from_dict
from crmsync_pipelines.mapping.refusals import NOTES_REFUSALS, note_refusal


def _mapping(*rules: dict[str, Any], entity: str = "contact", lookup: str = "name", registry: Any = None) -> Any:
    return mapping_from_dict({"entity": entity, "lookup_field": lookup, "mappings": list(rules)}, registry=registry)


def _registry() -> TransformerRegistry:
    registry = TransformerRegistry.with_defaults()

    def flagged(params: dict[str, Any], registry: TransformerRegistry) -> Any:
        def run(value: Any) -> Any:
            if value == "bad":
                note_refusal(value, "'bad' is bad", "drop")
                return None
            return value

        setattr(run, NOTES_REFUSALS, True)
        return run

    def unflagged(value: Any, params: dict[str, Any]) -> Any:
        if value == "bad":
            note_refusal(value, "'bad' is bad", "keep")
        return value

    registry.register_factory("flagged", flagged)
    registry.register("unflagged", unflagged)
    return registry


def test_custom_transformers_can_report_refusals() -> None:
    registry = _registry()
    mapping = _mapping(
        {"cc_field": "name", "crm_field": "id"},
        {"cc_field": "title", "crm_field": "a", "transformers": [{"name": "flagged"}]},
        {"cc_field": "description", "crm_field": "b", "transformers": [{"name": "unflagged"}]},
        registry=registry,
    )
    refusals: list[Refusal] = []
    payload = FieldMapper(registry).map({"id": "1", "a": "bad", "b": "bad"}, mapping, "crm_to_cc", refusals=refusals)
    assert payload == {"name": "1", "title": None, "description": "bad"}
    # a transformer that does not set NOTES_REFUSALS still counts; its field is unknown ("")
    assert refusals == [Refusal("title", "bad", "'bad' is bad", "drop"), Refusal("", "bad", "'bad' is bad", "keep")]


def test_each_record_collects_only_its_own_refusals() -> None:
    mapping = _mapping(
        {"cc_field": "name", "crm_field": "id"},
        {"cc_field": "customFields.number", "crm_field": "p", "transformers": [
            {"name": "phone_normalize", "params": {"on_invalid": "drop"}}]},
        {"cc_field": "description", "crm_field": "d", "transformers": [
            {"name": "date_format", "params": {"from": "d.m.Y", "on_invalid": "keep"}}]},
    )  # fmt: skip
    mapper = FieldMapper()
    first: list[Refusal] = []
    mapper.map({"id": "1", "p": "12", "d": "31.2.2025"}, mapping, "crm_to_cc", refusals=first)
    second: list[Refusal] = []
    mapper.map({"id": "2", "p": "603 123 456", "d": "1.2.2025"}, mapping, "crm_to_cc", refusals=second)
    assert [(r.field, r.raw, r.policy) for r in first] == [
        ("customFields.number", "12", "drop"),
        ("description", "31.2.2025", "keep"),
    ]
    assert second == []
    # without a list nothing is collected and nothing leaks into the next collection
    mapper.map({"id": "3", "p": "12"}, mapping, "crm_to_cc")
    third: list[Refusal] = []
    mapper.map({"id": "4", "p": None}, mapping, "crm_to_cc", refusals=third)
    assert third == []


# -- custom fields are lists on write -------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "record", "expected"),
    [
        ({"crm_field": "e"}, {"e": "a@b.cz"}, ["a@b.cz"]),
        ({"crm_field": "e"}, {"e": None}, []),
        ({"crm_field": "e"}, {"e": ""}, []),
        ({"crm_field": "e"}, {"e": 0}, [0]),
        ({"crm_field": "e"}, {"e": ["a", "b"]}, ["a", "b"]),
        ({"crm_field": "e"}, {"e": ("a", "b")}, ["a", "b"]),
        ({"value": "static"}, {}, ["static"]),
        ({"crm_field": "e", "transformers": [{"name": "wrap_array"}]}, {"e": "x"}, ["x"]),
        ({"crm_field": "e", "multi_value": {"strategy": "first"}}, {"e": ["a", "b"]}, ["a"]),
        ({"crm_field": "e", "multi_value": {"strategy": "join", "separator": ";"}}, {"e": ["a", "b"]}, ["a;b"]),
        ({"crm_field": "e", "multi_value": {"strategy": "split"}}, {"e": "a, b"}, ["a", "b"]),
    ],
)
def test_a_custom_field_value_is_always_a_list(rule: dict[str, Any], record: dict[str, Any], expected: Any) -> None:
    mapping = _mapping({"cc_field": "name", "crm_field": "id"}, {"cc_field": "customFields.x", **rule})
    assert FieldMapper().map({"id": "1", **record}, mapping, "crm_to_cc")["customFields"] == {"x": expected}


def test_appended_custom_field_is_a_list_after_its_deferred_join() -> None:
    mapping = _mapping(
        {"cc_field": "name", "crm_field": "id"},
        {"cc_field": "customFields.full", "crm_field": "a", "append": True,
         "multi_value": {"strategy": "join", "separator": " "}},
        {"cc_field": "customFields.full", "crm_field": "b", "append": True,
         "multi_value": {"strategy": "join", "separator": " "}},
    )  # fmt: skip
    payload = FieldMapper().map({"id": "1", "a": "Jiří", "b": "Dvořák"}, mapping, "crm_to_cc")
    assert payload["customFields"] == {"full": ["Jiří Dvořák"]}


def test_the_whole_custom_fields_object_gets_list_values() -> None:
    mapping = _mapping({"cc_field": "name", "crm_field": "id"}, {"cc_field": "customFields", "crm_field": "cf"})
    mapper = FieldMapper()
    record = {"id": "1", "cf": {"email": "a@b.cz", "number": ["1", "2"], "web": None}}
    assert mapper.map(record, mapping, "crm_to_cc")["customFields"] == {
        "email": ["a@b.cz"],
        "number": ["1", "2"],
        "web": [],
    }
    assert mapper.map({"id": "1", "cf": None}, mapping, "crm_to_cc")["customFields"] is None
    with pytest.raises(RecordMappingError, match="customFields takes an object of lists, got str"):
        mapper.map({"id": "1", "cf": "text"}, mapping, "crm_to_cc")


def test_crm_side_fields_named_custom_fields_are_not_wrapped() -> None:
    # activities are mapped cc_to_crm: the CRM decides the shape of its own fields
    mapping = _mapping(
        {"cc_field": "name", "crm_field": "external_id"},
        {"cc_field": "title", "crm_field": "customFields.subject"},
        entity="activity",
        lookup="external_id",
    )
    payload = FieldMapper().map({"name": "a1", "title": "Hi"}, mapping, "cc_to_crm")
    assert payload == {"external_id": "a1", "customFields": {"subject": "Hi"}}


def test_writing_inside_a_custom_field_is_a_load_time_error_naming_the_rule() -> None:
    with pytest.raises(ConfigError) as info:
        _mapping({"cc_field": "name", "crm_field": "id"}, {"cc_field": "customFields.a.b", "crm_field": "x"})
    assert info.value.path == "mappings[1].cc_field"
    assert "a Daktela custom field holds a list of values (write customFields.a instead)" in info.value.reason
