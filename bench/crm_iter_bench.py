"""Benchmark: generate a large demo CRM and stream every contact through SqlCrmAdapter.

Prints a table with generation time, iteration throughput and peak RSS. The RSS after
iterating should stay close to the RSS before it: iteration streams with a cursor, so memory
does not grow with the number of contacts.

    .venv/bin/python bench/crm_iter_bench.py --contacts 100000
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crmsync_pipelines.crm.demo_data import create_demo_crm
from crmsync_pipelines.crm.sql import SqlCrmAdapter
from crmsync_pipelines.crm.sql_settings import SqlCrmSettings


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return float("nan")
    return pages * resource.getpagesize() / (1024 * 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--accounts", type=int, default=2_000)
    parser.add_argument("--fetch-size", type=int, default=500)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="crm-bench-") as directory:
        path = Path(directory) / "bench-crm.sqlite"
        started = time.perf_counter()
        create_demo_crm(path, accounts=args.accounts, contacts=args.contacts, now=datetime.now(UTC))
        generate_s = time.perf_counter() - started

        adapter = SqlCrmAdapter(SqlCrmSettings(path=str(path), fetch_size=args.fetch_size))
        rss_before = current_rss_mb()
        started = time.perf_counter()
        count = 0
        for record in adapter.iter_contacts():
            count += 1 if record["id"] else 0
        iterate_s = time.perf_counter() - started
        rss_after = current_rss_mb()
        adapter.close()

    rows = [
        ("contacts", f"{count:,}"),
        ("generate (s)", f"{generate_s:.2f}"),
        ("generate (records/s)", f"{(args.contacts + args.accounts) / generate_s:,.0f}"),
        ("iterate (s)", f"{iterate_s:.2f}"),
        ("iterate (records/s)", f"{count / iterate_s:,.0f}"),
        ("RSS before iterate (MB)", f"{rss_before:.1f}"),
        ("RSS after iterate (MB)", f"{rss_after:.1f}"),
        ("RSS growth while iterating (MB)", f"{rss_after - rss_before:.1f}"),
        ("peak RSS (MB)", f"{peak_rss_mb():.1f}"),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"{'metric'.ljust(width)}  value")
    print(f"{'-' * width}  {'-' * 12}")
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")


if __name__ == "__main__":
    main()
