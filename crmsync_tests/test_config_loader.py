"""``load_config``: the PHP SDK's files load unchanged; every mistake is a ConfigError naming file and path."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from crmsync_pipelines.config import (
    ActivityType,
    Direction,
    SyncConfig,
    load_config,
    load_raw_config,
    mask_secret,
)
from crmsync_pipelines.errors import ConfigError
from crmsync_pipelines.mapping import Mapping

DATA = Path(__file__).parent / "data" / "config"
PHP_SDK = DATA / "php_sdk" / "sync.yaml"
TOKEN = "dk-0123456789abcdef-secret"
PHP_ENV = {
    "DAKTELA_URL": "https://acme.daktela.com/",
    "DAKTELA_TOKEN": TOKEN,
    "DAKTELA_DB": "crm",
    "WEBHOOK_SECRET": "hook-secret-42",
    "RAYNET_INSTANCE": "acme",
    "RAYNET_API_KEY": "raynet-key",
}

CONTACT_MAPPING = """\
entity: contact
lookup_field: name
mappings:
  - {cc_field: name, crm_field: id, transformers: [{name: prefix, params: {value: crm_}}]}
  - {cc_field: lastname, crm_field: last_name}
"""
ACCOUNT_MAPPING = """\
entity: account
lookup_field: name
mappings:
  - {cc_field: name, crm_field: id}
  - {cc_field: title, crm_field: name}
"""
ACTIVITY_MAPPING = """\
entity: activity
lookup_field: external_id
mappings:
  - {cc_field: name, crm_field: external_id}
