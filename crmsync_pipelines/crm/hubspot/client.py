"""HubSpot HTTP client: bearer auth, pacing, retries and HubSpot's errors as crmsync errors.

* The token only ever goes into the ``Authorization`` header; no message, log line or
  ``repr`` of this module contains it.
* Search requests are paced client-side (``search_rate_per_s``, HubSpot: 4/s per token),
  because HubSpot sends no rate-limit headers on search responses; a 429 is the only signal.
* Every other response carries ``X-HubSpot-RateLimit-*`` headers (usage guidelines): when the
  rolling 10-second window has no requests left we wait for it instead of earning a 429, and
  the daily figures feed ``usage()`` and the daily reserve.
* 429 and 5xx are retried with ``Retry-After`` (or the rest of the rate window) and backoff;
  a 429 whose ``policyName`` is ``DAILY`` — or a daily budget at the reserve — raises
  ``QuotaExhaustedError`` at once (the budget returns at midnight in the account's zone).
* Writes are retried on 429 and on 5xx too: every write this adapter sends is idempotent
  (upsert by unique property, batch create guarded by the unique property).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import httpx

from crmsync_pipelines.crm.hubspot.settings import HubSpotSettings
from crmsync_pipelines.crm.urls import origin
from crmsync_pipelines.daktela.retry import RetryPolicy, parse_retry_after
from crmsync_pipelines.errors import (
    AdapterError,
    AuthError,
    ConflictError,
    QuotaExhaustedError,
    RecordValidationError,
)

log = logging.getLogger("crmsync.crm.hubspot")

_TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class SlidingWindowPacer:
    """At most ``rate_per_s`` sends in any trailing second (plus a margin for clock and network jitter).

    HubSpot counts search requests per second without telling us how many are left, so we
    mirror its window instead of a token bucket, whose bursts at window edges earn 429s.
    """

    def __init__(self, rate_per_s: float, *, margin_s: float = 0.05) -> None:
        self.limit = max(1, int(rate_per_s))
        self.window_s = self.limit / rate_per_s + margin_s
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                while self._sent and now - self._sent[0] >= self.window_s:
                    self._sent.popleft()
                if len(self._sent) < self.limit:
                    self._sent.append(now)
                    return
                wait = self.window_s - (now - self._sent[0])
            time.sleep(max(wait, 0.001))


class HubSpotApiError(AdapterError):
    """A HubSpot error response that is none of the typed cases (kept with status and category)."""

    def __init__(self, message: str, *, status: int, category: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.category = category


def describe(body: Any, status: int) -> str:
    """``HTTP 400 VALIDATION_ERROR: <message> [field: message; ...]`` from a HubSpot error body."""
    if not isinstance(body, dict):
        return f"HTTP {status}"
    parts = [f"HTTP {status}"]
    if body.get("category"):
        parts.append(str(body["category"]))
    text = " ".join(parts)
    message = str(body.get("message") or "").strip()
    details = [e for e in body.get("errors") or [] if isinstance(e, dict) and e.get("in")]
    if details:
        text += f" (fields: {', '.join(str(e['in']) for e in details)})"
    if message:
        text += f": {message}"
    missing = [f"{e['in']}: {e.get('message')}" for e in details if str(e.get("message")) not in message]
    if missing:
        text += f" [{'; '.join(missing)}]"
    return text[:1500]


def error_from_body(body: Any, status: int, *, context: str) -> AdapterError:
    """The crmsync error for one HubSpot error object (a whole response or one 207 slot)."""
    category = str(body.get("category") or "") if isinstance(body, dict) else ""
    text = f"HubSpot {context}: {describe(body, status)}"
    if status == 401 or category == "INVALID_AUTHENTICATION":
        return AuthError(f"HubSpot refused the access token ({text})")
    if status == 403 or category == "MISSING_SCOPES":
        return AuthError(f"the private app lacks a scope ({text}); see docs/crms/hubspot.md for the scope list")
    if status == 409 or category in ("CONFLICT", "OBJECT_ALREADY_EXISTS"):
        return ConflictError(text)
    if category == "VALIDATION_ERROR" or status in (400, 422):
        error = RecordValidationError(text)
        fields = [e.get("in") for e in (body.get("errors") or []) if isinstance(e, dict) and e.get("in")] \
            if isinstance(body, dict) else []
        error.fields = fields  # type: ignore[attr-defined]
        return error
    return HubSpotApiError(text, status=status, category=category or None)


@dataclass
class Usage:
    """Requests sent and HubSpot's own figures from the last rate-limit headers."""

    requests: int = 0
    search_requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    daily_limit: int | None = None
    daily_remaining: int | None = None
    by_route: dict[str, int] = field(default_factory=dict)


