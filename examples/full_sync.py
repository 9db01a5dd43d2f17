"""Full sync: every enabled entity, every record (the SDK's ``examples/full-sync.php``).

    python examples/full_sync.py

Accounts, then contacts, then activities, then custom entities (``custom:partners`` in the
demo), each compared with the target field by field (``force_full``). Exits 1 when a record
failed; every failed record is printed with its class and message.
"""

from __future__ import annotations

import sys

from bootstrap import world

import crmsync_pipelines

with world() as config:
    result = crmsync_pipelines.sync(config, force_full=True)

print(result.summary())                 # one line per entity: created, updated, unchanged, failed
for record in result.failed_records:    # all of them, not a sample (they also wait in failed_records)
    print(f"FAILED {record.entity} {record.source_id} [{record.error_class}] {record.message}")
sys.exit(0 if result.ok else 1)
