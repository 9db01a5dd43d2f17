"""``SqlCrmAdapter``: a real, configurable CRM adapter over a SQLite database.

It backs the demo CRM and the tests, and it is a usable adapter for anyone whose CRM data
already sits in SQLite (or is exported there). Design choices that matter to the sync:

* Everything the settings name is checked when the adapter is built, so a typo in a table or
  column name fails at start with a ``ConfigError`` naming it, not half-way through a run.
* Iteration streams: one dedicated connection and one cursor per ``iter_*`` call, read row by
  row, ordered by ``(modified, id)``. A 100,000-row table never sits in a Python list, and the
  snapshot of one ``SELECT`` is consistent even while another process writes (WAL mode).
* Modified times are read in Python by ``crmsync_pipelines.crm.modified_time`` (every common
  layout: ISO 8601 with ``+01:00``/``+0100``/``+01``/``Z``, ``d.m.Y H:i``, epoch seconds or
  milliseconds, Julian days; naive values in ``crm.timezone``), registered as a SQL function
  so SQLite filters and orders by the UTC instant (microsecond precision) while streaming.
  SQLite's own ``strftime`` cannot be used: it returns NULL for ``+0100`` and reads a bare
  number as a Julian day, which made such rows invisible to every window.
* No row vanishes and no bad row stops the others: a row whose modified time cannot be read,
  or lies more than ``FUTURE_TOLERANCE`` in the future (a "never" sentinel no window reaches),
  is yielded in *every* window with its real id and a reason under ``RECORD_ERROR_KEY`` (the
  engine files it as a failed ``validation`` record naming the column and the raw value); a
  row with text that is not valid UTF-8 is yielded the same way, naming the column; ids are
  returned exactly as stored (``' padded '`` stays ``' padded '``) so retries find them.
* Activities are idempotent by a UNIQUE external-id column: ``upsert_activity`` is one
  ``INSERT ... ON CONFLICT DO UPDATE`` statement, so a re-run or a crash-and-retry never
  creates a duplicate.
* Short transactions only: single statements autocommit; a batch upsert is one transaction
  with one savepoint per record, so a bad record rolls back alone.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
import threading
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

from crmsync_pipelines.crm.base import RECORD_ERROR_KEY, CrmAdapter, Record, window_bound
from crmsync_pipelines.crm.modified_time import ModifiedTimeReader, UnreadableTime, reader, utc_key_of
from crmsync_pipelines.crm.sql_settings import (
    SETTINGS_ROOT,
    ActivityTableSettings,
    EntityTableSettings,
    SqlCrmSettings,
)
from crmsync_pipelines.errors import (
    AdapterError,
    ConfigError,
    ConflictError,
    NotSupportedError,
    RecordValidationError,
)

_FOLD_FUNCTION = "crmsync_fold"
#: Alias of the computed UTC modified key in entity queries (quoted: cannot clash with a column).
_MODIFIED_KEY = '"crmsync:modified_utc"'
_TEXT_TYPE_MARKERS = ("CHAR", "CLOB", "TEXT")


def quote_identifier(name: str) -> str:
    """A SQL identifier quoted for SQLite, so any table or column name is safe to interpolate."""
    return '"' + name.replace('"', '""') + '"'


def fold_text(value: object) -> str | None:
    """Case- and accent-insensitive form, so searching ``novak`` finds ``Novák``."""
    if value is None:
        return None
    decomposed = unicodedata.normalize("NFKD", str(value))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def utc_text(moment: datetime) -> str:
    """ISO-8601 UTC text of an aware datetime, the storage format the demo schema uses."""
    return moment.astimezone(UTC).isoformat()


def _require_aware(moment: datetime | None, name: str) -> str | None:
    """The window bound as the same sortable UTC key the modified column is brought to."""
    bound = window_bound(moment, name)
    return None if bound is None else utc_key_of(bound)


class _InvalidText(bytes):
    """Bytes of a TEXT value that is not valid UTF-8 (SQLite stores whatever it is given)."""


def _lenient_text(raw: bytes) -> str | _InvalidText:
    """``text_factory`` used once a query meets invalid UTF-8, so that row fails alone."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return _InvalidText(raw)


def _is_decode_error(exc: sqlite3.Error) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and "Could not decode to UTF-8" in str(exc)


def _text_as_bytes(expression: str) -> str:
    """Hand TEXT to a Python SQL function as its bytes: ``sqlite3`` fails the whole query when a
    function argument is not UTF-8, before the function can refuse just that row."""
    return f"CASE typeof({expression}) WHEN 'text' THEN CAST({expression} AS BLOB) ELSE {expression} END"


