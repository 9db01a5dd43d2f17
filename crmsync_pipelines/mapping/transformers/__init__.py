"""Transformers: small functions that reshape one field value on its way between systems."""

from crmsync_pipelines.mapping.transformers.params import (
    CompiledTransformer,
    TransformerFn,
    TransformerParamError,
)
from crmsync_pipelines.mapping.transformers.registry import (
    TransformerFactory,
    TransformerRegistry,
    UnknownTransformerError,
    default_registry,
)

__all__ = [
    "CompiledTransformer",
    "TransformerFactory",
    "TransformerFn",
    "TransformerParamError",
    "TransformerRegistry",
    "UnknownTransformerError",
    "default_registry",
]
