"""Turn a webhook request body into a validated event, or say exactly why it is rejected.

Daktela has no platform-defined webhook payload: an admin writes the body template of an
"HTTP request" action by hand, so we accept what the PHP SDK's convention allows (JSON or
form-encoded ``{event, name, data}``, the id in ``name`` falling back to ``id``) and reject
anything we could not act on with a 4xx instead of the SDK's silent 200 (W19).
"""

from __future__ import annotations

import json
import math
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl

from crmsync_pipelines.phpquery import QueryLimitError, parse_query
from crmsync_pipelines.webhooks.limits import MAX_NUMBER_LENGTH, BodyLimitError, BodyLimits, check_structure

Source = Literal["daktela", "crm"]
WebhookEntity = Literal["account", "contact", "activity"]

#: Event prefix -> (entity, activity channel). ``web`` is chat, as in the PHP SDK.
PREFIX_ENTITIES: dict[str, tuple[WebhookEntity, str | None]] = {
    "call": ("activity", "call"),
    "email": ("activity", "email"),
    "web": ("activity", "web"),
    "sms": ("activity", "sms"),
    "fbm": ("activity", "fbm"),
    "wap": ("activity", "wap"),
    "vbr": ("activity", "vbr"),
    "contact": ("contact", None),
    "account": ("account", None),
}

#: ``<prefix>_<suffix>``: the suffix is free text of letters and underscores, because admins
#: name their own automations (``call_answer``, ``call_transfer``...); only ``delete`` is special.
_EVENT_RE = re.compile(r"^(?P<prefix>[a-z]+)_(?P<suffix>[a-z][a-z_]*)$")
_MAX_ID_LENGTH = 255
#: C0 controls and DEL: no Daktela name or CRM id holds them, and a newline in an id would
#: forge lines in the receiver's log.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: ``Content-Encoding`` values inflated by ``decode_content`` (zlib's wbits: 16+ gzip, 15 zlib).
_INFLATE_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
UTF8_BOM = b"\xef\xbb\xbf"
_CRM_EVENTS = ("update", "delete")


class PayloadError(Exception):
    """A webhook body that must be refused; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class ParsedEvent:
    """One validated webhook event, before the enabled-entity policy is applied."""

    source: Source
    event: str
    entity: WebhookEntity
    activity_type: str | None
    record_id: str
    is_delete: bool
    body: dict[str, Any]


def decode_content(raw: bytes, content_encoding: str | None, limits: BodyLimits) -> bytes:
    """The body with its ``Content-Encoding`` undone (RFC 9110 §8.4), at most ``max_body_bytes``.

    ``gzip`` (``x-gzip``) and ``deflate`` are inflated, and the *inflated* size is bounded, so
    a small compression bomb is a 413 like a large body; ``identity`` or no header leaves the
    body as it is. Any other coding, or several, is a 415 (RFC 9110 §15.5.16). Raises
    ``PayloadError``.
    """
    coding = (content_encoding or "").strip().lower()
    if coding in ("", "identity"):
        return raw
    wbits = _INFLATE_WBITS.get(coding)
    if wbits is None:
        raise PayloadError(415, f"Content-Encoding {coding[:32]!r} is not supported (send gzip, deflate or none)")
    inflater = zlib.decompressobj(wbits)
    try:
        body = inflater.decompress(raw, limits.max_body_bytes + 1)
    except zlib.error:
        raise PayloadError(400, f"body is not valid {coding} data") from None
    if len(body) > limits.max_body_bytes:
        raise PayloadError(413, f"body larger than {limits.max_body_bytes} bytes once {coding} is inflated")
    if not inflater.eof or inflater.unused_data:
        raise PayloadError(400, f"body is not valid {coding} data (truncated, or data after its end)")
    return body


def decode_body(raw: bytes, content_type: str | None, limits: BodyLimits | None = None) -> dict[str, Any]:
    """Decode a JSON or form body into a dict, within ``limits`` (400/413 when it is not).

    Like the PHP SDK, an explicit content type decides; without one we try JSON, then form.
    Unlike the SDK, invalid JSON is an error, not an empty payload. One leading UTF-8 byte
    order mark is ignored (RFC 8259 §8.1 allows it; some relays and .NET senders add one).
    Raises ``PayloadError``.
    """
    limits = limits or BodyLimits()
    if len(raw) > limits.max_body_bytes:
        raise PayloadError(413, f"body larger than {limits.max_body_bytes} bytes")
    raw = raw.removeprefix(UTF8_BOM)
    ctype = (content_type or "").split(";", 1)[0].strip().lower()
    if ctype.startswith("multipart/"):
        raise PayloadError(415, f"{ctype} is not supported; send application/json or application/x-www-form-urlencoded")
    try:
        if ctype == "application/json" or ctype.endswith("+json"):
            return _decode_json(raw, limits)
        if ctype == "application/x-www-form-urlencoded":
            return _decode_form(raw, limits)
        stripped = raw.lstrip()
        if stripped[:1] in (b"{", b"["):
            return _decode_json(raw, limits)
        neither = PayloadError(400, "body is neither a JSON object nor a form-encoded payload")
        try:
            decoded = _decode_form(raw, limits)
        except PayloadError:
            raise neither from None
        if not decoded:
            raise neither
        return decoded
    except BodyLimitError as exc:
        raise PayloadError(exc.status, exc.message) from None


def _bounded_number(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(literal: str) -> Any:
        if len(literal) > MAX_NUMBER_LENGTH:
            raise BodyLimitError(400, f"a number in the body is longer than {MAX_NUMBER_LENGTH} characters")
        return convert(literal)

    return parse


def _no_constant(name: str) -> Any:
    raise BodyLimitError(400, f"{name} is not a JSON value (RFC 8259 §6)")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if math.isinf(value):
        raise BodyLimitError(400, "a number in the body is out of the range of a double (RFC 8259 §6)")
    return value


_PARSE_INT = _bounded_number(int)
_PARSE_FLOAT = _bounded_number(_finite_float)


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose names are unique: RFC 8259 §4 leaves a repeated name's meaning to
    the parser (first, last or both), so ``{"name": "a", "name": "b"}`` names no one record."""
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise BodyLimitError(400, f"duplicate key {key[:64]!r} in a JSON object (RFC 8259 §4)")
            seen.add(key)
    return value


