"""The durable inbox: dedup, status transitions, and concurrent writers (threads and processes)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from crmsync_pipelines.webhooks.inbox import Inbox, NewEvent


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
                source="zendesk",
                event="x_y",
                entity="activity",
                activity_type=None,  # type: ignore[arg-type]
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
