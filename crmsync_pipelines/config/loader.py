"""Loading ``sync.yaml``: read -> interpolate ``${VAR}`` -> validate -> resolve paths -> load mappings.

Everything that can be wrong with a configuration is found here, before any API call, and
reported as a ``ConfigError`` naming the file and the path inside it. The checks that go
beyond the PHP SDK (W14, W20, W21): ``direction`` must be one the engine implements for the
entity, an enabled activity entity must list its activity types, a mapping's ``entity``
must match the entity it is used for, and absolute ``mapping_file`` paths work.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from crmsync_pipelines.config.interpolation import interpolate
from crmsync_pipelines.config.models import (
    ActivityType,
    AutoCreateContact,
    CustomEntity,
    EntityConfig,
    SyncConfig,
    WebhookSection,
)
from crmsync_pipelines.config.validation_errors import config_error_from_validation
from crmsync_pipelines.config.yaml_file import display_path, file_problem, read_yaml_mapping
from crmsync_pipelines.errors import ConfigError

if TYPE_CHECKING:
    from crmsync_pipelines.mapping import Mapping, TransformerRegistry

#: The one direction the engine syncs each entity in.
SUPPORTED_DIRECTIONS = {"account": "crm_to_cc", "contact": "crm_to_cc", "activity": "cc_to_crm"}

_KNOWN_SECTIONS = tuple(name for name in SyncConfig.model_fields if name != "source_path")


def load_raw_config(path: str | Path) -> dict[str, Any]:
    """The whole interpolated document, including sections crmsync does not know (an adapter's own)."""
    file_path = Path(path)
    shown = display_path(file_path)
    document = read_yaml_mapping(file_path, kind="configuration file")
    result: dict[str, Any] = interpolate(document, file=shown)
    return result


def load_config(path: str | Path, registry: TransformerRegistry | None = None) -> SyncConfig:
    """Load and validate ``sync.yaml`` and every mapping it enables.

    ``registry`` is used to check mapping transformers (the process-wide default registry
    when None); pass yours when mappings use custom transformers or callbacks.
    """
    file_path = Path(path).expanduser().resolve()
    shown = display_path(Path(path))
    document = load_raw_config(path)
    known = {key: value for key, value in document.items() if key in _KNOWN_SECTIONS}
    try:
        config = SyncConfig.model_validate(known)
    except ValidationError as exc:
        raise config_error_from_validation(exc, file=shown, model=SyncConfig) from None
    base = file_path.parent
    config = config.model_copy(
        update={
            "source_path": file_path,
            "staging": config.staging.model_copy(update={"path": _resolve(base, config.staging.path)}),
            "webhook": config.webhook.model_copy(
                update={"inbox_path": _resolve(base, config.webhook.inbox_path)}
            ),
        }
    )
    return _with_mappings(config, base, shown, registry)


def _resolve(base: Path, path: Path) -> Path:
    path = path.expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def _check_direction(entity: str, entry: EntityConfig, shown: str) -> None:
    supported = SUPPORTED_DIRECTIONS[entity]
    if entry.direction.value != supported:
        raise ConfigError(
            f"direction {entry.direction.value!r} is not supported for {entity}; "
            f"the engine syncs {entity} only {supported}",
            file=shown,
            path=f"sync.entities.{entity}.direction",
        )


def _load_entity_mapping(
    mapping_file: Path,
    *,
    expected: str,
    base: Path,
    shown: str,
    where: str,
    registry: TransformerRegistry | None,
) -> tuple[Path, Mapping]:
    from crmsync_pipelines.mapping import load_mapping  # the mapping package imports config helpers

    resolved = _resolve(base, mapping_file)
    problem = file_problem(resolved)
    if problem == "not found":
        raise ConfigError(f"mapping file not found: {resolved}", file=shown, path=where)
    if problem is not None:
        raise ConfigError(f"mapping file {resolved} {problem}", file=shown, path=where)
    mapping = load_mapping(resolved, registry)
    if mapping.entity != expected:
        raise ConfigError(
            f"{display_path(resolved)} is a mapping for entity {mapping.entity!r}, "
            f"but it is used for {expected!r}",
            file=shown,
            path=where,
        )
    return resolved, mapping


def _with_auto_contact(
    auto: AutoCreateContact, *, base: Path, shown: str, where: str, registry: TransformerRegistry | None
) -> AutoCreateContact:
    if auto.mapping_file is None:
        return auto
    resolved, mapping = _load_entity_mapping(
        auto.mapping_file,
        expected="contact",
        base=base,
        shown=shown,
        where=f"{where}.mapping_file",
        registry=registry,
    )
    return auto.model_copy(update={"mapping_file": resolved, "mapping": mapping})


def _with_entity(
    entity: str, entry: EntityConfig, *, base: Path, shown: str, registry: TransformerRegistry | None
) -> EntityConfig:
    where = f"sync.entities.{entity}"
    if not entry.enabled:
        resolved = _resolve(base, entry.mapping_file) if entry.mapping_file is not None else None
        return entry.model_copy(update={"mapping_file": resolved})
    _check_direction(entity, entry, shown)
    if entry.mapping_file is None:
        raise ConfigError(
            f"mapping_file is required for an enabled {entity}", file=shown, path=f"{where}.mapping_file"
        )
    if entity == "activity" and not entry.activity_types:
        allowed = ", ".join(t.value for t in ActivityType)
        raise ConfigError(
            f"list at least one activity type to sync (allowed: {allowed})",
            file=shown,
            path=f"{where}.activity_types",
        )
    if entry.auto_create_contact is not None and entity != "account":
        raise ConfigError(
            "auto_create_contact is only used for accounts", file=shown, path=f"{where}.auto_create_contact"
        )
    resolved, mapping = _load_entity_mapping(
        entry.mapping_file,
        expected=entity,
        base=base,
        shown=shown,
        where=f"{where}.mapping_file",
        registry=registry,
    )
    update: dict[str, Any] = {"mapping_file": resolved, "mapping": mapping}
    if entry.auto_create_contact is not None:
        update["auto_create_contact"] = _with_auto_contact(
            entry.auto_create_contact,
            base=base,
            shown=shown,
            where=f"{where}.auto_create_contact",
            registry=registry,
        )
    return entry.model_copy(update=update)


def _with_custom(
    index: int, entry: CustomEntity, *, base: Path, shown: str, registry: TransformerRegistry | None
) -> CustomEntity:
    where = f"sync.custom_entities[{index}]"
    if not entry.enabled:
        return entry
    if entry.direction.value != "crm_to_cc":
        raise ConfigError(
            f"direction {entry.direction.value!r} is not supported for custom entities; "
            "they are imported crm_to_cc",
            file=shown,
            path=f"{where}.direction",
        )
    if entry.mapping_file is None:
        raise ConfigError(
            "mapping_file is required for an enabled custom entity", file=shown, path=f"{where}.mapping_file"
        )
    resolved, mapping = _load_entity_mapping(
        entry.mapping_file,
        expected=entry.target,
        base=base,
        shown=shown,
        where=f"{where}.mapping_file",
        registry=registry,
    )
    return entry.model_copy(update={"mapping_file": resolved, "mapping": mapping})


def _with_mappings(
    config: SyncConfig, base: Path, shown: str, registry: TransformerRegistry | None
) -> SyncConfig:
    entities = {
        name: _with_entity(name, entry, base=base, shown=shown, registry=registry)
        for name, entry in config.sync.entities.items()
    }
    custom = [
        _with_custom(i, entry, base=base, shown=shown, registry=registry)
        for i, entry in enumerate(config.sync.custom_entities)
    ]
    sync = config.sync.model_copy(update={"entities": entities, "custom_entities": custom})
    return config.model_copy(update={"sync": sync})


class _ReceiverEntity(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    enabled: bool = False
    activity_types: list[ActivityType] = Field(default_factory=list)

    @field_validator("activity_types", mode="before")
    @classmethod
    def _listed(cls, value: Any) -> Any:
        return [] if value is None else [value] if isinstance(value, str) else value


class _ReceiverSync(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    entities: dict[Literal["account", "contact", "activity"], _ReceiverEntity] = Field(default_factory=dict)


class _ReceiverView(BaseModel):
    """The keys of ``sync.yaml`` the webhook receiver reads; everything else is not even interpolated."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    webhook: WebhookSection = Field(default_factory=WebhookSection)
    sync: _ReceiverSync = Field(default_factory=_ReceiverSync)


@dataclass(frozen=True)
class WebhookSettings:
    """What ``crmsync serve-webhooks`` needs: the ``webhook`` section and which events to sync."""

    webhook: WebhookSection
    enabled_entities: frozenset[str]
    activity_types: frozenset[str]


def webhook_settings(config: SyncConfig) -> WebhookSettings:
    """The receiver's settings from an already loaded config."""
    activity = config.entity("activity")
    return WebhookSettings(
        webhook=config.webhook,
        enabled_entities=frozenset(str(name) for name, entry in config.sync.entities.items() if entry.enabled),
        activity_types=frozenset(t.value for t in activity.activity_types) if activity is not None else frozenset(),
    )


def load_webhook_settings(path: str | Path) -> WebhookSettings:
    """Only what the receiver uses: ``webhook.*`` and each entity's ``enabled``/``activity_types``.

    The receiver never calls Daktela or the CRM, so the rest of the file (``daktela.access_token``,
    mapping files, adapter settings) is neither interpolated nor validated: an unset
    ``DAKTELA_ACCESS_TOKEN`` does not stop it. The file limits and ``${VAR}`` rules are the
    same as for ``load_config``. Raises ``ConfigError``.
    """
    file_path = Path(path)
    shown = display_path(file_path)
    document = read_yaml_mapping(file_path, kind="configuration file")
    subset: dict[str, Any] = {}
    if "webhook" in document:
        subset["webhook"] = document["webhook"]
    sync = document.get("sync")
    if isinstance(sync, dict):
        entities = sync.get("entities")
        if isinstance(entities, dict):
            entities = {
                name: {key: entry[key] for key in ("enabled", "activity_types") if key in entry}
                if isinstance(entry, dict) else entry
                for name, entry in entities.items()
            }
        if entities is not None:
            subset["sync"] = {"entities": entities}
    elif sync is not None:
        subset["sync"] = sync
    try:
        view = _ReceiverView.model_validate(interpolate(subset, file=shown))
    except ValidationError as exc:
        raise config_error_from_validation(exc, file=shown, model=_ReceiverView) from None
    base = file_path.expanduser().resolve().parent
    webhook = view.webhook.model_copy(update={"inbox_path": _resolve(base, view.webhook.inbox_path)})
    enabled = {name: entry for name, entry in view.sync.entities.items() if entry.enabled}
    activity = enabled.get("activity")
    if activity is not None and not activity.activity_types:
        allowed = ", ".join(t.value for t in ActivityType)
        raise ConfigError(
            f"list at least one activity type to sync (allowed: {allowed})",
            file=shown,
            path="sync.entities.activity.activity_types",
        )
    return WebhookSettings(
        webhook=webhook,
        enabled_entities=frozenset(enabled),
        activity_types=frozenset(t.value for t in activity.activity_types) if activity is not None else frozenset(),
    )
