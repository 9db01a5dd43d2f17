"""HTTP client for the Raynet CRM REST API v2: auth, retries, the daily budget, error mapping.

Rules it implements (Raynet API v2 description, see docs/crms/raynet.md for sources):

* HTTP Basic ``login:apiKey`` plus ``X-Instance-Name`` on every request.
* Every response carries ``X-Ratelimit-Limit``/``-Remaining``/``-Reset`` (unix seconds, the
  next UTC midnight). The client tracks them; when the budget is spent (a 429
  ``RequestLimitReached``, the older 503 form, or ``Remaining`` at the configured reserve)
  it raises ``QuotaExhaustedError`` and sends nothing more until the reset: sleeping until
  midnight or retrying in a loop would only burn the next day's budget.
* A 429 with a ``Retry-After`` (not documented by Raynet, sent by proxies and our simulator's
  burst limiter) is honoured up to ``max_retry_after_s``.
* 401/403 are ``AuthError`` and never retried: Raynet blocks the IP address for 60 minutes
  after 20 failed logins, so after the first refusal the client refuses to send again.
* Network errors and 502/503/504 are retried with jittered backoff; a 500 is not retried:
  Raynet answers business and validation errors with 500 (``TranslatedApplicationException:
  <key>``, ``IllegalArgumentException``, ``AttributeAccessDeniedException``), which are
  permanent for that payload.

The API key only ever lives in the ``httpx`` auth object; errors and logs name the user and
instance, never the key.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from crmsync_pipelines.crm.raynet.settings import RaynetSettings
from crmsync_pipelines.crm.urls import origin
from crmsync_pipelines.daktela.retry import RetryPolicy, parse_retry_after
from crmsync_pipelines.errors import (
    AdapterError,
    AuthError,
    ConflictError,
    QuotaExhaustedError,
    RecordValidationError,
)

LOG = logging.getLogger("crmsync.crm.raynet")

_RETRY_STATUSES = frozenset({502, 503, 504})
_BUSINESS_PREFIXES = ("TranslatedApplicationException", "IllegalArgumentException", "AttributeAccessDenied")
_DUPLICATE_KEYS = ("exception.duplicateKey", "exception.duplicateExtId")
_QUOTED_FIELD = re.compile(r"['\"‘’„“]([A-Za-z_][\w.\-]*)['\"‘’“”]")


class RaynetValidationError(RecordValidationError):
    """Raynet (or our pre-flight check) rejected a record's data; ``field`` names the attribute when known."""

    def __init__(self, message: str, *, field: str | None = None, by_raynet: bool = False) -> None:
        super().__init__(f"field {field!r}: {message}" if field else message)
        self.field = field
        #: True when Raynet answered the refusal (False: our pre-flight check, no request spent).
        self.by_raynet = by_raynet


@dataclass(frozen=True)
class Budget:
    """The daily request budget as the last response reported it."""

    limit: int
    remaining: int | None
    reset_at: datetime | None


