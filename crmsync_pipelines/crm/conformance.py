"""The CRM adapter conformance kit: point it at an adapter, get a pytest verdict on the contract.

Modelled on Airbyte's connector acceptance tests: the adapter author does not write tests for
the contract, they inherit them::

    import pytest
    from crmsync_pipelines.crm.conformance import CrmAdapterConformance

    class TestMyAdapter(CrmAdapterConformance):
        supports_activities = True            # False: activity calls must raise NotSupportedError
        activity_lookup_field = "external_id"

        @pytest.fixture
        def adapter(self, tmp_path):          # a fresh adapter over an EMPTY store
            ...

        @pytest.fixture
        def seed(self, adapter):              # puts records into the store at chosen modified times
            return MySeeder(...)              # add_account(record, modified) -> id, add_contact(...)
                                              # optional: add_account_raw(record, raw_modified) -> id,
                                              # add_contact_raw(...) for the modified-time layout check

        @pytest.fixture
        def broken_adapter(self, tmp_path):   # optional: an adapter that cannot reach its CRM
            ...

Every check is one test method with an assertion message that says which rule was broken.
The records the kit seeds come from ``make_account`` / ``make_contact`` / ``make_activity``;
override them (and the ``*_field`` class attributes) when your CRM uses other field names.

Failures are always ``AssertionError``s raised by the kit (adapter exceptions are wrapped),
so a broken adapter reads as "this rule is broken", not as a crash.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from functools import partial
from typing import Any, ClassVar, Protocol

import pytest

from crmsync_pipelines.crm.base import CrmAdapter, Record
from crmsync_pipelines.errors import NotSupportedError

#: Lazy iterators that are only a thin wrapper over a fully built list or tuple.
_EAGER_ITERATOR_TYPES: tuple[type, ...] = (type(iter([])), type(iter(())))
_MISSING_IDS = ("crmsync-conformance-missing-id", "987654321")


class Seeder(Protocol):
    """Writes records straight into the adapter's backing store (contacts and accounts are read-only)."""

    def add_account(self, record: Mapping[str, Any], modified: datetime) -> str:
        """Store one account with this modified time; return its id as the adapter reports it."""
        ...

    def add_contact(self, record: Mapping[str, Any], modified: datetime) -> str:
        """Store one contact with this modified time; return its id as the adapter reports it."""
        ...


class CustomSeeder(Seeder, Protocol):
    """Optionally also stores records of a custom source (``sync.custom_entities[].source``).

    With it, and ``custom_source`` set on the test class, the kit checks ``iter_custom`` and
    ``get_custom`` like ``iter_contacts`` and ``get_contacts``.
    """

    def add_custom(self, source: str, record: Mapping[str, Any], modified: datetime) -> str:
        """Store one record of ``source`` with this modified time; return its id as the adapter reports it."""
        ...


class RawModifiedSeeder(Seeder, Protocol):
    """Optionally also stores a *raw* modified value, exactly as the CRM would hold it.

    With it the kit checks that every layout in ``modified_time_samples`` lands in its window
    and that a value naming no instant is never dropped (see
    ``test_unusual_and_unreadable_modified_times_are_not_dropped``).
    """

    def add_account_raw(self, record: Mapping[str, Any], raw_modified: Any) -> str:
        """Store one account whose modified field holds ``raw_modified`` as is; return its id."""
        ...

    def add_contact_raw(self, record: Mapping[str, Any], raw_modified: Any) -> str:
        """Store one contact whose modified field holds ``raw_modified`` as is; return its id."""
        ...


@dataclass(frozen=True)
class _EntityApi:
    """The account or contact half of an adapter, so each check is written once for both."""

    name: str
    iterate: Callable[..., Iterator[Record]]
    get: Callable[[str], Record | None]
    get_many: Callable[[list[str]], dict[str, Record]]
    find_by: Callable[[str, Any], Record | None]
    search: Callable[[str], Iterator[Record]]
    add: Callable[[Mapping[str, Any], datetime], str]
    make: Callable[[int], dict[str, Any]]
    find_field: str
    search_field: str


