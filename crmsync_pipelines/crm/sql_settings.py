"""Settings of the built-in SQL adapter: the ``crm:`` section of ``sync.yaml`` when ``adapter: sql``.

The defaults describe the bundled demo CRM schema, so ``crm: {adapter: sql, path: demo.sqlite}``
is a complete configuration; a user pointing the adapter at their own SQLite database only names
the tables and columns that differ. Every name is checked against the database when the
adapter is built (see ``SqlCrmAdapter.from_settings``), never mid-run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from crmsync_pipelines.config.models import usable_path
from crmsync_pipelines.crm.modified_time import ModifiedFormat
from crmsync_pipelines.errors import ConfigError
from crmsync_pipelines.zones import UnknownZoneError, zone_named

#: Where these settings live in ``sync.yaml``; every error names a path below it.
SETTINGS_ROOT = "crm"

_SQLITE_URL_PREFIX = "sqlite:///"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EntityTableSettings(_Strict):
    """One read-only entity table (accounts or contacts)."""

    table: str
    id_column: str = "id"
    #: Modified time, used for ``since <= modified < until``.
    modified_column: str = "updated_at"
    #: How ``modified_column`` is read (see ``crmsync_pipelines.crm.modified_time``): ``auto`` reads
    #: every common layout (ISO 8601 with any offset form, ``d.m.Y H:i``, epoch s/ms, Julian days);
    #: ``iso`` only text; ``unixepoch`` / ``unixepoch_ms`` / ``julianday`` only numbers of that unit.
    #: A row whose time cannot be read is yielded as a failed record in every window, never skipped.
    modified_format: ModifiedFormat = "auto"
    #: Columns returned in records; ``None`` means every column of the table.
    columns: list[str] | None = None
    #: Columns holding ids of other records; returned as strings like ``id`` so relations match.
    reference_columns: list[str] = Field(default_factory=list)
    #: Columns searched by ``search_*``; ``None`` means every text column that is returned.
    search_columns: list[str] | None = None

    @field_validator("table", "id_column", "modified_column")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value


class ActivityTableSettings(_Strict):
    """The activities table: written by the sync, keyed by a UNIQUE external-id column."""

    table: str = "activities"
    id_column: str = "id"
    #: Holds the Daktela activity name; must carry a UNIQUE constraint (idempotent upserts).
    external_id_column: str = "external_id"
    #: Set to now (UTC, ISO-8601) on insert when the record does not bring a value; ``None`` disables.
    created_column: str | None = "created_at"
    #: Set to now (UTC, ISO-8601) on every write when the record does not bring a value.
    modified_column: str | None = "updated_at"
    reference_columns: list[str] = Field(default_factory=list)


class SqlCrmSettings(_Strict):
    """The whole ``crm:`` section (minus ``adapter``) for the SQL adapter."""

    #: A file path (relative to ``sync.yaml``) or a ``sqlite:///path`` URL.
    path: str
    accounts: EntityTableSettings = EntityTableSettings(table="accounts")
    contacts: EntityTableSettings = EntityTableSettings(table="contacts", reference_columns=["account_id"])
    #: Custom sources (``sync.custom_entities[].source``) by name, each a read-only table like
    #: ``accounts``: ``{partners: {table: partners}}``. A source not listed here is refused.
    custom_sources: dict[str, EntityTableSettings] = Field(default_factory=dict)
    #: ``null`` for a CRM that cannot store activities: activity calls raise ``NotSupportedError``.
    activities: ActivityTableSettings | None = ActivityTableSettings()
    #: Accepted so existing files load; no longer used. Rows are streamed one at a time (there
    #: are no round trips to save with SQLite), because a chunked fetch that meets a row whose
    #: text is not UTF-8 loses the rows of the chunk read before it.
    fetch_size: int = Field(default=500, ge=1, le=100_000)
    #: Ids per ``IN (...)`` query in batch lookups (SQLite allows 32766 parameters).
    lookup_chunk_size: int = Field(default=500, ge=1, le=30_000)
    #: How long a statement waits for another process's write lock before failing.
    busy_timeout_s: float = Field(default=10.0, ge=0)
    #: Switch the database to WAL so a separate writer process never blocks our readers.
    wal: bool = True
    #: IANA zone of modified times stored without an offset (``2026-11-20 10:00``, ``30.11.2026 09:15``).
    #: SQLite itself reads such values as UTC, hence the default.
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zone_named(value)
        except UnknownZoneError:
            raise ValueError(f"unknown IANA time zone {value!r} (e.g. Europe/Prague, UTC)") from None
        return value

    @field_validator("path")
    @classmethod
    def _path_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must name the SQLite file (a path or sqlite:///path)")
        usable_path(Path(value.strip().removeprefix(_SQLITE_URL_PREFIX)))  # NUL, unknown ~user
        return value

    def database_path(self, base_dir: Path) -> Path:
        """The SQLite file, with relative paths resolved against the config file's directory."""
        raw = self.path.strip()
        if raw.startswith(_SQLITE_URL_PREFIX):
            raw = raw[len(_SQLITE_URL_PREFIX) :]
        elif raw.startswith("sqlite:"):
            raise ValueError(f"unsupported SQLite URL {self.path!r}; use sqlite:///relative or sqlite:////absolute")
        path = Path(raw).expanduser()
        return path if path.is_absolute() else base_dir / path

    @classmethod
    def parse(cls, settings: dict[str, Any]) -> SqlCrmSettings:
        """Validate raw settings, turning pydantic's errors into one ``ConfigError`` per problem path."""
        try:
            return cls.model_validate(settings)
        except ValidationError as exc:
            first = exc.errors()[0]
            location = ".".join(str(part) for part in (SETTINGS_ROOT, *first["loc"]))
            problems = "; ".join(
                f"{'.'.join(str(p) for p in (SETTINGS_ROOT, *err['loc']))}: {err['msg']}" for err in exc.errors()
            )
            raise ConfigError(f"invalid SQL adapter settings ({problems})", path=location) from None
