"""Activities benchmark: extraction against the server's page-fetch floor, and a full
Daktela → SQL CRM sync.

The simulator runs in a child process (``--latency-ms`` per request, default 5) holding
``--activities`` call activities (default 20,000) with their full relations (queue, user,
contact, the call record). One table:

1. the floor: the pages alone (``client.list`` with the ``fields[]`` projection, no parsing),
   and the same without the projection (whole ~5 KB activities);
2. ``iter_activities`` reading whole activities (what the engine did before issue 15);
3. ``iter_activities`` with the projection the bundled mapping needs (the engine's read now;
   the next page is fetched while the current one is parsed), as a share of the floor;
4. a full ``activity`` sync (extract, map, load) into a fresh SQLite CRM, twice side by side:
   the code of ``--baseline-ref`` (default: the tree before issue 15's CRM-load work, record
   by record upserts and a DataFrame per ledger append), exported with ``git archive`` into a
   temp dir, and the working tree; each in a child process that times ``SyncEngine.sync`` only
   (not the interpreter start nor building the engine), with its extract / map / load stage
   durations. The two alternate ``--sync-runs`` times (default 2) and each shows its fastest
   run. ``--baseline-ref none`` (or no git checkout) leaves the baseline row out.

Usage: ``.venv/bin/python bench/activities_bench.py [--activities N] [--latency-ms 5]
[--baseline-ref REF|none] [--sync-runs 2]``.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crmsync_pipelines.engine import SyncEngine

ROOT = Path(__file__).resolve().parents[1]
MAPPINGS = ROOT / "mappings"
INSERT_BATCH = 5_000
#: The tree before issue 15's CRM-load work: the SQL CRM upserted activities record by record
#: (a savepoint, ``INSERT ... RETURNING`` and a re-read each) and every ledger append registered
#: a DataFrame.
BASELINE_REF = "f2760d263384251f687760f82d8d9d9b01670a95"


def _serve(count: int, latency_ms: float, ready: mp.Queue, stop: Event) -> None:
    from datetime import datetime, timedelta

    from crmsync_pipelines.simulator import run_simulator

    with run_simulator(seed="demo", latency_ms=0.0) as sim:
        contacts = [c["name"] for c in sim.all("contacts")]
        queue = next(q["name"] for q in sim.all("queues") if q.get("type") == "in")
        users = [u["name"] for u in sim.all("users")]
        start = datetime(2026, 11, 1, 8, 0, 0)
        for first in range(0, count, INSERT_BATCH):
            batch = []
            for i in range(first, min(count, first + INSERT_BATCH)):
                began = start + timedelta(seconds=17 * i)
                batch.append({
                    "name": f"activities_bench{i:08d}", "type": "CALL", "queue": queue,
                    "user": users[i % len(users)], "contact": contacts[i % len(contacts)],
                    "time": began.strftime("%Y-%m-%d %H:%M:%S"),
                    "time_close": (began + timedelta(seconds=120)).strftime("%Y-%m-%d %H:%M:%S"),
                    "duration": 120, "title": f"Hovor {i}", "action": "CLOSE", "priority": 0,
                    "description": "Zákazník se ptal na fakturu " * 4,
                    "item": {"id_call": f"{1_790_000_000 + i}.{i % 9000 + 1000}", "clid": "+420777000111",
                             "did": "+420222333444", "direction": "in", "answered": True},
                })
            sim.insert_many("activities", batch)
        sim.set_latency(latency_ms)
        ready.put((sim.base_url, sim.token))
        stop.wait(timeout=7200)


@contextmanager
def serve_activities(count: int, latency_ms: float) -> Iterator[tuple[str, str]]:
    """The simulator in a spawned child process holding ``count`` call activities, answering
    every request after ``latency_ms``; yields ``(base_url, token)`` and stops it on exit.

    ``dlt_activities_bench.py`` reads the same instance through this."""
    ctx = mp.get_context("spawn")
    ready: mp.Queue = ctx.Queue()
    stop = ctx.Event()
    server = ctx.Process(target=_serve, args=(count, latency_ms, ready, stop), daemon=True)
    server.start()
    try:
        base_url, token = ready.get(timeout=600)
        yield base_url, token
    finally:
        stop.set()
        server.join(timeout=30)
        if server.is_alive():
            server.terminate()


def _adapter(base_url: str, token: str) -> Any:
    from crmsync_pipelines.daktela import DaktelaAdapter, DaktelaClient

    client = DaktelaClient(base_url, token, rate_limit_per_s=None, timeout_s=120)
    return DaktelaAdapter(client, database="default")


def bundled_fields() -> list[str]:
    """The raw ``fields[]`` projection the bundled activities mapping needs."""
    from crmsync_pipelines.daktela.activities import raw_fields
    from crmsync_pipelines.mapping import load_mapping

    mapping = load_mapping(MAPPINGS / "activities.yaml")
    return raw_fields(rule.cc_field for rule in mapping.mappings if not rule.has_value)


def _pages_only(base_url: str, token: str, fields: list[str] | None) -> int:
    """The floor: the keyset pages one after another, nothing done with them."""
    from crmsync_pipelines.daktela.filters import F

    adapter = _adapter(base_url, token)
    rows, last = 0, None
    while True:
        filters = [F("type", "eq", "CALL")]
        if last is not None:
            filters.append(F("name", "gt", last))
        page = adapter.client.list("activities", filters=filters, sort=[("name", "asc")], take=1000,
                                   fields=[*fields, "name"] if fields else None)
        rows += len(page.records)
        if len(page.records) < 1000:
            adapter.close()
            return rows
        last = page.records[-1]["name"]


def _iterate(base_url: str, token: str, fields: list[str] | None) -> int:
    adapter = _adapter(base_url, token)
    rows = sum(1 for _ in adapter.iter_activities("call", since=None, until=None, fields=fields))
    adapter.close()
    return rows


def activity_engine(base_url: str, token: str) -> SyncEngine:
    """A ``SyncEngine`` syncing call activities into a fresh SQLite demo CRM, staging in a new
    temp dir (the caller closes it)."""
    from crmsync_pipelines.config import load_config
    from crmsync_pipelines.crm.demo_data import create_demo_crm
    from crmsync_pipelines.engine import SyncEngine

    tmp = Path(tempfile.mkdtemp(prefix="crmsync-activities-bench-"))
    crm = tmp / "crm.sqlite"
    create_demo_crm(crm, accounts=5, contacts=20, seed=2026)
    config = tmp / "sync.yaml"
    config.write_text(f"""