def _fold_sql_value(value: object) -> str | None:
    """``fold_text`` for SQL, where text arrives as UTF-8 bytes (see ``_text_as_bytes``)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return fold_text(value)


def _require_lookup_value(field: str, value: Any) -> Any:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError(f"cannot look up by {field!r} with an empty value ({value!r})")
    if not isinstance(value, (str, int, float)):
        raise ValueError(f"cannot look up by {field!r} with a {type(value).__name__} value")
    return value


_HEX_TEXT = re.compile(r"(?:[0-9a-f]{2})+")
#: Ids per lookup query: each id is asked as up to 3 stored values (``id_candidates``), and
#: SQLite takes at most 32,766 parameters per statement.
_MAX_IDS_PER_QUERY = 10_000


def id_candidates(record_id: str) -> list[Any]:
    """Every stored value ``_record`` shows as ``record_id``, so ids round-trip exactly.

    ``_record`` turns an INTEGER id into ``str(n)``, a REAL into ``str(x)`` (``'1.0'``) and a
    BLOB into its hex. In a column without type affinity (``CREATE TABLE t (id, ...)``) SQLite
    compares ``'1.0' = 1.0`` as false, so ``get_contact('1.0')`` found nothing and
    ``retry-failed`` called such a record deleted forever. Asking for each equivalent finds it.
    """
    candidates: list[Any] = [record_id]
    try:
        whole = int(record_id)
    except ValueError:
        pass
    else:
        if str(whole) == record_id:
            candidates.append(whole)
    try:
        real = float(record_id)
    except ValueError:
        pass
    else:
        if math.isfinite(real) and str(real) == record_id:
            candidates.append(real)
    if _HEX_TEXT.fullmatch(record_id):
        candidates.append(bytes.fromhex(record_id))
    return candidates


#: A modified time later than now plus this is no real modification time (a "never" sentinel
#: such as 9999-12-31, or epoch seconds of year 2286): such a row would sit in a future window
#: that no sync reaches, so it fails visibly in every window instead.
FUTURE_TOLERANCE = timedelta(days=1)


def future_cutoff() -> str:
    """The UTC key (``modified_time.UTC_KEY_FORMAT``) from which a modified time is in the future."""
    return utc_key_of(datetime.now(UTC) + FUTURE_TOLERANCE)


def _chunks(values: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


@dataclass(frozen=True)
class _Modified:
    """The modified-time column of an entity table and the SQL function that reads it."""

    column: str
    reader: ModifiedTimeReader
    function: str

    @property
    def expression(self) -> str:
        """SQL computing the UTC key of the column.

        Whole-second UTC text (``2026-11-20T10:00:00+00:00`` or ``...Z``: what most systems and
        the demo CRM store) is turned into the key by SQLite itself, several times faster than
        a Python call per row. It is taken only when SQLite's normalised form (``'+0 seconds'``
        rolls ``2026-02-30`` over to March) equals the text, so any unusual value still goes
        to the Python reader; a test checks both paths give the same key.
        """
        column = quote_identifier(self.column)
        in_python = f"{self.function}({_text_as_bytes(column)})"
        if self.reader.layout not in ("auto", "iso"):
            return in_python
        return (
            f"CASE WHEN substr({column}, 20) IN ('+00:00', 'Z') AND {column} >= '0001' "
            f"AND strftime('%Y-%m-%dT%H:%M:%S', {column}, '+0 seconds') = substr({column}, 1, 19) "
            f"THEN substr({column}, 1, 19) || '.000000' ELSE {in_python} END"
        )

    def sql_function(self) -> Callable[[Any], str | None]:
        """The SQL function: UTF-8 bytes in (see ``_text_as_bytes``), UTC key or NULL out."""
        utc_key = self.reader.utc_key

        def modified_key(value: Any) -> str | None:
            if type(value) is bytes:
                try:
                    value = value.decode("utf-8")
                except UnicodeDecodeError:
                    return None
            return utc_key(value)

        return modified_key

    def future_reason(self, raw: Any, key: str) -> str:
        return (
            f"unreadable modified time in column {self.column!r}: {raw!r} is {key[:19]}Z UTC, more than "
            f"{FUTURE_TOLERANCE.days} day in the future (a 'never' sentinel?); no window would ever hold it"
        )

    def reason(self, raw: Any) -> str:
        prefix = f"unreadable modified time in column {self.column!r}"
        if isinstance(raw, _InvalidText):
            return f"{prefix}: {bytes(raw)!r} is not valid UTF-8 text"
        if isinstance(raw, bytes):  # a BLOB is read like the SQL function reads it: as UTF-8 text
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError:
                return f"{prefix}: {raw!r} is binary data, not a time"
        try:
            self.reader.read(raw)
        except UnreadableTime as exc:
            return f"{prefix}: {exc}"
        return f"{prefix}: {raw!r}"


@dataclass(frozen=True)
class _Table:
    """A table as it really is in the file, plus what the settings ask of it."""

    name: str
    id_column: str
    columns: tuple[str, ...]
    text_columns: tuple[str, ...]
    reference_columns: frozenset[str]
    #: Entity tables only: each selected row then ends with the computed UTC modified key.
    modified: _Modified | None = None

    @property
    def select_list(self) -> str:
        columns = ", ".join(quote_identifier(c) for c in self.columns)
        if self.modified is None:
            return columns
        return f"{columns}, {self.modified.expression} AS {_MODIFIED_KEY}"

    @property
    def quoted(self) -> str:
        return quote_identifier(self.name)

    @property
    def quoted_id(self) -> str:
        return quote_identifier(self.id_column)

    def require_column(self, field: str) -> str:
        if field not in self.columns:
            raise ValueError(f"{self.name} has no field {field!r} (fields: {', '.join(self.columns)})")
        return quote_identifier(field)


#: What ``sqlite3`` returns for a BLOB; records carry it as hex text so they stay JSON.
_BINARY = bytes


class SqlCrmAdapter(CrmAdapter):
    """A CRM adapter over one SQLite file; see the module docstring for its guarantees."""

    name = "sql"

    def __init__(self, settings: SqlCrmSettings, *, base_dir: Path | None = None) -> None:
        self.settings = settings
        try:
            self.path = settings.database_path(base_dir or Path.cwd())
        except ValueError as exc:
            raise ConfigError(str(exc), path=f"{SETTINGS_ROOT}.path") from None
        if not self.path.is_file():
            raise ConfigError(
                f"SQLite file {self.path} does not exist (create a demo one with `crmsync demo-crm create --path ...`)",
                path=f"{SETTINGS_ROOT}.path",
            )
        self._lock = threading.RLock()
        self._modified = {
            key: _Modified(
                entity.modified_column,
                reader(entity.modified_format, settings.timezone),
                f"crmsync_modified_{key}",
            )
            for key, entity in (("accounts", settings.accounts), ("contacts", settings.contacts),
                                *((_custom_key(name), table) for name, table in settings.custom_sources.items()))
        }
        self._conn = self._connect()
        try:
            self._prepare_database()
            self._accounts = self._inspect_entity("accounts", settings.accounts)
            self._contacts = self._inspect_entity("contacts", settings.contacts)
            self._custom = {name: self._inspect_entity(_custom_key(name), table, f"custom_sources.{name}")
                            for name, table in settings.custom_sources.items()}
            self._activities = (
                self._inspect_activities(settings.activities) if settings.activities is not None else None
            )
        except BaseException:
            self._conn.close()
            raise

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], base_dir: Path) -> SqlCrmAdapter:
        """Build from the raw ``crm:`` settings dict; every problem is a ``ConfigError``."""
        return cls(SqlCrmSettings.parse(dict(settings)), base_dir=base_dir)

    # -- connections --------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        # mode=rw: never create an empty database by accident when the file has gone away.
        uri = f"file:{quote(str(self.path.resolve()))}?mode=rw"
        conn = sqlite3.connect(
            uri,
            uri=True,
            timeout=self.settings.busy_timeout_s,
            isolation_level=None,
            check_same_thread=False,
        )
        conn.create_function(_FOLD_FUNCTION, 1, _fold_sql_value, deterministic=True)
        for modified in self._modified.values():
            conn.create_function(modified.function, 1, modified.sql_function(), deterministic=True)
        return conn

    def _prepare_database(self) -> None:
        try:
            if self.settings.wal:
                self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError as exc:
            raise ConfigError(
                f"{self.path} is not a usable SQLite database ({exc})", path=f"{SETTINGS_ROOT}.path"
            ) from None

    def _table_info(self, table: str, where: str) -> list[tuple[Any, ...]]:
        rows = self._conn.execute(f"PRAGMA table_info({quote_identifier(table)})").fetchall()
        if not rows:
            tables = [
                r[0]
                for r in self._conn.execute(
                    "SELECT name FROM sqlite_master WHERE type IN ('table','view') ORDER BY name"
                )
            ]
            raise ConfigError(
                f"table {table!r} not found in {self.path} (tables: {', '.join(tables) or 'none'})",
                path=f"{where}.table",
            )
        return rows

    def _inspect(
        self, where: str, table: str, id_column: str, wanted: list[str] | None, references: Iterable[str]
    ) -> tuple[_Table, dict[str, str]]:
        info = self._table_info(table, where)
        declared = {row[1]: str(row[2] or "").upper() for row in info}

        def check(column: str, key: str) -> None:
            if column not in declared:
                raise ConfigError(
                    f"column {column!r} not found in table {table!r} (columns: {', '.join(declared)})",
                    path=f"{where}.{key}",
                )

        check(id_column, "id_column")
        for index, column in enumerate(wanted or []):
            check(column, f"columns[{index}]")
        for index, column in enumerate(references):
            check(column, f"reference_columns[{index}]")
        columns = list(wanted) if wanted else list(declared)
        if id_column not in columns:
            columns.insert(0, id_column)
        text = tuple(c for c in columns if not declared[c] or any(m in declared[c] for m in _TEXT_TYPE_MARKERS))
        return (
            _Table(table, id_column, tuple(columns), text, frozenset(references)),
            declared,
        )

    def _inspect_entity(self, key: str, settings: EntityTableSettings, setting: str | None = None) -> _EntityTable:
        where = f"{SETTINGS_ROOT}.{setting or key}"
        table, declared = self._inspect(
            where, settings.table, settings.id_column, settings.columns, settings.reference_columns
        )
        if settings.modified_column not in declared:
            raise ConfigError(
                f"column {settings.modified_column!r} not found in table {settings.table!r} "
                f"(columns: {', '.join(declared)})",
                path=f"{where}.modified_column",
            )
        table = _Table(
            table.name,
            table.id_column,
            table.columns if settings.modified_column in table.columns else (*table.columns, settings.modified_column),
            table.text_columns,
            table.reference_columns,
            self._modified[key],
        )
        search = table.text_columns
        if settings.search_columns is not None:
            for index, column in enumerate(settings.search_columns):
                if column not in declared:
                    raise ConfigError(
                        f"column {column!r} not found in table {settings.table!r}",
                        path=f"{where}.search_columns[{index}]",
                    )
            search = tuple(settings.search_columns)
        return _EntityTable(table, settings, search)

    def _inspect_activities(self, settings: ActivityTableSettings) -> _ActivityTable:
        where = f"{SETTINGS_ROOT}.activities"
        table, declared = self._inspect(where, settings.table, settings.id_column, None, settings.reference_columns)
        for key in ("external_id_column", "created_column", "modified_column"):
            column = getattr(settings, key)
            if column is not None and column not in declared:
                raise ConfigError(
                    f"column {column!r} not found in table {settings.table!r} (columns: {', '.join(declared)})",
                    path=f"{where}.{key}",
                )
        if not self._has_unique_index(settings.table, settings.external_id_column):
            raise ConfigError(
                f"column {settings.external_id_column!r} of table {settings.table!r} needs a UNIQUE "
                "constraint so activity upserts are idempotent "
                f"(CREATE UNIQUE INDEX ... ON {settings.table}({settings.external_id_column}))",
                path=f"{where}.external_id_column",
            )
        return _ActivityTable(table, settings)

    def _has_unique_index(self, table: str, column: str) -> bool:
        for index in self._conn.execute(f"PRAGMA index_list({quote_identifier(table)})").fetchall():
            name, unique = index[1], index[2]
            if not unique:
                continue
            cols = [r[2] for r in self._conn.execute(f"PRAGMA index_info({quote_identifier(name)})")]
            if cols == [column]:
                return True
        pk = [r[1] for r in self._conn.execute(f"PRAGMA table_info({quote_identifier(table)})") if r[5]]
        return pk == [column]

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> SqlCrmAdapter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- health -------------------------------------------------------------------------------
    def ping(self) -> bool:
        """True when the file is there and every configured table answers a query."""
        tables = [self._accounts.table, self._contacts.table]
        if self._activities is not None:
            tables.append(self._activities.table)
        try:
            conn = self._connect()
        except sqlite3.Error:
            return False
        try:
            for table in tables:
                conn.execute(f"SELECT {quote_identifier(table.id_column)} FROM {table.quoted} LIMIT 1").fetchall()
        except sqlite3.Error:
            return False
        finally:
            conn.close()
        return True

    # -- records ------------------------------------------------------------------------------
    @staticmethod
    def _record(table: _Table, row: Sequence[Any], lenient: bool = False, future: str | None = None) -> Record:
        """One row as a record; an unreadable row keeps its id and gets a reason, never dropped.

        ``lenient`` rows were read with ``_lenient_text``: a value that is not UTF-8 arrives as
        ``_InvalidText`` and makes the record a failed one naming the column.
        """
        record: Record = dict(zip(table.columns, row, strict=False))  # a trailing modified key is left out
        problems: list[str] = []
        if lenient or _BINARY in map(type, row):
            for column, value in record.items():
                if isinstance(value, _InvalidText):
                    problems.append(f"column {column!r} is not valid UTF-8 text ({bytes(value)!r})")
                    record[column] = bytes(value).decode("utf-8", "replace")
                elif isinstance(value, bytes):
                    record[column] = value.hex()
        for column in table.reference_columns:
            if record.get(column) is not None:
                record[column] = str(record[column])
        raw_id = record[table.id_column]
        record_id = None if raw_id is None or not str(raw_id).strip() else str(raw_id)
        record["id"] = record_id
        if record_id is None:
            problems.insert(0, f"missing id (column {table.id_column!r} is empty)")
        if table.id_column != "id":
            record[table.id_column] = record_id if record_id is not None else raw_id
        modified = table.modified
        if modified is not None:
            key = row[len(table.columns)]
            if key is None:
                problems.append(modified.reason(row[table.columns.index(modified.column)]))
            elif future is not None and key >= future:
                problems.append(modified.future_reason(row[table.columns.index(modified.column)], key))
        if problems:
            record[RECORD_ERROR_KEY] = "; ".join(problems)
        return record

    def _stream(self, table: _Table, sql: str, params: Sequence[Any], future: str | None = None) -> Iterator[Record]:
        """Rows of one query on a dedicated connection, closed when done or abandoned.

        Rows are taken one at a time (not ``fetchmany``): when a row holds text that is not
        UTF-8, ``sqlite3`` raises *before* stepping past it, so switching this connection to
        ``_lenient_text`` and asking again yields that row as a failed record and goes on;
        a chunked fetch would lose the rows of the chunk read before the bad one.
        """
        conn = self._connect()
        lenient = False
        try:
            cursor = conn.execute(sql, params)
            while True:
                try:
                    for row in cursor:
                        yield self._record(table, row, lenient, future)
                    return
                except sqlite3.OperationalError as exc:
                    if lenient or not _is_decode_error(exc):
                        raise
                    conn.text_factory = _lenient_text
                    lenient = True
        finally:
            conn.close()

    def _query(self, sql: str, params: Sequence[Any], *, one: bool) -> tuple[list[Any], bool]:
        """Rows of a lookup on the shared connection; re-read leniently when one is not UTF-8."""
        with self._lock:
            try:
                cursor = self._conn.execute(sql, params)
                return ([cursor.fetchone()] if one else cursor.fetchall()), False
            except sqlite3.OperationalError as exc:
                if not _is_decode_error(exc):
                    raise
            self._conn.text_factory = _lenient_text
            try:
                cursor = self._conn.execute(sql, params)
                return ([cursor.fetchone()] if one else cursor.fetchall()), True
            finally:
                self._conn.text_factory = str

    def _fetch_one(self, table: _Table, where: str, params: Sequence[Any]) -> Record | None:
        sql = f"SELECT {table.select_list} FROM {table.quoted} WHERE {where} ORDER BY {table.quoted_id} LIMIT 1"
        [row], lenient = self._query(sql, params, one=True)
        future = future_cutoff() if table.modified is not None else None
        return None if row is None else self._record(table, row, lenient, future)

    def _fetch_many(
        self, table: _Table, column: str, values: Iterable[Any], *, ids: bool = False
    ) -> Iterator[Record]:
        """Rows whose ``column`` is one of ``values``; ``ids``: values are record ids (``id_candidates``)."""
        distinct = list(dict.fromkeys(v for v in values if v is not None and str(v).strip()))
        future = future_cutoff() if table.modified is not None else None
        size = min(self.settings.lookup_chunk_size, _MAX_IDS_PER_QUERY) if ids else self.settings.lookup_chunk_size
        for chunk in _chunks(distinct, size):
            params = [c for value in chunk for c in id_candidates(value)] if ids else list(chunk)
            marks = ", ".join("?" for _ in params)
            sql = (
                f"SELECT {table.select_list} FROM {table.quoted} "
                f"WHERE {quote_identifier(column)} IN ({marks}) ORDER BY {table.quoted_id}"
            )
            rows, lenient = self._query(sql, params, one=False)
            for row in rows:
                yield self._record(table, row, lenient, future)

    # -- accounts and contacts ----------------------------------------------------------------
    def _iter_window(self, entity: _EntityTable, since: datetime | None, until: datetime | None) -> Iterator[Record]:
        """Rows with ``since <= modified < until`` by UTC instant, plus every unreadable-time row
        and every row modified more than ``FUTURE_TOLERANCE`` in the future (both failed).

        Ordered by ``(modified, id)``, unreadable rows (NULL key) first. With bounds, the inner
        ``LIMIT -1`` keeps SQLite from flattening the subquery, so each row's modified time is
        read once instead of once per use in WHERE and ORDER BY.
        """
        future = future_cutoff()
        since_key = _require_aware(since, "since")
        until_key = _require_aware(until, "until")
        conditions: list[str] = []
        params: list[str] = []
        if since_key is not None:
            conditions.append(f"{_MODIFIED_KEY} >= ?")
            params.append(since_key)
        if until_key is not None:
            conditions.append(f"{_MODIFIED_KEY} < ?")
            params.append(until_key)
        table = entity.table
        select = f"SELECT {table.select_list} FROM {table.quoted}"
        order = f" ORDER BY {_MODIFIED_KEY}, {quote_identifier(table.id_column)}"
        if not conditions:
            return self._stream(table, select + order, params, future)
        sql = (
            f"SELECT * FROM ({select} LIMIT -1) WHERE {_MODIFIED_KEY} IS NULL OR {_MODIFIED_KEY} >= ? "
            f"OR ({' AND '.join(conditions)})" + order
        )
        return self._stream(table, sql, [future, *params], future)

    def _get(self, entity: _EntityTable, record_id: str) -> Record | None:
        if record_id is None or not str(record_id).strip():
            return None
        return self._get_many(entity, [str(record_id)]).get(str(record_id))

    def _find(self, entity: _EntityTable, field: str, value: Any) -> Record | None:
        _require_lookup_value(field, value)
        column = entity.table.require_column(field)
        return self._fetch_one(entity.table, f"{column} = ?", [value])

    def _search(self, entity: _EntityTable, query: str) -> Iterator[Record]:
        folded = fold_text(query.strip() if isinstance(query, str) else query)
        if not folded:
            raise ValueError("search query must not be empty")
        table = entity.table
        if not entity.search_columns:
            return iter(())
        matches = " OR ".join(
            f"instr({_FOLD_FUNCTION}({_text_as_bytes(quote_identifier(c))}), ?) > 0" for c in entity.search_columns
        )
        sql = f"SELECT {table.select_list} FROM {table.quoted} WHERE {matches} ORDER BY {table.quoted_id}"
        return self._stream(table, sql, [folded] * len(entity.search_columns), future_cutoff())

    def _get_many(self, entity: _EntityTable, ids: Iterable[str]) -> dict[str, Record]:
        wanted = {str(i) for i in ids}
        found: dict[str, Record] = {}
        for record in self._fetch_many(entity.table, entity.table.id_column, wanted, ids=True):
            # 1.0 = 1 in SQLite: keep only rows whose id reads back as asked, the first by id order
            if record["id"] in wanted:
                found.setdefault(record["id"], record)
        return found

    def iter_accounts(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[Record]:
        return self._iter_window(self._accounts, since, until)

    def get_account(self, account_id: str) -> Record | None:
        return self._get(self._accounts, account_id)

    def find_account_by(self, field: str, value: Any) -> Record | None:
        return self._find(self._accounts, field, value)

    def search_accounts(self, query: str) -> Iterator[Record]:
        return self._search(self._accounts, query)

    def get_accounts(self, account_ids: Iterable[str]) -> dict[str, Record]:
        return self._get_many(self._accounts, account_ids)

    def iter_contacts(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[Record]:
        return self._iter_window(self._contacts, since, until)

    def get_contact(self, contact_id: str) -> Record | None:
        return self._get(self._contacts, contact_id)

    def find_contact_by(self, field: str, value: Any) -> Record | None:
        return self._find(self._contacts, field, value)

    def search_contacts(self, query: str) -> Iterator[Record]:
        return self._search(self._contacts, query)

    def get_contacts(self, contact_ids: Iterable[str]) -> dict[str, Record]:
        return self._get_many(self._contacts, contact_ids)

    # -- custom sources -------------------------------------------------------------------------
    def _custom_table(self, source: str) -> _EntityTable:
        table = self._custom.get(source)
        if table is None:
            raise ConfigError(
                f"custom source {source!r} is not configured for the SQL adapter "
                f"(configured: {', '.join(self._custom) or 'none'}); add crm.custom_sources.{source}.table",
                path=f"{SETTINGS_ROOT}.custom_sources",
            )
        return table

    def iter_custom(self, source: str, since: datetime | None = None,
                    until: datetime | None = None) -> Iterator[Record]:
        """Rows of the ``crm.custom_sources.<source>`` table modified in ``[since, until)``."""
        return self._iter_window(self._custom_table(source), since, until)

    def get_custom(self, source: str, record_ids: Iterable[str]) -> dict[str, Record]:
        return self._get_many(self._custom_table(source), record_ids)

    # -- activities ---------------------------------------------------------------------------
    def _activity_table(self, operation: str) -> _ActivityTable:
        if self._activities is None:
            raise NotSupportedError(
                f"{self.name} adapter has no activities table configured ({operation}); set crm.activities in sync.yaml"
            )
        return self._activities

    def find_activity_by(self, field: str, value: Any) -> Record | None:
        activities = self._activity_table("find_activity_by")
        _require_lookup_value(field, value)
        column = activities.table.require_column(field)
        return self._fetch_one(activities.table, f"{column} = ?", [value])

    def find_activities_by_external_ids(self, field: str, values: Iterable[str]) -> dict[str, Record]:
        activities = self._activity_table("find_activities_by_external_ids")
        activities.table.require_column(field)
        found: dict[str, Record] = {}
        for record in self._fetch_many(activities.table, field, values):
            found.setdefault(str(record[field]), record)
        return found

    def create_activity(self, record: Record) -> Record:
        activities = self._activity_table("create_activity")
        with self._lock:
            return self._write(lambda: activities.insert(self._conn, record))

    def update_activity(self, activity_id: str, record: Record) -> Record:
        activities = self._activity_table("update_activity")
        with self._lock:
            return self._write(lambda: activities.update(self._conn, str(activity_id), record))

    def upsert_activity(self, lookup_field: str, record: Record) -> Record:
        activities = self._activity_table("upsert_activity")
        activities.table.require_column(lookup_field)
        with self._lock:
            return self._write(lambda: activities.upsert(self._conn, lookup_field, record))

    def upsert_activities(self, lookup_field: str, records: Iterable[Record]) -> list[Record | BaseException]:
        """One transaction for the batch; a bad record fails alone (``Record`` or error per record, in order).

        Keyed by the UNIQUE external-id column, records with the same fields are written by one
        ``executemany`` of ``INSERT ... ON CONFLICT DO UPDATE`` and read back by one ``IN (...)``
        query (``_ActivityTable.upsert_many``); should that statement fail, its records are
        written again one savepoint each, so the bad one rolls back alone and names its error.
        Any other lookup field is upserted record by record, one savepoint each.
        """
        activities = self._activity_table("upsert_activities")
        activities.table.require_column(lookup_field)
        batch = list(records)
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                if lookup_field == activities.settings.external_id_column:
                    results = activities.upsert_many(self._conn, lookup_field, batch, self.settings.lookup_chunk_size)
                else:
                    results = [activities.upsert_isolated(self._conn, lookup_field, record) for record in batch]
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return results

    def _write(self, operation: Any) -> Record:
        """Run one write as its own short transaction, translating SQLite errors to typed ones."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            result: Record = operation()
        except BaseException as exc:
            self._conn.execute("ROLLBACK")
            if isinstance(exc, Exception):
                raise _as_adapter_error(exc) from exc
            raise
        self._conn.execute("COMMIT")
        return result


