"""Pydantic models of ``sync.yaml``.

The keys the PHP SDK's users already have (``daktela.*``, ``sync.batch_size``,
``sync.entities.*``, ``sync.custom_entities``, ``webhook.secret``) keep their names so their
files load unchanged; the sections crmsync adds (``crm``, ``staging``, ``partitions``,
``daktela.timezone`` and the client knobs) all have defaults.

Paths in the models are already resolved (relative to the directory of ``sync.yaml``) by
the loader, and ``mapping`` holds the loaded mapping so nothing reads YAML after load time.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from crmsync_pipelines.zones import UnknownZoneError, zone_named


class Direction(StrEnum):
    CRM_TO_CC = "crm_to_cc"
    CC_TO_CRM = "cc_to_crm"
    BIDIRECTIONAL = "bidirectional"


class ActivityType(StrEnum):
    """Daktela activity channels, named as in the PHP SDK (``web`` is chat)."""

    CALL = "call"
    EMAIL = "email"
    WEB = "web"
    SMS = "sms"
    FBM = "fbm"
    WAP = "wap"
    VBR = "vbr"


class _Strict(BaseModel):
    # Numbers become strings where a string is expected: YAML reads an all-digit token or
    # database name as an int, and the PHP SDK cast them to strings.
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


def usable_path(path: Path) -> Path:
    """``path`` unchanged, or a ``ValueError`` for one no file system call can take.

    A NUL character (the OS refuses it: Python raised a raw ``ValueError`` at the first
    ``stat``) and ``~user`` of a user this machine does not know (``expanduser`` raised a raw
    ``RuntimeError``) are refused when the config is validated, naming the key.
    """
    if "\x00" in str(path):
        raise ValueError("a path cannot contain a NUL character")
    try:
        path.expanduser()
    except RuntimeError:
        raise ValueError(f"cannot expand {path.parts[0]!r}: no such user's home directory on this machine") from None
    return path


#: A path from ``sync.yaml``, checked by ``usable_path``.
ConfigPath = Annotated[Path, AfterValidator(usable_path)]


def _not_a_boolean(value: Any) -> Any:
    """YAML reads ``yes``/``true`` as a boolean, and pydantic would take it as 1: refuse it."""
    if isinstance(value, bool):
        raise PydanticCustomError("number_not_boolean", "expected a number, got {value}", {"value": str(value)})
    return value


def _empty_is_none(value: Any) -> Any:
    """``mapping_file: ""`` means "no mapping" in the PHP SDK's files."""
    return None if isinstance(value, str) and value.strip() == "" else value


def _not_from_yaml(value: Any) -> Any:
    """``mapping`` holds the loaded Mapping object; a file must name it through ``mapping_file``."""
    if isinstance(value, (str, dict, list)):
        raise ValueError("'mapping' is filled in by the loader; set mapping_file instead")
    return value


