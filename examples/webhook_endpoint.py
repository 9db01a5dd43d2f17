"""A Daktela webhook endpoint in your own web app (the SDK's ``examples/webhook-daktela.php``).

    python examples/webhook_endpoint.py            # serve on 127.0.0.1:8090 (Ctrl+C stops)
    python examples/webhook_endpoint.py --selftest # post one Daktela event to itself and exit

A Starlette app with one route, ``POST /daktela-webhook``: it checks the ``X-Webhook-Secret``
header in constant time (401 otherwise), parses the Daktela automation body (JSON or form:
``{event, name, ...}``), turns the Daktela name back into the record to sync, and syncs it at
once through ``crmsync_pipelines.sync_ids`` (same diff and ledger as every other run). The
answer is the SDK's: 200 when nothing failed, 207 when a record failed, with counts and errors.

This syncs inside the request. The bundled receiver (``crmsync serve-webhooks``,
docs/webhooks.md) is what to run in production: it only stores each event durably and answers
202, and Dagster syncs them in batches with retries, so a slow CRM never times Daktela out.
"""

from __future__ import annotations

import hmac
import json
import os
import sys
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import crmsync_pipelines
from crmsync_pipelines.config import load_config
from crmsync_pipelines.webhooks.parsing import PayloadError, decode_body, parse_daktela_event
from crmsync_pipelines.webhooks.resolution import name_resolver


def make_app(config_path: Path) -> Starlette:
    config = load_config(config_path)
    secret = config.webhook.secret
    if not secret:
        raise SystemExit("set webhook.secret in sync.yaml (WEBHOOK_SECRET): an endpoint without one syncs "
                         "whatever anyone posts")

    def crm_id(entity: str, daktela_name: str) -> str | None:
        """Daktela name -> CRM id (``crm_12`` -> ``12``) by inverting the mapping's name rule."""
        if entity == "activity":
            return daktela_name  # activities are synced by their Daktela name
        entry = config.entity(entity)
        return name_resolver(entry.mapping if entry else None, entity)(daktela_name)

    async def daktela_webhook(request: Request) -> JSONResponse:
        given = request.headers.get("x-webhook-secret", "")
        if not hmac.compare_digest(given.encode(), secret.encode()):
            return JSONResponse({"status": "error", "message": "invalid webhook secret"}, status_code=401)
        try:
            event = parse_daktela_event(decode_body(await request.body(), request.headers.get("content-type")))
        except PayloadError as exc:
            return JSONResponse({"status": "error", "message": exc.message}, status_code=exc.status)
        record_id = crm_id(event.entity, event.record_id)
        if record_id is None or event.is_delete:  # not one of ours, or nothing to sync
            return JSONResponse({"status": "ok", "total": 0, "ignored": event.event})
        result = crmsync_pipelines.sync_ids(config, event.entity, [record_id])
        body: dict[str, Any] = {"status": "ok", "total": len(result.records)}
        for outcome in ("created", "updated", "unchanged", "skipped", "failed", "not_found"):
            body[outcome] = sum(1 for r in result.records if r.outcome == outcome)
        body["errors"] = [{"source_id": r.source_id, "message": r.error_message or r.outcome}
                          for r in result.records if not r.ok]
        return JSONResponse(body, status_code=200 if result.ok else 207)

    return Starlette(routes=[Route("/daktela-webhook", daktela_webhook, methods=["POST"])])


if __name__ == "__main__":
    os.environ.setdefault("WEBHOOK_SECRET", "example-secret")  # the demo world's sync.yaml reads it
    from bootstrap import world

    with world() as config:
        app = make_app(config)
        if "--selftest" in sys.argv:
            from starlette.testclient import TestClient

            from crmsync_pipelines.daktela.adapter import DaktelaAdapter

            # A call closed in Daktela: the automation posts its activity name (here: the first one).
            daktela = DaktelaAdapter.from_config(load_config(config).daktela)
            try:
                name = str(daktela.client.list("activities", take=1, fields=["name"]).records[0]["name"])
            finally:
                daktela.client.close()
            with TestClient(app) as client:
                answer = client.post("/daktela-webhook", json={"event": "call_close", "name": name},
                                     headers={"X-Webhook-Secret": os.environ["WEBHOOK_SECRET"]})
                print(answer.status_code, json.dumps(answer.json(), sort_keys=True))
                refused = client.post("/daktela-webhook", json={"event": "call_close", "name": name},
                                      headers={"X-Webhook-Secret": "wrong"})
                print(refused.status_code, json.dumps(refused.json(), sort_keys=True))
        else:
            import uvicorn

            uvicorn.run(app, host="127.0.0.1", port=8090)
