"""The Daktela side of the sync: windowed reads, batched lookups, safe writes, activities.

The engine talks to Daktela only through this class. It fixes the PHP SDK's weak spots:
keyset paging instead of drifting offsets (W1, W2), batched ``in`` lookups instead of one
call per record (W7), lookups that raise instead of reading an outage as "not found" (W11),
empty lookup values ignored (W9), time windows converted to the instance zone (W3), and a
create that is retried only after checking whether the first attempt landed.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from crmsync_pipelines.daktela.activities import flatten_activity, type_code
from crmsync_pipelines.daktela.client import MAX_TAKE, DaktelaClient, Page
from crmsync_pipelines.daktela.errors import (
    TRANSIENT_ERRORS,
    DaktelaAuthError,
    DaktelaError,
    DaktelaNotFoundError,
    DaktelaProtocolError,
    DaktelaValidationError,
)
from crmsync_pipelines.daktela.filters import And, F, Filter, Or
from crmsync_pipelines.daktela.normalize import normalize_record
from crmsync_pipelines.daktela.ratelimit import AdaptiveConcurrency
from crmsync_pipelines.errors import ConfigError

if TYPE_CHECKING:
    from crmsync_pipelines.config.models import DaktelaSection

logger = logging.getLogger("crmsync.daktela")

#: Models that live in a CRM database: reads and lookups are scoped to it, creates carry it.
DATABASE_MODELS = frozenset({"contacts", "accounts"})

#: Instances (by URL) that answered a date filter on ``activities`` with HTTP 400 ("Filtering
#: by 'time' is not allowed here"). Remembered for the life of the process, so each process
#: pays one refused request per instance and logs the fallback once.
_NO_ACTIVITY_DATE_FILTERS: set[str] = set()
_NO_ACTIVITY_DATE_FILTERS_LOCK = threading.Lock()

_INSTANCE_TIME_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2}))?)?$")


@dataclass(frozen=True)
class WriteOp:
    """One write for ``apply_writes``; ``key`` is the caller's id, echoed in the result."""

    key: str
    model: str
    action: Literal["create", "update"]
    payload: dict[str, Any]
    name: str | None = None
    lookup_field: str = "name"


@dataclass
class WriteResult:
    """The outcome of one ``WriteOp``: the stored (normalized) record, or the error."""

    op: WriteOp
    record: dict[str, Any] | None
    error: Exception | None


