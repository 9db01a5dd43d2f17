"""Sends Daktela-automation-style webhooks (the PHP SDK convention) from a background thread.

A real instance fires its HTTP actions asynchronously; so does this emitter, so a slow or
dead receiver never delays an API answer.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from dataclasses import dataclass
from typing import Any, Literal

import httpx

log = logging.getLogger(__name__)

#: fields of an activity sent as template data; receivers must re-read the record over REST.
_DATA_FIELDS = (
    "name", "type", "action", "title", "time", "time_open", "time_close", "duration",
    "queue", "user", "contact", "item", "ticket",
)


@dataclass
class WebhookTarget:
    url: str
    secret: str | None = None
    format: Literal["json", "form"] = "json"


def form_fields(payload: dict[str, Any]) -> dict[str, str]:
    """Flatten ``{event, name, data{...}}`` into PHP form fields such as ``data[time]``."""
    fields = {"event": str(payload["event"]), "name": str(payload["name"])}
    for key, value in payload["data"].items():
        fields[f"data[{key}]"] = "" if value is None else str(value)
    return fields


class WebhookEmitter:
    """Queue of pending webhook POSTs drained by one daemon thread."""

    def __init__(self, target: WebhookTarget | None = None, timeout_s: float = 5.0) -> None:
        self.target = target
        self._queue: queue.Queue[tuple[WebhookTarget, dict[str, Any]] | None] = queue.Queue()
        self._timeout_s = timeout_s
        self._idle = threading.Condition()
        self._pending = 0
        self.sent = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name="sim-webhooks", daemon=True)
        self._thread.start()

    def configure(self, target: WebhookTarget | None) -> None:
        self.target = target

    def emit(self, event: str, activity: dict[str, Any]) -> None:
        """Queue one event for an activity; never blocks and never raises."""
        target = self.target
        if target is None:
            return
        data = {key: activity.get(key) for key in _DATA_FIELDS}
        with self._idle:
            self._pending += 1
        self._queue.put((target, {"event": event, "name": activity.get("name"), "data": data}))

    def wait_idle(self, timeout_s: float = 5.0) -> bool:
        """Block until every queued webhook was attempted (for tests); False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout=timeout_s)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=self._timeout_s + 1)

    def _run(self) -> None:
        client: httpx.Client | None = None  # created on first use: most simulators never send one
        try:
            while True:
                item = self._queue.get()
                if item is None:
                    return
                target, payload = item
                try:
                    client = client or httpx.Client(timeout=self._timeout_s)
                    self._send(client, target, payload)
                    self.sent += 1
                except httpx.HTTPError as exc:
                    self.failed += 1
                    log.warning("simulator webhook %s to %s failed: %s", payload["event"], target.url, exc)
                finally:
                    with self._idle:
                        self._pending -= 1
                        self._idle.notify_all()
        finally:
            if client is not None:
                client.close()

    @staticmethod
    def _send(client: httpx.Client, target: WebhookTarget, payload: dict[str, Any]) -> None:
        headers = {"X-Webhook-Secret": target.secret} if target.secret else {}
        if target.format == "form":
            response = client.post(target.url, data=form_fields(payload), headers=headers)
        else:
            body = json.dumps(payload, ensure_ascii=False).encode()
            headers["Content-Type"] = "application/json"
            response = client.post(target.url, content=body, headers=headers)
        response.raise_for_status()
