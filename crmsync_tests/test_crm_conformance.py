"""The conformance kit passes for SqlCrmAdapter, and each of its checks catches a real breakage.

Broken adapters are small subclasses of the real ``SqlCrmAdapter`` (and of an in-memory adapter
for the activity breakages a UNIQUE constraint would otherwise prevent), each breaking exactly
one rule; every check is run directly against them and must raise ``AssertionError``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from crmsync_pipelines.crm.base import CrmAdapter, ReadOnlyActivitiesMixin, Record
from crmsync_pipelines.crm.conformance import CrmAdapterConformance
from crmsync_pipelines.crm.demo_data import DemoCrmSeeder, create_demo_crm
from crmsync_pipelines.crm.sql import SqlCrmAdapter
from crmsync_pipelines.crm.sql_settings import SqlCrmSettings
from crmsync_tests.fixtures.crm import DEMO_NOW


def _fresh_store(tmp_path: Path) -> Path:
    return create_demo_crm(tmp_path / "conformance.sqlite", accounts=0, contacts=0, now=DEMO_NOW).path


class RawSeeder(DemoCrmSeeder):
    """The demo seeder plus the kit's optional ``RawModifiedSeeder`` methods (raw ``updated_at``)."""

    def add_account_raw(self, record: Mapping[str, Any], raw_modified: Any) -> str:
        return self._insert("accounts", {**record, self.modified_column: raw_modified}, None)

    def add_contact_raw(self, record: Mapping[str, Any], raw_modified: Any) -> str:
        return self._insert("contacts", {**record, self.modified_column: raw_modified}, None)


class TestSqlCrmAdapterConformance(CrmAdapterConformance):
    """The real adapter passes every check."""

    @pytest.fixture
    def adapter(self, tmp_path: Path) -> Iterator[CrmAdapter]:
        adapter = SqlCrmAdapter(SqlCrmSettings(path=str(_fresh_store(tmp_path))))
        yield adapter
        adapter.close()

    @pytest.fixture
    def seed(self, adapter: SqlCrmAdapter) -> DemoCrmSeeder:
        return RawSeeder(adapter.path)

    @pytest.fixture
    def broken_adapter(self, tmp_path: Path) -> Iterator[CrmAdapter]:
        adapter = SqlCrmAdapter(SqlCrmSettings(path=str(_fresh_store(tmp_path / "broken"))))
        adapter.path.unlink()
        (tmp_path / "broken" / "conformance.sqlite-wal").unlink(missing_ok=True)
        yield adapter
        adapter.close()


class ReadOnlySqlAdapter(ReadOnlyActivitiesMixin, SqlCrmAdapter):
    """A CRM that cannot store activities (e.g. an ERP)."""


class TestReadOnlyAdapterConformance(CrmAdapterConformance):
    supports_activities = False

    @pytest.fixture
    def adapter(self, tmp_path: Path) -> Iterator[CrmAdapter]:
        adapter = ReadOnlySqlAdapter(SqlCrmSettings(path=str(_fresh_store(tmp_path))))
        yield adapter
        adapter.close()

    @pytest.fixture
    def seed(self, adapter: SqlCrmAdapter) -> DemoCrmSeeder:
        return RawSeeder(adapter.path)