class RaynetClient:
    """One client per adapter; thread-safe counters, one pooled ``httpx.Client``."""

    def __init__(
        self,
        settings: RaynetSettings,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self._sleep = sleep
        self._clock = clock
        self._policy = RetryPolicy(max_retries=settings.max_retries, backoff_base_s=0.2, backoff_max_s=5.0,
                                   max_retry_after_s=settings.max_retry_after_s)
        self._http = httpx.Client(
            base_url=settings.base_url,
            auth=httpx.BasicAuth(settings.username, settings.api_key.get_secret_value()),
            headers={"X-Instance-Name": settings.instance_name, "Accept": "application/json"},
            timeout=settings.timeout_s,
            transport=transport,
        )
        self._lock = threading.Lock()
        self.requests_sent = 0
        self._limit = settings.daily_budget
        self._remaining: int | None = None
        self._reset_at: datetime | None = None
        self._exhausted = False
        self._auth_refused: str | None = None

    # -- budget ---------------------------------------------------------------------------------
    def now(self) -> datetime:
        return self._clock()

    @property
    def where(self) -> str:
        return f"Raynet instance {self.settings.instance_name!r} (user {self.settings.username})"

    def budget(self) -> Budget:
        with self._lock:
            return Budget(self._limit, self._remaining, self._reset_at)

    @property
    def quota_exhausted(self) -> bool:
        with self._lock:
            return self._exhausted and not self._reset_passed()

    def _reset_passed(self) -> bool:
        return self._reset_at is not None and self._clock() >= self._reset_at

    def _seconds_to_reset(self) -> float | None:
        if self._reset_at is None:
            return None
        return max(0.0, (self._reset_at - self._clock()).total_seconds())

    def _check_budget(self) -> None:
        with self._lock:
            if self._exhausted and self._reset_passed():
                self._exhausted, self._remaining = False, None
            reserve = self.settings.budget_reserve
            if not self._exhausted and self._remaining is not None and self._remaining <= reserve:
                self._exhausted = True
            if self._exhausted:
                wait = self._seconds_to_reset()
                left = self._remaining if self._remaining is not None else 0
                kept = f"; {left} left are kept as crm.budget_reserve ({reserve})" if left > 0 else ""
                raise QuotaExhaustedError(
                    f"{self.where}: daily API budget of {self._limit} requests is used up{kept}; "
                    f"it resets at {self._reset_text()}",
                    retry_after_s=wait,
                )

    def _reset_text(self) -> str:
        return self._reset_at.isoformat() if self._reset_at else "the next UTC midnight"

    def _note_headers(self, headers: httpx.Headers) -> None:
        limit = _int(headers.get("X-Ratelimit-Limit"))
        remaining = _int(headers.get("X-Ratelimit-Remaining"))
        reset = _int(headers.get("X-Ratelimit-Reset"))
        with self._lock:
            if limit is not None:
                self._limit = limit
            if remaining is not None:
                self._remaining = remaining
            if reset is not None:
                self._reset_at = datetime.fromtimestamp(reset, UTC)

    def _mark_exhausted(self, message: str) -> QuotaExhaustedError:
        with self._lock:
            self._exhausted = True
            self._remaining = 0
            wait = self._seconds_to_reset()
        return QuotaExhaustedError(f"{self.where}: {message}; it resets at {self._reset_text()}", retry_after_s=wait)

    # -- requests -------------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        not_found_ok: bool = False,
    ) -> dict[str, Any] | None:
        """The decoded JSON body of a 2xx answer (``{}`` when empty); ``None`` for a 404 when ``not_found_ok``.

        Raises ``AuthError``, ``QuotaExhaustedError``, ``ConflictError`` (duplicate key),
        ``RaynetValidationError`` (400 and business 500s) or ``AdapterError`` (outages, after retries).
        """
        if self._auth_refused is not None:
            raise AuthError(self._auth_refused)
        attempt = 0
        while True:
            self._check_budget()
            try:
                with self._lock:
                    self.requests_sent += 1
                response = self._http.request(method, path, params=params, json=json)
            except httpx.TransportError as exc:
                delay = self._policy.delay_s(attempt, None) if attempt < self._policy.max_retries else None
                if delay is None:
                    raise AdapterError(f"{self.where}: {method} {path} at {origin(self.settings.base_url)} failed: "
                                       f"{type(exc).__name__} ({exc})") from None
                attempt += 1
                self._sleep(delay)
                continue
            self._note_headers(response.headers)
            status = response.status_code
            body = _json(response)
            if status in (401, 403):
                self._auth_refused = (
                    f"{self.where} refused the credentials (HTTP {status}: {_message(body) or 'unauthorized'}); "
                    "check crm.username, crm.api_key and crm.instance_name. Not retried: Raynet blocks the "
                    "IP address for 60 minutes after 20 failed logins."
                )
                raise AuthError(self._auth_refused)
            if _is_quota(status, body):
                raise self._mark_exhausted(f"daily API request limit reached (HTTP {status})")
            if status == 429 or status in _RETRY_STATUSES:
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                delay = self._policy.delay_s(attempt, retry_after) if attempt < self._policy.max_retries else None
                if delay is None:
                    if status == 429:
                        raise self._mark_exhausted(
                            f"rate limited (HTTP 429, Retry-After {response.headers.get('Retry-After') or 'absent'})"
                        )
                    raise AdapterError(f"{self.where}: {method} {path} answered HTTP {status} after retries")
                attempt += 1
                LOG.info("raynet: %s %s answered %d; retrying in %.1fs", method, path, status, delay)
                self._sleep(delay)
                continue
            if status == 404 and not_found_ok:
                return None
            if 200 <= status < 300:
                if isinstance(body, dict) and str(body.get("success", "true")).lower() == "false":
                    raise AdapterError(f"{self.where}: {method} {path} answered success=false: {_message(body)}")
                return body if isinstance(body, dict) else {}
            raise _error_for(status, body, method, path, self.where)

    def close(self) -> None:
        self._http.close()


def _int(value: str | None) -> int | None:
    try:
        return int(float(value)) if value is not None and value.strip() else None
    except ValueError:
        return None


def _json(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def _message(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    message = str(body.get("message") or "")
    translated = str(body.get("translatedMessage") or "")
    return f"{message} ({translated})" if translated and translated != message else message


def _is_quota(status: int, body: Any) -> bool:
    return status in (429, 503) and isinstance(body, dict) and body.get("type") == "RequestLimitReached"


def _error_for(status: int, body: Any, method: str, path: str, where: str) -> Exception:
    """The crmsync error class of a refused request (Raynet API v2 error shapes)."""
    message = _message(body) or f"HTTP {status}"
    raw = str(body.get("message") or "") if isinstance(body, dict) else ""
    translated = str(body.get("translatedMessage") or "") if isinstance(body, dict) else ""
    text = f"{where}: {method} {path} refused (HTTP {status}): {message}"
    if any(key in raw for key in _DUPLICATE_KEYS):
        return ConflictError(text)
    if status == 400 or (status == 500 and raw.startswith(_BUSINESS_PREFIXES)):
        found = _QUOTED_FIELD.search(translated) or _QUOTED_FIELD.search(raw)
        return RaynetValidationError(text, field=found.group(1) if found else None, by_raynet=True)
    if status == 404:
        return ConflictError(f"{text} (the record does not exist)")
    if status == 405:
        return AdapterError(f"{text} (wrong HTTP verb: Raynet creates with PUT and updates with POST)")
    return AdapterError(text)