def _call(description: str, operation: Callable[[], Any]) -> Any:
    """Run an adapter call; an unexpected exception becomes a kit failure naming the call."""
    try:
        return operation()
    except AssertionError:
        raise
    except Exception as exc:
        raise AssertionError(f"{description} raised {type(exc).__name__}: {exc}") from exc


def _expect_error(error: type[BaseException], description: str, operation: Callable[[], Any]) -> None:
    try:
        operation()
    except error:
        return
    except Exception as exc:
        raise AssertionError(f"{description} must raise {error.__name__}, it raised {exc!r}") from exc
    raise AssertionError(f"{description} must raise {error.__name__}, it returned normally")


def _drain(description: str, iterator: Iterator[Record], limit: int) -> list[Record]:
    """All records of an iteration, failing fast (not hanging) when it yields more than ``limit``."""
    records: list[Record] = []
    try:
        for record in iterator:
            records.append(record)
            assert len(records) <= limit, (
                f"{description} yielded more than the {limit} records in the store: it repeats records or never ends"
            )
    except AssertionError:
        raise
    except Exception as exc:
        raise AssertionError(f"{description} raised {type(exc).__name__} while iterating: {exc}") from exc
    return records


def _ids(description: str, records: list[Record]) -> list[str]:
    ids: list[str] = []
    for record in records:
        assert isinstance(record, dict), f"{description} must yield dicts, got {type(record).__name__}"
        record_id = record.get("id")
        assert isinstance(record_id, str) and record_id.strip(), (
            f"{description} yielded a record whose id is {record_id!r}; ids must be non-empty strings"
        )
        ids.append(record_id)
    return ids


