"""Incremental sync with state (the SDK's ``examples/incremental-sync.php``).

    python examples/incremental_sync.py                # records changed since the last run
    python examples/incremental_sync.py --force-full   # everything, compared field by field
    python examples/incremental_sync.py --reset-state  # forget the state, then exit

The state is a small JSON file next to the config (``sync-state.json``): the end of the last
window that synced. Each run syncs ``[last end, now)`` and moves the mark only when the run
ended without failures, so a failed record is read again by the next run (the SDK moved it
anyway and never retried such records). crmsync's own memory (``synced_state`` in the staging
file: what was last written per record) means a record seen twice costs no write.
In production, Dagster's partitions and schedules do this bookkeeping for you (docs/dagster.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from bootstrap import world

import crmsync_pipelines

parser = argparse.ArgumentParser()
parser.add_argument("--force-full", action="store_true", help="ignore the state: every record, field by field")
parser.add_argument("--reset-state", action="store_true", help="forget the state (file and memory) and exit")
args = parser.parse_args()

with world() as config:
    state_file = Path(config).with_name("sync-state.json")
    if args.reset_state:
        state_file.unlink(missing_ok=True)
        crmsync_pipelines.reset_state(config)
        print("state reset")
        sys.exit(0)
    state = json.loads(state_file.read_text()) if state_file.exists() else {}
    until = datetime.now(UTC)
    # The very first run has no mark: start at the epoch so every record is read once.
    since = None if args.force_full else datetime.fromisoformat(state.get("until", "1970-01-01T00:00:00+00:00"))
    result = crmsync_pipelines.sync(config, since=since, until=until, force_full=args.force_full)
    if result.ok:
        state_file.write_text(json.dumps({"until": until.isoformat(), "run_id": result.run_id}))

print(f"window {result.window.label() if result.window else '-'}")
print(result.summary())
for record in result.failed_records:
    print(f"FAILED {record.entity} {record.source_id} [{record.error_class}] {record.message}")
sys.exit(0 if result.ok else 1)