daktela: {{instance_url: {base_url}, access_token: {token}, database: default, timeout_s: 120}}
crm: {{adapter: sql, path: {crm}}}
staging: {{path: {tmp / "crmsync.duckdb"}}}
sync:
  entities:
    activity:
      enabled: true
      direction: cc_to_crm
      mapping_file: {MAPPINGS / "activities.yaml"}
      activity_types: [call]
      settle_minutes: 0
      rescan_partitions: 0
""", encoding="utf-8")
    return SyncEngine.from_config(load_config(config))


def timed_activity_stage(base_url: str, token: str, stage: str) -> tuple[Any, float]:
    """``engine.<stage>("activity", whole window, "bench")`` on a fresh ``activity_engine``:
    its result and seconds (building and closing the engine are not timed)."""
    from crmsync_pipelines.engine import Window

    engine = activity_engine(base_url, token)
    try:
        started = time.perf_counter()
        result = getattr(engine, stage)("activity", Window(None, None), "bench")
        return result, time.perf_counter() - started
    finally:
        engine.close()


def _sync(base_url: str, token: str) -> dict[str, Any]:
    """One full sync: rows loaded, seconds of ``engine.sync`` and each stage's ``duration_s``."""
    reports, seconds = timed_activity_stage(base_url, token, "sync")
    load = reports[-1]
    rows = int(load.counts.get("created", 0) + load.counts.get("unchanged", 0) + load.counts.get("updated", 0))
    return {"rows": rows, "seconds": seconds, "stages": {r.stage: r.duration_s for r in reports}}


def _baseline_tree(ref: str) -> Path | None:
    """``crmsync_pipelines`` as of ``ref``, exported into a temp dir (None: not a git checkout)."""
    try:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", ref, "crmsync_pipelines"],
                                 check=True, capture_output=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"  no baseline: cannot export {ref} ({exc})", flush=True)
        return None
    tree = Path(tempfile.mkdtemp(prefix="crmsync-activities-baseline-"))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        if hasattr(tarfile, "data_filter"):  # Python 3.11.4+: refuse links and paths leaving the dir
            tar.extractall(tree, filter="data")
        else:  # our own repository's archive
            tar.extractall(tree)
    return tree


