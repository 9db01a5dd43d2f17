"""A faithful Raynet CRM API v2 simulator: a starlette ASGI app served by uvicorn on loopback.

It answers what the adapter sends the way Raynet documents it (see ``sim_store`` for the
data rules): Basic auth plus ``X-Instance-Name`` (401, and a 60-minute IP block after 20
bad attempts), PUT creates / POST updates (405 for the reversed verbs), the
``{success, totalCount, data}`` envelope with ``success`` as a string on reads and a boolean
on writes, ``offset``/``limit`` paging capped at 1000 (clamp or 400), ``X-Ratelimit-*``
headers on every answer and 429 ``RequestLimitReached`` once the daily budget is spent (503
with the older doc's switch), plus latency and fault injection (``FaultBook`` of the
Daktela simulator: ``'PUT /api/v2/phoneCall/=500x2'``, ``'*=429:2'`` for a burst 429 with
``Retry-After``).

``run_raynet_simulator()`` starts it in a background thread for tests and the CLI.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from crmsync_pipelines.crm.raynet.sim_seed import seed_demo, seed_users
from crmsync_pipelines.crm.raynet.sim_store import ACTIVITY_ENTITIES, ENTITIES, ApiError, Quota, RaynetStore
from crmsync_pipelines.serving import serve_in_thread
from crmsync_pipelines.simulator.config import Fault, RequestRecord
from crmsync_pipelines.simulator.faults import FaultBook, RequestLog

API_PREFIX = "/api/v2"


@dataclass(frozen=True)
class RaynetSimConfig:
    """Knobs of the simulator; the ``[U]`` readings of the vendor notes are switches here."""

    host: str = "127.0.0.1"
    port: int = 0
    instance_name: str = "demo-crm"
    username: str = "integrace@example.com"
    api_key: str = "sim-raynet-api-key"
    #: ``demo`` seeds Czech companies and persons; ``None`` leaves only the users.
    seed: str | None = "demo"
    companies: int = 12
    persons: int = 40
    #: The API user's time zone: non-ISO dates are read and rendered in it.
    user_zone: str = "Europe/Prague"
    daily_limit: int = 24_000
    #: 429 (current docs) or 503 (older docs) once the daily budget is spent.
    quota_status: Literal[429, 503] = 429
    max_limit: int = 1000
    #: ``clamp`` (default reading) or ``error`` for ``limit`` > 1000 [U].
    limit_mode: Literal["clamp", "error"] = "clamp"
    default_limit: int = 20
    auth_failure_status: int = 401
    lockout_after: int = 20
    lockout_s: float = 3600.0
    reject_duplicate_ext_ids: bool = True
    #: Refuse ``status``/``customFields`` in activity creates (the insert DTOs do not list them) [U].
    strict_activity_insert: bool = False
    #: Date filters compare to the ``second`` or to the ``minute`` (Raynet renders minutes by default) [U].
    filter_precision: Literal["second", "minute"] = "second"
    latency_ms: float = 0.0
    request_log_max: int | None = 50_000
    #: JSON file the data is loaded from at start and saved to at stop (``None``: in memory only).
    state_path: Path | None = None

    def with_overrides(self, overrides: dict[str, Any]) -> RaynetSimConfig:
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"unknown RaynetSimConfig field(s): {', '.join(unknown)}")
        return replace(self, **overrides)


@dataclass
class SimClock:
    """The simulator's clock; tests move it (``advance``) to cross a UTC midnight or a lockout."""

    offset: timedelta = field(default_factory=timedelta)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta) -> None:
        self.offset += delta


