"""Adapter selection: built-in names, import paths, and every way an import path can be wrong."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crmsync_pipelines.config.models import CrmSection
from crmsync_pipelines.crm.base import CrmAdapter
from crmsync_pipelines.crm.registry import built_in_adapters, load_crm_adapter, register_adapter
from crmsync_pipelines.crm.sql import SqlCrmAdapter
from crmsync_pipelines.errors import ConfigError

PLUGIN = '''
from crmsync_pipelines.crm.base import ReadOnlyActivitiesMixin
from crmsync_pipelines.crm.sql import SqlCrmAdapter


class ErpAdapter(ReadOnlyActivitiesMixin, SqlCrmAdapter):
    name = "erp"


class KwargsAdapter(ReadOnlyActivitiesMixin, SqlCrmAdapter):
    """No from_settings: built with Class(**settings)."""

    from_settings = None

    def __init__(self, path, greeting="hi"):
        from crmsync_pipelines.crm.sql_settings import SqlCrmSettings
        super().__init__(SqlCrmSettings(path=path))
        self.greeting = greeting


class NotAnAdapter:
    pass


class Abstract(SqlCrmAdapter.__mro__[1]):
    pass


value = 3
'''


@pytest.fixture
def plugin_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    package = tmp_path / "plugins"
    package.mkdir()
    (package / "my_crm_plugin.py").write_text(textwrap.dedent(PLUGIN))
    (package / "broken_crm_plugin.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(package))
    yield "my_crm_plugin"
    for name in ("my_crm_plugin", "broken_crm_plugin"):
        sys.modules.pop(name, None)


def test_builtin_sql_adapter(empty_crm_path: Path) -> None:
    section = CrmSection.model_validate({"adapter": "sql", "path": empty_crm_path.name})
    adapter = load_crm_adapter(section, base_dir=empty_crm_path.parent)
    assert isinstance(adapter, SqlCrmAdapter) and adapter.ping() is True
    adapter.close()
    assert "sql" in built_in_adapters()


def test_import_path_with_from_settings(plugin_module: str, empty_crm_path: Path) -> None:
    adapter = load_crm_adapter(
        {"adapter": f"{plugin_module}:ErpAdapter", "path": empty_crm_path.name}, base_dir=empty_crm_path.parent
    )
    assert type(adapter).__name__ == "ErpAdapter" and adapter.name == "erp"
    adapter.close()


def test_import_path_without_from_settings_gets_kwargs(plugin_module: str, empty_crm_path: Path) -> None:
    adapter: Any = load_crm_adapter(
        {"adapter": f"{plugin_module}:KwargsAdapter", "path": str(empty_crm_path), "greeting": "ahoj"},
        base_dir=Path("/nonexistent"),
    )
    assert adapter.greeting == "ahoj"
    adapter.close()
    with pytest.raises(ConfigError, match="rejected its settings") as caught:
        load_crm_adapter(
            {"adapter": f"{plugin_module}:KwargsAdapter", "path": str(empty_crm_path), "colour": "red"},
            base_dir=Path("."),
        )
    assert caught.value.path == "crm"


@pytest.mark.parametrize(
    ("adapter", "message"),
    [
        ("salesforce", "unknown adapter 'salesforce'; use one of"),
        ("no_such_module_xyz:Adapter", "cannot import module 'no_such_module_xyz'"),
        ("broken_crm_plugin:Adapter", "boom at import"),
        ("my_crm_plugin:Missing", "has no attribute 'Missing'"),
        ("my_crm_plugin:NotAnAdapter", "is not a CrmAdapter subclass"),
        ("my_crm_plugin:value", "is not a CrmAdapter subclass"),
        ("my_crm_plugin:Abstract", "does not implement: create_activity"),
        (":Adapter", "is not of the form 'package.module:ClassName'"),
        ("my_crm_plugin:", "is not of the form"),
    ],
)
def test_bad_adapter_names_are_config_errors(plugin_module: str, adapter: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_crm_adapter({"adapter": adapter, "path": "x.sqlite"}, base_dir=Path("."))
    assert caught.value.path == "crm.adapter"
    assert message in str(caught.value)


def test_adapter_settings_errors_pass_through_with_their_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_crm_adapter({"adapter": "sql", "path": "absent.sqlite"}, base_dir=tmp_path)
    assert caught.value.path == "crm.path"


def test_register_adapter(empty_crm_path: Path) -> None:
    built: list[dict[str, Any]] = []

    def factory(settings: Any, base_dir: Path) -> CrmAdapter:
        built.append(dict(settings))
        return SqlCrmAdapter.from_settings({"path": str(empty_crm_path)}, base_dir)

    register_adapter("test_demo_alias", factory)
    adapter = load_crm_adapter({"adapter": "test_demo_alias", "token": "t"}, base_dir=Path("."))
    assert built == [{"token": "t"}]
    adapter.close()
    register_adapter("test_not_adapter", lambda settings, base_dir: object())  # type: ignore[arg-type,return-value]
    with pytest.raises(ConfigError, match="which is not a CrmAdapter"):
        load_crm_adapter({"adapter": "test_not_adapter"}, base_dir=Path("."))
    for bad in ("", "a:b", " x"):
        with pytest.raises(ValueError):
            register_adapter(bad, factory)
