"""The durable inbox: dedup, status transitions, and concurrent writers (threads and processes)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from crmsync_pipelines.webhooks.inbox import Inbox, NewEvent, Released


def _add(inbox: Inbox, record_id: str, event: str = "call_close", **kw: object) -> tuple[int, bool]:
    return inbox.add(
        source="daktela",
        event=event,
        entity="activity",
        activity_type="call",
        record_id=record_id,
        body={"event": event, "name": record_id, **kw},
    )


def test_wal_mode_and_full_synchronous(tmp_path: Path) -> None:
    with Inbox(tmp_path / "i.sqlite") as inbox:
        assert inbox._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert inbox._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_add_pending_mark_counts(tmp_path: Path) -> None:
    with Inbox(tmp_path / "i.sqlite") as inbox:
        assert inbox.max_seq() == 0
        assert [_add(inbox, f"c{i}") for i in range(1, 5)] == [(1, False), (2, False), (3, False), (4, False)]
        assert [e.seq for e in inbox.pending_after(0)] == [1, 2, 3, 4]
        assert [e.seq for e in inbox.pending_after(2)] == [3, 4]
        assert [e.seq for e in inbox.pending_after(0, limit=2)] == [1, 2]
        assert inbox.mark([1, 2], "processed", run_id="run-1") == 2
        assert inbox.mark([3], "failed", run_id="run-1", error="transient: boom") == 1
        assert inbox.mark([], "processed") == 0
        assert [e.seq for e in inbox.pending_after(0)] == [4]
        assert inbox.counts() == {"pending": 1, "processed": 2, "failed": 1, "ignored": 0, "recorded_delete": 0}
        [failed] = inbox.get([3])
        assert (failed.status, failed.run_id, failed.error) == ("failed", "run-1", "transient: boom")
        assert failed.processed_at is not None
        assert inbox.max_seq() == 4


def test_events_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "i.sqlite"
    with Inbox(path) as inbox:
        _add(inbox, "c1")
    with Inbox(path) as reopened:
        [event] = reopened.pending_after(0)
        assert (event.seq, event.record_id, event.body) == (1, "c1", {"event": "call_close", "name": "c1"})


def test_duplicates_collapse_only_against_the_same_open_status(tmp_path: Path) -> None:
    with Inbox(tmp_path / "i.sqlite") as inbox:
        assert _add(inbox, "c1") == (1, False)
        assert _add(inbox, "c1") == (1, True)
        assert _add(inbox, "c1", extra=1) == (2, False)  # other body
        assert _add(inbox, "c1", event="call_answer") == (3, False)  # other event
        inbox.mark([1], "processed")
        assert _add(inbox, "c1") == (4, False)
        ignored = NewEvent("daktela", "sms_close", "activity", "sms", "s1", {"name": "s1"}, "ignored", "off")
        assert inbox.add_many([ignored, ignored]) == [(5, False), (5, True)]


def test_unknown_status_is_refused(tmp_path: Path) -> None:
    with Inbox(tmp_path / "i.sqlite") as inbox:
        _add(inbox, "c1")
        with pytest.raises(ValueError, match="unknown inbox status 'done'"):
            inbox.mark([1], "done")  # type: ignore[arg-type]
        with pytest.raises(sqlite3.IntegrityError):
            inbox.add(
                source="zendesk",  # type: ignore[arg-type]
                event="x_y",
                entity="activity",
                activity_type=None,
                record_id="1",
                body={},
            )
        assert inbox.counts()["pending"] == 1


def test_concurrent_threads_lose_nothing(tmp_path: Path) -> None:
    with Inbox(tmp_path / "i.sqlite") as inbox:
        results: list[tuple[int, bool]] = []
        lock = threading.Lock()

        def writer(worker: int) -> None:
            for i in range(100):
                outcome = _add(inbox, f"w{worker}-{i}")
                with lock:
                    results.append(outcome)

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert len(results) == 800
        assert sorted(seq for seq, _ in results) == list(range(1, 801))
        assert inbox.counts()["pending"] == 800


_WRITER = """
import sys
from crmsync_pipelines.webhooks.inbox import Inbox
inbox = Inbox(sys.argv[1])
for i in range(150):
    inbox.add(source="crm", event="contact_update", entity="contact", activity_type=None,
              record_id=f"{sys.argv[2]}-{i}", body={"i": i})
    # Every process also delivers the same shared event: it must collapse to one row.
    inbox.add(source="crm", event="contact_update", entity="contact", activity_type=None,
              record_id="shared", body={"same": True})
