"""Benchmark: generate a large demo CRM and stream contacts through SqlCrmAdapter.

Prints a table with generation time, iteration throughput (every contact, and a one-day window
of the same table) and peak RSS, next to a baseline measured in the same run: a bare
``sqlite3`` cursor reading the same rows, unsorted and without reading modified times. The
adapter reads every row's modified time (``crmsync_pipelines.crm.modified_time``) to filter and
order by instant and to fail unreadable rows visibly; ``--odd-layout`` rewrites the times as
PHP ``DATE_ISO8601`` (``+0100``), which skips SQLite's short path for UTC text, to show the
cost of the Python reader. The RSS after iterating should stay close to the RSS before it:
iteration streams with a cursor, so memory does not grow with the number of contacts.

    .venv/bin/python bench/crm_iter_bench.py --contacts 100000
    .venv/bin/python bench/crm_iter_bench.py --contacts 100000 --odd-layout
"""

from __future__ import annotations

import argparse
import resource
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
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
    parser.add_argument("--odd-layout", action="store_true", help="store modified times as +0100 text")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement; the best is shown")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="crm-bench-") as directory:
        path = Path(directory) / "bench-crm.sqlite"
        now = datetime.now(UTC)
        started = time.perf_counter()
        create_demo_crm(path, accounts=args.accounts, contacts=args.contacts, now=now)
        generate_s = time.perf_counter() - started
        if args.odd_layout:
            with sqlite3.connect(path) as conn:  # 2026-11-20T09:00:00+00:00 -> 2026-11-20T10:00:00+0100
                conn.execute(
                    "UPDATE contacts SET updated_at = "
                    "strftime('%Y-%m-%dT%H:%M:%S', updated_at, '+1 hour') || '+0100'"
                )
        day = (now - timedelta(days=1), now + timedelta(seconds=1))

        adapter = SqlCrmAdapter(SqlCrmSettings(path=str(path), fetch_size=args.fetch_size))
        rss_before = current_rss_mb()
        timings: dict[str, list[float]] = {"all": [], "day": [], "base_all": [], "base_day": []}
        for _ in range(args.repeat):  # best of N, both sides alternating: the machine may be busy
            started = time.perf_counter()
            count = 0
            for record in adapter.iter_contacts():
                count += 1 if record["id"] else 0
            timings["all"].append(time.perf_counter() - started)
            started = time.perf_counter()
            day_count = sum(1 for _ in adapter.iter_contacts(*day))
            timings["day"].append(time.perf_counter() - started)
            elapsed, baseline_count = _baseline(path, None)
            timings["base_all"].append(elapsed)
            elapsed, baseline_day_count = _baseline(path, day)
            timings["base_day"].append(elapsed)
        rss_after = current_rss_mb()
        adapter.close()
    iterate_s, day_s, baseline_full_s, baseline_day_s = (
        min(timings[k]) for k in ("all", "day", "base_all", "base_day")
    )
    if count != baseline_count or (day_count != baseline_day_count and not args.odd_layout):
        raise SystemExit(f"adapter read {count}/{day_count} rows, baseline {baseline_count}/{baseline_day_count}")

    rows = [
        ("contacts", f"{count:,}", ""),
        ("modified layout", "+0100 text" if args.odd_layout else "UTC text", ""),
        ("generate (s)", f"{generate_s:.2f}", ""),
        ("generate (records/s)", f"{(args.contacts + args.accounts) / generate_s:,.0f}", ""),
        ("iterate all (s)", f"{iterate_s:.2f}", f"{baseline_full_s:.2f}"),
        ("iterate all (records/s)", f"{count / iterate_s:,.0f}", f"{count / baseline_full_s:,.0f}"),
        (f"one-day window: {day_count:,} rows (s)", f"{day_s:.2f}", f"{baseline_day_s:.2f}"),
        ("one-day window (rows scanned/s)", f"{count / day_s:,.0f}", f"{count / baseline_day_s:,.0f}"),
        ("RSS before iterate (MB)", f"{rss_before:.1f}", ""),
        ("RSS after iterate (MB)", f"{rss_after:.1f}", ""),
        ("RSS growth while iterating (MB)", f"{rss_after - rss_before:.1f}", ""),
        ("peak RSS (MB)", f"{peak_rss_mb():.1f}", ""),
    ]
    width = max(len(name) for name, _, _ in rows)
    print(f"{'metric'.ljust(width)}  {'SqlCrmAdapter':>14}  {'bare sqlite3':>14}")
    print(f"{'-' * width}  {'-' * 14}  {'-' * 14}")
    for name, value, baseline in rows:
        print(f"{name.ljust(width)}  {value:>14}  {baseline:>14}")


def _baseline(path: Path, window: tuple[datetime, datetime] | None) -> tuple[float, int]:
    """The floor: the same rows through a bare cursor (the window on the raw UTC text, unsorted).

    With ``--odd-layout`` the raw text no longer sorts by instant, so the baseline's window is
    only a cost reference there (its row count is taken from the adapter's reading).
    """
    conn = sqlite3.connect(path)
    started = time.perf_counter()
    if window is None:
        count = sum(1 for _ in conn.execute("SELECT * FROM contacts"))
    else:
        since, until = (moment.astimezone(UTC).isoformat() for moment in window)
        count = sum(1 for _ in conn.execute("SELECT * FROM contacts WHERE updated_at >= ? AND updated_at < ?",
                                            [since, until]))
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed, count


if __name__ == "__main__":
    main()