"""


@pytest.fixture
def php_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in PHP_ENV.items():
        monkeypatch.setenv(key, value)


def write_config(tmp_path: Path, body: str, **mappings: str) -> Path:
    """A sync.yaml plus mapping files (contacts.yaml etc.) in ``tmp_path``."""
    files = {"contacts.yaml": CONTACT_MAPPING, "accounts.yaml": ACCOUNT_MAPPING, "activities.yaml": ACTIVITY_MAPPING}
    files.update({name.replace("_", ".") if name.endswith("_yaml") else name: text for name, text in mappings.items()})
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    path = tmp_path / "sync.yaml"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def config_error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value


# --- the PHP SDK's files ---------------------------------------------------------------------------


@pytest.mark.usefixtures("php_env")
def test_php_sdk_config_loads_unchanged() -> None:
    config = load_config(PHP_SDK)
    assert config.source_path == PHP_SDK.resolve()
    assert config.daktela.instance_url == "https://acme.daktela.com"
    assert config.daktela.access_token == TOKEN
    assert config.daktela.database == "crm"
    assert config.webhook.secret == "hook-secret-42"
    assert config.sync.batch_size == 50
    entities = config.sync.entities
    assert sorted(entities) == ["account", "activity", "contact"]
    assert [entities[name].direction for name in ("contact", "account", "activity")] == [
        Direction.CRM_TO_CC,
        Direction.CRM_TO_CC,
        Direction.CC_TO_CRM,
    ]
    assert entities["activity"].activity_types == [ActivityType.CALL, ActivityType.EMAIL]
    assert config.entity("contact") is entities["contact"]
    assert config.entity("ticket") is None
    mappings_dir = PHP_SDK.parent / "mappings"
    assert entities["contact"].mapping_file == (mappings_dir / "contacts.yaml").resolve()
    contact_mapping = entities["contact"].mapping
    assert isinstance(contact_mapping, Mapping)
    assert (contact_mapping.entity, contact_mapping.lookup_field, len(contact_mapping.mappings)) == (
        "contact",
        "name",
        10,
    )
    # ${RAYNET_INSTANCE} inside a transformer param of a mapping file is interpolated too.
    url_rule = contact_mapping.rule_for_target("customFields.crm_url", "crm_to_cc")
    assert url_rule is not None
    assert url_rule.transformers[0].params["template"].startswith("https://app.raynet.cz/acme/?view=")
    assert entities["activity"].mapping.lookup_field == "external_id"
    auto = entities["account"].auto_create_contact
    assert auto is not None
    assert auto.skip_if_empty == ["customFields.email", "customFields.number"]
    assert auto.skip_if_exists == ["customFields.email"]  # a scalar becomes a one-item list
    assert auto.skip_if_exists_mode == "all"
    assert auto.mapping.entity == "contact"
    assert len(auto.mapping.mappings) == 4
    companies, leads = config.sync.custom_entities
    assert (companies.name, companies.source, companies.target, companies.enabled) == (
        "companies",
        "company",
        "account",
        True,
    )
    assert companies.mapping.lookup_field == "name"
    assert (leads.enabled, leads.mapping_file, leads.mapping) == (False, None, None)


@pytest.mark.usefixtures("php_env")
def test_raw_config_keeps_adapter_sections_interpolated() -> None:
    raw = load_raw_config(PHP_SDK)
    assert raw["raynet"] == {"instance_name": "acme", "api_key": "raynet-key", "page_size": 200}
    assert raw["daktela"]["database"] == "crm"


@pytest.mark.usefixtures("php_env")
def test_secrets_never_in_repr() -> None:
    config = load_config(PHP_SDK)
    for text in (repr(config), str(config), repr(config.daktela), repr(config.webhook)):
        assert TOKEN not in text
        assert "hook-secret-42" not in text


def test_php_sdk_config_with_unset_variable_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in PHP_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("RAYNET_API_KEY")
    error = config_error(PHP_SDK)
    assert str(error).endswith(
        "php_sdk/sync.yaml: raynet.api_key: environment variable RAYNET_API_KEY is not set "
        "(set it, or write ${RAYNET_API_KEY:-default})"
    )
    assert "raynet-key" not in str(error)


def test_bundled_demo_config_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAKTELA_INSTANCE_URL", "http://127.0.0.1:8080")
    monkeypatch.setenv("DAKTELA_ACCESS_TOKEN", TOKEN)
    for name in ("DAKTELA_DATABASE", "WEBHOOK_SECRET", "CRMSYNC_CRM_PATH", "DAKTELA_TIMEZONE"):
        monkeypatch.delenv(name, raising=False)
    path = Path(__file__).parents[1] / "mappings" / "sync.yaml"
    config = load_config(path)
    assert config.daktela.database == "default"
    assert config.webhook.secret == ""
    assert config.crm.adapter == "sql"
    assert config.crm.settings == {"path": "../data/demo-crm.sqlite",
                                   "custom_sources": {"partners": {"table": "partners",
                                                                   "reference_columns": ["account_id"]}}}
    assert (
        config.resolve_path(config.crm.settings["path"]) == (path.parent.parent / "data" / "demo-crm.sqlite").resolve()
    )
    assert config.staging.path == (path.parent.parent / "data" / "crmsync.duckdb").resolve()
    assert config.sync.entities["activity"].activity_types == list(ActivityType)
    auto = config.sync.entities["account"].auto_create_contact
    assert auto is not None
    assert (auto.skip_if_empty, auto.skip_if_exists, auto.skip_if_exists_mode) == (
        ["customFields.email", "customFields.number"],
        ["customFields.email"],
        "any",
    )
    assert all(config.sync.entities[name].mapping is not None for name in ("account", "contact", "activity"))


# --- values -----------------------------------------------------------------------------------------

MINIMAL = """\
sync:
  entities:
    contact:
      enabled: {enabled}
      direction: crm_to_cc
      mapping_file: contacts.yaml
