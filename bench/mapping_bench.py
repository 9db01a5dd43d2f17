"""Mapping throughput: 200,000 synthetic CRM contacts through a 10-field mapping.

The mapping has two transformers (prefix, string_case), one relation (account) and one
multi-value rule (tags split), which is the shape of a typical contact mapping. A second
row adds phone_normalize, whose cost is libphonenumber's, to show its price separately.
Prints a table of records/s and peak RSS (resource.getrusage). Goal: >= 50,000 records/s.

Run: .venv/bin/python bench/mapping_bench.py [--records N]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections.abc import Iterator
from typing import Any

from crmsync_pipelines.mapping import FieldMapper, Mapping, mapping_from_dict

BASE_RULES: list[dict[str, Any]] = [
    {"cc_field": "name", "crm_field": "id", "transformers": [{"name": "prefix", "params": {"value": "crm_"}}]},
    {"cc_field": "firstname", "crm_field": "first_name"},
    {"cc_field": "lastname", "crm_field": "last_name"},
    {"cc_field": "title", "crm_field": "full_name"},
    {
        "cc_field": "customFields.email",
        "crm_field": "email",
        "transformers": [{"name": "string_case", "params": {"case": "lower"}}],
    },
    {"cc_field": "customFields.number", "crm_field": "phone"},
    {
        "cc_field": "account",
        "crm_field": "account_id",
        "relation": {"entity": "account", "resolve_from": "id", "resolve_to": "name"},
    },
    {"cc_field": "description", "crm_field": "job_title"},
    {"cc_field": "customFields.tags", "crm_field": "tags", "multi_value": {"strategy": "split", "separator": ","}},
    {"cc_field": "customFields.city", "crm_field": "address.city"},
]


def build_mapping(with_phone: bool) -> Mapping:
    rules = [dict(rule) for rule in BASE_RULES]
    if with_phone:
        rules[5] = {
            "cc_field": "customFields.number",
            "crm_field": "phone",
            "transformers": [{"name": "phone_normalize", "params": {"default_region": "CZ"}}],
        }
    return mapping_from_dict({"entity": "contact", "lookup_field": "name", "mappings": rules}, file="bench")


POOL_SIZE = 10_000


def records(count: int) -> Iterator[dict[str, Any]]:
    """``count`` records cycling over a pool, so the timing measures mapping, not record building."""
    pool = [_record(i) for i in range(min(count, POOL_SIZE))]  # built now, before the clock starts
    size = len(pool)
    return (pool[i % size] for i in range(count))


def _record(i: int) -> dict[str, Any]:
    return {
        "id": str(i),
        "first_name": "Jiří",
        "last_name": f"Dvořák{i % 97}",
        "full_name": f"Jiří Dvořák{i % 97}",
        "email": f"Jiri.Dvorak{i}@Example.CZ",
        "phone": f"60{i % 10} {i % 1000:03d} {i % 997:03d}",
        "account_id": str(i % 5000),
        "job_title": "Sales",
        "tags": "vip,newsletter",
        "address": {"city": "Brno"},
    }


def run(label: str, mapping: Mapping, count: int) -> tuple[str, int, float, float, float]:
    """(label, records, wall seconds, CPU seconds, records per CPU second).

    CPU time is reported next to wall time because the goal is per core and a shared
    machine makes wall time depend on the neighbours.
    """
    relations = {"account": {str(i): f"crm_acc_{i}" for i in range(5000)}}
    mapper = FieldMapper()
    source = records(count)
    started, cpu_started = time.perf_counter(), time.process_time()
    mapped = 0
    for _ in mapper.map_many(source, mapping, "crm_to_cc", relations):
        mapped += 1
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return label, mapped, elapsed, cpu, mapped / cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=200_000)
    args = parser.parse_args(argv)
    rows = [
        run("10 fields, 2 transformers, relation, split", build_mapping(False), args.records),
        run("same + phone_normalize", build_mapping(True), args.records // 4),
    ]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{'mapping':<44} {'records':>9} {'wall s':>7} {'CPU s':>7} {'records/CPU-s':>14}")
    for label, mapped, elapsed, cpu, rate in rows:
        print(f"{label:<44} {mapped:>9,} {elapsed:>7.2f} {cpu:>7.2f} {rate:>14,.0f}")
    print(f"peak RSS: {peak_mb:.1f} MB; goal: >= 50,000 records per CPU-second for the first row")
    return 0


if __name__ == "__main__":
    sys.exit(main())
