"""The durable webhook inbox: a SQLite file in WAL mode shared by the receiver and Dagster.

The receiver answers 202 only after the event is committed here, so a delivery Daktela saw
as accepted survives a crash of the receiver. WAL lets the Dagster sensor and the sync job
read and mark events while the receiver keeps writing from another process.

Durability: ``synchronous=FULL`` by default. In WAL mode ``NORMAL`` already survives a crash
of the process but may lose the last commits on power loss; the 202 is a promise to the
sender, so we pay the extra fsync (about 0.3 ms more per event here; ``bench/webhook_bench.py``
still sustains ~590 events/s end to end on the 2-core development VM).

Leases: a pending event handed to a ``webhook_sync`` run carries a lease — the claim token
(the run key the sensor requested), the run id once the run starts, the time of the last
heartbeat, and how many attempts it had. A run that dies (kill -9) stops renewing its lease; a
run that fails releases it. Either way the sensor hands the event to a new run, at most
``max_attempts`` times, then marks it ``failed`` (``crmsync inbox requeue`` puts it back).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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

#: Lease columns, added to inbox files created before leases existed (``ALTER TABLE``).
_LEASE_COLUMNS = (
    ("lease_token", "TEXT"),
    ("lease_run_id", "TEXT"),
    ("lease_at", "TEXT"),
    ("attempts", "INTEGER NOT NULL DEFAULT 0"),
    ("claims", "INTEGER NOT NULL DEFAULT 0"),
)
_LEASE_INDEX = (
    "CREATE INDEX IF NOT EXISTS webhook_events_lease ON webhook_events (lease_token) WHERE status = 'pending'"
)


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
    #: The claim token (run key) of the run the event is handed to; ``None`` while unclaimed.
    lease_token: str | None = None
    #: The Dagster run id, once that run started.
    lease_run_id: str | None = None
    #: When the lease was taken or last renewed (ISO 8601, UTC).
    lease_at: str | None = None
    #: How many runs the event was handed to since it was received (or re-queued).
    attempts: int = 0
    #: How many runs it was ever handed to (never reset: re-requests need fresh run keys).
    claims: int = 0


@dataclass(frozen=True)
class Lease:
    """The pending events handed to one run (one claim token)."""

    token: str
    run_id: str | None
    #: The oldest heartbeat among the lease's events (ISO 8601, UTC).
    renewed_at: str
    seqs: tuple[int, ...]
    attempts: int

    def expired(self, now: datetime, lease_s: float) -> bool:
        return datetime.fromisoformat(self.renewed_at) + timedelta(seconds=lease_s) <= now


@dataclass(frozen=True)
class Released:
    """What releasing a lease did: back to unclaimed ``pending``, or ``failed`` for good."""

    requeued: tuple[int, ...]
    failed: tuple[int, ...]


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
    "status, run_id, processed_at, error, lease_token, lease_run_id, lease_at, attempts, claims"
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
            self._add_lease_columns()

    def _add_lease_columns(self) -> None:
        """Upgrade an inbox file written before leases existed (idempotent, process-safe)."""
        def missing() -> list[tuple[str, str]]:
            have = {str(r[1]) for r in self._conn.execute("PRAGMA table_info(webhook_events)")}
            return [(name, kind) for name, kind in _LEASE_COLUMNS if name not in have]

        if missing():
            with self._write():  # re-checked under the write lock: another process may have won
                for name, kind in missing():
                    self._conn.execute(f"ALTER TABLE webhook_events ADD COLUMN {name} {kind}")
        self._conn.execute(_LEASE_INDEX)

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
                    f"processed_at = ?, error = ?, lease_token = NULL, lease_at = NULL "
                    f"WHERE seq IN ({marks})",
                    (status, run_id, processed_at, error, *chunk),
                )
                changed += cursor.rowcount
        return changed

    # -- leases -----------------------------------------------------------------------------

    def claim(self, seqs: Iterable[int], token: str) -> list[int]:
        """Hand unclaimed pending events to the run ``token`` names; returns the seqs taken."""
        seq_list = [int(s) for s in seqs]
        taken: list[int] = []
        now = _now()
        with self._lock, self._write():
            for chunk in _chunks(seq_list):
                rows = self._conn.execute(
                    f"UPDATE webhook_events SET lease_token = ?, lease_run_id = NULL, lease_at = ?, "
                    f"attempts = attempts + 1, claims = claims + 1 WHERE seq IN ({_marks(chunk)}) "
                    f"AND status = 'pending' AND lease_token IS NULL RETURNING seq",
                    (token, now, *chunk),
                ).fetchall()
                taken.extend(int(r[0]) for r in rows)
        return sorted(taken)

    def start_lease(self, seqs: Iterable[int], token: str, run_id: str) -> list[int]:
        """A run starts work on its events: which of ``seqs`` it owns now.

        With a ``token`` (a sensor-requested run) it owns the pending events claimed under it.
        Without one (a run launched by hand) it takes the pending events that no started run
        holds. Events another run holds, or that are no longer pending, are not its business.
        """
        seq_list = [int(s) for s in seqs]
        owned: list[int] = []
        now = _now()
        with self._lock, self._write():
            for chunk in _chunks(seq_list):
                if token:
                    rows = self._conn.execute(
                        f"UPDATE webhook_events SET lease_run_id = ?, lease_at = ? WHERE seq IN ({_marks(chunk)}) "
                        f"AND status = 'pending' AND lease_token = ? RETURNING seq",
                        (run_id, now, *chunk, token),
                    ).fetchall()
                else:
                    rows = self._conn.execute(
                        f"UPDATE webhook_events SET lease_token = ?, lease_run_id = ?, lease_at = ?, "
                        f"attempts = attempts + CASE WHEN lease_token IS NULL THEN 1 ELSE 0 END, "
                        f"claims = claims + CASE WHEN lease_token IS NULL THEN 1 ELSE 0 END "
                        f"WHERE seq IN ({_marks(chunk)}) AND status = 'pending' AND lease_run_id IS NULL "
                        f"RETURNING seq",
                        (run_id, run_id, now, *chunk),
                    ).fetchall()
                owned.extend(int(r[0]) for r in rows)
        return sorted(owned)

    def renew(self, run_id: str) -> int:
        """Heartbeat of a running run: its leases stay valid for another lease period."""
        with self._lock, self._write():
            cursor = self._conn.execute(
                "UPDATE webhook_events SET lease_at = ? WHERE status = 'pending' AND lease_run_id = ?",
                (_now(), run_id),
            )
        return cursor.rowcount

    def leases(self) -> list[Lease]:
        """Every live lease (pending events handed to a run), oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT lease_token, MAX(lease_run_id), MIN(lease_at), group_concat(seq), MAX(attempts) "
                "FROM webhook_events WHERE status = 'pending' AND lease_token IS NOT NULL "
                "GROUP BY lease_token ORDER BY MIN(seq)"
            ).fetchall()
        return [
            Lease(str(token), run_id, str(renewed), tuple(sorted(int(s) for s in str(seqs).split(","))), int(attempts))
            for token, run_id, renewed, seqs, attempts in rows
        ]

    def release(self, token: str, reason: str, *, max_attempts: int) -> Released:
        """End the lease ``token`` without an outcome (its run died or failed).

        Events that had ``max_attempts`` attempts become ``failed`` with ``reason``; the others
        go back to unclaimed ``pending`` (the reason kept in ``error``) for the next run.
        """
        now = _now()
        with self._lock, self._write():
            failed = self._conn.execute(
                "UPDATE webhook_events SET status = 'failed', processed_at = ?, lease_token = NULL, lease_at = NULL, "
                "run_id = COALESCE(lease_run_id, run_id), "
                "error = ? || ' (gave up after ' || attempts || ' attempts; requeue with `crmsync inbox requeue`)' "
                "WHERE status = 'pending' AND lease_token = ? AND attempts >= ? RETURNING seq",
                (now, reason[:1800], token, max_attempts),
            ).fetchall()
            requeued = self._conn.execute(
                "UPDATE webhook_events SET lease_token = NULL, lease_run_id = NULL, lease_at = NULL, error = ? "
                "WHERE status = 'pending' AND lease_token = ? RETURNING seq",
                (reason[:2000], token),
            ).fetchall()
        return Released(tuple(sorted(int(r[0]) for r in requeued)), tuple(sorted(int(r[0]) for r in failed)))

    def requeue(
        self, seqs: Iterable[int] | None = None, *, status: EventStatus = "failed"
    ) -> tuple[list[int], list[int]]:
        """Put events with ``status`` (all of them, or only ``seqs``) back to ``pending`` with
        fresh attempts. Returns ``(requeued, already_pending)``: an event whose identical twin
        already waits is left as it is (the twin covers it)."""
        if status == "pending":
            raise ValueError("pending events are already queued")
        where = "status = ?"
        params: list[Any] = [status]
        if seqs is not None:
            seq_list = [int(s) for s in seqs]
            if not seq_list:
                return [], []
            where += " AND seq IN (SELECT value FROM json_each(?))"
            params.append(json.dumps(seq_list))
        with self._lock, self._write():
            wanted = [int(r[0]) for r in self._conn.execute(f"SELECT seq FROM webhook_events WHERE {where}", params)]
            done = [int(r[0]) for r in self._conn.execute(
                f"UPDATE OR IGNORE webhook_events SET status = 'pending', processed_at = NULL, lease_token = NULL, "
                f"lease_run_id = NULL, lease_at = NULL, attempts = 0 WHERE {where} RETURNING seq", params)]
        return sorted(done), sorted(set(wanted) - set(done))

    # -- reads ------------------------------------------------------------------------------

    def pending_after(self, seq: int, limit: int = 1000) -> list[InboxEvent]:
        """Pending events with a seq greater than ``seq``, oldest first (leased or not)."""
        return self._select("WHERE status = 'pending' AND seq > ? ORDER BY seq LIMIT ?", (seq, limit))

    def unclaimed(self, limit: int = 1000) -> list[InboxEvent]:
        """Pending events no run holds, oldest first: the sensor's work list."""
        return self._select("WHERE status = 'pending' AND lease_token IS NULL ORDER BY seq LIMIT ?", (limit,))

    def get(self, seqs: Iterable[int]) -> list[InboxEvent]:
        """The events with these seqs (any status), oldest first."""
        seq_list = [int(s) for s in seqs]
        found: list[InboxEvent] = []
        for start in range(0, len(seq_list), 500):
            chunk = seq_list[start : start + 500]
            found.extend(self._select(f"WHERE seq IN ({','.join('?' * len(chunk))})", tuple(chunk)))
        return sorted(found, key=lambda e: e.seq)

    def events(self, status: EventStatus | None = None, limit: int | None = None) -> list[InboxEvent]:
        """Every event (or those with one status), oldest first; for operators and tests."""
        tail = " LIMIT ?" if limit is not None else ""
        extra: tuple[Any, ...] = (limit,) if limit is not None else ()
        if status is None:
            return self._select("ORDER BY seq" + tail, extra)
        return self._select("WHERE status = ? ORDER BY seq" + tail, (status, *extra))

    def counts(self) -> dict[str, int]:
        """Events per status; every status is present, zero when absent."""
        with self._lock:
            rows = self._conn.execute("SELECT status, COUNT(*) FROM webhook_events GROUP BY status").fetchall()
        counts: dict[str, int] = dict.fromkeys(EVENT_STATUSES, 0)
        counts.update({str(status): int(n) for status, n in rows})
        return counts

    def leased_count(self) -> int:
        """Pending events currently handed to a run."""
        with self._lock:
            row = self._conn.execute(
                "SELECT COUNT(*) FROM webhook_events WHERE status = 'pending' AND lease_token IS NOT NULL"
            ).fetchone()
        return int(row[0])

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
                lease_token=r[13],
                lease_run_id=r[14],
                lease_at=r[15],
                attempts=int(r[16] or 0),
                claims=int(r[17] or 0),
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


def _chunks(seqs: list[int], size: int = 500) -> Iterable[list[int]]:
    """SQLite limits host parameters per statement; 500 stays far below every build's limit."""
    for start in range(0, len(seqs), size):
        yield seqs[start : start + size]


def _marks(chunk: Sequence[int]) -> str:
    return ",".join("?" * len(chunk))


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