def _scalar_to_list(value: Any) -> Any:
    """A single field name where a list is expected (the PHP SDK wrapped it, so do we)."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else value


class DaktelaSection(_Strict):
    instance_url: str = ""
    access_token: str = Field(default="", repr=False)
    database: str = ""
    #: Instance time zone; when empty it is read from the API's ``_timezone``.
    timezone: str = "Europe/Prague"
    # Numeric knobs are bounded here so `crmsync validate` refuses what the client would die on.
    #: Per-request timeout; more than 0, at most an hour.
    timeout_s: float = Field(default=30.0, gt=0, le=3600, allow_inf_nan=False)
    #: A ceiling on requests per second to the instance; 0 (the default): none, the writes
    #: adapt their concurrency to the server instead (AIMD between the next two knobs).
    rate_limit_per_s: float = Field(default=0.0, ge=0, le=10_000, allow_inf_nan=False)
    #: Writes in flight at the start of a run (and the fixed number when it is at least
    #: ``max_write_concurrency``).
    write_concurrency: int = Field(default=4, ge=1, le=64)
    #: The most writes in flight adaptive concurrency grows to while latency and errors stay flat.
    max_write_concurrency: int = Field(default=32, ge=1, le=256)
    max_retries: int = Field(default=5, ge=0, le=50)
    #: Records per list request; Daktela's ``take`` is at most 1000.
    page_size: int = Field(default=1000, ge=1, le=1000)
    #: Values per ``in`` lookup request (each one is in the URL).
    lookup_chunk_size: int = Field(default=200, ge=1, le=1000)

    _numbers = field_validator(
        "timeout_s", "rate_limit_per_s", "write_concurrency", "max_write_concurrency", "max_retries", "page_size",
        "lookup_chunk_size", mode="before",
    )(_not_a_boolean)

    @field_validator("access_token")
    @classmethod
    def _header_safe_token(cls, value: str) -> str:
        # A token from a secret file often ends with a newline, and the client sends it in the
        # X-AUTH-TOKEN header, which carries only visible ASCII (RFC 9110 §5.5): strip the
        # surrounding whitespace, refuse the rest at validate instead of a failing first request.
        value = value.strip()
        if not all("!" <= char <= "~" for char in value):
            raise ValueError(
                "access_token contains a space, a control character or a non-ASCII character, which the "
                "X-AUTH-TOKEN header cannot carry (the token is not shown)"
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if value:
            try:
                zone_named(value)
            except UnknownZoneError:
                raise ValueError(
                    f"unknown time zone {value!r} (use an IANA name like Europe/Prague)"
                ) from None
        return value

    @field_validator("instance_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip()
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("instance_url must start with https:// (or http:// for a local simulator)")
        value = value.rstrip("/")
        if value:
            _check_instance_url(value)
        return value


#: A host name (letters of any script, digits, '.', '-', '_') or a bracketed IPv6 address.
_HOST = re.compile(r"[\w.-]+|\[[0-9A-Fa-f:.]+\]")


def _check_instance_url(value: str) -> None:
    """Refuse what the HTTP client would die on at the first request. Never echoes the value:
    a URL with ``user:password@`` holds a credential."""
    if any(char.isspace() or not char.isprintable() for char in value):
        # urlsplit() silently drops tabs and newlines, the HTTP client would not.
        raise ValueError("instance_url contains a space or a control character")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"instance_url is not a valid URL ({exc})") from None
    if parts.username is not None or parts.password is not None:
        raise ValueError("instance_url must not contain a user name or password; "
                         "the token belongs in daktela.access_token")
    host = parts.netloc.rsplit(":", 1)[0] if port is not None else parts.netloc
    if not host or not _HOST.fullmatch(host):
        raise ValueError("instance_url needs a host name, like https://acme.daktela.com")
    if port == 0:
        raise ValueError("instance_url has port 0; allowed: 1..65535")
    if parts.query or parts.fragment:
        raise ValueError("instance_url must not have a query string or fragment ('?' or '#')")
    if parts.scheme == "http" and not _is_loopback(parts.hostname or ""):
        raise ValueError("instance_url may use plain http:// only for a simulator on this machine "
                         "(127.0.0.1, localhost, [::1]): elsewhere the access token would cross the "
                         "network readable; use https://")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host.lower() == "localhost"


class AutoCreateContact(_Strict):
    mapping_file: ConfigPath | None = None
    skip_if_empty: list[str] = Field(default_factory=list)
    skip_if_exists: list[str] = Field(default_factory=list)
    skip_if_exists_mode: Literal["all", "any"] = "all"
    # The loaded mapping (filled by the loader).
    mapping: Any = Field(default=None, exclude=True)

    _no_empty_mapping_file = field_validator("mapping_file", mode="before")(_empty_is_none)
    _loaded_mapping_only = field_validator("mapping", mode="before")(_not_from_yaml)
    _lists = field_validator("skip_if_empty", "skip_if_exists", mode="before")(_scalar_to_list)


class EntityConfig(_Strict):
    enabled: bool = False
    direction: Direction
    mapping_file: ConfigPath | None = None
    activity_types: list[ActivityType] = Field(default_factory=list)
    auto_create_contact: AutoCreateContact | None = None
    #: Activities only: how long after creation an activity is considered settled (up to a week).
    settle_minutes: int = Field(default=30, ge=0, le=10_080)
    #: Activities only: how many trailing partitions a run re-scans for late changes.
    rescan_partitions: int = Field(default=2, ge=0, le=1_000)
    # The loaded mapping (filled by the loader).
    mapping: Any = Field(default=None, exclude=True)

    _no_empty_mapping_file = field_validator("mapping_file", mode="before")(_empty_is_none)
    _loaded_mapping_only = field_validator("mapping", mode="before")(_not_from_yaml)
    _numbers = field_validator("settle_minutes", "rescan_partitions", mode="before")(_not_a_boolean)

    @field_validator("activity_types", mode="before")
    @classmethod
    def _listed_types(cls, value: Any) -> Any:
        return _scalar_to_list(value)

    @field_validator("activity_types")
    @classmethod
    def _no_duplicate_types(cls, value: list[ActivityType]) -> list[ActivityType]:
        return list(dict.fromkeys(value))


class CustomEntity(_Strict):
    name: str
    direction: Direction
    source: str
    target: Literal["contact", "account"]
    mapping_file: ConfigPath | None = None
    enabled: bool = False
    mapping: Any = Field(default=None, exclude=True)

    _no_empty_mapping_file = field_validator("mapping_file", mode="before")(_empty_is_none)
    _loaded_mapping_only = field_validator("mapping", mode="before")(_not_from_yaml)


class SyncSection(_Strict):
    batch_size: int = Field(default=100, ge=1, le=1000)
    entities: dict[Literal["account", "contact", "activity"], EntityConfig] = Field(default_factory=dict)
    custom_entities: list[CustomEntity] = Field(default_factory=list)

    _numbers = field_validator("batch_size", mode="before")(_not_a_boolean)

    @model_validator(mode="after")
    def _unique_custom_names(self) -> SyncSection:
        seen: set[str] = set()
        for entry in self.custom_entities:
            if entry.name in seen:
                raise ValueError(f"duplicate custom entity name {entry.name!r}")
            seen.add(entry.name)
        return self


class WebhookSection(_Strict):
    """The receiver's settings; the body limits are explained in ``docs/webhooks.md`` ("Limits")."""

    secret: str = Field(default="", repr=False)
    inbox_path: ConfigPath = Path("data/webhook-inbox.sqlite")
    max_body_bytes: int = Field(default=262_144, ge=1, le=16_777_216)
    #: Nesting levels of a body (``{"a": 1}`` is 1); PHP's own default limit is 64.
    max_depth: int = Field(default=32, ge=1, le=64)
    #: Object keys plus list items in one body (PHP's ``max_input_vars`` default is 1000).
    max_keys: int = Field(default=1_000, ge=1, le=100_000)
    max_string_length: int = Field(default=65_536, ge=1, le=16_777_216)

    _numbers = field_validator(
        "max_body_bytes", "max_depth", "max_keys", "max_string_length", mode="before"
    )(_not_a_boolean)


