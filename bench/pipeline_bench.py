"""Pipeline benchmark: crmsync's set-based sync vs the PHP SDK's find-then-write per record.

Against the Daktela simulator (child process, 10 ms latency per request) and a SQLite demo
CRM (default 5,000 accounts + 50,000 contacts):

1. first sync (initial load) of accounts and contacts;
2. a re-sync with nothing changed;
3. a re-sync after 1 % of the CRM records changed;
4. the same 1 % re-sync done the PHP SDK's way (one lookup GET per record, then a PUT when it
   differs) on a fresh 1 % of changes, so both sides see the same amount of work.

Prints one table; API calls are counted by the simulator itself. Usage:
``.venv/bin/python bench/pipeline_bench.py [--accounts N] [--contacts M] [--latency-ms 10]``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
MAPPINGS = ROOT / "mappings"


def _serve(latency_ms: float, ready: mp.Queue, stop: Event) -> None:  # type: ignore[type-arg]
    from crmsync_pipelines.simulator import run_simulator

    with run_simulator(seed=None, latency_ms=latency_ms) as sim:
        ready.put((sim.base_url, sim.token))
        stop.wait(timeout=7200)


def _make_crm(path: str, accounts: int, contacts: int) -> None:
    from crmsync_pipelines.crm.demo_data import create_demo_crm

    create_demo_crm(path, accounts=accounts, contacts=contacts, seed=2026)


def _mutate(path: str, pct: float, seed: int) -> None:
    from crmsync_pipelines.crm.demo_data import mutate_demo_crm

    stats = mutate_demo_crm(path, touch_pct=pct, seed=seed)
    print(f"  mutated: {stats.accounts_touched} accounts, {stats.contacts_touched} contacts", flush=True)


def _in_child(target: Any, *args: Any) -> None:
    """Run CRM generation/mutation in a child so it does not count towards the sync's peak RSS."""
    proc = mp.get_context("spawn").Process(target=target, args=args)
    proc.start()
    proc.join()
    if proc.exitcode != 0:
        raise SystemExit(f"{target.__name__} failed with exit code {proc.exitcode}")


def _stats(base_url: str, token: str) -> dict[str, Any]:
    response = httpx.get(f"{base_url}/_sim/stats", headers={"X-AUTH-TOKEN": token}, timeout=60)
    response.raise_for_status()
    return dict(response.json())


def _calls(before: dict[str, Any], after: dict[str, Any]) -> tuple[int, int]:
    """(all requests, writes) made between two stats snapshots."""

    def totals(stats: dict[str, Any]) -> tuple[int, int]:
        routes: dict[str, int] = stats.get("routes") or stats.get("by_route") or {}
        total = int(stats.get("requests") or stats.get("total") or sum(routes.values()))
        writes = sum(v for k, v in routes.items() if k.startswith(("POST", "PUT")))
        return total, writes

    (t0, w0), (t1, w1) = totals(before), totals(after)
    return t1 - t0, w1 - w0


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _config(tmp: Path, base_url: str, token: str, crm: str, concurrency: int) -> Path:
    os.environ["DAKTELA_INSTANCE_URL"] = base_url
    os.environ["DAKTELA_ACCESS_TOKEN"] = token
    path = tmp / "sync.yaml"
    path.write_text(
        f"""
daktela:
  instance_url: ${{DAKTELA_INSTANCE_URL}}
  access_token: ${{DAKTELA_ACCESS_TOKEN}}
  database: default
  rate_limit_per_s: 10000
  write_concurrency: {concurrency}
  timeout_s: 120
crm: {{adapter: sql, path: {crm}}}
staging: {{path: {tmp / "crmsync.duckdb"}}}
sync:
  entities:
    account: {{enabled: true, direction: crm_to_cc, mapping_file: {MAPPINGS / "accounts.yaml"}}}
    contact: {{enabled: true, direction: crm_to_cc, mapping_file: {MAPPINGS / "contacts.yaml"}}}
""",
        encoding="utf-8",
    )
    return path


def _crmsync_sync(config_path: Path, run_id: str) -> tuple[int, int]:
    from crmsync_pipelines.config import load_config
    from crmsync_pipelines.engine import SyncEngine, Window

    engine = SyncEngine.from_config(load_config(config_path))
    records = failed = 0
    try:
        for entity in ("account", "contact"):
            load = engine.sync(entity, Window(None, None), run_id)[-1]
            records += sum(load.counts.get(k, 0) for k in ("created", "updated", "unchanged", "failed"))
            failed += load.counts.get("failed", 0)
    finally:
        engine.close()
    return records, failed


