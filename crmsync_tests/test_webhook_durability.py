"""Nothing lost: every 202 survives a SIGKILL of the receiver, and the sensor later picks
up everything that accumulated while it was not running. The receiver runs as the real
``crmsync serve-webhooks`` command in a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import httpx
import pytest

from crmsync_pipelines.defs.webhooks import InboxResource, webhook_inbox_sensor
from crmsync_pipelines.webhooks import SECRET_HEADER, Inbox
from crmsync_tests.fixtures.webhooks import free_port, wait_until_healthy

SECRET = "durability-secret-123"
ACTIVITIES = """
entity: activity
lookup_field: external_id
mappings:
  - cc_field: name
    crm_field: external_id
"""
SYNC = """
daktela: {instance_url: "http://127.0.0.1:9", access_token: token, database: default}
sync:
  entities:
    activity: {enabled: true, direction: cc_to_crm, mapping_file: activities.yaml, activity_types: [call]}
webhook: {secret: "${WEBHOOK_SECRET}", inbox_path: inbox.sqlite}
"""


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    (tmp_path / "activities.yaml").write_text(ACTIVITIES, encoding="utf-8")
    (tmp_path / "sync.yaml").write_text(SYNC, encoding="utf-8")
    return tmp_path / "sync.yaml"


def _cli(config_path: Path, port: int, secret: str, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "WEBHOOK_SECRET": secret}
    command = [sys.executable, "-m", "crmsync_pipelines.cli.main", "serve-webhooks", "-c", str(config_path)]
    return subprocess.Popen(
        [*command, "--port", str(port), "--log-level", "warning", *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.fixture
def receiver(config_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    proc = _cli(config_path, port, SECRET)
    url = f"http://127.0.0.1:{port}"
    wait_until_healthy(proc, url)
    yield proc, url
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)


def test_every_202_survives_sigkill_and_the_sensor_gets_them_all(
    receiver: tuple[subprocess.Popen[bytes], str], config_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBHOOK_SECRET", SECRET)  # the Dagster process loads the same sync.yaml
    proc, url = receiver
    accepted: list[tuple[int, str]] = []
    stop = threading.Event()

    def send() -> None:
        with httpx.Client(base_url=url, timeout=5, headers={SECRET_HEADER: SECRET}) as http:
            for i in range(100_000):
                if stop.is_set():
                    return
                name = f"call_{i}"
                try:
                    response = http.post("/webhooks/daktela", json={"event": "call_close", "name": name})
                except httpx.TransportError:
                    return  # the receiver is gone: this event was never acknowledged
                if response.status_code == 202:
                    accepted.append((response.json()["seq"], name))

    sender = threading.Thread(target=send)
    sender.start()
    deadline = time.monotonic() + 20
    while len(accepted) < 150 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)  # mid-stream, no chance to flush or clean up
    proc.wait(timeout=10)
    sender.join(timeout=15)
    stop.set()
    assert len(accepted) >= 150

    inbox_path = config_path.parent / "inbox.sqlite"
    with Inbox(inbox_path) as inbox:
        stored = {(e.seq, e.record_id) for e in inbox.events()}
        assert set(accepted) <= stored
        # At most the single in-flight request was committed without its 202 reaching us.
        assert len(stored) - len(accepted) <= 1

    # A restarted receiver continues the sequence; nothing was processed in between.
    port = free_port()
    restarted = _cli(config_path, port, SECRET)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={SECRET_HEADER: SECRET}) as http:
            deadline = time.monotonic() + 30
            while True:
                try:
                    http.get("/healthz", timeout=1)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "restarted receiver did not come up"
                    time.sleep(0.05)
            later = [
                http.post("/webhooks/daktela", json={"event": "call_close", "name": f"late_{i}"}) for i in range(5)
            ]
            assert [r.status_code for r in later] == [202] * 5
            assert http.get("/healthz").json()["inbox"]["pending"] == len(stored) + 5
    finally:
        restarted.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises SIGTERM as its exit status.
        assert restarted.wait(timeout=15) in (0, -signal.SIGTERM)

    # The sensor was "stopped" all along: one tick now requests runs covering every event.
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(
            cursor=None, instance=instance, resources={"webhook_inbox": InboxResource(config_path=str(config_path))}
        )
        result = webhook_inbox_sensor(context)
    assert isinstance(result, dg.SensorResult)
    requested = [
        seq
        for r in result.run_requests or []
        for seq in r.run_config["ops"]["sync_webhook_events"]["config"]["inbox_seqs"]
    ]
    with Inbox(inbox_path) as inbox:
        assert requested == [e.seq for e in inbox.pending_after(0, limit=100_000)]
        assert result.cursor == str(inbox.max_seq())


def test_cli_refuses_to_start_without_a_secret(config_path: Path) -> None:
    proc = _cli(config_path, free_port(), "")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert b"webhook.secret" in err
    assert b"Traceback" not in err
    assert (
        not (config_path.parent / "inbox.sqlite").exists() or Inbox(config_path.parent / "inbox.sqlite").max_seq() == 0
    )


def test_cli_insecure_dev_starts_without_a_secret(config_path: Path) -> None:
    port = free_port()
    proc = _cli(config_path, port, "", "--insecure-dev")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.post(
                    f"http://127.0.0.1:{port}/webhooks/daktela", json={"event": "call_close", "name": "c1"}, timeout=1
                )
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        assert response.status_code == 202
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    assert b"WITHOUT a secret" in err
