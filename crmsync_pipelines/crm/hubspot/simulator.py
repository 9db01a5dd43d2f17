"""A HubSpot CRM API simulator: a starlette app served by uvicorn on loopback.

It speaks the subset of the v3 object, v4 association, properties and account-info APIs the
HubSpot adapter uses, in HubSpot's wire format (see docs/crms/hubspot.md and the reference
notes' "what a faithful fake must do"): bearer auth with 401/403 bodies, search with filter
groups, sorts, ``after`` paging and the result cap, batch read/create/update/upsert with 207
multi-status, validation errors with per-field ``errors[]``, unique-property conflicts,
``X-HubSpot-RateLimit-*`` headers, 429s with ``policyName`` (``TEN_SECONDLY_ROLLING``,
``SECONDLY`` for search, ``DAILY``), a daily quota that resets at midnight in the account's
time zone, and latency and fault knobs. Tests and ``crmsync crm-simulator hubspot`` use it.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from crmsync_pipelines.crm.hubspot.sim_store import ASSOCIATION_TYPES, HubSpotError, SimStore, StoredObject
from crmsync_pipelines.serving import serve_in_thread

_OBJECT = re.compile(r"^/crm/v3/objects/([a-z_]+)(?:/([^/]+))?(?:/([a-z]+))?$")
_PROPERTY = re.compile(r"^/crm/v3/properties/([a-z_]+)(?:/([^/]+))?$")
_PROPERTY_GROUP = re.compile(r"^/crm/v3/properties/([a-z_]+)/groups$")
_ASSOC_PUT = re.compile(r"^/crm/v4/objects/([a-z_]+)/([^/]+)/associations/default/([a-z_]+)/([^/]+)$")
_ASSOC_GET = re.compile(r"^/crm/v4/objects/([a-z_]+)/([^/]+)/associations/([a-z_]+)$")
_ASSOC_BATCH = re.compile(r"^/crm/v4/associations/([a-z_]+)/([a-z_]+)/batch/(associate/default|read)$")
_USAGE = "/account-info/v3/api-usage/daily/private-apps"
_BATCH_LIMIT = 100


@dataclass(frozen=True)
class HubSpotSimConfig:
    """Knobs of one simulated portal; every limit can be lowered so tests reach it quickly."""

    host: str = "127.0.0.1"
    port: int = 0
    token: str = "pat-na1-sim-token"
    #: Scopes granted to the token; a request outside them gets 403 MISSING_SCOPES.
    scopes: frozenset[str] = frozenset({
        "crm.objects.companies.read", "crm.objects.contacts.read", "crm.objects.contacts.write",
        "sales-email-read", "crm.schemas.contacts.write", "crm.objects.owners.read"})
    #: HubSpot users (owners): (owner id, e-mail). The demo agents of the Daktela simulator.
    owners: tuple[tuple[str, str], ...] = (("70001", "jan.novak@example.cz"), ("70002", "petra.svobodova@example.cz"),
                                           ("70003", "tomas.dvorak@example.cz"))
    account_timezone: str = "Europe/Prague"
    #: Requests per rolling 10 s per token (Free/Starter: 100; Pro/Enterprise: 190); None = off.
    burst_limit: int | None = 100
    burst_window_s: float = 10.0
    #: Requests per day per account (Free/Starter: 250,000); None = off.
    daily_limit: int | None = 250_000
    #: Search requests per second per token (HubSpot: 4); None = off.
    search_rate_per_s: float | None = 4.0
    #: Results one search query may page through (HubSpot: 10,000).
    search_cap: int = 10_000
    #: ``Retry-After`` seconds sent with burst 429s (HubSpot sends it on some; None = omit).
    retry_after_s: float | None = 1.0
    latency_ms: float = 0.0
    #: Return batch results in random order (HubSpot does not promise input order).
    shuffle_batches: bool = True
    engagement_unique_allowed: bool = True
    index_lag_ms: float = 0.0
    #: ``False``: one invalid input fails a whole batch update/upsert/create with 400 and nothing
    #: is written (what HubSpot does where it does not answer 207; the adapter must cope either way).
    multi_status: bool = True
    #: Create the unique ``daktela_activity_name`` property on calls, emails, communications, notes.
    bootstrap_external_id: str | None = "daktela_activity_name"
    #: ``"demo"`` seeds companies and contacts; None leaves the portal empty.
    seed: str | None = None
    #: JSON file the portal is loaded from (when it exists, instead of seeding) and saved to on stop.
    state_path: Path | None = None


@dataclass
class SimFault:
    """Answer requests matching ``route`` (``"POST /crm/v3/objects/calls/batch/*"``) with ``status``."""

    route: str
    status: int
    times: int | None = 1
    retry_after: str | None = None
    policy: str | None = None
    #: Let this many matching requests through before the fault starts firing.
    after: int = 0


@dataclass
class RequestEntry:
    method: str
    path: str
    status: int
    body: Any = None
    at: float = field(default_factory=time.time)


class _Limits:
    """The burst window, the daily quota and the search bucket of one portal."""

    def __init__(self, config: HubSpotSimConfig) -> None:
        self.config = config
        self.lock = threading.Lock()
        self.burst: deque[float] = deque()
        self.search: deque[float] = deque()
        self.day = self._today()
        self.used_today = 0

    def _today(self) -> str:
        return datetime.now(ZoneInfo(self.config.account_timezone)).date().isoformat()

    def seconds_to_midnight(self) -> float:
        zone = ZoneInfo(self.config.account_timezone)
        now = datetime.now(zone)
        midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), zone)
        return max(1.0, (midnight - now).total_seconds())

    def take(self, *, search: bool) -> tuple[str | None, dict[str, str]]:
        """(policy hit or None, rate-limit headers for a non-search response)."""
        config = self.config
        now = time.monotonic()
        with self.lock:
            if self._today() != self.day:
                self.day, self.used_today = self._today(), 0
            if config.daily_limit is not None and self.used_today >= config.daily_limit:
                return "DAILY", {}
            while self.burst and now - self.burst[0] >= config.burst_window_s:
                self.burst.popleft()
            if config.burst_limit is not None and len(self.burst) >= config.burst_limit:
                return "TEN_SECONDLY_ROLLING", {}
            if search and config.search_rate_per_s is not None:
                while self.search and now - self.search[0] >= 1.0:
                    self.search.popleft()
                if len(self.search) >= config.search_rate_per_s:
                    return "SECONDLY", {}
                self.search.append(now)
            self.burst.append(now)
            self.used_today += 1
            headers: dict[str, str] = {}
            if config.burst_limit is not None:
                headers["X-HubSpot-RateLimit-Interval-Milliseconds"] = str(int(config.burst_window_s * 1000))
                headers["X-HubSpot-RateLimit-Max"] = str(config.burst_limit)
                headers["X-HubSpot-RateLimit-Remaining"] = str(config.burst_limit - len(self.burst))
            if config.daily_limit is not None:
                headers["X-HubSpot-RateLimit-Daily"] = str(config.daily_limit)
                headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(config.daily_limit - self.used_today)
            return None, headers

    def burst_wait_s(self) -> float:
        with self.lock:
            if not self.burst:
                return 0.0
            return max(0.0, self.config.burst_window_s - (time.monotonic() - self.burst[0]))


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def error_body(exc: HubSpotError, correlation_id: str) -> dict[str, Any]:
    body: dict[str, Any] = {"status": "error", "message": exc.message, "correlationId": correlation_id,
                            "category": exc.category}
    if exc.errors:
        body["errors"] = exc.errors
    if exc.context:
        body["context"] = exc.context
    return body


class HubSpotSimulator:
    """The ASGI callable plus in-process control for tests (faults, latency, seeding, log)."""

    def __init__(self, config: HubSpotSimConfig) -> None:
        self.config = config
        self.store = SimStore(engagement_unique_allowed=config.engagement_unique_allowed,
                              index_lag_ms=config.index_lag_ms)
        self.limits = _Limits(config)
        self.latency_ms = config.latency_ms
        self.faults: list[list[Any]] = []  # [fault, remaining, seen]
        self.log: deque[RequestEntry] = deque(maxlen=50_000)
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._random = random.Random(7)
        if config.state_path is not None and config.state_path.is_file():
            self.store.load(config.state_path)
            return
        if config.bootstrap_external_id:
            for object_type in ("calls", "emails", "communications", "notes"):
                if config.engagement_unique_allowed:
                    self.store.create_property(object_type, {"name": config.bootstrap_external_id, "type": "string",
                                                             "fieldType": "text", "hasUniqueValue": True})
        if config.seed:
            seed_demo(self, config.seed)

    # -- test control ------------------------------------------------------------------------
    def add_fault(self, fault: SimFault) -> None:
        with self._lock:
            self.faults.append([fault, fault.times, 0])

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def _take_fault(self, method: str, path: str) -> SimFault | None:
        with self._lock:
            for entry in self.faults:
                fault: SimFault = entry[0]
                wanted_method, _, pattern = fault.route.partition(" ")
                if not (wanted_method in ("*", method) and fnmatchcase(path, pattern or wanted_method)):
                    continue
                entry[2] += 1
                if entry[2] <= fault.after:
                    continue
                if entry[1] is not None:
                    entry[1] -= 1
                    if entry[1] <= 0:
                        self.faults.remove(entry)
                return fault
        return None

    def request_count(self, method: str | None = None, path: str | None = None) -> int:
        """Requests answered, by exact path or a glob (``/crm/v3/objects/calls/*``)."""
        with self._lock:
            items = list(self.counts.items())
        total = 0
        for route, hits in items:
            route_method, _, route_path = route.partition(" ")
            if method is not None and route_method != method.upper():
                continue
            if path is not None and not fnmatchcase(route_path, path):
                continue
            total += hits
        return total

    def reset_log(self) -> None:
        with self._lock:
            self.log.clear()
            self.counts.clear()

    def requests(self) -> list[RequestEntry]:
        with self._lock:
            return list(self.log)

    # -- ASGI ------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        raw = await request.body()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        if self.latency_ms:
            await asyncio.sleep(self.latency_ms / 1000)
        correlation = str(uuid.uuid4())
        response = self._handle(request.method, request.url.path, parse_qs(request.url.query), body,
                                request.headers.get("authorization"), correlation, raw)
        response.headers["X-HubSpot-Correlation-Id"] = correlation
        with self._lock:
            self.log.append(RequestEntry(request.method, request.url.path, response.status_code, body))
            self.counts[f"{request.method} {request.url.path}"] += 1
        await response(scope, receive, send)

    def _handle(self, method: str, path: str, query: dict[str, list[str]], body: Any, auth: str | None,
                correlation: str, raw: bytes) -> Response:
        token = auth[7:].strip() if auth and auth.lower().startswith("bearer ") else None
        if token != self.config.token:
            return _json(401, {"status": "error", "category": "INVALID_AUTHENTICATION", "correlationId": correlation,
                               "message": "Authentication credentials not found. This API supports OAuth 2.0 "
                                          "authentication and you can find more details at "
                                          "https://developers.hubspot.com/docs/methods/auth/oauth-overview"})
        search = method == "POST" and path.endswith("/search")
        policy, headers = self.limits.take(search=search)
        if policy is not None:
            return self._rate_limited(policy, correlation)
        fault = self._take_fault(method, path)
        if fault is not None:
            if fault.status == 429:
                return self._rate_limited(fault.policy or "TEN_SECONDLY_ROLLING", correlation, fault.retry_after)
            extra = {"Retry-After": fault.retry_after} if fault.retry_after else None
            return _json(fault.status, {"status": "error", "message": "simulated fault", "category": "UNKNOWN",
                                        "correlationId": correlation}, extra)
        if raw and body is None:
            return _json(400, error_body(HubSpotError(400, "VALIDATION_ERROR", "Invalid input JSON"), correlation))
        try:
            status, payload = self._route(method, path, query, body or {})
        except HubSpotError as exc:
            return _json(exc.status, error_body(exc, correlation), headers)
        if status == 204:
            return Response(status_code=204, headers=headers)
        return _json(status, payload, None if search else headers)

    def _rate_limited(self, policy: str, correlation: str, retry_after: str | None = None) -> Response:
        messages = {"DAILY": "You have reached your daily limit.",
                    "SECONDLY": "You have reached your secondly limit.",
                    "TEN_SECONDLY_ROLLING": "You have reached your ten_secondly_rolling limit."}
        headers: dict[str, str] = {}
        if retry_after is not None:
            headers["Retry-After"] = retry_after
        elif policy == "DAILY":
            headers["Retry-After"] = str(int(self.limits.seconds_to_midnight()))
        elif policy == "TEN_SECONDLY_ROLLING" and self.config.retry_after_s is not None:
            headers["Retry-After"] = str(max(self.config.retry_after_s, round(self.limits.burst_wait_s(), 3)))
        return _json(429, {"status": "error", "message": messages.get(policy, "rate limited"),
                           "errorType": "RATE_LIMIT", "correlationId": correlation, "policyName": policy,
                           "groupName": "api-calls", "requestId": str(uuid.uuid4())}, headers)

    # -- routing ---------------------------------------------------------------------------
    def _route(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        if path == _USAGE and method == "GET":
            return 200, self._usage()
        if path.rstrip("/") == "/crm/v3/owners" and method == "GET":
            return 200, self._owners(query)
        if match := _PROPERTY_GROUP.match(path):
            if method != "POST":
                raise HubSpotError(405, "VALIDATION_ERROR", "method not allowed")
            return 201, self.store.create_group(match[1], body)
        if match := _PROPERTY.match(path):
            object_type, name = match.groups()
            if method == "POST" and name is None:
                return 201, self.store.create_property(object_type, body)
            if method == "GET" and name is not None:
                return 200, self.store.describe_property(object_type, name)
        if match := _ASSOC_PUT.match(path):
            if method != "PUT":
                raise HubSpotError(405, "VALIDATION_ERROR", "method not allowed")
            self.store.associate(match[1], match[2], match[3], match[4])
            return 200, {"status": "COMPLETE", "results": [{"from": {"id": match[2]}, "to": {"id": match[4]}}]}
        if match := _ASSOC_GET.match(path):
            ids = self.store.associated(match[1], match[2], match[3])
            type_id = ASSOCIATION_TYPES.get((match[1], match[3]))
            return 200, {"results": [{"toObjectId": int(i), "associationTypes": [
                {"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": None}]} for i in ids]}
        if match := _ASSOC_BATCH.match(path):
            return self._association_batch(match[1], match[2], match[3], body)
        match = _OBJECT.match(path)
        if match is None:
            raise HubSpotError(404, "OBJECT_NOT_FOUND", f"No route for {method} {path}")
        object_type, item, verb = match.groups()
        writes = method in ("PATCH", "DELETE") or (method == "POST" and item is None) or (
            item == "batch" and verb != "read")
        self._scope(object_type, write=writes)
        if item == "search" and method == "POST":
            return 200, self.store.search(object_type, body, cap=self.config.search_cap)
        if item == "batch" and method == "POST":
            return self._batch(object_type, verb or "", body)
        if item is None and method == "GET":
            return 200, self._list(object_type, query)
        if item is None and method == "POST":
            created = self.store.create(object_type, body.get("properties"), body.get("associations"))
            return 201, created.render(object_type, list(created.properties))
        if item is not None and verb is None:
            id_property = (query.get("idProperty") or [""])[0] or None
            found = self.store.resolve(object_type, item, id_property)
            if found is None:
                raise HubSpotError(404, "OBJECT_NOT_FOUND", f"Object {item} not found")
            if method == "GET":
                wanted = ",".join(query.get("properties") or []).split(",")
                return 200, found.render(object_type, [w for w in wanted if w])
            if method == "DELETE":
                self.store.archive(object_type, found.id)
                return 204, None
            if method == "PATCH":
                updated = self.store.update(object_type, found.id, body.get("properties"))
                return 200, updated.render(object_type, list(updated.properties))
        raise HubSpotError(405, "VALIDATION_ERROR", f"{method} is not allowed on {path}")

    def _scope(self, object_type: str, *, write: bool) -> None:
        base = "contacts" if object_type in ("calls", "emails", "communications", "notes") else object_type
        needed = f"crm.objects.{base}.{'write' if write else 'read'}"
        if needed not in self.config.scopes:
            raise HubSpotError(403, "MISSING_SCOPES", "This app hasn't been granted all required scopes to make "
                               "this call.", errors=[{"message": f"One or more of the following scopes are "
                                                                 f"required: [{needed}]",
                                                      "context": {"requiredGranularScopes": [needed]}}])

    def _usage(self) -> dict[str, Any]:
        zone = ZoneInfo(self.config.account_timezone)
        resets = datetime.now(zone) + timedelta(seconds=self.limits.seconds_to_midnight())
        return {"results": [{"name": "private-apps-api-calls-daily", "usageLimit": self.config.daily_limit,
                             "currentUsage": self.limits.used_today, "resetsAt": resets.isoformat(),
                             "collectedAt": datetime.now(UTC).isoformat(), "fetchStatus": "SUCCESS"}]}

    def _owners(self, query: dict[str, list[str]]) -> dict[str, Any]:
        if "crm.objects.owners.read" not in self.config.scopes:
            raise HubSpotError(403, "MISSING_SCOPES", "This app hasn't been granted all required scopes to make "
                               "this call.", errors=[{"message": "One or more of the following scopes are required: "
                                                                 "[crm.objects.owners.read]"}])
        wanted = (query.get("email") or [""])[0].strip().lower()
        owners = [{"id": owner_id, "email": email, "type": "PERSON", "archived": False,
                   "firstName": email.split(".")[0].title(), "lastName": email.split("@")[0].split(".")[-1].title()}
                  for owner_id, email in self.config.owners if not wanted or email.lower() == wanted]
        return {"results": owners}

    def _list(self, object_type: str, query: dict[str, list[str]]) -> dict[str, Any]:
        limit = min(100, int((query.get("limit") or ["10"])[0]))
        after = int((query.get("after") or ["0"])[0] or 0)
        wanted = [w for w in ",".join(query.get("properties") or []).split(",") if w]
        with self.store.lock:
            ordered = sorted(self.store.objects[object_type].values(), key=lambda o: int(o.id))
        page = [o for o in ordered if int(o.id) > after][:limit]
        result: dict[str, Any] = {"results": [o.render(object_type, wanted) for o in page]}
        if page and int(page[-1].id) < int(ordered[-1].id):
            result["paging"] = {"next": {"after": page[-1].id}}
        return result

    def _association_batch(self, from_type: str, to_type: str, verb: str, body: Any) -> tuple[int, Any]:
        inputs = body.get("inputs") or []
        if len(inputs) > 1000:
            raise HubSpotError(400, "VALIDATION_ERROR", "at most 1000 inputs")
        results: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for entry in inputs:
            from_id = str((entry.get("from") or {}).get("id") or entry.get("id") or "")
            if verb == "read":
                ids = self.store.associated(from_type, from_id, to_type)
                if ids:
                    results.append({"from": {"id": from_id}, "to": [
                        {"toObjectId": int(i), "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId":
                                                                     ASSOCIATION_TYPES.get((from_type, to_type))}]}
                        for i in ids]})
                continue
            to_id = str((entry.get("to") or {}).get("id") or "")
            try:
                self.store.associate(from_type, from_id, to_type, to_id)
                results.append({"from": {"id": from_id}, "to": {"id": to_id}})
            except HubSpotError as exc:
                errors.append({"status": "error", "category": exc.category, "message": exc.message,
                               "context": {"fromId": [from_id], "toId": [to_id]}})
        return self._batch_result(results, errors, ok=200)

    def _batch_result(self, results: list[dict[str, Any]], errors: list[dict[str, Any]], *,
                      ok: int) -> tuple[int, Any]:
        if self.config.shuffle_batches:
            self._random.shuffle(results)
        now = datetime.now(UTC).isoformat()
        payload: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now}
        if errors:
            payload["numErrors"] = len(errors)
            payload["errors"] = errors
            return 207, payload
        return ok, payload

    def _batch(self, object_type: str, verb: str, body: Any) -> tuple[int, Any]:
        inputs = body.get("inputs")
        if not isinstance(inputs, list) or not inputs:
            raise HubSpotError(400, "VALIDATION_ERROR", "inputs must be a non-empty list")
        if len(inputs) > _BATCH_LIMIT:
            raise HubSpotError(400, "VALIDATION_ERROR", f"at most {_BATCH_LIMIT} inputs are allowed per batch")
        if verb == "read":
            return self._batch_read(object_type, body, inputs)
        if verb == "create":
            return self._batch_write(object_type, inputs, self._create_one, ok=201,
                                     trace_required=True)
        if verb == "update":
            return self._batch_write(object_type, inputs, self._update_one, ok=200)
        if verb == "upsert":
            properties = {str(i.get("idProperty") or "") for i in inputs}
            for name in properties:
                self.store.require_unique(object_type, name)
            keys = [str(i.get("id")) for i in inputs]
            if len(keys) != len(set(keys)):
                raise HubSpotError(400, "VALIDATION_ERROR", "Duplicate IDs found in batch input")
            return self._batch_write(object_type, inputs, self._upsert_one, ok=200)
        raise HubSpotError(404, "OBJECT_NOT_FOUND", f"unknown batch verb {verb}")

    def _batch_read(self, object_type: str, body: dict[str, Any], inputs: list[Any]) -> tuple[int, Any]:
        id_property = body.get("idProperty")
        wanted = body.get("properties") or []
        results, missing = [], []
        for entry in inputs:
            value = str((entry or {}).get("id") or "")
            obj = self.store.resolve(object_type, value, id_property)
            if obj is None:
                missing.append(value)
            else:
                results.append(obj.render(object_type, wanted))
        errors = [{"status": "error", "category": "OBJECT_NOT_FOUND", "message": "Could not get some "
                   f"{object_type} objects, they may be deleted or not exist.", "context": {"ids": missing}}
                  ] if missing else []
        return self._batch_result(results, errors, ok=200)

    def _batch_write(self, object_type: str, inputs: list[Any], write: Any, *, ok: int,
                     trace_required: bool = False) -> tuple[int, Any]:
        traced = all(isinstance(i, dict) and i.get("objectWriteTraceId") for i in inputs)
        if not self.config.multi_status:
            self._prevalidate(object_type, inputs, creating=write == self._create_one)
        results, errors = [], []
        for entry in inputs:
            try:
                results.append(write(object_type, entry))
            except HubSpotError as exc:
                if trace_required and not traced:
                    for done in results:  # without objectWriteTraceId one bad input fails the whole batch
                        self.store.archive(object_type, str(done["id"]))
                    raise
                context: dict[str, Any] = {**exc.context, "ids": [str(entry.get("id"))] if entry.get("id") else []}
                if entry.get("objectWriteTraceId"):
                    context["objectWriteTraceId"] = [str(entry["objectWriteTraceId"])]
                errors.append({"status": "error", "category": exc.category, "message": exc.message,
                               "errors": exc.errors, "context": context})
        return self._batch_result(results, errors, ok=ok)

    def _prevalidate(self, object_type: str, inputs: list[Any], *, creating: bool) -> None:
        """All-or-nothing mode: the first invalid input refuses the whole batch before any write."""
        for entry in inputs:
            properties = dict(entry.get("properties") or {})
            existing = None
            if entry.get("idProperty") or not creating:
                existing = self.store.resolve(object_type, str(entry.get("id")), entry.get("idProperty"))
            if creating or existing is None:
                if entry.get("idProperty"):
                    properties[str(entry["idProperty"])] = str(entry.get("id"))
                self.store.check(object_type, properties, None, creating=True)
            else:
                self.store.check(object_type, properties, existing.id, creating=False)

    @staticmethod
    def _rendered(object_type: str, obj: StoredObject, entry: dict[str, Any], **extra: Any) -> dict[str, Any]:
        rendered = obj.render(object_type, list(obj.properties))
        if entry.get("objectWriteTraceId"):
            rendered["objectWriteTraceId"] = entry["objectWriteTraceId"]
        return {**rendered, **extra}

    def _create_one(self, object_type: str, entry: dict[str, Any]) -> dict[str, Any]:
        obj = self.store.create(object_type, entry.get("properties"), entry.get("associations"))
        return self._rendered(object_type, obj, entry)

    def _update_one(self, object_type: str, entry: dict[str, Any]) -> dict[str, Any]:
        obj = self.store.resolve(object_type, str(entry.get("id")), entry.get("idProperty"))
        if obj is None:
            raise HubSpotError(404, "OBJECT_NOT_FOUND", f"Object {entry.get('id')} not found")
        return self._rendered(object_type, self.store.update(object_type, obj.id, entry.get("properties")), entry)

    def _upsert_one(self, object_type: str, entry: dict[str, Any]) -> dict[str, Any]:
        id_property = str(entry.get("idProperty"))
        value = str(entry.get("id") or "")
        properties = dict(entry.get("properties") or {})
        with self.store.lock:
            obj = self.store.resolve(object_type, value, id_property)
            if obj is not None:
                return self._rendered(object_type, self.store.update(object_type, obj.id, properties), entry,
                                      new=False)
            properties[id_property] = value
            return self._rendered(object_type, self.store.create(object_type, properties), entry, new=True)


def seed_demo(simulator: HubSpotSimulator, seed: str, *, companies: int = 12, contacts: int = 40) -> None:
    """Deterministic companies and contacts (phones, e-mails, primary companies), modified over 3 days."""
    rng = random.Random(seed)
    store = simulator.store
    now = datetime.now(UTC).replace(microsecond=0)
    zone = ZoneInfo(simulator.config.account_timezone)
    local = now.astimezone(zone)
    since_midnight = max(0, int((local - local.replace(hour=0, minute=0, second=0)).total_seconds()))

    def modified(index: int) -> datetime:
        """A third of the records changed today (the account's day), the rest over the last 3 days."""
        seconds = rng.randint(0, since_midnight) if index % 3 == 0 else rng.randint(0, 3 * 86400)
        return now - timedelta(seconds=seconds)

    mobile = ["602", "603", "604", "605", "608", "720", "721", "724", "731", "732", "736", "737", "739", "773",
              "775", "777", "778"]
    first = ["Jana", "Petr", "Eva", "Tomáš", "Lucie", "Martin", "Klára", "Jakub", "Tereza", "Ondřej"]
    last = ["Nováková", "Svoboda", "Dvořáková", "Černý", "Procházková", "Kučera", "Veselá", "Horák"]
    company_ids = []
    for index in range(companies):
        at = modified(index)
        obj = store.create("companies", {"name": f"Firma {index + 1} s.r.o.", "domain": f"firma{index + 1}.cz",
                                         "phone": f"+420 2{rng.randint(10, 99)} {rng.randint(100, 999)} "
                                                  f"{rng.randint(100, 999)}", "city": "Praha", "country": "CZ"},
                           at=at, created=at - timedelta(days=30))
        company_ids.append(obj.id)
    for index in range(contacts):
        at = modified(index)
        given, family = rng.choice(first), rng.choice(last)
        company = rng.choice(company_ids)
        obj = store.create("contacts", {
            "firstname": given, "lastname": family, "email": f"contact{index + 1}@example.cz",
            "phone": f"+420 {rng.choice(mobile)} {rng.randint(100, 999)} {rng.randint(100, 999)}",
            "jobtitle": rng.choice(["Nákup", "Ředitel", "Účetní", None]), "associatedcompanyid": company,
        }, at=at, created=at - timedelta(days=20))
        store.associations.add(("contacts", obj.id, "companies", company))


@dataclass
class HubSpotSimHandle:
    """A running simulator: its base URL and token, and the app for in-process control."""

    app: HubSpotSimulator
    base_url: str

    @property
    def token(self) -> str:
        return self.app.config.token

    @property
    def store(self) -> SimStore:
        return self.app.store

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """``crm:`` settings of an adapter pointed at this simulator (tests and the demo)."""
        return {"access_token": self.token, "base_url": self.base_url, **overrides}

    def add_company(self, properties: dict[str, Any], modified: datetime) -> str:
        return self.store.create("companies", properties, at=modified, created=modified).id

    def add_contact(self, properties: dict[str, Any], modified: datetime, *, company_id: str | None = None) -> str:
        props = dict(properties)
        if company_id is not None:
            props["associatedcompanyid"] = company_id
        record_id = self.store.create("contacts", props, at=modified, created=modified).id
        if company_id is not None:
            self.store.associations.add(("contacts", record_id, "companies", company_id))
        return record_id

    def touch(self, object_type: str, record_id: str, properties: dict[str, Any], modified: datetime) -> None:
        self.store.update(object_type, record_id, properties, at=modified)

    def objects(self, object_type: str) -> list[StoredObject]:
        with self.store.lock:
            return list(self.store.objects[object_type].values())

    def find(self, object_type: str, prop: str, value: str) -> StoredObject | None:
        return next((o for o in self.objects(object_type) if o.properties.get(prop) == value), None)


@contextmanager
def run_hubspot_simulator(config: HubSpotSimConfig | None = None, **overrides: Any) -> Iterator[HubSpotSimHandle]:
    """Serve a simulator on ``host:port`` (port 0 = a free one) in a background thread; stop on exit."""
    effective = replace(config or HubSpotSimConfig(), **overrides)
    app = HubSpotSimulator(effective)

    def save_state() -> None:
        if effective.state_path is not None:
            app.store.dump(effective.state_path)

    with serve_in_thread(
        app, host=effective.host, port=effective.port, thread_name="hubspot-sim", what="the HubSpot simulator",
        after_stop=save_state,
    ) as base_url:
        yield HubSpotSimHandle(app, base_url)
