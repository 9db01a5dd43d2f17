"""Settings of the built-in HubSpot adapter: the ``crm:`` section of ``sync.yaml`` when ``adapter: hubspot``.

Everything is checked when the adapter is built (``crmsync validate`` runs it), so a missing
token, an unknown channel target or a negative rate fails at start with a ``ConfigError``
naming the key (``crm.access_token``, ``crm.activities.channels.sms``), never mid-run.

The token is a ``SecretStr``: it is not part of ``repr()``, ``str()`` or any error message.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from crmsync_pipelines.crm.urls import LOOPBACK_HOSTS
from crmsync_pipelines.errors import ConfigError

#: Where these settings live in ``sync.yaml``; every error names a path below it.
SETTINGS_ROOT = "crm"

#: HubSpot objects an activity can become, and what a Daktela channel may be set to.
ActivityTarget = Literal["calls", "emails", "communications", "notes", "unsupported"]

#: Daktela channel -> HubSpot object. Communications have channel types only for SMS,
#: WhatsApp and LinkedIn (HubSpot communications guide), so web chat, Messenger and Viber
#: are refused visibly by default; set them to ``notes`` to log them as notes instead.
DEFAULT_CHANNELS: dict[str, ActivityTarget] = {
    "call": "calls",
    "email": "emails",
    "sms": "communications",
    "wap": "communications",
    "web": "unsupported",
    "fbm": "unsupported",
    "vbr": "unsupported",
}


DEFAULT_COMPANY_PROPERTIES = ("name", "domain", "phone", "website", "city", "country", "address", "zip",
                              "industry", "description", "hubspot_owner_id", "hs_lastmodifieddate")
DEFAULT_CONTACT_PROPERTIES = ("firstname", "lastname", "email", "phone", "mobilephone", "company", "jobtitle",
                              "associatedcompanyid", "hubspot_owner_id", "lastmodifieddate")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


class MatchSettings(_Strict):
    """How an activity without a Daktela contact is matched to a HubSpot contact."""

    #: Contact properties compared with the activity's phone number (E.164 after normalising).
    phone_properties: list[str] = Field(default_factory=lambda: ["phone", "mobilephone"])
    #: Contact properties compared with the activity's e-mail address (case-insensitive).
    email_properties: list[str] = Field(default_factory=lambda: ["email"])
    #: Region for numbers written without a country code (ISO 3166 alpha-2).
    default_region: str = "CZ"
    #: Values per ``IN`` filter of one search request (conservative reading of HubSpot's limit).
    values_per_search: int = Field(default=100, ge=1, le=500)


class ActivitySettings(_Strict):
    """Where activities go and how they are keyed."""

    #: The unique custom property (``hasUniqueValue: true``) holding the Daktela activity name,
    #: created on every object used below; also the key of that value in activity records.
    external_id_property: str = "daktela_activity_name"
    #: Daktela channel (``call``, ``email``, ``sms``, ``wap``, ``web``, ``fbm``, ``vbr``) -> HubSpot object.
    channels: dict[str, ActivityTarget] = Field(default_factory=lambda: dict(DEFAULT_CHANNELS))
    #: Associate each activity with the primary company of its contact (one batched read per 100 contacts).
    associate_company: bool = True
    #: Further activity properties (custom ones) passed through unchanged and read back.
    extra_properties: list[str] = Field(default_factory=list)
    match: MatchSettings = Field(default_factory=MatchSettings)

    @field_validator("external_id_property")
    @classmethod
    def _property_name(cls, value: str) -> str:
        if not value.strip() or value != value.strip().lower() or " " in value:
            raise ValueError("must be a HubSpot internal property name (lower case, no spaces)")
        return value

    @field_validator("channels")
    @classmethod
    def _known_channels(cls, value: dict[str, ActivityTarget]) -> dict[str, ActivityTarget]:
        unknown = sorted(set(value) - set(DEFAULT_CHANNELS))
        if unknown:
            raise ValueError(f"unknown Daktela channel(s) {', '.join(unknown)}; use {', '.join(DEFAULT_CHANNELS)}")
        return {**DEFAULT_CHANNELS, **value}


class HubSpotSettings(_Strict):
    """The whole ``crm:`` section (minus ``adapter``) for the HubSpot adapter."""

    #: Private-app (or static) access token; put ``${HUBSPOT_ACCESS_TOKEN}`` here, never the value.
    access_token: SecretStr = Field(repr=False)
    base_url: str = "https://api.hubapi.com"
    #: Path prefix of the object API (``/crm/v3``); HubSpot also serves dated paths.
    objects_path: str = "/crm/v3"
    associations_path: str = "/crm/v4"
    timeout_s: float = Field(default=30.0, gt=0)
    max_retries: int = Field(default=5, ge=0, le=20)
    #: Longest ``Retry-After`` (or rest of a rate window) we sleep for before giving up a request.
    max_wait_s: float = Field(default=60.0, ge=0)
    #: Client-side pace of the search endpoints (HubSpot: 4 requests/s per token; no headers).
    search_rate_per_s: float = Field(default=4.0, gt=0)
    #: Results per search page (HubSpot's maximum is 200).
    search_page_size: int = Field(default=200, ge=1, le=200)
    #: HubSpot stops a search query at 10,000 results; window reads restart queries before it.
    search_result_cap: int = Field(default=10_000, ge=1)
    #: Inputs per batch request (HubSpot's maximum is 100).
    batch_size: int = Field(default=100, ge=1, le=100)
    #: Stop writing (QuotaExhaustedError) when the daily budget left falls to this many requests,
    #: so other integrations of the portal keep a reserve.
    daily_reserve: int = Field(default=0, ge=0)
    #: Company properties returned in account records (``id`` is always there).
    company_properties: list[str] = Field(default_factory=lambda: list(DEFAULT_COMPANY_PROPERTIES))
    #: Contact properties returned in contact records; ``associatedcompanyid`` is the primary company.
    contact_properties: list[str] = Field(default_factory=lambda: list(DEFAULT_CONTACT_PROPERTIES))
    activities: ActivitySettings = Field(default_factory=ActivitySettings)

    @field_validator("access_token")
    @classmethod
    def _token_present(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("must not be empty (set it with ${HUBSPOT_ACCESS_TOKEN})")
        return value

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip()
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with https:// (or http:// for the local simulator)")
        host = urlsplit(value).hostname
        if value.startswith("http://") and host not in LOOPBACK_HOSTS:
            # The token is a bearer header: plain http would carry it readable across the network.
            raise ValueError("must use https (plain http is only allowed for a simulator on loopback)")
        return value.rstrip("/")

    @field_validator("objects_path", "associations_path")
    @classmethod
    def _path(cls, value: str) -> str:
        value = "/" + value.strip().strip("/")
        if value == "/":
            raise ValueError("must be a path such as /crm/v3")
        return value

    @classmethod
    def parse(cls, settings: dict[str, Any]) -> HubSpotSettings:
        """Validate raw settings; every problem becomes one ``ConfigError`` naming its key path.

        Pydantic's messages never echo input values here (``hide_input`` in the formatting),
        so a token that fails validation cannot leak through the error.
        """
        try:
            return cls.model_validate(settings)
        except ValidationError as exc:
            errors = exc.errors(include_input=False, include_url=False)
            first = errors[0]
            location = ".".join(str(part) for part in (SETTINGS_ROOT, *first["loc"]))
            problems = "; ".join(
                f"{'.'.join(str(p) for p in (SETTINGS_ROOT, *err['loc']))}: {_message(err)}" for err in errors
            )
            raise ConfigError(f"invalid HubSpot adapter settings ({problems})", path=location) from None


def _message(error: Any) -> str:
    if error.get("type") == "missing":
        return "required key is missing"
    return str(error.get("msg", "invalid value")).removeprefix("Value error, ")
