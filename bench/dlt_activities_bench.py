"""Activities extract side by side with dlt: crmsync's ``extract`` stage against dlt's
``rest_api`` source, both reading the same call activities from the same simulator into DuckDB.

The simulator runs in a child process (``activities_bench.serve_activities``: ``--activities``
call activities, default 20,000, ``--latency-ms`` per request, default 5). Rows:

1. crmsync: ``SyncEngine.extract`` of the ``activity`` entity into its DuckDB staging (keyset
   pages of 1,000 with the ``fields[]`` projection the bundled mapping needs, the next page
   fetched while the current one is staged);
2. dlt ``rest_api`` → DuckDB with the same ``type eq CALL`` filter and the same projection,
   offset paging (``skip``/``take`` 1,000) sorted by ``name``: extract + normalize + load, with
   the loader file format dlt uses for DuckDB by default (``insert_values``);
3. the same with ``parquet`` load files (dlt's faster path, it needs pyarrow: ``dlt[parquet]``);
4. the default pipeline reading whole activities (no projection); ``--skip-whole`` leaves it out.

dlt is no dependency of crmsync: its side (``bench/dlt_side.py``) runs as a subprocess under
the Python of a venv of its own, ``.bench-dlt/`` (``make bench-dlt`` creates it and runs this
script). Without that venv the script prints the command that creates it and exits 2. The
dlt timings exclude its interpreter start and ``import dlt`` (printed apart); crmsync's exclude
creating the engine. Exits 1 when a side loaded a different number of rows than crmsync.

Usage: ``.venv/bin/python bench/dlt_activities_bench.py [--activities N] [--latency-ms 5]
[--dlt-python .bench-dlt/bin/python] [--skip-whole]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from activities_bench import bundled_fields, serve_activities, timed_activity_stage

ROOT = Path(__file__).resolve().parents[1]
DLT_VENV = ROOT / ".bench-dlt"
DLT_SIDE = Path(__file__).resolve().with_name("dlt_side.py")
DLT_REQUIREMENT = "dlt[duckdb,parquet]>=1.0"
# What `make bench-dlt` runs first (the Makefile's $(DLT_VENV)/.installed target).
CREATE_VENV = (f"make -C {ROOT} {DLT_VENV.name}/.installed\n"
               f"or, with uv on PATH: uv venv {DLT_VENV} && uv pip install --python {DLT_VENV}/bin/python "
               f"'{DLT_REQUIREMENT}'")


@dataclass(frozen=True)
class Case:
    label: str
    rows: int
    seconds: float
    peak_rss_mb: float
    note: str = ""


def _dlt_ready(python: Path) -> str | None:
    """dlt's version in that interpreter, or None when it (or dlt there) is missing."""
    if not python.exists():
        return None
    probe = subprocess.run([str(python), "-c", "import dlt, duckdb, pyarrow; print(dlt.__version__)"],
                           capture_output=True, text=True, check=False)
    return probe.stdout.strip() if probe.returncode == 0 else None


def _crmsync_extract(base_url: str, token: str) -> Case:
    report, seconds = timed_activity_stage(base_url, token, "extract")
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return Case("crmsync extract → DuckDB staging (projected)", int(report.counts["extracted"]), seconds, peak_rss_mb)


def _list_params(fields: list[str] | None) -> dict[str, str]:
    """The query both sides send, encoded by crmsync's own encoders (daktela-v6-api.md §3)."""
    from crmsync_pipelines.daktela.filters import F, encode_fields, encode_filter, encode_sort

    pairs = encode_filter([F("type", "eq", "CALL")]) + encode_sort([("name", "asc")]) + encode_fields(fields)
    return dict(pairs)


def _dlt(python: Path, base_url: str, token: str, fields: list[str] | None, file_format: str) -> Case:
    label = f"dlt rest_api → DuckDB ({'projected' if fields else 'whole activities'}, {file_format})"
    with tempfile.TemporaryDirectory(prefix="crmsync-dlt-bench-") as workdir:
        started = time.perf_counter()
        done = subprocess.run(
            [str(python), str(DLT_SIDE), "--base-url", base_url, "--params-json", json.dumps(_list_params(fields)),
             "--workdir", workdir, "--loader-file-format", file_format],
            env={**os.environ, "DAKTELA_ACCESS_TOKEN": token}, capture_output=True, text=True, check=False,
        )
        process_s = time.perf_counter() - started
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"the dlt side failed (exit {done.returncode}); its stderr is above")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    note = (f"extract {figures['extract_s']:.1f} s, normalize {figures['normalize_s']:.1f} s, "
            f"load {figures['load_s']:.1f} s; process {process_s:.1f} s")
    return Case(label, int(figures["rows"]), float(figures["seconds"]), float(figures["peak_rss_mb"]), note)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--activities", type=int, default=20_000)
    parser.add_argument("--latency-ms", type=float, default=5.0)
    parser.add_argument("--dlt-python", type=Path, default=DLT_VENV / "bin" / "python",
                        help="the Python of a venv with dlt[duckdb,parquet] installed (default: .bench-dlt/)")
    parser.add_argument("--skip-whole", action="store_true", help="leave out dlt reading whole activities")
    args = parser.parse_args()
    dlt_version = _dlt_ready(args.dlt_python)
    if dlt_version is None:
        print(f"No dlt at {args.dlt_python}. dlt runs in a venv of its own (it is no crmsync dependency); "
              f"create it with:\n  {CREATE_VENV}\nor run everything with: make -C {ROOT} bench-dlt", file=sys.stderr)
        raise SystemExit(2)
    fields = bundled_fields()
    cases: list[Case] = []
    with serve_activities(args.activities, args.latency_ms) as (base_url, token):
        runs = [
            lambda: _crmsync_extract(base_url, token),
            lambda: _dlt(args.dlt_python, base_url, token, fields, "insert_values"),
            lambda: _dlt(args.dlt_python, base_url, token, fields, "parquet"),
        ]
        if not args.skip_whole:
            runs.append(lambda: _dlt(args.dlt_python, base_url, token, None, "insert_values"))
        for work in runs:
            case = work()
            cases.append(case)
            print(f"  {case.label}: {case.rows:,} rows in {case.seconds:.2f}s", flush=True)
    crmsync = cases[0]
    crmsync_rate = crmsync.rows / crmsync.seconds
    print(f"\n{args.activities:,} call activities, {args.latency_ms:g} ms simulator latency, dlt {dlt_version}; "
          f"projection: {', '.join(fields)}")
    header = ("case", "rows", "wall s", "rows/s", "crmsync ÷ this", "peak RSS MB")
    table = [header] + [(c.label, f"{c.rows:,}", f"{c.seconds:.2f}", f"{c.rows / c.seconds:,.0f}",
                         f"{crmsync_rate / (c.rows / c.seconds):.1f}×", f"{c.peak_rss_mb:,.0f}") for c in cases]
    widths = [max(len(str(r[i])) for r in table) for i in range(len(header))]
    for i, row in enumerate(table):
        print(" | ".join(str(v).ljust(widths[j]) for j, v in enumerate(row)))
        if i == 0:
            print("-+-".join("-" * w for w in widths))
    for case in cases[1:]:
        print(f"{case.label}: {case.note}")
    short = [c for c in cases if c.rows != crmsync.rows]
    if short:
        differ = "; ".join(f"{c.label}: {c.rows:,}" for c in short)
        print(f"Row counts differ from crmsync's {crmsync.rows:,}: {differ}", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