def _sync_in_child(base_url: str, token: str, code: Path) -> dict[str, Any]:
    """``_sync`` in a fresh interpreter importing ``crmsync_pipelines`` from ``code``."""
    scratch = tempfile.mkdtemp(prefix="crmsync-activities-sync-")  # the child's CRM and staging, removed after
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(code), str(ROOT / "bench")]), "TMPDIR": scratch}
    try:
        done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child-sync", base_url, token],
                              capture_output=True, text=True, env=env, cwd=scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if done.returncode != 0:
        raise RuntimeError(f"the sync with {code} exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if Path(result["code"]).resolve() != code.resolve():
        raise RuntimeError(f"the child imported crmsync_pipelines from {result['code']}, not {code}")
    return result


def _child_sync(base_url: str, token: str) -> None:
    import crmsync_pipelines

    result = _sync(base_url, token)
    print(json.dumps({**result, "code": str(Path(crmsync_pipelines.__file__).parent.parent)}))


def _run_cases(args: argparse.Namespace, fields: list[str],
               baseline: Path | None) -> list[tuple[str, int, float, dict[str, float]]]:
    """The table's rows: (label, rows, seconds, stage durations)."""
    rows: list[tuple[str, int, float, dict[str, float]]] = []
    with serve_activities(args.activities, args.latency_ms) as (base_url, token):
        def reads(count: int) -> dict[str, Any]:
            return {"rows": count, "stages": {}}

        cases = [
            ("floor: pages only, projected fields", lambda: reads(_pages_only(base_url, token, fields))),
            ("floor: pages only, whole activities", lambda: reads(_pages_only(base_url, token, None))),
            ("iter_activities, whole activities (before)", lambda: reads(_iterate(base_url, token, None))),
            ("iter_activities, projected + prefetch (now)", lambda: reads(_iterate(base_url, token, fields))),
        ]
        syncs: list[tuple[str, Any]] = []
        if baseline is not None:
            syncs.append((f"full activity sync into the SQL CRM, before ({args.baseline_ref[:10]})",
                           lambda: _sync_in_child(base_url, token, baseline)))
        syncs.append(("full activity sync into the SQL CRM (now)", lambda: _sync_in_child(base_url, token, ROOT)))
        for label, work in cases:
            started = time.perf_counter()
            result = work()
            seconds = time.perf_counter() - started
            rows.append((label, int(result["rows"]), seconds, result["stages"]))
            print(f"  {label}: {result['rows']:,} rows in {seconds:.2f}s", flush=True)
        # The syncs alternate (before, now, now, before, ...) and each keeps its fastest run:
        # on a shared machine the noise only ever adds time.
        best: dict[str, tuple[str, int, float, dict[str, float]]] = {}
        for round_ in range(max(1, args.sync_runs)):
            for label, work in (syncs if round_ % 2 == 0 else syncs[::-1]):
                try:
                    result = work()
                except RuntimeError as exc:
                    if baseline is None or "before" not in label:
                        raise
                    print(f"  {label}: left out, the baseline tree did not run ({exc})", flush=True)
                    syncs = [(other, run) for other, run in syncs if other != label]
                    continue
                seconds = float(result["seconds"])
                print(f"  {label}: {result['rows']:,} rows in {seconds:.2f}s", flush=True)
                if label not in best or seconds < best[label][2]:
                    best[label] = (label, int(result["rows"]), seconds, result["stages"])
        runs = f", best of {max(1, args.sync_runs)}" if args.sync_runs > 1 else ""
        for label, _work in syncs:
            if label in best:
                _label, count, seconds, stages = best[label]
                rows.append((f"{label}{runs}", count, seconds, stages))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--activities", type=int, default=20_000)
    parser.add_argument("--latency-ms", type=float, default=5.0)
    parser.add_argument("--baseline-ref", default=BASELINE_REF,
                        help="git ref of the baseline full sync ('none' leaves it out)")
    parser.add_argument("--sync-runs", type=int, default=2,
                        help="runs of each full sync, alternating baseline and now; the fastest is shown")
    parser.add_argument("--child-sync", nargs=2, metavar=("BASE_URL", "TOKEN"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_sync:
        _child_sync(*args.child_sync)
        return
    fields = bundled_fields()
    baseline = None if args.baseline_ref == "none" else _baseline_tree(args.baseline_ref)
    try:
        rows = _run_cases(args, fields, baseline)
    finally:
        if baseline is not None:
            shutil.rmtree(baseline, ignore_errors=True)
    floor = rows[0][1] / rows[0][2]
    print(f"\n{args.activities:,} call activities, {args.latency_ms:g} ms simulator latency; "
          f"projection: {', '.join(fields)}; load average {os.getloadavg()[0]:.2f}")
    header = ("case", "rows", "wall s", "rows/s", "share of the projected floor", "extract / map / load s")
    table = [header] + [
        (label, f"{n:,}", f"{s:.2f}", f"{n / s:,.0f}", f"{n / s / floor:.0%}",
         " / ".join(f"{stages[k]:.2f}" for k in ("extract", "map", "load") if k in stages))
        for label, n, s, stages in rows
    ]
    widths = [max(len(str(r[i])) for r in table) for i in range(len(header))]
    for i, row in enumerate(table):
        print(" | ".join(str(v).ljust(widths[j]) for j, v in enumerate(row)))
        if i == 0:
            print("-+-".join("-" * w for w in widths))

if __name__ == "__main__":
    main()
