"""``crmsync validate`` and ``crmsync config-view``: look at a config without calling any API.

``config-view`` follows the PHP SDK's command (same sections and JSON keys) so existing
users recognise it, but the access token is only ever shown masked, and never in JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from crmsync_pipelines.cli.common import ENTITY_ORDER, config_option, load_config_or_fail
from crmsync_pipelines.config.models import EntityConfig, SyncConfig
from crmsync_pipelines.config.yaml_file import display_path
from crmsync_pipelines.errors import ConfigError

_ARROWS = {"crm_to_cc": "CRM -> Daktela", "cc_to_crm": "Daktela -> CRM", "bidirectional": "CRM <-> Daktela"}


@click.command("validate")
@config_option
def validate(config_path: Path | None) -> None:
    """Load sync.yaml and every mapping it names, and resolve the CRM adapter; report the first error.

    No API call, and the adapter is not built: a built-in's own settings are checked where it
    registers a check; its connection or database when a run opens it (or now with
    ``crmsync crm-inspect``).
    """
    path, config = load_config_or_fail(config_path)
    adapter = _checked_adapter(path, config)
    enabled = [name for name in ENTITY_ORDER if config.entity(name) is not None]
    click.echo(click.style("OK", fg="green", bold=True) + f" {path}")
    click.echo(f"  daktela: {config.daktela.instance_url or '(no instance_url)'} "
               f"database={config.daktela.database or '(default)'} timezone={config.daktela.timezone}")
    click.echo(f"  crm adapter: {adapter}")
    click.echo(f"  staging: {config.staging.path}")
    click.echo(f"  partitions: {config.partitions.granularity} from {config.partitions.start_date}")
    for name in enabled:
        entity = config.entity(name)
        assert entity is not None
        mapping = entity.mapping
        rules = len(mapping.mappings) if mapping is not None else 0
        lookup = mapping.lookup_field if mapping is not None else "?"
        click.echo(f"  {name}: {_ARROWS.get(entity.direction.value, entity.direction.value)}, "
                   f"{rules} rules, lookup field {lookup} ({entity.mapping_file})")
    if not enabled:
        click.echo("  warning: no entity is enabled; a sync would do nothing")
    for custom in config.sync.custom_entities:
        if custom.enabled:
            mapping = custom.mapping
            click.echo(f"  custom:{custom.name}: CRM source {custom.source!r} -> Daktela {custom.target}s, "
                       f"{len(mapping.mappings) if mapping else 0} rules, lookup field "
                       f"{mapping.lookup_field if mapping else '-'} ({custom.mapping_file})")


def _checked_adapter(path: Path, config: SyncConfig) -> str:
    """How ``crm.adapter`` resolves; an unknown name or an import path that fails ends the command."""
    from crmsync_pipelines.crm.registry import built_in_adapters, check_adapter_settings, resolve_adapter

    name = config.crm.adapter.strip()
    try:
        resolve_adapter(name)
        check_adapter_settings(config.crm)  # a built-in's own keys (raynet: instance_name, api_key, ...)
    except ConfigError as exc:
        error = ConfigError(exc.reason, file=display_path(path), path=exc.path)
        raise click.ClickException(f"Configuration error: {error}") from None
    return f"{name} (built-in)" if name in built_in_adapters() else f"{name} (imports)"


@click.command("config-view")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (never contains the token).")
def config_view(config_path: Path | None, as_json: bool) -> None:
    """Show the effective configuration with secrets masked."""
    path, config = load_config_or_fail(config_path)
    if as_json:
        click.echo(json.dumps(config_json(path, config), indent=2, ensure_ascii=False))
    else:
        click.echo(config_text(path, config))


def _rule_json(rule: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"cc_field": rule.cc_field, "crm_field": rule.crm_field}
    if rule.has_value:
        data["static"] = True  # the value itself is never shown: it may be a secret
    if rule.transformers:
        data["transformers"] = [t.name for t in rule.transformers]
    if rule.relation is not None:
        data["relation"] = rule.relation.model_dump()
    if rule.multi_value is not None:
        data["multi_value"] = rule.multi_value.model_dump()
    if rule.append:
        data["append"] = True
    return data


def _entity_json(entity: EntityConfig) -> dict[str, Any]:
    mapping = entity.mapping
    return {
        "enabled": entity.enabled,
        "direction": entity.direction.value,
        "mapping_file": str(entity.mapping_file) if entity.mapping_file else None,
        "activity_types": [t.value for t in entity.activity_types],
        "lookup_field": mapping.lookup_field if mapping is not None else None,
        "mappings": [_rule_json(rule) for rule in mapping.mappings] if mapping is not None else [],
    }


#: Substrings of a CRM setting's name that mark its value as a secret (masked in config-view).
_SECRET_NAME_PARTS = ("token", "secret", "password", "api_key", "apikey", "credential")


def _masked_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The CRM adapter's settings with every secret-looking value masked (nested too)."""
    from crmsync_pipelines.config import mask_secret

    def shown(key: str, value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): shown(str(k), v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [shown(key, item) for item in value]
        if value not in (None, "") and any(part in key.lower() for part in _SECRET_NAME_PARTS):
            return mask_secret(str(value))
        return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)

    return {key: shown(key, value) for key, value in settings.items()}


