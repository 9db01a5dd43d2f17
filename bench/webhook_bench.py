"""Webhook receiver throughput: 20,000 distinct events over loopback, 32 connections.

Starts the real ``crmsync serve-webhooks`` in a subprocess with a temporary inbox, posts the
events with an httpx AsyncClient, then counts the rows in the inbox: every 202 must be a
row (nothing lost) at ``synchronous=FULL``. Prints one table.

    .venv/bin/python bench/webhook_bench.py [--events 20000] [--concurrency 32] [--client httpx|raw]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from crmsync_pipelines.webhooks import SECRET_HEADER, Inbox

REPO = Path(__file__).resolve().parents[1]
SECRET = "bench-webhook-secret"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _write_config(directory: Path) -> Path:
    path = directory / "sync.yaml"
    path.write_text(
        f"""
# No daktela section: serve-webhooks reads only the webhook settings and the entities' flags.
sync:
  entities:
    activity:
      enabled: true
      direction: cc_to_crm
      mapping_file: {REPO / "mappings/activities.yaml"}
      activity_types: [call, email, web, sms, fbm, wap, vbr]
webhook: {{secret: {SECRET}, inbox_path: inbox.sqlite}}
""",
        encoding="utf-8",
    )
    return path


def _start(config: Path, port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "crmsync_pipelines.cli.main", "serve-webhooks", "-c", str(config)]
    proc = subprocess.Popen([*command, "--port", str(port), "--log-level", "error"], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the receiver did not start")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (Linux ``/proc``), to show who is the bottleneck."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _load(url: str, events: int, concurrency: int) -> tuple[list[float], int, int, float]:
    latencies: list[float] = []
    accepted = 0
    errors = 0
    next_index = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, headers={SECRET_HEADER: SECRET}, timeout=30) as client:

        async def worker() -> None:
            nonlocal accepted, errors, next_index
            while next_index < events:
                index = next_index
                next_index += 1
                body = {"event": "call_close", "name": f"activities_{index:06d}", "data": {"queue": "100"}}
                started = time.perf_counter()
                try:
                    response = await client.post("/webhooks/daktela", json=body)
                except httpx.HTTPError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - started)
                if response.status_code == 202 and not response.json()["duplicate"]:
                    accepted += 1
                else:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return latencies, accepted, errors, elapsed


async def _load_raw(host: str, port: int, events: int, concurrency: int) -> tuple[list[float], int, int, float]:
    """The same load from a minimal keep-alive HTTP/1.1 client on asyncio streams.

    httpx spends several times more CPU per request than the receiver does, so on a small
    machine it measures itself; this client shows what the receiver sustains.
    """
    latencies: list[float] = []
    accepted = 0
    errors = 0
    next_index = 0

    async def worker() -> None:
        nonlocal accepted, errors, next_index
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while next_index < events:
                index = next_index
                next_index += 1
                body = json.dumps(
                    {"event": "call_close", "name": f"activities_{index:06d}", "data": {"queue": "100"}}
                ).encode()
                head = (
                    f"POST /webhooks/daktela HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                    f"{SECRET_HEADER}: {SECRET}\r\nContent-Length: {len(body)}\r\n\r\n"
                ).encode()
                started = time.perf_counter()
                writer.write(head + body)
                status_line = await reader.readuntil(b"\r\n")
                headers = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in headers.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                payload = json.loads(await reader.readexactly(length))
                latencies.append(time.perf_counter() - started)
                if status_line.split()[1] == b"202" and not payload["duplicate"]:
                    accepted += 1
                else:
                    errors += 1
        except (OSError, asyncio.IncompleteReadError):
            errors += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, accepted, errors, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--client",
        choices=["httpx", "raw"],
        default="httpx",
        help="load generator: httpx.AsyncClient, or a minimal asyncio HTTP/1.1 client (less client CPU)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="webhook-bench-") as tmp:
        config = _write_config(Path(tmp))
        port = _free_port()
        proc = _start(config, port)
        client_cpu = time.process_time()
        try:
            if args.client == "raw":
                load = _load_raw("127.0.0.1", port, args.events, args.concurrency)
            else:
                load = _load(f"http://127.0.0.1:{port}", args.events, args.concurrency)
            latencies, accepted, errors, elapsed = asyncio.run(load)
            client_cpu = time.process_time() - client_cpu
            server_cpu = _cpu_seconds(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        with Inbox(Path(tmp) / "inbox.sqlite") as inbox:
            stored = inbox.max_seq()
            pending = inbox.counts()["pending"]
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else 0.0
    rows = [
        ("events sent", f"{args.events}"),
        ("concurrency", f"{args.concurrency}"),
        ("load generator", args.client),
        ("cpu cores", f"{os.cpu_count()}"),
        ("requests/s", f"{len(latencies) / elapsed:,.0f}"),
        ("p50 latency (ms)", f"{statistics.median(latencies) * 1000:.1f}" if latencies else "-"),
        ("p99 latency (ms)", f"{p99 * 1000:.1f}"),
        ("receiver CPU per request (ms)", f"{server_cpu / max(len(latencies), 1) * 1000:.2f}"),
        ("load generator CPU per request (ms)", f"{client_cpu / max(len(latencies), 1) * 1000:.2f}"),
        ("accepted (202)", f"{accepted}"),
        ("inbox rows", f"{stored} ({pending} pending)"),
        ("lost (accepted - stored)", f"{accepted - stored}"),
        ("errors", f"{errors}"),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"{'metric'.ljust(width)}  value\n{'-' * width}  -----")
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")
    if accepted != stored or errors:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
