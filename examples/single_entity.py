"""One entity at a time (the SDK's ``examples/single-entity-sync.php``).

    python examples/single_entity.py [--since 2026-11-01]

Accounts first (contacts link to them), then contacts, then activities (Daktela -> CRM, the
channels listed in ``sync.entities.activity.activity_types``). Without ``--since`` each syncs
the current partition (today in the Daktela instance's time zone), as a scheduled run does.
Unlike the SDK's example, the failed records printed at the end are really there.
"""

from __future__ import annotations

import argparse

from bootstrap import world

import crmsync_pipelines

parser = argparse.ArgumentParser()
parser.add_argument("--since", default=None, help="window start (ISO date); default: the current partition")
args = parser.parse_args()

with world() as config:
    results = [crmsync_pipelines.sync(config, entities=[entity], since=args.since)
               for entity in ("account", "contact", "activity")]

failed = [record for result in results for record in result.failed_records]
for result in results:
    print(result.summary())
print(f"{len(failed)} failed record(s)")
for record in failed:
    print(f"  {record.entity} {record.source_id} [{record.error_class}] {record.message}")
