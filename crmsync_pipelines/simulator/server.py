"""Serving the Daktela simulator (uvicorn on loopback in a background thread), and the test handle."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from crmsync_pipelines.serving import serve_in_thread
from crmsync_pipelines.simulator.app import SimulatorApp
from crmsync_pipelines.simulator.config import Fault, RequestRecord, SimulatorConfig
from crmsync_pipelines.simulator.state import SimulatorState
from crmsync_pipelines.simulator.webhook_emitter import WebhookTarget


class SimulatorHandle:
    """A running simulator: its URL and token, plus in-process control for tests."""

    def __init__(self, app: SimulatorApp, base_url: str) -> None:
        self._app = app
        self.base_url = base_url
        self.token = app.config.token
        self.config = app.config

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/v6"

    @property
    def state(self) -> SimulatorState:
        return self._app.state

    # observability
    @property
    def request_log(self) -> list[RequestRecord]:
        return self._app.log.snapshot()

    def request_count(self, method: str | None = None, path: str | None = None) -> int:
        return self._app.log.count(method, path)

    def reset_log(self) -> None:
        self._app.log.reset()

    def stats(self) -> dict[str, Any]:
        return self._app.stats()

    # faults and timing
    def add_fault(self, fault: Fault) -> None:
        self._app.faults.add(fault)

    def clear_faults(self) -> None:
        self._app.faults.clear()

    def set_latency(self, ms: float) -> None:
        self._app.latency_ms = ms

    # server-side data access (not counted as API requests)
    def insert(self, model: str, record: dict[str, Any]) -> dict[str, Any]:
        return self.state.insert(model, record)

    def insert_many(self, model: str, records: list[dict[str, Any]]) -> int:
        return self.state.insert_many(model, records)

    def update_record(self, model: str, name: str, changes: dict[str, Any]) -> dict[str, Any]:
        return self.state.update_record(model, name, changes)

    def get(self, model: str, name: str) -> dict[str, Any] | None:
        return self.state.get(model, name)

    def all(self, model: str) -> list[dict[str, Any]]:
        return self.state.all(model)

    def count(self, model: str) -> int:
        return self.state.count(model)

    def close_activity(self, name: str, **changes: Any) -> dict[str, Any]:
        return self.state.close_activity(name, **changes)

    # webhooks
    def configure_webhook(self, url: str | None, secret: str | None = None, fmt: str = "json") -> None:
        self._app.emitter.configure(WebhookTarget(url, secret, fmt) if url else None)  # type: ignore[arg-type]

    def wait_webhooks(self, timeout_s: float = 5.0) -> bool:
        return self._app.emitter.wait_idle(timeout_s)

    @property
    def webhooks_sent(self) -> int:
        return self._app.emitter.sent


@contextmanager
def run_simulator(config: SimulatorConfig | None = None, **overrides: Any) -> Iterator[SimulatorHandle]:
    """Start uvicorn on 127.0.0.1 (port 0 = a free port) in a background thread; stop on exit."""
    effective = (config or SimulatorConfig()).with_overrides(overrides)
    app = SimulatorApp(effective)
    try:
        with serve_in_thread(
            app, host=effective.host, port=effective.port, thread_name="daktela-sim", what="the Daktela simulator"
        ) as base_url:
            yield SimulatorHandle(app, base_url)
    finally:
        app.close()
