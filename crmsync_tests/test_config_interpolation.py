"""``${VAR}`` interpolation: forms, defaults, empty values, errors, keys untouched."""

from __future__ import annotations

import pytest

from crmsync_pipelines.config import interpolate, interpolate_string
from crmsync_pipelines.errors import ConfigError

ENV = {"HOST": "example.com", "PORT": "8443", "EMPTY": "", "ZERO": "0", "TOKEN": "s3cr3t-t0k3n-value"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${HOST}", "example.com"),
        ("https://${HOST}:${PORT}/api", "https://example.com:8443/api"),
        ("a${HOST}b${PORT}c", "aexample.comb8443c"),
        ("${MISSING:-fallback}", "fallback"),
        ("${MISSING:-}", ""),
        ("${MISSING:-a b/c:d}", "a b/c:d"),
        ("${HOST:-unused}", "example.com"),
        ("${EMPTY}", ""),  # set to "" is set (the PHP SDK kept the literal)
        ("${EMPTY:-default}", ""),
        ("${ZERO}", "0"),  # "0" is a value, not "unset"
        ("no placeholders", "no placeholders"),
        ("$HOST and {HOST}", "$HOST and {HOST}"),
        ("žluťoučký ${HOST}", "žluťoučký example.com"),
    ],
)
def test_interpolate_string_forms(text: str, expected: str) -> None:
    assert interpolate_string(text, file="sync.yaml", env=ENV) == expected


def test_unset_variable_without_default_names_variable_and_file() -> None:
    with pytest.raises(ConfigError) as info:
        interpolate({"daktela": {"access_token": "${DAKTELA_TOKEN_X}"}}, file="conf/sync.yaml", env=ENV)
    message = str(info.value)
    assert message.startswith("conf/sync.yaml: daktela.access_token: environment variable DAKTELA_TOKEN_X is not set")
    assert info.value.file == "conf/sync.yaml"
    assert info.value.path == "daktela.access_token"


def test_error_path_includes_list_indices() -> None:
    with pytest.raises(ConfigError) as info:
        interpolate({"mappings": [{"cc_field": "x"}, {"value": "${NOPE}"}]}, file="m.yaml", env=ENV)
    assert info.value.path == "mappings[1].value"


def test_error_never_contains_other_values() -> None:
    with pytest.raises(ConfigError) as info:
        interpolate_string("${TOKEN}${NOPE}", file="sync.yaml", env=ENV)
    assert "s3cr3t" not in str(info.value)


def test_only_strings_are_interpolated_and_keys_untouched() -> None:
    data = {"${HOST}": "${HOST}", "n": 5, "b": True, "none": None, "list": ["${PORT}", 1.5, {"k": "${HOST}"}]}
    assert interpolate(data, file="f.yaml", env=ENV) == {
        "${HOST}": "example.com",
        "n": 5,
        "b": True,
        "none": None,
        "list": ["8443", 1.5, {"k": "example.com"}],
    }


def test_reads_process_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRMSYNC_TEST_VALUE", "from-env")
    monkeypatch.delenv("CRMSYNC_TEST_UNSET", raising=False)
    assert interpolate_string("${CRMSYNC_TEST_VALUE}", file="f") == "from-env"
    with pytest.raises(ConfigError, match="CRMSYNC_TEST_UNSET"):
        interpolate_string("${CRMSYNC_TEST_UNSET}", file="f")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("${VAR", "unclosed placeholder '${VAR' at character 1 (no closing '}')"),
        ("https://${HOST}/x${PORT", "unclosed placeholder '${PORT' at character 18 (no closing '}')"),
        ("${}", "invalid placeholder '${}' at character 1"),
        ("pre ${my-var} post", "invalid placeholder '${my-var}' at character 5"),
        ("${HOST }", "invalid placeholder '${HOST }' at character 1"),
        ("$${", "unclosed placeholder '${' at character 2 (no closing '}')"),
        ("${A:-x${B}", "placeholders cannot be nested (in the default of ${A:-...})"),
    ],
)
def test_malformed_placeholders_are_errors_not_literals(text: str, problem: str) -> None:
    """An unclosed ``${VAR`` used to be kept literally (and sent as the token): issue 10 §4."""
    with pytest.raises(ConfigError) as info:
        interpolate({"daktela": {"database": text}}, file="sync.yaml", env=ENV)
    assert str(info.value) == (
        f"sync.yaml: daktela.database: {problem}; write ${{NAME}} or ${{NAME:-default}}, "
        "NAME made of letters, digits and _"
    )
    assert info.value.path == "daktela.database"


@pytest.mark.parametrize("key", ["access_token", "secret", "password"])
def test_malformed_placeholder_under_a_secret_key_is_not_shown(key: str) -> None:
    with pytest.raises(ConfigError) as info:
        interpolate({"s": {key: "tok3n-${SECRETPART"}}, file="sync.yaml", env=ENV)
    message = str(info.value)
    assert message.startswith(f"sync.yaml: s.{key}: unclosed placeholder at character 7")
    assert "tok3n" not in message and "SECRETPART" not in message