class RaynetSimulatorApp:
    """The ASGI callable: auth, quota, faults and the request log around the routes."""

    def __init__(self, config: RaynetSimConfig, clock: SimClock | None = None) -> None:
        self.config = config
        self.clock = clock or SimClock()
        self.store = RaynetStore(user_zone=config.user_zone, clock=self.clock,
                                 reject_duplicate_ext_ids=config.reject_duplicate_ext_ids,
                                 strict_activity_insert=config.strict_activity_insert,
                                 filter_precision=config.filter_precision)
        if config.state_path is not None and config.state_path.is_file():
            self.store.load(config.state_path)
        else:
            seed_users(self.store, self.clock())
            if config.seed:
                seed_demo(self.store, config.seed, companies=config.companies, persons=config.persons)
        self.user_ids = sorted(int(p["id"]) for p in self.store.all("person") if p.get("userAccount"))
        self.quota = Quota(config.daily_limit, self.clock)
        self.faults = FaultBook()
        self.log = RequestLog(config.request_log_max)
        self.latency_ms = config.latency_ms
        self._auth_failures: dict[str, int] = {}
        self._blocked_until: dict[str, datetime] = {}
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        response = await self._handle(request)
        await response(scope, receive, send)

    # -- pipeline -------------------------------------------------------------------------------
    async def _handle(self, request: Request) -> Response:
        method, path = request.method, request.url.path
        raw = await request.body()
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = ...
        record = RequestRecord(method=method, path=path, query=dict(request.query_params),
                               raw_query=request.url.query, headers=_safe_headers(request), json=payload,
                               status=0, at=time.time())
        if self.latency_ms:
            await asyncio.sleep(self.latency_ms / 1000)
        response = self._guarded(request, method, path, payload, record)
        record.status = response.status_code
        self.log.add(record)
        return response

    def _guarded(self, request: Request, method: str, path: str, payload: Any, record: RequestRecord) -> Response:
        client = request.client.host if request.client else "unknown"
        refused = self._authenticate(request, client)
        if refused is not None:
            return refused
        fault = self.faults.take(method, path)
        if fault is not None:
            record.fault = fault.kind
            if fault.kind == "rate_limit":
                return self._respond(429, {"type": "TooManyRequests", "message": "Too many requests"},
                                     extra={"Retry-After": fault.retry_after or "1"}, count=False)
            if fault.kind == "status":
                extra = {"Retry-After": fault.retry_after} if fault.retry_after else None
                return self._respond(fault.status, {"message": "Simulated failure"}, extra=extra, count=False)
        with self._lock:
            allowed = self.quota.take()
        if not allowed:
            return self._respond(self.config.quota_status, {
                "type": "RequestLimitReached",
                "message": "API request limit reached. See the X-RateLimit-* headers for details.",
            }, count=False)
        if payload is ...:
            return self._respond(400, {"success": False, "message": "Malformed JSON body"})
        try:
            status, body = self._route(request, method, path, payload)
        except ApiError as exc:
            return self._respond(exc.status, exc.body())
        return self._respond(status, body)

    def _respond(self, status: int, body: Any, *, extra: dict[str, str] | None = None,
                 count: bool = True) -> Response:
        headers = self.quota.headers()
        if extra:
            headers.update(extra)
        if body is None:
            return Response(b"", status, headers=headers)
        return JSONResponse(body, status, headers=headers)

    def _authenticate(self, request: Request, client: str) -> Response | None:
        now = self.clock()
        with self._lock:
            blocked = self._blocked_until.get(client)
            if blocked is not None and now < blocked:
                return self._respond(403, {"message": "IpBlockedException",
                                           "translatedMessage": "Příliš mnoho neúspěšných přihlášení, IP adresa "
                                                                "je dočasně zablokována."})
            if blocked is not None:
                self._blocked_until.pop(client, None)
                self._auth_failures[client] = 0
        if self._credentials_ok(request):
            return None
        with self._lock:
            count = self._auth_failures.get(client, 0) + 1
            self._auth_failures[client] = count
            if count >= self.config.lockout_after:
                self._blocked_until[client] = now + timedelta(seconds=self.config.lockout_s)
        return self._respond(self.config.auth_failure_status,
                             {"message": "AuthenticationException",
                              "translatedMessage": "Neplatné přihlašovací údaje."},
                             extra={"WWW-Authenticate": 'Basic realm="RAYNET CRM"'})

    def _credentials_ok(self, request: Request) -> bool:
        instance = request.headers.get("X-Instance-Name", "")
        header = request.headers.get("Authorization", "")
        if not header.lower().startswith("basic "):
            return False
        try:
            user, _, key = base64.b64decode(header[6:].strip()).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return (secrets.compare_digest(instance.encode(), self.config.instance_name.encode())
                and secrets.compare_digest(user.encode(), self.config.username.encode())
                and secrets.compare_digest(key.encode(), self.config.api_key.encode()))

    # -- routes ---------------------------------------------------------------------------------
    def _route(self, request: Request, method: str, path: str, payload: Any) -> tuple[int, Any]:
        if not path.startswith(API_PREFIX + "/"):
            raise ApiError(404, "NotFound", f"Neznámá adresa {path}")
        # Split the raw (still percent-encoded) path, so an encoded "/" inside an extId stays in its segment.
        raw_path = request.scope.get("raw_path", path.encode()).decode("latin-1").split("?", 1)[0]
        parts = [unquote(p) for p in raw_path[len(API_PREFIX) + 1:].split("/")]
        trailing = parts and parts[-1] == ""
        parts = [p for p in parts if p != ""]
        params = list(request.query_params.multi_items())
        iso = dict(params).get("dateFormat") == "ISO8601"
        if not parts:
            raise ApiError(404, "NotFound", "Neznámá adresa")
        entity = parts[0]
        if parts == ["customField", "config"] and method == "GET":
            return 200, {"success": "true", "data": self.store.custom_fields}
        if len(parts) == 3 and parts[:2] == ["customField", "config"] and method == "PUT":
            return 201, {"success": True, "data": {"fieldName": self.store.add_custom_field(parts[2], payload)}}
        if entity == "activity" and len(parts) == 1:
            if method != "GET":
                raise ApiError(405, "MethodNotAllowed", "/activity/ je jen pro čtení.")
            return 200, self._activity_list(params, iso)
        if entity not in ENTITIES:
            raise ApiError(404, "NotFound", f"Neznámá entita {entity}")
        if len(parts) == 1:
            if not trailing:
                raise ApiError(404, "NotFound", "Chybí lomítko na konci adresy.")
            if method == "GET":
                return 200, self._list(entity, params, iso)
            if method == "PUT":
                new_id = self.store.create(entity, payload)
                return 201, {"success": True, "data": {"id": new_id}}
            raise ApiError(405, "MethodNotAllowed", "Záznam se vytváří metodou PUT.")
        if len(parts) == 3 and parts[1] == "ext" and method == "GET":
            found = self.store.by_ext(entity, parts[2])
            if found is None:
                raise ApiError(404, "EntityNotFoundException", f"Externí ID '{parts[2]}' neexistuje.")
            return 200, {"success": "true", "data": self.store.render(entity, found, iso=iso, detail=True)}
        record_id = _int_id(parts[1])
        if len(parts) == 2:
            if method == "GET":
                found = self.store.raw(entity, record_id)
                if found is None:
                    raise ApiError(404, "EntityNotFoundException", f"Záznam {record_id} neexistuje.")
                return 200, {"success": "true", "data": self.store.render(entity, found, iso=iso, detail=True)}
            if method == "POST":
                self.store.update(entity, record_id, payload or {})
                return 200, {"success": True}
            if method == "DELETE":
                self.store.delete(entity, record_id)
                return 200, {"success": True}
            raise ApiError(405, "MethodNotAllowed", "Záznam se upravuje metodou POST.")
        if parts[2] == "extId":
            if len(parts) == 3 and method == "PUT":
                ext = (payload or {}).get("extId") if isinstance(payload, dict) else None
                if not ext:
                    raise ApiError(500, "IllegalArgumentException", "Atribut 'extId' je povinný.")
                self.store.add_ext_id(entity, record_id, str(ext))
                return 200, {"success": "true"}
            if len(parts) == 4 and method == "DELETE":
                self.store.remove_ext_id(entity, record_id, parts[3])
                return 200, {"success": "true"}
        raise ApiError(404, "NotFound", f"Neznámá adresa {path}")

    def _page(self, params: list[tuple[str, str]]) -> tuple[int, int]:
        values = dict(params)
        try:
            offset = max(0, int(values.get("offset", 0)))
            limit = int(values["limit"]) if "limit" in values else self.config.default_limit
        except ValueError:
            raise ApiError(400, "Invalid offset or limit") from None
        if limit > self.config.max_limit:
            if self.config.limit_mode == "error":
                raise ApiError(400, f"Maximum limit is {self.config.max_limit}")
            limit = self.config.max_limit
        return offset, max(1, limit)

    def _list(self, entity: str, params: list[tuple[str, str]], iso: bool) -> dict[str, Any]:
        offset, limit = self._page(params)
        rows = self.store.query(entity, params)
        view = dict(params).get("view")
        data = [self.store.render(entity, r, iso=iso, detail=False) for r in rows[offset:offset + limit]]
        if view == "rowInfo":
            data = [{k: v for k, v in d.items() if k == "id" or k.startswith("rowInfo.") or k == "_version"}
                    for d in data]
        return {"success": "true", "totalCount": len(rows), "data": data}

    def _activity_list(self, params: list[tuple[str, str]], iso: bool) -> dict[str, Any]:
        offset, limit = self._page(params)
        rows: list[dict[str, Any]] = []
        for entity in ACTIVITY_ENTITIES:
            rows.extend({**self.store.render(entity, r, iso=iso, detail=False), "activityType": entity}
                        for r in self.store.query(entity, params))
        return {"success": "true", "totalCount": len(rows), "data": rows[offset:offset + limit]}

    def stats(self) -> dict[str, Any]:
        return {"requests": self.log.count(), "quota_used": self.quota.used, "quota_limit": self.quota.limit}


