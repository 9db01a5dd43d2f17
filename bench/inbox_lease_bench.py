"""What leases cost the webhook sensor: one tick's inbox work, with and without leases.

Baseline (the pre-lease sensor): read the pending events after the cursor and group them.
Leased: read the unclaimed pending events, group them, claim each group under its run key,
then (next tick) list the live leases. Both on the same temporary inbox file of ``--events``
pending events (calls, e-mails, contacts), at ``synchronous=FULL``. Prints one table.

    .venv/bin/python bench/inbox_lease_bench.py [--events 5000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from crmsync_pipelines.webhooks.batching import plan_batches
from crmsync_pipelines.webhooks.inbox import Inbox, NewEvent
from crmsync_pipelines.webhooks.resolution import NameResolver

KINDS = (("call_close", "activity", "call"), ("email_close", "activity", "email"), ("contact_update", "contact", None))


def _fill(path: Path, events: int) -> None:
    with Inbox(path) as inbox:
        batch = []
        for i in range(events):
            event, entity, kind = KINDS[i % len(KINDS)]
            name = f"crm_{i}" if entity == "contact" else f"{kind}_{i}"
            batch.append(NewEvent("daktela", event, entity, kind, name, {"event": event, "name": name}))
        inbox.add_many(batch)


def _resolver(entity: str) -> NameResolver:
    return NameResolver(("crm_",))


def _timed(fn: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="inbox-lease-bench-") as tmp:
        path = Path(tmp) / "inbox.sqlite"
        _fill(path, args.events)
        with Inbox(path) as inbox:
            def baseline() -> None:
                plan_batches(inbox.pending_after(0, limit=args.events), _resolver)

            def read_and_group() -> None:
                plan_batches(inbox.unclaimed(limit=args.events), _resolver)

            def claim_and_release() -> None:
                plan = plan_batches(inbox.unclaimed(limit=args.events), _resolver)
                for batch in plan.batches:
                    inbox.claim(batch.seqs, batch.run_key)
                for lease in inbox.leases():
                    inbox.release(lease.token, "bench", max_attempts=1_000_000)

            def list_leases() -> None:
                inbox.leases()

            base = _timed(baseline, args.repeat)
            unclaimed = _timed(read_and_group, args.repeat)
            full = _timed(claim_and_release, args.repeat)
            plan = plan_batches(inbox.unclaimed(limit=args.events), _resolver)
            for batch in plan.batches:
                inbox.claim(batch.seqs, batch.run_key)
            leases = _timed(list_leases, args.repeat)
            assert inbox.leased_count() == args.events
    rows = [
        ("baseline: pending after cursor + group", base),
        ("leased: unclaimed + group", unclaimed),
        ("leased: unclaimed + group + claim + release", full),
        ("leased: list live leases (next tick)", leases),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"{args.events} pending events, median of {args.repeat}")
    print(f"{'step'.ljust(width)}  ms      vs baseline\n{'-' * width}  ------  -----------")
    for name, seconds in rows:
        print(f"{name.ljust(width)}  {seconds * 1000:6.1f}  {seconds / base:5.2f}x")


if __name__ == "__main__":
    main()
