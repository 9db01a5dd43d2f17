"""Loading and validating mapping files.

Everything the PHP SDK only found out per record (unknown transformers) or never (a
``lookup_field`` nothing writes, relations to entities that cannot be resolved) is a
``ConfigError`` here, naming the file and the path inside it, before any API call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from crmsync_pipelines.config.interpolation import interpolate
from crmsync_pipelines.config.validation_errors import config_error_from_validation
from crmsync_pipelines.config.yaml_file import display_path, read_yaml_mapping
from crmsync_pipelines.errors import ConfigError
from crmsync_pipelines.mapping.models import ENTITY_DIRECTIONS, RELATION_ENTITIES, Mapping
from crmsync_pipelines.mapping.plan import compile_plan
from crmsync_pipelines.mapping.transformers import TransformerRegistry, default_registry


def load_mapping(path: str | Path, registry: TransformerRegistry | None = None) -> Mapping:
    """Read, interpolate (``${VAR}``) and validate one mapping file.

    Transformer names, params and callbacks are checked against ``registry`` (the
    process-wide default registry when None).
    """
    file_path = Path(path)
    shown = display_path(file_path)
    raw = read_yaml_mapping(file_path, kind="mapping file")
    data = interpolate(raw, file=shown)
    return mapping_from_dict(data, file=shown, source_path=file_path.resolve(), registry=registry)


def mapping_from_dict(
    data: dict[str, Any],
    *,
    file: str = "<mapping>",
    source_path: Path | None = None,
    registry: TransformerRegistry | None = None,
) -> Mapping:
    """Validate an already-parsed (and interpolated) mapping document."""
    try:
        mapping = Mapping.model_validate({**data, "source_path": source_path})
    except ValidationError as exc:
        raise config_error_from_validation(exc, file=file, model=Mapping) from None
    validate_mapping(mapping, file=file, registry=registry)
    return mapping


def validate_mapping(mapping: Mapping, *, file: str, registry: TransformerRegistry | None = None) -> None:
    """The semantic checks pydantic cannot express; raises ``ConfigError``."""
    if mapping.entity not in ENTITY_DIRECTIONS:
        raise ConfigError(
            f"unknown entity {mapping.entity!r}; allowed: {', '.join(ENTITY_DIRECTIONS)}",
            file=file,
            path="entity",
        )
    direction = mapping.direction
    if not mapping.mappings:
        raise ConfigError("a mapping needs at least one rule", file=file, path="mappings")
    for index, rule in enumerate(mapping.mappings):
        if rule.relation is not None and rule.relation.entity not in RELATION_ENTITIES:
            raise ConfigError(
                f"relation to unknown entity {rule.relation.entity!r} (known: {', '.join(RELATION_ENTITIES)})",
                file=file,
                path=f"mappings[{index}].relation.entity",
            )
    written = mapping.target_fields(direction)
    if mapping.lookup_field not in written:
        side = "cc_field" if direction == "crm_to_cc" else "crm_field"
        raise ConfigError(
            f"lookup_field {mapping.lookup_field!r} is not written by any rule; a {mapping.entity} mapping "
            f"is used {direction}, so the lookup field must be the {side} of a rule "
            f"(written: {', '.join(written) or 'none'})",
            file=file,
            path="lookup_field",
        )
    compile_plan(mapping, direction, registry if registry is not None else default_registry())
