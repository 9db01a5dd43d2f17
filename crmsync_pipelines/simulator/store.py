"""SQLite persistence of simulated records (in memory, or a file that survives restarts).

Records are JSON documents with relations stored as names; the key and the model's cursor
field (``edited``/``time``/``call_time``) are real indexed columns, so the common
"``edited gte X`` sorted by ``edited, name``" page is an index range scan.
"""

from __future__ import annotations

import functools
import json
import re
import sqlite3
import threading
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    model TEXT NOT NULL,
    k TEXT NOT NULL,
    ts TEXT,
    shuffle INTEGER NOT NULL,
    data TEXT NOT NULL,
    UNIQUE (model, k)
);
CREATE INDEX IF NOT EXISTS records_ts ON records (model, ts, k);
CREATE INDEX IF NOT EXISTS records_shuffle ON records (model, shuffle);
CREATE TABLE IF NOT EXISTS tokens (
    token TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    username TEXT NOT NULL,
    expires REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def _load(text: str) -> dict[str, Any]:
    """Decode a stored record and give it the content hash real instances put in ``_sys.hash``."""
    record: dict[str, Any] = json.loads(text)
    record["_sys"] = {"hash": format(zlib.crc32(text.encode()), "x")}
    return record


def _dump(data: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in data.items() if k != "_sys"}, ensure_ascii=False)


@functools.lru_cache(maxsize=256)
def _like_regex(pattern: str, escape: str) -> re.Pattern[str]:
    parts = []
    chars = iter(pattern)
    for char in chars:
        if char == escape:
            parts.append(re.escape(next(chars, "")))
        elif char == "%":
            parts.append(".*")
        elif char == "_":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def _unicode_like(pattern: str | None, value: Any, escape: str = "") -> bool | None:
    """MySQL-like ``LIKE``: case-insensitive for all letters (SQLite folds only ASCII)."""
    if pattern is None or value is None:
        return None
    return _like_regex(pattern.casefold(), escape).fullmatch(str(value).casefold()) is not None


def _unicode_lower(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


class DuplicateKeyError(Exception):
    """A record with this key already exists in the model."""


class RecordStore:
    """Thread-safe access to the records table; the server thread and tests share one store."""

    def __init__(self, db_path: Path | None, shuffle_seed: str = "") -> None:
        self._lock = threading.RLock()
        target = str(db_path) if db_path is not None else ":memory:"
        if db_path is not None:
            db_path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(target, check_same_thread=False, isolation_level=None)
        if db_path is not None:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.create_function("like", 2, _unicode_like, deterministic=True)
        self._db.create_function("like", 3, _unicode_like, deterministic=True)
        self._db.create_function("lower", 1, _unicode_lower, deterministic=True)
        self._db.executescript(_SCHEMA)
        self._shuffle_seed = shuffle_seed

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _shuffle(self, model: str, key: str) -> int:
        return zlib.crc32(f"{self._shuffle_seed}|{model}|{key}".encode())

    def meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def insert(self, model: str, key: str, ts: str | None, data: dict[str, Any]) -> None:
        self.insert_many(model, [(key, ts, data)])

    def insert_many(self, model: str, rows: Iterable[tuple[str, str | None, dict[str, Any]]]) -> None:
        """Insert in one transaction; any duplicate key rolls the whole batch back."""
        prepared = [
            (model, key, ts, self._shuffle(model, key), _dump(data))
            for key, ts, data in rows
        ]
        with self._lock:
            try:
                self._db.execute("BEGIN")
                self._db.executemany(
                    "INSERT INTO records (model, k, ts, shuffle, data) VALUES (?, ?, ?, ?, ?)", prepared
                )
                self._db.execute("COMMIT")
            except sqlite3.IntegrityError as exc:
                self._db.execute("ROLLBACK")
                raise DuplicateKeyError(str(exc)) from None

    def replace(self, model: str, key: str, ts: str | None, data: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE records SET ts = ?, data = ? WHERE model = ? AND k = ?",
                (ts, _dump(data), model, key),
            )

    def delete(self, model: str, key: str) -> bool:
        with self._lock:
            cursor = self._db.execute("DELETE FROM records WHERE model = ? AND k = ?", (model, key))
        return cursor.rowcount > 0

    def get(self, model: str, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT data FROM records WHERE model = ? AND k = ?", (model, key)
            ).fetchone()
        return None if row is None else _load(row[0])

    def get_many(self, model: str, keys: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ", ".join("?" for _ in chunk)
                for key, data in self._db.execute(
                    f"SELECT k, data FROM records WHERE model = ? AND k IN ({marks})", (model, *chunk)
                ):
                    found[key] = _load(data)
        return found

    def exists(self, model: str, key: str) -> bool:
        with self._lock:
            row = self._db.execute("SELECT 1 FROM records WHERE model = ? AND k = ?", (model, key)).fetchone()
        return row is not None

    def select(
        self, model: str, where: str, params: list[Any], order: str, limit: int, offset: int
    ) -> list[dict[str, Any]]:
        sql = (
            f"SELECT r.data FROM records r WHERE r.model = ? AND {where} "
            f"ORDER BY {order} LIMIT ? OFFSET ?"
        )
        with self._lock:
            rows = self._db.execute(sql, (model, *params, limit, offset)).fetchall()
        return [_load(row[0]) for row in rows]

    def count(self, model: str, where: str = "1", params: list[Any] | None = None) -> int:
        with self._lock:
            row = self._db.execute(
                f"SELECT count(*) FROM records r WHERE r.model = ? AND {where}", (model, *(params or []))
            ).fetchone()
        return int(row[0])

    def all(self, model: str) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT data FROM records WHERE model = ? ORDER BY rowid", (model,)).fetchall()
        return [_load(row[0]) for row in rows]

    def max_int_key(self, model: str) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT max(CAST(k AS INTEGER)) FROM records WHERE model = ?", (model,)
            ).fetchone()
        return int(row[0] or 0)

    def add_token(self, token: str, kind: str, username: str, expires: float) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO tokens (token, kind, username, expires) VALUES (?, ?, ?, ?)",
                (token, kind, username, expires),
            )

    def token(self, token: str, kind: str) -> tuple[str, float] | None:
        """``(username, expires)`` of an issued token of this kind, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT username, expires FROM tokens WHERE token = ? AND kind = ?", (token, kind)
            ).fetchone()
        return None if row is None else (str(row[0]), float(row[1]))

    def drop_token(self, token: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM tokens WHERE token = ?", (token,))
