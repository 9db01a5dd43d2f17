"""Settings of the built-in Raynet adapter: the ``crm:`` section of ``sync.yaml`` when ``adapter: raynet``.

Validated when the config is checked (``crmsync validate``) and again when the adapter is
built, so a bad instance name, a missing API key or an unknown activity entity is a
``ConfigError`` naming ``crm.<key>`` before any request is sent. The API key is a
``SecretStr``: it never appears in ``repr``, errors or logs.

Sources for the rules: Raynet API v2 (OpenAPI "RAYNET CRM API" 2.0.0, see
docs/crms/raynet.md): basic auth ``login:apiKey`` plus ``X-Instance-Name``; lists cap
``limit`` at 1000; 24,000 requests a day per instance.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, ValidationInfo, field_validator

from crmsync_pipelines.config.validation_errors import describe_error, format_loc
from crmsync_pipelines.crm.urls import LOOPBACK_HOSTS
from crmsync_pipelines.errors import ConfigError

#: Where these settings live in ``sync.yaml``; every error names a path below it.
SETTINGS_ROOT = "crm"

#: Raynet's activity entities that can hold a contact-centre event (``/activity/`` is read-only).
ActivityEntity = Literal["phoneCall", "email", "task", "event", "meeting", "letter"]
Priority = Literal["MINOR", "DEFAULT", "CRITICAL"]
LinkKey = Literal["phone", "email"]
_LINK_KEYS: tuple[LinkKey, ...] = ("phone", "email")

#: The instance slug as it appears in ``https://app.raynet.cz/<instance>/`` and ``X-Instance-Name``.
_INSTANCE_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")

#: Daktela channel -> Raynet entity. Calls and e-mails have their own entities; Raynet has no
#: SMS/chat/messenger entity, so those become tasks (the Daktela PHP SDK's Raynet default).
DEFAULT_ACTIVITY_ENTITIES: dict[str, ActivityEntity] = {
    "call": "phoneCall",
    "email": "email",
    "web": "task",
    "sms": "task",
    "fbm": "task",
    "wap": "task",
    "vbr": "task",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RaynetActivitySettings(_Strict):
    """How Daktela activities are written into Raynet."""

    #: Daktela activity type -> Raynet entity.
    entities: dict[str, ActivityEntity] = Field(default_factory=lambda: dict(DEFAULT_ACTIVITY_ENTITIES))
    #: Prefix of the Raynet extId holding the Daktela activity name (Raynet recommends ``<system>:``).
    ext_id_prefix: str = "daktela:"
    #: Person id (a person with a user account) owning activities whose agent is not a Raynet user.
    owner_id: int | None = Field(default=None, ge=1)
    #: ``MINOR`` | ``DEFAULT`` | ``CRITICAL`` (required by Raynet on create).
    priority: Priority = "DEFAULT"
    #: Batched extId lookups (reconciliation, ``--force-full``) scan the activities created this
    #: many days back, 1000 per request, instead of one ``GET .../ext/...`` per activity.
    lookup_days: int = Field(default=14, ge=1, le=366)
    #: Values such a scan does not find (older, or deleted in Raynet) are confirmed one by one, up to this many.
    lookup_fallback_max: int = Field(default=20, ge=0, le=10_000)
    #: Daktela contact names crmsync gives Raynet persons (``crm_<id>``, mappings/raynet/contacts.yaml) ...
    contact_prefix: str = "crm_"
    #: ... and the contacts it creates for companies (``crm_acc_contact_<id>``, account-contact.yaml).
    account_contact_prefix: str = "crm_acc_contact_"
    #: How an activity without a Daktela contact of ours is matched to a Raynet person.
    link_by: list[LinkKey] = Field(default_factory=lambda: list(_LINK_KEYS))

    @field_validator("ext_id_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value or "/" in value or value != value.strip():
            raise ValueError("must be a non-empty prefix without '/' or surrounding spaces, e.g. 'daktela:'")
        return value

    @field_validator("entities")
    @classmethod
    def _known_types(cls, value: dict[str, ActivityEntity]) -> dict[str, ActivityEntity]:
        unknown = sorted(set(value) - set(DEFAULT_ACTIVITY_ENTITIES))
        if unknown:
            raise ValueError(
                f"unknown Daktela activity type(s) {', '.join(unknown)}; use {', '.join(DEFAULT_ACTIVITY_ENTITIES)}"
            )
        return {**DEFAULT_ACTIVITY_ENTITIES, **value}


class RaynetSettings(_Strict):
    """The whole ``crm:`` section (minus ``adapter``) for the Raynet adapter."""

    #: Instance slug (``X-Instance-Name``), e.g. ``moje-crm``: lower-case letters, digits, hyphens.
    instance_name: str
    #: Login (e-mail) of the integration user the API key belongs to.
    username: str
    #: API key from Raynet: Settings -> For developers -> API keys. Never logged.
    api_key: SecretStr
    #: ``https://app.raynet.cz/api/v2/`` (also ``app.raynetcrm.sk``, ``app.raynetcrm.com``); http only on loopback.
    base_url: str = "https://app.raynet.cz/api/v2/"
    timeout_s: float = Field(default=30.0, gt=0, le=600)
    #: Records per list request (Raynet's maximum is 1000; every page costs one request of the budget).
    page_size: int = Field(default=1000, ge=1, le=1000)
    #: Retries of network errors and 502/503/504 (never of 4xx or business 500s).
    max_retries: int = Field(default=3, ge=0, le=10)
    #: A 429 asking to wait longer than this ends the run's writes (QuotaExhaustedError) instead of sleeping.
    max_retry_after_s: float = Field(default=60.0, ge=0)
    #: Daily budget assumed before the first response reports ``X-Ratelimit-Limit``.
    daily_budget: int = Field(default=24_000, ge=1)
    #: Requests of the daily budget kept unused (for people using the CRM's integrations meanwhile);
    #: less than ``daily_budget``, or no run could ever send a request.
    budget_reserve: int = Field(default=0, ge=0)
    #: Window bounds are widened by this much on the server and cut exactly on our side, so a
    #: server that compares at minute precision cannot drop a record at a window edge.
    window_slack_s: int = Field(default=60, ge=0, le=3600)
    #: Persons with a Raynet user account are your staff, not customers: leave them out of
    #: contact windows and searches (filter ``userAccount-id[EQ]=``, Raynet API v2).
    contacts_exclude_users: bool = True
    #: Region for reading national phone numbers when matching activities by phone.
    default_region: str = "CZ"
    activities: RaynetActivitySettings = Field(default_factory=RaynetActivitySettings)

    @field_validator("budget_reserve")
    @classmethod
    def _reserve(cls, value: int, info: ValidationInfo) -> int:
        budget = info.data.get("daily_budget")
        if isinstance(budget, int) and value >= budget:
            raise ValueError(
                f"{value} leaves nothing of the daily budget of {budget} requests (crm.daily_budget): "
                "keep it below that (Raynet allows 24,000 requests a day per instance)"
            )
        return value

    @field_validator("instance_name")
    @classmethod
    def _instance(cls, value: str) -> str:
        if not _INSTANCE_RE.match(value):
            raise ValueError(
                f"{value!r} is not a Raynet instance name: use the slug from your CRM address "
                "(lower-case letters, digits and hyphens, e.g. 'moje-crm')"
            )
        return value

    @field_validator("username")
    @classmethod
    def _username(cls, value: str) -> str:
        if "@" not in value or value != value.strip():
            raise ValueError("must be the login e-mail of the Raynet user the API key belongs to")
        return value

    @field_validator("api_key")
    @classmethod
    def _api_key(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("must not be empty (create one in Raynet: Settings -> For developers -> API keys)")
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http(s) URL")
        if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
            raise ValueError("must use https (plain http is only allowed for a simulator on loopback)")
        return value if value.endswith("/") else value + "/"

    @field_validator("default_region")
    @classmethod
    def _region(cls, value: str) -> str:
        import phonenumbers

        if value.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{value!r} is not a phone region code (e.g. CZ, SK)")
        return value.upper()

    @classmethod
    def parse(cls, settings: Mapping[str, Any], *, file: str | None = None) -> RaynetSettings:
        """Validate raw settings; problems become one ``ConfigError`` with the ``crm.<key>`` path."""
        try:
            return cls.model_validate(dict(settings))
        except ValidationError as exc:
            problems = []
            for error in exc.errors(include_url=False):
                loc, message = describe_error(error, cls)
                problems.append((format_loc((SETTINGS_ROOT, *loc)), message))
            (first_path, first_message), rest = problems[0], problems[1:]
            more = "".join(f"; {path}: {message}" for path, message in rest)
            raise ConfigError(first_message + more, file=file, path=first_path) from None
