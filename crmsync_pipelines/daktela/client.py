"""A synchronous, thread-safe HTTP client for the Daktela Contact Centre V6 REST API.

What it takes care of so callers do not have to: URL building (names are always
percent-encoded, ``.`` as ``%2E``), the token in the ``X-AUTH-TOKEN`` header only, the nested
filter encoding, envelope quirks (``total`` as a string, ``data`` keyed by name), typed
errors, pacing with a token bucket, and retries:

- 429 is retried for every method (the request was not processed), waiting ``Retry-After``;
- 5xx, timeouts, resets, empty and non-JSON 2xx answers are retried for GET only, waiting the
  server's ``Retry-After`` when it sent one (any status), else exponential backoff with full
  jitter. POST/PUT are never repeated here: whether that is safe depends on the operation,
  which only the adapter knows (it gets the ``Retry-After`` on the error, ``retry_after_s``).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

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
from crmsync_pipelines.daktela.filters import Filter, SortSpec, encode_fields, encode_filter, encode_sort
from crmsync_pipelines.daktela.ratelimit import AdaptiveConcurrency, TokenBucket
from crmsync_pipelines.daktela.retry import RetryPolicy, parse_retry_after

logger = logging.getLogger("crmsync.daktela")

#: Daktela refuses or clamps larger pages.
MAX_TAKE = 1000

QueryParams = list[tuple[str, str]]

_MODEL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]*(/[^/]+/[A-Za-z][A-Za-z0-9]*)?$")


@dataclass
class Page:
    """One page of a list call."""

    records: list[dict[str, Any]]
    total: int
    #: The instance time zone announced by the envelope (``_timezone``), when present.
    timezone: str | None = None


@dataclass
class CallStats:
    """Counters of HTTP requests actually sent; the engine diffs snapshots per stage."""

    requests: int = 0
    reads: int = 0
    writes: int = 0
    retries: int = 0
    rate_limited: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count_request(self, method: str) -> None:
        with self._lock:
            self.requests += 1
            if method == "GET":
                self.reads += 1
            else:
                self.writes += 1

    def count_retry(self, *, rate_limited: bool) -> None:
        with self._lock:
            self.retries += 1
            if rate_limited:
                self.rate_limited += 1

    def count_rate_limited(self) -> None:
        with self._lock:
            self.rate_limited += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {
                "requests": self.requests,
                "reads": self.reads,
                "writes": self.writes,
                "retries": self.retries,
                "rate_limited": self.rate_limited,
            }


def normalize_instance_url(instance_url: str) -> str:
    """``acme.daktela.com`` -> ``https://acme.daktela.com``; trailing slashes and ``/api/v6`` dropped."""
    url = instance_url.strip()
    if not url:
        raise ValueError("Daktela instance_url is empty")
    if "://" not in url:
        url = "https://" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"Daktela instance_url must be an http(s) URL, got scheme {parts.scheme!r}")
    path = parts.path.rstrip("/")
    if path.endswith("/api/v6"):
        path = path[: -len("/api/v6")]
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    return f"{parts.scheme}://{host}{path}"


def quote_name(name: str | int) -> str:
    """Percent-encode a record name for a path segment; ``.`` too, or the router eats it."""
    return quote(str(name), safe="").replace(".", "%2E")


def _check_model(model: str) -> None:
    if not _MODEL_RE.match(model):
        raise ValueError(f"invalid Daktela model name {model!r}")


