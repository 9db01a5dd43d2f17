"""The webhook receiver: authenticate, validate, store durably, answer 202. Nothing more.

Syncing inside the request (as the PHP SDK does) ties Daktela's automation to the CRM's
latency and loses the event when the sync crashes (W19). Here the request only commits the
event to the inbox; the Dagster sensor turns inbox events into sync runs.

Hostile bodies are bounded by ``BodyLimits`` (``limits.py``); bodies larger than
``INLINE_PARSE_BYTES`` are decoded on a worker thread (at most ``PARSE_THREADS`` at once), so
the event loop keeps answering ``/healthz`` and other senders while one is parsed.
"""

from __future__ import annotations

import hmac
import logging
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crmsync_pipelines.errors import ConfigError
from crmsync_pipelines.webhooks.inbox import EventStatus, Inbox
from crmsync_pipelines.webhooks.limits import DEFAULT_MAX_BODY_BYTES, BodyLimits
from crmsync_pipelines.webhooks.parsing import (
    ParsedEvent,
    PayloadError,
    decode_body,
    decode_content,
    parse_crm_event,
    parse_daktela_event,
)

SECRET_HEADER = "X-Webhook-Secret"
_SECRET_HEADER_RAW = SECRET_HEADER.lower().encode("ascii")
#: Bodies up to this size are decoded on the event loop (microseconds); larger ones on a thread.
INLINE_PARSE_BYTES = 8_192
#: Worker threads decoding large bodies at once; inbox writes keep their own thread pool.
PARSE_THREADS = 4
#: Shorter secrets work but are logged as weak at start-up.
MIN_SECRET_LENGTH = 16
#: Seconds a sender has to deliver its whole body once the headers arrived; a sender that
#: trickles (or stalls) holds a connection and a file descriptor until then, never longer.
BODY_TIMEOUT_S = 30.0

logger = logging.getLogger("crmsync.webhooks")
access_logger = logging.getLogger("crmsync.webhooks.access")

_UNRESOLVED_PLACEHOLDER = re.compile(r"\$\{[^}]*\}")
#: Characters an HTTP field value cannot carry (RFC 9110 §5.5: only HTAB, SP, VCHAR, obs-text).
_NOT_IN_HEADER = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def checked_secret(secret: str | None, *, insecure_dev: bool) -> bytes | None:
    """The secret as UTF-8 bytes, or ``None`` when the endpoint may run open (development only).

    An empty secret, or one that still looks like an unresolved ``${VAR}`` (the PHP SDK keeps
    the literal when the variable is empty, A3/W19), must never leave the endpoint open or
    guessable, so it refuses to start unless the operator explicitly asked for dev mode. A
    secret with a control character could never arrive in a header (RFC 9110 §5.5), so it
    refuses to start too. Non-ASCII secrets work when senders send the header UTF-8 encoded;
    that, and a short secret, are logged as warnings. Raises ``ConfigError``.
    """
    value = (secret or "").strip()
    if value and _UNRESOLVED_PLACEHOLDER.search(value):
        raise ConfigError(
            "looks like an unresolved ${...} placeholder; set the environment variable it names",
            path="webhook.secret",
        )
    if value and _NOT_IN_HEADER.search(value):
        raise ConfigError(
            "contains a control character (newline, tab-like or NUL), which an HTTP header cannot carry",
            path="webhook.secret",
        )
    if value:
        if not value.isascii():
            logger.warning(
                "webhook.secret contains non-ASCII characters: senders must send the %s header "
                "UTF-8 encoded (some HTTP clients cannot); an ASCII secret is the portable choice",
                SECRET_HEADER,
            )
        if len(value) < MIN_SECRET_LENGTH:
            logger.warning("webhook.secret is shorter than %d characters; use a long random value", MIN_SECRET_LENGTH)
        return value.encode("utf-8")
    if insecure_dev:
        return None
    raise ConfigError(
        "a webhook secret is required (set webhook.secret, e.g. '${WEBHOOK_SECRET}'); "
        "use --insecure-dev only on a development machine",
        path="webhook.secret",
    )


