"""Sync one record (the SDK's ``examples/single-record-sync.php``).

    python examples/single_record.py contact 12
    python examples/single_record.py account 3
    python examples/single_record.py activity <Daktela activity name>
    python examples/single_record.py custom:partners 1

Through the same diff and ledger as a batch run: an unchanged record costs no write. Prints
the outcome and every written field (old -> new); exits 1 when the record failed or does not
exist at the source. The CLI equivalent: ``crmsync sync --entity contact --id 12``.
"""

from __future__ import annotations

import sys

from bootstrap import world

import crmsync_pipelines

if len(sys.argv) != 3:
    sys.exit(__doc__)
entity, record_id = sys.argv[1], sys.argv[2]

with world() as config:
    result = crmsync_pipelines.sync_ids(config, entity, [record_id])

for record in result.records:
    print(f"{record.entity} {record.source_id} -> {record.target_key}: {record.outcome}")
    if record.error_class:
        print(f"  [{record.error_class}] {record.error_message}")
    for change in record.changes:
        print(f"  {change.field}: {change.old!r} -> {change.new!r}")
sys.exit(0 if result.ok else 1)
