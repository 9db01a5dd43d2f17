"""The webhook receiver: authenticate, validate, store durably, answer 202. Nothing more.

Syncing inside the request (as the PHP SDK does) ties Daktela's automation to the CRM's
latency and loses the event when the sync crashes (W19). Here the request only commits the
event to the inbox; the Dagster sensor turns inbox events into sync runs.
"""

from __future__ import annotations

import hmac
import logging
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from crmsync_pipelines.errors import ConfigError
from crmsync_pipelines.webhooks.inbox import EventStatus, Inbox
from crmsync_pipelines.webhooks.parsing import (
    ParsedEvent,
    PayloadError,
    decode_body,
    parse_crm_event,
    parse_daktela_event,
)

SECRET_HEADER = "X-Webhook-Secret"
DEFAULT_MAX_BODY_BYTES = 262_144

logger = logging.getLogger("crmsync.webhooks")

_UNRESOLVED_PLACEHOLDER = re.compile(r"\$\{[^}]*\}")


def checked_secret(secret: str | None, *, insecure_dev: bool) -> bytes | None:
    """The secret as bytes, or ``None`` when the endpoint may run open (development only).

    An empty secret, or one that still looks like an unresolved ``${VAR}`` (the PHP SDK keeps
    the literal when the variable is empty, A3/W19), must never leave the endpoint open or
    guessable, so it refuses to start unless the operator explicitly asked for dev mode.
    """
    value = (secret or "").strip()
    if value and _UNRESOLVED_PLACEHOLDER.search(value):
        raise ConfigError(
            "looks like an unresolved ${...} placeholder; set the environment variable it names",
            path="webhook.secret",
        )
    if value:
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


def create_app(
    *,
    inbox: Inbox,
    secret: str | None,
    insecure_dev: bool = False,
    enabled_entities: set[str],
    activity_types: set[str],
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> Starlette:
    """The ASGI app; raises ``ConfigError`` when the secret would leave the endpoint open."""
    secret_bytes = checked_secret(secret, insecure_dev=insecure_dev)
    if secret_bytes is None:
        logger.warning("webhook receiver runs WITHOUT a secret (--insecure-dev): do not expose it")
    if max_body_bytes < 1:
        raise ConfigError("must be a positive number of bytes", path="webhook.max_body_bytes")
    policy = EventPolicy(frozenset(enabled_entities), frozenset(activity_types))

    def authorised(request: Request) -> bool:
        if secret_bytes is None:
            return True
        given = request.headers.get(SECRET_HEADER, "").encode("utf-8")
        return hmac.compare_digest(given, secret_bytes)

    async def receive(request: Request, parse: Callable[[dict[str, Any]], ParsedEvent]) -> JSONResponse:
        if not authorised(request):
            logger.warning("webhook refused: invalid or missing %s header", SECRET_HEADER)
            return _error(401, f"invalid or missing {SECRET_HEADER} header")
        try:
            raw = await _read_body(request, max_body_bytes)
            parsed = parse(decode_body(raw, request.headers.get("content-type")))
        except PayloadError as exc:
            logger.info("webhook rejected with %s: %s", exc.status, exc.message)
            return _error(exc.status, exc.message)
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
        try:
            counts = await anyio.to_thread.run_sync(inbox.counts)
        except sqlite3.Error as exc:
            logger.error("webhook inbox unreadable: %s", exc)
            return _error(503, "the inbox is unavailable")
        return JSONResponse({"status": "ok", "inbox": {"pending": counts["pending"]}})

    return Starlette(
        routes=[
            Route("/webhooks/daktela", daktela, methods=["POST"]),
            Route("/webhooks/crm", crm, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )
