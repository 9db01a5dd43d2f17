"""Serving the receiver with uvicorn: in the foreground (CLI) or in a thread (tests, demos).

The thread variant binds its socket before uvicorn starts, so callers can ask for port 0 and
learn the real port without a race between "find a free port" and "bind it".

uvicorn's access log is off in both: it writes the full URL, query string included, and a
sender that puts the secret in the URL would leak it there. The app's own access log
(``crmsync.webhooks.access``, see ``app.AccessLog``) writes the path only.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp

from crmsync_pipelines.config.loader import WebhookSettings, webhook_settings
from crmsync_pipelines.config.models import SyncConfig
from crmsync_pipelines.webhooks.app import create_app
from crmsync_pipelines.webhooks.inbox import Inbox
from crmsync_pipelines.webhooks.limits import BodyLimits


def app_from_config(
    config: SyncConfig | WebhookSettings, *, insecure_dev: bool = False, inbox_path: Path | None = None
) -> tuple[ASGIApp, Inbox]:
    """The receiver configured by ``sync.yaml``; the caller closes the returned inbox.

    ``config`` is a full ``SyncConfig`` or, as ``serve-webhooks`` uses it, the
    ``WebhookSettings`` of ``load_webhook_settings`` (only what the receiver reads).
    Raises ``ConfigError`` for an unusable secret.
    """
    settings = webhook_settings(config) if isinstance(config, SyncConfig) else config
    section = settings.webhook
    inbox = Inbox(inbox_path or section.inbox_path)
    try:
        app = create_app(
            inbox=inbox,
            secret=section.secret,
            insecure_dev=insecure_dev,
            enabled_entities=set(settings.enabled_entities),
            activity_types=set(settings.activity_types),
            limits=BodyLimits(
                max_body_bytes=section.max_body_bytes,
                max_depth=section.max_depth,
                max_keys=section.max_keys,
                max_string_length=section.max_string_length,
            ),
        )
    except BaseException:
        inbox.close()
        raise
    return app, inbox


def serve(app: ASGIApp, *, host: str, port: int, log_level: str = "info") -> None:
    """Run until SIGINT/SIGTERM (uvicorn finishes in-flight requests first)."""
    uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False)).run()


class BackgroundServer:
    """uvicorn serving ``app`` from a daemon thread on an already-bound loopback socket."""

    def __init__(self, app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning") -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host = host
        self.port = int(self._socket.getsockname()[1])
        self._server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, lifespan="off", access_log=False))
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