def _php_sdk_resync(config_path: Path, threads: int) -> int:
    """Find-then-write per record, as the PHP SDK's upsert does: 1 GET per record + 1 PUT if changed."""
    from crmsync_pipelines.config import load_config
    from crmsync_pipelines.crm.registry import load_crm_adapter
    from crmsync_pipelines.daktela import DaktelaAdapter
    from crmsync_pipelines.daktela.filters import F
    from crmsync_pipelines.engine.compare import changed_fields, update_body
    from crmsync_pipelines.mapping import FieldMapper

    config = load_config(config_path)
    crm = load_crm_adapter(config.crm, base_dir=config_path.parent)
    daktela = DaktelaAdapter.from_config(config.daktela)
    mapper = FieldMapper()
    accounts_mapping = config.sync.entities["account"].mapping
    contacts_mapping = config.sync.entities["contact"].mapping
    relations: dict[str, dict[str, str]] = {"account": {}}

    def upsert(model: str, payload: dict[str, Any]) -> None:
        page = daktela.client.list(model, filters=[F("name", "eq", payload["name"])], take=1)
        if not page.records:
            daktela.create(model, payload)
            return
        current = page.records[0]
        from crmsync_pipelines.daktela.normalize import normalize_record

        changes = changed_fields(payload, normalize_record(current))
        if changes:
            daktela.update(model, payload["name"], update_body(payload, normalize_record(current), changes))

    count = 0
    with ThreadPoolExecutor(max_workers=threads) as pool:
        payloads = []
        for account in crm.iter_accounts():
            payload = mapper.map(account, accounts_mapping, "crm_to_cc")
            relations["account"][str(account["id"])] = payload["name"]
            payloads.append(payload)
        list(pool.map(lambda p: upsert("accounts", p), payloads))
        count += len(payloads)
        payloads = [mapper.map(c, contacts_mapping, "crm_to_cc", relations) for c in crm.iter_contacts()]
        list(pool.map(lambda p: upsert("contacts", p), payloads))
        count += len(payloads)
    daktela.close()
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=5_000)
    parser.add_argument("--contacts", type=int, default=50_000)
    parser.add_argument("--latency-ms", type=float, default=10.0)
    parser.add_argument("--changed-pct", type=float, default=1.0)
    parser.add_argument("--write-concurrency", type=int, default=8)
    parser.add_argument("--baseline-threads", type=int, default=8)
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()

    ctx = mp.get_context("spawn")
    ready: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    stop = ctx.Event()
    server = ctx.Process(target=_serve, args=(args.latency_ms, ready, stop), daemon=True)
    server.start()
    rows: list[tuple[str, int, int, int, float, float]] = []
    try:
        base_url, token = ready.get(timeout=120)
        tmp = Path(tempfile.mkdtemp(prefix="crmsync-bench-"))
        crm = str(tmp / "crm.sqlite")
        _in_child(_make_crm, crm, args.accounts, args.contacts)
        config = _config(tmp, base_url, token, crm, args.write_concurrency)

        def phase(label: str, work: Any) -> None:
            before = _stats(base_url, token)
            started = time.perf_counter()
            records = work()
            seconds = time.perf_counter() - started
            calls, writes = _calls(before, _stats(base_url, token))
            rows.append((label, records, calls, writes, seconds, _peak_rss_mb()))
            print(f"  {label}: {records:,} records, {calls:,} calls, {writes:,} writes, {seconds:.1f}s", flush=True)

        phase("crmsync first sync", lambda: _crmsync_sync(config, "bench-first")[0])
        phase("crmsync re-sync, nothing changed", lambda: _crmsync_sync(config, "bench-same")[0])
        _in_child(_mutate, crm, args.changed_pct, 11)
        phase(f"crmsync re-sync, {args.changed_pct:g}% changed", lambda: _crmsync_sync(config, "bench-delta")[0])
        if not args.skip_baseline:
            _in_child(_mutate, crm, args.changed_pct, 12)
            phase(f"PHP SDK pattern re-sync, {args.changed_pct:g}% changed",
                  lambda: _php_sdk_resync(config, args.baseline_threads))
    finally:
        stop.set()
        server.join(timeout=30)
        if server.is_alive():
            server.terminate()

    header = ("phase", "records", "API calls", "writes", "calls/record", "wall s", "records/s", "peak RSS MB")
    table = [header] + [
        (label, f"{n:,}", f"{c:,}", f"{w:,}", f"{c / n:.4f}" if n else "-", f"{s:.1f}", f"{n / s:,.0f}", f"{rss:.0f}")
        for label, n, c, w, s, rss in rows
    ]
    widths = [max(len(str(r[i])) for r in table) for i in range(len(header))]
    for i, row in enumerate(table):
        print(" | ".join(str(v).ljust(widths[j]) for j, v in enumerate(row)))
        if i == 0:
            print("-+-".join("-" * w for w in widths))
    delta = [r for r in rows if r[0].startswith("crmsync re-sync,") and "nothing" not in r[0]]
    base = [r for r in rows if r[0].startswith("PHP SDK")]
    if delta and base and delta[0][2]:
        print(f"\nAt {args.changed_pct:g}% changed crmsync made {base[0][2] / delta[0][2]:.1f}x fewer Daktela "
              f"API calls than the find-then-write pattern ({delta[0][2]:,} vs {base[0][2]:,}).")


if __name__ == "__main__":
    main()