# -- broken adapters, one broken rule each --------------------------------------------------------
class RepeatsFirstRecord(SqlCrmAdapter):
    def iter_accounts(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[Record]:
        records = super().iter_accounts(since, until)
        first = next(records, None)
        if first is not None:
            yield first
            yield first
        yield from records

    iter_contacts = iter_accounts


class NeverEnds(SqlCrmAdapter):
    def iter_accounts(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[Record]:
        return itertools.cycle(super().iter_accounts(since, until))


class DropsARecord(SqlCrmAdapter):
    def iter_accounts(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[Record]:
        return itertools.islice(super().iter_accounts(since, until), 1, None)


class IgnoresUntil(SqlCrmAdapter):
    def iter_accounts(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[Record]:
        return super().iter_accounts(since, None)


class ExclusiveSince(SqlCrmAdapter):
    def iter_accounts(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[Record]:
        return super().iter_accounts(since + timedelta(seconds=1) if since else None, until)


class InclusiveUntil(SqlCrmAdapter):
    def iter_accounts(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[Record]:
        return super().iter_accounts(since, until + timedelta(seconds=1) if until else None)


class OpenStartMeansRecent(SqlCrmAdapter):
    """Treats a missing ``since`` as "the last 30 days", so a full sync misses old records."""

    def iter_accounts(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[Record]:
        return super().iter_accounts(since or DEMO_NOW - timedelta(days=30), until)


class ComparesWallClock(SqlCrmAdapter):
    """Drops the time zone of the bounds, as code that compares local wall-clock text does."""

    def iter_accounts(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[Record]:
        def wall(moment: datetime | None) -> datetime | None:
            return None if moment is None else moment.replace(tzinfo=DEMO_NOW.tzinfo)

        return super().iter_accounts(wall(since), wall(until))


class AcceptsNaiveBounds(SqlCrmAdapter):
    def iter_accounts(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[Record]:
        def aware(moment: datetime | None) -> datetime | None:
            if moment is not None and moment.tzinfo is None:
                return moment.replace(tzinfo=DEMO_NOW.tzinfo)
            return moment

        return super().iter_accounts(aware(since), aware(until))


class FiltersWithSqliteStrftime(SqlCrmAdapter):
    """The window as it was before issue 9: SQLite's ``strftime`` returns NULL for ``+0100``
    offsets, ``d.m.Y`` and epoch text, so those rows (and unreadable ones) fall out of every window."""

    def iter_accounts(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[Record]:
        table = self._accounts.table
        modified = "strftime('%Y-%m-%dT%H:%M:%f', updated_at)"
        conditions, params = [], []
        for bound, operator in ((since, ">="), (until, "<")):
            if bound is not None:
                conditions.append(f"{modified} {operator} strftime('%Y-%m-%dT%H:%M:%f', ?)")
                params.append(bound.astimezone(UTC).isoformat())
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        return self._stream(table, f"SELECT {table.select_list} FROM accounts{where} ORDER BY {modified}, id", params)


class DropsUnreadableRows(SqlCrmAdapter):
    def iter_accounts(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[Record]:
        return (r for r in super().iter_accounts(since, until) if not r.get("_error"))


class UnreadableOnlyInFullScans(SqlCrmAdapter):
    """Yields rows whose time cannot be read only when no window is given (a full sync)."""

    def iter_accounts(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[Record]:
        windowed = since is not None or until is not None
        return (r for r in super().iter_accounts(since, until) if not (windowed and r.get("_error")))


class ReturnsAList(SqlCrmAdapter):
    def iter_accounts(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[Record]:
        return iter(list(super().iter_accounts(since, until)))


class IntegerIds(SqlCrmAdapter):
    def iter_accounts(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[Record]:
        for record in super().iter_accounts(since, until):
            yield {**record, "id": int(record["id"])}


class NotJsonSerialisable(SqlCrmAdapter):
    def get_account(self, account_id: str) -> Record | None:
        record = super().get_account(account_id)
        return None if record is None else {**record, "loaded_at": DEMO_NOW}


class RaisesOnMissingGet(SqlCrmAdapter):
    def get_account(self, account_id: str) -> Record | None:
        record = super().get_account(account_id)
        if record is None:
            raise KeyError(account_id)
        return record


class WrongRecordFromGet(SqlCrmAdapter):
    def get_account(self, account_id: str) -> Record | None:
        return next(super().iter_accounts(), None)


class AcceptsEmptyFind(SqlCrmAdapter):
    def find_account_by(self, field: str, value: Any) -> Record | None:
        if value is None or not str(value).strip():
            return None
        return super().find_account_by(field, value)


class FindNeverFinds(SqlCrmAdapter):
    def find_account_by(self, field: str, value: Any) -> Record | None:
        super().find_account_by(field, value)
        return None


class SearchFindsNothing(SqlCrmAdapter):
    def search_accounts(self, query: str) -> Iterator[Record]:
        return iter(())


class BatchGetLosesRecords(SqlCrmAdapter):
    def get_accounts(self, account_ids: Iterable[str]) -> dict[str, Record]:
        return dict(itertools.islice(super().get_accounts(account_ids).items(), 1))


class PingAlwaysTrue(SqlCrmAdapter):
    def ping(self) -> bool:
        return True


class PingFalseWhenWorking(SqlCrmAdapter):
    def ping(self) -> bool:
        return False


class UpsertDuplicates(SqlCrmAdapter):
    """Creates on every upsert (the PHP SDK's W13), keyed by a suffixed external id so SQLite allows it."""

    def upsert_activity(self, lookup_field: str, record: Record) -> Record:
        existing = self.find_activity_by(lookup_field, record[lookup_field])
        suffix = "" if existing is None else "#dup"
        created = self.create_activity({**record, lookup_field: record[lookup_field] + suffix})
        return {**created, lookup_field: record[lookup_field]}


class UpsertIgnoresChanges(SqlCrmAdapter):
    def upsert_activity(self, lookup_field: str, record: Record) -> Record:
        existing = self.find_activity_by(lookup_field, record.get(lookup_field))
        return existing if existing is not None else super().upsert_activity(lookup_field, record)


class UpdateNotStored(SqlCrmAdapter):
    def update_activity(self, activity_id: str, record: Record) -> Record:
        stored = super().find_activity_by("id", activity_id)
        assert stored is not None
        return {**stored, **record, "id": activity_id}


class BatchUpsertAbortsOnBadRecord(SqlCrmAdapter):
    def upsert_activities(self, lookup_field: str, records: Iterable[Record]) -> list[Record | BaseException]:
        return [self.upsert_activity(lookup_field, r) for r in records]


class BatchFindMissesRecords(SqlCrmAdapter):
    def find_activities_by_external_ids(self, field: str, values: Iterable[str]) -> dict[str, Record]:
        return {}


class ActivitiesClaimedUnsupportedButWork(SqlCrmAdapter):
    """Declared read-only (supports_activities=False) but silently accepts activity writes."""


BROKEN_CASES: list[tuple[type[SqlCrmAdapter], str, str]] = [
    (RepeatsFirstRecord, "test_iteration_yields_each_record_exactly_once", "account"),
    (RepeatsFirstRecord, "test_iteration_yields_each_record_exactly_once", "contact"),
    (NeverEnds, "test_iteration_yields_each_record_exactly_once", "account"),
    (DropsARecord, "test_iteration_yields_each_record_exactly_once", "account"),
    (IgnoresUntil, "test_window_until_is_exclusive", "account"),
    (IgnoresUntil, "test_window_with_both_bounds", "account"),
    (ExclusiveSince, "test_window_since_is_inclusive", "account"),
    (InclusiveUntil, "test_window_until_is_exclusive", "account"),
    (OpenStartMeansRecent, "test_open_ended_windows", "account"),
    (ComparesWallClock, "test_window_bounds_in_other_time_zones", "account"),
    (AcceptsNaiveBounds, "test_naive_window_bounds_are_rejected", "account"),
    (ReturnsAList, "test_iteration_is_lazy", "account"),
    (FiltersWithSqliteStrftime, "test_unusual_and_unreadable_modified_times_are_not_dropped", "account"),
    (DropsUnreadableRows, "test_unusual_and_unreadable_modified_times_are_not_dropped", "account"),
    (UnreadableOnlyInFullScans, "test_unusual_and_unreadable_modified_times_are_not_dropped", "account"),
    (IntegerIds, "test_records_are_json_dicts_with_string_ids", "account"),
    (NotJsonSerialisable, "test_records_are_json_dicts_with_string_ids", "account"),
    (RaisesOnMissingGet, "test_get_of_a_missing_id_returns_none", "account"),
    (WrongRecordFromGet, "test_get_returns_the_record", "account"),
    (AcceptsEmptyFind, "test_find_by_an_empty_value_raises_value_error", "account"),
    (FindNeverFinds, "test_find_by_finds_and_misses", "account"),
    (SearchFindsNothing, "test_search_finds_the_record", "account"),
    (BatchGetLosesRecords, "test_batch_get_agrees_with_single_get", "account"),
]

ACTIVITY_CASES: list[tuple[type[SqlCrmAdapter], str]] = [
    (UpsertDuplicates, "test_upsert_activity_twice_keeps_one_record"),
    (UpsertIgnoresChanges, "test_upsert_activity_twice_keeps_one_record"),
    (UpdateNotStored, "test_create_and_update_activity_round_trip"),
    (BatchUpsertAbortsOnBadRecord, "test_batch_activity_hooks_agree_with_single_calls"),
    (BatchFindMissesRecords, "test_batch_activity_hooks_agree_with_single_calls"),
    (BatchFindMissesRecords, "test_upsert_activity_twice_keeps_one_record"),
]


def _build(adapter_class: type[SqlCrmAdapter], tmp_path: Path) -> SqlCrmAdapter:
    return adapter_class(SqlCrmSettings(path=str(_fresh_store(tmp_path))))


@pytest.mark.parametrize(
    ("adapter_class", "check", "entity"), BROKEN_CASES, ids=[f"{c.__name__}-{m}-{e}" for c, m, e in BROKEN_CASES]
)
def test_kit_catches_broken_entity_adapter(
    adapter_class: type[SqlCrmAdapter], check: str, entity: str, tmp_path: Path
) -> None:
    adapter = _build(adapter_class, tmp_path)
    try:
        with pytest.raises(AssertionError):
            getattr(CrmAdapterConformance(), check)(adapter, RawSeeder(adapter.path), entity)
    finally:
        adapter.close()


@pytest.mark.parametrize(
    ("adapter_class", "check"), ACTIVITY_CASES, ids=[f"{c.__name__}-{m}" for c, m in ACTIVITY_CASES]
)
def test_kit_catches_broken_activity_adapter(adapter_class: type[SqlCrmAdapter], check: str, tmp_path: Path) -> None:
    adapter = _build(adapter_class, tmp_path)
    try:
        with pytest.raises(AssertionError):
            getattr(CrmAdapterConformance(), check)(adapter)
    finally:
        adapter.close()


def test_kit_catches_dishonest_ping(tmp_path: Path) -> None:
    adapter = _build(PingAlwaysTrue, tmp_path)
    adapter.path.unlink()
    try:
        with pytest.raises(AssertionError, match="must be False"):
            CrmAdapterConformance().test_ping_is_honest_for_a_broken_adapter(adapter)
    finally:
        adapter.close()


def test_kit_catches_ping_false_for_a_working_adapter(tmp_path: Path) -> None:
    adapter = _build(PingFalseWhenWorking, tmp_path)
    try:
        with pytest.raises(AssertionError, match="must return True"):
            CrmAdapterConformance().test_ping_is_true_for_a_working_adapter(adapter)
    finally:
        adapter.close()


def test_kit_catches_activities_that_should_be_unsupported(tmp_path: Path) -> None:
    class DeclaredReadOnly(CrmAdapterConformance):
        supports_activities = False

    adapter = _build(ActivitiesClaimedUnsupportedButWork, tmp_path)
    try:
        with pytest.raises(AssertionError, match="must raise NotSupportedError"):
            DeclaredReadOnly().test_activity_calls_raise_not_supported_when_unsupported(adapter)
    finally:
        adapter.close()


def test_kit_reports_a_seeder_that_returns_no_id(tmp_path: Path) -> None:
    class SilentSeeder(DemoCrmSeeder):
        def add_account(self, record: Any, modified: datetime | None) -> str:
            super().add_account(record, modified)
            return None  # type: ignore[return-value]

    adapter = _build(SqlCrmAdapter, tmp_path)
    try:
        with pytest.raises(AssertionError, match="must return the new record's id"):
            CrmAdapterConformance().test_get_returns_the_record(adapter, SilentSeeder(adapter.path), "account")
    finally:
        adapter.close()


def test_every_kit_check_is_proven_to_fail() -> None:
    """Each check of the kit appears in at least one broken-adapter case above."""
    checks = {name for name in dir(CrmAdapterConformance) if name.startswith("test_")}
    proven = (
        {m for _, m, _ in BROKEN_CASES}
        | {m for _, m in ACTIVITY_CASES}
        | {
            "test_ping_is_honest_for_a_broken_adapter",
            "test_ping_is_true_for_a_working_adapter",
            "test_activity_calls_raise_not_supported_when_unsupported",
            "test_find_activity_by",
            # Proven in test_custom_entities.py (test_the_kit_catches_*).
            "test_custom_defaults_raise_not_supported",
            "test_custom_window_and_get_by_ids",
        }
    )
    assert checks - proven == set(), f"checks without a failing case: {sorted(checks - proven)}"


class FindActivityAcceptsEmpty(SqlCrmAdapter):
    def find_activity_by(self, field: str, value: Any) -> Record | None:
        if value is None or not str(value).strip():
            return None
        return super().find_activity_by(field, value)


def test_kit_catches_find_activity_accepting_empty_values(tmp_path: Path) -> None:
    adapter = _build(FindActivityAcceptsEmpty, tmp_path)
    try:
        with pytest.raises(AssertionError, match="must raise ValueError"):
            CrmAdapterConformance().test_find_activity_by(adapter)
    finally:
        adapter.close()