inbox.close()
"""


def test_concurrent_processes_lose_nothing_and_dedupe(tmp_path: Path) -> None:
    path = tmp_path / "i.sqlite"
    Inbox(path).close()
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(path), f"p{n}"]) for n in range(3)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    with Inbox(path) as inbox:
        events = inbox.pending_after(0, limit=10_000)
        ids = [e.record_id for e in events]
        assert len(ids) == 451
        assert ids.count("shared") == 1
        assert {f"p{n}-{i}" for n in range(3) for i in range(150)} == set(ids) - {"shared"}


# -- leases (issue 10 §3: a run killed mid-way must not strand its events) -------------------


def _lease_state(inbox: Inbox) -> list[tuple[int, str, str | None, str | None, int, int]]:
    return [(e.seq, e.status, e.lease_token, e.lease_run_id, e.attempts, e.claims) for e in inbox.events()]


def test_claim_start_renew_and_mark_a_lease(tmp_path: Path) -> None:
    with Inbox(tmp_path / "i.sqlite") as inbox:
        for name in ("c1", "c2", "c3"):
            _add(inbox, name)
        assert inbox.claim([1, 2], "webhook:activity:1-2") == [1, 2]
        assert inbox.claim([1, 2, 3], "other") == [3]  # claimed events are not claimed twice
        assert [e.seq for e in inbox.unclaimed()] == []
        assert inbox.leased_count() == 3
        assert inbox.start_lease([1, 2], "webhook:activity:1-2", "run-1") == [1, 2]
        assert inbox.start_lease([1, 2, 3], "webhook:activity:1-2", "run-2") == [1, 2]  # 3 is "other"'s
        [first, second] = inbox.leases()
        assert (first.token, first.run_id, first.seqs, first.attempts) == ("webhook:activity:1-2", "run-2", (1, 2), 1)
        assert (second.token, second.run_id, second.seqs) == ("other", None, (3,))
        assert inbox.renew("run-2") == 2
        assert inbox.renew("run-1") == 0
        inbox.mark([1, 2], "processed", run_id="run-2")
        assert _lease_state(inbox) == [
            (1, "processed", None, "run-2", 1, 1),
            (2, "processed", None, "run-2", 1, 1),
            (3, "pending", "other", None, 1, 1),
        ]
        assert inbox.leased_count() == 1


def test_a_run_launched_by_hand_takes_only_events_no_started_run_holds(tmp_path: Path) -> None:
    with Inbox(tmp_path / "i.sqlite") as inbox:
        for name in ("c1", "c2", "c3"):
            _add(inbox, name)
        inbox.claim([1], "sensor-key")          # claimed, its run not started
        inbox.claim([2], "key-2")
        inbox.start_lease([2], "key-2", "run-a")  # held by a started run
        assert inbox.start_lease([1, 2, 3], "", "manual") == [1, 3]
        assert _lease_state(inbox) == [
            (1, "pending", "manual", "manual", 1, 1), (2, "pending", "key-2", "run-a", 1, 1),
            (3, "pending", "manual", "manual", 1, 1),
        ]
        assert inbox.start_lease([1], "sensor-key", "late-run") == []  # the sensor's run came too late


def test_release_requeues_until_max_attempts_then_fails(tmp_path: Path) -> None:
    with Inbox(tmp_path / "i.sqlite") as inbox:
        _add(inbox, "c1")
        _add(inbox, "c2")
        inbox.claim([1, 2], "t1")
        inbox.start_lease([1, 2], "t1", "run-1")
        assert inbox.release("t1", "transient: boom", max_attempts=2) == Released(requeued=(1, 2), failed=())
        assert [(e.seq, e.status, e.lease_token, e.attempts, e.error) for e in inbox.events()] == [
            (1, "pending", None, 1, "transient: boom"), (2, "pending", None, 1, "transient: boom"),
        ]
        assert [e.seq for e in inbox.unclaimed()] == [1, 2]
        inbox.claim([1, 2], "t2")
        assert inbox.release("t2", "run r2 died", max_attempts=2) == Released(requeued=(), failed=(1, 2))
        [one, _] = inbox.events()
        assert (one.status, one.lease_token, one.attempts, one.claims) == ("failed", None, 2, 2)
        assert one.error == "run r2 died (gave up after 2 attempts; requeue with `crmsync inbox requeue`)"
        assert one.processed_at is not None
        assert inbox.release("t2", "again", max_attempts=2) == Released((), ())


def test_requeue_failed_events_with_fresh_attempts(tmp_path: Path) -> None:
    with Inbox(tmp_path / "i.sqlite") as inbox:
        for name in ("c1", "c2", "c3"):
            _add(inbox, name)
        inbox.claim([1, 2, 3], "t")
        inbox.mark([1, 2], "failed", run_id="r", error="not found at the source: x")
        inbox.mark([3], "processed", run_id="r")
        _add(inbox, "c2")  # the same delivery again: a new pending twin of failed seq 2
        assert inbox.requeue([1, 3]) == ([1], [])  # 3 is processed, not failed: untouched
        assert inbox.requeue() == ([], [2])  # 2's twin (seq 4) already waits
        [one] = inbox.get([1])
        assert (one.status, one.attempts, one.claims) == ("pending", 0, 1)
        assert (one.lease_token, one.processed_at) == (None, None)
        assert [e.seq for e in inbox.unclaimed()] == [1, 4]
        with pytest.raises(ValueError, match="already queued"):
            inbox.requeue(status="pending")


def test_lease_expiry(tmp_path: Path) -> None:
    with Inbox(tmp_path / "i.sqlite") as inbox:
        _add(inbox, "c1")
        inbox.claim([1], "t")
        [lease] = inbox.leases()
        taken = datetime.fromisoformat(lease.renewed_at)
        assert not lease.expired(taken + timedelta(seconds=9.9), 10)
        assert lease.expired(taken + timedelta(seconds=10), 10)


_OLD_SCHEMA = """
CREATE TABLE webhook_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, received_at TEXT NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('daktela', 'crm')), event TEXT NOT NULL, entity TEXT NOT NULL,
    activity_type TEXT, record_id TEXT NOT NULL, body_hash TEXT NOT NULL, body TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'processed', 'failed', 'ignored', 'recorded_delete')),
    run_id TEXT, processed_at TEXT, error TEXT
);
INSERT INTO webhook_events (received_at, source, event, entity, activity_type, record_id, body_hash, body, status)
VALUES ('2026-11-01T00:00:00+00:00', 'daktela', 'call_close', 'activity', 'call', 'c1', 'h', '{}', 'pending');
"""


def test_an_inbox_from_before_leases_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:
        conn.executescript(_OLD_SCHEMA)
    with Inbox(path) as inbox, Inbox(path) as second:  # a second open finds the columns present
        [event] = inbox.unclaimed()
        assert (event.seq, event.attempts, event.claims, event.lease_token) == (1, 0, 0, None)
        assert second.claim([1], "t") == [1]
