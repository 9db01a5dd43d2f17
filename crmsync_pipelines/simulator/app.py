"""The ASGI application: the ``/api/v6`` wire protocol plus the ``/_sim`` control API.

Routing is done on the raw path so names containing ``%2F``, ``%2E`` or ``%40`` decode
exactly as on a real instance (the router strips only the trailing ``.json``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import asdict
from typing import Any
from urllib.parse import parse_qsl, unquote

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from crmsync_pipelines.phpquery import parse_query
from crmsync_pipelines.simulator.config import Fault, RequestRecord, SimulatorConfig
from crmsync_pipelines.simulator.faults import FaultBook, RateLimiter, RequestLog
from crmsync_pipelines.simulator.messages import ApiError
from crmsync_pipelines.simulator.models import MODELS
from crmsync_pipelines.simulator.records import local_now
from crmsync_pipelines.simulator.state import SimulatorState
from crmsync_pipelines.simulator.webhook_emitter import WebhookEmitter, WebhookTarget

API_PREFIX = "/api/v6/"
CONTROL_PREFIX = "/_sim/"
_REDACTED = "***"
_HTML_ERROR = b"<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>"


class SimulatedReset(Exception):
    """Raised mid-response so uvicorn drops the connection, like a peer reset."""


class _DropResetNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], SimulatedReset))


logging.getLogger("uvicorn.error").addFilter(_DropResetNoise())


class _ResetResponse(Response):
    """Starts a response that promises a body and never finishes it."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")]})
        await send({"type": "http.response.body", "body": b'{"error": [], "res', "more_body": True})
        raise SimulatedReset("simulated connection reset")


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(body, status_code=status, media_type="application/json", headers=headers)


