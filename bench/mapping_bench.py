"""Mapping throughput: 200,000 synthetic CRM contacts through a 10-field mapping.

The mapping has two transformers (prefix, string_case), one relation (account) and one
multi-value rule (tags split), which is the shape of a typical contact mapping. Two more
rows add phone_normalize as the bundled mappings use it (CZ, plus SK national numbers),
in mixed layouts (``+420 …``, ``00420…``, bare national, Slovak ``09…``, an extension):

- "cycled": 10,000 distinct raw numbers repeated, so the per-rule cache of parsed
  results (functools.lru_cache) answers most of them — a re-sync, or many records
  sharing a switchboard number;
- "all distinct": every record has a new number, so each is parsed by libphonenumber
  (``parse`` + ``is_valid_number``) — the worst case, a first sync of a large CRM.

Prints a table of records/s and peak RSS (resource.getrusage). Goal: >= 50,000 records/s
for the 10-field mapping.

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
            "transformers": [{"name": "phone_normalize", "params": {"default_region": "CZ", "regions": ["SK"]}}],
        }
    return mapping_from_dict({"entity": "contact", "lookup_field": "name", "mappings": rules}, file="bench")


POOL_SIZE = 10_000


def records(count: int, *, distinct: bool = False) -> Iterator[dict[str, Any]]:
    """``count`` records cycling over a pool (or all distinct), built before the clock starts."""
    pool = [_record(i) for i in range(count if distinct else min(count, POOL_SIZE))]
    size = len(pool)
    return (pool[i % size] for i in range(count))


_CZ_PREFIXES = (601, 602, 603, 604, 605, 606, 607, 608, 702, 720, 721, 724, 728, 731, 737, 739, 773, 777, 792)
_SK_PREFIXES = (901, 902, 903, 904, 905, 907, 908, 910, 911, 914, 915, 917, 940, 944, 948, 949)


def _phone(i: int) -> str:
    """A valid CZ or SK number in one of the layouts real CRM data mixes; distinct for each i < 10^6."""
    rest = f"{i % 1_000_000:06d}"
    cz = _CZ_PREFIXES[i % len(_CZ_PREFIXES)]
    layouts = (
        f"+420 {cz} {rest[:3]} {rest[3:]}",
        f"{cz}{rest}",
        f"00420{cz}{rest}",
        f"{cz}-{rest[:3]}-{rest[3:]}",
        f"0{_SK_PREFIXES[i % len(_SK_PREFIXES)]} {rest[:3]} {rest[3:]}",
        f"+420 {cz} {rest[:3]} {rest[3:]} kl. 12",
    )
    return layouts[(i // 7) % len(layouts)]


def _record(i: int) -> dict[str, Any]:
    return {
        "id": str(i),
        "first_name": "Jiří",
        "last_name": f"Dvořák{i % 97}",
        "full_name": f"Jiří Dvořák{i % 97}",
        "email": f"Jiri.Dvorak{i}@Example.CZ",
        "phone": _phone(i),
        "account_id": str(i % 5000),
        "job_title": "Sales",
        "tags": "vip,newsletter",
        "address": {"city": "Brno"},
    }


def run(label: str, mapping: Mapping, count: int, *, distinct: bool = False) -> tuple[str, int, float, float, float]:
    """(label, records, wall seconds, CPU seconds, records per CPU second).

    CPU time is reported next to wall time because the goal is per core and a shared
    machine makes wall time depend on the neighbours.
    """
    relations = {"account": {str(i): f"crm_acc_{i}" for i in range(5000)}}
    mapper = FieldMapper()
    source = records(count, distinct=distinct)
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
        run("same + phone_normalize, 10k numbers cycled", build_mapping(True), args.records),
        run("same + phone_normalize, all distinct", build_mapping(True), args.records // 4, distinct=True),
    ]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{'mapping':<44} {'records':>9} {'wall s':>7} {'CPU s':>7} {'records/CPU-s':>14}")
    for label, mapped, elapsed, cpu, rate in rows:
        print(f"{label:<44} {mapped:>9,} {elapsed:>7.2f} {cpu:>7.2f} {rate:>14,.0f}")
    print(f"peak RSS: {peak_mb:.1f} MB; goal: >= 50,000 records per CPU-second for the first row")
    return 0


if __name__ == "__main__":
    sys.exit(main())