def _sections_json(config: SyncConfig) -> dict[str, Any]:
    """``crm`` (secrets masked), ``staging`` and ``partitions``: where data lives and how it is cut."""
    return {
        "crm": {"adapter": config.crm.adapter, **_masked_settings(config.crm.settings)},
        "staging": {"path": str(config.staging.path), "lock_timeout_s": config.staging.lock_timeout_s,
                    "keep_batches": config.staging.keep_batches},
        "partitions": {"granularity": config.partitions.granularity,
                       "start_date": config.partitions.start_date.isoformat(),
                       "timezone": config.daktela.timezone},
    }


def config_json(path: Path, config: SyncConfig) -> dict[str, Any]:
    """The JSON form of ``config-view`` (PHP SDK keys; no token, only whether a secret is set)."""
    return {
        "config_path": str(path),
        "daktela": {"instance_url": config.daktela.instance_url, "database": config.daktela.database},
        **_sections_json(config),
        "sync": {"batch_size": config.sync.batch_size},
        "webhook": {"secret_configured": bool(config.webhook.secret)},
        "entities": {
            name: _entity_json(entity)
            for name in ENTITY_ORDER
            if (entity := config.sync.entities.get(name)) is not None
        },
    }


def _rule_options(rule: Any) -> str:
    options = []
    if rule.transformers:
        options.append(" | ".join(t.name for t in rule.transformers))
    if rule.relation is not None:
        options.append(f"relation:{rule.relation.entity}")
    if rule.multi_value is not None:
        options.append(f"multi:{rule.multi_value.strategy}")
    if rule.append:
        options.append("append")
    return ", ".join(options)


def _heading(text: str) -> str:
    return click.style(text, bold=True)


def config_text(path: Path, config: SyncConfig) -> str:
    """The human form of ``config-view``; the caller's terminal decides about colour."""
    from crmsync_pipelines.config import mask_secret

    lines = [f"Config: {path}", "", _heading("Daktela")]
    lines.append(f"  URL:       {config.daktela.instance_url or '(not set)'}")
    token = config.daktela.access_token
    lines.append(f"  Token:     {mask_secret(token) if token else '(not set)'}")
    lines.append(f"  Database:  {config.daktela.database or '(default)'}")
    lines.append(f"  Time zone: {config.daktela.timezone}")
    sections = _sections_json(config)
    lines += ["", _heading("CRM")]
    lines += [f"  {key + ':':<14} {json.dumps(value) if isinstance(value, (dict, list)) else value}"
              for key, value in sections["crm"].items()]
    lines += ["", _heading("Staging (DuckDB)")]
    lines.append(f"  Path:          {config.staging.path}")
    lines.append(f"  Lock timeout:  {config.staging.lock_timeout_s:g} s")
    lines.append(f"  Keep batches:  {config.staging.keep_batches}")
    lines += ["", _heading("Partitions")]
    lines.append(f"  Granularity:   {config.partitions.granularity} (in {config.daktela.timezone})")
    lines.append(f"  Start date:    {config.partitions.start_date.isoformat()}")
    lines += ["", _heading("Sync settings")]
    lines.append(f"  Batch size:      {config.sync.batch_size}")
    secret = mask_secret(config.webhook.secret) if config.webhook.secret else "(none)"
    lines.append(f"  Webhook secret:  {secret}")
    for name in ENTITY_ORDER:
        entity = config.sync.entities.get(name)
        if entity is None:
            continue
        state = click.style("enabled", fg="green") if entity.enabled else click.style("disabled", fg="yellow")
        lines += ["", _heading(f"Entity: {name}") + f" ({state})"]
        lines.append(f"  Direction:  {_ARROWS.get(entity.direction.value, entity.direction.value)}")
        lines.append(f"  Mapping:    {entity.mapping_file or '(none)'}")
        if entity.activity_types:
            lines.append(f"  Activity types: {', '.join(t.value for t in entity.activity_types)}")
        mapping = entity.mapping
        if mapping is None:
            continue
        lines.append(f"  Lookup field: {mapping.lookup_field}")
        crm_first = entity.direction.value == "crm_to_cc"
        header = ("CRM field", "Daktela field") if crm_first else ("Daktela field", "CRM field")
        rows = []
        for rule in mapping.mappings:
            crm = "(static)" if rule.has_value else (rule.crm_field or "")
            pair = (crm, rule.cc_field) if crm_first else (rule.cc_field, crm)
            rows.append((*pair, _rule_options(rule)))
        widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
                  for i, h in enumerate((*header, "Options"))]
        lines.append("  " + "  ".join(h.ljust(w) for h, w in zip((*header, "Options"), widths, strict=True)))
        lines.append("  " + "  ".join("-" * w for w in widths))
        for row in rows:
            lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)