class SimulatorApp:
    """The running simulator: state, faults, limiter, log and webhooks behind one ASGI callable."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.state = SimulatorState(config)
        self.faults = FaultBook()
        self.limiter = RateLimiter(config.rate_limit, config.rate_window_s, config.rate_limit_retry_after)
        self.log = RequestLog(config.request_log_max)
        self.latency_ms = config.latency_ms
        #: API requests being served right now (for ``max_concurrent``); one event loop, no lock needed.
        self.in_flight = 0
        target = None
        if config.webhook_url:
            target = WebhookTarget(config.webhook_url, config.webhook_secret, config.webhook_format)
        self.emitter = WebhookEmitter(target)
        self.state.activity_listener = self.emitter.emit

    def close(self) -> None:
        self.emitter.close()
        self.state.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        path = request.url.path
        if path.startswith(CONTROL_PREFIX):
            response = await self._control(request, path)
        else:
            response = await self._api_logged(request, path)
        await response(scope, receive, send)

    # ------------------------------------------------------------------ envelopes

    def _envelope(self, status: int, result: Any, error: Any = None) -> Response:
        payload: dict[str, Any] = {"error": [] if error is None else error, "result": result,
                                   "_time": local_now(self.config.timezone)}
        if not self.config.omit_timezone:
            payload["_timezone"] = self.config.timezone
        return json_response(status, payload)

    def _error(self, exc: ApiError) -> Response:
        return self._envelope(exc.status, exc.result, exc.error)

    # ------------------------------------------------------------------ API

    async def _api_logged(self, request: Request, path: str) -> Response:
        raw_query = request.scope.get("query_string", b"").decode("latin-1")
        query = parse_query(raw_query)
        body = await request.body()
        try:
            body_json: Any = json.loads(body) if body else None
        except ValueError:
            body_json = None
        record = RequestRecord(
            method=request.method, path=path, query=_redact_query(query), raw_query=_redact_raw(raw_query),
            headers=_redact_headers(dict(request.headers)), json=body_json, status=0, at=time.time(),
            peer=f"{request.client.host}:{request.client.port}" if request.client else "",
        )
        try:
            response = await self._api(request, path, query, body, body_json, record)
        finally:
            self.log.add(record)
        return response

    async def _api(
        self, request: Request, path: str, query: dict[str, Any], body: bytes, body_json: Any,
        record: RequestRecord,
    ) -> Response:
        method = request.method
        retry_after = self.limiter.check()
        if retry_after is not None:
            record.status, record.fault = 429, "rate_limiter"
            return self._rate_limited(retry_after)
        cap = self.config.max_concurrent
        if cap is not None and self.in_flight >= cap:
            record.status, record.fault = 429, "max_concurrent"
            return self._rate_limited("1")
        self.in_flight += 1
        try:
            return await self._served(request, method, path, query, body, body_json, record)
        finally:
            self.in_flight -= 1

    async def _served(
        self, request: Request, method: str, path: str, query: dict[str, Any], body: bytes, body_json: Any,
        record: RequestRecord,
    ) -> Response:
        fault = self.faults.take(method, path)
        if fault is not None:
            record.fault = fault.kind
            early = await self._early_fault(fault)
            if early is not None:
                record.status = early.status_code if fault.kind != "reset" else 0
                return early
        if self.latency_ms > 0:
            await asyncio.sleep(self.latency_ms / 1000)
        response = self._dispatch(request, path, query, body, body_json)
        if fault is not None and fault.kind == "malformed_json":
            response = Response(bytes(response.body)[: max(1, len(response.body) // 2)], 200,
                                media_type="application/json")
        elif fault is not None and fault.kind == "status" and fault.apply_after:
            response = self._status_fault(fault)
        record.status = response.status_code
        return response

    def _rate_limited(self, retry_after: str) -> Response:
        response = self._envelope(429, None, [self.state.msg("rate_limited")])
        response.headers["Retry-After"] = retry_after
        return response

    async def _early_fault(self, fault: Fault) -> Response | None:
        if fault.kind == "rate_limit":
            return self._rate_limited(fault.retry_after or "1")
        if fault.kind == "status" and not fault.apply_after:
            return self._status_fault(fault)
        if fault.kind == "reset":
            return _ResetResponse()
        if fault.kind == "slow":
            await asyncio.sleep(fault.delay_s)
        return None

    @staticmethod
    def _status_fault(fault: Fault) -> Response:
        if fault.body == "html":
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
            return Response(_HTML_ERROR, fault.status, media_type="text/html", headers=headers)
        response = Response(b"", fault.status)
        if fault.retry_after:
            response.headers["Retry-After"] = fault.retry_after
        return response

    def _dispatch(self, request: Request, path: str, query: dict[str, Any], body: bytes, body_json: Any) -> Response:
        raw_path = request.scope.get("raw_path") or path.encode()
        raw = raw_path.decode("latin-1").split("?", 1)[0]
        if not raw.startswith(API_PREFIX) or not raw.endswith(".json"):
            return self._envelope(404, None, [self.state.msg("unknown_model")])
        segments = [unquote(s) for s in raw[len(API_PREFIX) : -len(".json")].split("/")]
        method = request.method
        try:
            if segments == ["login"]:
                return self._login(request, method, query, body, body_json)
            user = self.state.authenticate(_token(request, query))
            if user is None:
                return self._envelope(401, None, [self.state.msg("unauthorized")])
            if segments == ["whoim"]:
                return self._envelope(200, self.state.whoami(user))
            if segments[0] in self.config.forbidden_models:
                return self._envelope(403, None, [self.state.msg("forbidden")])
            return self._model_route(method, segments, query, body_json, body)
        except ApiError as exc:
            return self._error(exc)

    def _model_route(
        self, method: str, segments: list[str], query: dict[str, Any], body_json: Any, body: bytes
    ) -> Response:
        state = self.state
        if body and body_json is None and method in ("POST", "PUT"):
            raise ApiError(400, [state.msg("bad_body")])
        if len(segments) == 1:
            if method == "GET":
                return self._envelope(200, self._list_result(state.api_list(segments[0], query)))
            if method == "POST":
                return self._envelope(201, state.api_create(segments[0], body_json))
        elif len(segments) == 2:
            model, name = segments
            if method == "GET":
                return self._envelope(200, state.api_get(model, name, query))
            if method == "PUT":
                return self._envelope(200, state.api_update(model, name, body_json))
            if method == "DELETE":
                state.api_delete(model, name)
                return Response(b"", 204)
        elif len(segments) == 3 and method == "GET":
            link = state.relation_link(*segments)
            return self._envelope(200, self._list_result(state.api_list("activities", query, link)))
        else:
            raise ApiError(404, [state.msg("unknown_model")])
        state.model(segments[0])
        return self._envelope(405, None, [f"method {method} not allowed"])

    def _list_result(self, result: dict[str, Any]) -> dict[str, Any]:
        if self.config.total_as_string:
            result["total"] = str(result["total"])
        if self.config.data_as_object:
            result["data"] = {str(r.get("name", r.get("id_call", i))): r for i, r in enumerate(result["data"])}
        return result

    def _login(
        self, request: Request, method: str, query: dict[str, Any], body: bytes, body_json: Any
    ) -> Response:
        fields: dict[str, Any] = {k: v for k, v in query.items() if isinstance(v, str)}
        if isinstance(body_json, dict):
            fields.update(body_json)
        elif body and "form" in request.headers.get("content-type", ""):
            fields.update(dict(parse_qsl(body.decode())))
        if method == "PUT":
            return self._envelope(200, self.state.refresh(str(fields.get("refreshToken", ""))))
        if method != "POST":
            return self._envelope(405, None, [f"method {method} not allowed"])
        tokens = self.state.login(str(fields.get("username", "")), str(fields.get("password", "")))
        if str(fields.get("only_token", "")).lower() in ("1", "true"):
            return self._envelope(200, tokens["accessToken"])
        return self._envelope(200, tokens)

    # ------------------------------------------------------------------ control

    async def _control(self, request: Request, path: str) -> Response:
        query = parse_query(request.scope.get("query_string", b"").decode("latin-1"))
        if self.state.authenticate(_token(request, query)) is None:
            return json_response(401, {"error": "unauthorized"})
        body = await request.body()
        try:
            data: Any = json.loads(body) if body else {}
            return self._control_route(request.method, path[len(CONTROL_PREFIX) :].split("/"), query, data)
        except (ValueError, TypeError) as exc:
            return json_response(400, {"error": str(exc)})
        except KeyError as exc:
            return json_response(404, {"error": str(exc)})
        except ApiError as exc:
            return json_response(exc.status, {"error": exc.error, "result": exc.result})

    def _control_route(self, method: str, parts: list[str], query: dict[str, Any], data: Any) -> Response:
        route = (method, parts[0] if parts else "")
        if route == ("GET", "stats"):
            return json_response(200, self.stats(query.get("method"), query.get("path")))
        if route == ("POST", "faults"):
            fault = Fault.from_dict(data)
            self.faults.add(fault)
            return json_response(201, asdict(fault))
        if route == ("DELETE", "faults"):
            self.faults.clear()
            return Response(b"", 204)
        if route == ("POST", "latency"):
            self.latency_ms = float(data["ms"])
            return json_response(200, {"latency_ms": self.latency_ms})
        if route == ("POST", "reset-log"):
            self.log.reset()
            return Response(b"", 204)
        if route == ("POST", "webhook"):
            url = data.get("url")
            self.emitter.configure(
                WebhookTarget(url, data.get("secret"), data.get("format", "json")) if url else None
            )
            return json_response(200, {"url": url, "format": data.get("format", "json")})
        if method == "POST" and len(parts) == 2 and parts[0] == "records":
            return json_response(201, self.state.insert(parts[1], data))
        if method == "PUT" and len(parts) == 3 and parts[0] == "records":
            return json_response(200, self.state.update_record(parts[1], unquote(parts[2]), data))
        if method == "GET" and len(parts) == 3 and parts[0] == "records":
            found = self.state.get(parts[1], unquote(parts[2]))
            if found is None:
                raise KeyError(f"{parts[1]}/{parts[2]} does not exist")
            return json_response(200, found)
        if method == "POST" and len(parts) == 3 and parts[0] == "activities" and parts[2] == "close":
            return json_response(200, self.state.close_activity(unquote(parts[1]), **data))
        return json_response(404, {"error": f"unknown control route {method} /_sim/{'/'.join(parts)}"})

    def stats(self, method: Any = None, path: Any = None) -> dict[str, Any]:
        stats: dict[str, Any] = {
            "requests": sum(self.log.by_route.values()),
            "by_route": dict(self.log.by_route),
            "by_status": {str(k): v for k, v in self.log.by_status.items()},
            "records": {name: self.state.count(name) for name in MODELS},
            "faults": [asdict(f) for f in self.faults.active()],
            "latency_ms": self.latency_ms,
            "webhooks": {"sent": self.emitter.sent, "failed": self.emitter.failed},
        }
        if method is not None or path is not None:
            stats["count"] = self.log.count(
                method if isinstance(method, str) else None, path if isinstance(path, str) else None
            )
        return stats


def _token(request: Request, query: dict[str, Any]) -> str | None:
    token = request.headers.get("x-auth-token")
    if token:
        return token
    from_query = query.get("accessToken")
    if isinstance(from_query, str) and from_query:
        return from_query
    return request.cookies.get("c_user") or None


def _redact_headers(headers: dict[str, str]) -> dict[str, str]:
    out = dict(headers)
    if "x-auth-token" in out:
        out["x-auth-token"] = _REDACTED
    if "cookie" in out:
        out["cookie"] = _REDACTED
    if "authorization" in out:
        out["authorization"] = _REDACTED
    return out


def _redact_query(query: dict[str, Any]) -> dict[str, Any]:
    return {k: (_REDACTED if k == "accessToken" else v) for k, v in query.items()}


def _redact_raw(raw_query: str) -> str:
    parts = []
    for pair in raw_query.split("&"):
        key = pair.partition("=")[0]
        parts.append(f"{key}={_REDACTED}" if key == "accessToken" else pair)
    return "&".join(parts)
