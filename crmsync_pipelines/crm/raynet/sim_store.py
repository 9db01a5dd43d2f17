"""The Raynet simulator's data: records, filters, sorting, extIds, validation, the daily quota.

Faithful to Raynet API v2 as summarised in ``shared/reference/raynet-api.md`` §15: flat
``rowInfo.*`` audit keys, ``_version`` counting edits, references as ``{id, name|fullName}``
on read and plain ids on write, per-entity filter allow-lists (``Unsupported filter column``
otherwise), ``field[OP]=value`` operators, up to 10 extIds per record with duplicates
refused, required fields per activity type, custom fields with generated keys. Readings of
points the vendor leaves open are marked ``[U]`` and are switches on ``RaynetSimConfig``.
"""

from __future__ import annotations

import copy
import json
import re
import secrets
import threading
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from crmsync_pipelines.crm.sim_state import reading_state

ACTIVITY_ENTITIES = ("phoneCall", "email", "task", "event", "meeting", "letter")
ENTITIES = ("company", "person", *ACTIVITY_ENTITIES)

_DATE_OPS = ("GT", "GE", "LT", "LE")
_TEXT_OPS = ("EQ", "NE", "LIKE", "LIKE_NOCASE")
_ENUM_OPS = ("EQ", "NE", "IN")
_ROW = {
    "rowInfo.createdAt": _DATE_OPS,
    "rowInfo.updatedAt": _DATE_OPS,
    "rowInfo.lastModifiedAt": _DATE_OPS,
    "rowInfo.rowAccess": ("EQ", "NE", "EQ_OR_NULL", "NE_OR_NULL"),
    "tags": ("EQ",),
}
_ACTIVITY_FILTERS = {
    "id": ("EQ", "NE", "GT", "GE", "LT", "LE"),
    "title": _TEXT_OPS,
    "status": _TEXT_OPS,
    "scheduledFrom": _DATE_OPS,
    "scheduledTill": _DATE_OPS,
    "completed": _DATE_OPS,
    "category-id": _ENUM_OPS,
    "owner-id": _ENUM_OPS,
    "businessCase": ("EQ", "NE", "IN", "NOT_IN"),
    **_ROW,
}
#: Documented filter columns and their operators per entity (Raynet API v2 list parameters).
FILTERS: dict[str, dict[str, tuple[str, ...]]] = {
    "company": {
        "name": _TEXT_OPS, "lastName": _TEXT_OPS, "regNumber": ("EQ", "NE"), "person": ("EQ",),
        "owner": _ENUM_OPS, "rating": _ENUM_OPS, "role": _ENUM_OPS, "state": _ENUM_OPS, "category": _ENUM_OPS,
        "primaryAddress-contactInfo.email": _TEXT_OPS, "primaryAddress-contactInfo.email2": _TEXT_OPS, **_ROW,
    },
    "person": {
        "firstName": _TEXT_OPS, "lastName": _TEXT_OPS, "contactInfo.email": _TEXT_OPS,
        "contactInfo.email2": _TEXT_OPS, "owner": _ENUM_OPS, "primaryRelationship-company-id": ("EQ", "NE"),
        "primaryRelationship-company-name": _TEXT_OPS, "userAccount-id": ("EQ", "NE"), **_ROW,
    },
    **{entity: dict(_ACTIVITY_FILTERS) for entity in ACTIVITY_ENTITIES},
}
FILTERS["task"]["deadline"] = _DATE_OPS
_ACTIVITY_SORT = ("id", "rowInfo.createdAt", "rowInfo.updatedAt", "rowInfo.lastModifiedAt", "title", "tags",
                  "scheduledFrom", "scheduledTill", "completed", "category", "owner", "status")
SORT_COLUMNS: dict[str, tuple[str, ...]] = {
    "company": ("id", "rowInfo.createdAt", "rowInfo.updatedAt", "rowInfo.lastModifiedAt", "name", "regNumber"),
    "person": ("id", "rowInfo.createdAt", "rowInfo.updatedAt", "rowInfo.lastModifiedAt", "firstName", "lastName"),
    **{entity: _ACTIVITY_SORT for entity in ACTIVITY_ENTITIES},
}
#: Query parameters that are not filters.
CONTROL_PARAMS = frozenset({"offset", "limit", "sortColumn", "sortDirection", "fulltext", "dateFormat", "view",
                            "personFilter", "companyContextFilter", "leadContextFilter"})
