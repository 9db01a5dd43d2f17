"""The exception hierarchy shared by every layer.

Each error that can happen to a single record carries an ``error_class`` so the engine can
file it in the failed-records table and decide whether a later run retries it by itself
(transient) or only after the data changed (validation, conflict).
"""

from __future__ import annotations

from enum import StrEnum


class ErrorClass(StrEnum):
    """Why a record failed; stored in the ledger and the failed-records table."""

    VALIDATION = "validation"
    TRANSIENT = "transient"
    AUTH = "auth"
    CONFLICT = "conflict"
    NOT_SUPPORTED = "not_supported"


class CrmsyncError(Exception):
    """Base of every error raised on purpose by crmsync."""

    error_class: ErrorClass = ErrorClass.TRANSIENT


class ConfigError(CrmsyncError):
    """A configuration or mapping file is wrong; raised before any API call.

    The message always names the file and the path inside it, so the user can fix the file
    without reading our code.
    """

    error_class = ErrorClass.VALIDATION

    def __init__(self, message: str, *, file: str | None = None, path: str | None = None) -> None:
        self.file = file
        self.path = path
        where = ": ".join(p for p in (file, path) if p)
        super().__init__(f"{where}: {message}" if where else message)
        self.reason = message


class MappingError(CrmsyncError):
    """A single record could not be mapped (for example a transformer rejected its value)."""

    error_class = ErrorClass.VALIDATION


class AdapterError(CrmsyncError):
    """An adapter (Daktela or CRM) could not complete an operation."""


class NotSupportedError(AdapterError):
    """The adapter does not support this operation (for example a read-only CRM and activities)."""

    error_class = ErrorClass.NOT_SUPPORTED


class RecordValidationError(AdapterError):
    """The target system rejected a record because of its data; retried only after it changes."""

    error_class = ErrorClass.VALIDATION


class ConflictError(AdapterError):
    """The record conflicts with another one (duplicate key, ambiguous match)."""

    error_class = ErrorClass.CONFLICT


class AuthError(AdapterError):
    """Credentials were refused; never retried automatically."""

    error_class = ErrorClass.AUTH


class QuotaExhaustedError(AdapterError):
    """A request budget of the remote system is used up (for example Raynet's daily quota).

    Transient: the engine stops writing to that system for the rest of the run, files every
    record it did not write as a ``transient`` failure, and the next run resumes them. The run
    ends *partial and resumable*, never crashed. ``retry_after_s`` is when the budget is
    expected back (``None`` when the system does not say).
    """

    error_class = ErrorClass.TRANSIENT

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class StagingBusyError(CrmsyncError):
    """Another process holds the DuckDB staging file for longer than we are willing to wait."""


def classify(exc: BaseException) -> ErrorClass:
    """The error class of any exception; unknown exceptions count as transient."""
    if isinstance(exc, CrmsyncError):
        return exc.error_class
    if isinstance(exc, (TimeoutError, ConnectionError)):
        return ErrorClass.TRANSIENT
    if isinstance(exc, (ValueError, TypeError, KeyError)):
        return ErrorClass.VALIDATION
    return ErrorClass.TRANSIENT
