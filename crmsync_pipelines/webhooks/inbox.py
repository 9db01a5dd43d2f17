"""The durable webhook inbox: a SQLite file in WAL mode shared by the receiver and Dagster.

The receiver answers 202 only after the event is committed here, so a delivery Daktela saw
as accepted survives a crash of the receiver. WAL lets the Dagster sensor and the sync job
read and mark events while the receiver keeps writing from another process.

Durability: ``synchronous=FULL`` by default. In WAL mode ``NORMAL`` already survives a crash
of the process but may lose the last commits on power loss; the 202 is a promise to the
sender, so we pay the extra fsync (about 0.3 ms more per event here; ``bench/webhook_bench.py``
still sustains ~590 events/s end to end on the 2-core development VM).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

EventStatus = Literal["pending", "processed", "failed", "ignored", "recorded_delete"]
EVENT_STATUSES: tuple[EventStatus, ...] = ("pending", "processed", "failed", "ignored", "recorded_delete")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS webhook_events (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at   TEXT    NOT NULL,
    source        TEXT    NOT NULL CHECK (source IN ('daktela', 'crm')),
    event         TEXT    NOT NULL,
    entity        TEXT    NOT NULL,
    activity_type TEXT,
    record_id     TEXT    NOT NULL,
    body_hash     TEXT    NOT NULL,
    body          TEXT    NOT NULL,
    status        TEXT    NOT NULL
        CHECK (status IN ('pending', 'processed', 'failed', 'ignored', 'recorded_delete')),
    run_id        TEXT,
    processed_at  TEXT,
    error         TEXT
);
-- A duplicate delivery collapses into the event that still waits for processing; once that
-- one is processed, a later identical delivery is a new change notice and gets its own row.
CREATE UNIQUE INDEX IF NOT EXISTS webhook_events_pending_dedup
    ON webhook_events (source, event, record_id, body_hash) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS webhook_events_lookup
    ON webhook_events (source, event, record_id, body_hash, status);
CREATE INDEX IF NOT EXISTS webhook_events_status ON webhook_events (status, seq);
"""


