"""The mapping engine: YAML field mappings between CRM records and Daktela payloads.

Framework-free and PHP-SDK compatible; see ``docs/mappings.md``.
"""

from crmsync_pipelines.mapping.errors import RecordMappingError
from crmsync_pipelines.mapping.instance import INSTANCE
from crmsync_pipelines.mapping.loader import load_mapping, mapping_from_dict
from crmsync_pipelines.mapping.mapper import FieldMapper, read_field, write_field
from crmsync_pipelines.mapping.models import (
    Direction,
    Mapping,
    MappingRule,
    MultiValue,
    Relation,
    TransformerSpec,
    direction_for_entity,
)
from crmsync_pipelines.mapping.refusals import Refusal, RefusedValueError
from crmsync_pipelines.mapping.transformers import (
    TransformerParamError,
    TransformerRegistry,
    UnknownTransformerError,
    default_registry,
)

__all__ = [
    "INSTANCE",
    "Direction",
    "FieldMapper",
    "Mapping",
    "MappingRule",
    "MultiValue",
    "RecordMappingError",
    "Refusal",
    "RefusedValueError",
    "Relation",
    "TransformerParamError",
    "TransformerRegistry",
    "TransformerSpec",
    "UnknownTransformerError",
    "default_registry",
    "direction_for_entity",
    "load_mapping",
    "mapping_from_dict",
    "read_field",
    "write_field",
]
