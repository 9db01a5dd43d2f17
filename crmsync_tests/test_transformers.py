"""Every built-in transformer (date_format and phone_normalize: their own files), with edge cases."""

from __future__ import annotations

from typing import Any

import pytest

from crmsync_pipelines.errors import MappingError
from crmsync_pipelines.mapping import TransformerParamError, TransformerRegistry, UnknownTransformerError

REGISTRY = TransformerRegistry.with_defaults()


def apply(name: str, value: Any, params: dict[str, Any]) -> Any:
    return REGISTRY.compile(name, params)(value)


CASES: list[tuple[str, dict[str, Any], Any, Any]] = [
    # boolean: true/false words (trimmed, any case), truthiness for the rest
    *[("boolean", {}, word, True) for word in ("1", "true", "TRUE", "yes", "on", " Yes ", "y", "t")],
    *[("boolean", {}, word, False) for word in ("0", "false", "False", "no", "off", "", "n", "f")],
    ("boolean", {}, None, False),
    ("boolean", {}, 0, False),
    ("boolean", {}, 2, True),
    ("boolean", {}, 0.0, False),
    ("boolean", {}, [], False),
    ("boolean", {}, [0], True),
    ("boolean", {}, True, True),
    ("boolean", {}, False, False),
    # string_case: unicode-aware; title lower-cases the rest of each word; non-strings pass
    ("string_case", {}, "ŽLUŤOUČKÝ Kůň", "žluťoučký kůň"),
    ("string_case", {"case": "upper"}, "žluťoučký kůň", "ŽLUŤOUČKÝ KŮŇ"),
    ("string_case", {"case": "title"}, "žluťoučký kůň", "Žluťoučký Kůň"),
    ("string_case", {"case": "title"}, "JIŘÍ DVOŘÁK-NOVÁKOVÁ", "Jiří Dvořák-Nováková"),
    ("string_case", {"case": "title"}, "o'neil  van  DER berg", "O'neil  Van  Der Berg"),
    ("string_case", {"case": "title"}, "3rd floor", "3rd Floor"),
    ("string_case", {"case": "upper"}, "straße", "STRASSE"),
    ("string_case", {"case": "title"}, "", ""),
    ("string_case", {"case": "upper"}, None, None),
    ("string_case", {"case": "upper"}, 42, 42),
    ("string_case", {"case": "upper"}, ["a"], ["a"]),
    # default_value: only null is replaced
    ("default_value", {"value": "n/a"}, None, "n/a"),
    ("default_value", {"value": "n/a"}, "", ""),
    ("default_value", {"value": "n/a"}, 0, 0),
    ("default_value", {"value": "n/a"}, [], []),
    ("default_value", {"value": ["x"]}, None, ["x"]),
    ("default_value", {}, None, None),
    # prefix
    ("prefix", {"value": "crm_"}, "42", "crm_42"),
    ("prefix", {"value": "crm_"}, 42, "crm_42"),
    ("prefix", {"value": "crm_"}, None, None),
    ("prefix", {"value": "crm_"}, "", ""),
    ("prefix", {"value": "crm_"}, ["1", "", 2], ["crm_1", "", "crm_2"]),
    ("prefix", {"value": "č_"}, "ř", "č_ř"),
    ("prefix", {}, "x", "x"),
    # strip_prefix
    ("strip_prefix", {"value": "crm_"}, "crm_42", "42"),
    ("strip_prefix", {"value": "crm_"}, "crm_crm_42", "crm_42"),
    ("strip_prefix", {"value": "crm_"}, "other_42", "other_42"),
    ("strip_prefix", {"value": "crm_", "strict": True}, "other_42", None),
    ("strip_prefix", {"value": "crm_", "strict": "true"}, "crm_7", "7"),
    ("strip_prefix", {"value": "crm_", "strict": True}, "crm_", ""),
    ("strip_prefix", {"value": "crm_", "strict": True}, None, None),
    ("strip_prefix", {"value": "crm_", "strict": True}, "", ""),
    ("strip_prefix", {"value": "crm_", "strict": True}, 42, 42),
    ("strip_prefix", {"value": "crm_"}, "CRM_42", "CRM_42"),
    # wrap_array
    ("wrap_array", {}, None, []),
    ("wrap_array", {}, "", []),
    ("wrap_array", {}, "a@b.cz", ["a@b.cz"]),
    ("wrap_array", {}, 0, [0]),
    ("wrap_array", {}, ["a", "b"], ["a", "b"]),
    ("wrap_array", {}, [], []),
    ("wrap_array", {}, ("a",), ["a"]),
    ("wrap_array", {}, {"k": 1}, [{"k": 1}]),
    # url
    ("url", {"template": "https://crm/x/{value}"}, "42", "https://crm/x/42"),
    ("url", {"template": "https://crm/{value}?again={value}"}, 7, "https://crm/7?again=7"),
    ("url", {"template": "https://crm/?q={value}", "encode": True}, "a b&č", "https://crm/?q=a%20b%26%C4%8D"),
    ("url", {"template": "https://crm/?q={value}"}, "a b", "https://crm/?q=a b"),
    ("url", {"template": "https://crm/{value}"}, None, None),
    ("url", {"template": "https://crm/{value}"}, "", ""),
    ("url", {}, "x", "x"),
    # join (the transformer): drop null and "", keep 0, trim
    ("join", {}, ["Jiří", None, "", "Dvořák"], "Jiří Dvořák"),
    ("join", {"separator": ", "}, ["a", 0, "0", "b"], "a, 0, 0, b"),
    ("join", {}, [" a", "b "], "a b"),
    ("join", {}, [], ""),
    ("join", {}, "already text", "already text"),
    ("join", {}, None, ""),
    ("join", {}, 5, "5"),
    ("join", {}, True, "true"),
    # value_map
    ("value_map", {"map": {"A": "active", "I": "inactive"}}, "A", "active"),
    ("value_map", {"map": {"A": "active"}}, "X", "X"),
    ("value_map", {"map": {"A": "active"}, "default": "unknown"}, "X", "unknown"),
    ("value_map", {"map": {"A": "active"}, "default": None}, "X", None),
    ("value_map", {"map": {"null": "none", "true": "yes", "false": "no"}}, None, "none"),
    ("value_map", {"map": {"true": "yes", "false": "no"}}, True, "yes"),
    ("value_map", {"map": {True: "yes", False: "no"}}, False, "no"),
    ("value_map", {"map": {1: "one", "2": "two"}}, "1", "one"),
    ("value_map", {"map": {1: "one", "2": "two"}}, 2, "two"),
    ("value_map", {"map": {"in": "příchozí"}}, "in", "příchozí"),
    ("value_map", {"map": {}}, "x", "x"),
    ("value_map", {"map": {}, "default": "d"}, "x", "d"),
    ("value_map", {"map": {"a": 1}}, ["a"], ["a"]),
    ("value_map", {"map": {"a": 1}, "default": 0}, {"a": 1}, 0),
    # callback: the built-in strval
    ("callback", {"name": "strval"}, 42, "42"),
    ("callback", {"name": "strval"}, None, ""),
    ("callback", {"name": "strval"}, "x", "x"),
    ("callback", {"name": "strval"}, 1.5, "1.5"),
    ("callback", {"name": "strval"}, False, "false"),
    # phone_normalize and date_format: test_transformers_phone.py, test_transformers_date.py
]


