"""The Daktela Contact Centre V6 side of crmsync: HTTP client, adapter, normalization."""

from crmsync_pipelines.daktela.adapter import DaktelaAdapter, WriteOp, WriteResult
from crmsync_pipelines.daktela.client import CallStats, DaktelaClient, Page
from crmsync_pipelines.daktela.errors import (
    DaktelaAuthError,
    DaktelaConflictError,
    DaktelaError,
    DaktelaNotFoundError,
    DaktelaProtocolError,
    DaktelaRateLimitError,
    DaktelaServerError,
    DaktelaTransportError,
    DaktelaValidationError,
)
from crmsync_pipelines.daktela.filters import And, F, Or

__all__ = [
    "And",
    "CallStats",
    "DaktelaAdapter",
    "DaktelaAuthError",
    "DaktelaClient",
    "DaktelaConflictError",
    "DaktelaError",
    "DaktelaNotFoundError",
    "DaktelaProtocolError",
    "DaktelaRateLimitError",
    "DaktelaServerError",
    "DaktelaTransportError",
    "DaktelaValidationError",
    "F",
    "Or",
    "Page",
    "WriteOp",
    "WriteResult",
]
