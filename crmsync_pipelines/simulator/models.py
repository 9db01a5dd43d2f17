"""The schema of every simulated model: field kinds, keys, relations and write rules.

Filters, sorting, projection, validation and relation expansion all read this one table, so
a model behaves the same on every route.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Kind(StrEnum):
    """How a field is stored, compared and rendered."""

    STR = "str"
    INT = "int"
    BOOL = "bool"
    DATETIME = "datetime"
    JSON = "json"
    REL = "rel"
    RELLIST = "rellist"
    CUSTOM = "custom"
    ITEM = "item"


@dataclass(frozen=True)
class Field:
    """One field of a model; ``target`` is the related model for REL/RELLIST."""

    kind: Kind = Kind.STR
    target: str | None = None
    writable: bool = True


@dataclass(frozen=True)
class ModelDef:
    """A served model and the rules the real server applies to it."""

    name: str
    fields: dict[str, Field]
    key: str = "name"
    int_key: bool = False
    ts_field: str | None = None
    required: tuple[str, ...] = ()
    required_on_create: tuple[str, ...] = ()
    cf_scheme: dict[str, dict[str, Any]] = field(default_factory=dict)
    name_prefix: str = ""
    has_edited: bool = False

    @property
    def relation_fields(self) -> dict[str, Field]:
        return {n: f for n, f in self.fields.items() if f.kind in (Kind.REL, Kind.RELLIST)}


S, N, B, D, J = Field(Kind.STR), Field(Kind.INT), Field(Kind.BOOL), Field(Kind.DATETIME), Field(Kind.JSON)
RO_D = Field(Kind.DATETIME, writable=False)
CF = Field(Kind.CUSTOM)


def rel(target: str) -> Field:
    return Field(Kind.REL, target)


def _cf(kind: str, title: str) -> dict[str, Any]:
    return {"type": kind, "title": title, "hidden": False, "readonly": False}


CONTACT_CF_SCHEME = {
    "email": _cf("EMAIL", "E-mail"),
    "number": _cf("PHONE", "Phone number"),
    "address": _cf("ADDRESS", "Address"),
    "note": _cf("TEXTAREA", "Note"),
}
ACCOUNT_CF_SCHEME = {
    "email": _cf("EMAIL", "E-mail"),
    "number": _cf("PHONE", "Phone number"),
    "web": _cf("TEXT", "Web"),
    "ico": _cf("TEXT", "Company ID"),
}

#: Activity ``type`` -> (channel model, webhook event prefix).
CHANNELS: dict[str, tuple[str, str]] = {
    "CALL": ("activitiesCall", "call"),
    "EMAIL": ("activitiesEmail", "email"),
    "CHAT": ("activitiesWeb", "web"),
    "SMS": ("activitiesSms", "sms"),
    "FBM": ("activitiesFbm", "fbm"),
    "WAP": ("activitiesWap", "wap"),
    "VBR": ("activitiesVbr", "vbr"),
}
ALIASES: dict[str, str] = {"activitiesChat": "activitiesWeb"}

_MESSAGING_FIELDS: dict[str, Field] = {
    "name": S, "title": S, "state": S, "user": rel("users"), "queue": rel("queues"),
    "contact": rel("contacts"), "connector": J, "answered": B, "duration": N, "time": D,
    "wait_time": N, "disconnection": S, "missed": S, "missed_time": D, "options": J,
    "sender": S, "external_contact": S, "direction": S,
}


def _messaging(name: str, extra: dict[str, Field] | None = None) -> ModelDef:
    fields = dict(_MESSAGING_FIELDS)
    fields.update(extra or {})
    return ModelDef(name, fields, ts_field="time", name_prefix=name.removeprefix("activities").lower())


MODELS: dict[str, ModelDef] = {
    m.name: m
    for m in [
        ModelDef(
            "contacts",
            {
                "name": S, "title": S, "firstname": S, "lastname": S, "database": rel("databases"),
                "account": rel("accounts"), "user": rel("users"), "description": S,
                "nps_score": Field(Kind.INT, writable=False), "created": RO_D, "edited": RO_D,
                "customFields": CF, "duplicateContacts": Field(Kind.JSON, writable=False),
                "notDuplicateContacts": Field(Kind.JSON, writable=False),
            },
            ts_field="edited", required=("title", "lastname"), required_on_create=("database",),
            cf_scheme=CONTACT_CF_SCHEME, name_prefix="contacts", has_edited=True,
        ),
        ModelDef(
            "accounts",
            {
                "name": S, "title": S, "database": rel("databases"), "sla": S, "user": rel("users"),
                "description": S, "created": RO_D, "edited": RO_D, "customFields": CF,
            },
            ts_field="edited", required=("title",), required_on_create=("database",),
            cf_scheme=ACCOUNT_CF_SCHEME, name_prefix="accounts", has_edited=True,
        ),
        ModelDef(
            "activities",
            {
                "name": S, "ticket": rel("tickets"), "title": S, "description": S, "important": B,
                "priority": N, "action": S, "type": S, "item": Field(Kind.ITEM), "queue": rel("queues"),
                "user": rel("users"), "contact": rel("contacts"),
                "statuses": Field(Kind.RELLIST, "statuses"), "options": J, "time": D, "time_wait": D,
                "time_open": D, "time_close": D, "duration": N, "ringing_time": N, "baw": N, "aaw": N,
                "focus_time": N, "focus_disruptions": N, "anonymized": B,
                "created_by": rel("users"), "customFields": CF, "record": J, "survey": J,
            },
            ts_field="time", name_prefix="activities",
        ),
        ModelDef(
            "activitiesCall",
            {
                "id_call": S, "call_time": D, "direction": S, "answered": B, "id_queue": rel("queues"),
                "id_agent": rel("users"), "clid": S, "prefix_clid_name": S, "did": S,
                "contact": rel("contacts"), "waiting_time": N, "ringing_time": N, "hold_time": N,
                "duration": N, "disposition_cause": S, "disconnection_cause": S, "pressed_key": S,
                "missed_call": N, "missed_call_time": D, "missed_callback": D, "attempts": N,
                "options": J, "cdr": J,
            },
            key="id_call", ts_field="call_time", name_prefix="call",
        ),
        ModelDef(
            "activitiesEmail",
            {
                "name": S, "queue": rel("queues"), "user": rel("users"), "contact": rel("contacts"),
                "title": S, "address": S, "direction": S, "wait_time": N, "duration": N, "answered": B,
                "text": S, "time": D, "state": S, "options": J,
            },
            ts_field="time", name_prefix="emails",
        ),
        _messaging("activitiesWeb", {"email": S, "phone": S, "referer": S, "ipaddress": S}),
        _messaging("activitiesSms"),
        _messaging("activitiesFbm"),
        _messaging("activitiesWap"),
        _messaging("activitiesVbr"),
        ModelDef(
            "users",
            {
                "name": S, "title": S, "alias": S, "firstname": S, "lastname": S, "email": S,
                "emailAuth": S, "extension": S, "extension_state": S, "type": S, "timezone": S,
                "profile": J, "role": J, "deactivated": B, "deleted": B, "backoffice_user": B,
                "options": J,
            },
            required=("title",), name_prefix="users",
        ),
        ModelDef(
            "queues",
            {
                "name": N, "title": S, "alias": S, "description": S, "type": S, "direction": S,
                "options": J, "deactivated": B,
            },
            int_key=True, required=("title",),
        ),
        ModelDef(
            "tickets",
            {
                "name": N, "title": S, "category": J, "user": rel("users"), "contact": rel("contacts"),
                "email": S, "description": S, "stage": S, "priority": S,
                "statuses": Field(Kind.RELLIST, "statuses"), "created": RO_D, "edited": RO_D,
                "closed": D, "customFields": CF,
            },
            int_key=True, ts_field="edited", required=("title",), has_edited=True,
        ),
        ModelDef(
            "statuses",
            {"name": S, "title": S, "description": S, "color": S, "deactivated": B},
            required=("title",), name_prefix="statuses",
        ),
        ModelDef(
            "databases",
            {
                "name": S, "title": S, "description": S, "stage": S, "deleted": B, "default": B,
                "reverse_names": B, "available_cp": J,
            },
            required=("title",), name_prefix="databases",
        ),
    ]
}

#: Which field of an activity links the relation route ``{model}/{name}/activities.json``.
ACTIVITY_LINKS: dict[str, str] = {
    "contacts": "contact", "tickets": "ticket", "users": "user", "queues": "queue",
}


def resolve_model(name: str) -> ModelDef | None:
    """The model served under a path segment (case-sensitive, aliases applied)."""
    return MODELS.get(ALIASES.get(name, name))


def channel_of(model: str) -> str | None:
    """The activity ``type`` whose channel records live in ``model``."""
    for activity_type, (channel_model, _prefix) in CHANNELS.items():
        if channel_model == model:
            return activity_type
    return None
