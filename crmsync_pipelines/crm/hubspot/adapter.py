"""``HubSpotAdapter``: HubSpot companies and contacts in, Daktela activities out.

Reads (accounts = HubSpot companies, contacts = contacts) use the CRM search API: a window
``[since, until)`` is ``hs_lastmodifieddate`` (companies) or ``lastmodifieddate`` (contacts)
``GTE since`` and ``LT until`` in epoch milliseconds. Paging is by keyset, not ``after``:
every page is a fresh query with ``hs_object_id GT <last id seen>``, sorted by
``hs_object_id``. A query therefore never pages past HubSpot's 10,000-result cap however
big the window is, each record is yielded at most once, and a record edited while we page
moves to a later window instead of being seen twice. A read without bounds pages the list
endpoint (``GET /crm/v3/objects/{type}``), which has neither the search rate limit nor the cap.

Writes use the unique external-id property (``daktela_activity_name`` by default, created
with ``hasUniqueValue: true`` on every engagement object in use):

* activities the preceding ``find_activities_by_external_ids`` did not find are created with
  ``batch/create`` — one call per 100, their contact and company associations inline, each
  input tagged with ``objectWriteTraceId`` so a 207 answer fails only the bad ones. An input
  the unique property refuses (someone else created it meanwhile) goes the upsert way;
* everything else goes through ``batch/upsert`` by the unique property (one call per 100,
  idempotent on retries and crashes), followed by one v4 ``batch/associate/default`` per
  association kind for the records that link somewhere (upsert inputs cannot carry
  associations).

Quotas: see ``client.py``; ``usage()`` reports requests, retries and the daily budget left.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from crmsync_pipelines.crm.base import CrmAdapter, Record, lookup_text, window_bound
from crmsync_pipelines.crm.hubspot.activities import ASSOCIATION_TYPE_IDS, ActivityCodec, HubSpotActivity
from crmsync_pipelines.crm.hubspot.client import HubSpotClient, describe, error_from_body
from crmsync_pipelines.crm.hubspot.linking import ContactMatcher
from crmsync_pipelines.crm.hubspot.settings import HubSpotSettings
from crmsync_pipelines.errors import AdapterError, ConflictError, RecordValidationError

_MODIFIED = {"companies": "hs_lastmodifieddate", "contacts": "lastmodifieddate"}


def _epoch_ms(moment: datetime | None, name: str) -> str | None:
    bound = window_bound(moment, name)
    return None if bound is None else str(int(bound.timestamp() * 1000))


def _text_id(value: Any) -> str | None:
    text = "" if value is None else str(value).strip()
    return text or None


def _chunks(values: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def _wire(properties: dict[str, str | None], *, creating: bool) -> dict[str, str]:
    """HubSpot clears a property with ``""``; on create an empty value is simply left out."""
    if creating:
        return {k: v for k, v in properties.items() if v is not None}
    return {k: ("" if v is None else v) for k, v in properties.items()}


class HubSpotAdapter(CrmAdapter):
    """A CRM adapter over the HubSpot CRM API; see the module docstring for its guarantees."""

    name = "hubspot"
    #: New versus known comes from the engine's ledger (records it wrote carry ``"id"``), so a
    #: sync spends no request on looking activities up; ``--force-full`` still reads them back.
    activity_lookup = "ledger"
    #: Linking hints: used to find the contact and company, never read back for comparison.
    write_only_activity_fields = ("crm_contact_id", "crm_company_id", "phone", "email", "agent_email")

    def __init__(self, settings: HubSpotSettings, *, client: HubSpotClient | None = None) -> None:
        self.settings = settings
        self.client = client or HubSpotClient(settings)
        self.codec = ActivityCodec(settings.activities)
        self.key = settings.activities.external_id_property
        self.matcher = ContactMatcher(self.client, settings.activities.match, self._path("contacts", "search"))
        self._lock = threading.Lock()
        self._present: set[str] = set()
        self._contact_company: dict[str, str | None] = {}
        self._key_checked: set[str] = set()
        self._missing_contacts: set[str] = set()
        self._owners: dict[str, str | None] = {}
        self._owner_unknown = 0
        self._contact_gone = 0
        self._contact_not_ours = 0
        self._written = {"created": 0, "updated": 0}

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], base_dir: Path) -> HubSpotAdapter:
        """Build from the raw ``crm:`` settings; every problem is a ``ConfigError`` naming its key."""
        return cls(HubSpotSettings.parse(dict(settings)))

    def __repr__(self) -> str:
        return f"HubSpotAdapter(base_url={self.settings.base_url!r})"

    def close(self) -> None:
        self.client.close()

    def _path(self, object_type: str, *parts: str) -> str:
        return "/".join([f"{self.settings.objects_path}/objects/{object_type}", *parts])

    # -- health and usage ----------------------------------------------------------------------
    def ping(self) -> bool:
        """True when HubSpot answers a one-record contact list with this token."""
        try:
            self.client.get_json(self._path("contacts"), params={"limit": 1}, context="ping")
        except (AdapterError, OSError):
            return False
        return True

    def usage(self) -> dict[str, Any]:
        """Run metadata: requests sent, retries, 429s, HubSpot's daily budget and link outcomes."""
        usage = self.client.usage
        return {
            "requests_used": usage.requests, "search_requests": usage.search_requests, "retries": usage.retries,
            "rate_limited": usage.rate_limited, "daily_limit": usage.daily_limit,
            "budget_remaining": usage.daily_remaining, "quota_exhausted": self.client.quota_exhausted,
            "activities_created": self._written["created"], "activities_updated": self._written["updated"],
            "activities_linked_by_match": self.matcher.stats.linked,
            "activities_unlinked_ambiguous": self.matcher.stats.ambiguous,
            "activities_unmatched": self.matcher.stats.unmatched,
            "activities_contact_deleted": self._contact_gone,
            "activities_contact_not_ours": self._contact_not_ours,
            "activities_owner_unknown": self._owner_unknown,
        }

    # -- reading companies and contacts -----------------------------------------------------------
    def _properties(self, object_type: str) -> list[str]:
        wanted = self.settings.company_properties if object_type == "companies" else self.settings.contact_properties
        return list(dict.fromkeys([*wanted, _MODIFIED[object_type]]))

    def _record(self, raw: dict[str, Any]) -> Record:
        properties = raw.get("properties") or {}
        record: Record = {key: value for key, value in properties.items() if key != "hs_object_id"}
        record["id"] = str(raw.get("id"))
        return record

    def _keyset_search(self, object_type: str, filters: list[dict[str, Any]], *, query: str | None = None
                       ) -> Iterator[Record]:
        """Every match of ``filters`` (and ``query``), one fresh query per page keyed on ``hs_object_id``."""
        last_id = 0
        size = min(self.settings.search_page_size, self.settings.search_result_cap)
        path = self._path(object_type, "search")
        while True:
            body: dict[str, Any] = {
                "filterGroups": [{"filters": [*filters, {"propertyName": "hs_object_id", "operator": "GT",
                                                         "value": str(last_id)}]}],
                "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
                "properties": self._properties(object_type), "limit": size,
            }
            if query:
                body["query"] = query
            page = self.client.post_json(path, body, context=f"{object_type} search")
            results = page.get("results") or []
            for raw in results:
                yield self._record(raw)
            if len(results) < size or not results:
                return
            last_id = int(results[-1]["id"])

    def _list_all(self, object_type: str) -> Iterator[Record]:
        """Every record through the list endpoint: no search rate limit, no result cap, id order."""
        params: dict[str, Any] = {"limit": 100, "properties": ",".join(self._properties(object_type)),
                                  "archived": "false"}
        while True:
            page = self.client.get_json(self._path(object_type), params=params, context=f"{object_type} list")
            for raw in page.get("results") or []:
                yield self._record(raw)
            after = ((page.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                return
            params = {**params, "after": after}

    def _window(self, object_type: str, since: datetime | None, until: datetime | None) -> Iterator[Record]:
        since_ms, until_ms = _epoch_ms(since, "since"), _epoch_ms(until, "until")
        if since_ms is None and until_ms is None:
            return self._list_all(object_type)  # a full sync needs no filter
        modified = _MODIFIED[object_type]
        filters = []
        if since_ms is not None:
            filters.append({"propertyName": modified, "operator": "GTE", "value": since_ms})
        if until_ms is not None:
            filters.append({"propertyName": modified, "operator": "LT", "value": until_ms})
        return self._keyset_search(object_type, filters)

    def _get(self, object_type: str, record_id: str) -> Record | None:
        if record_id is None or not str(record_id).strip().isdigit():
            return None  # HubSpot ids are digits; anything else cannot exist
        raw = self.client.get_json(self._path(object_type, str(record_id).strip()),
                                   params={"properties": ",".join(self._properties(object_type))},
                                   context=f"{object_type} read", missing_ok=True)
        return None if raw is None else self._record(raw)

    def _get_many(self, object_type: str, ids: Iterable[str]) -> dict[str, Record]:
        wanted = list(dict.fromkeys(str(i).strip() for i in ids if i is not None and str(i).strip().isdigit()))
        found: dict[str, Record] = {}
        for chunk in _chunks(wanted, self.settings.batch_size):
            page = self.client.post_json(self._path(object_type, "batch", "read"),
                                         {"inputs": [{"id": i} for i in chunk],
                                          "properties": self._properties(object_type)},
                                         context=f"{object_type} batch read")
            for raw in page.get("results") or []:
                record = self._record(raw)
                found[record["id"]] = record
        return found

    def _find(self, object_type: str, field: str, value: Any) -> Record | None:
        text = lookup_text(field, value)
        if field in ("id", "hs_object_id"):
            return self._get(object_type, text)
        filters = [{"propertyName": field, "operator": "EQ", "value": text}]
        return next(self._keyset_search(object_type, filters), None)

    def _search(self, object_type: str, query: str) -> Iterator[Record]:
        text = query.strip() if isinstance(query, str) else ""
        if not text:
            raise ValueError("search query must not be empty")
        return self._keyset_search(object_type, [], query=text)

    def iter_accounts(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[Record]:
        return self._window("companies", since, until)

    def iter_contacts(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[Record]:
        return self._window("contacts", since, until)

    def get_account(self, account_id: str) -> Record | None:
        return self._get("companies", account_id)

    def get_contact(self, contact_id: str) -> Record | None:
        return self._get("contacts", contact_id)

    def get_accounts(self, account_ids: Iterable[str]) -> dict[str, Record]:
        return self._get_many("companies", account_ids)

    def get_contacts(self, contact_ids: Iterable[str]) -> dict[str, Record]:
        return self._get_many("contacts", contact_ids)

    def find_account_by(self, field: str, value: Any) -> Record | None:
        return self._find("companies", field, value)

    def find_contact_by(self, field: str, value: Any) -> Record | None:
        return self._find("contacts", field, value)

    def search_accounts(self, query: str) -> Iterator[Record]:
        return self._search("companies", query)

    def search_contacts(self, query: str) -> Iterator[Record]:
        return self._search("contacts", query)

    # -- activities: reads ---------------------------------------------------------------------
    def _require_key_field(self, field: str) -> None:
        if field != self.key:
            raise RecordValidationError(
                f"activities are keyed by the unique property {self.key!r} (crm.activities.external_id_property); "
                f"the mapping's lookup_field is {field!r}")

    def find_activity_by(self, field: str, value: Any) -> Record | None:
        text = lookup_text(field, value)
        if field == self.key:
            return self.find_activities_by_external_ids(field, [text]).get(text)
        for object_type in self.codec.object_types:
            filters = [{"propertyName": field, "operator": "EQ", "value": text}]
            body = {"filterGroups": [{"filters": filters}], "properties": self.codec.read_properties(object_type),
                    "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}], "limit": 1}
            page = self.client.post_json(self._path(object_type, "search"), body, context="activity search")
            if page.get("results"):
                return self.codec.from_hubspot(object_type, page["results"][0])
        return None

    def find_activities_by_external_ids(self, field: str, values: Iterable[str]) -> dict[str, Record]:
        """Batch reads by the unique property, object by object, each value asked until found."""
        self._require_key_field(field)
        remaining = list(dict.fromkeys(str(v) for v in values if v is not None and str(v).strip()))
        asked = set(remaining)
        found: dict[str, Record] = {}
        for object_type in self.codec.object_types:
            if not remaining:
                break
            for chunk in _chunks(remaining, self.settings.batch_size):
                page = self.client.post_json(self._path(object_type, "batch", "read"),
                                             {"inputs": [{"id": v} for v in chunk], "idProperty": self.key,
                                              "properties": self.codec.read_properties(object_type)},
                                             context=f"{object_type} batch read by {self.key}")
                for raw in page.get("results") or []:
                    record = self.codec.from_hubspot(object_type, raw)
                    value = record.get(self.key)
                    if value in asked:
                        found[str(value)] = record
            remaining = [v for v in remaining if v not in found]
        with self._lock:
            self._present.update(found)
            self._present.difference_update(remaining)
        return found

    # -- activities: writes --------------------------------------------------------------------
    def create_activity(self, record: Record) -> Record:
        [activity] = self._resolve_links([self.codec.to_hubspot(record)], [record])
        self._ensure_key_property(activity.object_type)
        raw = self.client.post_json(self._path(activity.object_type), {
            "properties": _wire(activity.properties, creating=True),
            "associations": self._inline_associations(activity)}, context="activity create")
        self._written["created"] += 1
        return self.codec.from_hubspot(activity.object_type, raw, links=self._links(activity))

    def update_activity(self, activity_id: str, record: Record) -> Record:
        activity = self.codec.to_hubspot(record)
        if not str(activity_id).isdigit():
            raise RecordValidationError(f"{activity_id!r} is not a HubSpot record id")
        response = self.client.request("PATCH", self._path(activity.object_type, str(activity_id)),
                                       json={"properties": _wire(activity.properties, creating=False)},
                                       context="activity update", allow=(404,))
        if response.status_code == 404:
            raise ConflictError(f"{activity.object_type} {activity_id} does not exist in HubSpot")
        self._written["updated"] += 1
        return self.codec.from_hubspot(activity.object_type, response.json())

    def upsert_activity(self, lookup_field: str, record: Record) -> Record:
        [result] = self.upsert_activities(lookup_field, [record])
        if isinstance(result, BaseException):
            raise result
        return result

    def upsert_activities(self, lookup_field: str, records: Iterable[Record]) -> list[Record | BaseException]:
        """One slot per record: the stored activity or the exception that record alone failed with."""
        items = list(records)
        slots: list[Record | BaseException | None] = [None] * len(items)
        prepared: list[tuple[int, HubSpotActivity]] = []
        known: set[str] = set()
        seen: dict[str, int] = {}
        for index, record in enumerate(items):
            try:
                self._require_key_field(lookup_field)
                activity = self.codec.to_hubspot(record)
            except Exception as exc:  # this record alone is bad
                slots[index] = exc
                continue
            if activity.key in seen:
                slots[index] = ConflictError(f"activity {activity.key!r} appears twice in one batch")
                continue
            seen[activity.key] = index
            prepared.append((index, activity))
            if _text_id(record.get("id")):
                known.add(activity.key)
        try:
            resolved = self._resolve_links([a for _, a in prepared], [items[i] for i, _ in prepared])
        except Exception as exc:  # could not ask HubSpot: the whole batch waits for the next run
            for index, _ in prepared:
                slots[index] = exc
            return [s if s is not None else exc for s in slots]
        by_type: dict[str, list[tuple[int, HubSpotActivity]]] = {}
        for index, activity in zip([i for i, _ in prepared], resolved, strict=True):
            by_type.setdefault(activity.object_type, []).append((index, activity))
        for object_type, group in by_type.items():
            try:
                self._ensure_key_property(object_type)
            except Exception as exc:  # the whole object type cannot be written safely
                self._fail(slots, group, exc)
                continue
            with self._lock:
                present = self._present | known
            # Unknown ones are created with their associations inline; the unique property
            # turns a create of an existing one into a per-record conflict, which goes the upsert way.
            new = [(i, a) for i, a in group if a.key not in present]
            rest = [(i, a) for i, a in group if a.key in present]
            for chunk in _chunks(new, self.settings.batch_size):
                rest.extend(self._create_batch(object_type, chunk, slots))
            for chunk in _chunks(rest, self.settings.batch_size):
                self._upsert_batch(object_type, chunk, slots)
        return [s if s is not None else AdapterError("no result for this activity") for s in slots]

    def _fail(self, slots: list[Any], chunk: list[tuple[int, HubSpotActivity]], exc: Exception) -> None:
        for index, _ in chunk:
            slots[index] = exc

    def _post_batch(self, object_type: str, action: str, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        """POST ``inputs`` to the object type's ``batch/<action>`` endpoint; errors as ``AdapterError``s."""
        return self.client.post_json(self._path(object_type, "batch", action), {"inputs": inputs},
                                     context=f"{object_type} batch {action}")

    def _reported(self, object_type: str, page: dict[str, Any], by_key: dict[str, tuple[int, HubSpotActivity]],
                  slots: list[Any]) -> Iterator[tuple[dict[str, Any], HubSpotActivity]]:
        """The batch answer's stored records: each one's slot filled and its key taken out of ``by_key``."""
        for raw in page.get("results") or []:
            key = str(raw.get("objectWriteTraceId") or (raw.get("properties") or {}).get(self.key))
            if key in by_key:
                index, activity = by_key.pop(key)
                slots[index] = self.codec.from_hubspot(object_type, raw, links=self._links(activity))
                yield raw, activity

    def _create_batch(self, object_type: str, chunk: list[tuple[int, HubSpotActivity]], slots: list[Any]
                      ) -> list[tuple[int, HubSpotActivity]]:
        """Batch create with inline associations; returns the inputs the unique property sent to upsert."""
        inputs = [{"properties": _wire(a.properties, creating=True), "objectWriteTraceId": a.key,
                   "associations": self._inline_associations(a)} for _, a in chunk]
        try:
            page = self._post_batch(object_type, "create", inputs)
        except (RecordValidationError, ConflictError) as exc:
            if len(chunk) > 1:  # HubSpot refused the whole batch for one input: halve until it stands alone
                middle = len(chunk) // 2
                return (self._create_batch(object_type, chunk[:middle], slots)
                        + self._create_batch(object_type, chunk[middle:], slots))
            if isinstance(exc, ConflictError):
                return list(chunk)  # it exists already: update it instead
            self._fail(slots, chunk, exc)
            return []
        except AdapterError as exc:
            self._fail(slots, chunk, exc)
            return []
        by_key = {a.key: (i, a) for i, a in chunk}
        for _, activity in self._reported(object_type, page, by_key, slots):
            self._written["created"] += 1
            with self._lock:
                self._present.add(activity.key)
        retry: list[tuple[int, HubSpotActivity]] = []
        for error in page.get("errors") or []:
            context = error.get("context") or {}
            for key in context.get("objectWriteTraceId") or []:
                if str(key) not in by_key:
                    continue
                index, activity = by_key.pop(str(key))
                if str(error.get("category")) == "CONFLICT":
                    retry.append((index, activity))  # created elsewhere meanwhile: update it instead
                else:
                    slots[index] = error_from_body(error, 400, context=f"{object_type} create of {activity.key}")
        for index, activity in by_key.values():
            slots[index] = AdapterError(f"HubSpot did not report {activity.key!r} in its batch create answer")
        return retry

    def _upsert_batch(self, object_type: str, chunk: list[tuple[int, HubSpotActivity]], slots: list[Any]) -> None:
        inputs = [{"idProperty": self.key, "id": a.key, "objectWriteTraceId": a.key,
                   "properties": _wire(a.properties, creating=False)} for _, a in chunk]
        try:
            page = self._post_batch(object_type, "upsert", inputs)
        except (RecordValidationError, ConflictError) as exc:
            if len(chunk) > 1:  # HubSpot refused the whole batch for one input: halve until it stands alone
                middle = len(chunk) // 2
                self._upsert_batch(object_type, chunk[:middle], slots)
                self._upsert_batch(object_type, chunk[middle:], slots)
            else:
                self._fail(slots, chunk, exc)
            return
        except AdapterError as exc:
            self._fail(slots, chunk, exc)
            return
        by_key = {a.key: (i, a) for i, a in chunk}
        stored: list[tuple[str, HubSpotActivity]] = []
        for raw, activity in self._reported(object_type, page, by_key, slots):
            self._written["created" if raw.get("new") else "updated"] += 1
            stored.append((str(raw["id"]), activity))
        for error in page.get("errors") or []:
            context = error.get("context") or {}
            keys = [str(k) for k in (context.get("objectWriteTraceId") or context.get("ids") or [])]
            for key in keys:
                if key in by_key:
                    index, activity = by_key.pop(key)
                    slots[index] = error_from_body(error, 400, context=f"{object_type} upsert of {key}")
        for index, activity in by_key.values():
            slots[index] = AdapterError(f"HubSpot did not report {activity.key!r} in its batch upsert answer")
        self._associate(object_type, stored, slots, {a.key: i for i, a in chunk})

    def _associate(self, object_type: str, stored: list[tuple[str, HubSpotActivity]], slots: list[Any],
                   index_of: dict[str, int]) -> None:
        """v4 default associations for upserted records (idempotent; one request per association kind)."""
        for to_type, attr in (("contacts", "contact_id"), ("companies", "company_id")):
            pairs = [(record_id, a) for record_id, a in stored if getattr(a, attr)]
            for chunk in _chunks(pairs, self.settings.batch_size):
                body = {"inputs": [{"from": {"id": rid}, "to": {"id": getattr(a, attr)}} for rid, a in chunk]}
                path = f"{self.settings.associations_path}/associations/{object_type}/{to_type}/batch/associate/default"
                try:
                    page = self.client.post_json(path, body, context=f"{object_type} -> {to_type} associations")
                except AdapterError as exc:
                    for _, activity in chunk:
                        slots[index_of[activity.key]] = exc
                    continue
                failed = {str(i) for e in page.get("errors") or [] for i in (e.get("context") or {}).get("fromId", [])}
                for record_id, activity in chunk:
                    if record_id in failed:
                        slots[index_of[activity.key]] = RecordValidationError(
                            f"{object_type} {record_id} was written but its association to {to_type} "
                            f"{getattr(activity, attr)} was refused ({describe(page.get('errors', [{}])[0], 207)})")

    def _ensure_key_property(self, object_type: str) -> None:
        """Refuse to write an object whose external-id property is missing or not unique.

        Without ``hasUniqueValue`` HubSpot would accept a second record with the same Daktela
        activity name, so idempotency would rest on our ledger alone. Checked once per object
        and adapter (one request each); raises ``RecordValidationError`` naming the fix.
        """
        if object_type in self._key_checked:
            return
        path = f"{self.settings.objects_path}/properties/{object_type}/{self.key}"
        found = self.client.get_json(path, context=f"{object_type} property {self.key}", missing_ok=True)
        if found is None or not found.get("hasUniqueValue"):
            state = "does not exist" if found is None else "exists but does not require unique values"
            raise RecordValidationError(
                f"HubSpot property {self.key!r} on {object_type} {state}; create it with hasUniqueValue: true "
                "(docs/crms/hubspot.md, setup step 2), then run `crmsync retry-failed`")
        self._key_checked.add(object_type)

    def _resolve_owners(self, activities: list[HubSpotActivity]) -> list[HubSpotActivity]:
        """``hubspot_owner_id`` from the agent's e-mail (``GET /crm/v3/owners/?email=``, once per agent and run).

        An explicit ``owner_id`` wins; an agent without a HubSpot user leaves the owner empty and
        is counted (``activities_owner_unknown``), never replaced by someone else.
        """
        from dataclasses import replace

        wanted = sorted({a.agent_email for a in activities if a.agent_email and not a.properties.get(
            "hubspot_owner_id")} - set(self._owners))
        for email in wanted:
            page = self.client.get_json(f"{self.settings.objects_path}/owners/",
                                        params={"email": email, "limit": 1, "archived": "false"},
                                        context="owner lookup")
            results = page.get("results") or []
            self._owners[email] = str(results[0]["id"]) if results else None
        resolved: list[HubSpotActivity] = []
        for activity in activities:
            if activity.agent_email and not activity.properties.get("hubspot_owner_id"):
                owner = self._owners.get(activity.agent_email)
                if owner is None:
                    self._owner_unknown += 1
                else:
                    activity = replace(activity, properties={**activity.properties, "hubspot_owner_id": owner})
            resolved.append(activity)
        return resolved

    # -- links ---------------------------------------------------------------------------------
    def _links(self, activity: HubSpotActivity) -> dict[str, str | None]:
        return {"crm_contact_id": activity.contact_id, "crm_company_id": activity.company_id}

    def _inline_associations(self, activity: HubSpotActivity) -> list[dict[str, Any]]:
        to_contact, to_company = ASSOCIATION_TYPE_IDS[activity.object_type]
        links = []
        for target, type_id in ((activity.contact_id, to_contact), (activity.company_id, to_company)):
            if target:
                links.append({"to": {"id": target},
                              "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}]})
        return links

    def _resolve_links(self, activities: list[HubSpotActivity], records: list[Record]) -> list[HubSpotActivity]:
        """Contact by phone / e-mail where Daktela named none, then the contact's primary company."""
        from dataclasses import replace

        self._contact_not_ours += sum(1 for a in activities if a.contact_not_ours)
        unlinked = [i for i, a in enumerate(activities) if not a.contact_id and (a.phone or a.email)]
        resolved = list(activities)
        if unlinked:
            answers = self.matcher.resolve([(activities[i].phone, activities[i].email) for i in unlinked])
            for i, (contact_id, _ambiguous) in zip(unlinked, answers, strict=True):
                if contact_id:
                    resolved[i] = replace(resolved[i], contact_id=contact_id)
        resolved = self._resolve_owners(resolved)
        if self.settings.activities.associate_company:
            contacts = sorted({a.contact_id for a in resolved if a.contact_id and not a.company_id} -
                              set(self._contact_company) - self._missing_contacts)
            if contacts:
                found = self._get_many("contacts", contacts)
                for contact_id in contacts:
                    if contact_id not in found:
                        self._missing_contacts.add(contact_id)
                        continue
                    company = found[contact_id].get("associatedcompanyid")
                    self._contact_company[contact_id] = str(company) if company else None
            linked: list[HubSpotActivity] = []
            for activity in resolved:
                if activity.contact_id in self._missing_contacts:
                    # Deleted in HubSpot since Daktela learnt it: the activity is kept, unlinked, and counted.
                    self._contact_gone += 1
                    activity = replace(activity, contact_id=None)
                elif activity.contact_id and not activity.company_id:
                    activity = replace(activity, company_id=self._contact_company.get(activity.contact_id))
                linked.append(activity)
            resolved = linked
        return resolved
