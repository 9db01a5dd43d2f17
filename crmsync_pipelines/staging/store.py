"""DuckDB staging: raw extracts, mapped payloads, target snapshots, diffs, ledger, dead letters.

DuckDB allows one writing process per file, so every method opens a connection, does one short
transaction and closes it again; no connection is ever held across an API call. A second
process waits (with backoff) for the file and, past ``lock_timeout_s``, fails with a
``StagingBusyError`` that says what is going on instead of deadlocking.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
import uuid
from collections.abc import Generator, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb

from crmsync_pipelines.errors import StagingBusyError

_PROCESS_LOCKS: dict[str, threading.RLock] = {}
_PROCESS_LOCKS_GUARD = threading.Lock()
SCHEMA_VERSION = "1"
#: DuckDB's buffer cache per connection: peak RSS stays flat in the number of records. Every
#: statement over a whole batch either streams (and spills its joins to ``<file>.tmp``) or runs
#: range by range (``StagingStore.save_memo``), so this cap holds at 500,000 records; the
#: sync process's peak is Python with its imports (~60 MB), DuckDB's own code and catalog once a
#: file is open (~35 MB), this cap and one chunk of records in Python.
MEMORY_LIMIT = "64MB"
#: Rows per transaction of a ranged pass over a whole batch (``StagingStore.save_memo``).
SET_CHUNK_ROWS = 5_000


def _now() -> datetime:
    return datetime.now(UTC)


#: ``dumps``'s encoder, built once: ``json.dumps`` with options builds a new one per call (about
#: a third of the cost of a small payload, paid for every raw, mapped and failed record).
_CANONICAL = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def dumps(value: Any) -> str:
    """Canonical JSON: the same payload always gives the same text (and so the same hash)."""
    return _CANONICAL.encode(value)


def _rows(**columns: Sequence[Any]) -> tuple[str, list[list[str | None]]]:
    """``(SELECT unnest(?::VARCHAR[]) AS <name>, ...)`` and its parameters: Python columns bound as
    lists (values as text, None as NULL) and zipped row by row into a relation to select from.

    As fast as registering a pandas DataFrame for a chunk of 5,000 rows, and a sync does not
    import pandas (with numpy ~30 MB of its peak RSS).
    """
    sql = "(SELECT " + ", ".join(f"unnest(?::VARCHAR[]) AS {name}" for name in columns) + ")"
    return sql, [[None if v is None else str(v) for v in values] for values in columns.values()]


@dataclass(frozen=True)
class BatchInfo:
    batch_id: str
    entity: str
    kind: str
    run_id: str
    window_start: datetime | None
    window_end: datetime | None
    extracted: int


@dataclass(frozen=True)
class MappedRow:
    source_id: str
    lookup_key: str | None
    payload: dict[str, Any] | None
    payload_hash: str | None
    invalid_class: str | None
    invalid_reason: str | None


@dataclass
class RecordResult:
    """The outcome of one record in one run, as written to the ledger."""

    source_id: str
    outcome: str
    lookup_key: str | None = None
    target_id: str | None = None
    payload_hash: str | None = None
    error_class: str | None = None
    error_message: str | None = None
    payload: dict[str, Any] | None = None
    note: str | None = None
    #: Whether ``synced_state`` should remember this payload as what the target holds.
    remember: bool = True


class StagingStore:
    """The one DuckDB file the engine stages everything in."""

    def __init__(self, path: str | Path, *, lock_timeout_s: float = 120.0, keep_batches: int = 5) -> None:
        self.path = Path(path)
        self.lock_timeout_s = lock_timeout_s
        self.keep_batches = keep_batches
        with _PROCESS_LOCKS_GUARD:
            self._lock = _PROCESS_LOCKS.setdefault(str(self.path.resolve()), threading.RLock())
        self._schema_ready = False
        self._local = threading.local()
        #: Rows per range of the ranged passes over a batch (``save_memo``).
        self.set_chunk_rows = SET_CHUNK_ROWS

    # -- connections -------------------------------------------------------------------------
    @contextmanager
    def session(self) -> Iterator[None]:
        """Group several store calls that make no API call in between into one connection.

        Opening the file costs tens of milliseconds, so DB-only sequences share a connection
        and a transaction; callers must never call Daktela or the CRM inside a session.
        """
        if getattr(self._local, "con", None) is not None:
            yield
            return
        with self.connect() as con:
            self._local.con = con
            try:
                yield
            finally:
                self._local.con = None

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Keep one connection for a whole stage: every store call in this thread still runs in
        its own transaction and commits at once (a crash loses nothing recorded), but none pays
        for opening the file, nor for the checkpoint DuckDB runs when the last connection
        closes (tens of milliseconds each, hundreds after a big insert).

        The connection is opened at the first store call inside (so a stage takes its entity
        lock before the file, never the other way round). Another process that finds the file
        held leaves a ``<file>.waiting`` marker while it retries; the holder gives the file up
        at its next chunk boundary (``let_waiters_in``) and opens it again when next needed, so
        two runs still interleave instead of one failing with ``StagingBusyError``.
        """
        if getattr(self._local, "holding", False) or getattr(self._local, "con", None) is not None:
            yield
            return
        self._local.holding = True
        try:
            yield
        finally:
            self._local.holding = False
            self._release_held()

    def _held(self) -> duckdb.DuckDBPyConnection | None:
        """The stage's connection (opened now if the stage has none yet), or None outside ``hold``."""
        if not getattr(self._local, "holding", False):
            return None
        held: duckdb.DuckDBPyConnection | None = getattr(self._local, "held", None)
        if held is None:
            self._lock.acquire()
            try:
                held = self._open()
                if not self._schema_ready:
                    self._ensure_schema(held)
            except BaseException:
                if held is not None:
                    held.close()
                self._lock.release()
                raise
            self._local.held = held
        return held

    def _release_held(self) -> None:
        held = getattr(self._local, "held", None)
        if held is None:
            return
        self._local.held = None
        try:
            held.close()
        finally:
            self._lock.release()

    @property
    def _waiting_marker(self) -> Path:
        return self.path.with_name(f"{self.path.name}.waiting")

    def let_waiters_in(self) -> None:
        """At a chunk boundary of a stage that holds the file: if another process is waiting
        for it (a fresh ``.waiting`` marker), close the connection and pause briefly; the next
        store call opens the file again (waiting, with backoff, while the other has it)."""
        if getattr(self._local, "held", None) is None or getattr(self._local, "con", None) is not None:
            return
        marker = self._waiting_marker
        try:
            age = time.time() - marker.stat().st_mtime
        except OSError:
            return
        if age > 5.0:  # left by a process that stopped waiting
            marker.unlink(missing_ok=True)
            return
        self._release_held()
        time.sleep(0.3)

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection inside one transaction; commits on success, rolls back on error."""
        shared = getattr(self._local, "con", None)
        if shared is not None:
            yield shared
            return
        held = self._held()
        if held is not None:
            held.execute("BEGIN TRANSACTION")
            try:
                yield held
            except BaseException:
                held.execute("ROLLBACK")
                raise
            held.execute("COMMIT")
            return
        with self._lock:
            con = self._open()
            try:
                if not self._schema_ready:
                    self._ensure_schema(con)
                con.execute("BEGIN TRANSACTION")
                try:
                    yield con
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
                con.execute("COMMIT")
            finally:
                con.close()

    def _open(self) -> duckdb.DuckDBPyConnection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.05
        waited = False
        while True:
            try:
                # One thread per connection: opening is faster and the work is I/O-light. The
                # memory cap keeps DuckDB's buffer cache from growing with the file (a stage keeps
                # its connection, so the cache lives as long as the stage); bigger work spills to
                # disk instead of raising the sync's peak RSS.
                con = duckdb.connect(str(self.path), config={"threads": 1, "memory_limit": MEMORY_LIMIT})
                if waited:
                    self._waiting_marker.unlink(missing_ok=True)
                return con
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower():
                    raise
                waited = True
                with suppress(OSError):  # tell a holder (``hold``) that someone waits; it lets us in
                    self._waiting_marker.touch()
                if time.monotonic() >= deadline:
                    raise StagingBusyError(
                        f"staging file {self.path} is held by another process for more than "
                        f"{self.lock_timeout_s:.0f}s; another crmsync run (or a notebook) is using it. "
                        "Wait for it to finish or raise staging.lock_timeout_s."
                    ) from exc
                time.sleep(delay)
                delay = min(delay * 2, 0.25)  # a holder lets us in for 0.3 s at a chunk boundary

    def _ensure_schema(self, con: duckdb.DuckDBPyConnection) -> None:
        ddl = resources.files("crmsync_pipelines.staging").joinpath("schema.sql").read_text(encoding="utf-8")
        for statement in ddl.split(";"):
            if statement.strip():
                con.execute(statement)
        con.execute(
            "INSERT OR REPLACE INTO schema_info VALUES ('schema_version', ?)", [SCHEMA_VERSION]
        )
        self._schema_ready = True

    @contextmanager
    def entity_lock(self, entity: str) -> Iterator[None]:
        """Serialise loads of one entity across processes, so two runs never race on the same creates.

        A lock file next to the DuckDB file, held with ``flock`` for the whole load stage (the DuckDB
        file itself is only held for short transactions). The second run waits up to
        ``lock_timeout_s`` and then fails with a message that says which run to wait for.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(f"{self.path.name}.{entity}.lock")
        deadline = time.monotonic() + self.lock_timeout_s
        with open(lock_path, "a+") as handle:
            while True:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    # Never wait for an entity while holding the file: the holder of the entity
                    # may be waiting for the file (``hold`` reopens it when next needed).
                    self._release_held()
                    if time.monotonic() >= deadline:
                        handle.seek(0)
                        holder = handle.read().strip() or "another process"
                        raise StagingBusyError(
                            f"another crmsync run ({holder}) is loading {entity} records; waited "
                            f"{self.lock_timeout_s:.0f}s. Let it finish (or raise staging.lock_timeout_s)."
                        ) from None
                    time.sleep(0.1)
            try:
                handle.seek(0)
                handle.truncate()
                handle.write(f"pid {os.getpid()}")
                handle.flush()
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    # -- batches and raw records -------------------------------------------------------------
    def new_batch(
        self, entity: str, kind: str, run_id: str, start: datetime | None, end: datetime | None
    ) -> str:
        batch_id = uuid.uuid4().hex
        with self.connect() as con:
            con.execute(
                "INSERT INTO batches (batch_id, entity, kind, run_id, window_start, window_end, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [batch_id, entity, kind, run_id, start, end, _now()],
            )
        return batch_id

    def insert_raw(self, batch_id: str, entity: str, rows: Sequence[tuple[str, dict[str, Any]]]) -> None:
        if not rows:
            return
        frame, columns = _rows(source_id=[r[0] for r in rows], payload=[dumps(r[1]) for r in rows])
        with self.connect() as con:
            con.execute(
                "INSERT INTO raw_records (batch_id, entity, source_id, payload, extracted_at, raw_hash) "
                f"SELECT ?, ?, source_id, payload::JSON, ?, md5(payload) FROM {frame}",
                [batch_id, entity, _now(), *columns],
            )

    def finish_extract(self, batch_id: str) -> int:
        """Drop repeated source ids of the batch (the first one extracted wins) and return the count.

        Done set-wise here, so extraction holds no set of every id seen in memory.
        """
        with self.connect() as con:
            con.execute(
                "DELETE FROM raw_records WHERE batch_id = ? AND rowid IN (SELECT rowid FROM ("
                "SELECT rowid, row_number() OVER (PARTITION BY source_id ORDER BY rowid) AS n "
                "FROM raw_records WHERE batch_id = ?) WHERE n > 1)",
                [batch_id, batch_id],
            )
            row = con.execute("SELECT count(*) FROM raw_records WHERE batch_id = ?", [batch_id]).fetchone()
            extracted = int(row[0]) if row else 0
            con.execute("UPDATE batches SET extracted = ? WHERE batch_id = ?", [extracted, batch_id])
        return extracted

    def latest_batch(
        self, entity: str, start: datetime | None, end: datetime | None, run_id: str | None = None
    ) -> BatchInfo | None:
        """The extract of exactly this window (``IS NOT DISTINCT FROM`` so open ends match).

        The run's own extract wins over a newer one from a concurrent run, so two runs of one
        partition never map or load each other's batch.
        """
        with self.connect() as con:
            row = con.execute(
                "SELECT batch_id, entity, kind, run_id, window_start, window_end, extracted FROM batches "
                "WHERE entity = ? AND kind = 'window' AND window_start IS NOT DISTINCT FROM ? "
                "AND window_end IS NOT DISTINCT FROM ? ORDER BY (run_id = ?) DESC, created_at DESC LIMIT 1",
                [entity, start, end, run_id or ""],
            ).fetchone()
        return BatchInfo(*row) if row else None

    def iter_raw(
        self, batch_id: str, chunk_size: int = 5000, *, unmapped_only: bool = False
    ) -> Iterator[list[tuple[str, dict[str, Any]]]]:
        """Raw records of a batch in chunks, by keyset on source_id (no connection held between chunks).

        ``unmapped_only``: only records without a ``mapped_records`` row in the batch yet (the
        rest were reused from ``map_memo``).
        """
        last = ""
        unmapped = (" AND NOT EXISTS (SELECT 1 FROM mapped_records m WHERE m.batch_id = r.batch_id "
                    "AND m.source_id = r.source_id)") if unmapped_only else ""
        while True:
            with self.connect() as con:
                rows = con.execute(
                    f"SELECT source_id, payload FROM raw_records r WHERE batch_id = ? AND source_id > ?{unmapped} "
                    "ORDER BY source_id LIMIT ?",
                    [batch_id, last, chunk_size],
                ).fetchall()
            if not rows:
                return
            yield [(sid, json.loads(payload)) for sid, payload in rows]
            last = rows[-1][0]
            if len(rows) < chunk_size:
                return

    def latest_raw(self, entity: str, source_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The most recently extracted raw record per source id (used to resolve relations)."""
        ids = sorted(set(source_ids))
        if not ids:
            return {}
        with self.connect() as con:
            rows = con.execute(
                "SELECT r.source_id, r.payload FROM raw_records r JOIN batches b USING (batch_id) "
                "WHERE r.entity = ? AND r.source_id IN (SELECT unnest(?::VARCHAR[])) "
                "QUALIFY row_number() OVER (PARTITION BY r.source_id ORDER BY b.created_at DESC) = 1",
                [entity, ids],
            ).fetchall()
        return {sid: json.loads(payload) for sid, payload in rows}

    # -- mapped records ---------------------------------------------------------------------
    def clear_mapped(self, batch_id: str) -> None:
        with self.connect() as con:
            con.execute("DELETE FROM mapped_records WHERE batch_id = ?", [batch_id])

    def insert_mapped(self, batch_id: str, entity: str, rows: Sequence[MappedRow]) -> None:
        if not rows:
            return
        frame, columns = _rows(
            source_id=[r.source_id for r in rows],
            lookup_key=[r.lookup_key for r in rows],
            payload=[dumps(r.payload) if r.payload is not None else None for r in rows],
            payload_hash=[r.payload_hash for r in rows],
            invalid_class=[r.invalid_class for r in rows],
            invalid_reason=[r.invalid_reason for r in rows],
        )
        with self.connect() as con:
            con.execute(
                "INSERT INTO mapped_records (batch_id, entity, source_id, lookup_key, payload, payload_hash, "
                "invalid_class, invalid_reason) SELECT ?, ?, source_id, lookup_key, payload::JSON, "
                f"payload_hash, invalid_class, invalid_reason FROM {frame}",
                [batch_id, entity, *columns],
            )

    def finish_map(self, batch_id: str) -> None:
        with self.connect() as con:
            con.execute("UPDATE batches SET mapped_at = ? WHERE batch_id = ?", [_now(), batch_id])

    def is_mapped(self, batch_id: str) -> bool:
        with self.connect() as con:
            row = con.execute("SELECT mapped_at FROM batches WHERE batch_id = ?", [batch_id]).fetchone()
        return bool(row and row[0] is not None)

    def mark_duplicate_keys(self, batch_id: str) -> int:
        """Quarantine every row whose lookup key another row of the batch also produces (a conflict)."""
        with self.connect() as con:
            con.execute(
                "UPDATE mapped_records AS m SET invalid_class = 'conflict', invalid_reason = "
                "'[duplicate_key] lookup key ' || m.lookup_key || ' is produced by source records ' || d.ids "
                "FROM (SELECT lookup_key, string_agg(source_id, ', ' ORDER BY source_id) AS ids "
                "      FROM mapped_records WHERE batch_id = ? AND invalid_class IS NULL "
                "      GROUP BY lookup_key HAVING count(*) > 1) AS d "
                "WHERE m.batch_id = ? AND m.invalid_class IS NULL AND m.lookup_key = d.lookup_key",
                [batch_id, batch_id],
            )
            row = con.execute(
                "SELECT count(*) FROM mapped_records WHERE batch_id = ? AND invalid_reason LIKE '[duplicate_key]%'",
                [batch_id],
            ).fetchone()
        return int(row[0]) if row else 0

    def mapped_quality(self, batch_id: str) -> dict[str, int]:
        """Row counts per quarantine code (``[code] reason``), computed in SQL over the whole batch."""
        with self.connect() as con:
            total_row = con.execute(
                "SELECT count(*), count(invalid_class) FROM mapped_records WHERE batch_id = ?", [batch_id]
            ).fetchone()
            by_code = con.execute(
                "SELECT regexp_extract(invalid_reason, '^\\[(\\w+)\\]', 1) AS code, count(*) "
                "FROM mapped_records WHERE batch_id = ? AND invalid_class IS NOT NULL GROUP BY 1",
                [batch_id],
            ).fetchall()
        total, invalid = total_row if total_row else (0, 0)
        counts = {"total": int(total), "invalid": int(invalid)}
        for code, count in by_code:
            counts[str(code or "other")] = int(count)
        return counts

    def batch_source_ids(self, batch_id: str, source_ids: Iterable[str]) -> set[str]:
        """Which of these source ids are part of the batch."""
        wanted = sorted(set(source_ids))
        if not wanted:
            return set()
        with self.connect() as con:
            rows = con.execute(
                "SELECT DISTINCT source_id FROM raw_records WHERE batch_id = ? "
                "AND source_id IN (SELECT unnest(?::VARCHAR[]))",
                [batch_id, wanted],
            ).fetchall()
        return {str(r[0]) for r in rows}

    def invalid_reasons(self, batch_id: str, reason_prefix: str, limit: int = 10) -> list[tuple[str, str]]:
        with self.connect() as con:
            rows = con.execute(
                "SELECT source_id, invalid_reason FROM mapped_records WHERE batch_id = ? "
                "AND invalid_reason LIKE ? ORDER BY source_id LIMIT ?",
                [batch_id, reason_prefix + "%", limit],
            ).fetchall()
        return [(str(a), str(b)) for a, b in rows]

    def iter_mapped(
        self, batch_id: str, chunk_size: int = 2000, *, valid: bool | None = None, pending_only: bool = False
    ) -> Iterator[list[MappedRow]]:
        """Mapped rows in chunks; ``valid=True`` only loadable rows, ``False`` only quarantined ones.

        ``pending_only`` leaves out the rows ``record_unchanged`` already ledgered as unchanged.
        """
        last = ""
        condition = {None: "", True: " AND invalid_class IS NULL", False: " AND invalid_class IS NOT NULL"}[valid]
        if pending_only:
            condition += " AND unchanged IS NOT TRUE"
        while True:
            with self.connect() as con:
                rows = con.execute(
                    "SELECT source_id, lookup_key, payload, payload_hash, invalid_class, invalid_reason "
                    f"FROM mapped_records WHERE batch_id = ? AND source_id > ?{condition} "
                    "ORDER BY source_id LIMIT ?",
                    [batch_id, last, chunk_size],
                ).fetchall()
            if not rows:
                return
            yield [
                MappedRow(sid, key, json.loads(payload) if payload is not None else None, h, ic, ir)
                for sid, key, payload, h, ic, ir in rows
            ]
            last = rows[-1][0]
            if len(rows) < chunk_size:
                return

    # -- map memo (mapping skipped for unchanged raw payloads) -----------------------------------
    @contextmanager
    def _witness(self, relations: Sequence[tuple[str, str]]) -> Iterator[tuple[str, str, list[Any]]]:
        """(joins, witness expression, params) over ``raw_records r``, valid inside the block.

        The witness of a record is the raw hash of each related record its relations point at
        (``'-'`` for an empty reference), as of the latest extract of that record; NULL when a
        referenced record is not staged (its value came from a CRM call the memo cannot follow).
        The latest raw hash per related record is computed once into a temporary table (one
        row per related record), not once per range; the block holds one connection for them.
        """
        joins: list[str] = []
        parts: list[str] = []
        params: list[Any] = []
        with self.hold():
            with self.connect() as con:
                for i, (entity, path) in enumerate(relations):
                    con.execute(
                        f"CREATE OR REPLACE TEMP TABLE memo_witness_{i} AS SELECT rr.source_id, rr.raw_hash "
                        "FROM raw_records rr JOIN batches bb USING (batch_id) WHERE rr.entity = ? "
                        "QUALIFY row_number() OVER (PARTITION BY rr.source_id ORDER BY bb.created_at DESC) = 1",
                        [entity],
                    )
                    joins.append(f"LEFT JOIN memo_witness_{i} w{i} "
                                 f"ON w{i}.source_id = trim(json_extract_string(r.payload, ?))")
                    params.append(path)
                    parts.append(f"(CASE WHEN nullif(trim(json_extract_string(r.payload, ?)), '') IS NULL "
                                 f"THEN '-' ELSE w{i}.raw_hash END)")
            try:
                yield " ".join(joins), " || '|' || ".join(parts) if parts else "''", params
            finally:
                with self.connect() as con:
                    for i in range(len(relations)):
                        con.execute(f"DROP TABLE IF EXISTS memo_witness_{i}")

    def reuse_memo(self, batch_id: str, entity: str, version: str, relations: Sequence[tuple[str, str]]) -> int:
        """Copy the remembered mapping of every record of the batch whose raw hash, mapping
        version and relation witness are unchanged into ``mapped_records``; returns how many.

        ``key_map`` is refreshed for them too (only where it differs), as mapping would do.
        One statement over the batch: it appends to a table without an index, so DuckDB
        streams it (ranges would only re-scan). No join carries a payload: the matching memo
        rows are found by their hashes alone and their payloads read by a scan of ``map_memo``
        filtered on those row ids. (A hash join that carried the raw or memo payloads, with
        its build side picked from DuckDB's estimates, ran out of ``MEMORY_LIMIT`` at 100,000
        contacts when the estimates made it build on the raw side.)
        """
        witness_params = [path for _, path in relations]
        with self._witness(relations) as (joins, witness, join_params), self.connect() as con:
            row = con.execute(
                "INSERT INTO mapped_records (batch_id, entity, source_id, lookup_key, payload, payload_hash, "
                "invalid_class, invalid_reason) "
                "SELECT ?, m.entity, m.source_id, m.lookup_key, m.payload, m.payload_hash, NULL, NULL "
                "FROM map_memo m WHERE m.entity = ? AND m.rowid IN (SELECT k.rowid FROM "
                f"(SELECT r.source_id, r.raw_hash, {witness} AS witness FROM raw_records r {joins} "
                "WHERE r.batch_id = ?) w JOIN map_memo k ON k.entity = ? AND k.source_id = w.source_id "
                "WHERE k.raw_hash = w.raw_hash AND k.mapping_version = ? AND k.relation_witness = w.witness)",
                [batch_id, entity, *witness_params, *join_params, batch_id, entity, version],
            ).fetchone()
            con.execute(
                "INSERT OR REPLACE INTO key_map SELECT m.entity, m.source_id, m.lookup_key, ? "
                "FROM mapped_records m LEFT JOIN key_map k ON k.entity = m.entity AND k.source_id = m.source_id "
                "WHERE m.batch_id = ? AND m.lookup_key IS NOT NULL AND k.lookup_key IS DISTINCT FROM m.lookup_key",
                [_now(), batch_id],
            )
        return int(row[0]) if row else 0

    def save_memo(self, batch_id: str, entity: str, version: str, relations: Sequence[tuple[str, str]],
                  exclude: Iterable[str] = ()) -> int:
        """Remember the clean mappings of this batch (valid rows, minus ``exclude``: rows whose
        transformers refused a value, so their refusals are counted again on every run); returns
        how many memo rows were written (new or different ones only).

        Linear in the batch: one streaming pass appends the batch's clean mapped rows with their
        raw hash and relation witness to the scratch table ``memo_pending``, numbered (``n``) in
        the order appended; one join without payloads drops those the memo already holds as they
        are. Then ``INSERT OR REPLACE`` saves them ``set_chunk_rows`` numbers at a time, each
        range its own transaction: DuckDB holds replaced memo rows in memory until commit (one
        statement over 200,000 records ran out of ``MEMORY_LIMIT``). ``n`` grows with the
        scratch table's storage order, so a range's min/max zone maps skip every other row
        group: no range re-scans the batch (the ranges of source ids this replaced did, N²).
        """
        witness_params = [path for _, path in relations]
        skipped = sorted(set(exclude))
        with self._witness(relations) as (joins, witness, join_params):
            try:
                with self.connect() as con:
                    con.execute("DELETE FROM memo_pending WHERE batch_id = ?", [batch_id])
                    con.execute(
                        "INSERT INTO memo_pending SELECT m.batch_id, row_number() OVER () AS n, "
                        "w.source_id, w.raw_hash, w.witness, m.lookup_key, m.payload, m.payload_hash "
                        "FROM mapped_records m JOIN (SELECT r.batch_id, r.source_id, r.raw_hash, "
                        f"{witness} AS witness FROM raw_records r {joins} WHERE r.batch_id = ?) w "
                        "ON w.batch_id = m.batch_id AND w.source_id = m.source_id "
                        "WHERE m.batch_id = ? AND m.invalid_class IS NULL AND w.raw_hash IS NOT NULL "
                        "AND w.witness IS NOT NULL AND NOT list_contains(?::VARCHAR[], m.source_id)",
                        [*witness_params, *join_params, batch_id, batch_id, skipped],
                    )
                    # Rows the memo already holds as they are need no save (an anti-join without payloads).
                    con.execute(
                        "DELETE FROM memo_pending p USING map_memo o WHERE p.batch_id = ? AND o.entity = ? "
                        "AND o.source_id = p.source_id AND o.raw_hash = p.raw_hash AND o.mapping_version = ? "
                        "AND o.relation_witness = p.witness AND o.payload_hash IS NOT DISTINCT FROM p.payload_hash",
                        [batch_id, entity, version],
                    )
                    row = con.execute(
                        "SELECT count(*), coalesce(max(n), 0) FROM memo_pending WHERE batch_id = ?", [batch_id]
                    ).fetchone()
                pending, last = (int(row[0]), int(row[1])) if row else (0, 0)
                size = max(1, self.set_chunk_rows)
                for after in range(0, last, size):  # numbers of dropped rows leave gaps: up to the last
                    with self.connect() as con:
                        con.execute(
                            "INSERT OR REPLACE INTO map_memo SELECT ?, source_id, raw_hash, ?, witness, lookup_key, "
                            "payload, payload_hash FROM memo_pending WHERE n > ? AND n <= ? AND batch_id = ?",
                            [entity, version, after, after + size, batch_id],
                        )
            finally:
                with self.connect() as con:
                    con.execute("DELETE FROM memo_pending WHERE batch_id = ?", [batch_id])
        return pending

    # -- key map (relations) ---------------------------------------------------------------
    def upsert_key_map(self, entity: str, pairs: Sequence[tuple[str, str]]) -> None:
        unique = dict(pairs)
        if not unique:
            return
        frame, columns = _rows(source_id=list(unique), lookup_key=list(unique.values()))
        with self.connect() as con:
            con.execute(
                f"INSERT OR REPLACE INTO key_map SELECT ?, source_id, lookup_key, ? FROM {frame}",
                [entity, _now(), *columns],
            )

    def source_ids_for_keys(self, entity: str, keys: Iterable[str]) -> dict[str, str]:
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        with self.connect() as con:
            rows = con.execute(
                "SELECT lookup_key, source_id FROM key_map WHERE entity = ? "
                "AND lookup_key IN (SELECT unnest(?::VARCHAR[]))",
                [entity, wanted],
            ).fetchall()
        return {str(k): str(s) for k, s in rows}

    # -- synced state (change detection memory) -----------------------------------------------
    def synced_hashes(self, entity: str, keys: Iterable[str]) -> dict[str, tuple[str, str | None]]:
        wanted = sorted({k for k in keys if k})
        if not wanted:
            return {}
        with self.connect() as con:
            rows = con.execute(
                "SELECT lookup_key, payload_hash, target_id FROM synced_state WHERE entity = ? "
                "AND lookup_key IN (SELECT unnest(?::VARCHAR[]))",
                [entity, wanted],
            ).fetchall()
        return {str(k): (str(h), t) for k, h, t in rows}

    def known_keys(self, entity: str, keys: Iterable[str]) -> set[str]:
        return set(self.synced_hashes(entity, keys))

    def save_snapshot(self, entity: str, run_id: str, rows: Sequence[tuple[str, str | None, dict[str, Any]]]) -> None:
        unique = {key: (tid, payload) for key, tid, payload in rows}
        if not unique:
            return
        frame, columns = _rows(lookup_key=list(unique), target_id=[v[0] for v in unique.values()],
                               payload=[dumps(v[1]) for v in unique.values()])
        with self.connect() as con:
            con.execute(
                "INSERT OR REPLACE INTO target_snapshot SELECT ?, lookup_key, target_id, payload::JSON, ?, ? "
                f"FROM {frame}",
                [entity, _now(), run_id, *columns],
            )

    def snapshot_records(self, entity: str, keys: Iterable[str], run_id: str) -> dict[str, dict[str, Any]]:
        """Target records staged by this run's scan, by lookup key."""
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        with self.connect() as con:
            rows = con.execute(
                "SELECT lookup_key, payload FROM target_snapshot WHERE entity = ? AND run_id = ? "
                "AND lookup_key IN (SELECT unnest(?::VARCHAR[]))",
                [entity, run_id, wanted],
            ).fetchall()
        return {str(k): json.loads(p) for k, p in rows}

    def save_diffs(
        self, batch_id: str, run_id: str, entity: str, rows: Sequence[tuple[str, str | None, str, list[str]]]
    ) -> None:
        if not rows:
            return
        source_ids = [r[0] for r in rows]
        frame, columns = _rows(source_id=source_ids, lookup_key=[r[1] for r in rows], action=[r[2] for r in rows],
                               changed_fields=[dumps(r[3]) for r in rows])
        with self.connect() as con:
            con.execute(
                # A batch holds more than one entity's decisions (an account and its auto-contact
                # share the source id): replace this entity's rows only.
                "DELETE FROM diffs WHERE batch_id = ? AND entity = ? "
                "AND source_id IN (SELECT unnest(?::VARCHAR[]))",
                [batch_id, entity, source_ids],
            )
            con.execute(
                "INSERT INTO diffs SELECT ?, ?, ?, source_id, lookup_key, action, changed_fields::JSON, ? "
                f"FROM {frame}",
                [batch_id, run_id, entity, _now(), *columns],
            )

    # -- ledger and failed records --------------------------------------------------------------
    def record_results(self, run_id: str, batch_id: str | None, entity: str, results: Sequence[RecordResult],
                       *, ledger: bool = True, settle: bool = True) -> None:
        """Ledger rows, synced-state memory and dead letters for a chunk of results, in one transaction.

        The streaming write loop splits this in two: ``settle=False`` while writing (ledger rows
        and dead letters only: one insert per commit, so commits stay cheap while writes are in
        flight), then ``ledger=False`` once per chunk (the ``synced_state`` memory of what
        landed, and dead letters of records that succeeded now removed). A crash in between
        loses no record: the ledger has it, and a key missing from ``synced_state`` is only
        re-read by the next run (never written twice).
        """
        if not results:
            return
        now = _now()
        ok = [r for r in results if r.outcome in ("created", "updated", "unchanged")]
        remembered = {
            r.lookup_key: r for r in ok if r.remember and r.lookup_key and r.payload_hash is not None
        } if settle else {}
        failed = {r.source_id: r for r in results if r.outcome == "failed"} if ledger else {}
        with self.connect() as con:
            if ledger:
                self._append_ledger(con, run_id, batch_id, entity, results, now)
            if remembered:
                self._remember(con, run_id, entity, remembered, now)
            succeeded = sorted({r.source_id for r in ok} - {r.source_id for r in results if r.outcome == "failed"})
            if settle and succeeded:
                con.execute(
                    "DELETE FROM failed_records WHERE entity = ? AND source_id IN (SELECT unnest(?::VARCHAR[]))",
                    [entity, succeeded],
                )
            if failed:
                self._dead_letters(con, run_id, entity, failed, now)

    @staticmethod
    def _append_ledger(con: duckdb.DuckDBPyConnection, run_id: str, batch_id: str | None, entity: str,
                       results: Sequence[RecordResult], now: datetime) -> None:
        # Columns bound as lists and zipped by unnest: about half the cost of registering a
        # DataFrame for the ~100-row appends the write loops make every batch_size writes.
        columns = ("source_id", "target_id", "lookup_key", "outcome", "error_class", "error_message",
                   "payload_hash", "note")
        con.execute(
            "INSERT INTO ledger (run_id, batch_id, entity, recorded_at, " + ", ".join(columns) + ") "
            "SELECT ?, ?, ?, ?, " + ", ".join("unnest(?::VARCHAR[])" for _ in columns),
            [run_id, batch_id, entity, now, *([getattr(r, c) for r in results] for c in columns)],
        )

    @staticmethod
    def _remember(con: duckdb.DuckDBPyConnection, run_id: str, entity: str, remembered: dict[str, RecordResult],
                  now: datetime) -> None:
        frame, columns = _rows(lookup_key=list(remembered), source_id=[r.source_id for r in remembered.values()],
                               target_id=[r.target_id for r in remembered.values()],
                               payload_hash=[r.payload_hash for r in remembered.values()])
        con.execute(
            "INSERT OR REPLACE INTO synced_state (entity, lookup_key, source_id, target_id, payload_hash, "
            f"synced_at, run_id) SELECT ?, lookup_key, source_id, target_id, payload_hash, ?, ? FROM {frame}",
            [entity, now, run_id, *columns],
        )

    @staticmethod
    def _dead_letters(con: duckdb.DuckDBPyConnection, run_id: str, entity: str, failed: dict[str, RecordResult],
                      now: datetime) -> None:
        frame, columns = _rows(
            source_id=list(failed),
            lookup_key=[r.lookup_key for r in failed.values()],
            error_class=[r.error_class or "transient" for r in failed.values()],
            error_message=[r.error_message for r in failed.values()],
            payload=[dumps(r.payload) if r.payload is not None else None for r in failed.values()],
            payload_hash=[r.payload_hash for r in failed.values()],
        )
        con.execute(
            "INSERT INTO failed_records SELECT ?, source_id, lookup_key, error_class, error_message, "
            "1, ?, ?, ?, payload::JSON, payload_hash "
            f"FROM {frame} ON CONFLICT (entity, source_id) DO UPDATE SET "
            "lookup_key = excluded.lookup_key, error_class = excluded.error_class, "
            "error_message = excluded.error_message, attempts = failed_records.attempts + 1, "
            "last_failed_at = excluded.last_failed_at, last_run_id = excluded.last_run_id, "
            "payload = excluded.payload, payload_hash = excluded.payload_hash",
            [entity, now, now, run_id, *columns],
        )

    def record_unchanged(self, run_id: str, batch_id: str, entity: str) -> int:
        """Set-wise: every loadable row of the batch whose payload hash equals ``synced_state``
        is ledgered ``unchanged`` (with its diff row, its dead letter cleared) without leaving
        DuckDB, and flagged so ``iter_mapped(pending_only=True)`` leaves it out. Returns how many.
        """
        now = _now()
        with self.connect() as con:
            con.execute("UPDATE mapped_records SET unchanged = NULL WHERE batch_id = ? AND unchanged", [batch_id])
            con.execute(
                "UPDATE mapped_records AS m SET unchanged = TRUE FROM synced_state s "
                "WHERE m.batch_id = ? AND m.invalid_class IS NULL AND s.entity = ? "
                "AND s.lookup_key = m.lookup_key AND s.payload_hash = m.payload_hash",
                [batch_id, entity],
            )
            row = con.execute(
                "SELECT count(*) FROM mapped_records WHERE batch_id = ? AND unchanged", [batch_id]
            ).fetchone()
            count = int(row[0]) if row else 0
            if not count:
                return 0
            con.execute(
                "INSERT INTO ledger SELECT ?, m.batch_id, ?, m.source_id, s.target_id, m.lookup_key, 'unchanged', "
                "NULL, NULL, m.payload_hash, NULL, ? FROM mapped_records m JOIN synced_state s "
                "ON s.entity = ? AND s.lookup_key = m.lookup_key WHERE m.batch_id = ? AND m.unchanged",
                [run_id, entity, now, entity, batch_id],
            )
            con.execute(
                "DELETE FROM diffs WHERE batch_id = ? AND entity = ? AND source_id IN "
                "(SELECT source_id FROM mapped_records WHERE batch_id = ? AND unchanged)",
                [batch_id, entity, batch_id],
            )
            con.execute(
                "INSERT INTO diffs SELECT batch_id, ?, ?, source_id, lookup_key, 'unchanged', '[]'::JSON, ? "
                "FROM mapped_records WHERE batch_id = ? AND unchanged",
                [run_id, entity, now, batch_id],
            )
            con.execute(
                "DELETE FROM failed_records WHERE entity = ? AND source_id IN "
                "(SELECT source_id FROM mapped_records WHERE batch_id = ? AND unchanged)",
                [entity, batch_id],
            )
        return count

    def iter_landed(self, run_id: str, batch_id: str, entity: str,
                    chunk_size: int = 5000) -> Generator[list[tuple[str, str]], None, None]:
        """(source_id, lookup_key) of the batch's records this run ledgered as created, updated or
        unchanged, in chunks of ``chunk_size`` by source_id (read back from staging, not held
        in memory; no connection held between chunks).

        Linear in the run: the ledger is read once, into ``landed_chunks`` numbered by source id
        (``n``); each chunk then reads its ``n`` range, which min/max zone maps find without
        scanning the ledger again. The rows are removed when the iteration ends (or, after a
        crash, by the next iteration of the same run and batch, or by ``prune``).
        """
        scope = [run_id, batch_id, entity]
        with self.connect() as con:
            con.execute("DELETE FROM landed_chunks WHERE run_id = ? AND batch_id = ? AND entity = ?", scope)
            con.execute(
                "INSERT INTO landed_chunks SELECT ?, ?, ?, row_number() OVER (ORDER BY source_id), source_id, "
                "lookup_key FROM (SELECT source_id, any_value(lookup_key) AS lookup_key FROM ledger "
                "WHERE run_id = ? AND batch_id = ? AND entity = ? AND outcome IN ('created', 'updated', 'unchanged') "
                "AND lookup_key IS NOT NULL GROUP BY source_id) ORDER BY source_id",
                [*scope, *scope],
            )
            row = con.execute(
                "SELECT count(*) FROM landed_chunks WHERE run_id = ? AND batch_id = ? AND entity = ?", scope
            ).fetchone()
        landed = int(row[0]) if row else 0
        size = max(1, chunk_size)
        try:
            for after in range(0, landed, size):
                with self.connect() as con:
                    rows = con.execute(
                        "SELECT source_id, lookup_key FROM landed_chunks WHERE n > ? AND n <= ? "
                        "AND run_id = ? AND batch_id = ? AND entity = ? ORDER BY n",
                        [after, after + size, *scope],
                    ).fetchall()
                yield [(str(s), str(k)) for s, k in rows]
        finally:
            with self.connect() as con:
                con.execute("DELETE FROM landed_chunks WHERE run_id = ? AND batch_id = ? AND entity = ?", scope)

    def failed_records(self, entity: str | None = None) -> list[dict[str, Any]]:
        with self.connect() as con:
            cursor = con.execute(
                "SELECT entity, source_id, lookup_key, error_class, error_message, attempts, first_failed_at, "
                "last_failed_at, last_run_id, payload_hash FROM failed_records "
                "WHERE ? IS NULL OR entity = ? ORDER BY entity, source_id",
                [entity, entity],
            )
            columns = [d[0] for d in cursor.description or []]
            return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]

    def failed_ids(self, entity: str, classes: Sequence[str] | None = None, limit: int = 100_000) -> list[str]:
        with self.connect() as con:
            rows = con.execute(
                "SELECT source_id FROM failed_records WHERE entity = ? "
                "AND (? IS NULL OR list_contains(?::VARCHAR[], error_class)) ORDER BY last_failed_at LIMIT ?",
                [entity, None if classes is None else "x", list(classes or []), limit],
            ).fetchall()
        return [str(r[0]) for r in rows]

    def failed_hashes(self, entity: str, source_ids: Iterable[str]) -> dict[str, tuple[str, str | None]]:
        """(error_class, payload_hash) of dead letters, to skip validation failures whose data did not change."""
        ids = sorted(set(source_ids))
        if not ids:
            return {}
        with self.connect() as con:
            rows = con.execute(
                "SELECT source_id, error_class, payload_hash FROM failed_records WHERE entity = ? "
                "AND source_id IN (SELECT unnest(?::VARCHAR[]))",
                [entity, ids],
            ).fetchall()
        return {str(s): (str(c), h) for s, c, h in rows}

    def ledger_summary(self, run_id: str | None = None) -> list[dict[str, Any]]:
        with self.connect() as con:
            rows = con.execute(
                "SELECT entity, outcome, count(*) FROM ledger WHERE ? IS NULL OR run_id = ? "
                "GROUP BY 1, 2 ORDER BY 1, 2",
                [run_id, run_id],
            ).fetchall()
        return [{"entity": e, "outcome": o, "count": int(c)} for e, o, c in rows]

    def ledger_rows(self, run_id: str | None = None, entity: str | None = None) -> list[dict[str, Any]]:
        with self.connect() as con:
            cursor = con.execute(
                "SELECT * FROM ledger WHERE (? IS NULL OR run_id = ?) AND (? IS NULL OR entity = ?) "
                "ORDER BY recorded_at, entity, source_id",
                [run_id, run_id, entity, entity],
            )
            columns = [d[0] for d in cursor.description or []]
            return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]

    #: The last ledger row of each record of a run (a record retried inside the run counts once).
    _FINAL_ROWS = ("SELECT * FROM ledger WHERE run_id = ? QUALIFY row_number() OVER "
                   "(PARTITION BY entity, source_id ORDER BY recorded_at DESC, rowid DESC) = 1")

    def final_outcomes(self, run_id: str) -> list[tuple[str, str, int]]:
        """(entity, outcome, records) of a run, each record counted once with its final outcome;
        counted in SQL (a 500,000-record run is not read into memory), entities in the order
        their records were first recorded."""
        with self.connect() as con:
            rows = con.execute(
                "SELECT entity, outcome, count(*), min(min(recorded_at)) OVER (PARTITION BY entity) AS first "
                f"FROM ({self._FINAL_ROWS}) GROUP BY entity, outcome ORDER BY first, entity, outcome",
                [run_id],
            ).fetchall()
        return [(str(e), str(o), int(n)) for e, o, n, _ in rows]

    def final_failures(self, run_id: str) -> list[dict[str, Any]]:
        """The ledger rows of the records whose final outcome in the run is ``failed``, in the order recorded."""
        with self.connect() as con:
            cursor = con.execute(
                f"SELECT * FROM ({self._FINAL_ROWS}) WHERE outcome = 'failed' ORDER BY recorded_at, entity, source_id",
                [run_id],
            )
            columns = [d[0] for d in cursor.description or []]
            return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]

    # -- unsettled activities --------------------------------------------------------------------
    def mark_unsettled(self, rows: Sequence[tuple[str, str]]) -> None:
        unique = dict(rows)
        if not unique:
            return
        now = _now()
        frame, columns = _rows(name=list(unique), activity_type=list(unique.values()))
        with self.connect() as con:
            con.execute(
                f"INSERT INTO unsettled_activities SELECT name, activity_type, ?, ? FROM {frame} "
                "ON CONFLICT (name) DO UPDATE SET last_checked_at = excluded.last_checked_at",
                [now, now, *columns],
            )

    def clear_unsettled(self, names: Iterable[str]) -> None:
        wanted = sorted(set(names))
        if not wanted:
            return
        with self.connect() as con:
            con.execute(
                "DELETE FROM unsettled_activities WHERE name IN (SELECT unnest(?::VARCHAR[]))", [wanted]
            )

    def unsettled(self, limit: int = 5000) -> list[tuple[str, str]]:
        with self.connect() as con:
            rows = con.execute(
                "SELECT name, activity_type FROM unsettled_activities ORDER BY first_seen_at LIMIT ?", [limit]
            ).fetchall()
        return [(str(n), str(t)) for n, t in rows]

    # -- maintenance -------------------------------------------------------------------------------
    def finish_load(self, batch_id: str) -> None:
        with self.connect() as con:
            con.execute("UPDATE batches SET loaded_at = ? WHERE batch_id = ?", [_now(), batch_id])

    def prune(self, entity: str) -> None:
        """Drop raw/mapped rows of old batches; the ledger and dead letters are kept."""
        with self.connect() as con:
            old = con.execute(
                "SELECT batch_id FROM batches WHERE entity = ? ORDER BY created_at DESC OFFSET ?",
                [entity, self.keep_batches],
            ).fetchall()
            ids = [r[0] for r in old]
            if ids:
                for table in ("raw_records", "mapped_records", "diffs", "landed_chunks", "memo_pending"):
                    con.execute(
                        f"DELETE FROM {table} WHERE batch_id IN (SELECT unnest(?::VARCHAR[]))", [ids]
                    )

    def reset_state(self, entity: str | None = None) -> None:
        """Forget change-detection memory so the next run re-reads and verifies every target record."""
        with self.connect() as con:
            for table in ("synced_state", "target_snapshot", "map_memo"):
                con.execute(f"DELETE FROM {table} WHERE ? IS NULL OR entity = ?", [entity, entity])
            if entity in (None, "activity"):
                con.execute("DELETE FROM unsettled_activities")

    def table_counts(self) -> dict[str, int]:
        tables = (
            "batches", "raw_records", "mapped_records", "key_map", "target_snapshot", "diffs",
            "synced_state", "ledger", "failed_records", "unsettled_activities", "map_memo",
        )
        with self.connect() as con:
            return {t: int((con.execute(f"SELECT count(*) FROM {t}").fetchone() or (0,))[0]) for t in tables}
