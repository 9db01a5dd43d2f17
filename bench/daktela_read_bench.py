"""Read benchmark: stream 100,000 contacts out of the simulator with ``DaktelaAdapter.iter_records``.

The simulator runs in a child process (5 ms latency per request) so the peak RSS printed is
the reader's alone. Usage: ``.venv/bin/python bench/daktela_read_bench.py [--records N]``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time
from multiprocessing.synchronize import Event

from crmsync_pipelines.daktela import DaktelaAdapter, DaktelaClient

INSERT_BATCH = 10_000


def _serve(records: int, latency_ms: float, ready: mp.Queue, stop: Event) -> None:  # type: ignore[type-arg]
    from crmsync_pipelines.simulator import run_simulator

    with run_simulator(seed=None, latency_ms=0.0) as sim:
        for start in range(0, records, INSERT_BATCH):
            batch = [
                {
                    "name": f"crm_{i:06d}",
                    "title": f"Contact {i}",
                    "firstname": "Jan",
                    "lastname": f"Novák {i}",
                    "database": "default",
                    "customFields": {"email": [f"c{i}@example.com"], "number": [f"+420601{i:06d}"]},
                    "edited": f"2024-05-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}:00",
                }
                for i in range(start, min(start + INSERT_BATCH, records))
            ]
            sim.insert_many("contacts", batch)
        sim.set_latency(latency_ms)
        ready.put((sim.base_url, sim.token))
        stop.wait(timeout=3600)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=5.0)
    args = parser.parse_args()

    ctx = mp.get_context("spawn")
    ready: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    stop = ctx.Event()
    server = ctx.Process(target=_serve, args=(args.records, args.latency_ms, ready, stop), daemon=True)
    server.start()
    try:
        base_url, token = ready.get(timeout=600)
        client = DaktelaClient(base_url, token, rate_limit_per_s=None, timeout_s=120.0)
        adapter = DaktelaAdapter(client, database="default", page_size=args.page_size)
        rss_before = _peak_rss_mb()
        started = time.perf_counter()
        count = 0
        for _record in adapter.iter_records("contacts"):
            count += 1
        seconds = time.perf_counter() - started
        stats = client.stats.snapshot()
        adapter.close()
    finally:
        stop.set()
        server.join(timeout=30)
        if server.is_alive():
            server.terminate()

    rows = [
        ("records", f"{count:,}"),
        ("requests made", f"{stats['requests']:,}"),
        ("retries", f"{stats['retries']:,}"),
        ("seconds", f"{seconds:.2f}"),
        ("records/s", f"{count / seconds:,.0f}"),
        ("peak RSS before read (MB)", f"{rss_before:.0f}"),
        ("peak RSS (MB)", f"{_peak_rss_mb():.0f}"),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"{'metric':<{width}} | value")
    print(f"{'-' * width}-+-{'-' * 12}")
    for key, value in rows:
        print(f"{key:<{width}} | {value}")


if __name__ == "__main__":
    main()