_DATE_FIELDS = frozenset({"rowInfo.createdAt", "rowInfo.updatedAt", "rowInfo.lastModifiedAt", "scheduledFrom",
                          "scheduledTill", "completed", "deadline"})
_FILTER_KEY = re.compile(r"^(?P<column>[^\[\]]+)(?:\[(?P<op>[A-Z_]+)\])?$")
_ACTIVITY_REQUIRED = ("title", "priority", "owner")
_PRIORITIES = ("MINOR", "DEFAULT", "CRITICAL")
_STATUSES = ("NEW", "SCHEDULED", "COMPLETED", "CANCELLED")
_COMPANY_REQUIRED = ("name", "rating", "state", "role")
MAX_EXT_IDS = 10
_CUSTOM_TYPES = ("STRING", "TEXT", "BIG_DECIMAL", "BOOLEAN", "DATE", "DATETIME", "TIME", "ENUMERATION", "HYPERLINK",
                 "MONETARY", "PERCENT", "FILE")


class ApiError(Exception):
    """An answer in Raynet's error shape: ``{message, translatedMessage}`` with a status."""

    def __init__(self, status: int, message: str, translated: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.translated = translated or message

    def body(self) -> dict[str, Any]:
        return {"success": False, "message": self.message, "translatedMessage": self.translated}


def business_error(key: str, translated: str) -> ApiError:
    """Raynet reports business and validation rules as HTTP 500 ``TranslatedApplicationException``."""
    return ApiError(500, f"TranslatedApplicationException: {key}", translated)


def fold(value: Any) -> str:
    decomposed = unicodedata.normalize("NFKD", str(value))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def parse_moment(value: Any, zone: str) -> datetime:
    """ISO-8601 or ``yyyy-MM-dd HH:mm`` / ``yyyy-MM-dd`` (in the API user's zone) -> aware UTC."""
    text = str(value).strip().strip('"')
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        for fmt in ("%Y-%m-%d %H:%M", "%Y-%m-%d"):
            try:
                moment = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
        else:
            raise ApiError(500, "IllegalArgumentException", f"Neplatný formát data '{text}'.") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(zone))
    return moment.astimezone(UTC)


def render_moment(moment: datetime, zone: str, iso: bool) -> str:
    local = moment.astimezone(ZoneInfo(zone))
    if iso:
        return local.strftime("%Y-%m-%dT%H:%M:%S.") + f"{local.microsecond // 1000:03d}" + local.strftime("%z")[:3] \
            + ":" + local.strftime("%z")[3:]
    return local.strftime("%Y-%m-%d %H:%M")


def _walk(record: dict[str, Any], column: str) -> Any:
    """A filter column's value: ``-`` walks a reference, ``.`` an embedded object (rowInfo keys are flat)."""
    if column in record:
        return record[column]
    current: Any = record
    for part in re.split(r"[-.]", column):
        if not isinstance(current, dict):
            # A stored reference is a bare id: ``company-id`` of ``company: 5`` is 5.
            return current if part == "id" and isinstance(current, int) else None
        current = current.get(part)
    return current


@dataclass
class Quota:
    """Raynet's per-instance daily request budget, reset at UTC midnight (injectable clock)."""

    limit: int
    clock: Callable[[], datetime]
    day: str = ""
    used: int = 0

    def _roll(self) -> None:
        today = self.clock().astimezone(UTC).date().isoformat()
        if today != self.day:
            self.day, self.used = today, 0

    def take(self) -> bool:
        self._roll()
        if self.used >= self.limit:
            return False
        self.used += 1
        return True

    def headers(self) -> dict[str, str]:
        self._roll()
        now = self.clock().astimezone(UTC)
        reset = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
        return {
            "X-Ratelimit-Limit": str(self.limit),
            "X-Ratelimit-Remaining": str(max(0, self.limit - self.used)),
            "X-Ratelimit-Reset": str(int(reset.timestamp())),
        }

    def exhaust(self) -> None:
        self._roll()
        self.used = self.limit


