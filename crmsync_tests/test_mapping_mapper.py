"""``FieldMapper``: processing order, dot notation, relations, append, multi_value, failures."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from crmsync_pipelines.errors import ConfigError, MappingError
from crmsync_pipelines.mapping import (
    FieldMapper,
    Mapping,
    MultiValue,
    RecordMappingError,
    TransformerRegistry,
    load_mapping,
    mapping_from_dict,
)
from crmsync_pipelines.mapping.multivalue import compile_multi_value

REL = {"entity": "account", "resolve_from": "id", "resolve_to": "name"}


def contact_mapping(*rules: dict[str, Any], lookup: str = "name") -> Mapping:
    return mapping_from_dict({"entity": "contact", "lookup_field": lookup, "mappings": list(rules)})


def one(rule: dict[str, Any], record: dict[str, Any], relations: dict[str, dict[str, str]] | None = None) -> Any:
    """Map ``record`` with a single rule writing ``name`` and return that value."""
    mapping = contact_mapping({"cc_field": "name", **rule})
    return FieldMapper().map(record, mapping, "crm_to_cc", relations)["name"]


def test_crm_to_cc_and_cc_to_crm() -> None:
    mapping = contact_mapping(
        {"cc_field": "name", "crm_field": "id", "transformers": [{"name": "prefix", "params": {"value": "crm_"}}]},
        {"cc_field": "title", "crm_field": "full_name"},
    )
    mapper = FieldMapper()
    assert mapper.map({"id": "42", "full_name": "Jiří"}, mapping, "crm_to_cc") == {"name": "crm_42", "title": "Jiří"}
    assert mapper.map({"name": "x", "title": "T", "other": 1}, mapping, "cc_to_crm") == {
        "id": "crm_x",
        "full_name": "T",
    }


def test_dot_notation_read_and_write() -> None:
    mapping = contact_mapping(
        {"cc_field": "name", "crm_field": "id"},
        {"cc_field": "customFields.email", "crm_field": "contactInfo.email"},
        {"cc_field": "extra.deep.er.value", "crm_field": "a.b.c"},
        {"cc_field": "first_tag", "crm_field": "tags.0"},
        {"cc_field": "flat", "crm_field": "x.y"},
        {"cc_field": "missing", "crm_field": "contactInfo.nope.deeper"},
    )
    record = {
        "id": "1",
        "contactInfo": {"email": "a@b.cz"},
        "a": {"b": {"c": 3}},
        "tags": ["vip", "x"],
        "x.y": "literal dotted key wins",
        "x": {"y": "walked"},
    }
    assert FieldMapper().map(record, mapping, "crm_to_cc") == {
        "name": "1",
        "customFields": {"email": ["a@b.cz"]},  # Daktela custom fields are lists: wrapped on write
        "extra": {"deep": {"er": {"value": 3}}},
        "first_tag": "vip",
        "flat": "literal dotted key wins",
        "missing": None,
    }


@pytest.mark.parametrize(
    "record",
    [{"contactInfo": None}, {"contactInfo": "text"}, {"contactInfo": []}, {"contactInfo": {"tags": ["a"]}}, {}],
)
def test_dot_read_of_missing_or_wrong_shape_is_null(record: dict[str, Any]) -> None:
    assert one({"crm_field": "contactInfo.email"}, record) is None


def test_dot_write_replaces_a_non_dict_intermediate() -> None:
    mapping = contact_mapping(
        {"cc_field": "name", "crm_field": "id"},
        {"cc_field": "customFields", "crm_field": "cf"},
        {"cc_field": "customFields.email", "crm_field": "email"},
    )
    assert FieldMapper().map({"id": "1", "cf": [], "email": "e"}, mapping, "crm_to_cc") == {
        "name": "1",
        "customFields": {"email": ["e"]},
    }


def test_null_is_written_as_a_key() -> None:
    mapping = contact_mapping(
        {"cc_field": "name", "crm_field": "id"},
        {"cc_field": "description", "crm_field": "d"},
        {"cc_field": "customFields.email", "crm_field": "e"},
    )
    # A cleared custom field is written as the empty list Daktela uses for "no values".
    assert FieldMapper().map({}, mapping, "crm_to_cc") == {
        "name": None,
        "description": None,
        "customFields": {"email": []},
    }


def test_static_values_still_run_transformers_and_are_never_shared() -> None:
    mapping = contact_mapping(
        {"cc_field": "name", "crm_field": "id"},
        {
            "cc_field": "database",
            "value": "default",
            "transformers": [{"name": "string_case", "params": {"case": "upper"}}],
        },
        {"cc_field": "nothing", "value": None, "transformers": [{"name": "default_value", "params": {"value": "d"}}]},
        {"cc_field": "tags", "value": ["a"], "append": True},
        {"cc_field": "tags", "crm_field": "tag", "append": True},
    )
    mapper = FieldMapper()
    first = mapper.map({"id": "1", "tag": "b"}, mapping, "crm_to_cc")
    second = mapper.map({"id": "2", "tag": "c"}, mapping, "crm_to_cc")
    assert first == {"name": "1", "database": "DEFAULT", "nothing": "d", "tags": ["a", "b"]}
    assert second["tags"] == ["a", "c"]
    assert mapping.mappings[3].value == ["a"]


def test_transformers_run_in_order() -> None:
    rule = {
        "crm_field": "v",
        "transformers": [
            {"name": "default_value", "params": {"value": "x"}},
            {"name": "prefix", "params": {"value": "a_"}},
            {"name": "string_case", "params": {"case": "upper"}},
            {"name": "wrap_array"},
        ],
    }
    assert one(rule, {"v": None}) == ["A_X"]
    assert one(rule, {"v": "ř"}) == ["A_Ř"]


# --- relations ------------------------------------------------------------------------------------

RELATIONS = {"account": {"17": "crm_acc_17", "acc-1": "acme"}}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("17", "crm_acc_17"),
        (17, "crm_acc_17"),  # integer ids resolve too (the PHP SDK skipped them, W6)
        ("acc-1", "acme"),
        ("99", "99"),  # unresolved: kept
        (99, 99),
        (None, None),
        ("", ""),
        (True, True),
        (["17", 17, "99", None], ["crm_acc_17", "crm_acc_17", "99", None]),
    ],
)
def test_relation_resolution(value: Any, expected: Any) -> None:
    assert one({"crm_field": "account_id", "relation": REL}, {"account_id": value}, RELATIONS) == expected


def test_relation_without_tables_keeps_the_value() -> None:
    assert one({"crm_field": "a", "relation": REL}, {"a": "17"}) == "17"
    assert one({"crm_field": "a", "relation": REL}, {"a": "17"}, {"contact": {"17": "x"}}) == "17"


def test_relation_runs_after_transformers_and_before_multi_value() -> None:
    rule = {
        "crm_field": "a",
        "transformers": [{"name": "strip_prefix", "params": {"value": "raw:"}}],
        "relation": REL,
        "multi_value": {"strategy": "split"},
    }
    assert one(rule, {"a": "raw:acc-1"}, RELATIONS) == ["acme"]


# --- multi_value and append -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("strategy", "separator", "value", "expected"),
    [
        ("as_array", ",", ["a", "b"], ["a", "b"]),
        ("as_array", ",", None, []),
        ("as_array", ",", "", []),
        ("as_array", ",", "x", ["x"]),
        ("as_array", ",", 0, [0]),
        ("join", ",", ["a", "b"], "a,b"),
        ("join", " | ", ["a", 1, True], "a | 1 | true"),
        ("join", ",", ["a", None, "b"], "a,,b"),  # nulls are not filtered by the strategy
        ("join", ",", [], ""),
        ("join", ",", None, ""),
        ("join", ",", 5, "5"),
        ("split", ",", "a, b ,c", ["a", "b", "c"]),
        ("split", ",", "a,,b", ["a", "", "b"]),
        ("split", "|", "x | y", ["x", "y"]),
        ("split", "", "a,b", ["a", "b"]),  # empty separator means ","
        ("split", ",", ["already"], ["already"]),
        ("split", ",", None, []),
        ("split", ",", "", []),
        ("split", ",", 12, ["12"]),
        ("split", ",", "žluťoučký,kůň", ["žluťoučký", "kůň"]),
        ("first", ",", ["a", "b"], "a"),
        ("first", ",", [], None),
        ("first", ",", "x", "x"),
        ("first", ",", None, None),
        ("last", ",", ["a", "b"], "b"),
        ("last", ",", [], None),
        ("last", ",", "x", "x"),
    ],
)
def test_multi_value_strategies(strategy: str, separator: str, value: Any, expected: Any) -> None:
    config = MultiValue.model_validate({"strategy": strategy, "separator": separator})
    assert compile_multi_value(config)(value) == expected
    assert (
        one({"crm_field": "v", "multi_value": {"strategy": strategy, "separator": separator}}, {"v": value}) == expected
    )


NAME_RULES = [
    {"cc_field": "name", "crm_field": "id"},
    {"cc_field": "title", "crm_field": "first", "append": True, "multi_value": {"strategy": "join", "separator": " "}},
    {"cc_field": "title", "crm_field": "last", "append": True, "multi_value": {"strategy": "join", "separator": " "}},
]


@pytest.mark.parametrize(
    ("record", "title"),
    [
        ({"first": "Jiří", "last": "Dvořák"}, "Jiří Dvořák"),
        ({"first": None, "last": "Dvořák"}, "Dvořák"),
        ({"first": "", "last": "Dvořák"}, "Dvořák"),
        ({"first": "Jiří"}, "Jiří"),
        ({}, ""),
    ],
)
def test_append_then_deferred_join(record: dict[str, Any], title: str) -> None:
    assert FieldMapper().map({"id": "1", **record}, contact_mapping(*NAME_RULES), "crm_to_cc")["title"] == title


def test_append_accumulates_lists_and_wraps_scalars() -> None:
    mapping = contact_mapping(
        {"cc_field": "name", "crm_field": "id"},
        {"cc_field": "customFields.number", "crm_field": "phone"},
        {"cc_field": "customFields.number", "crm_field": "mobiles", "append": True},
        {"cc_field": "customFields.number", "crm_field": "fax", "append": True},
        {"cc_field": "customFields.number", "crm_field": "empty", "append": True},
    )
    record = {"id": "1", "phone": "111", "mobiles": ["222", "333"], "fax": "444", "empty": ""}
    original = copy.deepcopy(record)
    assert FieldMapper().map(record, mapping, "crm_to_cc")["customFields"]["number"] == ["111", "222", "333", "444"]
    assert record == original  # the input is never mutated


def test_append_without_multi_value_keeps_a_list_and_last_deferred_config_wins() -> None:
    mapping = contact_mapping(
        {"cc_field": "name", "crm_field": "id"},
        {"cc_field": "tags", "crm_field": "a", "append": True, "multi_value": {"strategy": "join", "separator": "+"}},
        {"cc_field": "tags", "crm_field": "b", "append": True, "multi_value": {"strategy": "last"}},
        {"cc_field": "list", "crm_field": "a", "append": True},
        {"cc_field": "list", "crm_field": "b", "append": True},
    )
    assert FieldMapper().map({"id": "1", "a": "x", "b": "y"}, mapping, "crm_to_cc") == {
        "name": "1",
        "tags": "y",
        "list": ["x", "y"],
    }


def test_a_later_plain_rule_overwrites() -> None:
    mapping = contact_mapping({"cc_field": "name", "crm_field": "id"}, {"cc_field": "name", "crm_field": "other"})
    assert FieldMapper().map({"id": "1", "other": "2"}, mapping, "crm_to_cc") == {"name": "2"}


# --- failures -----------------------------------------------------------------------------------------


def test_a_failing_transformer_names_the_rule(tmp_path: Path) -> None:
    path = tmp_path / "contacts.yaml"
    path.write_text(
        "entity: contact\nlookup_field: name\nmappings:\n"
        "  - {cc_field: name, crm_field: id}\n"
        "  - {cc_field: customFields.vip, crm_field: vip, transformers: [{name: boolean}]}\n",
        encoding="utf-8",
    )
    mapping = load_mapping(path)
    with pytest.raises(RecordMappingError) as info:
        FieldMapper().map({"id": "7", "vip": "perhaps"}, mapping, "crm_to_cc")
    error = info.value
    assert isinstance(error, MappingError)
    assert (error.rule_index, error.field, error.record_id) == (1, "customFields.vip", "7")
    assert (
        str(error)
        == f"{path}: mappings[1] (vip -> customFields.vip): transformer boolean: not a boolean word: 'perhaps'"
    )


def test_a_failing_custom_transformer_and_callback_are_wrapped() -> None:
    registry = TransformerRegistry.with_defaults()
    registry.register("explode", lambda value, params: 1 / 0)
    registry.register_callback("broken", lambda value, params: value["missing"])
    mapping = mapping_from_dict(
        {
            "entity": "contact",
            "lookup_field": "name",
            "mappings": [
                {
                    "cc_field": "name",
                    "crm_field": "id",
                    "transformers": [{"name": "callback", "params": {"name": "broken"}}],
                },
                {"cc_field": "title", "value": 1, "transformers": [{"name": "explode"}]},
            ],
        },
        registry=registry,
    )
    mapper = FieldMapper(registry)
    with pytest.raises(RecordMappingError, match=r"mappings\[0\] \(id -> name\): transformer callback: 'missing'"):
        mapper.map({"id": {}}, mapping, "crm_to_cc")
    with pytest.raises(
        RecordMappingError, match=r"mappings\[1\] \(static value -> title\): transformer explode: division"
    ):
        mapper.map({"id": {"missing": "ok"}}, mapping, "crm_to_cc")


@pytest.mark.parametrize("record", [None, "text", ["a"], 5])
def test_a_record_that_is_not_a_dict(record: Any) -> None:
    with pytest.raises(RecordMappingError, match="expected a record"):
        FieldMapper().map(record, contact_mapping({"cc_field": "name", "crm_field": "id"}), "crm_to_cc")


def test_map_many_equals_map_and_stops_at_a_bad_record() -> None:
    mapping = contact_mapping(*NAME_RULES)
    records = [{"id": str(i), "first": f"F{i}", "last": "L"} for i in range(50)]
    mapper = FieldMapper()
    assert list(mapper.map_many(records, mapping, "crm_to_cc")) == [
        mapper.map(r, mapping, "crm_to_cc") for r in records
    ]
    bad = [*records[:3], "oops", *records[3:]]
    produced = []
    with pytest.raises(RecordMappingError):
        for item in mapper.map_many(bad, mapping, "crm_to_cc"):
            produced.append(item)
    assert len(produced) == 3


def test_invalid_direction() -> None:
    with pytest.raises(ValueError, match="direction must be one of crm_to_cc, cc_to_crm, not 'both'"):
        FieldMapper().map({}, contact_mapping({"cc_field": "name", "crm_field": "id"}), "both")


def test_reverse_direction_needs_a_crm_field() -> None:
    mapping = contact_mapping({"cc_field": "name", "crm_field": "id"}, {"cc_field": "database", "value": "default"})
    with pytest.raises(
        ConfigError, match=r"mappings\[1\]: crm_field is required: it is the field this rule writes in cc_to_crm"
    ):
        FieldMapper().map({}, mapping, "cc_to_crm")


def test_mapping_loaded_with_another_registry_fails_at_compile() -> None:
    registry = TransformerRegistry.with_defaults()
    registry.register("shout", lambda value, params: str(value).upper())
    mapping = mapping_from_dict(
        {
            "entity": "contact",
            "lookup_field": "name",
            "mappings": [{"cc_field": "name", "crm_field": "id", "transformers": [{"name": "shout"}]}],
        },
        registry=registry,
    )
    assert FieldMapper(registry).map({"id": "a"}, mapping, "crm_to_cc") == {"name": "A"}
    with pytest.raises(ConfigError, match=r"mappings\[0\]\.transformers\[0\]\.name: unknown transformer 'shout'"):
        FieldMapper(TransformerRegistry.with_defaults()).map({"id": "a"}, mapping, "crm_to_cc")


def test_registering_after_first_use_recompiles() -> None:
    registry = TransformerRegistry.with_defaults()
    mapping = contact_mapping(
        {"cc_field": "name", "crm_field": "id", "transformers": [{"name": "prefix", "params": {"value": "p_"}}]}
    )
    mapper = FieldMapper(registry)
    assert mapper.map({"id": "1"}, mapping, "crm_to_cc") == {"name": "p_1"}
    registry.register("prefix", lambda value, params: f"{value}_{params['value']}")
    assert mapper.map({"id": "1"}, mapping, "crm_to_cc") == {"name": "1_p_"}