class CrmSection(BaseModel):
    """Which CRM adapter to use; every other key is the adapter's own settings."""

    model_config = ConfigDict(extra="allow", frozen=True)

    adapter: str = "sql"

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class StagingSection(_Strict):
    path: ConfigPath = Path("data/crmsync.duckdb")
    #: 0 means "try once, do not wait"; at most a day.
    lock_timeout_s: float = Field(default=120.0, ge=0, le=86_400, allow_inf_nan=False)
    keep_batches: int = Field(default=5, ge=1, le=1_000)

    _numbers = field_validator("lock_timeout_s", "keep_batches", mode="before")(_not_a_boolean)


#: Partition start dates crmsync accepts: Dagster formats partition keys with ``strftime``,
#: which writes year 1 as ``1-01-01`` and then cannot read it back (the code location failed
#: to load with a raw ``DagsterInvalidDefinitionError``), and no sync starts before 1970.
START_DATE_RANGE = (date(1970, 1, 1), date(2100, 12, 31))


class PartitionsSection(_Strict):
    granularity: Literal["daily", "hourly"] = "daily"
    start_date: date = date(2026, 1, 1)

    @field_validator("start_date")
    @classmethod
    def _plausible_start(cls, value: date) -> date:
        low, high = START_DATE_RANGE
        if not low <= value <= high:
            raise ValueError(f"start_date {value.isoformat()} is outside {low.isoformat()}..{high.isoformat()}")
        return value


class SyncConfig(_Strict):
    #: The file this config came from (for error messages and relative paths).
    source_path: Path | None = Field(default=None, exclude=True)
    daktela: DaktelaSection = Field(default_factory=DaktelaSection)
    crm: CrmSection = Field(default_factory=CrmSection)
    sync: SyncSection = Field(default_factory=SyncSection)
    webhook: WebhookSection = Field(default_factory=WebhookSection)
    staging: StagingSection = Field(default_factory=StagingSection)
    partitions: PartitionsSection = Field(default_factory=PartitionsSection)

    def resolve_path(self, value: str | Path) -> Path:
        """A path from the config, relative to the directory of ``sync.yaml`` (for adapters' own keys).

        Raises ``ValueError`` for a path ``usable_path`` refuses (a NUL, an unknown ``~user``).
        """
        path = usable_path(Path(value)).expanduser()
        if path.is_absolute() or self.source_path is None:
            return path
        return (self.source_path.parent / path).resolve()

    def entity(self, name: str) -> EntityConfig | None:
        """The config of an entity when it exists and is enabled."""
        entry = self.sync.entities.get(name)  # type: ignore[call-overload]
        return entry if entry is not None and entry.enabled else None
