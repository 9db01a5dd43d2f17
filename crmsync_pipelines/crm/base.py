"""The CRM adapter contract: the one piece of code our users write.

Records are plain ``dict``s with a string ``"id"``. Contacts and accounts are read-only
(the CRM is the source of truth for them); activities are written by the sync.

Time windows: ``iter_accounts(since, until)`` and ``iter_contacts(since, until)`` return the
records whose *modified time* ``t`` satisfies ``since <= t < until`` (``since`` inclusive,
``until`` exclusive; ``None`` leaves that end open). Both bounds are timezone-aware
``datetime``s. Each record must be yielded exactly once per call, and iteration must end.

Lookups (``get_*``, ``find_*_by``) return ``None`` for "not there" and raise for "could not
ask" (network, auth): the engine must never mistake an outage for a missing record.
``find_*_by`` with an empty value (``None``, ``""``, whitespace) raises ``ValueError``: an
empty lookup would match an arbitrary record.

Ids are returned exactly as the CRM stores them (``' padded '`` is not stripped): the engine
asks ``get_*`` for the same string when it retries a failed record.

No row is dropped and no bad row stops the iteration. A row the adapter can identify but not
read (its modified time names no instant, a column holds bytes that are not UTF-8, ...) is
yielded with its real ``"id"`` and a human-readable reason under ``RECORD_ERROR_KEY``
(``"_error"``) naming the field and the raw value; a row whose modified time cannot be read
belongs to no window, so it is yielded by *every* ``iter_*`` call (and by ``get_*``) until it
is fixed. A row the adapter cannot identify (its id column is NULL) is yielded with
``"id": None`` and a reason. The engine files each as a failed ``validation`` record, keyed by
its id, or for a record without one by a digest of its content, so it is visible and keeps one
dead letter instead of silently vanishing. A record without ``"id"`` *and* without a reason is
an adapter bug; the engine fails it with a message naming the adapter method.

Activities are idempotent by an external id (the Daktela activity name): ``upsert_activity``
called twice with the same ``record[lookup_field]`` leaves one record, updated by the second
call. A record the CRM rejects raises a typed ``AdapterError`` subclass (see
``crmsync_pipelines.errors``) so the engine can file it with the right error class.

``crmsync_pipelines.crm.conformance`` checks all of this against any adapter with pytest.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from crmsync_pipelines.errors import NotSupportedError

Record = dict[str, Any]

#: Key of the reason on a record the adapter yields but cannot identify (its ``"id"`` is ``None``).
RECORD_ERROR_KEY = "_error"



def window_bound(moment: datetime | None, name: str) -> datetime | None:
    """``moment`` checked as an ``iter_*`` window bound (see "Time windows" above), unchanged.

    Raises ``TypeError`` when it is neither ``None`` nor a ``datetime``, and ``ValueError`` when it
    is naive: a naive bound names no instant, so the window it would select is a guess.
    """
    if moment is None:
        return None
    if not isinstance(moment, datetime):
        raise TypeError(f"{name} must be a datetime or None, got {type(moment).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (got naive {moment.isoformat()})")
    return moment


def lookup_text(field: str, value: Any) -> str:
    """A ``find_*_by`` value as stripped text, for CRMs whose lookups compare text.

    Raises ``ValueError`` for an empty value (``None``, ``""``, whitespace: it would match an
    arbitrary record) and for one that is not a plain ``str``/``int``/``float`` (``bool``, lists,
    dicts have no single text form a CRM could be asked for).
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError(f"cannot look up by {field!r} with an empty value ({value!r})")
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ValueError(f"cannot look up by {field!r} with a {type(value).__name__} value")
    return str(value).strip()

