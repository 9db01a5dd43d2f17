"""Choosing the CRM adapter named in ``sync.yaml``.

``crm.adapter`` is either a built-in name (``sql``) or ``package.module:ClassName`` for an
adapter that lives in the user's own package. Every way that can go wrong (module not
importable, class missing, not a ``CrmAdapter``, settings rejected) is a ``ConfigError``
naming ``crm.adapter`` and the offending value, raised before any sync work starts.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from crmsync_pipelines.config.models import CrmSection
from crmsync_pipelines.crm.base import CrmAdapter
from crmsync_pipelines.crm.sql import SqlCrmAdapter
from crmsync_pipelines.errors import ConfigError, CrmsyncError

#: Builds an adapter from its settings (the ``crm:`` keys other than ``adapter``) and the config directory.
AdapterFactory = Callable[[Mapping[str, Any], Path], CrmAdapter]

_ADAPTER_PATH = "crm.adapter"
_BUILT_INS: dict[str, AdapterFactory] = {"sql": SqlCrmAdapter.from_settings}


def _hubspot(settings: Mapping[str, Any], base_dir: Path) -> CrmAdapter:
    """``crm.adapter: hubspot`` (imported on use: httpx and phonenumbers load only when chosen)."""
    from crmsync_pipelines.crm.hubspot.adapter import HubSpotAdapter

    return HubSpotAdapter.from_settings(settings, base_dir)


_BUILT_INS["hubspot"] = _hubspot


def _raynet(settings: Mapping[str, Any], base_dir: Path) -> CrmAdapter:
    """``crm.adapter: raynet`` (imported on use, like hubspot)."""
    from crmsync_pipelines.crm.raynet.adapter import RaynetAdapter

    return RaynetAdapter.from_settings(settings, base_dir)


def _raynet_settings(settings: Mapping[str, Any]) -> None:
    from crmsync_pipelines.crm.raynet.settings import RaynetSettings

    RaynetSettings.parse(settings)


_BUILT_INS["raynet"] = _raynet
#: Built-ins whose own settings can be checked without building the adapter (no file, no network).
_SETTINGS_CHECKS: dict[str, Callable[[Mapping[str, Any]], None]] = {"raynet": _raynet_settings}


def _hubspot_settings(settings: Mapping[str, Any]) -> None:
    from crmsync_pipelines.crm.hubspot.settings import HubSpotSettings

    HubSpotSettings.parse(dict(settings))


_SETTINGS_CHECKS["hubspot"] = _hubspot_settings


def check_adapter_settings(crm_section: CrmSection | Mapping[str, Any]) -> None:
    """Validate a built-in adapter's own ``crm:`` keys without building it (``crmsync validate``).

    Raises ``ConfigError`` naming ``crm.<key>``; adapters without a registered check pass.
    """
    section = crm_section if isinstance(crm_section, CrmSection) else CrmSection.model_validate(dict(crm_section))
    check = _SETTINGS_CHECKS.get(section.adapter.strip())
    if check is not None:
        check(section.settings)


def register_adapter(name: str, factory: AdapterFactory) -> None:
    """Make ``crm.adapter: <name>`` build an adapter with ``factory``; re-registering replaces it."""
    if not name or ":" in name or name != name.strip():
        raise ValueError(f"adapter name {name!r} must be a plain word (no ':' or spaces)")
    _BUILT_INS[name] = factory


def built_in_adapters() -> list[str]:
    """Names accepted as ``crm.adapter`` without an import path."""
    return sorted(_BUILT_INS)


def resolve_adapter(name: str) -> AdapterFactory:
    """The factory ``crm.adapter: <name>`` names, without building an adapter.

    Used by ``crmsync validate`` to refuse an unknown name (``sqll``) or an import path that
    does not import or is not a concrete ``CrmAdapter`` before any work; raises ``ConfigError``.
    """
    name = name.strip()
    factory = _BUILT_INS.get(name) if ":" not in name else _import_factory(name)
    if factory is None:
        raise ConfigError(
            f"unknown adapter {name!r}; use one of {', '.join(built_in_adapters())} "
            "or an import path like 'mypackage.crm:MyAdapter'",
            path=_ADAPTER_PATH,
        )
    return factory


def load_crm_adapter(crm_section: CrmSection | Mapping[str, Any], *, base_dir: Path) -> CrmAdapter:
    """The adapter ``crm_section`` describes, built and validated (it has not been pinged)."""
    section = crm_section if isinstance(crm_section, CrmSection) else CrmSection.model_validate(dict(crm_section))
    name = section.adapter.strip()
    settings = section.settings
    factory = resolve_adapter(name)
    try:
        adapter = factory(settings, base_dir)
    except CrmsyncError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"adapter {name!r} rejected its settings: {exc}", path="crm") from exc
    if not isinstance(adapter, CrmAdapter):
        raise ConfigError(
            f"adapter {name!r} built a {type(adapter).__name__}, which is not a CrmAdapter",
            path=_ADAPTER_PATH,
        )
    return adapter


def _import_factory(import_path: str) -> AdapterFactory:
    module_name, _, attr = import_path.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"{import_path!r} is not of the form 'package.module:ClassName'", path=_ADAPTER_PATH)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or any error raised while the user's module runs
        raise ConfigError(
            f"cannot import module {module_name!r} for adapter {import_path!r}: {exc}", path=_ADAPTER_PATH
        ) from exc
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ConfigError(f"module {module_name!r} has no attribute {attr!r}", path=_ADAPTER_PATH)
        target = getattr(target, part)
    if not (inspect.isclass(target) and issubclass(target, CrmAdapter)):
        raise ConfigError(
            f"{import_path!r} is not a CrmAdapter subclass (got {target!r}); subclass crmsync_pipelines.crm.CrmAdapter",
            path=_ADAPTER_PATH,
        )
    if inspect.isabstract(target):
        missing = ", ".join(sorted(getattr(target, "__abstractmethods__", ())))
        raise ConfigError(f"{import_path!r} does not implement: {missing}", path=_ADAPTER_PATH)
    adapter_class: type[CrmAdapter] = target
    from_settings = getattr(adapter_class, "from_settings", None)
    if callable(from_settings):
        return lambda settings, base_dir: from_settings(dict(settings), base_dir)
    return lambda settings, base_dir: adapter_class(**settings)
