"""HubSpot activity benchmark: Daktela activities -> HubSpot, batched adapter vs one request per activity.

A HubSpot simulator runs in a child process (``--latency-ms`` per request, HubSpot's
Professional burst limit of 190 requests per 10 s by default, search at 4/s) with
``--contacts`` contacts spread over companies. The workload is what the engine hands the
adapter: mapped activity records (mappings/hubspot/activities.yaml) — 70 % calls of a known
contact, 10 % calls known only by the caller's number, 10 % e-mails, 10 % SMS.

Rows, all in the same run:

1. crmsync, first sync: ``upsert_activities`` in batches of ``sync.batch_size`` (100, then
   ``--batch-size``, default 1000), as the engine calls it in ledger mode (batch create of up to
   100 objects of one type with inline associations, batched phone match, contacts' companies
   read 100 per request);
2. crmsync, 10 % of the calls closed later: the same hook with the ledger's ids (batch upsert
   by the unique property, then one association request per kind);
3. baseline, first sync: one create request per activity (``create_activity``), same links.

Requests are counted by the adapter (every HTTP request it sent, retries included) and by the
simulator. Usage: ``.venv/bin/python bench/hubspot_bench.py [--activities 600] [--latency-ms 20]``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import time
from multiprocessing.synchronize import Event
from typing import Any

KEY = "daktela_activity_name"


def _serve(args: dict[str, Any], ready: mp.Queue, stop: Event) -> None:
    from datetime import UTC, datetime

    from crmsync_pipelines.crm.hubspot.simulator import run_hubspot_simulator

    with run_hubspot_simulator(latency_ms=args["latency_ms"], burst_limit=args["burst_limit"] or None,
                               daily_limit=None, search_rate_per_s=4.0) as sim:
        rng = random.Random(2026)
        now = datetime.now(UTC)
        companies = [sim.add_company({"name": f"Company {i}"}, now) for i in range(max(1, args["contacts"] // 10))]
        contacts = []
        for i in range(args["contacts"]):
            contact_id = sim.add_contact({"lastname": f"Contact {i}", "email": f"c{i}@example.cz",
                                          "phone": f"+420 777 {i // 1000:03d} {i % 1000:03d}"}, now,
                                         company_id=rng.choice(companies))
            contacts.append(contact_id)
        ready.put((sim.base_url, sim.token, contacts))
        stop.wait(timeout=3600)


def _records(count: int, contacts: list[str], prefix: str, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    records: list[dict[str, Any]] = []
    for i in range(count):
        kind = i % 10
        base = {KEY: f"{prefix}{i:06d}", "timestamp": f"2026-11-27T{8 + i % 10:02d}:{i % 60:02d}:00.000Z",
                "title": "Dotaz zákazníka", "body": "Zákazník se ptal na fakturu.", "status": "IN_PROGRESS"}
        index = rng.randrange(len(contacts))
        if kind < 7:
            records.append({**base, "channel": "call", "direction": "in", "duration_s": 60 + i % 300,
                            "crm_contact_id": contacts[index]})
        elif kind == 7:
            records.append({**base, "channel": "call", "direction": "in",
                            "phone": f"+420777{index // 1000:03d}{index % 1000:03d}"})
        elif kind == 8:
            records.append({**base, "channel": "email", "direction": "in", "crm_contact_id": contacts[index]})
        else:
            records.append({**base, "channel": "sms", "crm_contact_id": contacts[index]})
    return records


def _adapter(base_url: str, token: str) -> Any:
    from crmsync_pipelines.crm.hubspot.adapter import HubSpotAdapter
    from crmsync_pipelines.crm.hubspot.settings import HubSpotSettings

    return HubSpotAdapter(HubSpotSettings.parse({"access_token": token, "base_url": base_url}))


def _batched(adapter: Any, records: list[dict[str, Any]], size: int) -> tuple[float, int]:
    started = time.perf_counter()
    failures = 0
    for start in range(0, len(records), size):
        results = adapter.upsert_activities(KEY, records[start:start + size])
        failures += sum(isinstance(r, BaseException) for r in results)
    return time.perf_counter() - started, failures


def _single(adapter: Any, records: list[dict[str, Any]]) -> tuple[float, int]:
    started = time.perf_counter()
    failures = 0
    for record in records:
        try:
            adapter.create_activity(record)
        except Exception:
            failures += 1
    return time.perf_counter() - started, failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--activities", type=int, default=600)
    parser.add_argument("--contacts", type=int, default=300)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--burst-limit", type=int, default=190, help="requests per 10 s; 0 = unlimited")
    parser.add_argument("--batch-size", type=int, default=1000, help="sync.batch_size of the main crmsync rows")
    args = parser.parse_args()

    ctx = mp.get_context("spawn")
    ready: mp.Queue = ctx.Queue()
    stop = ctx.Event()
    proc = ctx.Process(target=_serve, args=(vars(args) | {"latency_ms": args.latency_ms}, ready, stop))
    proc.start()
    try:
        base_url, token, contacts = ready.get(timeout=120)
        print(f"HubSpot simulator at {base_url}: {len(contacts)} contacts, latency {args.latency_ms} ms, "
              f"burst limit {args.burst_limit or 'off'} per 10 s, search 4/s", flush=True)
        rows: list[tuple[str, int, int, float, int]] = []

        small = _adapter(base_url, token)
        small_records = _records(args.activities, contacts, "small", 1)
        elapsed, failed = _batched(small, small_records, 100)
        rows.append(("crmsync: first sync, sync.batch_size 100", len(small_records),
                     small.usage()["requests_used"], elapsed, failed))
        small.close()

        records = _records(args.activities, contacts, "act", 1)
        adapter = _adapter(base_url, token)
        elapsed, failed = _batched(adapter, records, args.batch_size)
        rows.append((f"crmsync: first sync, sync.batch_size {args.batch_size}", len(records),
                     adapter.usage()["requests_used"], elapsed, failed))
        stored = {r[KEY]: r for r in records}
        calls = [r for r in records if r["channel"] == "call"]
        closing = [{**r, "status": "COMPLETED", "duration_s": 120, "id": "known"}
                   for r in calls[: max(1, len(calls) // 10)]]
        before = adapter.usage()["requests_used"]
        elapsed, failed = _batched(adapter, closing, args.batch_size)
        rows.append(("crmsync: 10% of the calls closed later", len(closing),
                     adapter.usage()["requests_used"] - before, elapsed, failed))
        adapter.close()
        assert len(stored) == len(records)

        baseline = _adapter(base_url, token)
        base_records = _records(args.activities, contacts, "base", 1)
        elapsed, failed = _single(baseline, base_records)
        rows.append(("baseline: one create per activity", len(base_records), baseline.usage()["requests_used"],
                     elapsed, failed))
        baseline.close()
    finally:
        stop.set()
        proc.join(timeout=10)

    print()
    header = f"{'scenario':<40} {'activities':>10} {'requests':>9} {'req/activity':>12} {'seconds':>8} " \
             f"{'activities/s':>12} {'failed':>6}"
    print(header)
    print("-" * len(header))
    for name, count, requests, seconds, failed in rows:
        print(f"{name:<40} {count:>10} {requests:>9} {requests / count:>12.4f} {seconds:>8.2f} "
              f"{count / seconds:>12.1f} {failed:>6}")
    print("\ngoal: <= 0.02 requests per activity for the batched first sync (HubSpot objects of one type go 100 "
          "per request; a sync.batch_size of 1000 lets calls, e-mails and SMS each fill their batches)")


if __name__ == "__main__":
    main()