def body_hash(body: dict[str, Any]) -> str:
    """A hash that is equal for equal payloads however their keys were ordered."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class InboxEvent:
    seq: int
    received_at: str
    source: str
    event: str
    entity: str
    activity_type: str | None
    record_id: str
    body_hash: str
    body: dict[str, Any]
    status: str
    run_id: str | None
    processed_at: str | None
    error: str | None


@dataclass(frozen=True)
class NewEvent:
    """An event to store; ``status`` is ``pending`` unless policy already decided otherwise."""

    source: Literal["daktela", "crm"]
    event: str
    entity: str
    activity_type: str | None
    record_id: str
    body: dict[str, Any]
    status: EventStatus = "pending"
    error: str | None = None


_COLUMNS = (
    "seq, received_at, source, event, entity, activity_type, record_id, body_hash, body, "
    "status, run_id, processed_at, error"
)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class Inbox:
    """Thread-safe access to one inbox file (one connection behind a lock per instance).

    Several processes may open the same file: writers serialise on SQLite's write lock
    (``BEGIN IMMEDIATE`` with a busy timeout), readers never block writers in WAL mode.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        busy_timeout_s: float = 30.0,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(
            str(self.path), timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(f"PRAGMA synchronous={synchronous}")
        with self._lock:
            # Every statement is IF NOT EXISTS, so concurrent first opens are harmless.
            self._conn.executescript(_SCHEMA)

    # -- transactions ---------------------------------------------------------------------

    def _write(self) -> _WriteTransaction:
        return _WriteTransaction(self._conn)

    # -- writes -----------------------------------------------------------------------------

    def add(
        self,
        *,
        source: Literal["daktela", "crm"],
        event: str,
        entity: str,
        activity_type: str | None,
        record_id: str,
        body: dict[str, Any],
        status: EventStatus = "pending",
        error: str | None = None,
    ) -> tuple[int, bool]:
        """Store one event durably; returns ``(seq, duplicate)``.

        A delivery equal to one that is still open (same source, event, record and body,
        and the same initial status) is a duplicate and returns the existing row's seq.
        """
        new = NewEvent(source, event, entity, activity_type, record_id, body, status, error)
        return self.add_many([new])[0]

    def add_many(self, events: Sequence[NewEvent]) -> list[tuple[int, bool]]:
        """Store several events in one transaction (one fsync for the lot)."""
        results: list[tuple[int, bool]] = []
        with self._lock, self._write():
            for new in events:
                results.append(self._insert(new))
        return results

    def _insert(self, new: NewEvent) -> tuple[int, bool]:
        if new.status not in EVENT_STATUSES:
            raise ValueError(f"unknown inbox status {new.status!r}")
        digest = body_hash(new.body)
        row = self._conn.execute(
            "SELECT seq FROM webhook_events WHERE source = ? AND event = ? AND record_id = ? "
            "AND body_hash = ? AND status = ? LIMIT 1",
            (new.source, new.event, new.record_id, digest, new.status),
        ).fetchone()
        if row is not None:
            return int(row[0]), True
        cursor = self._conn.execute(
            "INSERT INTO webhook_events (received_at, source, event, entity, activity_type, "
            "record_id, body_hash, body, status, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                _now(),
                new.source,
                new.event,
                new.entity,
                new.activity_type,
                new.record_id,
                digest,
                json.dumps(new.body, ensure_ascii=False, default=str),
                new.status,
                new.error,
            ),
        )
        seq = cursor.lastrowid
        assert seq is not None
        return seq, False

    def mark(
        self,
        seqs: Iterable[int],
        status: EventStatus,
        run_id: str | None = None,
        error: str | None = None,
    ) -> int:
        """Set the outcome of events; returns how many rows changed."""
        if status not in EVENT_STATUSES:
            raise ValueError(f"unknown inbox status {status!r}")
        seq_list = [int(s) for s in seqs]
        if not seq_list:
            return 0
        processed_at = None if status == "pending" else _now()
        changed = 0
        with self._lock, self._write():
            for start in range(0, len(seq_list), 500):
                chunk = seq_list[start : start + 500]
                marks = ",".join("?" * len(chunk))
                cursor = self._conn.execute(
                    f"UPDATE webhook_events SET status = ?, run_id = COALESCE(?, run_id), "
                    f"processed_at = ?, error = ? WHERE seq IN ({marks})",
                    (status, run_id, processed_at, error, *chunk),
                )
                changed += cursor.rowcount
        return changed

    # -- reads ------------------------------------------------------------------------------

    def pending_after(self, seq: int, limit: int = 1000) -> list[InboxEvent]:
        """Pending events with a seq greater than ``seq``, oldest first."""
        return self._select("WHERE status = 'pending' AND seq > ? ORDER BY seq LIMIT ?", (seq, limit))

    def get(self, seqs: Iterable[int]) -> list[InboxEvent]:
        """The events with these seqs (any status), oldest first."""
        seq_list = [int(s) for s in seqs]
        found: list[InboxEvent] = []
        for start in range(0, len(seq_list), 500):
            chunk = seq_list[start : start + 500]
            found.extend(self._select(f"WHERE seq IN ({','.join('?' * len(chunk))})", tuple(chunk)))
        return sorted(found, key=lambda e: e.seq)

    def events(self, status: EventStatus | None = None) -> list[InboxEvent]:
        """Every event (or those with one status), oldest first; for operators and tests."""
        if status is None:
            return self._select("ORDER BY seq", ())
        return self._select("WHERE status = ? ORDER BY seq", (status,))

    def counts(self) -> dict[str, int]:
        """Events per status; every status is present, zero when absent."""
        with self._lock:
            rows = self._conn.execute("SELECT status, COUNT(*) FROM webhook_events GROUP BY status").fetchall()
        counts: dict[str, int] = dict.fromkeys(EVENT_STATUSES, 0)
        counts.update({str(status): int(n) for status, n in rows})
        return counts

    def max_seq(self) -> int:
        """The highest seq ever stored (0 for an empty inbox)."""
        with self._lock:
            row = self._conn.execute("SELECT COALESCE(MAX(seq), 0) FROM webhook_events").fetchone()
        return int(row[0])

    def _select(self, where: str, params: tuple[Any, ...]) -> list[InboxEvent]:
        with self._lock:
            rows = self._conn.execute(f"SELECT {_COLUMNS} FROM webhook_events {where}", params).fetchall()
        return [
            InboxEvent(
                seq=int(r[0]),
                received_at=r[1],
                source=r[2],
                event=r[3],
                entity=r[4],
                activity_type=r[5],
                record_id=r[6],
                body_hash=r[7],
                body=json.loads(r[8]),
                status=r[9],
                run_id=r[10],
                processed_at=r[11],
                error=r[12],
            )
            for r in rows
        ]

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Inbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _WriteTransaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``: takes the write lock up front so check-then-insert
    is atomic across processes, and rolls back on any error so nothing half-written stays."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self._conn.execute("COMMIT")
        else:
            self._conn.execute("ROLLBACK")
