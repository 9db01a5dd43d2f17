"""``load_mapping``: PHP-SDK-compatible schema, every mistake a ConfigError with file and path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from crmsync_pipelines.errors import ConfigError
from crmsync_pipelines.mapping import (
    Mapping,
    TransformerRegistry,
    direction_for_entity,
    load_mapping,
    mapping_from_dict,
)

KNOWN = (
    "boolean, callback, date_format, default_value, join, phone_normalize, prefix, string_case, strip_prefix, "
    "url, value_map, wrap_array"
)


def rule(cc: str = "name", crm: str | None = "id", **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"cc_field": cc, **extra}
    if crm is not None:
        data["crm_field"] = crm
    return data


def write(tmp_path: Path, doc: Any, name: str = "contacts.yaml") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def contact(*rules: dict[str, Any], lookup: str = "name", entity: str = "contact") -> dict[str, Any]:
    return {"entity": entity, "lookup_field": lookup, "mappings": list(rules) or [rule()]}


def load_error(tmp_path: Path, doc: Any, registry: TransformerRegistry | None = None) -> ConfigError:
    path = write(tmp_path, doc)
    with pytest.raises(ConfigError) as info:
        load_mapping(path, registry)
    assert info.value.file == str(path)
    assert str(info.value).startswith(f"{path}: ")
    return info.value


def test_full_schema_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_HOST", "crm.example.com")
    doc = contact(
        rule("name", "id", transformers=[{"name": "prefix", "params": {"value": "crm_"}}]),
        rule("title", "full_name", transformers=[{"name": "string_case", "params": {"case": "title"}}]),
        rule("customFields.tags", "tags", multi_value={"strategy": "split"}),
        rule("account", "account_id", relation={"entity": "account", "resolve_from": "id", "resolve_to": "name"}),
        rule("title", "last_name", append=True, multi_value={"strategy": "join", "separator": " "}),
        rule("database", None, value="default"),
        rule("description", None, value=None),
        rule(
            "customFields.web",
            "id",
            transformers=[{"name": "url", "params": {"template": "https://${CRM_HOST}/{value}"}}],
        ),
        rule("customFields.x", "x", transformers=[{"name": "wrap_array", "params": None}, {"name": "join"}]),
    )
    path = write(tmp_path, doc)
    mapping = load_mapping(path)
    assert isinstance(mapping, Mapping)
    assert (mapping.entity, mapping.lookup_field, len(mapping.mappings)) == ("contact", "name", 9)
    assert mapping.source_path == path.resolve()
    assert mapping.direction == "crm_to_cc"
    first = mapping.mappings[0]
    assert (first.cc_field, first.crm_field, first.transformers[0].name, first.transformers[0].params) == (
        "name", "id", "prefix", {"value": "crm_"},
    )  # fmt: skip
    assert (first.multi_value, first.relation, first.append, first.has_value) == (None, None, False, False)
    split = mapping.mappings[2].multi_value
    assert split is not None
    assert (split.strategy, split.separator) == ("split", ",")
    relation = mapping.mappings[3].relation
    assert relation is not None
    assert (relation.entity, relation.resolve_from, relation.resolve_to) == ("account", "id", "name")
    assert (mapping.mappings[5].value, mapping.mappings[5].has_value) == ("default", True)
    assert (mapping.mappings[6].value, mapping.mappings[6].has_value) == (None, True)
    assert mapping.mappings[7].transformers[0].params["template"] == "https://crm.example.com/{value}"
    assert mapping.mappings[8].transformers[0].params == {}
    assert mapping.target_fields("crm_to_cc") == [
        "name", "title", "customFields.tags", "account", "database", "description",
        "customFields.web", "customFields.x",
    ]  # fmt: skip
    assert mapping.target_fields("cc_to_crm") == ["id", "full_name", "tags", "account_id", "last_name", "x"]
    assert mapping.rule_for_target("title", "crm_to_cc") is mapping.mappings[4]
    assert mapping.rule_for_target("nope", "crm_to_cc") is None
    assert mapping.relations() == [mapping.mappings[3]]


@pytest.mark.parametrize(
    ("entity", "direction"), [("account", "crm_to_cc"), ("contact", "crm_to_cc"), ("activity", "cc_to_crm")]
)
def test_direction_for_entity(entity: str, direction: str) -> None:
    assert direction_for_entity(entity) == direction


def test_direction_for_unknown_entity() -> None:
    with pytest.raises(ValueError, match="unknown entity 'ticket'; allowed: account, contact, activity"):
        direction_for_entity("ticket")


def test_activity_mapping_lookup_is_crm_side(tmp_path: Path) -> None:
    doc = {"entity": "activity", "lookup_field": "external_id", "mappings": [rule("name", "external_id")]}
    mapping = load_mapping(write(tmp_path, doc))
    assert mapping.direction == "cc_to_crm"
    assert mapping.target_fields("cc_to_crm") == ["external_id"]


def test_custom_registry_is_used_for_validation(tmp_path: Path) -> None:
    doc = contact(rule("name", "id", transformers=[{"name": "uppercase"}]))
    registry = TransformerRegistry.with_defaults()
    registry.register("uppercase", lambda value, params: value.upper())
    assert load_mapping(write(tmp_path, doc), registry).mappings[0].transformers[0].name == "uppercase"
    error = load_error(tmp_path, doc)
    assert error.path == "mappings[0].transformers[0].name"


def test_callback_names_are_checked_against_the_registry(tmp_path: Path) -> None:
    doc = contact(rule("name", "id", transformers=[{"name": "callback", "params": {"name": "slug"}}]))
    error = load_error(tmp_path, doc)
    assert (error.path, error.reason) == (
        "mappings[0].transformers[0].params.name",
        "callback: unknown callback 'slug' (registered: strval)",
    )
    registry = TransformerRegistry.with_defaults()
    registry.register_callback("slug", lambda value, params: str(value).lower())
    assert load_mapping(write(tmp_path, doc), registry).entity == "contact"


ACT = "activity"


@pytest.mark.parametrize(
    ("doc", "path", "message"),
    [
        (
            contact(rule(), rule("a", "b"), rule("c", "d"), rule("title", "x", transformers=[{"name": "uppercase"}])),
            "mappings[3].transformers[0].name",
            f"unknown transformer 'uppercase' (known: {KNOWN})",
        ),
        (
            contact(rule(transformers=[{"name": "string_case", "params": {"case": "camel"}}])),
            "mappings[0].transformers[0].params.case",
            "string_case: invalid case 'camel'; allowed: lower, upper, title",
        ),
        (
            contact(rule(transformers=[{"name": "string_case", "params": {"cse": "title"}}])),
            "mappings[0].transformers[0].params.cse",
            "string_case: unknown param 'cse'; allowed: case",
        ),
        (
            contact(rule(transformers=[{"name": "prefix", "params": {"value": 5}}])),
            "mappings[0].transformers[0].params.value",
            "prefix: param 'value' must be a string, got int",
        ),
        (
            contact(rule(transformers=[{"name": "strip_prefix", "params": {"value": ""}}])),
            "mappings[0].transformers[0].params.value",
            "strip_prefix: param 'value' must not be empty",
        ),
        (
            contact(rule(transformers=[{"name": "strip_prefix", "params": {"value": "a", "strict": "maybe"}}])),
            "mappings[0].transformers[0].params.strict",
            "strip_prefix: param 'strict' must be a boolean, got 'maybe'",
        ),
        (
            contact(rule(transformers=[{"name": "value_map", "params": {"default": 1}}])),
            "mappings[0].transformers[0].params.map",
            "value_map: param 'map' must be a mapping of value -> replacement",
        ),
        (
            contact(rule(transformers=[{"name": "url", "params": {"template": "https://x/"}}])),
            "mappings[0].transformers[0].params.template",
            "url: param 'template' must contain {value}",
        ),
        (
            contact(rule(transformers=[{"name": "phone_normalize", "params": {"default_region": "XX"}}])),
            "mappings[0].transformers[0].params.default_region",
            "phone_normalize: unknown region 'XX' (use an ISO 3166 code like CZ)",
        ),
        (
            contact(rule(transformers=[{"name": "phone_normalize", "params": {"format": "rfc3966"}}])),
            "mappings[0].transformers[0].params.format",
            "phone_normalize: invalid format 'rfc3966'; allowed: e164, international, national",
        ),
        (
            contact(rule(transformers=[{"name": "date_format", "params": {"from_tz": "Mars/Base"}}])),
            "mappings[0].transformers[0].params.from_tz",
            "date_format: unknown time zone 'Mars/Base' (use an IANA name like Europe/Prague, or 'instance' for the "
            "Daktela instance's zone)",
        ),
        (
            contact(rule(transformers=[{"name": "phone_normalize", "params": {"regions": ["SK", "XX"]}}])),
            "mappings[0].transformers[0].params.regions",
            "phone_normalize: unknown region 'XX' (use an ISO 3166 code like CZ)",
        ),
        (
            contact(rule(transformers=[{"name": "phone_normalize", "params": {"regions": {"SK": 1}}}])),
            "mappings[0].transformers[0].params.regions",
            "phone_normalize: param 'regions' must be a list of region codes like [SK]",
        ),
        (
            contact(rule(transformers=[{"name": "phone_normalize", "params": {"extension": "keep"}}])),
            "mappings[0].transformers[0].params.extension",
            "phone_normalize: extension: keep needs format international or national (E.164 has no extension)",
        ),
        (
            contact(rule(transformers=[{"name": "phone_normalize", "params": {"on_invalid": "clean"}}])),
            "mappings[0].transformers[0].params.on_invalid",
            "phone_normalize: invalid on_invalid 'clean'; allowed: fail, keep, drop",
        ),
        (
            contact(rule(transformers=[{"name": "phone_normalize", "params": {"multiple": "first"}}])),
            "mappings[0].transformers[0].params.multiple",
            "phone_normalize: invalid multiple 'first'; allowed: list, fail",
        ),
        (
            contact(rule(transformers=[{"name": "date_format", "params": {"on_invalid": "now"}}])),
            "mappings[0].transformers[0].params.on_invalid",
            "date_format: invalid on_invalid 'now'; allowed: fail, keep, drop",
        ),
        (
            contact(rule(transformers=[{"name": "date_format", "params": {"from": "z Y"}}])),
            "mappings[0].transformers[0].params.from",
            "date_format: format letter 'z' must follow a year (Y or y) in 'z Y', as in PHP",
        ),
        (
            contact(rule(), rule(cc="customFields.address.city", crm="city")),
            "mappings[1].cc_field",
            "cc_field 'customFields.address.city' writes inside a custom field, but a Daktela custom field holds "
            "a list of values (write customFields.address instead)",
        ),
        (
            contact(rule(transformers=[{"name": "date_format", "params": {"to": "Y-m-d B"}}])),
            "mappings[0].transformers[0].params.to",
            "date_format: unsupported format letter 'B' in 'Y-m-d B'",
        ),
        (
            contact(rule(transformers=[{"name": "date_format", "params": {"from": "W/Y"}}])),
            "mappings[0].transformers[0].params.from",
            "date_format: format letter 'W' cannot be used to parse dates (in 'W/Y')",
        ),
        (
            contact(rule(transformers=[{"name": "callback"}])),
            "mappings[0].transformers[0].params.name",
            "callback: param 'name' is required",
        ),
        (
            contact(rule(transformers=[{"params": {"case": "upper"}}])),
            "mappings[0].transformers[0].name",
            "required key is missing",
        ),
        (
            contact(rule(transformers=[{"name": "prefix", "params": ["crm_"]}])),
            "mappings[0].transformers[0].params",
            "expected a mapping, got list",
        ),
        (
            contact(rule(transformers="prefix")),
            "mappings[0].transformers",
            "expected a list, got str",
        ),
        (
            contact(rule(multi_value={"strategy": "explode"})),
            "mappings[0].multi_value.strategy",
            "invalid value 'explode'; allowed: as_array, join, split, first, last",
        ),
        (
            contact(rule(relation={"entity": "ticket", "resolve_from": "id", "resolve_to": "name"})),
            "mappings[0].relation.entity",
            "relation to unknown entity 'ticket' (known: account, contact)",
        ),
        (
            contact(rule(relation={"entity": "account", "resolve_from": "id"})),
            "mappings[0].relation.resolve_to",
            "required key is missing",
        ),
        (
            contact(rule(relation={"entity": "account", "resolve_from": "", "resolve_to": "name"})),
            "mappings[0].relation.resolve_from",
            "String should have at least 1 character (got '')",
        ),
        (
            {"entity": "contact", "mappings": [rule()]},
            "lookup_field",
            "required key is missing",
        ),
        (
            contact(rule("title", "name"), lookup="email"),
            "lookup_field",
            "lookup_field 'email' is not written by any rule; a contact mapping is used crm_to_cc, so the lookup "
            "field must be the cc_field of a rule (written: title)",
        ),
        (
            # W22: the PHP SDK's example used the Daktela-side name as an activity lookup.
            contact(rule("name", "external_id"), lookup="name", entity=ACT),
            "lookup_field",
            "lookup_field 'name' is not written by any rule; a activity mapping is used cc_to_crm, so the lookup "
            "field must be the crm_field of a rule (written: external_id)",
        ),
        (
            contact(
                rule("name", "external_id"), rule("category", None, value="CALL"), lookup="external_id", entity=ACT
            ),
            "mappings[1]",
            "crm_field is required: it is the field this rule writes in cc_to_crm",
        ),
        (
            contact({"crm_field": "id"}),
            "mappings[0].cc_field",
            "required key is missing",
        ),
        (
            contact(rule("", "id")),
            "mappings[0].cc_field",
            "String should have at least 1 character (got '')",
        ),
        (
            contact(rule("name", None)),
            "mappings[0]",
            "crm_field is required unless the rule has a static 'value'",
        ),
        (
            contact(rule(transformer=[{"name": "prefix"}])),
            "mappings[0].transformer",
            "unknown key; allowed: cc_field, crm_field, transformers, multi_value, relation, append, value",
        ),
        (
            contact(rule(append="sometimes")),
            "mappings[0].append",
            "invalid boolean 'sometimes'; allowed: true/false, yes/no, on/off, 1/0",
        ),
        (contact(entity="ticket"), "entity", "unknown entity 'ticket'; allowed: account, contact, activity"),
        (
            {"entity": "contact", "lookup_field": "name", "mappings": []},
            "mappings",
            "a mapping needs at least one rule",
        ),
        ({"entity": "contact", "lookup_field": "name", "mappings": {"a": 1}}, "mappings", "expected a list, got dict"),
        ({"entity": "contact", "lookup_field": "name"}, "mappings", "required key is missing"),
        (
            {**contact(), "extra": 1},
            "extra",
            "unknown key; allowed: entity, lookup_field, mappings",
        ),
    ],
)
def test_load_time_errors(tmp_path: Path, doc: dict[str, Any], path: str, message: str) -> None:
    error = load_error(tmp_path, doc)
    assert (error.path, error.reason.split("\n")[0]) == (path, message)


def test_unset_variable_in_mapping(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOPE_PREFIX", raising=False)
    error = load_error(
        tmp_path, contact(rule(transformers=[{"name": "prefix", "params": {"value": "${NOPE_PREFIX}"}}]))
    )
    assert error.path == "mappings[0].transformers[0].params.value"
    assert "environment variable NOPE_PREFIX is not set" in error.reason


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "mapping file is empty; expected a YAML mapping"),
        ("[1, 2]\n", "mapping file must be a YAML mapping at the top level, not a list"),
        (
            "entity: contact\n  lookup_field: x\n",
            "invalid YAML at line 2, column 15: mapping values are not allowed here",
        ),
    ],
)
def test_unreadable_mapping_files(tmp_path: Path, text: str, message: str) -> None:
    error = load_error(tmp_path, text)
    assert error.reason == message


def test_missing_mapping_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_mapping(tmp_path / "nope.yaml")
    assert str(info.value) == f"{tmp_path / 'nope.yaml'}: mapping file not found"


def test_unknown_rule_key_lists_only_the_keys_mappings_md_documents(tmp_path: Path) -> None:
    """``has_value`` is set by the loader, not written by users: the error must not offer it."""
    from crmsync_pipelines.mapping.loader import load_mapping

    path = tmp_path / "m.yaml"
    path.write_text("entity: account\nlookup_field: name\nmappings:\n  - {cc_field: name, crm_field: id, valu: 3}\n",
                    encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_mapping(path)
    message = str(error.value)
    assert "mappings[0].valu: unknown key; allowed: " in message
    allowed = message.split("allowed: ", 1)[1].split(";")[0].strip().split(", ")
    assert allowed == ["cc_field", "crm_field", "transformers", "multi_value", "relation", "append", "value"]
    docs = (Path(__file__).resolve().parents[1] / "docs" / "mappings.md").read_text(encoding="utf-8")
    assert all(f"{key}:" in docs for key in allowed)
    assert "has_value" not in docs


@pytest.mark.parametrize(
    ("key", "field"),
    [("crm_field", "address..city"), ("crm_field", ".email"), ("crm_field", "email."), ("cc_field", "customFields..x")],
)
def test_a_stray_dot_in_a_field_path_is_a_load_time_error(key: str, field: str) -> None:
    # 'address..city' read null for every record, so the rule silently cleared its target everywhere
    rule = {"cc_field": "title", "crm_field": "name", key: field}
    doc = {"entity": "contact", "lookup_field": "title", "mappings": [rule]}
    with pytest.raises(ConfigError) as caught:
        mapping_from_dict(doc, file="contacts.yaml")
    assert str(caught.value) == (
        f"contacts.yaml: mappings[0].{key}: {field!r} has an empty segment in its dotted path (a stray '.')"
    )
