"""Persistence across restarts, the webhook emitter and the ``crmsync simulator`` command."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from crmsync_pipelines.serving import QuickStopServer
from crmsync_pipelines.simulator import SimulatorHandle, run_simulator


def test_state_survives_restart_with_a_db_file(tmp_path: Path) -> None:
    db = tmp_path / "sim.sqlite"
    with run_simulator(seed="demo", db_path=db) as sim:
        seeded = sim.count("contacts")
        created = httpx.post(
            f"{sim.api_url}/contacts.json",
            headers={"X-AUTH-TOKEN": sim.token},
            json={"title": "Persisted", "lastname": "P", "database": "default"},
        ).json()["result"]
    with run_simulator(seed="demo", db_path=db) as sim:
        assert sim.count("contacts") == seeded + 1
        assert sim.get("contacts", created["name"])["title"] == "Persisted"
        assert sim.count("activities") == 35


class Receiver:
    """A tiny real webhook receiver on a free loopback port."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.ready = threading.Event()

        async def hook(request: Request) -> Response:
            body = await request.body()
            self.calls.append(
                {
                    "secret": request.headers.get("x-webhook-secret"),
                    "type": request.headers.get("content-type"),
                    "body": body.decode(),
                }
            )
            return Response(status_code=200)

        import uvicorn

        self.server = QuickStopServer(
            uvicorn.Config(
                Starlette(routes=[Route("/hook", hook, methods=["POST"])]),
                host="127.0.0.1",
                port=0,
                log_level="warning",
                lifespan="off",
            )
        )

    def __enter__(self) -> str:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        while not self.server.started:
            threading.Event().wait(0.01)
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    hook = Receiver()
    with hook as url:
        yield hook, url


def test_webhook_json_on_create_and_close(receiver: tuple[Receiver, str]) -> None:
    hook, url = receiver
    with run_simulator(seed=None, webhook_url=url, webhook_secret="s3cret") as sim:
        created = sim.insert("activities", {"type": "CHAT", "queue": 3003, "title": "chat"})
        httpx.post(
            f"{sim.api_url}/activities.json", headers={"X-AUTH-TOKEN": sim.token}, json={"type": "CALL", "queue": 3001}
        )
        sim.close_activity(created["name"])
        sim.insert("activities", {"type": "", "title": "a comment fires nothing"})
        assert sim.wait_webhooks(5)
        assert sim.webhooks_sent == 3
    events = [json.loads(c["body"]) for c in hook.calls]
    assert [e["event"] for e in events] == ["web_create", "call_create", "web_close"]
    assert events[0]["name"] == created["name"] and events[2]["data"]["action"] == "CLOSE"
    assert all(c["secret"] == "s3cret" and c["type"] == "application/json" for c in hook.calls)


def test_webhook_form_format(receiver: tuple[Receiver, str], simulator: SimulatorHandle) -> None:
    hook, url = receiver
    simulator.configure_webhook(url, None, "form")
    created = simulator.insert("activities", {"type": "SMS", "queue": 3004})
    assert simulator.wait_webhooks(5)
    (call,) = hook.calls
    assert call["secret"] is None and call["type"].startswith("application/x-www-form-urlencoded")
    assert "event=sms_create" in call["body"] and f"name={created['name']}" in call["body"]
    assert "data%5Btype%5D=SMS" in call["body"]


def test_dead_webhook_receiver_does_not_block_requests() -> None:
    with run_simulator(seed=None, webhook_url="http://127.0.0.1:9/nothing") as sim:
        response = httpx.post(
            f"{sim.api_url}/activities.json", headers={"X-AUTH-TOKEN": sim.token}, json={"type": "EMAIL", "queue": 3002}
        )
        assert response.status_code == 201
        assert sim.wait_webhooks(5)
        assert sim.stats()["webhooks"] == {"sent": 0, "failed": 1}


def test_cli_command_starts_serves_and_stops(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "crmsync_pipelines.cli.main",
        "simulator",
        "--port",
        "0",
        "--seed",
        "none",
        "--db",
        str(tmp_path / "cli.sqlite"),
        "--fault",
        "GET /api/v6/queues.json=503x1",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert "listening on http://127.0.0.1:" in first
        base = first.split()[-1]
        with httpx.Client(base_url=f"{base}/api/v6", headers={"X-AUTH-TOKEN": "sim-token"}, timeout=5) as http:
            assert http.get("/queues.json").status_code == 503
            assert http.get("/queues.json").json()["result"]["total"] == 7
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
    bad = subprocess.run([*command[:-1], "nonsense"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "--fault" in bad.stderr
