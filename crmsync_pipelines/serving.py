"""Serving an ASGI app with uvicorn on loopback from a background thread (the bundled simulators).

The socket is bound before the server starts, so ``port=0`` yields a free port that is known
up front and never races with another test.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp

START_TIMEOUT_S = 10.0
"""How long a server may take to start listening before :func:`serve_in_thread` gives up."""


class QuickStopServer(uvicorn.Server):
    """uvicorn polls its exit flag every 100 ms; this polls every 10 ms (tests start and stop hundreds)."""

    async def main_loop(self) -> None:
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            await asyncio.sleep(0.01)


@contextmanager
def serve_in_thread(
    app: ASGIApp,
    *,
    host: str,
    port: int,
    thread_name: str,
    what: str,
    after_stop: Callable[[], None] | None = None,
) -> Iterator[str]:
    """Serve ``app`` on ``host:port`` (port 0 = a free one) from a daemon thread; stop on exit.

    Yields the base URL ``http://<host>:<port>`` once uvicorn listens. The thread is named
    ``<thread_name>-<port>``. ``after_stop`` runs once the server has stopped and its socket is
    closed (not when it never started).

    Raises:
        OSError: ``host:port`` cannot be bound.
        RuntimeError: ``"<what> did not start"`` when uvicorn exits or is not listening within
            :data:`START_TIMEOUT_S` seconds.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    bound_port = sock.getsockname()[1]
    server = QuickStopServer(
        uvicorn.Config(
            app, lifespan="off", log_level="warning", access_log=False, timeout_graceful_shutdown=1,
            log_config=None,
        )
    )
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"{thread_name}-{bound_port}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"{what} did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()
        if after_stop is not None:
            after_stop()


__all__ = ["START_TIMEOUT_S", "QuickStopServer", "serve_in_thread"]