def _flatten_form(form: Any, prefix: str = "") -> list[str]:
    """``{"customFields": {"email": ["bad"]}}`` -> ``["customFields.email: bad"]``."""
    if isinstance(form, dict):
        out: list[str] = []
        for key, value in form.items():
            out.extend(_flatten_form(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(form, list):
        return [m for item in form for m in _flatten_form(item, prefix)]
    text = str(form)
    return [f"{prefix}: {text}" if prefix else text]


def parse_error_field(error: Any) -> tuple[dict[str, Any], list[str]]:
    """Split Daktela's polymorphic ``error`` into (form field errors, flat messages)."""
    if error is None or error == [] or error == {}:
        return {}, []
    if isinstance(error, str):
        return {}, [error]
    if isinstance(error, list):
        return {}, [m for item in error for m in _flatten_form(item)]
    if isinstance(error, dict):
        form = error.get("form")
        form_dict = form if isinstance(form, dict) else {}
        messages = _flatten_form(form_dict)
        for key, value in error.items():
            if key != "form":
                messages.extend(_flatten_form(value))
        return form_dict, messages
    return {}, [str(error)]


class DaktelaClient:
    """One instance, one token; safe to share between threads (writes run from a pool)."""

    def __init__(
        self,
        instance_url: str,
        access_token: str,
        *,
        timeout_s: float = 30.0,
        max_retries: int = 5,
        rate_limit_per_s: float | None = 20.0,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        max_retry_after_s: float = 120.0,
        transport: httpx.BaseTransport | None = None,
        write_concurrency: AdaptiveConcurrency | None = None,
    ) -> None:
        if not access_token:
            raise ValueError("Daktela access_token is empty")
        self.instance_url = normalize_instance_url(instance_url)
        self.base_url = f"{self.instance_url}/api/v6/"
        self.timeout_s = timeout_s
        self.retry = RetryPolicy(
            max_retries=max_retries,
            backoff_base_s=backoff_base_s,
            backoff_max_s=backoff_max_s,
            max_retry_after_s=max_retry_after_s,
        )
        self._limiter = TokenBucket(rate_limit_per_s) if rate_limit_per_s else None
        #: Writes (POST/PUT/DELETE) in flight, adapted to the server (AIMD); None: unbounded here.
        self.write_concurrency = write_concurrency
        self._slot = threading.local()
        self._token = access_token
        self._stats = CallStats()
        self._token_accepted = False
        # Every writer keeps its connection alive: with httpx's default of 20 kept-alive
        # connections, writers beyond 20 would open a new TCP connection per request.
        pooled = max(20, (write_concurrency.maximum if write_concurrency is not None else 0) + 4)
        self._transport = transport
        # Built once and shared by every client of this instance: building one costs tens of
        # milliseconds of CPU (the CA bundle is parsed), and writer threads each get a client.
        self._ssl_context = httpx.create_ssl_context(trust_env=True)
        self._http = self._new_http(httpx.Limits(max_connections=max(100, pooled), max_keepalive_connections=pooled))
        #: Per-thread clients of the writer threads (``bind_thread_connection``), closed with this one.
        self._thread_http: list[httpx.Client] = []
        self._thread_http_lock = threading.Lock()

    def _new_http(self, limits: httpx.Limits) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url,
            headers={"X-AUTH-TOKEN": self._token, "Accept": "application/json"},
            timeout=self.timeout_s,
            transport=self._transport,
            follow_redirects=False,
            limits=limits,
            verify=self._ssl_context,
        )

    def bind_thread_connection(self) -> None:
        """Give the calling long-lived thread (a writer of the adapter's pool) its own keep-alive
        connection for its requests.

        Why: every request through one shared ``httpx.Client`` takes its connection pool's lock
        twice (checkout, release) and checks each idle connection's socket; with 8–32 writers
        that lock is contended on every write. A writer sends one request at a time, so one
        connection of its own is all it needs. Each bound client is closed by :meth:`close`.
        Bind only threads that live as long as the client (a pool's threads), not per-call
        threads. A no-op when a test injected its own ``transport`` (it is shared as given).
        """
        if self._transport is not None or getattr(self._slot, "http", None) is not None:
            return
        http = self._new_http(httpx.Limits(max_connections=2, max_keepalive_connections=1))
        with self._thread_http_lock:
            self._thread_http.append(http)
        self._slot.http = http

    def __repr__(self) -> str:
        return f"DaktelaClient({self.instance_url!r})"

    @property
    def max_retries(self) -> int:
        return self.retry.max_retries

    @property
    def stats(self) -> CallStats:
        return self._stats

    @property
    def token_accepted(self) -> bool:
        """Whether any request of this client got a 2xx answer, i.e. the token worked once.

        A 401/403 after that means the token was revoked (or lost rights) mid-run; before it,
        the configured token is simply wrong.
        """
        return self._token_accepted

    # -- public API ---------------------------------------------------------------------------
    def list(
        self,
        model: str,
        *,
        filters: Filter | Sequence[Filter] | None = None,
        sort: SortSpec | None = None,
        skip: int = 0,
        take: int = MAX_TAKE,
        fields: Sequence[str] | None = None,
        q: str | None = None,
    ) -> Page:
        """One page of ``model``; ``total`` counts every match, ignoring skip/take."""
        _check_model(model)
        if not 1 <= take <= MAX_TAKE:
            raise ValueError(f"take must be between 1 and {MAX_TAKE}, got {take}")
        if skip < 0:
            raise ValueError(f"skip must be >= 0, got {skip}")
        params = encode_filter(filters) + encode_sort(sort) + encode_fields(fields)
        params += [("skip", str(skip)), ("take", str(take))]
        if q:
            params.append(("q", q))
        try:
            envelope = self._request("GET", f"{model}.json", params=params)
        except DaktelaNotFoundError as exc:
            raise DaktelaNotFoundError(
                f"Daktela {self.instance_url}: unknown model {model!r} (GET {exc.path} answered 404)",
                instance=exc.instance,
                method=exc.method,
                path=exc.path,
                status=404,
            ) from None
        return self._parse_page(envelope, model, skip)

    def get(self, model: str, name: str | int, fields: Sequence[str] | None = None) -> dict[str, Any]:
        """One record by name; ``DaktelaNotFoundError`` when it does not exist."""
        _check_model(model)
        envelope = self._request("GET", f"{model}/{quote_name(name)}.json", params=encode_fields(fields))
        return self._single_result(envelope, "GET", model)

    def create(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST; returns the stored record (with the server-generated ``name``)."""
        _check_model(model)
        envelope = self._request("POST", f"{model}.json", json=body)
        return self._single_result(envelope, "POST", model)

    def update(self, model: str, name: str | int, body: dict[str, Any]) -> dict[str, Any]:
        """PUT (partial at the top level); returns the stored record."""
        _check_model(model)
        envelope = self._request("PUT", f"{model}/{quote_name(name)}.json", json=body)
        return self._single_result(envelope, "PUT", model)

    def delete(self, model: str, name: str | int) -> None:
        _check_model(model)
        self._request("DELETE", f"{model}/{quote_name(name)}.json")

    def whoim(self) -> dict[str, Any]:
        """The authenticated user (the official connectors' health check)."""
        envelope = self._request("GET", "whoim.json")
        result = (envelope or {}).get("result")
        return result if isinstance(result, dict) else {}

    def close(self) -> None:
        with self._thread_http_lock:
            bound, self._thread_http = self._thread_http, []
        for http in bound:
            http.close()
        self._http.close()

    def __enter__(self) -> DaktelaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- envelopes ------------------------------------------------------------------------------
    def _parse_page(self, envelope: dict[str, Any] | None, model: str, skip: int) -> Page:
        route = f"GET /api/v6/{model}.json"
        if envelope is None:
            raise self._protocol_error("GET", f"/api/v6/{model}.json", f"{route} returned an empty body")
        result = envelope.get("result")
        if not isinstance(result, dict):
            raise self._protocol_error("GET", f"/api/v6/{model}.json", f"{route} returned no result object")
        data = result.get("data", [])
        if isinstance(data, dict):
            records = [r for r in data.values() if isinstance(r, dict)]
        elif isinstance(data, list):
            records = [r for r in data if isinstance(r, dict)]
        elif data is None:
            records = []
        else:
            raise self._protocol_error("GET", f"/api/v6/{model}.json", f"{route} returned data of an unknown shape")
        raw_total = result.get("total")
        try:
            total = int(raw_total) if raw_total is not None else skip + len(records)
        except (TypeError, ValueError):
            total = skip + len(records)
        tz = envelope.get("_timezone")
        return Page(records=records, total=total, timezone=tz if isinstance(tz, str) and tz else None)

    def _single_result(self, envelope: dict[str, Any] | None, method: str, model: str) -> dict[str, Any]:
        result = (envelope or {}).get("result")
        if not isinstance(result, dict):
            path = f"/api/v6/{model}"
            raise self._protocol_error(method, path, f"{method} {path}/... returned no record in 'result'")
        return result

    # -- transport ------------------------------------------------------------------------------
    def _redact(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    def _protocol_error(self, method: str, path: str, message: str) -> DaktelaProtocolError:
        return DaktelaProtocolError(
            self._redact(f"Daktela {self.instance_url}: {message}"),
            instance=self.instance_url,
            method=method,
            path=path,
        )

    def _request(
        self,
        method: str,
        relative_path: str,
        *,
        params: QueryParams | None = None,
        json: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """Send with pacing and retries; returns the decoded envelope (``None`` for empty bodies)."""
        path = f"/api/v6/{relative_path}"
        attempt = 0
        gate = self.write_concurrency if method != "GET" and not getattr(self._slot, "held", False) else None
        while True:
            if gate is not None:
                gate.acquire()
            if self._limiter is not None:
                self._limiter.acquire()
            self._stats.count_request(method)
            started = time.monotonic()
            error: DaktelaError
            try:
                response = self._send(method, relative_path, params, json, gate, started)
            except httpx.TimeoutException:
                error = DaktelaTransportError(
                    f"Daktela {self.instance_url}: {method} {path} timed out after {self.timeout_s:g}s",
                    instance=self.instance_url,
                    method=method,
                    path=path,
                )
            except httpx.TransportError as exc:
                error = DaktelaTransportError(
                    self._redact(f"Daktela {self.instance_url}: {method} {path} failed: {type(exc).__name__}: {exc}"),
                    instance=self.instance_url,
                    method=method,
                    path=path,
                )
            else:
                elapsed_ms = (time.monotonic() - started) * 1000
                logger.debug("%s %s -> %s (%.0f ms)", method, path, response.status_code, elapsed_ms)
                if response.status_code == 429:
                    wait = self._rate_limit_wait(response, method, path, attempt)
                    self._stats.count_retry(rate_limited=True)
                    logger.info("%s %s rate limited (429); retrying in %.2fs", method, path, wait)
                    time.sleep(wait)
                    attempt += 1
                    continue
                if 200 <= response.status_code < 300:
                    self._token_accepted = True
                try:
                    return self._decode(response, method, path)
                except (DaktelaServerError, DaktelaProtocolError) as exc:
                    error = exc
            if method != "GET" or attempt >= self.retry.max_retries:
                raise error
            delay = self.retry.delay_s(attempt, error.retry_after_s)
            if delay is None:
                logger.info("%s %s failed (%s) and asks to wait %.0fs (more than max_retry_after_s=%g); "
                            "not retrying", method, path, type(error).__name__, error.retry_after_s,
                            self.retry.max_retry_after_s)
                raise error
            self._stats.count_retry(rate_limited=False)
            logger.info("%s %s failed (%s); retry %d in %.2fs", method, path, type(error).__name__, attempt + 1, delay)
            time.sleep(delay)
            attempt += 1

    @contextmanager
    def write_slot(self) -> Iterator[None]:
        """Hold one adaptive write slot around several requests of one write (a create with its
        landed-lookup and re-POST): the caller decides to send only once it has the slot, and
        the requests inside do not take another. Without adaptive concurrency: a no-op."""
        gate = self.write_concurrency
        if gate is None or getattr(self._slot, "held", False):
            yield
            return
        gate.acquire()
        self._slot.held, self._slot.latency_s = True, None
        try:
            yield
        finally:
            self._slot.held = False
            gate.release(self._slot.latency_s, overloaded=False)

    def _send(self, method: str, relative_path: str, params: QueryParams | None, json: dict[str, Any] | None,
              gate: AdaptiveConcurrency | None, started: float) -> httpx.Response:
        """One HTTP exchange. For a write, what the answer says about the server's load goes to
        the adaptive concurrency (429, 5xx, ``Retry-After``, no answer: overloaded) — with the
        slot's release, or at once when the write holds its slot (``write_slot``)."""
        held = method != "GET" and getattr(self._slot, "held", False)
        http: httpx.Client = getattr(self._slot, "http", None) or self._http
        if gate is None and not held:
            return http.request(method, relative_path, params=tuple(params or ()), json=json)
        adaptive = self.write_concurrency
        assert adaptive is not None
        try:
            response = http.request(method, relative_path, params=tuple(params or ()), json=json)
        except httpx.TransportError:
            if gate is not None:
                gate.release(None, overloaded=True)
            else:
                adaptive.signal_overload()
            raise
        except BaseException:
            if gate is not None:
                gate.release(None, overloaded=False)
            raise
        status = response.status_code
        overloaded = status == 429 or status >= 500 or "Retry-After" in response.headers
        latency_s = time.monotonic() - started
        if gate is not None:
            gate.release(latency_s, overloaded=overloaded)
        elif overloaded:
            adaptive.signal_overload()
        else:
            self._slot.latency_s = latency_s
        return response

    def _rate_limit_wait(self, response: httpx.Response, method: str, path: str, attempt: int) -> float:
        """How long to wait after a 429, or raise when the budget (count or wait) is exhausted."""
        wait = parse_retry_after(response.headers.get("Retry-After"))
        if attempt >= self.retry.max_retries or (wait is not None and wait > self.retry.max_retry_after_s):
            self._stats.count_rate_limited()
            reason = (
                f"asked to wait {wait:.0f}s (more than max_retry_after_s={self.retry.max_retry_after_s:g})"
                if wait is not None and wait > self.retry.max_retry_after_s
                else f"still rate limited after {attempt} retries"
            )
            raise DaktelaRateLimitError(
                f"Daktela {self.instance_url}: {method} {path} rate limited (HTTP 429): {reason}",
                retry_after_s=wait,
                instance=self.instance_url,
                method=method,
                path=path,
                status=429,
            )
        return wait if wait is not None else max(self.retry.backoff_s(attempt), 0.1)

    def _decode(self, response: httpx.Response, method: str, path: str) -> dict[str, Any] | None:
        status = response.status_code
        if 200 <= status < 300:
            if not response.content.strip():
                if method == "DELETE":
                    return None
                # Every Daktela answer but DELETE's carries an envelope: an empty 2xx is a
                # protocol error (a GET is retried; a write goes to the adapter's "did it land?").
                raise self._protocol_error(method, path, f"{method} {path} returned HTTP {status} with an empty body")
            try:
                data = response.json()
            except ValueError:
                raise self._protocol_error(
                    method, path, f"{method} {path} returned HTTP {status} with a body that is not JSON"
                ) from None
            if not isinstance(data, dict):
                raise self._protocol_error(method, path, f"{method} {path} returned JSON that is not an envelope")
            if method == "GET" and not isinstance(data.get("result"), dict):
                # Checked here, inside the retry loop: a read without its result object is retried.
                raise self._protocol_error(method, path, f"{method} {path} returned no result object")
            return data
        try:
            body = response.json()
        except ValueError:
            body = None
        form, messages = parse_error_field(body.get("error") if isinstance(body, dict) else None)
        detail = "; ".join(messages)[:500]
        where = f"Daktela {self.instance_url}: {method} {path} -> HTTP {status}"
        message = self._redact(f"{where}: {detail}" if detail else where)
        common: dict[str, Any] = {
            "instance": self.instance_url,
            "method": method,
            "path": path,
            "status": status,
            "retry_after_s": parse_retry_after(response.headers.get("Retry-After")),
        }
        if status in (401, 403):
            what = "access token refused" if status == 401 else "access token lacks rights for this route"
            raise DaktelaAuthError(f"{where} ({what})", **common)
        if status == 404:
            raise DaktelaNotFoundError(message, **common)
        if status == 409:
            raise DaktelaConflictError(message, **common)
        if status == 408 or status >= 500:
            raise DaktelaServerError(message, **common)
        raise DaktelaValidationError(message, form=form, messages=messages, **common)