class DaktelaAdapter:
    """Daktela operations the sync engine needs, on top of one ``DaktelaClient``."""

    def __init__(
        self,
        client: DaktelaClient,
        *,
        database: str,
        timezone: str = "Europe/Prague",
        page_size: int = 1000,
        lookup_chunk_size: int = 200,
        write_concurrency: int = 4,
    ) -> None:
        if not 1 <= page_size <= MAX_TAKE:
            raise ValueError(f"page_size must be between 1 and {MAX_TAKE}, got {page_size}")
        if lookup_chunk_size < 1:
            raise ValueError(f"lookup_chunk_size must be >= 1, got {lookup_chunk_size}")
        if write_concurrency < 1:
            raise ValueError(f"write_concurrency must be >= 1, got {write_concurrency}")
        self.client = client
        self.database = database
        self.page_size = page_size
        self.lookup_chunk_size = lookup_chunk_size
        self.write_concurrency = write_concurrency
        try:
            self.tz = ZoneInfo(timezone or "Europe/Prague")
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {timezone!r}") from None
        self._tz_lock = threading.Lock()
        self._tz_mismatch_logged = False
        #: The writer pool, created on the first write and kept for the adapter's life (a pool per
        #: batch would start and join threads every ``batch_size`` writes).
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        #: Activity ``fields[]`` projections the instance refused (HTTP 400): not sent again.
        self._refused_projections: set[tuple[str, ...]] = set()

    @classmethod
    def from_config(cls, section: DaktelaSection, *, client: DaktelaClient | None = None) -> DaktelaAdapter:
        """Build client and adapter from ``sync.yaml``'s ``daktela`` section.

        ``client`` (tests and benchmarks) replaces the client the section describes; the adapter's
        own settings still come from the section.
        """
        if not section.instance_url:
            raise ConfigError("is required", path="daktela.instance_url")
        if not section.access_token:
            raise ConfigError("is required (set it through ${VAR})", path="daktela.access_token")
        client = client or DaktelaClient(
            section.instance_url,
            section.access_token,
            timeout_s=section.timeout_s,
            max_retries=section.max_retries,
            rate_limit_per_s=section.rate_limit_per_s or None,
            write_concurrency=AdaptiveConcurrency(section.write_concurrency, section.max_write_concurrency),
        )
        return cls(
            client,
            database=section.database,
            timezone=section.timezone or "Europe/Prague",
            page_size=section.page_size,
            lookup_chunk_size=section.lookup_chunk_size,
            write_concurrency=section.write_concurrency,
        )

    def close(self) -> None:
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        self.client.close()

    @property
    def max_write_concurrency(self) -> int:
        """Threads of the writer pool: the adaptive maximum when the client adapts its write
        concurrency (``DaktelaClient.write_concurrency``), else ``write_concurrency``."""
        gate = self.client.write_concurrency
        return max(self.write_concurrency, gate.maximum) if gate is not None else self.write_concurrency

    def write_pace(self) -> dict[str, float | int]:
        """Current writes in flight allowed, peak, writes/s and overloads (empty without adaptation)."""
        gate = self.client.write_concurrency
        return gate.snapshot() if gate is not None else {}

    def _writer_pool(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.max_write_concurrency,
                                                thread_name_prefix="daktela-write",
                                                initializer=self.client.bind_thread_connection)
            return self._pool

    # -- health -------------------------------------------------------------------------------
    def ping(self) -> bool:
        """True when the instance answers ``whoim`` with this token.

        False when it cannot be reached or refuses the token (any ``DaktelaError``, logged);
        anything else is a bug and propagates.
        """
        try:
            self.client.whoim()
        except DaktelaError as exc:
            logger.warning("Daktela ping failed: %s", exc)
            return False
        return True

    # -- time zones ---------------------------------------------------------------------------
    def to_instance_time(self, dt: datetime) -> str:
        """An aware datetime as the instance's naive local ``YYYY-MM-DD HH:MM:SS``."""
        if dt.tzinfo is None or dt.utcoffset() is None:
            raise ValueError(f"naive datetime {dt.isoformat()}: pass a timezone-aware datetime")
        return dt.astimezone(self.tz).strftime("%Y-%m-%d %H:%M:%S")

    def from_instance_time(self, s: str) -> datetime:
        """The instance's naive local time string as an aware datetime."""
        match = _INSTANCE_TIME_RE.match(s.strip()) if isinstance(s, str) else None
        if not match:
            raise ValueError(f"not a Daktela datetime (YYYY-MM-DD HH:MM:SS): {s!r}")
        y, mo, d, h, mi, sec = (int(g) if g else 0 for g in match.groups())
        return datetime(y, mo, d, h, mi, sec, tzinfo=self.tz)

    def _observe_timezone(self, announced: str | None) -> bool:
        """Adopt the zone the API announces; True when it differs from the one in use."""
        if not announced or announced == self.tz.key:
            return False
        try:
            zone = ZoneInfo(announced)
        except (ZoneInfoNotFoundError, ValueError):
            logger.warning("Daktela announced an unknown time zone %r; keeping %s", announced, self.tz.key)
            return False
        with self._tz_lock:
            if not self._tz_mismatch_logged:
                logger.warning(
                    "Daktela instance time zone is %s, configured %s; using the instance's",
                    announced,
                    self.tz.key,
                )
                self._tz_mismatch_logged = True
            self.tz = zone
        return True

    # -- paging -------------------------------------------------------------------------------
    def _keyset(
        self,
        model: str,
        base_filters: Callable[[], list[Filter]],
        key_field: str | None,
        *,
        fields: Sequence[str] | None,
        include_nulls: bool,
        restart_on_timezone: bool,
    ) -> Iterator[dict[str, Any]]:
        """Raw records sorted by (key_field, name), each at most once, with no skips.

        The next page starts strictly after the last (key, name) seen instead of at an offset,
        so records edited or inserted meanwhile cannot shift the window; an edited record moves
        past the end and is dropped there if it was already yielded. Records whose key is null
        (possible only for unbounded scans) are read first, keyed by name alone.
        """
        projection = _with_fields(fields, ["name", key_field] if key_field else ["name"])
        seen: set[str] = set()
        first_page = True
        # The next page is fetched while the caller works on this one (parsing, staging): the
        # keyset bound is known as soon as a page arrives. At most two pages are held.
        prefetch = ThreadPoolExecutor(max_workers=1, thread_name_prefix="daktela-page")
        try:
            yield from self._keyset_pages(model, base_filters, key_field, projection, include_nulls,
                                          restart_on_timezone, seen, first_page, prefetch)
        finally:
            prefetch.shutdown(wait=False, cancel_futures=True)

    def _keyset_pages(
        self, model: str, base_filters: Callable[[], list[Filter]], key_field: str | None,
        projection: list[str] | None, include_nulls: bool, restart_on_timezone: bool, seen: set[str],
        first_page: bool, prefetch: ThreadPoolExecutor,
    ) -> Iterator[dict[str, Any]]:
        while True:
            base = base_filters()
            phases: list[tuple[str | None, list[Filter]]] = []
            if key_field is None:
                phases.append((None, base))
            else:
                if include_nulls:
                    phases.append((None, [*base, F(key_field, "isnull")]))
                    base = [*base, F(key_field, "isnotnull")]
                phases.append((key_field, base))
            restarted = False
            for phase_key, filters in phases:
                last: tuple[Any, Any] | None = None
                sort: list[tuple[str, Literal["asc", "desc"]]] = [("name", "asc")]
                if phase_key:
                    sort.insert(0, (phase_key, "asc"))

                def fetch(bound: tuple[Any, Any] | None, filters: list[Filter] = filters,
                          sort: list[tuple[str, Literal["asc", "desc"]]] = sort,
                          phase_key: str | None = phase_key) -> Page:
                    page_filters = filters if bound is None else [*filters, _after(phase_key, bound)]
                    return self.client.list(model, filters=page_filters, sort=sort, take=self.page_size,
                                            fields=projection)

                upcoming: Future[Page] | None = None
                while True:
                    page = upcoming.result() if upcoming is not None else fetch(last)
                    upcoming = None
                    if first_page:
                        first_page = False
                        if self._observe_timezone(page.timezone) and restart_on_timezone:
                            restarted = True
                            break
                    more = not (len(page.records) < self.page_size and len(page.records) >= page.total)
                    if more and page.records:
                        tail = page.records[-1]
                        bound = (tail.get(phase_key) if phase_key else None, tail.get("name"))
                        if bound != last and tail.get("name") is not None and not (phase_key and bound[0] is None):
                            upcoming = prefetch.submit(fetch, bound)
                    for record in page.records:
                        name = str(record.get("name"))
                        if name not in seen:
                            seen.add(name)
                            yield record
                    # ``total`` counts what matches the filters, keyset bound included, so a page
                    # shorter than ``take`` ends the scan only when it holds everything left: a
                    # server that caps ``take`` (500 of 1000 asked) must not end it early.
                    if len(page.records) < self.page_size and len(page.records) >= page.total:
                        break
                    if not page.records:
                        raise DaktelaProtocolError(
                            f"Daktela {self.client.instance_url}: paging {model} got an empty page "
                            f"although the server counts {page.total} more records",
                            instance=self.client.instance_url,
                            method="GET",
                            path=f"/api/v6/{model}.json",
                        )
                    tail = page.records[-1]
                    position = (tail.get(phase_key) if phase_key else None, tail.get("name"))
                    if position == last or tail.get("name") is None or (phase_key and position[0] is None):
                        raise DaktelaProtocolError(
                            f"Daktela {self.client.instance_url}: paging {model} made no progress "
                            f"(the server ignored the keyset filter)",
                            instance=self.client.instance_url,
                            method="GET",
                            path=f"/api/v6/{model}.json",
                        )
                    last = position
                if restarted:
                    break
            if not restarted:
                return

    def _scope(self, model: str) -> list[Filter]:
        return [F("database", "eq", self.database)] if self.database and model in DATABASE_MODELS else []

    def _window(self, field: str, since: datetime | None, until: datetime | None) -> list[Filter]:
        out: list[Filter] = []
        if since is not None:
            out.append(F(field, "gte", self.to_instance_time(since)))
        if until is not None:
            out.append(F(field, "lt", self.to_instance_time(until)))
        return out

    # -- contacts and accounts ----------------------------------------------------------------
    def iter_records(
        self,
        model: Literal["contacts", "accounts"],
        *,
        edited_since: datetime | None = None,
        edited_until: datetime | None = None,
        fields: Sequence[str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Normalized records edited in ``[edited_since, edited_until)``, oldest edit first."""
        windowed = edited_since is not None or edited_until is not None
        for record in self._keyset(
            model,
            lambda: [*self._scope(model), *self._window("edited", edited_since, edited_until)],
            "edited",
            fields=fields,
            include_nulls=not windowed,
            restart_on_timezone=windowed,
        ):
            yield normalize_record(record)

    def get_by_field(
        self,
        model: Literal["contacts", "accounts"],
        field: str,
        values: Iterable[str],
        fields: Sequence[str] | None = None,
    ) -> dict[str, list[dict[str, Any]]]:
        """Records whose ``field`` matches any of ``values``, keyed by the looked-up value.

        One ``in`` request per ``lookup_chunk_size`` values (more only when a chunk matches more
        than a page). Values without a match are absent from the result. A record matching
        several requested values (a list-valued custom field) is listed under each of them.
        """
        wanted = _unique_non_empty(values)
        found: dict[str, list[dict[str, Any]]] = {}
        if not wanted:
            return found
        by_folded: dict[str, list[str]] = {}
        for value in wanted:
            by_folded.setdefault(value.casefold(), []).append(value)
        projection = _with_fields(fields, [field]) if fields else None
        for start in range(0, len(wanted), self.lookup_chunk_size):
            chunk = wanted[start : start + self.lookup_chunk_size]
            filters: list[Filter] = [*self._scope(model), F(field, "in", chunk)]
            for raw in self._keyset(
                model,
                _constant(filters),
                None,
                fields=projection,
                include_nulls=False,
                restart_on_timezone=False,
            ):
                record = normalize_record(raw)
                for key in _matched_values(record, field, wanted, by_folded):
                    found.setdefault(key, []).append(record)
        return found

    # -- writes -------------------------------------------------------------------------------
    def create(self, model: str, payload: dict[str, Any], *, lookup_field: str = "name") -> dict[str, Any]:
        """POST a record; returns it normalized.

        After a 5xx, timeout, reset or empty 2xx the POST may or may not have been stored, so
        it is repeated only after a lookup by ``payload[lookup_field]`` finds nothing (waiting
        the server's ``Retry-After`` when it sent one); a record found there is returned
        instead of creating a duplicate. Without a lookup value the original error is raised.

        A re-POST refused because its lookup value is taken (``name: Record with this name
        already exists``) means our earlier POST, whose answer we never got, landed after the
        lookup ran (a create slower than the client's timeout): the record is read back and
        returned as created.
        """
        body = dict(payload)
        if model in DATABASE_MODELS and self.database and not body.get("database"):
            body["database"] = self.database
        lookup_value = _lookup_value(body, lookup_field)
        attempt = 0
        while True:
            try:
                return normalize_record(self.client.create(model, body))
            except DaktelaValidationError as exc:
                if attempt == 0 or lookup_value is None or not _refuses_field(exc, lookup_field):
                    raise
                landed = self._find_landed(model, lookup_field, lookup_value, None)
                if landed is None:
                    raise
                logger.info("create %s: the re-sent POST found the first one stored late; using the stored record",
                            model)
                return landed
            except TRANSIENT_ERRORS as exc:
                if lookup_value is None or attempt >= self.client.max_retries:
                    raise
                landed = self._find_landed(model, lookup_field, lookup_value, exc)
                if landed is not None:
                    logger.info("create %s: the failed POST was stored; using the stored record", model)
                    return landed
                # Known not to have landed: only now may the server's Retry-After be honoured.
                delay = self.client.retry.delay_s(attempt, exc.retry_after_s)
                if delay is None:
                    raise
                logger.info("create %s failed (%s); not stored, retrying in %.2fs", model, type(exc).__name__, delay)
                time.sleep(delay)
                attempt += 1

    def _find_landed(
        self, model: str, field: str, value: Any, original: DaktelaError | None
    ) -> dict[str, Any] | None:
        """The record a failed create may have stored.

        If the lookup itself fails we cannot tell: ``original`` (the create's error) stands,
        or, without one, the lookup's own error is raised.
        """
        try:
            if field == "name":
                try:
                    return normalize_record(self.client.get(model, str(value)))
                except DaktelaNotFoundError:
                    return None
            if model in DATABASE_MODELS:
                matches = self.get_by_field(model, field, [str(value)])  # type: ignore[arg-type]
                hits = matches.get(str(value), [])
            else:
                page = self.client.list(model, filters=[F(field, "eq", str(value))], sort=[("name", "asc")], take=2)
                hits = [normalize_record(r) for r in page.records]
        except DaktelaError as lookup_error:
            if original is None:
                raise
            raise original from lookup_error
        return hits[0] if hits else None

    def update(self, model: str, name: str, payload: dict[str, Any]) -> dict[str, Any]:
        """PUT; repeated on 5xx/timeouts (a PUT of the same body is idempotent), bounded.

        The server's ``Retry-After`` is honoured; a longer one than ``max_retry_after_s``
        raises at once.
        """
        attempt = 0
        while True:
            try:
                return normalize_record(self.client.update(model, name, payload))
            except TRANSIENT_ERRORS as exc:
                if attempt >= self.client.max_retries:
                    raise
                delay = self.client.retry.delay_s(attempt, exc.retry_after_s)
                if delay is None:
                    raise
                logger.info("update %s failed (%s); retrying in %.2fs", model, type(exc).__name__, delay)
                time.sleep(delay)
                attempt += 1

    def _apply_one(self, op: WriteOp, refused: list[DaktelaAuthError]) -> WriteResult:
        # The refusal is checked once the write has its slot (adaptive concurrency), right
        # before sending: a thread that waited for a slot must not send after a 401/403.
        with self.client.write_slot():
            return self._apply_in_slot(op, refused)

    def _apply_in_slot(self, op: WriteOp, refused: list[DaktelaAuthError]) -> WriteResult:
        if refused:
            return WriteResult(op=op, record=None, error=_not_sent(refused[0]))
        try:
            if op.action == "create":
                record = self.create(op.model, op.payload, lookup_field=op.lookup_field)
            elif op.action == "update":
                if not op.name:
                    raise ValueError(f"update of {op.model} {op.key!r} has no Daktela name")
                record = self.update(op.model, op.name, op.payload)
            else:
                raise ValueError(f"unknown write action {op.action!r}")
        except DaktelaAuthError as exc:
            refused.append(exc)
            return WriteResult(op=op, record=None, error=exc)
        except Exception as exc:
            return WriteResult(op=op, record=None, error=exc)
        return WriteResult(op=op, record=record, error=None)

    def apply_writes(self, ops: Iterable[WriteOp], *, queue_limit: int | None = None) -> Iterator[WriteResult]:
        """Run writes on the adapter's long-lived pool of ``write_concurrency`` threads;
        results in completion order.

        The pool is kept full: as soon as one write finishes, the next op is submitted, with
        at most ``queue_limit`` (default ``2 × write_concurrency``) submitted and not yet
        yielded. No new op is submitted while the caller handles a yielded result, so a caller
        that records results every ``k`` of them has at most ``k + queue_limit - 1`` writes
        without a record at any time (the engine's crash bound).

        A failing op becomes a result with ``error`` set and never stops the others, with one
        exception: once Daktela refuses the token (401/403), no further op is sent. Writes
        already on the wire finish; every later op gets a ``DaktelaAuthError`` result saying
        it was not sent. Every op yields exactly one result. Ops are pulled from the iterable
        lazily, so a huge stream is never held in memory at once.
        """
        pending: set[Future[WriteResult]] = set()
        # Finished writes announce themselves here (a done-callback): taking the next one costs
        # O(1), where ``wait(pending, FIRST_COMPLETED)`` would lock every pending future per result.
        finished: queue.SimpleQueue[Future[WriteResult]] = queue.SimpleQueue()
        limit = max(1, queue_limit if queue_limit is not None else self.max_write_concurrency * 2)
        op_iter = iter(ops)
        exhausted = False
        refused: list[DaktelaAuthError] = []
        pool = self._writer_pool()
        try:
            while True:
                while not exhausted and len(pending) < limit:
                    op = next(op_iter, None)
                    if op is None:
                        exhausted = True
                        break
                    if refused:
                        yield WriteResult(op=op, record=None, error=_not_sent(refused[0]))
                        continue
                    future = pool.submit(self._apply_one, op, refused)
                    pending.add(future)
                    future.add_done_callback(finished.put)
                if not pending:
                    return
                future = finished.get()
                pending.discard(future)
                yield future.result()
        finally:
            for future in pending:
                future.cancel()
            # A caller that stops early must not leave writes running unseen: wait for them.
            wait(pending)

    # -- activities ---------------------------------------------------------------------------
    def iter_activities(
        self,
        activity_type: str,
        *,
        since: datetime | None,
        until: datetime | None,
        time_field: str = "time",
        fields: Sequence[str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Flattened activities of one type with ``time_field`` in ``[since, until)``.

        ``fields``: the raw activity fields to request (a ``fields[]`` projection, see
        ``activities.raw_fields``); an activity is ~5 KB in full. An instance that answers the
        projected read with HTTP 400 before the first record (a field it does not know) is read
        again without the projection, and the refusal is logged; this adapter does not send that
        projection again (other activity types, later windows).
        """
        projection = tuple(fields or ())
        if projection and projection not in self._refused_projections:
            started = False
            try:
                for row in self._iter_activities(activity_type, since, until, time_field, list(projection)):
                    started = True
                    yield row
                return
            except DaktelaValidationError as refusal:
                if started or refusal.status != 400:
                    raise
                # Remembered for this adapter's life: the other activity types (and later
                # windows) are read whole at once instead of each paying a refused request.
                self._refused_projections.add(projection)
                logger.warning("Daktela %s refused the activity field projection (%s); reading whole activities "
                               "for the rest of this run", self.client.instance_url,
                               "; ".join(refusal.messages) or f"HTTP {refusal.status}")
        yield from self._iter_activities(activity_type, since, until, time_field, None)

    def _iter_activities(
        self,
        activity_type: str,
        since: datetime | None,
        until: datetime | None,
        time_field: str,
        fields: list[str] | None,
    ) -> Iterator[dict[str, Any]]:
        """``iter_activities`` with one projection (None: whole activities).

        One call per type, each with its own keyset cursor, so types never share an offset (W1).

        Some instances refuse any date filter on activities (HTTP 400, "Filtering by 'time'
        is not allowed here"). Then the type is read without it, newest first, and windowed
        here (see ``_activities_windowed_here``); the instance is remembered for the process
        lifetime and the fallback is logged once. A 400 that the unfiltered read gets too is
        not about date filters and is raised as it was.
        """
        code = type_code(activity_type)
        windowed = since is not None or until is not None
        include_nulls = not windowed and time_field != "time"
        seen: set[str] = set()
        if (windowed or include_nulls) and self._refuses_activity_date_filters():
            yield from self._activities_windowed_here(code, activity_type, since, until, time_field, seen, None,
                                                      fields)
            return
        try:
            for record in self._keyset(
                "activities",
                lambda: [F("type", "eq", code), *self._window(time_field, since, until)],
                time_field,
                fields=fields,
                include_nulls=include_nulls,
                restart_on_timezone=windowed,
            ):
                seen.add(str(record.get("name")))
                yield flatten_activity(record, activity_type)
        except DaktelaValidationError as refusal:
            if not (windowed or include_nulls) or refusal.status != 400:
                raise
            yield from self._activities_windowed_here(code, activity_type, since, until, time_field, seen, refusal,
                                                      fields)

    def _refuses_activity_date_filters(self) -> bool:
        with _NO_ACTIVITY_DATE_FILTERS_LOCK:
            return self.client.instance_url in _NO_ACTIVITY_DATE_FILTERS

    def _remember_refused_date_filters(self, refusal: DaktelaValidationError) -> None:
        with _NO_ACTIVITY_DATE_FILTERS_LOCK:
            new = self.client.instance_url not in _NO_ACTIVITY_DATE_FILTERS
            _NO_ACTIVITY_DATE_FILTERS.add(self.client.instance_url)
        if new:
            logger.warning(
                "Daktela %s refuses date filters on activities (%s); reading activities without them, "
                "newest first, and windowing on our side for the rest of this process",
                self.client.instance_url,
                "; ".join(refusal.messages) or f"HTTP {refusal.status}",
            )

    def _activities_windowed_here(
        self,
        code: str,
        activity_type: str,
        since: datetime | None,
        until: datetime | None,
        time_field: str,
        seen: set[str],
        refusal: DaktelaValidationError | None,
        fields: list[str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The window read for instances that refuse date filters: only ``type eq`` is sent.

        Sorted by ``(time_field, name)`` descending with offset paging: activities that
        arrive during the scan sort first and shift the rest down, so a page may repeat
        records (dropped here by name) but never skips one; the scan stops at the first
        activity older than ``since``. Activities whose ``time_field`` is empty are yielded
        only by an unbounded read, as the filtered read would.
        """
        skip = 0
        first = True
        while True:
            try:
                page = self.client.list(
                    "activities",
                    filters=[F("type", "eq", code)],
                    sort=[(time_field, "desc"), ("name", "desc")],
                    skip=skip,
                    take=self.page_size,
                    fields=_with_fields(fields, ["name", time_field]),
                )
            except DaktelaValidationError:
                if first and refusal is not None:
                    raise refusal from None  # refused without date filters too: not about them
                raise
            if first:
                first = False
                self._observe_timezone(page.timezone)
                if refusal is not None:
                    self._remember_refused_date_filters(refusal)
            for record in page.records:
                stamp = self._activity_time(record.get(time_field))
                if stamp is None:
                    if since is not None or until is not None:
                        continue
                elif since is not None and stamp < since:
                    return  # newest first: everything after this is older still
                elif until is not None and stamp >= until:
                    continue
                name = str(record.get("name"))
                if name in seen:
                    continue
                seen.add(name)
                yield flatten_activity(record, activity_type)
            skip += len(page.records)
            if not page.records or skip >= page.total:
                return

    def _activity_time(self, value: Any) -> datetime | None:
        if not isinstance(value, str) or not value.strip():
            return None
        try:
            return self.from_instance_time(value)
        except ValueError:
            return None

    def get_activities(self, names: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Flattened activities by name, batched ``lookup_chunk_size`` names per request."""
        wanted = _unique_non_empty(names)
        out: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), self.lookup_chunk_size):
            filters: list[Filter] = [F("name", "in", wanted[start : start + self.lookup_chunk_size])]
            for raw in self._keyset(
                "activities",
                _constant(filters),
                None,
                fields=None,
                include_nulls=False,
                restart_on_timezone=False,
            ):
                row = flatten_activity(raw)
                out[str(row["name"])] = row
        return out

    def get_activity(self, name: str) -> dict[str, Any] | None:
        """One flattened activity; ``None`` only when Daktela says it does not exist (W11)."""
        try:
            return flatten_activity(self.client.get("activities", name))
        except DaktelaNotFoundError:
            return None


def _not_sent(refusal: DaktelaAuthError) -> DaktelaAuthError:
    """The error of a write skipped because an earlier one of the run had its token refused."""
    return DaktelaAuthError(
        f"not sent: Daktela refused the access token earlier in this run ({refusal})",
        instance=refusal.instance,
        method=refusal.method,
        path=refusal.path,
        status=refusal.status,
    )


def _refuses_field(exc: DaktelaValidationError, field: str) -> bool:
    """Whether Daktela's structured ``form`` errors name ``field`` (``customFields.<key>`` too).

    Used on a re-sent create only, where an error on the lookup field means "taken" (the
    message text is localised, so it is never matched).
    """
    form: Any = exc.form
    for part in field.split("."):
        if not isinstance(form, dict) or part not in form:
            return False
        form = form[part]
    return bool(form)


def _constant(filters: list[Filter]) -> Callable[[], list[Filter]]:
    return lambda: filters


def _after(key_field: str | None, last: tuple[Any, Any]) -> Filter:
    """The keyset condition "strictly after (key, name)"."""
    last_key, last_name = last
    if key_field is None:
        return F("name", "gt", str(last_name))
    return Or(
        F(key_field, "gt", last_key),
        And(F(key_field, "eq", last_key), F("name", "gt", str(last_name))),
    )


def _lookup_value(body: dict[str, Any], field: str) -> str | None:
    """The value a create can be found by: ``name``, a top-level field or ``customFields.<key>``."""
    if field.startswith("customFields."):
        custom = body.get("customFields")
        value: Any = custom.get(field.split(".", 1)[1]) if isinstance(custom, dict) else None
    else:
        value = body.get(field)
    if isinstance(value, (list, tuple)):
        value = next((v for v in value if v not in (None, "")), None)
    if isinstance(value, dict):
        value = value.get("name")
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    return text or None


def _with_fields(fields: Sequence[str] | None, required: Sequence[str]) -> list[str] | None:
    if not fields:
        return None
    out = list(fields)
    out.extend(f for f in required if f not in out)
    return out


def _unique_non_empty(values: Iterable[Any]) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    for value in values:
        if value is None:
            continue
        text = str(value).strip()
        if text and text not in seen:
            seen.add(text)
            out.append(text)
    return out


def _matched_values(
    record: dict[str, Any], field: str, wanted: list[str], by_folded: dict[str, list[str]]
) -> list[str]:
    """Which requested values this record matched: exact first, else case-insensitively."""
    if field.startswith("customFields."):
        raw = record.get("customFields", {}).get(field.split(".", 1)[1], [])
    else:
        raw = record.get(field)
    candidates = raw if isinstance(raw, list) else [raw]
    wanted_set = set(wanted)
    keys: list[str] = []
    for candidate in candidates:
        if candidate is None:
            continue
        text = str(candidate).strip()
        matched = [text] if text in wanted_set else by_folded.get(text.casefold(), [])
        keys.extend(k for k in matched if k not in keys)
    return keys