@pytest.mark.parametrize(("name", "params", "value", "expected"), CASES)
def test_builtin(name: str, params: dict[str, Any], value: Any, expected: Any) -> None:
    assert apply(name, value, params) == expected


@pytest.mark.parametrize(("name", "params", "value", "expected"), CASES[:10])
def test_get_returns_a_value_params_function(name: str, params: dict[str, Any], value: Any, expected: Any) -> None:
    assert REGISTRY.get(name)(value, params) == expected


@pytest.mark.parametrize(
    ("name", "params", "value", "message"),
    [
        ("boolean", {}, "maybe", "not a boolean word: 'maybe'"),
        ("prefix", {"value": "x"}, {"a": 1}, "cannot prefix a mapping"),
    ],
)
def test_bad_values_raise(name: str, params: dict[str, Any], value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        apply(name, value, params)


def test_registry_names_and_unknown() -> None:
    assert REGISTRY.names() == [
        "boolean", "callback", "date_format", "default_value", "join", "phone_normalize", "prefix",
        "string_case", "strip_prefix", "url", "value_map", "wrap_array",
    ]  # fmt: skip
    assert "prefix" in REGISTRY
    with pytest.raises(UnknownTransformerError, match="unknown transformer 'nope'") as info:
        REGISTRY.get("nope")
    assert isinstance(info.value, MappingError)


def test_register_replaces_a_builtin_and_bumps_version() -> None:
    registry = TransformerRegistry.with_defaults()
    version = registry.version
    seen: list[tuple[Any, dict[str, Any]]] = []

    def shout(value: Any, params: dict[str, Any]) -> Any:
        seen.append((value, params))
        return f"{params.get('value', '')}{value}!".upper()

    registry.register("prefix", shout)
    assert registry.version > version
    assert registry.compile("prefix", {"value": "a_"})("x") == "A_X!"
    assert seen == [("x", {"value": "a_"})]
    # the default registry is untouched
    assert REGISTRY.compile("prefix", {"value": "a_"})("x") == "a_x"


def test_register_callback_receives_extra_params() -> None:
    registry = TransformerRegistry.with_defaults()
    registry.register_callback("repeat", lambda value, params: value * params["times"])
    assert registry.callback_names() == ["repeat", "strval"]
    assert registry.compile("callback", {"name": "repeat", "times": 3})("ab") == "ababab"


def test_custom_factory_validates_params() -> None:
    registry = TransformerRegistry()

    def truncate(params: dict[str, Any], registry: TransformerRegistry) -> Any:
        size = params.get("size")
        if not isinstance(size, int):
            raise TransformerParamError("param 'size' must be an integer", "size")
        return lambda value: value[:size] if isinstance(value, str) else value

    registry.register_factory("truncate", truncate)
    assert registry.compile("truncate", {"size": 3})("abcdef") == "abc"
    with pytest.raises(TransformerParamError) as info:
        registry.compile("truncate", {})
    assert info.value.param == "size"


@pytest.mark.parametrize("name", ["", None])
def test_registering_without_a_name_fails(name: Any) -> None:
    registry = TransformerRegistry()
    with pytest.raises(ValueError, match="needs a name"):
        registry.register(name, lambda value, params: value)
    with pytest.raises(ValueError, match="needs a name"):
        registry.register_callback(name, lambda value, params: value)