class CrmAdapter(ABC):
    """Base class of every CRM adapter.

    Subclasses implement the abstract methods. The batch hooks (``find_activities_by_external_ids``,
    ``upsert_activities``, ``get_accounts``, ``get_contacts``) have working defaults built on the
    single-record methods; override them when the CRM has bulk endpoints.
    """

    #: Human-readable name used in logs and errors.
    name: str = "crm"

    # -- health ---------------------------------------------------------------------------
    @abstractmethod
    def ping(self) -> bool:
        """True when the CRM answers and the credentials work; False when it does not."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. Called once when the engine is done with the adapter."""

    # -- accounts (read-only) -------------------------------------------------------------
    @abstractmethod
    def iter_accounts(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[Record]:
        """Accounts modified in ``[since, until)``, each exactly once."""

    @abstractmethod
    def get_account(self, account_id: str) -> Record | None:
        """One account by CRM id, or ``None`` when it does not exist."""

    @abstractmethod
    def find_account_by(self, field: str, value: Any) -> Record | None:
        """The first account whose ``field`` equals ``value``. Empty values raise ``ValueError``."""

    @abstractmethod
    def search_accounts(self, query: str) -> Iterator[Record]:
        """Free-text search, for ``crmsync crm-inspect``."""

    # -- contacts (read-only) -------------------------------------------------------------
    @abstractmethod
    def iter_contacts(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[Record]:
        """Contacts modified in ``[since, until)``, each exactly once."""

    @abstractmethod
    def get_contact(self, contact_id: str) -> Record | None:
        """One contact by CRM id, or ``None`` when it does not exist."""

    @abstractmethod
    def find_contact_by(self, field: str, value: Any) -> Record | None:
        """The first contact whose ``field`` equals ``value``. Empty values raise ``ValueError``."""

    @abstractmethod
    def search_contacts(self, query: str) -> Iterator[Record]:
        """Free-text search, for ``crmsync crm-inspect``."""

    # -- activities (written by the sync) -------------------------------------------------
    @abstractmethod
    def find_activity_by(self, field: str, value: Any) -> Record | None:
        """The activity whose ``field`` equals ``value`` (usually the external-id field)."""

    @abstractmethod
    def create_activity(self, record: Record) -> Record:
        """Create an activity; returns the stored record including its CRM ``id``."""

    @abstractmethod
    def update_activity(self, activity_id: str, record: Record) -> Record:
        """Update an activity by CRM id; returns the stored record."""

    @abstractmethod
    def upsert_activity(self, lookup_field: str, record: Record) -> Record:
        """Create or update by ``record[lookup_field]``; calling it twice creates one record."""

    # -- custom entities (optional; ``sync.custom_entities``) ---------------------------------
    def iter_custom(self, source: str, since: datetime | None = None,
                    until: datetime | None = None) -> Iterator[Record]:
        """Records of the custom source ``source`` (an ERP table, a "partner" object, ...)
        modified in ``[since, until)``, each exactly once, under the same rules as
        ``iter_contacts`` (string ``"id"``, ``RECORD_ERROR_KEY`` for unreadable rows).

        ``source`` is the ``source`` of a ``sync.custom_entities`` entry; what it names is the
        adapter's business. The default raises ``NotSupportedError``: adapters without custom
        sources keep working, and a config that enables a custom entity for them fails its
        extract with that error.
        """
        raise NotSupportedError(f"{self.name} adapter does not support custom entities (source {source!r})")

    def get_custom(self, source: str, record_ids: Iterable[str]) -> dict[str, Record]:
        """Many records of the custom source by id (single-record sync, retries); missing ids
        are absent from the result. Default: ``NotSupportedError``, like ``iter_custom``."""
        raise NotSupportedError(f"{self.name} adapter does not support custom entities (source {source!r})")

    # -- batch hooks with defaults ----------------------------------------------------------
    def get_accounts(self, account_ids: Iterable[str]) -> dict[str, Record]:
        """Many accounts by id; missing ids are absent from the result."""
        found: dict[str, Record] = {}
        for account_id in account_ids:
            record = self.get_account(account_id)
            if record is not None:
                found[account_id] = record
        return found

    def get_contacts(self, contact_ids: Iterable[str]) -> dict[str, Record]:
        """Many contacts by id; missing ids are absent from the result."""
        found: dict[str, Record] = {}
        for contact_id in contact_ids:
            record = self.get_contact(contact_id)
            if record is not None:
                found[contact_id] = record
        return found

    def find_activities_by_external_ids(self, field: str, values: Iterable[str]) -> dict[str, Record]:
        """Activities keyed by their ``field`` value, for the ones that exist."""
        found: dict[str, Record] = {}
        for value in values:
            record = self.find_activity_by(field, value)
            if record is not None:
                found[value] = record
        return found

    def upsert_activities(self, lookup_field: str, records: Iterable[Record]) -> list[Record | BaseException]:
        """Upsert many activities; a failing record gets its exception in its slot, the rest go on."""
        results: list[Record | BaseException] = []
        for record in records:
            try:
                results.append(self.upsert_activity(lookup_field, record))
            except Exception as exc:  # one bad record must not stop the batch
                results.append(exc)
        return results


class ReadOnlyActivitiesMixin:
    """For CRMs (ERPs, e-shops) that cannot store activities: every activity call raises."""

    name: str = "crm"

    def _unsupported(self, operation: str) -> NotSupportedError:
        return NotSupportedError(f"{self.name} adapter does not support activity operations ({operation})")

    def find_activity_by(self, field: str, value: Any) -> Record | None:
        raise self._unsupported("find_activity_by")

    def create_activity(self, record: Record) -> Record:
        raise self._unsupported("create_activity")

    def update_activity(self, activity_id: str, record: Record) -> Record:
        raise self._unsupported("update_activity")

    def upsert_activity(self, lookup_field: str, record: Record) -> Record:
        raise self._unsupported("upsert_activity")

    def find_activities_by_external_ids(self, field: str, values: Iterable[str]) -> dict[str, Record]:
        raise self._unsupported("find_activities_by_external_ids")
