"""Hostile and wrong configuration: bounded YAML (issue 11) and every numeric knob (issue 10 §4).

Every case is a ``ConfigError`` with the file, the key path (or line and column) and what is
allowed, from ``load_config`` and from the real CLI, which never prints a traceback.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from crmsync_pipelines.cli.main import cli
from crmsync_pipelines.config import load_config, load_raw_config
from crmsync_pipelines.config.yaml_file import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES, load_yaml_text
from crmsync_pipelines.errors import ConfigError
from crmsync_pipelines.mapping import load_mapping
from crmsync_tests.fixtures.pipeline import demo_config_files

TOKEN = "abcd1234efgh5678-token"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    demo_config_files(tmp_path, monkeypatch, instance_url="http://127.0.0.1:9", token=TOKEN,
                      webhook_secret="whsec-0123456789abcdef")
    monkeypatch.chdir(tmp_path)
    return Path("sync.yaml")  # relative, so messages name it as a user would see it


def _with(config_file: Path, section: str, lines: str) -> Path:
    """The demo config with ``lines`` (already indented) added at the top of ``section:``."""
    text = config_file.read_text(encoding="utf-8")
    assert f"\n{section}:\n" in text
    config_file.write_text(text.replace(f"\n{section}:\n", f"\n{section}:\n{lines}", 1), encoding="utf-8")
    return config_file


def _set(config_file: Path, path: str, value: str) -> Path:
    """The demo config with the key at dotted ``path`` set to the YAML scalar ``value`` (added or replaced)."""
    document = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    *parents, key = path.split(".")
    node = document
    for part in parents:
        node = node.setdefault(part, {})
    node[key] = yaml.safe_load(f"v: {value}")["v"]
    config_file.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return config_file


def _error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value


def _bomb(indent: str, levels: int = 9, fan_out: int = 10) -> str:
    lines = [f'{indent}l0: &l0 ["lol ${{DAKTELA_ACCESS_TOKEN}}"]']
    for level in range(1, levels + 1):
        refs = ", ".join([f"*l{level - 1}"] * fan_out)
        lines.append(f"{indent}l{level}: &l{level} [{refs}]")
    return "\n".join(lines) + "\n"


# -- YAML bounds -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "indent"),
    [("crm", "  "), ("daktela", "  "), ("webhook", "  "), ("raynet", "  ")],
)
def test_alias_bomb_is_refused_before_interpolation(config_file: Path, section: str, indent: str) -> None:
    if section == "raynet":
        config_file.write_text(config_file.read_text(encoding="utf-8") + "raynet:\n" + _bomb(indent), "utf-8")
    else:
        _with(config_file, section, _bomb(indent))
    error = _error(config_file)
    assert error.file == "sync.yaml"
    assert error.reason.startswith("invalid YAML at line ")
    assert error.reason.endswith(f"more than {MAX_NODES:,} values once aliases are expanded (an alias bomb?)")
    with pytest.raises(ConfigError, match="alias bomb"):
        load_raw_config(config_file)  # the adapter-section reader is bounded too


def test_alias_bomb_in_a_mapping_file(config_file: Path, tmp_path: Path) -> None:
    mapping = tmp_path / "bomb-mapping.yaml"
    mapping.write_text("entity: contact\nlookup_field: name\nx:\n" + _bomb("  ") + "mappings: []\n", "utf-8")
    with pytest.raises(ConfigError) as info:
        load_mapping(mapping)
    assert "alias bomb" in str(info.value)
    assert str(mapping.name) in str(info.value)


def test_ordinary_aliases_and_merge_keys_still_work() -> None:
    text = "base: &b {a: 1, b: [x, y]}\none: *b\ntwo:\n  <<: *b\n  c: 2\nlist: [*b, *b]\n"
    assert load_yaml_text(text) == {
        "base": {"a": 1, "b": ["x", "y"]},
        "one": {"a": 1, "b": ["x", "y"]},
        "two": {"a": 1, "b": ["x", "y"], "c": 2},
        "list": [{"a": 1, "b": ["x", "y"]}, {"a": 1, "b": ["x", "y"]}],
    }


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a: " + "[" * 2000 + "]" * 2000 + "\n", f"nested deeper than {MAX_DEPTH} levels"),
        ("a: " + "{b: " * 2000 + "1" + "}" * 2000 + "\n", f"nested deeper than {MAX_DEPTH} levels"),
        ("".join("  " * i + f"k{i}:\n" for i in range(100)) + "  " * 100 + "v: 1\n",
         f"nested deeper than {MAX_DEPTH} levels"),
        ("l0: &l0 " + "[" * 40 + "1" + "]" * 40 + "\nl1: " + "[" * 40 + "*l0" + "]" * 40 + "\n",
         f"nested deeper than {MAX_DEPTH} levels once aliases are expanded"),
        ("a: &a [*a]\n", "an alias refers to a node that contains it (recursive alias)"),
        ("a: &a {b: {c: *a}}\n", "an alias refers to a node that contains it (recursive alias)"),
        ("a: " + "1" * 5000 + "\n", "integer longer than 100 characters"),
        ("a: 2026-13-45\n", "invalid timestamp value: month must be in 1..12"),
        ("a: !!python/object:os.system {}\n", "could not determine a constructor for the tag"),
    ],
)
def test_hostile_yaml_is_a_config_error_not_a_traceback(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "sync.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.reason.startswith("invalid YAML at line ")
    assert problem in info.value.reason


def test_files_over_one_mib_are_refused(config_file: Path, tmp_path: Path) -> None:
    padding = "# " + "x" * 1000 + "\n"
    text = config_file.read_text(encoding="utf-8")
    config_file.write_text(text + padding * 1100, encoding="utf-8")
    size = config_file.stat().st_size
    assert size > MAX_FILE_BYTES
    assert str(_error(config_file)) == (
        f"sync.yaml: configuration file is {size:,} bytes; the limit is 1,048,576 bytes (1 MiB)"
    )
    mapping = tmp_path / "big-mapping.yaml"
    mapping.write_text((REPO / "mappings/contacts.yaml").read_text(encoding="utf-8") + padding * 1100, "utf-8")
    with pytest.raises(ConfigError, match=r"mapping file is [\d,]+ bytes; the limit is 1,048,576 bytes"):
        load_mapping(mapping)


def test_a_file_just_under_the_limit_loads(config_file: Path) -> None:
    text = config_file.read_text(encoding="utf-8")
    config_file.write_text(text + "#" * (MAX_FILE_BYTES - len(text.encode()) - 1) + "\n", encoding="utf-8")
    assert config_file.stat().st_size == MAX_FILE_BYTES
    assert load_config(config_file).daktela.access_token == TOKEN


# -- numeric knobs ---------------------------------------------------------------------------------

#: (dotted key path, allowed range, a valid value at an edge of the range)
KNOBS = [
    ("daktela.timeout_s", "more than 0, at most 3600", "0.5"),
    ("daktela.rate_limit_per_s", "0..10000", "0"),
    ("daktela.write_concurrency", "1..64", "64"),
    ("daktela.max_write_concurrency", "1..256", "256"),
    ("daktela.max_retries", "0..50", "0"),
    ("daktela.page_size", "1..1000", "1000"),
    ("daktela.lookup_chunk_size", "1..1000", "1"),
    ("sync.batch_size", "1..1000", "1"),
    ("sync.entities.activity.settle_minutes", "0..10080", "0"),
    ("sync.entities.activity.rescan_partitions", "0..1000", "0"),
    ("staging.lock_timeout_s", "0..86400", "0"),
    ("staging.keep_batches", "1..1000", "1"),
    ("webhook.max_body_bytes", "1..16777216", "16777216"),
    ("webhook.max_depth", "1..64", "64"),
    ("webhook.max_keys", "1..100000", "1"),
    ("webhook.max_string_length", "1..16777216", "1"),
]
FLOATS = {"daktela.timeout_s", "daktela.rate_limit_per_s", "staging.lock_timeout_s"}


def _bad_values(path: str) -> list[tuple[str, str]]:
    """(YAML value, expected message start) for the kinds of wrong value every knob must refuse."""
    number = "a number" if path in FLOATS else "an integer"
    values = [
        ("-3", "-3 is out of range"),
        ("-0.5" if path in FLOATS else "-1", "-0.5 is out of range" if path in FLOATS else "-1 is out of range"),
        ("1000000000000", "1000000000000 is out of range"),
        ('"abc"', f"expected {number}, got 'abc'"),
        ("true", "expected a number, got True"),
        ("no", "expected a number, got False"),
        (".inf", "inf is out of range"),
        (".nan", "nan is out of range"),
        ("[1]", f"expected {number}, got [1]"),
        ("null", f"expected {number}, got None"),
    ]
    if path not in FLOATS:
        values.append(("2.5", "expected an integer, got 2.5"))
    return values


CASES = [
    pytest.param(path, allowed, value, message, id=f"{path}={value}")
    for path, allowed, _ in KNOBS
    for value, message in _bad_values(path)
]


@pytest.mark.parametrize(("path", "allowed", "value", "message"), CASES)
def test_every_numeric_knob_refuses_wrong_values(
    config_file: Path, path: str, allowed: str, value: str, message: str
) -> None:
    error = _error(_set(config_file, path, value))
    assert (error.file, error.path) == ("sync.yaml", path)
    assert error.reason == f"{message}; allowed: {allowed}"


@pytest.mark.parametrize(("path", "allowed", "valid"), KNOBS, ids=[k[0] for k in KNOBS])
def test_values_at_the_edges_of_each_range_load(config_file: Path, path: str, allowed: str, valid: str) -> None:
    config = load_config(_set(config_file, path, valid))
    value: object = config
    for part in path.split("."):
        value = value[part] if isinstance(value, dict) else getattr(value, part)
    assert value == float(valid)


def test_zero_is_refused_where_it_cannot_work(config_file: Path) -> None:
    for path, allowed in [
        ("daktela.timeout_s", "more than 0, at most 3600"),
        ("daktela.page_size", "1..1000"),
        ("daktela.write_concurrency", "1..64"),
        ("staging.keep_batches", "1..1000"),
        ("sync.batch_size", "1..1000"),
    ]:
        original = config_file.read_text(encoding="utf-8")
        error = _error(_set(config_file, path, "0"))
        assert str(error) == f"sync.yaml: {path}: 0 is out of range; allowed: {allowed}"
        config_file.write_text(original, encoding="utf-8")


def test_a_key_written_twice_is_refused(config_file: Path) -> None:
    """PyYAML keeps the last of two equal keys silently; tooling that appends a key must not win unnoticed."""
    error = _error(_with(config_file, "sync", "  batch_size: 7\n"))
    assert error.file == "sync.yaml"
    assert error.reason.startswith("invalid YAML at line ")
    assert error.reason.endswith("duplicate key 'batch_size' (YAML keys must be unique)")


def test_numbers_from_the_environment_are_checked_too(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAGE", "5000")
    error = _error(_set(config_file, "daktela.page_size", "${PAGE}"))
    assert str(error) == "sync.yaml: daktela.page_size: '5000' is out of range; allowed: 1..1000"
    monkeypatch.setenv("PAGE", "250")
    assert load_config(config_file).daktela.page_size == 250


# -- the real CLI: no traceback, file + key path + allowed range ----------------------------------

ISSUE_EXAMPLES = [
    ("daktela", "  write_concurrency: -3\n", "daktela.write_concurrency: -3 is out of range; allowed: 1..64"),
    ("daktela", "  page_size: 5000\n", "daktela.page_size: 5000 is out of range; allowed: 1..1000"),
    ("daktela", "  timeout_s: -5\n", "daktela.timeout_s: -5 is out of range; allowed: more than 0, at most 3600"),
    ("daktela", "  timeout_s: 0\n", "daktela.timeout_s: 0 is out of range; allowed: more than 0, at most 3600"),
    ("daktela", "  rate_limit_per_s: -1\n", "daktela.rate_limit_per_s: -1 is out of range; allowed: 0..10000"),
]


@pytest.mark.parametrize("command", ["validate", "sync", "plan", "retry-failed", "reset-state", "config-view"])
@pytest.mark.parametrize(("section", "lines", "message"), ISSUE_EXAMPLES)
def test_cli_commands_refuse_bad_knobs_without_traceback(
    config_file: Path, command: str, section: str, lines: str, message: str
) -> None:
    _with(config_file, section, lines)
    extra = ["--yes"] if command == "reset-state" else []
    result = CliRunner().invoke(cli, [command, "-c", str(config_file), *extra])
    assert result.exit_code == 1, result.output
    assert f"Error: Configuration error: sync.yaml: {message}" in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize(
    ("adapter", "message"),
    [
        ("sqll", "crm.adapter: unknown adapter 'sqll'; use one of "),
        ("nonexistent_mod:Foo", "crm.adapter: cannot import module 'nonexistent_mod' for adapter "
                                "'nonexistent_mod:Foo': No module named 'nonexistent_mod'"),
        ("crmsync_pipelines.crm.sql:NoSuchClass", "crm.adapter: module 'crmsync_pipelines.crm.sql' has no "
                                                  "attribute 'NoSuchClass'"),
        ("crmsync_pipelines.config:load_config", "crm.adapter: 'crmsync_pipelines.config:load_config' is not a "
                                                 "CrmAdapter subclass"),
        ("crmsync_pipelines.crm.base:CrmAdapter", "crm.adapter: 'crmsync_pipelines.crm.base:CrmAdapter' does not "
                                                  "implement: "),
        ("':Foo'", "crm.adapter: ':Foo' is not of the form 'package.module:ClassName'"),
    ],
)
def test_validate_refuses_an_adapter_that_does_not_resolve(config_file: Path, adapter: str, message: str) -> None:
    text = config_file.read_text(encoding="utf-8")
    config_file.write_text(text.replace("adapter: sql", f"adapter: {adapter}", 1), encoding="utf-8")
    result = CliRunner().invoke(cli, ["validate", "-c", str(config_file)])
    assert result.exit_code == 1
    assert f"Error: Configuration error: sync.yaml: {message}" in result.output
    assert "Traceback" not in result.output and "OK" not in result.output


def test_validate_names_the_resolved_adapter(config_file: Path) -> None:
    result = CliRunner().invoke(cli, ["validate", "-c", str(config_file)])
    assert result.exit_code == 0, result.output
    assert "  crm adapter: sql (built-in)" in result.output


def test_unclosed_placeholder_is_not_used_as_the_token(config_file: Path) -> None:
    text = config_file.read_text(encoding="utf-8")
    config_file.write_text(text.replace("${DAKTELA_ACCESS_TOKEN}", "${DAKTELA_ACCESS_TOKEN", 1), "utf-8")
    for command in ("validate", "sync"):
        result = CliRunner().invoke(cli, [command, "-c", str(config_file)])
        assert result.exit_code == 1
        assert (
            "Error: Configuration error: sync.yaml: daktela.access_token: unclosed placeholder at character 1 "
            "(no closing '}'); write ${NAME} or ${NAME:-default}, NAME made of letters, digits and _"
        ) in result.output
        assert "Traceback" not in result.output


@pytest.mark.parametrize("command", ["validate", "sync", "serve-webhooks"])
@pytest.mark.parametrize(
    ("kind", "problem"),
    [("bomb", "values once aliases are expanded (an alias bomb?)"), ("deep", "nested deeper than 64 levels")],
)
def test_real_process_refuses_hostile_yaml_quickly(config_file: Path, command: str, kind: str, problem: str) -> None:
    text = config_file.read_text(encoding="utf-8")
    hostile = "raynet:\n" + _bomb("  ") if kind == "bomb" else "raynet: " + "[" * 2000 + "]" * 2000 + "\n"
    config_file.write_text(text + hostile, encoding="utf-8")
    run = subprocess.run(
        [sys.executable, "-m", "crmsync_pipelines.cli.main", command, "-c", str(config_file)],
        capture_output=True,
        text=True,
        timeout=120,  # a safety net only: it ran for minutes and grew past 1.7 GB before
    )
    assert run.returncode == 1
    assert "Error: Configuration error: sync.yaml: invalid YAML at line " in run.stderr
    assert problem in run.stderr
    assert "Traceback" not in run.stdout + run.stderr


@pytest.mark.parametrize(
    ("kind", "shown"),
    [
        ("bomb", "values once aliases are expanded (an alias bomb?)"),
        ("deep", "nested deeper than 64 levels"),
    ],
)
def test_dagster_definitions_load_fast_and_show_the_config_error(config_file: Path, kind: str, shown: str) -> None:
    """`dagster definitions validate` took 65 s and 2.6 GB on the bomb, and died with a raw
    RecursionError on deep YAML; the code location must load and name the problem."""
    text = config_file.read_text(encoding="utf-8")
    hostile = "raynet:\n" + _bomb("  ") if kind == "bomb" else "raynet: " + "[" * 2000 + "]" * 2000 + "\n"
    config_file.write_text(text + hostile, encoding="utf-8")
    dagster = Path(sys.executable).parent / "dagster"
    run = subprocess.run(
        [str(dagster), "definitions", "validate", "-m", "crmsync_pipelines.definitions"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "CRMSYNC_CONFIG": str(config_file.resolve())},
        cwd=config_file.resolve().parent,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-3000:]
    assert "Traceback" not in output and "RecursionError" not in output
    assert "crmsync: sync.yaml: invalid YAML at line " in output
    assert shown in output


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://", "instance_url needs a host name, like https://acme.daktela.com"),
        ("http://exa mple.com", "instance_url contains a space or a control character"),
        ("https://acme\tx.daktela.com", "instance_url contains a space or a control character"),
        ("https://acme.daktela.com:99999", "instance_url is not a valid URL (Port out of range 0-65535)"),
        ("https://acme.daktela.com:0", "instance_url has port 0; allowed: 1..65535"),
        ("https://[::1", "instance_url is not a valid URL (Invalid IPv6 URL)"),
        ("https://admin:hunter2-pw@acme.daktela.com", "instance_url must not contain a user name or password; "
                                                      "the token belongs in daktela.access_token"),
        ("https://acme.daktela.com/?accessToken=x", "instance_url must not have a query string or fragment"),
        ("ftp://acme.daktela.com", "instance_url must start with https:// (or http:// for a local simulator)"),
        ("http://acme.daktela.com", "instance_url may use plain http:// only for a simulator on this machine"),
        ("http://10.0.0.5:8080", "instance_url may use plain http:// only for a simulator on this machine"),
        ("http://[fe80::1]", "instance_url may use plain http:// only for a simulator on this machine"),
    ],
)
def test_instance_urls_the_client_cannot_use_are_refused_at_validate(
    config_file: Path, monkeypatch: pytest.MonkeyPatch, url: str, message: str
) -> None:
    monkeypatch.setenv("DAKTELA_INSTANCE_URL", url)
    result = CliRunner().invoke(cli, ["validate", "-c", str(config_file)])
    assert result.exit_code == 1
    assert f"Error: Configuration error: sync.yaml: daktela.instance_url: {message}" in result.output
    assert "hunter2" not in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://acme.daktela.com/", "https://acme.daktela.com"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("https://[::1]:8443/daktela", "https://[::1]:8443/daktela"),
        ("https://čeština.example.cz", "https://čeština.example.cz"),
    ],
)
def test_usable_instance_urls_load(config_file: Path, monkeypatch: pytest.MonkeyPatch, url: str, shown: str) -> None:
    monkeypatch.setenv("DAKTELA_INSTANCE_URL", url)
    assert load_config(config_file).daktela.instance_url == shown


# -- second review: paths no file system call can take, files that are not files, encodings ------


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("sync.entities.contact.mapping_file", '"contacts\\0.yaml"', "a path cannot contain a NUL character"),
        (
            "sync.entities.contact.mapping_file",
            "~nosuchuser-crmsync/contacts.yaml",
            "cannot expand '~nosuchuser-crmsync': no such user's home directory on this machine",
        ),
        ("staging.path", '"data/staging\\0.duckdb"', "a path cannot contain a NUL character"),
        (
            "webhook.inbox_path",
            "~nosuchuser-crmsync/inbox.sqlite",
            "cannot expand '~nosuchuser-crmsync': no such user's home directory on this machine",
        ),
        (
            "sync.entities.account.auto_create_contact.mapping_file",
            '"a\\0.yaml"',
            "a path cannot contain a NUL character",
        ),
    ],
)
def test_unusable_paths_are_config_errors_naming_the_key(
    config_file: Path, path: str, value: str, message: str
) -> None:
    # were a raw ValueError ("embedded null byte") / RuntimeError ("Could not determine home directory.")
    _set(config_file, path, value)
    assert str(_error(config_file)) == f"sync.yaml: {path}: {message}"
    result = CliRunner().invoke(cli, ["validate", "-c", str(config_file)])
    assert result.exit_code == 1 and f"Error: Configuration error: sync.yaml: {path}: {message}" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("~nosuchuser-crmsync/crm.sqlite", "cannot expand '~nosuchuser-crmsync': no such user's home directory"),
        ('"crm\\0.sqlite"', "a path cannot contain a NUL character"),
    ],
)
def test_unusable_crm_path_is_an_error_not_a_traceback(config_file: Path, value: str, message: str) -> None:
    _set(config_file, "crm.path", value)
    for command in (["crm-inspect", "-c", str(config_file), "ping"], ["plan", "-c", str(config_file)]):
        result = CliRunner().invoke(cli, command)
        assert result.exit_code == 1, result.output
        assert message in result.output and "Traceback" not in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_mapping_file_that_is_a_directory_or_a_fifo_is_named_as_such(config_file: Path, tmp_path: Path) -> None:
    folder = tmp_path / "contacts-dir"
    folder.mkdir()
    _set(config_file, "sync.entities.contact.mapping_file", str(folder))
    assert str(_error(config_file)).endswith(
        f"sync.entities.contact.mapping_file: mapping file {folder} is a directory, not a file"
    )
    fifo = tmp_path / "contacts.fifo"
    os.mkfifo(fifo)  # reading it would block validate forever
    _set(config_file, "sync.entities.contact.mapping_file", str(fifo))
    assert str(_error(config_file)).endswith(
        f"mapping file {fifo} is not a regular file (a FIFO, socket or device)"
    )
    _set(config_file, "sync.entities.contact.mapping_file", "/dev/zero")
    assert str(_error(config_file)).endswith("mapping file /dev/zero is not a regular file (a FIFO, socket or device)")
    with pytest.raises(ConfigError, match=re.escape("mapping file is a directory, not a file")):
        load_mapping(folder)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("daktela:\n  database: Müller\n".encode("latin-1"), "is not UTF-8 text: byte 0xfc at line 2, column 14"),
        ("daktela:\n  database: Jiří\n".encode("cp1250"), "is not UTF-8 text: byte 0xf8 at line 2, column 15"),
        ("daktela:\n  database: x\n".encode("utf-16"), "is UTF-16 text; save it as UTF-8"),
    ],
)
def test_a_file_that_is_not_utf8_says_where(config_file: Path, data: bytes, message: str) -> None:
    config_file.write_bytes(data)
    error = _error(config_file)
    # was 'cannot read configuration file: UnicodeDecodeError', naming neither the byte nor the line
    assert str(error).startswith(f"sync.yaml: configuration file {message}")


def test_a_utf8_bom_is_ignored(config_file: Path) -> None:
    config_file.write_bytes(b"\xef\xbb\xbf" + config_file.read_bytes())
    assert load_config(config_file).sync.batch_size == 100


@pytest.mark.parametrize("start", ["0001-01-02", "0999-12-31", "1969-12-31", "2101-01-01", "9999-12-31"])
def test_partition_start_dates_dagster_cannot_hold_are_refused(config_file: Path, start: str) -> None:
    # 0001-01-02 passed validate, then the Dagster code location failed to load: strftime writes
    # year 1 as '1-01-02', which Dagster cannot parse back (DagsterInvalidDefinitionError)
    _set(config_file, "partitions.start_date", start)
    assert str(_error(config_file)) == (
        f"sync.yaml: partitions.start_date: start_date {start} is outside 1970-01-01..2100-12-31"
    )


@pytest.mark.parametrize("start", ["1970-01-01", "2100-12-31", "2024-02-29"])
def test_partition_start_dates_at_the_edges_load(config_file: Path, start: str) -> None:
    _set(config_file, "partitions.start_date", start)
    assert load_config(config_file).partitions.start_date.isoformat() == start


@pytest.mark.parametrize("name", ["localtime", "posixrules", "Factory"])
def test_zone_names_that_are_no_place_are_refused(config_file: Path, name: str) -> None:
    # 'localtime' is a link to the host's /etc/localtime: the config meant whatever zone the server ran in
    _set(config_file, "daktela.timezone", name)
    assert str(_error(config_file)) == (
        f"sync.yaml: daktela.timezone: unknown time zone {name!r} (use an IANA name like Europe/Prague)"
    )
    _set(config_file, "daktela.timezone", "Europe/Prague")
    _set(config_file, "crm.timezone", name)
    result = CliRunner().invoke(cli, ["crm-inspect", "-c", str(config_file), "ping"])
    assert result.exit_code == 1, result.output
    assert f"unknown IANA time zone {name!r}" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("token", [f"{TOKEN}\n", f"  {TOKEN}\t", f"{TOKEN}\r\n"])
def test_an_access_token_with_surrounding_whitespace_is_stripped(
    config_file: Path, monkeypatch: pytest.MonkeyPatch, token: str
) -> None:
    # a secret file's trailing newline reached the X-AUTH-TOKEN header: h11 refused every request
    # with "Illegal header value b'<the token>'", an error message that carries the secret
    monkeypatch.setenv("DAKTELA_ACCESS_TOKEN", token)
    assert load_config(config_file).daktela.access_token == TOKEN


@pytest.mark.parametrize("token", ["abcd 1234efgh5678", "tokén-1234efgh5678", "abcd\x011234efgh5678", "ab\ncd1234efgh"])
def test_an_access_token_no_header_can_carry_is_refused_without_showing_it(
    config_file: Path, monkeypatch: pytest.MonkeyPatch, token: str
) -> None:
    monkeypatch.setenv("DAKTELA_ACCESS_TOKEN", token)
    error = _error(config_file)
    assert str(error) == (
        "sync.yaml: daktela.access_token: access_token contains a space, a control character or a non-ASCII "
        "character, which the X-AUTH-TOKEN header cannot carry (the token is not shown)"
    )
    result = CliRunner().invoke(cli, ["validate", "-c", str(config_file)])
    assert result.exit_code == 1 and "access_token contains a space" in result.output
    assert token.strip() not in result.output and "1234efgh" not in result.output


def test_two_merge_keys_in_one_mapping_are_a_duplicate_key(config_file: Path) -> None:
    # PyYAML kept the first '<<' and silently dropped the second (tooling adding a second defaults block)
    text = config_file.read_text(encoding="utf-8")
    config_file.write_text(
        "x-a: &a {batch_size: 10}\nx-b: &b {batch_size: 20}\n"
        + text.replace("\nsync:\n", "\nsync:\n  <<: *a\n  <<: *b\n", 1).replace("  batch_size: 100\n", "", 1),
        encoding="utf-8",
    )
    error = _error(config_file)
    assert error.reason.startswith("invalid YAML at line ")
    assert error.reason.endswith("duplicate merge key '<<' (merge several mappings with <<: [*a, *b])")
    assert load_yaml_text("a: &a {k: 1}\nb: &b {k: 2, j: 2}\nc:\n  <<: [*a, *b]\n")["c"] == {"k": 1, "j": 2}