class HubSpotClient:
    """One ``httpx.Client`` per adapter; thread-safe."""

    def __init__(self, settings: HubSpotSettings, *, transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings
        self._http = httpx.Client(
            base_url=settings.base_url,
            headers={"Authorization": f"Bearer {settings.access_token.get_secret_value()}",
                     "Accept": "application/json", "User-Agent": "crmsync-hubspot"},
            timeout=settings.timeout_s,
            transport=transport,
        )
        self._search_pacer = SlidingWindowPacer(settings.search_rate_per_s)
        self._retry = RetryPolicy(max_retries=settings.max_retries, max_retry_after_s=settings.max_wait_s)
        self._lock = threading.Lock()
        self._window_reset_at = 0.0
        self.usage = Usage()
        self._quota_error: QuotaExhaustedError | None = None

    def __repr__(self) -> str:
        return f"HubSpotClient(base_url={self.settings.base_url!r})"

    def close(self) -> None:
        self._http.close()

    @property
    def quota_exhausted(self) -> bool:
        """True once the daily budget ran out (a ``DAILY`` 429 or the reserve reached) in this client."""
        with self._lock:
            return self._quota_error is not None

    # -- the one request loop ----------------------------------------------------------------
    def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
                context: str = "request", allow: tuple[int, ...] = ()) -> httpx.Response:
        """Send with pacing and retries; returns 2xx/207 and statuses in ``allow``, raises the rest typed."""
        search = method == "POST" and path.endswith("/search")
        attempt = 0
        while True:
            self._before_send(search)
            try:
                response = self._http.request(method, path, json=json, params=params)
            except httpx.TimeoutException as exc:
                error: Exception = AdapterError(f"HubSpot {context}: timed out after {self.settings.timeout_s} s")
                delay = self._retry.delay_s(attempt, None)
                if delay is None or attempt >= self.settings.max_retries:
                    raise error from exc
                attempt += 1
                self._count_retry()
                time.sleep(delay)
                continue
            except httpx.TransportError as exc:
                delay = self._retry.delay_s(attempt, None)
                if delay is None or attempt >= self.settings.max_retries:
                    raise AdapterError(f"HubSpot {context}: connection to {origin(self.settings.base_url)} failed "
                                       f"({type(exc).__name__}: {exc})") from exc
                attempt += 1
                self._count_retry()
                time.sleep(delay)
                continue
            self._after_receive(method, path, response, search)
            status = response.status_code
            if status < 300 or status in allow:
                return response
            body = _json_or_none(response)
            if status == 429:
                self.usage.rate_limited += 1
                policy = str(body.get("policyName") or "") if isinstance(body, dict) else ""
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                if policy == "DAILY":
                    raise self._quota(f"HubSpot daily API limit reached ({describe(body, status)})", retry_after)
                delay = self._retry.delay_s(attempt, retry_after if retry_after is not None
                                            else self._window_wait(response, search))
            elif status in _TRANSIENT_STATUSES:
                delay = self._retry.delay_s(attempt, parse_retry_after(response.headers.get("Retry-After")))
            else:
                raise error_from_body(body, status, context=context)
            if delay is None or attempt >= self.settings.max_retries:
                raise HubSpotApiError(f"HubSpot {context}: {describe(body, status)} (gave up after {attempt + 1} "
                                      "attempts)", status=status,
                                      category=body.get("category") if isinstance(body, dict) else None)
            attempt += 1
            self._count_retry()
            log.info("HubSpot %s: HTTP %s, retrying in %.2f s (attempt %d)", context, status, delay, attempt)
            time.sleep(delay)

    def _count_retry(self) -> None:
        with self._lock:
            self.usage.retries += 1

    def _quota(self, message: str, retry_after_s: float | None) -> QuotaExhaustedError:
        error = QuotaExhaustedError(message, retry_after_s=retry_after_s)
        with self._lock:
            self._quota_error = error
        return error

    def _before_send(self, search: bool) -> None:
        with self._lock:
            exhausted = self._quota_error
            remaining = self.usage.daily_remaining
            wait = self._window_reset_at - time.monotonic()
        if exhausted is not None:
            raise QuotaExhaustedError(str(exhausted), retry_after_s=exhausted.retry_after_s)
        if remaining is not None and remaining <= self.settings.daily_reserve:
            raise self._quota(f"HubSpot daily API budget is down to {remaining} requests (reserve "
                              f"{self.settings.daily_reserve}); the rest waits for the next run", None)
        if wait > 0:
            time.sleep(min(wait, self.settings.max_wait_s))
        if search:
            self._search_pacer.acquire()

    def _after_receive(self, method: str, path: str, response: httpx.Response, search: bool) -> None:
        headers = response.headers
        with self._lock:
            self.usage.requests += 1
            if search:
                self.usage.search_requests += 1
            route = f"{method} {_route_of(path)}"
            self.usage.by_route[route] = self.usage.by_route.get(route, 0) + 1
            daily, left = headers.get("X-HubSpot-RateLimit-Daily"), headers.get("X-HubSpot-RateLimit-Daily-Remaining")
            if daily is not None and daily.isdigit():
                self.usage.daily_limit = int(daily)
            if left is not None and left.lstrip("-").isdigit():
                self.usage.daily_remaining = int(left)
            remaining = headers.get("X-HubSpot-RateLimit-Remaining")
            interval = headers.get("X-HubSpot-RateLimit-Interval-Milliseconds")
            if remaining is not None and remaining.isdigit() and int(remaining) <= 0:
                window_ms = int(interval) if interval and interval.isdigit() else 10_000
                # We do not know when the window's oldest request leaves it: wait a whole window.
                self._window_reset_at = time.monotonic() + window_ms / 1000

    def _window_wait(self, response: httpx.Response, search: bool) -> float | None:
        if search:
            return 1.0 / self.settings.search_rate_per_s + 0.25
        interval = response.headers.get("X-HubSpot-RateLimit-Interval-Milliseconds")
        return int(interval) / 1000 if interval and interval.isdigit() else None

    # -- JSON helpers ------------------------------------------------------------------------
    def get_json(self, path: str, *, params: dict[str, Any] | None = None, context: str,
                 missing_ok: bool = False) -> Any:
        response = self.request("GET", path, params=params, context=context, allow=(404,) if missing_ok else ())
        if response.status_code == 404:
            return None
        return _json_or_raise(response, context)

    def post_json(self, path: str, body: Any, *, context: str) -> Any:
        return _json_or_raise(self.request("POST", path, json=body, context=context), context)


def _route_of(path: str) -> str:
    """The path with record ids replaced, for per-route counters (``/crm/v3/objects/calls/{id}``)."""
    return "/".join("{id}" if part.isdigit() else part for part in path.split("/"))


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _json_or_raise(response: httpx.Response, context: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise AdapterError(f"HubSpot {context}: HTTP {response.status_code} with a body that is not JSON") from None