"""


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('"false"', False), ('"0"', False), ('"no"', False), ('"off"', False), ("false", False), ("0", False),
        ('"true"', True), ('"1"', True), ('"yes"', True), ('"on"', True), ("true", True), ("1", True),
    ],
)  # fmt: skip
def test_enabled_strings(tmp_path: Path, raw: str, expected: bool) -> None:
    config = load_config(write_config(tmp_path, MINIMAL.format(enabled=raw)))
    assert config.sync.entities["contact"].enabled is expected
    assert (config.entity("contact") is not None) is expected
    assert (config.sync.entities["contact"].mapping is not None) is expected


def test_enabled_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTACTS_ON", "false")
    config = load_config(write_config(tmp_path, MINIMAL.format(enabled="${CONTACTS_ON}")))
    assert config.entity("contact") is None


def test_batch_size_from_string(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, 'sync:\n  batch_size: "250"\n'))
    assert config.sync.batch_size == 250


def test_defaults_for_an_almost_empty_file(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, "daktela:\n  database: 123\n"))
    assert config.daktela.database == "123"  # YAML reads digits as int; the PHP SDK cast to string
    assert config.sync.batch_size == 100
    assert config.sync.entities == {}
    assert config.staging.path == (tmp_path / "data" / "crmsync.duckdb").resolve()
    assert config.webhook.inbox_path == (tmp_path / "data" / "webhook-inbox.sqlite").resolve()


def test_absolute_and_relative_mapping_paths(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "acc.yaml").write_text(ACCOUNT_MAPPING, encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.yaml").write_text(CONTACT_MAPPING, encoding="utf-8")
    body = f"""\
    sync:
      entities:
        account: {{enabled: true, direction: crm_to_cc, mapping_file: {elsewhere / "acc.yaml"}}}
        contact: {{enabled: true, direction: crm_to_cc, mapping_file: sub/c.yaml}}
    """
    config = load_config(write_config(tmp_path, body))
    assert config.sync.entities["account"].mapping_file == elsewhere / "acc.yaml"
    assert config.sync.entities["contact"].mapping_file == (tmp_path / "sub" / "c.yaml").resolve()
    assert config.sync.entities["account"].mapping.entity == "account"


def test_disabled_entity_may_keep_an_unsupported_direction(tmp_path: Path) -> None:
    body = "sync:\n  entities:\n    contact: {enabled: false, direction: bidirectional, mapping_file: nope.yaml}\n"
    config = load_config(write_config(tmp_path, body))
    assert config.sync.entities["contact"].mapping is None


def test_duplicate_activity_types_collapse(tmp_path: Path) -> None:
    body = """\
    sync:
      entities:
        activity: {enabled: true, direction: cc_to_crm, mapping_file: activities.yaml,
                   activity_types: [call, email, call]}
    """
    config = load_config(write_config(tmp_path, body))
    assert config.sync.entities["activity"].activity_types == [ActivityType.CALL, ActivityType.EMAIL]


# --- errors -----------------------------------------------------------------------------------------

ENTITY = "sync:\n  entities:\n    {name}: {{{fields}}}\n"


@pytest.mark.parametrize(
    ("body", "path", "message"),
    [
        (
            ENTITY.format(name="contact", fields="enabled: true, direction: sideways, mapping_file: contacts.yaml"),
            "sync.entities.contact.direction",
            "invalid value 'sideways'; allowed: crm_to_cc, cc_to_crm, bidirectional",
        ),
        (
            ENTITY.format(
                name="contact", fields="enabled: true, direction: bidirectional, mapping_file: contacts.yaml"
            ),
            "sync.entities.contact.direction",
            "direction 'bidirectional' is not supported for contact; the engine syncs contact only crm_to_cc",
        ),
        (
            ENTITY.format(name="account", fields="enabled: true, direction: cc_to_crm, mapping_file: accounts.yaml"),
            "sync.entities.account.direction",
            "direction 'cc_to_crm' is not supported for account; the engine syncs account only crm_to_cc",
        ),
        (
            ENTITY.format(
                name="activity",
                fields="enabled: true, direction: crm_to_cc, mapping_file: activities.yaml, activity_types: [call]",
            ),
            "sync.entities.activity.direction",
            "direction 'crm_to_cc' is not supported for activity; the engine syncs activity only cc_to_crm",
        ),
        (
            ENTITY.format(
                name="activity",
                fields="enabled: true, direction: cc_to_crm, mapping_file: activities.yaml, "
                "activity_types: [call, fax]",
            ),
            "sync.entities.activity.activity_types[1]",
            "invalid value 'fax'; allowed: call, email, web, sms, fbm, wap, vbr",
        ),
        (
            ENTITY.format(name="activity", fields="enabled: true, direction: cc_to_crm, mapping_file: activities.yaml"),
            "sync.entities.activity.activity_types",
            "list at least one activity type to sync (allowed: call, email, web, sms, fbm, wap, vbr)",
        ),
        (
            ENTITY.format(
                name="activity",
                fields="enabled: true, direction: cc_to_crm, mapping_file: activities.yaml, activity_types: []",
            ),
            "sync.entities.activity.activity_types",
            "list at least one activity type to sync (allowed: call, email, web, sms, fbm, wap, vbr)",
        ),
        (
            ENTITY.format(name="contact", fields="enabled: maybe, direction: crm_to_cc"),
            "sync.entities.contact.enabled",
            "invalid boolean 'maybe'; allowed: true/false, yes/no, on/off, 1/0",
        ),
        (
            ENTITY.format(name="contact", fields="enabled: true"),
            "sync.entities.contact.direction",
            "required key is missing",
        ),
        (
            ENTITY.format(name="contact", fields="enabled: true, direction: crm_to_cc"),
            "sync.entities.contact.mapping_file",
            "mapping_file is required for an enabled contact",
        ),
        (
            ENTITY.format(name="contact", fields='enabled: true, direction: crm_to_cc, mapping_file: ""'),
            "sync.entities.contact.mapping_file",
            "mapping_file is required for an enabled contact",
        ),
        (
            ENTITY.format(name="ticket", fields="enabled: true, direction: crm_to_cc"),
            "sync.entities.ticket",
            "unknown key 'ticket'; allowed: account, contact, activity",
        ),
        (
            ENTITY.format(name="contact", fields="enabled: true, direction: crm_to_cc, mapping: contacts.yaml"),
            "sync.entities.contact.mapping",
            "'mapping' is filled in by the loader; set mapping_file instead",
        ),
        (
            ENTITY.format(name="contact", fields="enabled: true, direction: crm_to_cc, mapping_fil: contacts.yaml"),
            "sync.entities.contact.mapping_fil",
            "unknown key; allowed: enabled, direction, mapping_file, activity_types, auto_create_contact, "
            "settle_minutes, rescan_partitions",
        ),
        (
            ENTITY.format(
                name="contact",
                fields="enabled: true, direction: crm_to_cc, mapping_file: contacts.yaml, "
                "auto_create_contact: {mapping_file: contacts.yaml}",
            ),
            "sync.entities.contact.auto_create_contact",
            "auto_create_contact is only used for accounts",
        ),
        (
            ENTITY.format(
                name="account",
                fields="enabled: true, direction: crm_to_cc, mapping_file: accounts.yaml, "
                "auto_create_contact: {mapping_file: contacts.yaml, skip_if_exists_mode: some}",
            ),
            "sync.entities.account.auto_create_contact.skip_if_exists_mode",
            "invalid value 'some'; allowed: all, any",
        ),
        (
            ENTITY.format(
                name="account",
                fields="enabled: true, direction: crm_to_cc, mapping_file: accounts.yaml, "
                "auto_create_contact: {mapping_file: accounts.yaml}",
            ),
            "sync.entities.account.auto_create_contact.mapping_file",
            "accounts.yaml is a mapping for entity 'account', but it is used for 'contact'",
        ),
        (
            ENTITY.format(name="contact", fields="enabled: true, direction: crm_to_cc, mapping_file: accounts.yaml"),
            "sync.entities.contact.mapping_file",
            "accounts.yaml is a mapping for entity 'account', but it is used for 'contact'",
        ),
        ('sync:\n  batch_size: "abc"\n', "sync.batch_size", "expected an integer, got 'abc'; allowed: 1..1000"),
        ("sync:\n  batch_size: 0\n", "sync.batch_size", "0 is out of range; allowed: 1..1000"),
        ("sync:\n  batch_size: 1001\n", "sync.batch_size", "1001 is out of range; allowed: 1..1000"),
        (
            "daktela:\n  instance_uri: https://x\n",
            "daktela.instance_uri",
            "unknown key; allowed: instance_url, access_token, database, timezone, timeout_s, rate_limit_per_s, "
            "write_concurrency, max_write_concurrency, max_retries, page_size, lookup_chunk_size",
        ),
        (
            "daktela:\n  timezone: Europe/Brno\n",
            "daktela.timezone",
            "unknown time zone 'Europe/Brno' (use an IANA name like Europe/Prague)",
        ),
        (
            "daktela:\n  instance_url: acme.daktela.com\n",
            "daktela.instance_url",
            "instance_url must start with https:// (or http:// for a local simulator)",
        ),
        ("sync:\n  entities: [contact]\n", "sync.entities", "expected a mapping, got list"),
        (
            "sync:\n  custom_entities:\n    - {name: a, direction: crm_to_cc, source: s, target: contact}\n"
            "    - {name: a, direction: crm_to_cc, source: t, target: account}\n",
            "sync",
            "duplicate custom entity name 'a'",
        ),
        (
            "sync:\n  custom_entities:\n    - {name: a, direction: crm_to_cc, source: s, target: ticket}\n",
            "sync.custom_entities[0].target",
            "invalid value 'ticket'; allowed: contact, account",
        ),
        (
            "sync:\n  custom_entities:\n    - {direction: crm_to_cc, source: s, target: contact}\n",
            "sync.custom_entities[0].name",
            "required key is missing",
        ),
        (
            "sync:\n  custom_entities:\n    - {name: a, direction: cc_to_crm, source: s, target: contact, "
            "enabled: true, mapping_file: contacts.yaml}\n",
            "sync.custom_entities[0].direction",
            "direction 'cc_to_crm' is not supported for custom entities; they are imported crm_to_cc",
        ),
        (
            "sync:\n  custom_entities:\n    - {name: a, direction: crm_to_cc, source: s, target: account, "
            "enabled: true, mapping_file: contacts.yaml}\n",
            "sync.custom_entities[0].mapping_file",
            "contacts.yaml is a mapping for entity 'contact', but it is used for 'account'",
        ),
    ],
)
def test_config_errors_name_file_and_path(tmp_path: Path, body: str, path: str, message: str) -> None:
    config_path = write_config(tmp_path, body)
    error = config_error(config_path)
    assert error.file == str(config_path)
    assert error.path == path
    expected_message = message.replace("accounts.yaml", str(tmp_path / "accounts.yaml")).replace(
        "contacts.yaml is", f"{tmp_path / 'contacts.yaml'} is"
    )
    assert error.reason.split("\n")[0] == expected_message
    assert str(error).startswith(f"{config_path}: {path}: ")


def test_several_errors_are_all_listed(tmp_path: Path) -> None:
    path = write_config(tmp_path, 'sync:\n  batch_size: "abc"\ndaktela:\n  databse: x\n')
    lines = str(config_error(path)).splitlines()
    assert lines == [
        f"{path}: daktela.databse: unknown key; allowed: instance_url, access_token, database, timezone, timeout_s, "
        "rate_limit_per_s, write_concurrency, max_write_concurrency, max_retries, page_size, lookup_chunk_size",
        f"{path}: sync.batch_size: expected an integer, got 'abc'; allowed: 1..1000",
    ]


def test_missing_mapping_file(tmp_path: Path) -> None:
    path = write_config(
        tmp_path, ENTITY.format(name="contact", fields="enabled: 1, direction: crm_to_cc, mapping_file: no.yaml")
    )
    error = config_error(path)
    assert error.path == "sync.entities.contact.mapping_file"
    assert error.reason == f"mapping file not found: {tmp_path / 'no.yaml'}"


def test_broken_mapping_error_names_the_mapping_file(tmp_path: Path) -> None:
    bad = CONTACT_MAPPING.replace("name: prefix", "name: uppercase")
    path = write_config(
        tmp_path,
        ENTITY.format(name="contact", fields="enabled: 1, direction: crm_to_cc, mapping_file: c.yaml"),
        c_yaml=bad,
    )
    error = config_error(path)
    assert error.file == str(tmp_path / "c.yaml")
    assert error.path == "mappings[0].transformers[0].name"
    assert error.reason.startswith("unknown transformer 'uppercase' (known: boolean, callback, date_format, ")


def test_missing_file() -> None:
    with pytest.raises(ConfigError) as info:
        load_config("/nonexistent/dir/sync.yaml")
    assert str(info.value) == "/nonexistent/dir/sync.yaml: configuration file not found"
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_raw_config("/nonexistent/dir/sync.yaml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "configuration file is empty; expected a YAML mapping"),
        ("# only a comment\n", "configuration file is empty; expected a YAML mapping"),
        ("- a\n- b\n", "configuration file must be a YAML mapping at the top level, not a list"),
        ("just text\n", "configuration file must be a YAML mapping at the top level, not a str"),
        ("daktela:\n  url: [1, 2\n", "invalid YAML at line 3, column 1: expected ',' or ']', but got '<stream end>'"),
        ("a: 1\n b: 2\n", "invalid YAML at line 2, column 3: mapping values are not allowed here"),
    ],
)
def test_unreadable_documents(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "sync.yaml"
    path.write_text(text, encoding="utf-8")
    assert str(config_error(path)) == f"{path}: {message}"


@pytest.mark.parametrize(
    "text",
    [
        f'daktela:\n  access_token: "{TOKEN}\n',  # unterminated string holding the token
        f"daktela:\n  access_token: [{TOKEN}]\n",
        f"daktela:\n  access_token: {{x: {TOKEN}}}\n",
        f"webhook:\n  secret: [{TOKEN}]\n",
        f"daktela:\n  access_token: {TOKEN}\n  bogus: 1\n",
    ],
)
def test_secrets_never_in_errors(tmp_path: Path, text: str) -> None:
    path = tmp_path / "sync.yaml"
    path.write_text(text, encoding="utf-8")
    error = config_error(path)
    assert TOKEN not in str(error)
    assert TOKEN not in repr(error)


def test_config_object_is_frozen(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, "sync:\n  batch_size: 5\n"))
    assert isinstance(config, SyncConfig)
    with pytest.raises(ValueError, match="frozen"):
        config.sync.batch_size = 6  # type: ignore[misc]


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("", ""),
        ("abc", "***"),
        ("12345678", "********"),
        ("123456789", "1234*6789"),
        ("abcdefghijklmnop", "abcd********mnop"),
    ],
)
def test_mask_secret(value: str, masked: str) -> None:
    assert mask_secret(value) == masked


@pytest.mark.usefixtures("php_env")
def test_php_sdk_contact_mapping_maps_a_raynet_record() -> None:
    from crmsync_pipelines.mapping import FieldMapper

    mapping = load_config(PHP_SDK).sync.entities["contact"].mapping
    record = {
        "id": 1234,
        "fullName": "Jiří Dvořák",
        "firstName": "Jiří",
        "lastName": "Dvořák",
        "contactInfo": {"email": "jiri@firma.cz", "tel1": "+420 603 123 456"},
        "company": {"id": 77},
        "tags": "vip, partner",
        "notice": None,
    }
    assert FieldMapper().map(record, mapping, "crm_to_cc", {"account": {"77": "raynet_77"}}) == {
        "name": "raynet_1234",
        "title": "Jiří Dvořák",
        "firstname": "Jiří",
        "lastname": "Dvořák",
        "customFields": {
            "email": ["jiri@firma.cz"],
            "number": ["+420603123456"],
            "tags": ["vip", "partner"],
            "crm_url": ["https://app.raynet.cz/acme/?view=DetailView&en=Person&ei=1234"],
        },
        "account": "raynet_77",
        "description": "",
    }


def test_custom_registry_reaches_every_mapping(tmp_path: Path) -> None:
    from crmsync_pipelines.mapping import TransformerRegistry

    mapping = CONTACT_MAPPING.replace("{name: prefix, params: {value: crm_}}", "{name: callback, params: {name: vat}}")
    body = ENTITY.format(name="contact", fields="enabled: 1, direction: crm_to_cc, mapping_file: c.yaml")
    path = write_config(tmp_path, body, c_yaml=mapping)
    assert config_error(path).path == "mappings[0].transformers[0].params.name"
    registry = TransformerRegistry.with_defaults()
    registry.register_callback("vat", lambda value, params: f"CZ{value}")
    config = load_config(path, registry)
    assert config.sync.entities["contact"].mapping.mappings[0].transformers[0].params == {"name": "vat"}


def test_load_config_is_exported_directly() -> None:
    import crmsync_pipelines.config as package
    from crmsync_pipelines.config import loader

    assert package.load_config is loader.load_config
    assert package.load_raw_config is loader.load_raw_config
