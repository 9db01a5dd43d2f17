"""``RaynetAdapter``: Raynet CRM (REST API v2) as a crmsync CRM.

* Accounts are Raynet **companies**, contacts are Raynet **persons**; records keep Raynet's
  field names (``primaryAddress.contactInfo.email``, ``contactInfo.tel1``,
  ``primaryRelationship.company.id``), normalised by ``records`` (string ids, UTC dates).
* Windows ``[since, until)`` are read sorted by ``rowInfo.lastModifiedAt`` with a keyset
  cursor on that column plus a per-call set of seen ids: a record edited while we page
  moves to the end of the order (or out of a closed window) without shifting the pages
  behind it, and is never yielded twice. Bounds are widened by ``window_slack_s`` on the
  server and cut exactly here, so a server comparing at minute precision loses nothing.
* Activities are written as ``phoneCall`` / ``email`` / ``task`` (configurable), idempotent by
  the Raynet extId ``daktela:<activity name>``. Batch writes are **create-first**: the
  engine's ledger already knows which activities were written (``activity_lookup =
  "ledger"``), so a new activity costs exactly one ``PUT`` and a changed one one ``POST``;
  if a create meets an existing extId (a lost response, a wiped ledger) Raynet refuses the
  duplicate and the adapter updates that record instead.
* Linking: an activity with ``person`` set (the Daktela contact is ``crm_<person id>``) links
  to that person; otherwise ``link.phone`` / ``link.email`` are matched against an index
  of all persons built by one paged scan per run. Several candidates: left unlinked and
  counted as ambiguous, never guessed.
* The daily budget (24,000 requests per instance) is tracked from Raynet's headers; when it
  runs out the adapter raises ``QuotaExhaustedError`` (in the batch slots of the records
  it did not write) and the engine ends the run partial and resumable. ``usage()``
  reports requests used and budget left for the run metadata.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from crmsync_pipelines.crm.base import RECORD_ERROR_KEY, CrmAdapter, Record, lookup_text, window_bound
from crmsync_pipelines.crm.raynet.activities import (
    WRITE_ONLY_KEYS,
    PersonIndex,
    PhoneNormaliser,
    build_body,
    entity_for,
)
from crmsync_pipelines.crm.raynet.client import RaynetClient, RaynetValidationError
from crmsync_pipelines.crm.raynet.records import (
    MODIFIED_KEY,
    activity_record,
    entity_record,
    modified_at,
    raynet_iso,
    split_activity_id,
)
from crmsync_pipelines.crm.raynet.settings import RaynetSettings
from crmsync_pipelines.engine.paths import read_path
from crmsync_pipelines.errors import (
    AdapterError,
    AuthError,
    ConflictError,
    CrmsyncError,
    QuotaExhaustedError,
)

#: crmsync field (dotted Raynet path) -> Raynet list filter column (Raynet API v2 filter names:
#: ``-`` walks a reference, ``.`` names an embedded value).
FIND_COLUMNS: dict[str, dict[str, str]] = {
    "company": {
        "name": "name",
        "lastName": "lastName",
        "regNumber": "regNumber",
        "primaryAddress.contactInfo.email": "primaryAddress-contactInfo.email",
        "primaryAddress.contactInfo.email2": "primaryAddress-contactInfo.email2",
    },
    "person": {
        "firstName": "firstName",
        "lastName": "lastName",
        "contactInfo.email": "contactInfo.email",
        "contactInfo.email2": "contactInfo.email2",
        "primaryRelationship.company.id": "primaryRelationship-company-id",
        "primaryRelationship.company.name": "primaryRelationship-company-name",
    },
}
#: Phone fields have no Raynet filter: found by ``fulltext`` and compared here in E.164.
PHONE_FIELDS: dict[str, tuple[str, ...]] = {
    "company": ("primaryAddress.contactInfo.tel1", "primaryAddress.contactInfo.tel2"),
    "person": ("contactInfo.tel1", "contactInfo.tel2"),
}
LOOKUP_FIELD = "extId"
LOG = logging.getLogger("crmsync.crm.raynet")
#: Create fields a strict instance refuses ("nelze při vytvoření zadat"); then sent in an update.
_UPDATE_ONLY_ON_STRICT = ("status", "customFields")
#: Activity references to records that may have been deleted in Raynet since they were linked.
_LINK_REFERENCES = ("person", "company")
_FIND_LIMIT = 10


def _aware(moment: datetime | None, name: str) -> datetime | None:
    bound = window_bound(moment, name)
    return None if bound is None else bound.astimezone(UTC)


def _same(found: Any, wanted: str) -> bool:
    if found is None:
        return False
    return str(found).strip().casefold() == wanted.casefold()


class RaynetAdapter(CrmAdapter):
    """Raynet CRM over its REST API v2; see the module docstring for the guarantees."""

    name = "raynet"
    #: Engine hook: new vs. changed activities come from the ledger, not from CRM lookups.
    activity_lookup = "ledger"
    #: Engine hook: payload keys Raynet does not store (never compared with a read-back record).
    write_only_activity_fields = WRITE_ONLY_KEYS

    def __init__(
        self,
        settings: RaynetSettings,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.settings = settings
        kwargs: dict[str, Any] = {"transport": transport}
        if sleep is not None:
            kwargs["sleep"] = sleep
        if clock is not None:
            kwargs["clock"] = clock
        self.client = RaynetClient(settings, **kwargs)
        self._phones = PhoneNormaliser(settings.default_region)
        self._index: PersonIndex | None = None
        #: Set when the instance refused status / customFields in a create (see ``_create``).
        self._strict_insert = False
        self.link_stats: dict[str, int] = dict.fromkeys(
            ("links_by_contact", "links_by_phone", "links_by_email", "links_ambiguous", "links_none",
             "links_deleted"), 0
        )
        self.write_stats: dict[str, int] = dict.fromkeys(("created", "updated", "recovered_duplicates"), 0)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], base_dir: Path) -> RaynetAdapter:
        """Build from the raw ``crm:`` settings; every problem is a ``ConfigError`` naming ``crm.<key>``."""
        return cls(RaynetSettings.parse(settings))

    def close(self) -> None:
        self.client.close()

    # -- health and usage -------------------------------------------------------------------
    def ping(self) -> bool:
        """True when Raynet answers a one-record company list with these credentials."""
        try:
            self.client.request("GET", "company/", params={"limit": 1})
        except QuotaExhaustedError:
            raise
        except (AuthError, AdapterError):
            return False
        return True

    def usage(self) -> dict[str, Any]:
        """Requests this adapter sent, the daily budget left (from Raynet's headers), link outcomes."""
        budget = self.client.budget()
        figures: dict[str, Any] = {
            "requests_used": self.client.requests_sent,
            "budget_limit": budget.limit,
            "quota_exhausted": self.client.quota_exhausted,
            **self.link_stats,
            **{f"activities_{k}": v for k, v in self.write_stats.items()},
        }
        # Known only once Raynet has answered (X-Ratelimit-* headers); absent before the first request.
        if budget.remaining is not None:
            figures["budget_remaining"] = budget.remaining
        if budget.reset_at is not None:
            figures["budget_resets_at"] = budget.reset_at.isoformat()
        return figures

    # -- lists ----------------------------------------------------------------------------------
    def _get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        body = self.client.request("GET", path, params={**params, "dateFormat": "ISO8601"})
        return body or {}

    def _pages(self, entity: str, params: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
        """Offset pages of a list, ``page_size`` records each, until a short page."""
        limit = self.settings.page_size
        offset = 0
        while True:
            body = self._get(f"{entity}/", {**params, "offset": offset, "limit": limit})
            data = [r for r in body.get("data") or [] if isinstance(r, dict)]
            if data:
                yield data
            total = body.get("totalCount")
            offset += len(data)
            if len(data) < limit or (isinstance(total, int) and offset >= total):
                return

    def _iter_window(self, entity: str, since: datetime | None, until: datetime | None) -> Iterator[Record]:
        since_u, until_u = _aware(since, "since"), _aware(until, "until")
        if since_u is not None and until_u is not None and since_u >= until_u:
            return
        slack = timedelta(seconds=self.settings.window_slack_s)
        cursor = since_u - slack if since_u is not None else None
        upper = until_u + slack if until_u is not None else None
        limit = self.settings.page_size
        seen: set[str] = set()
        offset = 0
        while True:
            params: dict[str, Any] = {"sortColumn": MODIFIED_KEY, "sortDirection": "ASC", "offset": offset,
                                      "limit": limit}
            params.update(self._scope(entity))
            if cursor is not None:
                params[f"{MODIFIED_KEY}[GE]"] = raynet_iso(cursor)
            if upper is not None:
                params[f"{MODIFIED_KEY}[LT]"] = raynet_iso(upper)
            data = [r for r in self._get(f"{entity}/", params).get("data") or [] if isinstance(r, dict)]
            last: datetime | None = None
            for raw in data:
                moment = modified_at(raw)
                last = moment if moment is not None and (last is None or moment > last) else last
                record = entity_record(raw)
                if record["id"] is None:
                    record[RECORD_ERROR_KEY] = f"Raynet {entity} without an id"
                    yield record
                    continue
                if record["id"] in seen:
                    continue
                if moment is None:
                    # No readable modified time: in every window, failed visibly by the engine (never dropped).
                    record[RECORD_ERROR_KEY] = f"Raynet {entity} {record['id']} has no readable modified time"
                elif (since_u is not None and moment < since_u) or (until_u is not None and moment >= until_u):
                    continue
                seen.add(record["id"])
                yield record
            if len(data) < limit:
                return
            if last is not None and (cursor is None or last > cursor):
                cursor, offset = last, 0
            else:
                offset += len(data)

    # -- single and batch reads -------------------------------------------------------------------
    def _detail(self, entity: str, record_id: Any) -> Record | None:
        text = "" if record_id is None else str(record_id).strip()
        if not text.isdigit():
            return None
        body = self.client.request("GET", f"{entity}/{text}/", params={"dateFormat": "ISO8601"}, not_found_ok=True)
        data = (body or {}).get("data")
        return entity_record(data) if isinstance(data, dict) else None

    def _get_many(self, entity: str, ids: Iterable[str]) -> dict[str, Record]:
        """Many records by id: a sorted scan (1000 per request) while it is cheaper than detail reads.

        Raynet has no batch read by id for companies or persons (API v2 documents ``id``
        filters only for activities), so the cost is ``min(ids, pages)`` requests.
        """
        wanted = list(dict.fromkeys(str(i).strip() for i in ids if i is not None and str(i).strip().isdigit()))
        found: dict[str, Record] = {}
        if len(wanted) <= 1:
            for record_id in wanted:
                record = self._detail(entity, record_id)
                if record is not None:
                    found[record_id] = record
            return found
        missing = set(wanted)
        limit = self.settings.page_size
        offset = 0
        while missing:
            body = self._get(f"{entity}/", {"sortColumn": "id", "sortDirection": "ASC", "offset": offset,
                                            "limit": limit})
            data = [r for r in body.get("data") or [] if isinstance(r, dict)]
            for raw in data:
                record = entity_record(raw)
                if record["id"] in missing:
                    found[record["id"]] = record
                    missing.discard(record["id"])
            offset += len(data)
            reported = body.get("totalCount")
            total = reported if isinstance(reported, int) else offset
            if len(data) < limit or offset >= total:
                break
            if math.ceil((total - offset) / limit) > len(missing):
                for record_id in sorted(missing):
                    record = self._detail(entity, record_id)
                    if record is not None:
                        found[record_id] = record
                break
        return {i: found[i] for i in wanted if i in found}

    def _find(self, entity: str, field: str, value: Any) -> Record | None:
        wanted = lookup_text(field, value)
        if field == "id":
            return self._detail(entity, wanted)
        if field in PHONE_FIELDS[entity]:
            numbers = set(self._phones.numbers(wanted))
            if not numbers:
                raise ValueError(f"{wanted!r} is not a phone number")
            for page in self._pages(entity, {"fulltext": wanted, "sortColumn": "id", "sortDirection": "ASC"}):
                for raw in page:
                    record = entity_record(raw)
                    if numbers & set(self._phones.numbers(read_path(record, field))):
                        return record
            return None
        column = FIND_COLUMNS[entity].get(field)
        if column is None:
            allowed = ", ".join(["id", *FIND_COLUMNS[entity], *PHONE_FIELDS[entity]])
            raise ValueError(f"Raynet {entity} cannot be looked up by {field!r}; use one of {allowed}")
        # E-mails compare case-insensitively (LIKE_NOCASE without a wildcard); the exact check is ours.
        op = "LIKE_NOCASE" if "email" in column and "%" not in wanted else "EQ"
        body = self._get(f"{entity}/", {f"{column}[{op}]": wanted, "sortColumn": "id", "sortDirection": "ASC",
                                        "limit": _FIND_LIMIT})
        for raw in body.get("data") or []:
            record = entity_record(raw)
            if _same(read_path(record, field), wanted):
                return record
        return None

    def _search(self, entity: str, query: str) -> Iterator[Record]:
        text = query.strip() if isinstance(query, str) else ""
        if not text:
            raise ValueError("search query must not be empty")
        params = {"fulltext": text, "sortColumn": "id", "sortDirection": "ASC", **self._scope(entity)}
        for page in self._pages(entity, params):
            for raw in page:
                yield entity_record(raw)

    def _scope(self, entity: str) -> dict[str, str]:
        """Filters every contact list carries: staff (persons with a user account) excluded."""
        if entity == "person" and self.settings.contacts_exclude_users:
            return {"userAccount-id[EQ]": ""}
        return {}

    def iter_accounts(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[Record]:
        return self._iter_window("company", since, until)

    def get_account(self, account_id: str) -> Record | None:
        return self._detail("company", account_id)

    def get_accounts(self, account_ids: Iterable[str]) -> dict[str, Record]:
        return self._get_many("company", account_ids)

    def find_account_by(self, field: str, value: Any) -> Record | None:
        return self._find("company", field, value)

    def search_accounts(self, query: str) -> Iterator[Record]:
        return self._search("company", query)

    def iter_contacts(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[Record]:
        return self._iter_window("person", since, until)

    def _contact(self, record: Record | None) -> Record | None:
        """``record`` unless it is staff excluded from contacts (``activeUserAccount``, Raynet API v2)."""
        if record is not None and self.settings.contacts_exclude_users and record.get("activeUserAccount") is True:
            return None
        return record

    def get_contact(self, contact_id: str) -> Record | None:
        return self._contact(self._detail("person", contact_id))

    def get_contacts(self, contact_ids: Iterable[str]) -> dict[str, Record]:
        return {i: r for i, r in self._get_many("person", contact_ids).items() if self._contact(r) is not None}

    def find_contact_by(self, field: str, value: Any) -> Record | None:
        return self._contact(self._find("person", field, value))

    def search_contacts(self, query: str) -> Iterator[Record]:
        return self._search("person", query)

    # -- activities: reads ------------------------------------------------------------------------
    def _ext(self, name: str) -> str:
        return f"{self.settings.activities.ext_id_prefix}{name}"

    def _activity_entities(self) -> list[str]:
        return list(dict.fromkeys(self.settings.activities.entities.values()))

    def _activity_detail(self, entity: str, raw_id: str) -> Record | None:
        body = self.client.request("GET", f"{entity}/{raw_id}/", params={"dateFormat": "ISO8601"},
                                   not_found_ok=True)
        data = (body or {}).get("data")
        return activity_record(entity, data, self.settings.activities.ext_id_prefix) if isinstance(data, dict) else None

    def _by_ext(self, entity: str, name: str) -> Record | None:
        path = f"{entity}/ext/{quote(self._ext(name), safe=':@')}/"
        body = self.client.request("GET", path, params={"dateFormat": "ISO8601"}, not_found_ok=True)
        data = (body or {}).get("data")
        return activity_record(entity, data, self.settings.activities.ext_id_prefix) if isinstance(data, dict) else None

    def find_activity_by(self, field: str, value: Any) -> Record | None:
        """By ``extId`` (the Daktela name: one ``GET /{entity}/ext/daktela:<name>/`` per entity until
        found) or by ``id`` (``"phoneCall:12"``)."""
        wanted = lookup_text(field, value)
        if field == "id":
            try:
                entity, raw_id = split_activity_id(wanted)
            except ValueError:
                return None
            return self._activity_detail(entity, raw_id)
        if field != LOOKUP_FIELD:
            raise ValueError(f"Raynet activities are looked up by {LOOKUP_FIELD!r} or 'id', not {field!r}")
        for entity in self._activity_entities():
            record = self._by_ext(entity, wanted)
            if record is not None:
                return record
        return None

    def find_activities_by_external_ids(self, field: str, values: Iterable[str]) -> dict[str, Record]:
        """Many activities by extId: one scan of the recent activities instead of a GET per value.

        Raynet has no filter on extIds, so the activities created in the last
        ``activities.lookup_days`` days are listed (1000 per request, per configured entity) and
        matched here; up to ``lookup_fallback_max`` values the scan did not find are confirmed by
        ``GET /{entity}/ext/{extId}/``. Reading [U]: list records carry ``extIds`` like details;
        if a list answers without that key, the adapter falls back to per-value lookups.
        """
        if field == "id":
            return {v: r for v in values if (r := self.find_activity_by("id", v)) is not None}
        if field != LOOKUP_FIELD:
            raise ValueError(f"Raynet activities are looked up by {LOOKUP_FIELD!r} or 'id', not {field!r}")
        wanted = list(dict.fromkeys(str(v).strip() for v in values if v is not None and str(v).strip()))
        settings = self.settings.activities
        if len(wanted) <= 2:
            return {v: r for v in wanted if (r := self.find_activity_by(LOOKUP_FIELD, v)) is not None}
        missing = set(wanted)
        found: dict[str, Record] = {}
        since = raynet_iso(self.client.now() - timedelta(days=settings.lookup_days))
        lists_carry_ext_ids = self._scan_ext_ids({"rowInfo.createdAt[GE]": since}, missing, found)
        confirm = sorted(missing) if not lists_carry_ext_ids else sorted(missing)[: settings.lookup_fallback_max]
        if lists_carry_ext_ids and len(missing) > settings.lookup_fallback_max:
            # Written before lookup_days (a partition re-run a month later): one scan of the older
            # activities costs ceil(older / 1000) requests, fewer than one GET per missing value,
            # and when it completes what it did not find does not exist.
            self._scan_ext_ids({"rowInfo.createdAt[LT]": since}, missing, found)
            confirm = []
        for name in confirm:
            record = self.find_activity_by(LOOKUP_FIELD, name)
            if record is not None:
                found[name] = record
        return {v: found[v] for v in wanted if v in found}

    def _scan_ext_ids(self, window: dict[str, str], missing: set[str], found: dict[str, Record]) -> bool:
        """Move the activities of ``window`` (a createdAt filter) whose extId is in ``missing`` into
        ``found``, entity by entity, until none is missing. False when a list answers without
        ``extIds`` (reading [U] in docs/crms/raynet.md): the caller then looks values up one by one."""
        prefix = self.settings.activities.ext_id_prefix
        for entity in self._activity_entities():
            if not missing:
                return True
            for page in self._pages(entity, {**window, "sortColumn": "id", "sortDirection": "ASC"}):
                for raw in page:
                    if "extIds" not in raw:
                        return False
                    for ext in raw.get("extIds") or []:
                        name = str(ext)[len(prefix):]
                        if str(ext).startswith(prefix) and name in missing:
                            found[name] = activity_record(entity, raw, prefix)
                            missing.discard(name)
                if not missing:
                    return True
        return True

    # -- activities: writes -------------------------------------------------------------------------
    def _person_index(self) -> PersonIndex:
        """All persons by phone/e-mail (and users by e-mail), one paged scan per adapter lifetime (run)."""
        if self._index is None:
            index = PersonIndex(self._phones, customers_exclude_users=self.settings.contacts_exclude_users)
            for page in self._pages("person", {"sortColumn": "id", "sortDirection": "ASC"}):
                for raw in page:
                    index.add(raw)
            self._index = index
        return self._index

    def _prepare(self, record: Record) -> tuple[str, Record]:
        """The entity and the payload with owner, person and company resolved (may read the index)."""
        if not isinstance(record, Mapping):
            raise RaynetValidationError(f"an activity must be a dict, got {type(record).__name__}")
        payload = dict(record)
        name = payload.get(LOOKUP_FIELD)
        if name is None or not str(name).strip():
            raise RaynetValidationError("the activity has no Daktela name to use as its extId", field=LOOKUP_FIELD)
        entity = entity_for(payload, self.settings.activities)
        given = payload.get("link")
        link: dict[str, Any] = given if isinstance(given, dict) else {}
        by_contact = self._from_contact(payload, link)
        needs_index = (
            payload.get("owner") in (None, "") and link.get("agent_email")
        ) or payload.get("company") in (None, "") or payload.get("person") in (None, "")
        index = self._person_index() if needs_index else None
        if payload.get("owner") in (None, "") and index is not None and link.get("agent_email"):
            owner = index.users_by_email.get(str(link["agent_email"]).strip().casefold())
            if owner is not None:
                payload["owner"] = owner
        person = payload.get("person")
        if person not in (None, "") or by_contact:
            self.link_stats["links_by_contact"] += 1
        elif index is not None:
            candidates, how = index.candidates(link, self.settings.activities.link_by)
            if len(candidates) == 1:
                payload["person"] = person = next(iter(candidates))
                self.link_stats[f"links_by_{how}"] += 1
            elif candidates:
                self.link_stats["links_ambiguous"] += 1
                payload["person"] = None
            else:
                self.link_stats["links_none"] += 1
                payload["person"] = None
        if payload.get("company") in (None, "") and index is not None and person not in (None, ""):
            company = index.company_of.get(str(person))
            if company is not None:
                payload["company"] = company
        return entity, payload

    def _from_contact(self, payload: Record, link: dict[str, Any]) -> bool:
        """Resolve ``link.contact`` (the Daktela contact name): ``crm_<person id>`` links the person,
        ``crm_acc_contact_<company id>`` (a company's auto-created contact) the company; any other
        name is not ours and leaves matching to phone/e-mail. True when it linked something."""
        contact = str(link.get("contact") or "").strip()
        if not contact or payload.get("person") not in (None, ""):
            return False
        settings = self.settings.activities
        company = re.fullmatch(re.escape(settings.account_contact_prefix) + r"(\d+)", contact)
        if company is not None:
            if payload.get("company") in (None, ""):
                payload["company"] = company.group(1)
            return True
        person = re.fullmatch(re.escape(settings.contact_prefix) + r"(\d+)", contact)
        if person is not None:
            payload["person"] = person.group(1)
            return True
        return False

    def _owner(self) -> int | None:
        return self.settings.activities.owner_id

    def _echo(self, entity: str, raw_id: Any, body: dict[str, Any], name: str) -> Record:
        shown = dict(body)
        shown.pop("extId", None)
        if isinstance(shown.get("tags"), str):
            shown["tags"] = [t for t in shown["tags"].split(",") if t]
        shown["extIds"] = [self._ext(name)]
        shown["id"] = raw_id
        return activity_record(entity, shown, self.settings.activities.ext_id_prefix)

    def _create(self, entity: str, payload: Record) -> Record:
        name = str(payload[LOOKUP_FIELD]).strip()
        body = build_body(entity, payload, settings=self.settings.activities, owner=self._owner(), create=True,
                          ext_id=self._ext(name))
        later = {k: body[k] for k in _UPDATE_ONLY_ON_STRICT if body.get(k) not in (None, {}, "")}
        if self._strict_insert and later:
            return self._create_then_update(entity, body, later, name)
        try:
            raw_id = self._put(entity, body)
        except RaynetValidationError as exc:
            # Reading [U] (docs/crms/raynet.md): an instance that refuses status / customFields on
            # create gets them in an update right after; the rest of the run creates that way.
            if not (exc.by_raynet and exc.field in _UPDATE_ONLY_ON_STRICT and later):
                raise
            self._strict_insert = True
            LOG.warning("raynet: the instance refuses %r on create; activities are created, then updated with "
                        "status and custom fields (2 requests each) for the rest of this run", exc.field)
            return self._create_then_update(entity, body, later, name)
        self.write_stats["created"] += 1
        return self._echo(entity, raw_id, body, name)

    def _put(self, entity: str, body: dict[str, Any]) -> Any:
        answer = self.client.request("PUT", f"{entity}/", json=body) or {}
        raw_id = (answer.get("data") or {}).get("id")
        if raw_id is None:
            raise AdapterError(f"{self.client.where}: PUT {entity}/ answered without an id")
        return raw_id

    def _create_then_update(self, entity: str, body: dict[str, Any], later: dict[str, Any], name: str) -> Record:
        raw_id = self._put(entity, {k: v for k, v in body.items() if k not in later})
        self.write_stats["created"] += 1
        # A failure here leaves the record created with its extId: the next run's create meets
        # the duplicate and updates it (the recovery path), so nothing is written twice.
        self.client.request("POST", f"{entity}/{raw_id}/", json=later)
        return self._echo(entity, raw_id, body, name)

    def _update(self, entity: str, raw_id: str, payload: Record) -> Record:
        name = str(payload.get(LOOKUP_FIELD) or "").strip()
        body = build_body(entity, payload, settings=self.settings.activities, owner=None, create=False, ext_id=None)
        self.client.request("POST", f"{entity}/{raw_id}/", json=body)
        self.write_stats["updated"] += 1
        return self._echo(entity, raw_id, body, name)

    def _create_or_update(self, entity: str, payload: Record) -> Record:
        """Create-first: one PUT for a new activity; a refused duplicate extId becomes an update."""
        try:
            return self._create(entity, payload)
        except ConflictError:
            existing = self._by_ext(entity, str(payload[LOOKUP_FIELD]).strip())
            if existing is None:
                raise
            self.write_stats["recovered_duplicates"] += 1
            return self._update(entity, split_activity_id(existing["id"])[1], payload)

    def create_activity(self, record: Record) -> Record:
        entity, payload = self._prepare(record)
        return self._create(entity, payload)

    def update_activity(self, activity_id: str, record: Record) -> Record:
        entity, raw_id = split_activity_id(activity_id)
        _entity, payload = self._prepare({**record, "type": record.get("type") or _type_of(entity, self.settings)})
        return self._update(entity, raw_id, payload)

    def upsert_activity(self, lookup_field: str, record: Record) -> Record:
        """Look up by extId (one GET), then update or create: for single calls (crm-inspect, kit)."""
        if lookup_field != LOOKUP_FIELD:
            raise ValueError(f"Raynet activities are keyed by {LOOKUP_FIELD!r}, not {lookup_field!r}")
        entity, payload = self._prepare(record)
        existing = self._by_ext(entity, str(payload[LOOKUP_FIELD]).strip())
        if existing is not None:
            return self._update(entity, split_activity_id(existing["id"])[1], payload)
        return self._create_or_update(entity, payload)

    def upsert_activities(self, lookup_field: str, records: Iterable[Record]) -> list[Record | BaseException]:
        """One write per record, no lookups: ``id`` (from the ledger) updates, no ``id`` creates.

        A record Raynet refuses gets its exception in its slot. When the daily budget runs out
        (or the credentials are refused) the remaining records are not sent: their slots hold
        that ``QuotaExhaustedError`` / ``AuthError``.
        """
        if lookup_field != LOOKUP_FIELD:
            raise ValueError(f"Raynet activities are keyed by {LOOKUP_FIELD!r}, not {lookup_field!r}")
        results: list[Record | BaseException] = []
        stop: CrmsyncError | None = None
        for record in records:
            if stop is not None:
                results.append(stop)
                continue
            try:
                results.append(self._write_one(record))
            except (QuotaExhaustedError, AuthError) as exc:
                stop = exc
                results.append(exc)
            except Exception as exc:  # one bad record must not stop the batch
                results.append(exc)
        return results

    def _write_one(self, record: Record) -> Record:
        entity, payload = self._prepare(record)
        hint = payload.pop("id", None)
        # Links the adapter made (from the Daktela contact crm_<id> / crm_acc_contact_<id>, or a
        # phone / e-mail match); a person or company the mapping sets itself stays the mapping's.
        derived = {k for k in _LINK_REFERENCES if record.get(k) in (None, "") and payload.get(k) not in (None, "")}
        for _ in _LINK_REFERENCES:
            try:
                return self._send(entity, payload, hint)
            except RaynetValidationError as exc:
                # That person / company was deleted in Raynet since Daktela learnt it: the call is
                # kept, unlinked from it, and counted (never refused in every run).
                if not exc.by_raynet or exc.field not in derived or payload.get(exc.field) in (None, ""):
                    raise
                self.link_stats["links_deleted"] += 1
                payload = {**payload, exc.field: None}
        return self._send(entity, payload, hint)

    def _send(self, entity: str, payload: Record, hint: Any) -> Record:
        """Update the record the ledger knows (``hint``), else create (or update a duplicate extId)."""
        if hint:
            try:
                hinted_entity, raw_id = split_activity_id(str(hint))
            except ValueError:
                hinted_entity, raw_id = "", ""
            if hinted_entity == entity:
                try:
                    return self._update(entity, raw_id, payload)
                except ConflictError:
                    pass  # the record was deleted in Raynet: create it again below
        return self._create_or_update(entity, payload)


def _type_of(entity: str, settings: RaynetSettings) -> str:
    """A Daktela type that maps to ``entity`` (updates by id do not need the real one)."""
    return next((t for t, e in settings.activities.entities.items() if e == entity), "call")
