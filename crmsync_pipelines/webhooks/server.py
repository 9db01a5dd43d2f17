"""Serving the receiver with uvicorn: in the foreground (CLI) or in a thread (tests, demos).

The thread variant binds its socket before uvicorn starts, so callers can ask for port 0 and
learn the real port without a race between "find a free port" and "bind it".
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from crmsync_pipelines.config.models import SyncConfig
from crmsync_pipelines.webhooks.app import create_app
from crmsync_pipelines.webhooks.inbox import Inbox


def enabled_policy(config: SyncConfig) -> tuple[set[str], set[str]]:
    """``(enabled entities, enabled activity types)`` as the receiver's policy needs them."""
    entities: set[str] = {str(name) for name, entry in config.sync.entities.items() if entry.enabled}
    activity = config.entity("activity")
    types = {str(t.value) for t in activity.activity_types} if activity is not None else set()
    return entities, types


def app_from_config(
    config: SyncConfig, *, insecure_dev: bool = False, inbox_path: Path | None = None
) -> tuple[Starlette, Inbox]:
    """The receiver configured by ``sync.yaml``; the caller closes the returned inbox."""
    entities, types = enabled_policy(config)
    inbox = Inbox(inbox_path or config.webhook.inbox_path)
    try:
        app = create_app(
            inbox=inbox,
            secret=config.webhook.secret,
            insecure_dev=insecure_dev,
            enabled_entities=entities,
            activity_types=types,
            max_body_bytes=config.webhook.max_body_bytes,
        )
    except BaseException:
        inbox.close()
        raise
    return app, inbox


def serve(app: Starlette, *, host: str, port: int, log_level: str = "info") -> None:
    """Run until SIGINT/SIGTERM (uvicorn finishes in-flight requests first)."""
    uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level)).run()


class BackgroundServer:
    """uvicorn serving ``app`` from a daemon thread on an already-bound loopback socket."""

    def __init__(self, app: Starlette, *, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning") -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host = host
        self.port = int(self._socket.getsockname()[1])
        self._server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the webhook receiver did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout_s)
        self._socket.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