class RaynetStore:
    """All records of one simulated instance, in memory; every method is thread-safe."""

    def __init__(self, *, user_zone: str, clock: Callable[[], datetime], reject_duplicate_ext_ids: bool = True,
                 strict_activity_insert: bool = False, filter_precision: str = "second") -> None:
        self.user_zone = user_zone
        self.clock = clock
        self.reject_duplicate_ext_ids = reject_duplicate_ext_ids
        self.strict_activity_insert = strict_activity_insert
        self.filter_precision = filter_precision
        self._lock = threading.RLock()
        self._records: dict[str, dict[int, dict[str, Any]]] = {e: {} for e in ENTITIES}
        self._next_id: dict[str, int] = dict.fromkeys(ENTITIES, 1)
        #: entity -> custom fields config items (``name`` is the generated key).
        self.custom_fields: dict[str, list[dict[str, Any]]] = {}

    # -- server-side access for tests and seeding (no API request) -----------------------------------
    def now(self) -> datetime:
        return self.clock().astimezone(UTC).replace(microsecond=0)

    def insert(self, entity: str, values: dict[str, Any], *, at: datetime | None = None) -> dict[str, Any]:
        """Store a record as given (validation skipped), with ``at`` as its creation time."""
        with self._lock:
            record = copy.deepcopy(values)
            record_id = self._next_id[entity]
            self._next_id[entity] += 1
            record["id"] = record_id
            when = (at or self.now()).astimezone(UTC)
            record["rowInfo.createdAt"] = when
            record["rowInfo.updatedAt"] = None
            record["rowInfo.rowAccess"] = record.get("rowInfo.rowAccess")
            record["_version"] = 1
            record.setdefault("extIds", [])
            record.setdefault("customFields", {})
            record.setdefault("tags", [])
            self._records[entity][record_id] = record
            return copy.deepcopy(record)

    def touch(self, entity: str, record_id: int, changes: dict[str, Any] | None = None, *,
              at: datetime | None = None) -> dict[str, Any]:
        """Edit a record as a CRM user would (new ``rowInfo.updatedAt``, ``_version`` + 1)."""
        with self._lock:
            record = self._records[entity][int(record_id)]
            _merge(record, changes or {})
            record["rowInfo.updatedAt"] = (at or self.now()).astimezone(UTC)
            record["_version"] += 1
            return copy.deepcopy(record)

    def raw(self, entity: str, record_id: int) -> dict[str, Any] | None:
        with self._lock:
            record = self._records[entity].get(int(record_id))
            return copy.deepcopy(record) if record is not None else None

    def all(self, entity: str) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(r) for r in self._records[entity].values()]

    def count(self, entity: str) -> int:
        with self._lock:
            return len(self._records[entity])

    def delete(self, entity: str, record_id: int) -> None:
        with self._lock:
            if self._records[entity].pop(int(record_id), None) is None:
                raise ApiError(404, "EntityNotFoundException", f"Záznam {record_id} neexistuje.")

    def add_custom_field(self, entity: str, body: Any) -> str:
        """``PUT /customField/config/{entity}/``: a new field; its key is the label plus a random suffix."""
        if entity not in ("company", "person", "lead", "businessCase", "offer", "salesOrder", "product", "project",
                          *ACTIVITY_ENTITIES):
            raise ApiError(404, "NotFound", f"Entita {entity} nepodporuje volitelná pole.")
        if not isinstance(body, dict):
            raise ApiError(400, "Request body must be a JSON object")
        label, group, kind = str(body.get("label") or ""), str(body.get("groupName") or ""), body.get("dataType")
        if len(label) < 3 or len(group) < 3:
            raise business_error("exception.validation.length", "Atributy 'label' a 'groupName' mají alespoň 3 znaky.")
        if kind not in _CUSTOM_TYPES:
            raise ApiError(500, "IllegalArgumentException", f"Neplatná hodnota atributu 'dataType': {kind}")
        base = re.sub(r"\W+", "_", unicodedata.normalize("NFKD", label).encode("ascii", "ignore").decode()).strip("_")
        with self._lock:
            key = f"{base or 'pole'}_{secrets.token_hex(3)[:5]}"
            item = {"label": label, "name": key, "groupName": group, "dataType": kind,
                    "enumeration": list(body.get("enumeration") or []), "readOnly": False, "hint": body.get("hint"),
                    "currency": None, "showInFilterView": True, "showInListExport": True, "showInListView": True,
                    "fullText": bool(body.get("fullText", False))}
            self.custom_fields.setdefault(_group(entity), []).append(item)
        return key

    # -- persistence (``state_path``: the demo keeps its Raynet data across restarts) ----------------
    def dump(self, path: Path) -> None:
        """Write every record, id counter and custom field to ``path`` (JSON, atomically)."""
        with self._lock:
            state = {"records": {e: list(r.values()) for e, r in self._records.items()}, "next_id": self._next_id,
                     "custom_fields": self.custom_fields}
            text = json.dumps(state, ensure_ascii=False, default=_encode)
        temporary = path.with_suffix(path.suffix + ".tmp")
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(path)

    def load(self, path: Path) -> None:
        """Replace the store's content with what ``dump`` wrote."""
        with reading_state(path, "Raynet"):
            state = json.loads(path.read_text(encoding="utf-8"), object_hook=_decode)
            records = {e: {int(r["id"]): r for r in state["records"].get(e, [])} for e in ENTITIES}
            next_id = {e: int(state["next_id"].get(e, 1)) for e in ENTITIES}
            custom_fields = state["custom_fields"]
            if not isinstance(custom_fields, dict):
                raise TypeError("custom_fields is not an object")
        with self._lock:
            self._records, self._next_id, self.custom_fields = records, next_id, custom_fields

    # -- rendering ----------------------------------------------------------------------------------
    def render(self, entity: str, record: dict[str, Any], *, iso: bool, detail: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in record.items():
            if key in ("userAccount",):
                continue
            if isinstance(value, datetime):
                out[key] = render_moment(value, self.user_zone, iso)
            elif key in ("owner", "person", "resolver") and isinstance(value, int):
                out[key] = self._person_ref(value)
            elif key == "company" and isinstance(value, int):
                out[key] = self._company_ref(value)
            else:
                out[key] = copy.deepcopy(value)
        if entity == "person":
            out["activeUserAccount"] = bool(record.get("userAccount"))
            relationship = record.get("primaryRelationship")
            if isinstance(relationship, dict) and isinstance(relationship.get("company"), int):
                out["primaryRelationship"] = {**relationship, "company": self._company_ref(relationship["company"])}
        custom = {k: v for k, v in (record.get("customFields") or {}).items()}
        if detail:
            # The detail view leaves out empty custom fields (Raynet API v2 detail descriptions).
            custom = {k: v for k, v in custom.items() if v not in (None, "")}
            if entity == "company":
                out["addresses"] = [copy.deepcopy(record.get("primaryAddress") or {})]
            if entity == "person":
                out["relationships"] = [copy.deepcopy(out.get("primaryRelationship"))] if out.get(
                    "primaryRelationship") else []
        out["customFields"] = custom or None
        if not record.get("extIds"):
            out["extIds"] = None
        return out

    def _person_ref(self, person_id: int) -> dict[str, Any]:
        person = self._records["person"].get(person_id) or {}
        full = " ".join(str(p) for p in (person.get("firstName"), person.get("lastName")) if p)
        return {"id": person_id, "fullName": full or None}

    def _company_ref(self, company_id: int) -> dict[str, Any]:
        company = self._records["company"].get(company_id) or {}
        return {"id": company_id, "name": company.get("name")}

    def _precise(self, moment: datetime) -> datetime:
        """A date as filters compare it: to the second, or to the minute (``filter_precision``) [U]."""
        return moment.replace(second=0, microsecond=0) if self.filter_precision == "minute" else moment

    # -- lists -------------------------------------------------------------------------------------
    def modified(self, record: dict[str, Any]) -> datetime:
        return max(m for m in (record["rowInfo.createdAt"], record.get("rowInfo.updatedAt")) if m is not None)

    def value(self, record: dict[str, Any], column: str) -> Any:
        if column == "rowInfo.lastModifiedAt":
            return self.modified(record)
        return _walk(record, column)

    def query(self, entity: str, params: list[tuple[str, str]]) -> list[dict[str, Any]]:
        """Records matching the filters, sorted; raises ``ApiError`` 400 for an unsupported column."""
        checks: list[Callable[[dict[str, Any]], bool]] = []
        values = dict(params)
        for key, raw in params:
            if key in CONTROL_PARAMS:
                continue
            match = _FILTER_KEY.match(key)
            column = match.group("column") if match else key
            op = (match.group("op") if match else None) or "EQ"
            allowed = FILTERS[entity].get(column)
            if allowed is None:
                raise ApiError(400, f"Unsupported filter column {column}")
            if op not in allowed:
                raise ApiError(400, f"Unsupported filter operator {op} for column {column}")
            checks.append(self._check(column, op, raw))
        person_filter = values.get("personFilter")
        company_filter = values.get("companyContextFilter")
        text = values.get("fulltext")
        sort = values.get("sortColumn") or "id"
        if sort not in SORT_COLUMNS[entity]:
            raise ApiError(400, f"Unsupported sort column {sort}")
        descending = (values.get("sortDirection") or "ASC").upper() == "DESC"
        with self._lock:
            rows = [r for r in self._records[entity].values() if all(c(r) for c in checks)]
            if person_filter:
                rows = [r for r in rows if str(r.get("person")) == person_filter]
            if company_filter:
                rows = [r for r in rows if str(r.get("company")) == company_filter]
            if text:
                rows = [r for r in rows if self._fulltext(entity, r, text)]
            rows.sort(key=lambda r: r["id"])
            rows.sort(key=lambda r: _sort_key(self.value(r, sort)), reverse=descending)
            return [copy.deepcopy(r) for r in rows]

    def _check(self, column: str, op: str, raw: str) -> Callable[[dict[str, Any]], bool]:
        is_date = column in _DATE_FIELDS
        wanted: Any = raw.strip('"')
        if is_date and wanted != "":
            wanted = self._precise(parse_moment(wanted, self.user_zone))
        if op in ("IN", "NOT_IN"):
            options = {s.strip() for s in str(raw).split(",")}
            return lambda r: (str(_ref(self.value(r, column))) in options) == (op == "IN")
        if column == "tags":
            options = {s.strip() for s in str(raw).split(",") if s.strip()}
            return lambda r: bool(options & set(r.get("tags") or []))

        def check(record: dict[str, Any]) -> bool:
            value = _ref(self.value(record, column))
            if is_date and isinstance(value, datetime):
                value = self._precise(value)
            if wanted == "" and op in ("EQ", "NE"):
                empty = value in (None, "", [])
                return empty if op == "EQ" else not empty
            if op == "EQ_OR_NULL":
                return value is None or _text(value) == str(wanted)
            if op == "NE_OR_NULL":
                return value is None or _text(value) != str(wanted)
            if value is None:
                return op == "NE"
            if op == "EQ":
                return value == wanted if is_date else _text(value) == str(wanted)
            if op == "NE":
                return value != wanted if is_date else _text(value) != str(wanted)
            if op in ("LIKE", "LIKE_NOCASE"):
                pattern = "^" + ".*".join(re.escape(p) for p in str(wanted).split("%")) + "$"
                flags = re.IGNORECASE if op == "LIKE_NOCASE" else 0
                return re.match(pattern, _text(value), flags) is not None
            left: Any = value if is_date else _number_or_text(value)
            right: Any = wanted if is_date else _number_or_text(wanted)
            try:
                return bool({"GT": left > right, "GE": left >= right, "LT": left < right, "LE": left <= right}[op])
            except TypeError:
                return False

        return check

    def _fulltext(self, entity: str, record: dict[str, Any], text: str) -> bool:
        needle = fold(text)
        digits = re.sub(r"\D", "", text)
        haystack: list[Any] = [record.get(k) for k in ("name", "firstName", "lastName", "title", "regNumber")]
        info = record.get("contactInfo") or (record.get("primaryAddress") or {}).get("contactInfo") or {}
        haystack += [info.get(k) for k in ("email", "email2", "tel1", "tel2")]
        searchable = {c["name"] for c in self.custom_fields.get(_group(entity), []) if c.get("fullText")}
        haystack += [v for k, v in (record.get("customFields") or {}).items() if k in searchable]
        for value in haystack:
            if value in (None, ""):
                continue
            if needle in fold(value):
                return True
            if len(digits) >= 6 and digits in re.sub(r"\D", "", str(value)):
                return True
        return False

    # -- writes ------------------------------------------------------------------------------------
    def create(self, entity: str, body: dict[str, Any]) -> int:
        if not isinstance(body, dict):
            raise ApiError(400, "Request body must be a JSON object")
        values = self._writable(entity, body, create=True)
        ext = body.get("extId")
        with self._lock:
            if ext is not None:
                self._check_ext_free(entity, str(ext), None)
            record = self.insert(entity, values)
            if ext is not None:
                self._records[entity][record["id"]]["extIds"] = [str(ext)]
            return int(record["id"])

    def update(self, entity: str, record_id: int, body: dict[str, Any]) -> None:
        if not isinstance(body, dict):
            raise ApiError(400, "Request body must be a JSON object")
        with self._lock:
            if int(record_id) not in self._records[entity]:
                raise ApiError(404, "EntityNotFoundException", f"Záznam {record_id} neexistuje.")
            values = self._writable(entity, body, create=False)
            self.touch(entity, int(record_id), values)

    def add_ext_id(self, entity: str, record_id: int, ext: str) -> None:
        with self._lock:
            record = self._records[entity].get(int(record_id))
            if record is None:
                raise ApiError(404, "EntityNotFoundException", f"Záznam {record_id} neexistuje.")
            if ext in record["extIds"]:
                return
            self._check_ext_free(entity, ext, int(record_id))
            if len(record["extIds"]) >= MAX_EXT_IDS:
                raise business_error("exception.extId.tooMany", f"Záznam může mít nejvýše {MAX_EXT_IDS} externích ID.")
            record["extIds"].append(ext)

    def remove_ext_id(self, entity: str, record_id: int, ext: str) -> None:
        with self._lock:
            record = self._records[entity].get(int(record_id))
            if record is None or ext not in record["extIds"]:
                raise ApiError(404, "EntityNotFoundException", f"Externí ID '{ext}' neexistuje.")
            record["extIds"].remove(ext)

    def by_ext(self, entity: str, ext: str) -> dict[str, Any] | None:
        with self._lock:
            for record in self._records[entity].values():
                if ext in record["extIds"]:
                    return copy.deepcopy(record)
        return None

    def _check_ext_free(self, entity: str, ext: str, own_id: int | None) -> None:
        if not self.reject_duplicate_ext_ids:
            return
        for record in self._records[entity].values():
            if record["id"] != own_id and ext in record["extIds"]:
                raise business_error("exception.duplicateKey",
                                     f"Externí identifikátor '{ext}' je již použit u záznamu {record['id']}.")

    def _writable(self, entity: str, body: dict[str, Any], *, create: bool) -> dict[str, Any]:
        """Validate a create/edit body the way Raynet does; returns the values to store."""
        values = {k: copy.deepcopy(v) for k, v in body.items() if k not in ("extId", "id")}
        for key in list(values):
            if key in _DATE_FIELDS and values[key] not in (None, ""):
                values[key] = parse_moment(values[key], self.user_zone)
            elif key in _DATE_FIELDS:
                values[key] = None
        for key in ("owner", "person", "resolver", "company"):
            if key in values and values[key] is not None:
                target = "company" if key == "company" else "person"
                ref = values[key]
                if not isinstance(ref, int) or ref not in self._records[target]:
                    raise ApiError(500, "IllegalArgumentException", f"Atribut '{key}' odkazuje na neexistující záznam.")
        if entity in ACTIVITY_ENTITIES:
            self._check_activity(entity, values, create=create)
        elif entity == "company" and create:
            missing = [k for k in _COMPANY_REQUIRED if values.get(k) in (None, "")]
            if missing:
                raise business_error("exception.validation.required", f"Atribut '{missing[0]}' je povinný.")
        if "customFields" in values:
            values["customFields"] = self._custom_values(entity, values["customFields"])
        return values

    def _check_activity(self, entity: str, values: dict[str, Any], *, create: bool) -> None:
        if "solution" in values and entity not in ("phoneCall", "task", "meeting"):
            raise ApiError(500, "IllegalArgumentException", f"Atribut 'solution' u entity {entity} neexistuje.")
        if create:
            required = [*_ACTIVITY_REQUIRED, *(("resolver", "deadline") if entity == "task" else ())]
            missing = [k for k in required if values.get(k) in (None, "")]
            if missing:
                raise business_error("exception.validation.required", f"Atribut '{missing[0]}' je povinný.")
            if self.strict_activity_insert:
                extra = sorted(k for k in ("status", "customFields", "participants") if k in values)
                if extra:
                    raise ApiError(500, "IllegalArgumentException", f"Atribut '{extra[0]}' nelze při vytvoření zadat.")
            if isinstance(values.get("tags"), str):
                raise ApiError(500, "IllegalArgumentException", "Atribut 'tags' musí být pole.")
        elif "tags" in values:
            if not isinstance(values["tags"], str):
                raise ApiError(500, "IllegalArgumentException", "Atribut 'tags' musí být řetězec oddělený čárkami.")
            values["tags"] = [t for t in values["tags"].split(",") if t]
        owner = values.get("owner")
        if owner is not None and not self._records["person"][owner].get("userAccount"):
            raise ApiError(500, "IllegalArgumentException", "Atribut 'owner' musí být osoba s uživatelským účtem.")
        if values.get("priority") is not None and values["priority"] not in _PRIORITIES:
            raise ApiError(500, "IllegalArgumentException",
                           f"Neplatná hodnota atributu 'priority': {values['priority']}")
        if values.get("status") is not None and values["status"] not in _STATUSES:
            raise ApiError(500, "IllegalArgumentException",
                           f"Neplatná hodnota atributu 'status': {values['status']}")
        status = values.get("status")
        if (create or "status" in values) and values.get("completed") is not None \
                and status not in ("COMPLETED", "CANCELLED"):
            values["completed"] = None  # completed takes effect only for a closed activity [C: N8N]

    def _custom_values(self, entity: str, given: Any) -> dict[str, Any]:
        if given is None:
            return {}
        if not isinstance(given, dict):
            raise ApiError(500, "IllegalArgumentException", "Atribut 'customFields' musí být objekt.")
        config = {c["name"]: c for c in self.custom_fields.get(_group(entity), [])}
        for key, value in given.items():
            field = config.get(key)
            if field is None:
                raise ApiError(500, "IllegalArgumentException", f"Volitelné pole '{key}' neexistuje.")
            if value in (None, ""):
                continue
            kind = field["dataType"]
            ok = {
                "BIG_DECIMAL": isinstance(value, (int, float)) and not isinstance(value, bool),
                "BOOLEAN": isinstance(value, bool),
                "ENUMERATION": value in (field.get("enumeration") or []),
            }.get(kind, isinstance(value, str))
            if not ok:
                raise ApiError(500, "IllegalArgumentException", f"Neplatná hodnota volitelného pole '{key}'.")
        return {k: v for k, v in given.items() if v not in (None, "")}


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    raise TypeError(f"cannot store a {type(value).__name__}")


def _decode(value: dict[str, Any]) -> Any:
    if set(value) == {"$datetime"}:
        return datetime.fromisoformat(value["$datetime"])
    return value


def _group(entity: str) -> str:
    """``phoneCall`` -> ``PhoneCall``: the group names of ``/customField/config/``."""
    return entity[:1].upper() + entity[1:]


def _merge(target: dict[str, Any], changes: dict[str, Any]) -> None:
    for key, value in changes.items():
        if key == "customFields" and isinstance(value, dict):
            merged = {**(target.get("customFields") or {}), **value}
            target["customFields"] = {k: v for k, v in merged.items() if v not in (None, "")}
        elif isinstance(value, dict) and isinstance(target.get(key), dict) and key not in ("owner", "company"):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def _ref(value: Any) -> Any:
    return value.get("id") if isinstance(value, dict) and "id" in value else value


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _number_or_text(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def _sort_key(value: Any) -> tuple[int, Any]:
    value = _ref(value)
    if value is None:
        return (0, "")
    if isinstance(value, datetime):
        return (1, value.timestamp())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (1, float(value))
    return (2, fold(value))
