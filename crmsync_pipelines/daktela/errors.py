"""Typed errors of the Daktela client.

Each class also inherits the shared crmsync error it corresponds to, so ``classify()`` files
a failed record under the right error class (auth, validation, transient) without knowing
anything about Daktela. Messages name the instance and the route, never the access token.
"""

from __future__ import annotations

from typing import Any

from crmsync_pipelines.errors import AdapterError, AuthError, ConflictError, RecordValidationError


class DaktelaError(AdapterError):
    """Base of every error raised by the Daktela client (transient unless a subclass says otherwise)."""

    def __init__(
        self,
        message: str,
        *,
        instance: str = "",
        method: str = "",
        path: str = "",
        status: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        self.instance = instance
        self.method = method
        self.path = path
        self.status = status
        #: Seconds the server asked us to wait (``Retry-After``), when it said so.
        self.retry_after_s = retry_after_s
        super().__init__(message)


class DaktelaAuthError(DaktelaError, AuthError):
    """401/403: the token was refused or lacks rights; retrying cannot help."""


class DaktelaValidationError(DaktelaError, RecordValidationError):
    """400/422 (and other 4xx): Daktela rejected the request because of its data.

    ``form`` keeps the structured per-field errors exactly as Daktela sent them (including the
    nested ``customFields`` map) so callers can report which field failed without matching
    localised message text; ``messages`` holds the flattened, human-readable list.
    """

    def __init__(
        self,
        message: str,
        *,
        form: dict[str, Any] | None = None,
        messages: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        self.form: dict[str, Any] = form or {}
        self.messages: list[str] = messages or []
        super().__init__(message, **kwargs)


class DaktelaConflictError(DaktelaError, ConflictError):
    """409: the write conflicts with the current state of the record."""


class DaktelaNotFoundError(DaktelaError):
    """404: the record (or, on a list route, the model itself) does not exist."""

    error_class = RecordValidationError.error_class


class DaktelaRateLimitError(DaktelaError):
    """429 that outlasted the retry budget (or asked for a longer wait than we accept)."""


class DaktelaServerError(DaktelaError):
    """5xx (or 408) from the instance; ``retry_after_s`` holds its ``Retry-After``, if any."""


class DaktelaTransportError(DaktelaError):
    """The request never got an HTTP answer: timeout, refused or reset connection."""


class DaktelaProtocolError(DaktelaError):
    """A 2xx answer that is not a Daktela envelope (empty body, HTML from a proxy, truncated JSON...)."""


#: Errors after which a request may be repeated without changing its meaning (for GET and PUT).
TRANSIENT_ERRORS: tuple[type[DaktelaError], ...] = (
    DaktelaServerError,
    DaktelaTransportError,
    DaktelaProtocolError,
)