class CrmAdapterConformance:
    """Inherit from this in a ``Test*`` class and provide the ``adapter`` and ``seed`` fixtures."""

    #: False for CRMs that cannot store activities: every activity call must raise NotSupportedError.
    supports_activities: ClassVar[bool] = True
    #: The activity field holding the Daktela activity name (the idempotency key).
    activity_lookup_field: ClassVar[str] = "external_id"
    #: The activity field the update checks change.
    activity_update_field: ClassVar[str] = "subject"
    #: Fields of ``make_account`` / ``make_contact`` records with a unique value per record.
    account_find_field: ClassVar[str] = "email"
    contact_find_field: ClassVar[str] = "email"
    #: Fields whose value ``search_*`` must find.
    account_search_field: ClassVar[str] = "name"
    contact_search_field: ClassVar[str] = "last_name"
    #: A custom source the adapter reads (``iter_custom`` / ``get_custom``) with a seeder that has
    #: ``add_custom`` (``CustomSeeder``); ``None``: the custom-entity checks are skipped, except
    #: that an adapter keeping the base class's ``iter_custom`` must raise ``NotSupportedError``.
    custom_source: ClassVar[str | None] = None
    #: Records seeded for the "each record exactly once" check.
    iteration_size: ClassVar[int] = 7
    #: Where on the time line seeded records go (whole seconds: many CRMs store no more).
    base_time: ClassVar[datetime] = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    #: Raw modified values a ``RawModifiedSeeder`` stores, each with the instant it names, or
    #: ``None`` when it names none. Override with the layouts your CRM really holds; naive ones
    #: are read in the adapter's configured zone (UTC for the SQL adapter's default).
    modified_time_samples: ClassVar[tuple[tuple[Any, datetime | None], ...]] = (
        ("2026-03-01T13:00:00+0100", datetime(2026, 3, 1, 12, 0, tzinfo=UTC)),  # PHP DATE_ISO8601
        ("2026-03-01T15:00:00+01", datetime(2026, 3, 1, 14, 0, tzinfo=UTC)),
        ("2026-03-01 15:30:00Z", datetime(2026, 3, 1, 15, 30, tzinfo=UTC)),
        ("2026-03-01T11:00:00-05:00", datetime(2026, 3, 1, 16, 0, tzinfo=UTC)),
        ("01.03.2026 17:15", datetime(2026, 3, 1, 17, 15, tzinfo=UTC)),  # d.m.Y H:i, naive
        ("1772388000", datetime(2026, 3, 1, 18, 0, tzinfo=UTC)),  # epoch seconds as text
        (1772391600000, datetime(2026, 3, 1, 19, 0, tzinfo=UTC)),  # epoch milliseconds
        ("not a date", None),
        ("", None),
        ("2026-02-30T10:00:00Z", None),  # no such day: never rolled over to March
    )

    # -- what the author provides -------------------------------------------------------------
    @pytest.fixture
    def adapter(self) -> CrmAdapter:
        raise AssertionError("override the `adapter` fixture: return a fresh adapter over an empty store")

    @pytest.fixture
    def seed(self) -> Seeder:
        raise AssertionError("override the `seed` fixture: return an object with add_account/add_contact")

    @pytest.fixture
    def broken_adapter(self) -> CrmAdapter | None:
        """Optionally an adapter that cannot reach its CRM (wrong path, refused credentials)."""
        return None

    @pytest.fixture(params=["account", "contact"])
    def entity(self, request: pytest.FixtureRequest) -> str:
        return str(request.param)

    def make_account(self, index: int) -> dict[str, Any]:
        """An account record the seeder accepts; field values must be unique per ``index``."""
        return {"name": f"Conformance Account {index}", "email": f"account{index}@conformance.example"}

    def make_contact(self, index: int) -> dict[str, Any]:
        """A contact record the seeder accepts; field values must be unique per ``index``."""
        return {
            "first_name": "Conformance",
            "last_name": f"Contact{index}",
            "email": f"contact{index}@conformance.example",
        }

    def make_custom(self, index: int) -> dict[str, Any]:
        """A record of ``custom_source`` the seeder accepts; field values must be unique per ``index``."""
        return self.make_contact(index)

    def make_activity(self, external_id: str) -> dict[str, Any]:
        """An activity record ``create_activity`` / ``upsert_activity`` accept."""
        return {self.activity_lookup_field: external_id, "type": "call", self.activity_update_field: "first"}

    def make_invalid_activity(self) -> dict[str, Any]:
        """An activity the adapter must reject: by default one without its lookup value."""
        record = self.make_activity("unused")
        record.pop(self.activity_lookup_field, None)
        return record

    # -- helpers ------------------------------------------------------------------------------
    def _api(self, adapter: CrmAdapter, seed: Seeder, entity: str) -> _EntityApi:
        if entity == "account":
            return _EntityApi(
                "account",
                adapter.iter_accounts,
                adapter.get_account,
                adapter.get_accounts,
                adapter.find_account_by,
                adapter.search_accounts,
                seed.add_account,
                self.make_account,
                self.account_find_field,
                self.account_search_field,
            )
        return _EntityApi(
            "contact",
            adapter.iter_contacts,
            adapter.get_contact,
            adapter.get_contacts,
            adapter.find_contact_by,
            adapter.search_contacts,
            seed.add_contact,
            self.make_contact,
            self.contact_find_field,
            self.contact_search_field,
        )

    def _seed(self, api: _EntityApi, index: int, modified: datetime) -> str:
        record_id = api.add(api.make(index), modified)
        assert isinstance(record_id, str) and record_id, (
            f"the seeder's add_{api.name} must return the new record's id as a string, got {record_id!r}"
        )
        return record_id

    def _seed_timeline(self, api: _EntityApi, count: int = 3) -> tuple[list[str], list[datetime]]:
        times = [self.base_time + timedelta(hours=i) for i in range(count)]
        return [self._seed(api, i, t) for i, t in enumerate(times)], times

    def _window(self, api: _EntityApi, since: datetime | None, until: datetime | None, limit: int) -> set[str]:
        description = f"iter_{api.name}s(since={since}, until={until})"
        records = _drain(description, _call(description, lambda: api.iterate(since, until)), limit)
        ids = _ids(description, records)
        assert len(ids) == len(set(ids)), f"{description} yielded ids more than once: {sorted(ids)}"
        return set(ids)

    def _custom_api(self, adapter: CrmAdapter, seed: Seeder) -> _EntityApi:
        """The custom source as an entity the window checks understand; skips when unsupported."""
        source = self.custom_source
        if source is None:
            pytest.skip("no custom_source declared (custom entities unsupported or not configured)")
        add = getattr(seed, "add_custom", None)
        if add is None:
            pytest.skip("the seeder has no add_custom(source, record, modified) (CustomSeeder)")

        def get_one(record_id: str) -> Record | None:
            return adapter.get_custom(source, [record_id]).get(record_id)

        def not_used(*_: Any) -> Any:
            raise AssertionError("not a custom-source operation")

        return _EntityApi(
            f"custom({source!r})",
            partial(adapter.iter_custom, source),
            get_one,
            partial(adapter.get_custom, source),
            not_used,
            not_used,
            partial(add, source),
            self.make_custom,
            "",
            "",
        )

    def _require_activities(self) -> None:
        if not self.supports_activities:
            pytest.skip("adapter declares supports_activities = False")

    def _ext(self) -> str:
        return f"conformance_{uuid.uuid4().hex[:12]}"

    # -- health -------------------------------------------------------------------------------
    def test_ping_is_true_for_a_working_adapter(self, adapter: CrmAdapter) -> None:
        result = _call("ping()", adapter.ping)
        assert result is True, f"ping() of a working adapter must return True, got {result!r}"

    def test_ping_is_honest_for_a_broken_adapter(self, broken_adapter: CrmAdapter | None) -> None:
        if broken_adapter is None:
            pytest.skip("no broken_adapter fixture provided")
        try:
            result = broken_adapter.ping()
        except Exception as exc:
            assert str(exc).strip(), f"ping() of a broken adapter raised {type(exc).__name__} without a message"
            return
        assert result is False, f"ping() of an adapter that cannot reach its CRM must be False, got {result!r}"

    # -- custom sources ---------------------------------------------------------------------------
    def test_custom_defaults_raise_not_supported(self, adapter: CrmAdapter) -> None:
        if self.custom_source is not None or type(adapter).iter_custom is not CrmAdapter.iter_custom:
            pytest.skip("the adapter implements iter_custom")
        _expect_error(NotSupportedError, "iter_custom() of an adapter without custom sources",
                      lambda: list(adapter.iter_custom("conformance")))
        _expect_error(NotSupportedError, "get_custom() of an adapter without custom sources",
                      lambda: adapter.get_custom("conformance", ["1"]))

    def test_custom_window_and_get_by_ids(self, adapter: CrmAdapter, seed: Seeder) -> None:
        api = self._custom_api(adapter, seed)
        ids, times = self._seed_timeline(api)
        everything = self._window(api, None, None, 3)
        assert everything == set(ids), (
            f"iter_custom() must yield every seeded id once: {sorted(ids)}, got {sorted(everything)}"
        )
        got = self._window(api, times[0], times[2], 3)
        assert got == {ids[0], ids[1]}, (
            f"iter_custom over [{times[0]}, {times[2]}) (since inclusive, until exclusive) must hold exactly "
            f"{sorted(ids[:2])}, got {sorted(got)}"
        )
        description = "get_custom(source, ids)"
        found = _call(description, lambda: api.get_many([ids[1], _MISSING_IDS[0]]))
        assert isinstance(found, dict) and set(found) == {ids[1]}, (
            f"{description} must return a dict keyed by the ids that exist (missing ones absent), got {found!r}"
        )
        record = found[ids[1]]
        assert isinstance(record, dict) and record.get("id") == ids[1], (
            f"{description} must return records whose string 'id' is the requested id, got {record!r}"
        )
        json.dumps(record)

    # -- iteration ------------------------------------------------------------------------------
    def test_iteration_is_lazy(self, adapter: CrmAdapter, seed: Seeder, entity: str) -> None:
        api = self._api(adapter, seed, entity)
        self._seed(api, 0, self.base_time)
        result = _call(f"iter_{entity}s()", lambda: api.iterate(None, None))
        assert isinstance(result, Iterator), (
            f"iter_{entity}s() must return an iterator (a generator), got {type(result).__name__}"
        )
        assert not isinstance(result, _EAGER_ITERATOR_TYPES), (
            f"iter_{entity}s() returned an iterator over a prebuilt {type(result).__name__}: "
            "it loads every record into memory; yield records as they are read"
        )
        _drain(f"iter_{entity}s()", result, 1)

    def test_iteration_yields_each_record_exactly_once(self, adapter: CrmAdapter, seed: Seeder, entity: str) -> None:
        api = self._api(adapter, seed, entity)
        seeded = [self._seed(api, i, self.base_time + timedelta(minutes=i % 3)) for i in range(self.iteration_size)]
        description = f"iter_{entity}s()"
        records = _drain(description, _call(description, lambda: api.iterate(None, None)), len(seeded))
        counts = Counter(_ids(description, records))
        repeated = sorted(i for i, n in counts.items() if n > 1)
        assert not repeated, f"{description} yielded these ids more than once: {repeated}"
        missing = sorted(set(seeded) - set(counts))
        assert not missing, f"{description} never yielded these seeded ids: {missing}"
        extra = sorted(set(counts) - set(seeded))
        assert not extra, f"{description} yielded ids that were never seeded: {extra} (is the store empty?)"

    def test_window_since_is_inclusive(self, adapter: CrmAdapter, seed: Seeder, entity: str) -> None:
        api = self._api(adapter, seed, entity)
        ids, times = self._seed_timeline(api)
        got = self._window(api, times[1], None, 3)
        assert got == {ids[1], ids[2]}, (
            f"since={times[1]} must include the record modified exactly at since and later ones: "
            f"expected {sorted([ids[1], ids[2]])}, got {sorted(got)}"
        )

    def test_window_until_is_exclusive(self, adapter: CrmAdapter, seed: Seeder, entity: str) -> None:
        api = self._api(adapter, seed, entity)
        ids, times = self._seed_timeline(api)
        got = self._window(api, None, times[1], 3)
        assert got == {ids[0]}, (
            f"until={times[1]} must exclude the record modified exactly at until and later ones: "
            f"expected {[ids[0]]}, got {sorted(got)}"
        )

    def test_window_with_both_bounds(self, adapter: CrmAdapter, seed: Seeder, entity: str) -> None:
        api = self._api(adapter, seed, entity)
        ids, times = self._seed_timeline(api)
        got = self._window(api, times[0], times[2], 3)
        assert got == {ids[0], ids[1]}, (
            f"[{times[0]}, {times[2]}) must hold exactly {sorted(ids[:2])}, got {sorted(got)}"
        )
        empty = self._window(api, times[1], times[1], 3)
        assert empty == set(), f"the empty window [{times[1]}, {times[1]}) must yield nothing, got {sorted(empty)}"

    def test_window_bounds_in_other_time_zones(self, adapter: CrmAdapter, seed: Seeder, entity: str) -> None:
        api = self._api(adapter, seed, entity)
        ids, times = self._seed_timeline(api)
        plus_two = timezone(timedelta(hours=2), "UTC+2")
        got = self._window(api, times[1].astimezone(plus_two), times[2].astimezone(plus_two), 3)
        assert got == {ids[1]}, (
            "bounds are instants: the same window given in UTC+2 must select the same records "
            f"(expected {[ids[1]]}, got {sorted(got)})"
        )

    def test_open_ended_windows(self, adapter: CrmAdapter, seed: Seeder, entity: str) -> None:
        api = self._api(adapter, seed, entity)
        ids, times = self._seed_timeline(api)
        everything = set(ids)
        assert self._window(api, None, None, 3) == everything, "(None, None) must yield every record"
        assert self._window(api, times[0] - timedelta(days=1), None, 3) == everything, (
            "since before every record with an open end must yield every record"
        )
        assert self._window(api, None, times[2] + timedelta(seconds=1), 3) == everything, (
            "until after every record with an open start must yield every record"
        )

    def test_naive_window_bounds_are_rejected(self, adapter: CrmAdapter, seed: Seeder, entity: str) -> None:
        api = self._api(adapter, seed, entity)
        self._seed(api, 0, self.base_time)
        naive = self.base_time.replace(tzinfo=None)
        _expect_error(ValueError, f"iter_{entity}s(since=<naive>)", lambda: list(api.iterate(naive, None)))
        _expect_error(ValueError, f"iter_{entity}s(until=<naive>)", lambda: list(api.iterate(None, naive)))

    def test_unusual_and_unreadable_modified_times_are_not_dropped(
        self, adapter: CrmAdapter, seed: Seeder, entity: str
    ) -> None:
        """Every layout lands in the window of its instant; a value naming no instant is in every window.

        A record whose modified time cannot be read must not vanish from windowed syncs: it is
        yielded by every ``iter_*`` call with its id and a reason under ``RECORD_ERROR_KEY``, so
        the engine fails it visibly (``crmsync_pipelines.crm.base``).
        """
        add_raw = getattr(seed, f"add_{entity}_raw", None)
        if not callable(add_raw):
            pytest.skip(f"the seeder has no add_{entity}_raw(record, raw_modified) (RawModifiedSeeder)")
        api = self._api(adapter, seed, entity)
        seeded: list[tuple[str, Any, datetime | None]] = []
        for index, (raw, instant) in enumerate(self.modified_time_samples):
            record_id = add_raw(api.make(index), raw)
            assert isinstance(record_id, str) and record_id, (
                f"the seeder's add_{entity}_raw must return the new record's id as a string, got {record_id!r}"
            )
            seeded.append((record_id, raw, instant))
        limit = len(seeded)
        unreadable = {record_id for record_id, _, instant in seeded if instant is None}

        def window(since: datetime | None, until: datetime | None) -> dict[str, Record]:
            description = f"iter_{entity}s(since={since}, until={until})"
            records = _drain(description, _call(description, lambda: api.iterate(since, until)), limit)
            ids = _ids(description, records)
            assert len(ids) == len(set(ids)), f"{description} yielded ids more than once: {sorted(ids)}"
            return dict(zip(ids, records, strict=True))

        everything = window(None, None)
        missing = sorted({record_id for record_id, _, _ in seeded} - set(everything))
        assert not missing, f"iter_{entity}s() never yielded the records seeded with these ids: {missing}"
        far = self.base_time - timedelta(days=3650)
        for record_id, raw, instant in seeded:
            if instant is None:
                for since, until in ((None, None), (far, far + timedelta(seconds=1)), (self.base_time, None)):
                    got = window(since, until)
                    assert record_id in got, (
                        f"the {entity} whose modified time is {raw!r} (no instant) is missing from "
                        f"iter_{entity}s(since={since}, until={until}): a row whose time cannot be read must "
                        "be yielded in every window with a reason under '_error', never dropped"
                    )
                    assert got[record_id].get("_error"), (
                        f"the {entity} whose modified time is {raw!r} was yielded without a reason under '_error'"
                    )
                continue
            got = window(instant, instant + timedelta(seconds=1))
            assert record_id in got, (
                f"the {entity} modified at {raw!r} ({instant.isoformat()}) is missing from the window "
                f"[{instant.isoformat()}, +1s): its modified time was misread or not read"
            )
            assert not got[record_id].get("_error"), f"the {entity} modified at {raw!r} was marked unreadable"
            assert set(got) - unreadable == {record_id}, (
                f"the window [{instant.isoformat()}, +1s) must hold only the {entity} modified at {raw!r} "
                f"(and unreadable ones), got {sorted(got)}"
            )

    # -- records -------------------------------------------------------------------------------
    def test_records_are_json_dicts_with_string_ids(self, adapter: CrmAdapter, seed: Seeder, entity: str) -> None:
        api = self._api(adapter, seed, entity)
        ids, _ = self._seed_timeline(api, 2)
        description = f"iter_{entity}s()"
        records = _drain(description, _call(description, lambda: api.iterate(None, None)), 2)
        fetched = [_call(f"get_{entity}({i!r})", partial(api.get, i)) for i in ids]
        for record in [*records, *fetched]:
            _ids(description, [record])
            try:
                json.dumps(record)
            except (TypeError, ValueError) as exc:
                raise AssertionError(f"{entity} record {record.get('id')!r} is not JSON-serialisable: {exc}") from exc

    # -- lookups -------------------------------------------------------------------------------
    def test_get_of_a_missing_id_returns_none(self, adapter: CrmAdapter, seed: Seeder, entity: str) -> None:
        api = self._api(adapter, seed, entity)
        self._seed(api, 0, self.base_time)
        for missing in _MISSING_IDS:
            result = _call(f"get_{entity}({missing!r}) of a missing id", partial(api.get, missing))
            assert result is None, f"get_{entity}({missing!r}) of a missing id must return None, got {result!r}"

    def test_get_returns_the_record(self, adapter: CrmAdapter, seed: Seeder, entity: str) -> None:
        api = self._api(adapter, seed, entity)
        ids, _ = self._seed_timeline(api, 2)
        record_id = ids[1]
        record = _call(f"get_{entity}({record_id!r})", lambda: api.get(record_id))
        assert isinstance(record, dict), f"get_{entity}({record_id!r}) must return the record, got {record!r}"
        assert record.get("id") == record_id, f"get_{entity}({record_id!r}) returned id {record.get('id')!r}"

    def test_find_by_an_empty_value_raises_value_error(self, adapter: CrmAdapter, seed: Seeder, entity: str) -> None:
        api = self._api(adapter, seed, entity)
        self._seed(api, 0, self.base_time)
        for empty in (None, "", "   "):
            _expect_error(
                ValueError,
                f"find_{entity}_by({api.find_field!r}, {empty!r})",
                partial(api.find_by, api.find_field, empty),
            )

    def test_find_by_finds_and_misses(self, adapter: CrmAdapter, seed: Seeder, entity: str) -> None:
        api = self._api(adapter, seed, entity)
        self._seed(api, 0, self.base_time)
        wanted = self._seed(api, 1, self.base_time)
        value = api.make(1)[api.find_field]
        found = _call(f"find_{entity}_by", lambda: api.find_by(api.find_field, value))
        assert isinstance(found, dict) and found.get("id") == wanted, (
            f"find_{entity}_by({api.find_field!r}, {value!r}) must return record {wanted!r}, got {found!r}"
        )
        absent = _call(f"find_{entity}_by", lambda: api.find_by(api.find_field, "no-such-value@conformance.example"))
        assert absent is None, f"find_{entity}_by of a value no record has must return None, got {absent!r}"

    def test_search_finds_the_record(self, adapter: CrmAdapter, seed: Seeder, entity: str) -> None:
        api = self._api(adapter, seed, entity)
        self._seed(api, 0, self.base_time)
        wanted = self._seed(api, 1, self.base_time)
        query = str(api.make(1)[api.search_field])
        description = f"search_{entity}s({query!r})"
        results = _drain(description, _call(description, lambda: api.search(query)), 2)
        assert wanted in _ids(description, results), f"{description} must find record {wanted!r}"

    def test_batch_get_agrees_with_single_get(self, adapter: CrmAdapter, seed: Seeder, entity: str) -> None:
        api = self._api(adapter, seed, entity)
        ids, _ = self._seed_timeline(api, 2)
        batch = _call(f"get_{entity}s", lambda: api.get_many([*ids, _MISSING_IDS[0]]))
        single = {i: api.get(i) for i in ids}
        assert batch == single, (
            f"get_{entity}s(ids) must equal {{id: get_{entity}(id)}} for existing ids and leave out missing ones; "
            f"got keys {sorted(batch)}"
        )

    # -- activities ---------------------------------------------------------------------------
    def test_activity_calls_raise_not_supported_when_unsupported(self, adapter: CrmAdapter) -> None:
        if self.supports_activities:
            pytest.skip("adapter supports activities")
        field = self.activity_lookup_field
        record = self.make_activity(self._ext())
        calls: dict[str, Callable[[], Any]] = {
            "find_activity_by": lambda: adapter.find_activity_by(field, "x"),
            "create_activity": lambda: adapter.create_activity(record),
            "update_activity": lambda: adapter.update_activity("1", record),
            "upsert_activity": lambda: adapter.upsert_activity(field, record),
            "find_activities_by_external_ids": lambda: adapter.find_activities_by_external_ids(field, ["x"]),
        }
        for name, call in calls.items():
            _expect_error(NotSupportedError, f"{name} on an adapter without activities", call)

    def test_upsert_activity_twice_keeps_one_record(self, adapter: CrmAdapter) -> None:
        self._require_activities()
        field, changed = self.activity_lookup_field, self.activity_update_field
        external_id = self._ext()
        first = _call("upsert_activity", lambda: adapter.upsert_activity(field, self.make_activity(external_id)))
        _ids("upsert_activity", [first])
        second_record = {**self.make_activity(external_id), changed: "second"}
        second = _call("second upsert_activity", lambda: adapter.upsert_activity(field, second_record))
        assert second.get("id") == first["id"], (
            f"upserting {field}={external_id!r} twice created a second record "
            f"(ids {first['id']!r} and {second.get('id')!r}); it must update the first"
        )
        stored = _call("find_activity_by", lambda: adapter.find_activity_by(field, external_id))
        assert stored is not None and stored.get(changed) == "second", (
            f"after the second upsert, {changed!r} must be 'second', got {stored!r}"
        )
        batch = _call(
            "find_activities_by_external_ids",
            lambda: adapter.find_activities_by_external_ids(field, [external_id]),
        )
        assert list(batch) == [external_id] and batch[external_id].get("id") == first["id"], (
            f"exactly one activity must exist for {external_id!r}, got {batch!r}"
        )

    def test_find_activity_by(self, adapter: CrmAdapter) -> None:
        self._require_activities()
        field = self.activity_lookup_field
        external_id = self._ext()
        created = _call("upsert_activity", lambda: adapter.upsert_activity(field, self.make_activity(external_id)))
        found = _call("find_activity_by", lambda: adapter.find_activity_by(field, external_id))
        assert isinstance(found, dict) and found.get("id") == created.get("id"), (
            f"find_activity_by({field!r}, {external_id!r}) must return the upserted record, got {found!r}"
        )
        missing = _call("find_activity_by", lambda: adapter.find_activity_by(field, self._ext()))
        assert missing is None, f"find_activity_by of an unknown external id must return None, got {missing!r}"
        for empty in (None, "", "  "):
            _expect_error(
                ValueError,
                f"find_activity_by({field!r}, {empty!r})",
                partial(adapter.find_activity_by, field, empty),
            )

    def test_create_and_update_activity_round_trip(self, adapter: CrmAdapter) -> None:
        self._require_activities()
        field, changed = self.activity_lookup_field, self.activity_update_field
        external_id = self._ext()
        created = _call("create_activity", lambda: adapter.create_activity(self.make_activity(external_id)))
        [activity_id] = _ids("create_activity", [created])
        update = {**self.make_activity(external_id), changed: "updated"}
        updated = _call("update_activity", lambda: adapter.update_activity(activity_id, update))
        assert updated.get("id") == activity_id, (
            f"update_activity({activity_id!r}) must return the same record, got id {updated.get('id')!r}"
        )
        assert updated.get(changed) == "updated", f"update_activity must return the stored change, got {updated!r}"
        stored = _call("find_activity_by", lambda: adapter.find_activity_by(field, external_id))
        assert stored is not None and stored.get("id") == activity_id and stored.get(changed) == "updated", (
            f"the update must be stored: find_activity_by returned {stored!r}"
        )

    def test_batch_activity_hooks_agree_with_single_calls(self, adapter: CrmAdapter) -> None:
        self._require_activities()
        field = self.activity_lookup_field
        first, second, third, missing = (self._ext() for _ in range(4))
        results = _call(
            "upsert_activities",
            lambda: adapter.upsert_activities(
                field, [self.make_activity(first), self.make_invalid_activity(), self.make_activity(second)]
            ),
        )
        assert len(results) == 3, f"upsert_activities must return one result per record, got {len(results)}"
        assert isinstance(results[1], BaseException), (
            f"an invalid activity must get its exception in its slot, got {results[1]!r}"
        )
        for slot in (0, 2):
            assert isinstance(results[slot], dict), (
                f"a valid activity next to an invalid one must still be stored, slot {slot} is {results[slot]!r}"
            )
        _call("upsert_activity", lambda: adapter.upsert_activity(field, self.make_activity(third)))
        batch = _call(
            "find_activities_by_external_ids",
            lambda: adapter.find_activities_by_external_ids(field, [first, second, third, missing]),
        )
        single = {e: adapter.find_activity_by(field, e) for e in (first, second, third)}
        assert set(batch) == {first, second, third}, (
            f"find_activities_by_external_ids must return the existing ones only, got keys {sorted(batch)}"
        )
        for external_id, record in single.items():
            assert record is not None and batch[external_id].get("id") == record.get("id"), (
                f"batch and single lookups disagree for {external_id!r}: {batch[external_id]!r} vs {record!r}"
            )