def _int_id(text: str) -> int:
    if not text.isdigit():
        raise ApiError(404, "EntityNotFoundException", f"Záznam {text} neexistuje.")
    return int(text)


def _safe_headers(request: Request) -> dict[str, str]:
    """Request headers for the log, with the credentials masked (the log never holds a secret)."""
    return {k: ("***" if k.lower() == "authorization" else v) for k, v in request.headers.items()}


class RaynetSimulatorHandle:
    """A running simulator: URL, credentials, and in-process control for tests."""

    def __init__(self, app: RaynetSimulatorApp, base_url: str) -> None:
        self.app = app
        self.base_url = base_url
        self.config = app.config

    @property
    def api_url(self) -> str:
        return f"{self.base_url}{API_PREFIX}/"

    @property
    def store(self) -> RaynetStore:
        return self.app.store

    @property
    def clock(self) -> SimClock:
        return self.app.clock

    @property
    def user_ids(self) -> list[int]:
        return self.app.user_ids

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """The ``crm:`` settings (minus ``adapter``) that reach this simulator."""
        return {"instance_name": self.config.instance_name, "username": self.config.username,
                "api_key": self.config.api_key, "base_url": self.api_url, **overrides}

    def request_count(self, method: str | None = None, path: str | None = None) -> int:
        return self.app.log.count(method, path)

    @property
    def request_log(self) -> list[RequestRecord]:
        return self.app.log.snapshot()

    def reset_log(self) -> None:
        self.app.log.reset()

    def add_fault(self, fault: Fault) -> None:
        self.app.faults.add(fault)

    def clear_faults(self) -> None:
        self.app.faults.clear()

    def set_latency(self, ms: float) -> None:
        self.app.latency_ms = ms

    def set_daily_limit(self, limit: int) -> None:
        self.app.quota.limit = limit

    def exhaust_quota(self) -> None:
        """Spend the rest of today's budget now (the "quota exhausted" switch)."""
        self.app.quota.exhaust()

    @property
    def quota_used(self) -> int:
        return self.app.quota.used

    def next_day(self) -> None:
        """Move the clock past the next UTC midnight: the daily budget resets."""
        now = self.clock()
        midnight = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1, seconds=1)
        self.clock.advance(midnight - now)


@contextmanager
def run_raynet_simulator(config: RaynetSimConfig | None = None, **overrides: Any) -> Iterator[RaynetSimulatorHandle]:
    """Start uvicorn on 127.0.0.1 (port 0 = a free port) in a background thread; stop on exit."""
    effective = (config or RaynetSimConfig()).with_overrides(overrides)
    app = RaynetSimulatorApp(effective)

    def save_state() -> None:
        if effective.state_path is not None:
            app.store.dump(effective.state_path)

    with serve_in_thread(
        app, host=effective.host, port=effective.port, thread_name="raynet-sim", what="the Raynet simulator",
        after_stop=save_state,
    ) as base_url:
        yield RaynetSimulatorHandle(app, base_url)


__all__ = ["RaynetSimConfig", "RaynetSimulatorApp", "RaynetSimulatorHandle", "SimClock", "run_raynet_simulator"]
