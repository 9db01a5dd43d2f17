"""The HubSpot simulator's data: objects, the property registry, associations and search.

Pure Python, no HTTP: ``simulator.py`` puts the wire format around it. What it enforces is
what the adapter must survive on a real portal (docs/crms/hubspot.md, and section 13 of the
HubSpot reference notes): every property value is a string, unknown or read-only properties
and bad enum options are refused per field, unique properties are unique across create,
update and upsert, upsert needs a unique ``idProperty``, association type ids must fit the
object pair, and search pages stop at the 10,000-result cap.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from crmsync_pipelines.crm.sim_state import reading_state

OBJECT_TYPES = ("companies", "contacts", "calls", "emails", "communications", "notes")
ENGAGEMENTS = ("calls", "emails", "communications", "notes")

#: Default association type ids (HubSpot-defined, v4): (from, to) -> id.
ASSOCIATION_TYPES: dict[tuple[str, str], int] = {
    ("calls", "contacts"): 194, ("contacts", "calls"): 193,
    ("calls", "companies"): 182, ("companies", "calls"): 181,
    ("emails", "contacts"): 198, ("contacts", "emails"): 197,
    ("emails", "companies"): 186, ("companies", "emails"): 185,
    ("communications", "contacts"): 81, ("contacts", "communications"): 82,
    ("communications", "companies"): 87, ("companies", "communications"): 88,
    ("notes", "contacts"): 202, ("contacts", "notes"): 201,
    ("notes", "companies"): 190, ("companies", "notes"): 189,
    ("contacts", "companies"): 1, ("companies", "contacts"): 2,
}

#: Default call dispositions of a new portal (the GUIDs HubSpot ships).
DEFAULT_DISPOSITIONS = frozenset({
    "f240bbac-87c9-4f6e-bf70-924b57d47db7", "9d9162e7-6cf3-4944-bf63-4dff82258764",
    "73a0d17f-1163-4015-bdd5-ec830791da20", "b2cf5968-551e-4856-9783-52b3da59a7d0",
    "a4c4c377-d246-4b32-a13b-75a56a4cd0ff", "17b47fee-58de-441e-a44c-c6300d46f273",
})

_MODIFIED = {t: ("lastmodifieddate" if t == "contacts" else "hs_lastmodifieddate") for t in OBJECT_TYPES}
_CREATED = {t: ("createdate" if t in ("contacts", "companies") else "hs_createdate") for t in OBJECT_TYPES}
_DEFAULTS: dict[str, tuple[str, ...]] = {
    "companies": ("name", "domain", "createdate", "hs_lastmodifieddate", "hs_object_id"),
    "contacts": ("firstname", "lastname", "email", "createdate", "lastmodifieddate", "hs_object_id"),
    "calls": ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
    "emails": ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
    "communications": ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
    "notes": ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
}
_SEARCHABLE = {
    "companies": ("name", "domain", "website", "phone"),
    "contacts": ("firstname", "lastname", "email", "phone", "mobilephone", "company"),
}
MAX_GROUPS, MAX_FILTERS_PER_GROUP, MAX_FILTERS = 5, 10, 25


@dataclass
class PropertyDef:
    name: str
    type: str = "string"  # string | number | enumeration | datetime
    options: frozenset[str] | None = None
    unique: bool = False
    read_only: bool = False


def _defs(*items: PropertyDef) -> dict[str, PropertyDef]:
    return {p.name: p for p in items}


def _strings(*names: str) -> list[PropertyDef]:
    return [PropertyDef(n) for n in names]


def _system(object_type: str) -> list[PropertyDef]:
    return [PropertyDef("hs_object_id", "number", read_only=True),
            PropertyDef(_MODIFIED[object_type], "datetime", read_only=True),
            PropertyDef(_CREATED[object_type], "datetime", read_only=True),
            PropertyDef("hubspot_owner_id")]


def default_registry(dispositions: Iterable[str] = DEFAULT_DISPOSITIONS) -> dict[str, dict[str, PropertyDef]]:
    """The built-in properties of each object a fresh portal has (the subset crmsync touches)."""
    timestamp = PropertyDef("hs_timestamp", "datetime")
    return {
        "companies": _defs(*_system("companies"), *_strings("name", "domain", "phone", "website", "city", "country",
                                                            "address", "zip", "industry", "description")),
        "contacts": _defs(*_system("contacts"), *_strings("firstname", "lastname", "email", "phone", "mobilephone",
                                                          "company", "jobtitle", "city", "country"),
                          PropertyDef("associatedcompanyid", "number")),
        "calls": _defs(*_system("calls"), timestamp, *_strings(
            "hs_call_title", "hs_call_body", "hs_call_from_number", "hs_call_to_number", "hs_call_recording_url",
            "hs_call_callee_object_type", "hs_call_source"),
            PropertyDef("hs_call_callee_object_id", "number"),
            PropertyDef("hs_call_direction", "enumeration", frozenset({"INBOUND", "OUTBOUND"})),
            PropertyDef("hs_call_duration", "number"),
            PropertyDef("hs_call_status", "enumeration", frozenset({
                "BUSY", "CALLING_CRM_USER", "CANCELED", "COMPLETED", "CONNECTING", "FAILED", "IN_PROGRESS",
                "MISSED", "NO_ANSWER", "QUEUED", "RINGING"})),
            PropertyDef("hs_call_disposition", "enumeration", frozenset(dispositions))),
        "emails": _defs(*_system("emails"), timestamp, *_strings(
            "hs_email_subject", "hs_email_text", "hs_email_html", "hs_email_headers"),
            PropertyDef("hs_email_direction", "enumeration", frozenset({"EMAIL", "INCOMING_EMAIL", "FORWARDED_EMAIL"})),
            PropertyDef("hs_email_status", "enumeration", frozenset({"BOUNCED", "FAILED", "SCHEDULED", "SENDING",
                                                                     "SENT"}))),
        "communications": _defs(*_system("communications"), timestamp, PropertyDef("hs_communication_body"),
                                PropertyDef("hs_communication_channel_type", "enumeration",
                                            frozenset({"SMS", "WHATS_APP", "LINKEDIN_MESSAGE"})),
                                PropertyDef("hs_communication_logged_from", "enumeration", frozenset({"CRM"}))),
        "notes": _defs(*_system("notes"), timestamp, PropertyDef("hs_note_body")),
    }


class HubSpotError(Exception):
    """A refusal in HubSpot's error shape; ``simulator.py`` renders it."""

    def __init__(self, status: int, category: str, message: str, *, errors: list[dict[str, Any]] | None = None,
                 context: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.category = category
        self.message = message
        self.errors = errors or []
        self.context = context or {}


def iso_ms(moment: datetime) -> str:
    """HubSpot's datetime output: ISO 8601 UTC with milliseconds and ``Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_instant(value: Any) -> datetime | None:
    """Epoch milliseconds (number or digit string) or ISO 8601, as HubSpot accepts both."""
    if value is None:
        return None
    text = str(value).strip()
    if re.fullmatch(r"-?\d+", text):
        return datetime.fromtimestamp(int(text) / 1000, UTC)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _epoch_ms(value: Any) -> int | None:
    moment = parse_instant(value)
    return None if moment is None else int(moment.timestamp() * 1000)


@dataclass
class StoredObject:
    id: str
    properties: dict[str, str | None]
    created: datetime
    updated: datetime
    visible_at: float = 0.0

    def render(self, object_type: str, wanted: Iterable[str] | None) -> dict[str, Any]:
        names = list(_DEFAULTS[object_type]) + [w for w in (wanted or []) if w not in _DEFAULTS[object_type]]
        props = {name: self.properties.get(name) for name in names}
        return {"id": self.id, "properties": props, "createdAt": iso_ms(self.created),
                "updatedAt": iso_ms(self.updated), "archived": False}


@dataclass
class SimStore:
    """Every object, property and association of one simulated portal (thread-safe)."""

    dispositions: Iterable[str] = DEFAULT_DISPOSITIONS
    #: Whether engagement objects may hold unique properties (unverified on real portals).
    engagement_unique_allowed: bool = True
    #: Search sees a write only this many ms after it happened (the search index lag).
    index_lag_ms: float = 0.0
    lock: threading.RLock = field(default_factory=threading.RLock)

    def __post_init__(self) -> None:
        self.registry = default_registry(self.dispositions)
        self.objects: dict[str, dict[str, StoredObject]] = {t: {} for t in OBJECT_TYPES}
        self.unique_index: dict[tuple[str, str], dict[str, str]] = {}
        self.associations: set[tuple[str, str, str, str]] = set()
        self.groups: dict[str, set[str]] = {}
        self._ids = itertools.count(1001)

    # -- persistence -----------------------------------------------------------------------
    def dump(self, path: Any) -> None:
        """Write every object, custom property, group and association to a JSON file (atomically)."""
        import json
        from pathlib import Path

        with self.lock:
            next_id = next(self._ids)
            data = {
                "next_id": next_id,
                "objects": {t: [{"id": o.id, "properties": o.properties, "created": o.created.isoformat(),
                                 "updated": o.updated.isoformat()} for o in objs.values()]
                            for t, objs in self.objects.items()},
                "custom_properties": [{"object": t, "name": p.name, "type": p.type, "unique": p.unique,
                                       "options": sorted(p.options) if p.options is not None else None}
                                      for t, props in self.registry.items() for p in props.values()
                                      if p.name not in default_registry(self.dispositions)[t]],
                "associations": sorted(self.associations),
                "groups": {t: sorted(g) for t, g in self.groups.items()},
            }
            self._ids = itertools.count(next_id)
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        scratch = target.with_suffix(target.suffix + ".tmp")
        scratch.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        scratch.replace(target)

    def load(self, path: Any) -> None:
        """Replace the state with a ``dump``; unique indexes are rebuilt from the objects."""
        import json
        from pathlib import Path

        with reading_state(Path(path), "HubSpot"):
            self._load(json.loads(Path(path).read_text(encoding="utf-8")))

    def _load(self, data: Any) -> None:
        if not isinstance(data, dict):
            raise TypeError("the state is not a JSON object")
        with self.lock:
            self.__post_init__()
            for entry in data.get("custom_properties", []):
                options = frozenset(entry["options"]) if entry.get("options") is not None else None
                self.registry[entry["object"]][entry["name"]] = PropertyDef(entry["name"], entry["type"], options,
                                                                           bool(entry["unique"]))
                if entry["unique"]:
                    self.unique_index[(entry["object"], entry["name"])] = {}
            for object_type, objects in data.get("objects", {}).items():
                for raw in objects:
                    obj = StoredObject(raw["id"], raw["properties"], datetime.fromisoformat(raw["created"]),
                                       datetime.fromisoformat(raw["updated"]))
                    self.objects[object_type][obj.id] = obj
                    self._index(object_type, obj, {})
            self.associations = {(a[0], a[1], a[2], a[3]) for a in data.get("associations", [])}
            self.groups = {t: set(g) for t, g in data.get("groups", {}).items()}
            self._ids = itertools.count(int(data.get("next_id", 1001)))

    # -- properties ------------------------------------------------------------------------
    def create_property(self, object_type: str, body: dict[str, Any]) -> dict[str, Any]:
        self._require_type(object_type)
        name = str(body.get("name") or "").strip()
        if not name or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise HubSpotError(400, "VALIDATION_ERROR", f"Property name {name!r} is invalid",
                               errors=[{"message": "invalid name", "in": "name", "code": "INVALID_NAME"}])
        unique = bool(body.get("hasUniqueValue"))
        with self.lock:
            if name in self.registry[object_type]:
                raise HubSpotError(409, "OBJECT_ALREADY_EXISTS", f"Property {name} already exists")
            if unique and object_type in ENGAGEMENTS and not self.engagement_unique_allowed:
                raise HubSpotError(400, "VALIDATION_ERROR", f"Unique properties are not supported on {object_type}")
            if unique and sum(p.unique for p in self.registry[object_type].values()) >= 10:
                raise HubSpotError(400, "VALIDATION_ERROR", "An object can have at most 10 unique properties")
            kind = {"number": "number", "datetime": "datetime", "enumeration": "enumeration"}.get(
                str(body.get("type")), "string")
            options = None
            if kind == "enumeration":
                options = frozenset(str(o.get("value")) for o in body.get("options") or [])
            self.registry[object_type][name] = PropertyDef(name, kind, options, unique)
            if unique:
                self.unique_index[(object_type, name)] = {}
        return self.describe_property(object_type, name)

    def create_group(self, object_type: str, body: dict[str, Any]) -> dict[str, Any]:
        """Property groups: names are unique per object (409 on a second create)."""
        self._require_type(object_type)
        name = str(body.get("name") or "").strip()
        if not name or not body.get("label"):
            raise HubSpotError(400, "VALIDATION_ERROR", "a property group needs name and label")
        with self.lock:
            if name in self.groups.setdefault(object_type, set()):
                raise HubSpotError(409, "OBJECT_ALREADY_EXISTS", f"Property group {name} already exists")
            self.groups[object_type].add(name)
        return {"name": name, "label": body["label"], "displayOrder": -1, "archived": False}

    def describe_property(self, object_type: str, name: str) -> dict[str, Any]:
        self._require_type(object_type)
        prop = self.registry[object_type].get(name)
        if prop is None:
            raise HubSpotError(404, "OBJECT_NOT_FOUND", f"Unable to find property {name} on {object_type}")
        return {"name": prop.name, "type": prop.type, "hasUniqueValue": prop.unique,
                "modificationMetadata": {"readOnlyValue": prop.read_only}}

    # -- validation ------------------------------------------------------------------------
    def _require_type(self, object_type: str) -> None:
        if object_type not in OBJECT_TYPES:
            raise HubSpotError(400, "VALIDATION_ERROR", f"Unable to infer object type from: {object_type}")

    def _clean(self, object_type: str, properties: Any, *, creating: bool) -> dict[str, str | None]:
        if not isinstance(properties, dict):
            raise HubSpotError(400, "VALIDATION_ERROR", "properties must be an object")
        registry = self.registry[object_type]
        errors: list[dict[str, Any]] = []
        clean: dict[str, str | None] = {}
        for name, raw in properties.items():
            prop = registry.get(name)
            if prop is None:
                errors.append({"message": f'Property "{name}" does not exist', "code": "PROPERTY_DOESNT_EXIST",
                               "in": name, "context": {"propertyName": [name]}})
                continue
            if prop.read_only:
                errors.append({"message": f'Property "{name}" is read-only', "code": "READ_ONLY_VALUE", "in": name,
                               "context": {"propertyName": [name]}})
                continue
            value = None if raw is None or raw == "" else (str(raw).lower() if isinstance(raw, bool) else str(raw))
            if value is not None:
                problem = self._check_value(prop, value)
                if problem is not None:
                    errors.append({"message": f'{value} was not a valid {problem[1]}.', "code": problem[0],
                                   "in": name, "context": {"propertyName": [name]}})
                    continue
                if prop.type == "datetime":
                    value = iso_ms(parse_instant(value))  # type: ignore[arg-type]
            clean[name] = value
        if creating and object_type in ENGAGEMENTS and not clean.get("hs_timestamp"):
            errors.append({"message": 'Property "hs_timestamp" is required', "code": "REQUIRED_PROPERTY",
                           "in": "hs_timestamp", "context": {"propertyName": ["hs_timestamp"]}})
        if creating and object_type == "communications":
            if not clean.get("hs_communication_channel_type"):
                errors.append({"message": 'Property "hs_communication_channel_type" is required',
                               "code": "REQUIRED_PROPERTY", "in": "hs_communication_channel_type",
                               "context": {"propertyName": ["hs_communication_channel_type"]}})
            if clean.get("hs_communication_logged_from") != "CRM":
                errors.append({"message": 'Property "hs_communication_logged_from" must be CRM',
                               "code": "INVALID_OPTION", "in": "hs_communication_logged_from",
                               "context": {"propertyName": ["hs_communication_logged_from"]}})
        if errors:
            summary = "; ".join(e["message"] for e in errors)
            raise HubSpotError(400, "VALIDATION_ERROR", f"Property values were not valid: {summary}", errors=errors)
        return clean

    @staticmethod
    def _check_value(prop: PropertyDef, value: str) -> tuple[str, str] | None:
        if prop.type == "number":
            try:
                float(value)
            except ValueError:
                return "INVALID_INTEGER", "number"
        elif prop.type == "enumeration" and prop.options is not None and value not in prop.options:
            return "INVALID_OPTION", f"option (allowed: {', '.join(sorted(prop.options))})"
        elif prop.type == "datetime" and parse_instant(value) is None:
            return "INVALID_DATE", "datetime (epoch milliseconds or ISO 8601)"
        return None

    def _check_unique(self, object_type: str, values: dict[str, str | None], own_id: str | None) -> None:
        for (kind, name), index in self.unique_index.items():
            if kind != object_type or values.get(name) is None:
                continue
            holder = index.get(str(values[name]))
            if holder is not None and holder != own_id:
                raise HubSpotError(409, "CONFLICT", f"{holder} already has that value.",
                                   errors=[{"message": f"{holder} already has that value.",
                                            "code": "DUPLICATE_VALUE", "in": name,
                                            "context": {"propertyName": [name], "existingId": [holder]}}],
                                   context={"existingId": [holder]})

    def check(self, object_type: str, properties: Any, own_id: str | None, *, creating: bool) -> None:
        """Raise the error a write of ``properties`` would get, without writing."""
        with self.lock:
            self._check_unique(object_type, self._clean(object_type, properties, creating=creating), own_id)

    def _index(self, object_type: str, obj: StoredObject, old: dict[str, str | None]) -> None:
        for (kind, name), index in self.unique_index.items():
            if kind != object_type:
                continue
            if old.get(name) is not None and index.get(str(old[name])) == obj.id:
                del index[str(old[name])]
            if obj.properties.get(name) is not None:
                index[str(obj.properties[name])] = obj.id

    # -- writes ----------------------------------------------------------------------------
    def _stamp(self, object_type: str, obj: StoredObject, at: datetime) -> None:
        obj.updated = at
        obj.properties[_MODIFIED[object_type]] = iso_ms(at)
        obj.visible_at = time.monotonic() + self.index_lag_ms / 1000

    def create(self, object_type: str, properties: Any, associations: Any = None, *,
               at: datetime | None = None, created: datetime | None = None) -> StoredObject:
        self._require_type(object_type)
        with self.lock:
            clean = self._clean(object_type, properties, creating=True)
            self._check_unique(object_type, clean, None)
            links = self._parse_inline(object_type, associations)
            now = at or datetime.now(UTC)
            record_id = str(next(self._ids))
            obj = StoredObject(record_id, {k: v for k, v in clean.items() if v is not None}, created or now, now)
            obj.properties["hs_object_id"] = record_id
            obj.properties[_CREATED[object_type]] = iso_ms(created or now)
            self._stamp(object_type, obj, now)
            self.objects[object_type][record_id] = obj
            self._index(object_type, obj, {})
            for to_type, to_id in links:
                self.associations.add((object_type, record_id, to_type, to_id))
            return obj

    def update(self, object_type: str, record_id: str, properties: Any, *, at: datetime | None = None) -> StoredObject:
        self._require_type(object_type)
        with self.lock:
            obj = self.objects[object_type].get(record_id)
            if obj is None:
                raise HubSpotError(404, "OBJECT_NOT_FOUND", f"Object {record_id} of type {object_type} not found")
            clean = self._clean(object_type, properties, creating=False)
            self._check_unique(object_type, clean, record_id)
            old = dict(obj.properties)
            for name, value in clean.items():
                if value is None:
                    obj.properties.pop(name, None)
                else:
                    obj.properties[name] = value
            self._stamp(object_type, obj, at or datetime.now(UTC))
            self._index(object_type, obj, old)
            return obj

    def archive(self, object_type: str, record_id: str) -> None:
        """DELETE: the record leaves reads, searches, its unique values and its associations."""
        with self.lock:
            obj = self.objects[object_type].pop(record_id, None)
            if obj is None:
                return
            self._index(object_type, StoredObject(obj.id, {}, obj.created, obj.updated), obj.properties)
            self.associations = {a for a in self.associations if (a[0], a[1]) != (object_type, record_id)
                                 and (a[2], a[3]) != (object_type, record_id)}

    def resolve(self, object_type: str, value: str, id_property: str | None) -> StoredObject | None:
        """The object an ``id`` (or ``idProperty`` value) names, or None."""
        with self.lock:
            if not id_property or id_property == "hs_object_id":
                return self.objects[object_type].get(str(value))
            prop = self.registry[object_type].get(id_property)
            if prop is None:
                raise HubSpotError(400, "VALIDATION_ERROR", f"Property {id_property} does not exist")
            if prop.unique:
                holder = self.unique_index[(object_type, id_property)].get(str(value))
                return None if holder is None else self.objects[object_type].get(holder)
            if id_property == "email" and object_type == "contacts":
                return next((o for o in self.objects[object_type].values()
                             if str(o.properties.get("email") or "").lower() == str(value).lower()), None)
            raise HubSpotError(400, "VALIDATION_ERROR",
                               f"Unable to perform update/upsert by non-unique {object_type} property: {id_property}")

    def require_unique(self, object_type: str, id_property: str) -> None:
        prop = self.registry[object_type].get(id_property)
        if prop is None or not prop.unique:
            raise HubSpotError(400, "VALIDATION_ERROR",
                               f"Unable to perform update/upsert by non-unique {object_type} property: {id_property}")

    # -- associations ----------------------------------------------------------------------
    def _parse_inline(self, object_type: str, associations: Any) -> list[tuple[str, str]]:
        links: list[tuple[str, str]] = []
        for entry in associations or []:
            to_id = str(((entry or {}).get("to") or {}).get("id") or "")
            types = (entry or {}).get("types") or []
            if not to_id or not types:
                raise HubSpotError(400, "VALIDATION_ERROR", "associations need to.id and types")
            for spec in types:
                type_id = spec.get("associationTypeId")
                to_type = next((t for (f, t), i in ASSOCIATION_TYPES.items() if f == object_type and i == type_id),
                               None)
                if spec.get("associationCategory") != "HUBSPOT_DEFINED" or to_type is None:
                    raise HubSpotError(400, "VALIDATION_ERROR",
                                       f"association type id {type_id} is not valid for {object_type}",
                                       errors=[{"message": "invalid association type", "code": "INVALID_ASSOCIATION",
                                                "in": "associations"}])
                if to_id not in self.objects[to_type]:
                    raise HubSpotError(400, "VALIDATION_ERROR", f"{to_type} {to_id} does not exist",
                                       errors=[{"message": f"{to_type} {to_id} does not exist",
                                                "code": "INVALID_OBJECT_ID", "in": "associations"}])
                links.append((to_type, to_id))
        return links

    def associate(self, from_type: str, from_id: str, to_type: str, to_id: str) -> None:
        with self.lock:
            if (from_type, to_type) not in ASSOCIATION_TYPES:
                raise HubSpotError(400, "VALIDATION_ERROR", f"{from_type} cannot be associated with {to_type}")
            if from_id not in self.objects[from_type] or to_id not in self.objects[to_type]:
                raise HubSpotError(404, "OBJECT_NOT_FOUND", f"{from_type} {from_id} or {to_type} {to_id} not found")
            if (to_type, to_id, from_type, from_id) not in self.associations:
                self.associations.add((from_type, from_id, to_type, to_id))

    def associated(self, from_type: str, from_id: str, to_type: str) -> list[str]:
        with self.lock:
            found = {t_id for f, f_id, t, t_id in self.associations if (f, f_id, t) == (from_type, from_id, to_type)}
            found |= {f_id for f, f_id, t, t_id in self.associations if (t, t_id, f) == (from_type, from_id, to_type)}
        return sorted(found, key=int)

    # -- search ----------------------------------------------------------------------------
    def search(self, object_type: str, body: dict[str, Any], *, cap: int) -> dict[str, Any]:
        self._require_type(object_type)
        groups = body.get("filterGroups") or []
        total_filters = sum(len(g.get("filters") or []) for g in groups)
        if len(groups) > MAX_GROUPS or total_filters > MAX_FILTERS or any(
                len(g.get("filters") or []) > MAX_FILTERS_PER_GROUP for g in groups):
            raise HubSpotError(400, "VALIDATION_ERROR", f"Too many filters: at most {MAX_GROUPS} groups, "
                               f"{MAX_FILTERS_PER_GROUP} filters per group and {MAX_FILTERS} in total")
        limit = int(body.get("limit") or 10)
        if limit < 1 or limit > 200:
            raise HubSpotError(400, "VALIDATION_ERROR", "limit must be between 1 and 200")
        after = int(str(body.get("after") or "0") or 0)
        if after >= cap:
            raise HubSpotError(400, "VALIDATION_ERROR",
                               f"The maximum number of results for a search is {cap}; paging past it is not allowed")
        query = str(body.get("query") or "").strip().lower()
        now = time.monotonic()
        with self.lock:
            candidates = [o for o in self.objects[object_type].values() if o.visible_at <= now]
            matches = [o for o in candidates
                       if (not groups or any(self._group(object_type, o, g.get("filters") or []) for g in groups))
                       and (not query or self._text(object_type, o, query))]
        sorts = body.get("sorts") or [{"propertyName": "hs_object_id", "direction": "ASCENDING"}]
        first = sorts[0] if isinstance(sorts[0], dict) else {"propertyName": str(sorts[0])}
        name = str(first.get("propertyName") or "hs_object_id")
        reverse = str(first.get("direction", "ASCENDING")).upper() == "DESCENDING"
        matches.sort(key=lambda o: (self._sort_key(object_type, name, o), int(o.id)), reverse=reverse)
        page = matches[after:after + limit]
        result: dict[str, Any] = {"total": len(matches),
                                  "results": [o.render(object_type, body.get("properties")) for o in page]}
        if after + limit < len(matches):
            result["paging"] = {"next": {"after": str(after + limit)}}
        return result

    def _value(self, object_type: str, obj: StoredObject, name: str) -> str | None:
        return obj.id if name in ("hs_object_id", "id") else obj.properties.get(name)

    def _sort_key(self, object_type: str, name: str, obj: StoredObject) -> tuple[int, Any]:
        value = self._value(object_type, obj, name)
        prop = self.registry[object_type].get(name)
        if value is None:
            return (1, 0)
        if prop is not None and prop.type in ("number", "datetime"):
            return (0, float(value))
        return (0, str(value).lower())

    def _group(self, object_type: str, obj: StoredObject, filters: list[dict[str, Any]]) -> bool:
        return all(self._filter(object_type, obj, f) for f in filters)

    def _filter(self, object_type: str, obj: StoredObject, spec: dict[str, Any]) -> bool:
        name = str(spec.get("propertyName") or "")
        operator = str(spec.get("operator") or "EQ").upper()
        prop = self.registry[object_type].get(name)
        if prop is None and name != "id":
            raise HubSpotError(400, "VALIDATION_ERROR", f"Property {name} does not exist on {object_type}")
        kind = prop.type if prop is not None else "number"
        actual = self._value(object_type, obj, name)
        if operator == "HAS_PROPERTY":
            return actual is not None
        if operator == "NOT_HAS_PROPERTY":
            return actual is None
        if operator in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
            pattern = re.escape(str(spec.get("value") or "").lower()).replace(r"\*", ".*")
            hit = actual is not None and any(re.fullmatch(pattern, t) for t in re.split(r"[\s@.,;]+", actual.lower()))
            return hit if operator == "CONTAINS_TOKEN" else not hit
        if operator in ("IN", "NOT_IN"):
            values = spec.get("values")
            if not isinstance(values, list):
                raise HubSpotError(400, "VALIDATION_ERROR", f"{operator} needs a values list")
            hit = actual is not None and any(self._equal(kind, actual, v) for v in values)
            return hit if operator == "IN" else not hit
        if actual is None:
            return operator == "NEQ"
        if operator == "EQ":
            return self._equal(kind, actual, spec.get("value"))
        if operator == "NEQ":
            return not self._equal(kind, actual, spec.get("value"))
        if operator == "BETWEEN":
            low, high = self._ordered(kind, spec.get("value")), self._ordered(kind, spec.get("highValue"))
            current = self._ordered(kind, actual)
            return None not in (low, high, current) and low <= current <= high
        left, right = self._ordered(kind, actual), self._ordered(kind, spec.get("value"))
        if left is None or right is None:
            raise HubSpotError(400, "VALIDATION_ERROR", f"{spec.get('value')!r} is not a valid value for {name}")
        comparisons = {"LT": left < right, "LTE": left <= right, "GT": left > right, "GTE": left >= right}
        if operator not in comparisons:
            raise HubSpotError(400, "VALIDATION_ERROR", f"Unknown operator {operator}")
        return comparisons[operator]

    @staticmethod
    def _ordered(kind: str, value: Any) -> Any:
        if value is None:
            return None
        if kind == "datetime":
            return _epoch_ms(value)
        if kind == "number":
            try:
                return float(value)
            except (TypeError, ValueError):
                return None
        return str(value).lower()

    def _equal(self, kind: str, actual: str, wanted: Any) -> bool:
        if kind in ("datetime", "number"):
            return self._ordered(kind, actual) == self._ordered(kind, wanted)
        return str(actual).strip().lower() == str(wanted).strip().lower()

    def _text(self, object_type: str, obj: StoredObject, query: str) -> bool:
        fields = _SEARCHABLE.get(object_type, ())
        words = [w for w in query.split() if w]
        haystack = " ".join(str(obj.properties.get(f) or "") for f in fields).lower()
        tokens = re.split(r"[\s@.,;]+", haystack)
        return all(any(t.startswith(w.rstrip("*")) for t in tokens) or w in haystack for w in words)