@dataclass(frozen=True)
class EventPolicy:
    """Which events are synced; the rest is recorded (never silently dropped) but not run."""

    enabled_entities: frozenset[str]
    activity_types: frozenset[str]

    def decide(self, parsed: ParsedEvent) -> tuple[EventStatus, str | None]:
        if parsed.entity not in self.enabled_entities:
            return "ignored", f"entity '{parsed.entity}' is not enabled in sync.entities"
        if parsed.entity == "activity" and parsed.activity_type not in self.activity_types:
            return "ignored", f"activity type '{parsed.activity_type}' is not in activity_types"
        if parsed.is_delete:
            return "recorded_delete", "deletions are recorded in the inbox, not propagated"
        return "pending", None


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            declared_size = int(declared)
        except ValueError:
            raise PayloadError(400, "invalid Content-Length header") from None
        if declared_size > limit:
            raise PayloadError(413, f"body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            # Content-Length may be absent (chunked) or lie: count what actually arrives.
            raise PayloadError(413, f"body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"status": "error", "error": message}, status_code=status)


def _header_values(scope: Scope, name: bytes) -> list[bytes]:
    """Raw header values as sent (bytes): Starlette's ``str`` view decodes them as latin-1."""
    return [value for key, value in scope.get("headers", ()) if key.lower() == name]


def _secret_in_query(scope: Scope) -> bool:
    query = scope.get("query_string", b"").lower()
    return b"secret" in query or _SECRET_HEADER_RAW in query


class AccessLog:
    """ASGI middleware: one access line per request, **without the query string**.

    uvicorn's own access log writes the full URL, and senders misconfigured to put the secret
    in the URL (``?X-Webhook-Secret=...``) would leak it there, so the servers in
    ``server.py`` turn uvicorn's access log off and this line replaces it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_logged(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_logged)
        finally:
            if access_logger.isEnabledFor(logging.INFO):
                client = scope.get("client")
                where = f"{client[0]}:{client[1]}" if client else "-"
                access_logger.info(
                    '%s - "%s %s HTTP/%s" %d',
                    where,
                    scope.get("method", "-"),
                    scope.get("path", "-"),
                    scope.get("http_version", "1.1"),
                    status,
                )


def create_app(
    *,
    inbox: Inbox,
    secret: str | None,
    insecure_dev: bool = False,
    enabled_entities: set[str],
    activity_types: set[str],
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    limits: BodyLimits | None = None,
    body_timeout_s: float = BODY_TIMEOUT_S,
) -> ASGIApp:
    """The ASGI app (wrapped in ``AccessLog``); raises ``ConfigError`` for an unusable secret or limit.

    ``limits`` bounds each body; when omitted, the defaults with ``max_body_bytes``. A body
    not complete within ``body_timeout_s`` seconds is answered 408 and not stored.
    """
    secret_bytes = checked_secret(secret, insecure_dev=insecure_dev)
    if secret_bytes is None:
        logger.warning("webhook receiver runs WITHOUT a secret (--insecure-dev): do not expose it")
    body_limits = limits or BodyLimits(max_body_bytes=max_body_bytes)
    policy = EventPolicy(frozenset(enabled_entities), frozenset(activity_types))
    parse_limiter = anyio.CapacityLimiter(PARSE_THREADS)

    def authorised(request: Request) -> bool:
        if secret_bytes is None:
            return True
        given = _header_values(request.scope, _SECRET_HEADER_RAW)
        # Exactly one header, compared as bytes in constant time (a UTF-8 secret arrives as UTF-8 bytes).
        return len(given) == 1 and hmac.compare_digest(given[0].strip(b" \t"), secret_bytes)

    def decode(
        raw: bytes,
        content_type: str | None,
        content_encoding: str | None,
        parse: Callable[[dict[str, Any]], ParsedEvent],
    ) -> ParsedEvent:
        return parse(decode_body(decode_content(raw, content_encoding, body_limits), content_type, body_limits))

    async def receive(request: Request, parse: Callable[[dict[str, Any]], ParsedEvent]) -> JSONResponse:
        if not authorised(request):
            logger.warning("webhook refused: invalid or missing %s header", SECRET_HEADER)
            message = f"invalid or missing {SECRET_HEADER} header"
            if _secret_in_query(request.scope):
                message += " (a secret in the URL query string is never accepted; send it in the header)"
            return _error(401, message)
        content_type = request.headers.get("content-type")
        content_encoding = request.headers.get("content-encoding")
        try:
            with anyio.fail_after(body_timeout_s):
                raw = await _read_body(request, body_limits.max_body_bytes)
            if len(raw) <= INLINE_PARSE_BYTES and content_encoding is None:
                parsed = decode(raw, content_type, None, parse)
            else:  # large, or compressed (a small body may inflate to max_body_bytes)
                parsed = await anyio.to_thread.run_sync(
                    decode, raw, content_type, content_encoding, parse, limiter=parse_limiter
                )
        except PayloadError as exc:
            logger.info("webhook rejected with %s: %s", exc.status, exc.message)
            return _error(exc.status, exc.message)
        except TimeoutError:
            logger.info("webhook body not complete within %.0f s; nothing stored", body_timeout_s)
            response = _error(408, f"the body was not received within {body_timeout_s:g} seconds")
            response.headers["Connection"] = "close"
            return response
        except ClientDisconnect:
            # The sender gave up mid-body: nothing was stored and nobody reads an answer.
            logger.info("webhook sender disconnected before its body was complete; nothing stored")
            return _error(400, "the client disconnected before the body was complete")
        status, reason = policy.decide(parsed)
        try:
            seq, duplicate = await anyio.to_thread.run_sync(
                lambda: inbox.add(
                    source=parsed.source,
                    event=parsed.event,
                    entity=parsed.entity,
                    activity_type=parsed.activity_type,
                    record_id=parsed.record_id,
                    body=parsed.body,
                    status=status,
                    error=reason,
                )
            )
        except sqlite3.Error as exc:
            # Not stored, so not accepted: the sender must retry later.
            logger.error("webhook inbox write failed: %s", exc)
            response = _error(503, "the inbox is unavailable; retry later")
            response.headers["Retry-After"] = "5"
            return response
        logger.info(
            "webhook %s %s for %s %s -> seq %d%s",
            parsed.source,
            parsed.event,
            parsed.entity,
            parsed.record_id,
            seq,
            " (duplicate)" if duplicate else "",
        )
        payload: dict[str, Any] = {
            "status": "accepted" if status == "pending" else status,
            "seq": seq,
            "duplicate": duplicate,
            "entity": parsed.entity,
            "id": parsed.record_id,
        }
        if parsed.activity_type is not None:
            payload["activity_type"] = parsed.activity_type
        if reason is not None:
            payload["reason"] = reason
        return JSONResponse(payload, status_code=202)

    async def daktela(request: Request) -> JSONResponse:
        return await receive(request, parse_daktela_event)

    async def crm(request: Request) -> JSONResponse:
        return await receive(request, parse_crm_event)

    async def healthz(request: Request) -> JSONResponse:
        """Events per inbox status (``failed`` ones wait for `crmsync inbox requeue`), and how
        many pending events a run holds (``leased``)."""
        try:
            counts = await anyio.to_thread.run_sync(inbox.counts)
            leased = await anyio.to_thread.run_sync(inbox.leased_count)
        except sqlite3.Error as exc:
            logger.error("webhook inbox unreadable: %s", exc)
            return _error(503, "the inbox is unavailable")
        return JSONResponse({"status": "ok", "inbox": {**counts, "leased": leased}})

    return AccessLog(
        Starlette(
            routes=[
                Route("/webhooks/daktela", daktela, methods=["POST"]),
                Route("/webhooks/crm", crm, methods=["POST"]),
                Route("/healthz", healthz, methods=["GET"]),
            ]
        )
    )
