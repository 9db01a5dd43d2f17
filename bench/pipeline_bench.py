"""Pipeline benchmark: crmsync's set-based sync vs the PHP SDK's find-then-write per record.

Against the Daktela simulator (child process, 10 ms latency per request) and a SQLite demo
CRM (default 5,000 accounts + 50,000 contacts):

1. first sync (initial load) of accounts and contacts;
2. a re-sync with nothing changed;
3. a re-sync after 1 % of the CRM records changed;
4. the same 1 % re-sync done the PHP SDK's way (one lookup GET per record, then a PUT when it
   differs) on a fresh 1 % of changes, so both sides see the same amount of work.

Each crmsync phase runs in its own child process, so its wall time, CPU time, time spent in
staging (DuckDB) and peak RSS are its own. The tables:

* phases: records, API calls, writes, wall time, records/s, peak RSS; for phases that write,
  the floor (``writes × latency ÷ write_concurrency``), wall ÷ floor, client CPU per write and
  local bookkeeping (staging) per write;
* scaling (``--scale 10000,50000,200000``): per size, a fresh CRM of that many contacts (+10 %
  accounts) is loaded once at 0 ms latency, then an unchanged re-sync is timed: µs per record
  and peak RSS of both must stay flat in N (``--scale 500000`` too: ~15 minutes on 2 cores).

API calls are counted by the simulator itself. Usage:
``.venv/bin/python bench/pipeline_bench.py [--accounts N] [--contacts M] [--latency-ms 10]
[--scale 10000,50000,200000] [--skip-baseline]``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
MAPPINGS = ROOT / "mappings"


def _serve(latency_ms: float, ready: mp.Queue, stop: Event,
           max_concurrent: int | None = None) -> None:
    from crmsync_pipelines.simulator import run_simulator

    with run_simulator(seed=None, latency_ms=latency_ms, max_concurrent=max_concurrent) as sim:
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
    """This process's own peak RSS in MB: ``VmHWM`` of ``/proc/self/status`` where there is one.

    ``ru_maxrss`` survives ``execve`` on Linux, so a child spawned from a big parent (the PHP
    pattern runs in the bench's own process) would report at least the parent's peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


#: The writer settings of each compared configuration (YAML lines under ``daktela:``).
FIXED = "  rate_limit_per_s: 10000\n  write_concurrency: {n}\n  max_write_concurrency: {n}\n"
#: Before issue 15: 20 requests/s, 4 writers, no adaptation.
OLD_DEFAULTS = "  rate_limit_per_s: 20\n  write_concurrency: 4\n  max_write_concurrency: 4\n"
#: Today's defaults: no rate, 4 writers growing up to 32 (AIMD).
NEW_DEFAULTS = ""


def _config(tmp: Path, base_url: str, token: str, crm: str, concurrency: int, knobs: str | None = None,
            name: str = "sync.yaml") -> Path:
    os.environ["DAKTELA_INSTANCE_URL"] = base_url
    os.environ["DAKTELA_ACCESS_TOKEN"] = token
    path = tmp / name
    writers = FIXED.format(n=concurrency) if knobs is None else knobs
    path.write_text(
        f"""
daktela:
  instance_url: {base_url}
  access_token: {token}
  database: default
{writers}  timeout_s: 120
crm: {{adapter: sql, path: {crm}}}
staging: {{path: {tmp / (name + ".duckdb")}}}
sync:
  entities:
    account: {{enabled: true, direction: crm_to_cc, mapping_file: {MAPPINGS / "accounts.yaml"}}}
    contact: {{enabled: true, direction: crm_to_cc, mapping_file: {MAPPINGS / "contacts.yaml"}}}
""",
        encoding="utf-8",
    )
    return path


def _timed_staging() -> list[float]:
    """Wrap ``StagingStore.connect`` so the outermost call of each thread adds its duration."""
    import threading
    from contextlib import contextmanager

    from crmsync_pipelines.staging.store import StagingStore

    spent = [0.0]
    depth = threading.local()
    original = StagingStore.connect

    @contextmanager
    def connect(self: Any) -> Any:
        outer = not getattr(depth, "n", 0)
        depth.n = getattr(depth, "n", 0) + 1
        started = time.perf_counter()
        try:
            with original(self) as con:
                yield con
        finally:
            depth.n -= 1
            if outer:
                spent[0] += time.perf_counter() - started

    StagingStore.connect = connect  # type: ignore[method-assign]
    return spent


def _sync_child(config_path: str, run_id: str, out: mp.Queue) -> None:
    """One sync of accounts then contacts, measured in this (child) process."""
    from crmsync_pipelines.config import load_config
    from crmsync_pipelines.engine import SyncEngine, Window

    staging = _timed_staging()
    cpu0 = time.process_time()
    started = time.perf_counter()
    engine = SyncEngine.from_config(load_config(Path(config_path)))
    records = failed = 0
    try:
        for entity in ("account", "contact"):
            load = engine.sync(entity, Window(None, None), run_id)[-1]
            records += sum(load.counts.get(k, 0) for k in ("created", "updated", "unchanged", "failed"))
            failed += load.counts.get("failed", 0)
        pace = engine.ctx.daktela.write_pace()
    finally:
        engine.close()
    out.put({"records": records, "failed": failed, "seconds": time.perf_counter() - started,
             "cpu_s": time.process_time() - cpu0, "staging_s": staging[0], "rss_mb": _peak_rss_mb(),
             "pace": pace})


def _child_result(proc: Any, out: mp.Queue, what: str) -> Any:
    """What the child ``proc`` put on ``out``; exits with its exit code if it died first (an
    out-of-memory kill, a crash) instead of waiting for a result that never comes."""
    import queue

    while True:
        try:
            result = out.get(timeout=1.0)
            break
        except queue.Empty:
            if not proc.is_alive():
                raise SystemExit(f"{what} died with exit code {proc.exitcode} before reporting") from None
    proc.join()
    if proc.exitcode != 0:
        raise SystemExit(f"{what} failed with exit code {proc.exitcode}")
    return result


def _crmsync_sync(config_path: Path, run_id: str) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    out: mp.Queue = ctx.Queue()
    proc = ctx.Process(target=_sync_child, args=(str(config_path), run_id, out))
    proc.start()
    return dict(_child_result(proc, out, f"sync {run_id}"))


class _Simulator:
    """The Daktela simulator in a child process (so its CPU is not the sync's)."""

    def __init__(self, latency_ms: float, max_concurrent: int | None = None) -> None:
        ctx = mp.get_context("spawn")
        ready: mp.Queue = ctx.Queue()
        self._stop = ctx.Event()
        self._proc = ctx.Process(target=_serve, args=(latency_ms, ready, self._stop, max_concurrent), daemon=True)
        self._proc.start()
        self.base_url, self.token = ready.get(timeout=120)

    def close(self) -> None:
        self._stop.set()
        self._proc.join(timeout=30)
        if self._proc.is_alive():
            self._proc.terminate()


def _first_sync(label: str, latency_ms: float, knobs: str, accounts: int, contacts: int,
                max_concurrent: int | None = None) -> dict[str, Any]:
    """A first sync on a fresh simulator and CRM with the given writer settings."""
    sim = _Simulator(latency_ms, max_concurrent)
    try:
        tmp = Path(tempfile.mkdtemp(prefix="crmsync-defaults-"))
        crm = str(tmp / "crm.sqlite")
        _in_child(_make_crm, crm, accounts, contacts)
        config = _config(tmp, sim.base_url, sim.token, crm, 0, knobs)
        before = _stats(sim.base_url, sim.token)
        result = _crmsync_sync(config, "defaults")
        result["calls"], result["writes"] = _calls(before, _stats(sim.base_url, sim.token))
        result["label"] = label
        print(f"  {label}: {result['records']:,} records in {result['seconds']:.1f}s", flush=True)
        return result
    finally:
        sim.close()


def _defaults_table(latency_ms: float, accounts: int, contacts: int, capped_records: int,
                    capped_latency_ms: float, capped: int) -> list[str]:
    rows = [
        _first_sync("old defaults (20 req/s, 4 writers)", latency_ms, OLD_DEFAULTS, accounts, contacts),
        _first_sync("new defaults (adaptive 4..32 writers)", latency_ms, NEW_DEFAULTS, accounts, contacts),
    ]
    capped_accounts = max(1, capped_records // 11)
    capped_run = _first_sync(f"new defaults, server allows {capped} concurrent, {capped_latency_ms:g} ms",
                             capped_latency_ms, NEW_DEFAULTS, capped_accounts, capped_records - capped_accounts,
                             max_concurrent=capped)
    raw = _raw_http(capped_latency_ms, int(capped_run["writes"]), capped, max_concurrent=capped)
    raw.update(label=f"raw HTTP POSTs, {capped} threads, same server (no engine)", calls=raw["records"],
               writes=raw["records"])
    print(f"  {raw['label']}: {raw['records']:,} POSTs in {raw['seconds']:.1f}s", flush=True)
    lines = []
    for r in [*rows, capped_run, raw]:
        pace = r.get("pace") or {}
        lat = capped_latency_ms if r is capped_run or r is raw else latency_ms
        ideal = r["writes"] * lat / 1000 / capped if r is capped_run or r is raw else None
        lines.append(f"{r['label']:<52} | {r['records']:>7,} | {r['calls']:>7,} | {r['seconds']:>7.1f} | "
                     f"{r['records'] / r['seconds']:>9,.0f} | {pace.get('peak', '-')!s:>5} | "
                     f"{pace.get('overloads', '-')!s:>9} | "
                     + (f"N×latency÷{capped} = {ideal:.1f}s: {ideal / r['seconds']:.0%} of it" if ideal else ""))
    return lines


def _set_latency(base_url: str, token: str, ms: float) -> None:
    httpx.post(f"{base_url}/_sim/latency", json={"ms": ms}, headers={"X-AUTH-TOKEN": token},
               timeout=30).raise_for_status()


def _baseline_child(out: mp.Queue) -> None:
    """Peak RSS of a sync process before it syncs anything: the imports and one staging file opened."""
    from crmsync_pipelines.config import load_config  # noqa: F401  (the imports a sync makes)
    from crmsync_pipelines.engine import SyncEngine  # noqa: F401
    from crmsync_pipelines.staging.store import MEMORY_LIMIT, StagingStore

    with tempfile.TemporaryDirectory() as tmp:
        StagingStore(Path(tmp) / "baseline.duckdb").table_counts()
        out.put((_peak_rss_mb(), MEMORY_LIMIT))


def _baseline_rss() -> tuple[float, str]:
    """(peak RSS MB of a process that only imports and opens staging, DuckDB's memory limit)."""
    ctx = mp.get_context("spawn")
    out: mp.Queue = ctx.Queue()
    proc = ctx.Process(target=_baseline_child, args=(out,))
    proc.start()
    rss, limit = _child_result(proc, out, "baseline RSS probe")
    return float(rss), str(limit)


#: The scaling table's header (``_scaling`` gives its rows).
SCALE_HEADER = (f"{'contacts':>9} | {'records':>9} | {'first s':>7} | {'first µs/r':>10} | {'first RSS':>9} | "
                f"{'same s':>6} | {'records/s':>10} | {'µs/rec':>8} | {'CPU µs/r':>8} | {'same RSS':>8}")


def _scaling(sizes: list[int], latency_ms: float, concurrency: int) -> list[str]:
    """Per size: the first load (at 0 ms latency) and an unchanged re-sync, each with its cost
    per record and the peak RSS (MB) of its own process; both must stay flat in N.

    Each size gets a fresh, empty simulator: on a shared one, a size whose records an earlier
    phase had already written would find them there and "load" without writing."""
    lines = []
    for size in sizes:
        tmp = Path(tempfile.mkdtemp(prefix=f"crmsync-scale-{size}-"))
        crm = str(tmp / "crm.sqlite")
        accounts = max(1, size // 10)
        _in_child(_make_crm, crm, accounts, size)
        sim = _Simulator(0.0)
        try:
            config = _config(tmp, sim.base_url, sim.token, crm, concurrency)
            first = _crmsync_sync(config, f"scale-{size}-first")
            _set_latency(sim.base_url, sim.token, latency_ms)
            same = _crmsync_sync(config, f"scale-{size}-same")
        finally:
            sim.close()
        n, n_first = same["records"], first["records"]
        lines.append(f"{size:>9,} | {n:>9,} | {first['seconds']:>7.1f} | {first['seconds'] / n_first * 1e6:>10.1f} | "
                     f"{first['rss_mb']:>9.0f} | {same['seconds']:>6.2f} | "
                     f"{n / same['seconds']:>10,.0f} | {same['seconds'] / n * 1e6:>8.1f} | "
                     f"{same['cpu_s'] / n * 1e6:>8.1f} | {same['rss_mb']:>8.0f}")
        print(f"  scale {size:,}: first load {n_first:,} records in {first['seconds']:.1f}s, peak RSS "
              f"{first['rss_mb']:.0f} MB; unchanged re-sync {n:,} records in {same['seconds']:.2f}s, "
              f"peak RSS {same['rss_mb']:.0f} MB", flush=True)
        shutil.rmtree(tmp, ignore_errors=True)  # a 500k size leaves ~1 GB of CRM and staging files
    return lines


def _raw_http_child(base_url: str, token: str, n: int, threads: int, out: mp.Queue) -> None:
    """``n`` contact POSTs from ``threads`` threads, each with its own kept-alive httpx client
    (as crmsync's writers), and nothing else: no engine, no staging, no mapping."""
    import threading

    local = threading.local()

    def post(i: int) -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(base_url=f"{base_url}/api/v6/", timeout=120,
                                                 headers={"X-AUTH-TOKEN": token, "Accept": "application/json"})
        response = client.post("contacts.json", json={
            "name": f"raw-{i}", "title": f"Raw Contact {i}", "firstname": "Raw", "lastname": f"Contact {i}",
            "database": "default", "customFields": {"number": [f"+420601{i:06d}"], "email": [f"raw{i}@example.com"]},
        })
        response.raise_for_status()
        response.json()

    cpu0 = time.process_time()
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(post, range(n)))
    out.put({"records": n, "seconds": time.perf_counter() - started, "cpu_s": time.process_time() - cpu0,
             "staging_s": 0.0, "rss_mb": _peak_rss_mb()})


def _raw_http(latency_ms: float, n: int, threads: int, max_concurrent: int | None = None) -> dict[str, Any]:
    """The achievable floor of this machine: the same number of writes as raw HTTP POSTs against
    a fresh simulator (its own process) at the same latency. Per-request costs that no sync
    engine can avoid (HTTP client and server CPU, loopback syscalls, timer slack) show here."""
    sim = _Simulator(latency_ms, max_concurrent)
    try:
        ctx = mp.get_context("spawn")
        out: mp.Queue = ctx.Queue()
        proc = ctx.Process(target=_raw_http_child, args=(sim.base_url, sim.token, n, threads, out))
        proc.start()
        return dict(_child_result(proc, out, "raw HTTP writer"))
    finally:
        sim.close()


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
    parser.add_argument("--skip-raw", action="store_true",
                        help="leave out the raw HTTP floor (the first sync's writes as bare POSTs, no engine)")
    parser.add_argument("--defaults", action="store_true",
                        help="also compare the old and new writer defaults and a server capping concurrency")
    parser.add_argument("--defaults-accounts", type=int, default=50)
    parser.add_argument("--defaults-contacts", type=int, default=500)
    parser.add_argument("--capped-records", type=int, default=11_000)
    parser.add_argument("--capped-latency-ms", type=float, default=50.0)
    parser.add_argument("--capped-concurrent", type=int, default=32)
    parser.add_argument("--scale", default="", help="comma-separated contact counts for the scaling table, "
                                                     "e.g. 10000,50000,200000 (empty: no scaling table)")
    args = parser.parse_args()
    sizes = [int(v) for v in args.scale.split(",") if v.strip()]
    measured: dict[str, dict[str, Any]] = {}
    scale_lines: list[str] = []
    scale_baseline, duckdb_limit = 0.0, ""
    default_lines: list[str] = []

    ctx = mp.get_context("spawn")
    ready: mp.Queue = ctx.Queue()
    stop = ctx.Event()
    server = ctx.Process(target=_serve, args=(args.latency_ms, ready, stop), daemon=True)
    server.start()
    rows: list[tuple[str, int, int, int, float, float]] = []
    raw: dict[str, Any] | None = None
    try:
        base_url, token = ready.get(timeout=120)
        tmp = Path(tempfile.mkdtemp(prefix="crmsync-bench-"))
        crm = str(tmp / "crm.sqlite")
        _in_child(_make_crm, crm, args.accounts, args.contacts)
        config = _config(tmp, base_url, token, crm, args.write_concurrency)

        def phase(label: str, work: Any) -> None:
            before = _stats(base_url, token)
            started = time.perf_counter()
            result = work()
            seconds = time.perf_counter() - started
            if isinstance(result, dict):
                measured[label] = result
                records, seconds, rss = int(result["records"]), float(result["seconds"]), float(result["rss_mb"])
            else:
                records, rss = int(result), _peak_rss_mb()
            calls, writes = _calls(before, _stats(base_url, token))
            measured.setdefault(label, {})["writes"] = writes
            rows.append((label, records, calls, writes, seconds, rss))
            print(f"  {label}: {records:,} records, {calls:,} calls, {writes:,} writes, {seconds:.1f}s", flush=True)

        phase("crmsync first sync", lambda: _crmsync_sync(config, "bench-first"))
        first_writes = int(measured["crmsync first sync"]["writes"])
        if first_writes and not args.skip_raw:
            raw = _raw_http(args.latency_ms, first_writes, args.write_concurrency)
            print(f"  raw HTTP POSTs (no engine): {first_writes:,} writes, {raw['seconds']:.1f}s", flush=True)
        phase("crmsync re-sync, nothing changed", lambda: _crmsync_sync(config, "bench-same"))
        _in_child(_mutate, crm, args.changed_pct, 11)
        phase(f"crmsync re-sync, {args.changed_pct:g}% changed", lambda: _crmsync_sync(config, "bench-delta"))
        if not args.skip_baseline:
            _in_child(_mutate, crm, args.changed_pct, 12)
            phase(f"PHP SDK pattern re-sync, {args.changed_pct:g}% changed",
                  lambda: _php_sdk_resync(config, args.baseline_threads))
        if sizes:
            scale_lines = _scaling(sizes, args.latency_ms, args.write_concurrency)
            scale_baseline, duckdb_limit = _baseline_rss()
        if args.defaults:
            default_lines = _defaults_table(args.latency_ms, args.defaults_accounts, args.defaults_contacts,
                                            args.capped_records, args.capped_latency_ms, args.capped_concurrent)
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
    print(f"\nWrites: {args.write_concurrency} writers, {args.latency_ms:g} ms simulator latency; floor = writes × "
          "latency ÷ writers. CPU and staging time are the sync process's own (child process). Raw HTTP: the "
          "first sync's number of writes as bare POSTs from as many threads (no engine) on a fresh simulator, "
          "the machine's achievable floor; wall ÷ raw HTTP is the engine's own overhead.")
    overhead = [("phase", "writes", "floor s", "wall ÷ floor", "wall ÷ raw HTTP", "client CPU ms/write",
                 "staging ms/write", "CPU µs/record")]
    raw_s_per_write = raw["seconds"] / raw["records"] if raw else None
    measured_rows = [(label, n, writes, seconds, measured.get(label, {})) for label, n, _c, writes, seconds, _r in rows]
    if raw is not None:
        measured_rows.insert(1, ("raw HTTP POSTs, no engine", raw["records"], raw["records"], raw["seconds"], raw))
    for label, n, writes, seconds, m in measured_rows:
        if "cpu_s" not in m:
            continue
        floor = writes * args.latency_ms / 1000 / args.write_concurrency
        overhead.append((label, f"{writes:,}", f"{floor:.1f}" if writes else "-",
                         f"{seconds / floor:.2f}x" if writes and floor else "-",
                         f"{seconds / (raw_s_per_write * writes):.2f}x" if writes and raw_s_per_write else "-",
                         f"{m['cpu_s'] / writes * 1000:.2f}" if writes else "-",
                         f"{m['staging_s'] / writes * 1000:.3f}" if writes else "-",
                         f"{m['cpu_s'] / n * 1e6:.0f}" if n else "-"))
    widths = [max(len(str(r[i])) for r in overhead) for i in range(len(overhead[0]))]
    for i, cells in enumerate(overhead):
        print(" | ".join(str(v).ljust(widths[j]) for j, v in enumerate(cells)))
        if i == 0:
            print("-+-".join("-" * w for w in widths))
    if scale_lines:
        print("\nScaling: first load (0 ms latency) and unchanged re-sync per size; flat µs/record and peak "
              "RSS (MB, the sync process's own) = flat in N")
        print(SCALE_HEADER)
        for line in scale_lines:
            print(line)
        print(f"(a sync process before it syncs anything — imports and one staging file opened — peaks at "
              f"{scale_baseline:.0f} MB; DuckDB's buffer cache is capped at {duckdb_limit})")
    if default_lines:
        print(f"\nWriter defaults, first sync on a fresh simulator ({args.latency_ms:g} ms latency unless said)")
        print(f"{'configuration':<52} | {'records':>7} | {'calls':>7} | {'wall s':>7} | {'records/s':>9} | "
              f"{'peak':>5} | {'overloads':>9} |")
        for line in default_lines:
            print(line)
    delta = [r for r in rows if r[0].startswith("crmsync re-sync,") and "nothing" not in r[0]]
    base = [r for r in rows if r[0].startswith("PHP SDK")]
    if delta and base and delta[0][2]:
        print(f"\nAt {args.changed_pct:g}% changed crmsync made {base[0][2] / delta[0][2]:.1f}x fewer Daktela "
              f"API calls than the find-then-write pattern ({delta[0][2]:,} vs {base[0][2]:,}).")


if __name__ == "__main__":
    main()
