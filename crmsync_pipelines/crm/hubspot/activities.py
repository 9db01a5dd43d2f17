"""Activity records <-> HubSpot engagement objects (calls, emails, communications, notes).

The mapping writes one object-neutral *activity record* (docs/crms/hubspot.md, "Activity
record"); which HubSpot object it becomes, and which property each field lands in, depends
on its ``channel``. ``to_hubspot`` checks every value against HubSpot's enums and formats
before anything is sent, so a bad record fails alone with a ``RecordValidationError`` naming
its field; ``from_hubspot`` turns a stored object back into the same shape, so the engine's
field comparison sees no change for what it wrote.

Property names and enum values follow the HubSpot calls, emails and communications guides:
``hs_call_direction`` INBOUND/OUTBOUND, ``hs_call_duration`` in milliseconds,
``hs_email_direction`` EMAIL/INCOMING_EMAIL, ``hs_communication_channel_type``
SMS/WHATS_APP/LINKEDIN_MESSAGE with ``hs_communication_logged_from: CRM``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from crmsync_pipelines.crm.base import Record
from crmsync_pipelines.crm.hubspot.settings import ActivitySettings
from crmsync_pipelines.errors import NotSupportedError, RecordValidationError

#: HubSpot association type ids (HUBSPOT_DEFINED, v4) from each engagement to contacts / companies.
ASSOCIATION_TYPE_IDS: dict[str, tuple[int, int]] = {
    "calls": (194, 182), "emails": (198, 186), "communications": (81, 87), "notes": (202, 190),
}
CALL_STATUSES = frozenset({"BUSY", "CALLING_CRM_USER", "CANCELED", "COMPLETED", "CONNECTING", "FAILED",
                           "IN_PROGRESS", "MISSED", "NO_ANSWER", "QUEUED", "RINGING"})
COMMUNICATION_CHANNELS = {"sms": "SMS", "wap": "WHATS_APP"}
NOTE_LABELS = {"web": "Web chat", "fbm": "Messenger", "vbr": "Viber", "call": "Call", "email": "E-mail",
               "sms": "SMS", "wap": "WhatsApp"}
_LABEL_CHANNELS = {label: channel for channel, label in NOTE_LABELS.items()}
_NOTE_HEAD = re.compile(r"^\[(?P<label>[^\]]+)\](?: (?P<title>[^\n]*))?(?:\n(?P<body>.*))?$", re.DOTALL)

#: Fields of the activity record besides the external id; anything else must be an extra property.
CORE_FIELDS = ("channel", "timestamp", "title", "body", "direction", "status", "duration_s", "disposition",
               "recording_url", "phone", "email", "owner_id", "agent_email", "crm_contact_id", "crm_company_id")
_LINK_FIELDS = ("crm_contact_id", "crm_company_id")
_DIGITS = re.compile(r"^\d+$")

#: Properties read back for each object (besides the external id and extra properties).
READ_PROPERTIES: dict[str, tuple[str, ...]] = {
    "calls": ("hs_timestamp", "hs_call_title", "hs_call_body", "hs_call_direction", "hs_call_status",
              "hs_call_duration", "hs_call_disposition", "hs_call_recording_url", "hs_call_from_number",
              "hs_call_to_number", "hubspot_owner_id", "hs_lastmodifieddate"),
    "emails": ("hs_timestamp", "hs_email_subject", "hs_email_text", "hs_email_direction", "hs_email_headers",
               "hubspot_owner_id", "hs_lastmodifieddate"),
    "communications": ("hs_timestamp", "hs_communication_body", "hs_communication_channel_type",
                       "hubspot_owner_id", "hs_lastmodifieddate"),
    "notes": ("hs_timestamp", "hs_note_body", "hubspot_owner_id", "hs_lastmodifieddate"),
}


@dataclass(frozen=True)
class HubSpotActivity:
    """One activity record, translated: where it goes and what is sent."""

    object_type: str
    key: str
    properties: dict[str, str | None]
    contact_id: str | None
    company_id: str | None
    phone: str | None
    email: str | None
    agent_email: str | None = None
    #: ``crm_contact_id`` was not a HubSpot id (the Daktela contact is not one of ours, e.g.
    #: ``crm_test`` stripped to ``test``): matched by phone / e-mail instead, and counted.
    contact_not_ours: bool = False


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, list):
        value = next((v for v in value if v not in (None, "")), None)
        if value is None:
            return None
    if isinstance(value, (dict, tuple, set)):
        raise TypeError("a structure")
    text = str(value).strip()
    return text or None


def _field(record: Record, name: str) -> str | None:
    try:
        return _text(record.get(name))
    except TypeError:
        raise RecordValidationError(f"field {name!r}: expected a single value, got a {type(record[name]).__name__}") \
            from None


def format_timestamp(value: Any, field: str = "timestamp") -> str:
    """ISO 8601 UTC with milliseconds and ``Z`` (HubSpot's own output form) from ISO text, epoch ms or a datetime."""
    if isinstance(value, datetime):
        moment = value
    else:
        text = _text(value)
        if text is None:
            raise RecordValidationError(f"field {field!r} is required (HubSpot needs hs_timestamp on every activity)")
        if re.fullmatch(r"\d{12,14}", text):
            moment = datetime.fromtimestamp(int(text) / 1000, UTC)
        else:
            try:
                moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                raise RecordValidationError(
                    f"field {field!r}: {text!r} is not an ISO 8601 date-time or epoch milliseconds") from None
    if moment.tzinfo is None:
        raise RecordValidationError(f"field {field!r}: {moment.isoformat()} has no time zone (give UTC or an offset)")
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _duration_ms(value: Any) -> str | None:
    text = _text(value)
    if text is None:
        return None
    try:
        seconds = float(text)
    except ValueError:
        raise RecordValidationError(f"field 'duration_s': {text!r} is not a number of seconds") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise RecordValidationError(f"field 'duration_s': {text!r} must be zero or more seconds")
    return str(round(seconds * 1000))


def _seconds(ms: str | None) -> int | float | None:
    if ms is None:
        return None
    try:
        value = float(ms) / 1000
    except ValueError:
        return None
    return int(value) if value.is_integer() else value


def _direction(value: str | None) -> str | None:
    if value is None:
        return None
    lowered = value.lower()
    if lowered not in ("in", "out"):
        raise RecordValidationError(
            f"field 'direction': {value!r} is not 'in' or 'out' (HubSpot records only inbound and outbound; "
            "map other directions to null)")
    return lowered


def _link(record: Record, name: str) -> str | None:
    value = _field(record, name)
    if value is not None and not _DIGITS.match(value):
        raise RecordValidationError(f"field {name!r}: {value!r} is not a HubSpot record id (digits only)")
    return value


class ActivityCodec:
    """Translation both ways, for one adapter's activity settings."""

    def __init__(self, settings: ActivitySettings) -> None:
        self.settings = settings
        self.key_property = settings.external_id_property
        self.extra = tuple(settings.extra_properties)
        self.object_types = tuple(dict.fromkeys(
            t for t in ("calls", "emails", "communications", "notes") if t in settings.channels.values()))

    def read_properties(self, object_type: str) -> list[str]:
        return [self.key_property, *READ_PROPERTIES[object_type], *self.extra]

    def target(self, channel: str | None) -> str:
        """The HubSpot object for a Daktela channel; ``NotSupportedError`` when the channel is switched off."""
        if channel is None:
            raise RecordValidationError("field 'channel' is required (call, email, sms, wap, web, fbm or vbr)")
        target = self.settings.channels.get(channel.lower())
        if target is None:
            raise RecordValidationError(f"field 'channel': unknown channel {channel!r} "
                                        f"(use {', '.join(self.settings.channels)})")
        if target == "unsupported":
            raise NotSupportedError(
                f"HubSpot has no activity type for Daktela channel {channel!r} (communications support only SMS, "
                f"WhatsApp and LinkedIn); set crm.activities.channels.{channel.lower()}: notes to log them as notes")
        return target

    def to_hubspot(self, record: Record) -> HubSpotActivity:
        """Validate and translate; raises ``RecordValidationError`` / ``NotSupportedError`` for this record only."""
        if not isinstance(record, dict):
            raise RecordValidationError(f"an activity must be a dict, got {type(record).__name__}")
        unknown = sorted(k for k in record if k not in (*CORE_FIELDS, self.key_property, "id", "object_type",
                                                        *self.extra) and not str(k).startswith("_"))
        if unknown:
            raise RecordValidationError(
                f"unknown activity field(s) {', '.join(unknown)}; use the fields listed in docs/crms/hubspot.md or "
                "add custom HubSpot properties to crm.activities.extra_properties")
        key = _field(record, self.key_property)
        if key is None:
            raise RecordValidationError(f"activity has no value for its external id {self.key_property!r}")
        channel = _field(record, "channel")
        object_type = self.target(channel)
        channel = str(channel).lower()
        props: dict[str, str | None] = {self.key_property: key,
                                        "hs_timestamp": format_timestamp(record.get("timestamp"))}
        title, body = _field(record, "title"), _field(record, "body")
        direction = _direction(_field(record, "direction"))
        phone, email = _field(record, "phone"), _field(record, "email")
        if object_type == "calls":
            status = _field(record, "status")
            if status is not None and status.upper() not in CALL_STATUSES:
                raise RecordValidationError(f"field 'status': {status!r} is not a HubSpot call status "
                                            f"({', '.join(sorted(CALL_STATUSES))})")
            props.update({
                "hs_call_title": title, "hs_call_body": body,
                "hs_call_direction": {"in": "INBOUND", "out": "OUTBOUND", None: None}[direction],
                "hs_call_status": status.upper() if status else None,
                "hs_call_duration": _duration_ms(record.get("duration_s")),
                "hs_call_disposition": _field(record, "disposition"),
                "hs_call_recording_url": _field(record, "recording_url"),
                "hs_call_to_number" if direction == "out" else "hs_call_from_number": phone,
            })
        elif object_type == "emails":
            headers = None
            if email is not None:
                headers = json.dumps({"to": [{"email": email}]} if direction == "out" else {"from": {"email": email}})
            props.update({"hs_email_subject": title, "hs_email_text": body, "hs_email_headers": headers,
                          "hs_email_direction": {"in": "INCOMING_EMAIL", "out": "EMAIL", None: None}[direction]})
        elif object_type == "communications":
            if channel not in COMMUNICATION_CHANNELS:
                raise NotSupportedError(f"HubSpot communications have no channel type for {channel!r}; "
                                        "use notes for it (crm.activities.channels)")
            props.update({"hs_communication_channel_type": COMMUNICATION_CHANNELS[channel],
                          "hs_communication_logged_from": "CRM", "hs_communication_body": body})
        else:
            head = f"[{NOTE_LABELS[channel]}]" + (f" {title}" if title else "")
            props["hs_note_body"] = head + (f"\n{body}" if body else "")
        owner = _field(record, "owner_id")
        if owner is not None and not _DIGITS.match(owner):
            raise RecordValidationError(f"field 'owner_id': {owner!r} is not a HubSpot owner id (digits only)")
        props["hubspot_owner_id"] = owner
        for name in self.extra:
            if name in record:
                props[name] = _field(record, name)
        agent = _field(record, "agent_email")
        # docs/crms/hubspot.md: a Daktela contact crm_<id> links HubSpot contact <id>; any other
        # contact (crm_test, crm_acc_contact_<id> of another setup) is not ours: match instead.
        contact = _field(record, "crm_contact_id")
        not_ours = contact is not None and not _DIGITS.match(contact)
        return HubSpotActivity(object_type, key, props, None if not_ours else contact,
                               _link(record, "crm_company_id"), phone, email.lower() if email else None,
                               agent.lower() if agent else None, contact_not_ours=not_ours)

    def from_hubspot(self, object_type: str, raw: dict[str, Any], *, links: dict[str, str | None] | None = None
                     ) -> Record:
        """A stored HubSpot object as an activity record (fields its object cannot hold are absent)."""
        props = raw.get("properties") or {}
        record: Record = {"id": str(raw.get("id")), "object_type": object_type,
                          self.key_property: props.get(self.key_property), "timestamp": props.get("hs_timestamp"),
                          "owner_id": props.get("hubspot_owner_id")}
        if object_type == "calls":
            direction = {"INBOUND": "in", "OUTBOUND": "out"}.get(str(props.get("hs_call_direction")))
            record.update({
                "channel": "call", "title": props.get("hs_call_title"), "body": props.get("hs_call_body"),
                "direction": direction, "status": props.get("hs_call_status"),
                "duration_s": _seconds(props.get("hs_call_duration")),
                "disposition": props.get("hs_call_disposition"), "recording_url": props.get("hs_call_recording_url"),
                "phone": props.get("hs_call_to_number" if direction == "out" else "hs_call_from_number"),
            })
        elif object_type == "emails":
            direction = {"INCOMING_EMAIL": "in", "EMAIL": "out"}.get(str(props.get("hs_email_direction")))
            record.update({"channel": "email", "title": props.get("hs_email_subject"),
                           "body": props.get("hs_email_text"), "direction": direction,
                           "email": _header_email(props.get("hs_email_headers"), direction)})
        elif object_type == "communications":
            channel = {v: k for k, v in COMMUNICATION_CHANNELS.items()}.get(
                str(props.get("hs_communication_channel_type")))
            record.update({"channel": channel, "body": props.get("hs_communication_body")})
        else:
            match = _NOTE_HEAD.match(str(props.get("hs_note_body") or ""))
            if match and match["label"] in _LABEL_CHANNELS:
                record.update({"channel": _LABEL_CHANNELS[match["label"]], "title": match["title"] or None,
                               "body": match["body"] or None})
            else:
                record.update({"channel": None, "body": props.get("hs_note_body")})
        for name in self.extra:
            record[name] = props.get(name)
        if links:
            record.update({k: v for k, v in links.items() if k in _LINK_FIELDS})
        return record


def _header_email(headers: Any, direction: str | None) -> str | None:
    try:
        parsed = json.loads(headers) if isinstance(headers, str) else None
    except ValueError:
        return None
    if not isinstance(parsed, dict):
        return None
    if direction == "out":
        to = parsed.get("to") or []
        first = to[0] if isinstance(to, list) and to else {}
        return first.get("email") if isinstance(first, dict) else None
    sender = parsed.get("from") or {}
    return sender.get("email") if isinstance(sender, dict) else None
