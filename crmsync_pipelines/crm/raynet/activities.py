"""Writing Daktela activities as Raynet activities: request bodies and the link indexes.

The activity record crmsync hands to the adapter (what ``mappings/raynet/activities.yaml``
produces) uses Raynet's own field names plus two write-only keys the adapter consumes:

* ``type``: the Daktela channel (``call``, ``email``, ``web``, ``sms``, ``fbm``, ``wap``,
  ``vbr``); ``crm.activities.entities`` picks the Raynet entity (``phoneCall``, ``email``,
  ``task`` ... ). Raynet has no SMS/chat entity.
* ``link``: ``{phone, email, agent_email}``: how to find the customer (when the Daktela
  activity has no contact of ours) and the owner (the agent's Raynet user).

Raynet's create DTOs require ``title``, ``priority`` and ``owner`` (a person with a user
account); a ``task`` also ``resolver`` and ``deadline``. These are checked here, before a
request is spent, and reported with the field name.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import phonenumbers

from crmsync_pipelines.crm.raynet.client import RaynetValidationError
from crmsync_pipelines.crm.raynet.records import raynet_iso
from crmsync_pipelines.crm.raynet.settings import RaynetActivitySettings
from crmsync_pipelines.mapping.transformers.phonetext import PhoneReader

#: Keys the adapter reads but Raynet does not store (never compared with what Raynet holds).
WRITE_ONLY_KEYS = frozenset({"type", "link"})
#: Raynet activity fields a mapping may write (create and edit DTOs of Raynet API v2).
WRITABLE_KEYS = frozenset({
    "extId", "title", "description", "solution", "scheduledFrom", "scheduledTill", "completed", "deadline",
    "status", "priority", "owner", "person", "company", "category", "businessCase", "tags", "customFields",
})
DATE_KEYS = ("scheduledFrom", "scheduledTill", "completed", "deadline")
#: Entities with a ``solution`` (result) field in Raynet API v2; for the others it is not sent.
SOLUTION_ENTITIES = frozenset({"phoneCall", "task", "meeting"})
REFERENCE_KEYS = ("owner", "person", "company", "category", "businessCase")
STATUSES = ("NEW", "SCHEDULED", "COMPLETED", "CANCELLED")
PRIORITIES = ("MINOR", "DEFAULT", "CRITICAL")


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def entity_for(payload: dict[str, Any], settings: RaynetActivitySettings) -> str:
    """The Raynet entity a Daktela activity type is written to."""
    kind = payload.get("type")
    if _blank(kind):
        raise RaynetValidationError("the activity has no Daktela type (map activity_type to 'type')", field="type")
    entity = settings.entities.get(str(kind).strip().lower())
    if entity is None:
        raise RaynetValidationError(f"unknown Daktela activity type {kind!r}", field="type")
    return entity


def _reference(key: str, value: Any) -> int | None:
    if _blank(value):
        return None
    if isinstance(value, dict):
        value = value.get("id")
    text = str(value).strip()
    if not text.isdigit():
        raise RaynetValidationError(f"must be a Raynet record id (digits), got {value!r}", field=key)
    return int(text)


def _date(key: str, value: Any) -> str | None:
    """An activity datetime as Raynet's ISO-8601 in UTC; one without an offset is refused.

    The zone of a naive value is unknown here (the Daktela instance's? the Raynet user's?), so
    reading it as UTC would write a plausible time hours off: the mapping must give an offset.
    """
    if _blank(value):
        return None
    if isinstance(value, datetime):
        moment: datetime | None = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            raise RaynetValidationError(f"{value!r} is not an ISO-8601 datetime", field=key) from None
    if moment is None or moment.tzinfo is None or moment.utcoffset() is None:
        raise RaynetValidationError(f"datetime {value!r} has no UTC offset (use ISO-8601 with an offset)", field=key)
    return raynet_iso(moment)


def _tags(value: Any, *, create: bool) -> list[str] | str:
    if _blank(value):
        items: list[str] = []
    elif isinstance(value, str):
        items = [t.strip() for t in value.split(",") if t.strip()]
    elif isinstance(value, (list, tuple)):
        items = [str(t).strip() for t in value if not _blank(t)]
    else:
        raise RaynetValidationError(f"must be a list of tags, got {type(value).__name__}", field="tags")
    # Raynet API v2: an array on create (insert DTO), one comma-separated string on edit.
    return items if create else ",".join(items)


def build_body(
    entity: str,
    payload: dict[str, Any],
    *,
    settings: RaynetActivitySettings,
    owner: int | None,
    create: bool,
    ext_id: str | None,
) -> dict[str, Any]:
    """The JSON body of ``PUT /{entity}/`` (create) or ``POST /{entity}/{id}/`` (edit)."""
    unknown = sorted(k for k in payload if k not in WRITABLE_KEYS and k not in WRITE_ONLY_KEYS and k != "id")
    if unknown:
        raise RaynetValidationError(
            f"not a writable Raynet activity field (allowed: {', '.join(sorted(WRITABLE_KEYS))})", field=unknown[0]
        )
    body: dict[str, Any] = {}
    for key, value in payload.items():
        if key in WRITE_ONLY_KEYS or key in ("id", "extId"):
            continue
        if key == "solution" and entity not in SOLUTION_ENTITIES:
            continue  # e-mails, events and letters have no result field (documented in docs/crms/raynet.md)
        if key in DATE_KEYS:
            body[key] = _date(key, value)
        elif key in REFERENCE_KEYS:
            body[key] = _reference(key, value)
        elif key == "tags":
            body[key] = _tags(value, create=create)
        elif key == "customFields":
            if value is not None and not isinstance(value, dict):
                raise RaynetValidationError("must be an object {fieldKey: value}", field="customFields")
            body[key] = value or {}
        elif key == "status":
            if not _blank(value) and str(value) not in STATUSES:
                raise RaynetValidationError(f"{value!r} is not one of {', '.join(STATUSES)}", field="status")
            body[key] = None if _blank(value) else str(value)
        elif key == "priority":
            if str(value) not in PRIORITIES:
                raise RaynetValidationError(f"{value!r} is not one of {', '.join(PRIORITIES)}", field="priority")
            body[key] = str(value)
        else:
            body[key] = value
    if owner is not None and body.get("owner") is None:
        body["owner"] = owner
    if create:
        body.setdefault("priority", settings.priority)
        if _blank(body.get("title")):
            raise RaynetValidationError("is required by Raynet on create", field="title")
        if body.get("owner") is None:
            raise RaynetValidationError(
                "is required by Raynet on create: map link.agent_email to a Raynet user or set "
                "crm.activities.owner_id", field="owner",
            )
        if ext_id is not None:
            body["extId"] = ext_id
    if entity == "task" and create:
        body.setdefault("resolver", body["owner"])
        if body.get("deadline") is None:
            body["deadline"] = body.get("scheduledFrom") or body.get("completed")
        if body.get("deadline") is None:
            raise RaynetValidationError("a Raynet task needs a deadline (map the activity time)", field="deadline")
    return body


def normalise_email(value: Any) -> str | None:
    if _blank(value) or not isinstance(value, str) or "@" not in value:
        return None
    return value.strip().casefold()


@dataclass
class PhoneNormaliser:
    """E.164 form of phone numbers as Raynet stores them ("as typed": ``+420 553 401 547``)."""

    region: str
    _reader: PhoneReader = field(init=False)

    def __post_init__(self) -> None:
        self._reader = PhoneReader(self.region)

    def numbers(self, value: Any) -> list[str]:
        if _blank(value):
            return []
        values = value if isinstance(value, (list, tuple)) else [value]
        found: list[str] = []
        for item in values:
            if _blank(item):
                continue
            reading = self._reader.read(str(item))
            found.extend(phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164) for n in reading.numbers)
        return found


@dataclass
class PersonIndex:
    """Persons by normalised phone and e-mail, built from one paged scan of ``/person/``.

    One list request serves 1000 persons, so matching a whole run's activities costs
    ``ceil(persons / 1000)`` requests instead of one lookup per activity (Raynet has no
    phone filter at all: API v2 lists ``contactInfo.email`` filters only).
    """

    phones: PhoneNormaliser
    #: Staff (persons with a user account) are never an activity's customer when crmsync does not
    #: sync them as contacts (``contacts_exclude_users``): an internal call or an agent's own
    #: mailbox must not land on an employee's timeline. They stay owner candidates.
    customers_exclude_users: bool = True
    by_phone: dict[str, set[str]] = field(default_factory=dict)
    by_email: dict[str, set[str]] = field(default_factory=dict)
    company_of: dict[str, str | None] = field(default_factory=dict)
    users_by_email: dict[str, str] = field(default_factory=dict)

    def add(self, person: dict[str, Any]) -> None:
        person_id = str(person.get("id"))
        info = person.get("contactInfo") or {}
        staff = bool(person.get("userAccount") or person.get("activeUserAccount"))
        if staff:
            email = normalise_email(info.get("email"))
            if email:
                self.users_by_email[email] = person_id
            if self.customers_exclude_users:
                return
        for key in ("tel1", "tel2"):
            for number in self.phones.numbers(info.get(key)):
                self.by_phone.setdefault(number, set()).add(person_id)
        for key in ("email", "email2"):
            email = normalise_email(info.get(key))
            if email:
                self.by_email.setdefault(email, set()).add(person_id)
        relationship = person.get("primaryRelationship") or {}
        company = relationship.get("company") if isinstance(relationship, dict) else None
        self.company_of[person_id] = _ref_text(company)

    def candidates(self, link: dict[str, Any], link_by: Iterable[str]) -> tuple[set[str], str | None]:
        """Persons matching the activity's phone/e-mail, and which key matched."""
        found: set[str] = set()
        how: str | None = None
        for key in link_by:
            hits: set[str] = set()
            if key == "phone":
                for number in self.phones.numbers(link.get("phone")):
                    hits |= self.by_phone.get(number, set())
            elif key == "email":
                email = normalise_email(link.get("email"))
                if email:
                    hits |= self.by_email.get(email, set())
            if hits and how is None:
                how = key
            found |= hits
        return found, how


def _ref_text(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("id")
    return None if value in (None, "") else str(value)


def now_utc() -> datetime:
    return datetime.now(UTC)