def _decode_json(raw: bytes, limits: BodyLimits) -> dict[str, Any]:
    try:
        value = json.loads(
            raw.decode("utf-8"),
            parse_int=_PARSE_INT,
            parse_float=_PARSE_FLOAT,
            parse_constant=_no_constant,
            object_pairs_hook=_unique_object,
        )
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(400, f"malformed JSON body: {exc}") from None
    except RecursionError:
        # The C decoder stops at the interpreter's recursion limit, long before memory runs out.
        raise PayloadError(400, f"body nested deeper than {limits.max_depth} levels") from None
    if not isinstance(value, dict):
        raise PayloadError(400, f"JSON body must be an object, got {type(value).__name__}")
    check_structure(value, limits)
    return value


def _decode_form(raw: bytes, limits: BodyLimits) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError(400, "form body is not valid UTF-8") from None
    try:
        decoded = parse_query(text, max_fields=limits.max_keys, max_depth=limits.max_depth, errors="strict")
    except QueryLimitError as exc:
        raise BodyLimitError(413 if exc.limit == "fields" else 400, f"form body: {exc}") from None
    except UnicodeDecodeError:
        # Decoding with U+FFFD would store a value the sender never sent (a record id that does not exist).
        raise BodyLimitError(400, "form body: a percent-encoded value is not valid UTF-8") from None
    try:
        parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text))  # validation only
    except ValueError:
        raise PayloadError(400, "malformed form-encoded body") from None
    check_structure(decoded, limits)
    return decoded


def _record_id(value: Any) -> str | None:
    """The id exactly as sent (a CRM id ``' padded '`` is not ``'padded'``, issue 9 §4); None
    when there is none (missing, blank, or not a string/integer)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value
    return None


def _checked_id(value: str | None, field: str) -> str:
    if value is None:
        raise PayloadError(422, f"missing record id: '{field}' must be a non-empty string")
    if len(value) > _MAX_ID_LENGTH:
        raise PayloadError(422, f"record id is longer than {_MAX_ID_LENGTH} characters")
    if _CONTROL.search(value):
        raise PayloadError(422, f"record id {value[:64]!r} contains a control character (newline, tab, NUL...)")
    return value


def parse_daktela_event(body: dict[str, Any]) -> ParsedEvent:
    """Validate a Daktela automation payload ``{event, name|id, data}``."""
    event = body.get("event")
    if not isinstance(event, str) or not event.strip():
        raise PayloadError(422, "missing 'event' (for example 'call_close')")
    event = event.strip().lower()
    match = _EVENT_RE.match(event)
    if match is None:
        raise PayloadError(422, f"event {event[:64]!r} is not '<prefix>_<action>' (letters and underscores only)")
    prefix = match.group("prefix")
    if prefix not in PREFIX_ENTITIES:
        raise PayloadError(422, f"unknown event prefix {prefix!r} (known: {', '.join(sorted(PREFIX_ENTITIES))})")
    entity, activity_type = PREFIX_ENTITIES[prefix]
    record_id = _record_id(body.get("name"))
    if record_id is None:
        record_id = _record_id(body.get("id"))
    return ParsedEvent(
        source="daktela",
        event=event,
        entity=entity,
        activity_type=activity_type,
        record_id=_checked_id(record_id, "name"),
        is_delete=match.group("suffix") == "delete",
        body=body,
    )


def parse_crm_event(body: dict[str, Any]) -> ParsedEvent:
    """Validate a CRM change notification ``{entity_type, entity_id, event?}``."""
    entity_type = body.get("entity_type")
    if entity_type not in ("contact", "account"):
        raise PayloadError(422, "'entity_type' must be 'contact' or 'account'")
    event = body.get("event", "update")
    if event not in _CRM_EVENTS:
        raise PayloadError(422, f"'event' must be one of {', '.join(_CRM_EVENTS)}")
    record_id = _checked_id(_record_id(body.get("entity_id")), "entity_id")
    return ParsedEvent(
        source="crm",
        event=f"{entity_type}_{event}",
        entity=entity_type,
        activity_type=None,
        record_id=record_id,
        is_delete=event == "delete",
        body=body,
    )