def _as_adapter_error(exc: Exception) -> Exception:
    """Typed error for the engine's failed-records table; already-typed errors pass through."""
    if isinstance(exc, AdapterError):
        return exc
    if isinstance(exc, sqlite3.IntegrityError):
        message = str(exc)
        if "UNIQUE" in message:
            return ConflictError(f"activity conflicts with an existing one ({message})")
        return RecordValidationError(f"activity rejected by the database ({message})")
    if isinstance(exc, sqlite3.OperationalError):
        return AdapterError(f"SQLite operation failed ({exc})")
    if isinstance(exc, (ValueError, TypeError, OverflowError)):  # OverflowError: an int SQLite cannot store
        return RecordValidationError(str(exc))
    return exc


def _custom_key(source: str) -> str:
    """The key of a custom source's modified-time reader (and its SQL function name)."""
    return "custom_" + "".join(c if c.isalnum() else "_" for c in source)


@dataclass(frozen=True)
class _EntityTable:
    table: _Table
    settings: EntityTableSettings
    search_columns: tuple[str, ...]


@dataclass(frozen=True)
class _ActivityTable:
    """Write-side logic of the activities table (called inside a transaction the adapter owns)."""

    table: _Table
    settings: ActivityTableSettings
    #: The table's columns as a set (a batch checks every key of every record against it).
    column_set: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "column_set", frozenset(self.table.columns))

    def _values(self, record: Record) -> dict[str, Any]:
        if not isinstance(record, Mapping):
            raise RecordValidationError(f"an activity must be a dict, got {type(record).__name__}")
        values: dict[str, Any] = {}
        unknown: list[str] = []
        columns, id_column = self.column_set, self.table.id_column
        for key, value in record.items():
            if key == "id" or key == id_column:
                continue
            if key not in columns:
                unknown.append(key)
                continue
            values[key] = value if type(value) in _STORED_AS_IS else _bindable(key, value)
        if unknown:
            raise RecordValidationError(
                f"unknown activity field(s) {', '.join(sorted(unknown))} for table {self.table.name!r} "
                f"(columns: {', '.join(self.table.columns)})"
            )
        return values

    def _stamped(self, values: Mapping[str, Any], *, creating: bool, now: str | None = None) -> dict[str, Any]:
        now = now or utc_text(datetime.now(UTC).replace(microsecond=0))
        stamped = dict(values)
        if self.settings.modified_column and self.settings.modified_column not in stamped:
            stamped[self.settings.modified_column] = now
        if creating and self.settings.created_column and self.settings.created_column not in stamped:
            stamped[self.settings.created_column] = now
        return stamped

    def _by_id(self, conn: sqlite3.Connection, activity_id: Any) -> Record:
        sql = (
            f"SELECT {self.table.select_list} FROM {self.table.quoted} "
            f"WHERE {quote_identifier(self.table.id_column)} = ?"
        )
        row = conn.execute(sql, [activity_id]).fetchone()
        if row is None:
            raise ConflictError(f"activity {activity_id} does not exist in {self.table.name!r}")
        return SqlCrmAdapter._record(self.table, row)

    def insert(self, conn: sqlite3.Connection, record: Record) -> Record:
        values = self._stamped(self._values(record), creating=True)
        columns = ", ".join(quote_identifier(c) for c in values)
        marks = ", ".join("?" for _ in values)
        sql = (
            f"INSERT INTO {self.table.quoted} ({columns}) VALUES ({marks}) "
            f"RETURNING {quote_identifier(self.table.id_column)}"
        )
        new_id = conn.execute(sql, list(values.values())).fetchone()[0]
        return self._by_id(conn, new_id)

    def update(self, conn: sqlite3.Connection, activity_id: str, record: Record) -> Record:
        values = self._stamped(self._values(record), creating=False)
        if values:
            assignments = ", ".join(f"{quote_identifier(c)} = ?" for c in values)
            sql = f"UPDATE {self.table.quoted} SET {assignments} WHERE {quote_identifier(self.table.id_column)} = ?"
            cursor = conn.execute(sql, [*values.values(), activity_id])
            if cursor.rowcount == 0:
                raise ConflictError(f"activity {activity_id} does not exist in {self.table.name!r}")
        return self._by_id(conn, activity_id)

    def upsert(self, conn: sqlite3.Connection, lookup_field: str, record: Record) -> Record:
        provided = self._values(record)
        key = provided.get(lookup_field)
        if key is None or (isinstance(key, str) and not key.strip()):
            raise RecordValidationError(f"activity has no value for its lookup field {lookup_field!r}")
        if lookup_field == self.settings.external_id_column:
            return self._upsert_on_unique(conn, lookup_field, provided)
        matches = conn.execute(
            f"SELECT {quote_identifier(self.table.id_column)} FROM {self.table.quoted} "
            f"WHERE {quote_identifier(lookup_field)} = ? LIMIT 2",
            [key],
        ).fetchall()
        if len(matches) > 1:
            raise ConflictError(f"more than one activity has {lookup_field} = {key!r}; cannot upsert")
        if matches:
            return self.update(conn, matches[0][0], record)
        return self.insert(conn, record)

    def upsert_isolated(self, conn: sqlite3.Connection, lookup_field: str, record: Record) -> Record | BaseException:
        """``upsert`` under its own savepoint: a failure rolls back this record alone and is returned."""
        conn.execute("SAVEPOINT crmsync_record")
        try:
            return self.upsert(conn, lookup_field, record)
        except Exception as exc:  # isolate the record, keep the batch going
            conn.execute("ROLLBACK TO crmsync_record")
            return _as_adapter_error(exc)
        finally:
            conn.execute("RELEASE crmsync_record")

    def upsert_many(self, conn: sqlite3.Connection, lookup_field: str, records: Sequence[Record],
                    chunk_size: int) -> list[Record | BaseException]:
        """Upsert on the UNIQUE ``lookup_field`` set-wise: one ``executemany`` per set of fields
        (what the mapping gives every record alike), then the stored rows by one ``IN (...)``
        query per ``chunk_size`` keys. A record that cannot be bound fails alone before any SQL;
        when a statement fails, its records go one savepoint each (``upsert_isolated``).
        """
        results: list[Record | BaseException | None] = [None] * len(records)
        now = utc_text(datetime.now(UTC).replace(microsecond=0))
        groups: dict[tuple[str, ...], list[tuple[int, Any, list[Any]]]] = {}
        for index, record in enumerate(records):
            try:
                provided = self._values(record)
                key = provided.get(lookup_field)
                if key is None or (isinstance(key, str) and not key.strip()):
                    raise RecordValidationError(f"activity has no value for its lookup field {lookup_field!r}")
            except Exception as exc:
                results[index] = _as_adapter_error(exc)
                continue
            values = self._stamped(provided, creating=True, now=now)
            groups.setdefault(tuple(provided), []).append((index, key, list(values.values())))
        written: dict[Any, list[int]] = {}
        for fields, members in groups.items():
            provided_fields = dict.fromkeys(fields)
            sql = self._upsert_sql(lookup_field, provided_fields, self._stamped(provided_fields, creating=True))
            conn.execute("SAVEPOINT crmsync_batch")
            try:
                conn.executemany(sql, [params for _index, _key, params in members])
            except Exception:  # a constraint or a value SQLite refused: find the record, one savepoint each
                conn.execute("ROLLBACK TO crmsync_batch")
                conn.execute("RELEASE crmsync_batch")
                for index, _key, _params in members:
                    results[index] = self.upsert_isolated(conn, lookup_field, records[index])
                continue
            conn.execute("RELEASE crmsync_batch")
            for index, key, _params in members:
                written.setdefault(key, []).append(index)
        keys = list(written)
        for start in range(0, len(keys), chunk_size):
            chunk = keys[start:start + chunk_size]
            marks = ", ".join("?" for _ in chunk)
            rows = conn.execute(
                f"SELECT {self.table.select_list}, {quote_identifier(lookup_field)} FROM {self.table.quoted} "
                f"WHERE {quote_identifier(lookup_field)} IN ({marks})",
                chunk,
            ).fetchall()
            for row in rows:
                stored = SqlCrmAdapter._record(self.table, row[:-1])
                for index in written.get(row[-1], ()):
                    results[index] = stored
        for key, indexes in written.items():
            for index in indexes:
                if results[index] is None:  # the column's affinity changed the key: read it back alone
                    results[index] = self._by_key(conn, lookup_field, key)
        return [result if result is not None else ConflictError("activity was not stored") for result in results]

    def _by_key(self, conn: sqlite3.Connection, lookup_field: str, key: Any) -> Record | BaseException:
        row = conn.execute(
            f"SELECT {self.table.select_list} FROM {self.table.quoted} WHERE {quote_identifier(lookup_field)} = ?",
            [key],
        ).fetchone()
        if row is None:
            return ConflictError(f"activity {lookup_field} = {key!r} was written but cannot be read back")
        return SqlCrmAdapter._record(self.table, row)

    def _upsert_sql(self, lookup_field: str, provided: Mapping[str, Any], values: Mapping[str, Any]) -> str:
        """``INSERT ... ON CONFLICT(lookup_field) DO UPDATE`` for these columns (``values``: with stamps)."""
        # Keep the original creation time on update unless the record brings its own.
        updatable = [c for c in values if c != lookup_field and (c in provided or c != self.settings.created_column)]
        columns = ", ".join(quote_identifier(c) for c in values)
        marks = ", ".join("?" for _ in values)
        if updatable:
            action = "UPDATE SET " + ", ".join(
                f"{quote_identifier(c)} = excluded.{quote_identifier(c)}" for c in updatable
            )
        else:
            action = f"UPDATE SET {quote_identifier(lookup_field)} = excluded.{quote_identifier(lookup_field)}"
        return (
            f"INSERT INTO {self.table.quoted} ({columns}) VALUES ({marks}) "
            f"ON CONFLICT({quote_identifier(lookup_field)}) DO {action}"
        )

    def _upsert_on_unique(self, conn: sqlite3.Connection, lookup_field: str, provided: dict[str, Any]) -> Record:
        values = self._stamped(provided, creating=True)
        sql = self._upsert_sql(lookup_field, provided, values) + f" RETURNING {quote_identifier(self.table.id_column)}"
        activity_id = conn.execute(sql, list(values.values())).fetchone()[0]
        return self._by_id(conn, activity_id)


#: Value types SQLite binds as they are (``bool`` is not one: ``_bindable`` makes it 0/1).
_STORED_AS_IS = frozenset({str, int, float, type(None)})


def _bindable(key: str, value: Any) -> Any:
    """A value SQLite can store; structures become JSON text, datetimes ISO-8601 UTC."""
    if isinstance(value, bool):
        return int(value)
    if value is None or isinstance(value, (str, int, float, bytes)):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise RecordValidationError(f"field {key!r}: naive datetime {value.isoformat()} (timezone required)")
        return utc_text(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (list, dict, tuple)):
        return json.dumps(value, ensure_ascii=False, default=str)
    raise RecordValidationError(f"field {key!r}: cannot store a {type(value).__name__} value")
