"""The dlt side of ``dlt_activities_bench.py``: Daktela activities into DuckDB with dlt's
``rest_api`` source, as a dlt user would configure it from the Daktela V6 API docs.

Runs under the dlt venv's Python (``.bench-dlt/``, see ``make bench-dlt``), never under the
project's: it imports only dlt and the standard library, so dlt is no dependency of crmsync.

Input: ``--base-url`` (the instance, without ``/api/v6``), ``--params-json`` (the list query
parameters as a JSON object: filter, sort, ``fields[i]``; built by the caller with crmsync's
encoders so both sides send the same query), ``--workdir`` (a fresh directory for the DuckDB
file and dlt's pipeline state) and the access token in ``$DAKTELA_ACCESS_TOKEN`` (not on the
command line, where ``ps`` shows it). It reads ``activities.json`` with Daktela's offset paging
(``skip``/``take``, at most 1,000 a page, ``result.total``; daktela-v6-api.md §3.3) and the
``X-AUTH-TOKEN`` header (§2), then normalizes and loads into DuckDB.

Output: one JSON object on the last stdout line: ``rows`` (rows in the loaded ``activities``
table), ``extract_s``, ``normalize_s``, ``load_s`` and ``seconds`` (their sum, wall seconds),
``peak_rss_mb`` (this process's peak resident set, or a child's if larger), ``dlt`` (its version).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

PAGE_SIZE = 1000  # Daktela's maximum ``take``


def run(base_url: str, token: str, params: dict[str, str], workdir: Path, file_format: str) -> dict[str, Any]:
    """Extract, normalize and load every page; returns the figures printed by ``main``."""
    import dlt
    from dlt.sources.rest_api import rest_api_source

    source = rest_api_source({
        "client": {
            "base_url": f"{base_url.rstrip('/')}/api/v6/",
            "auth": {"type": "api_key", "name": "X-AUTH-TOKEN", "api_key": token, "location": "header"},
        },
        "resources": [{
            "name": "activities",
            "write_disposition": "replace",
            "endpoint": {
                "path": "activities.json",
                "params": params,
                "data_selector": "result.data",
                "paginator": {"type": "offset", "limit": PAGE_SIZE, "offset_param": "skip",
                              "limit_param": "take", "total_path": "result.total"},
            },
        }],
    })
    pipeline = dlt.pipeline(
        pipeline_name="daktela_activities",
        destination=dlt.destinations.duckdb(str(workdir / "dlt.duckdb")),
        dataset_name="daktela",
        pipelines_dir=str(workdir / "pipelines"),
    )
    phases: dict[str, float] = {}
    started = time.perf_counter()
    pipeline.extract(source, loader_file_format=file_format)
    phases["extract_s"] = time.perf_counter() - started
    started = time.perf_counter()
    pipeline.normalize()
    phases["normalize_s"] = time.perf_counter() - started
    started = time.perf_counter()
    pipeline.load()
    phases["load_s"] = time.perf_counter() - started
    with pipeline.sql_client() as client:
        rows = client.execute_sql("SELECT count(*) FROM activities")[0][0]
    peak_kb = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return {"rows": int(rows), **phases, "seconds": sum(phases.values()), "peak_rss_mb": peak_kb / 1024,
            "dlt": dlt.__version__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--params-json", required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--loader-file-format", choices=("insert_values", "parquet"), default="insert_values",
                        help="dlt's file format for the DuckDB load: insert_values (its default for DuckDB) "
                             "or parquet (needs dlt[parquet])")
    args = parser.parse_args()
    token = os.environ.get("DAKTELA_ACCESS_TOKEN", "")
    if not token:
        sys.exit("dlt_side: $DAKTELA_ACCESS_TOKEN is not set")
    # No usage report to dltHub, and only warnings on the console: the caller reads stdout.
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")
    figures = run(args.base_url, token, json.loads(args.params_json), args.workdir, args.loader_file_format)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
