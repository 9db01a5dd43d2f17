"""The library API: a sync in one call, as short as the PHP SDK's Quick Start.

::

    import crmsync_pipelines

    result = crmsync_pipelines.sync("sync.yaml", entities=["contact"])
    print(result.summary())
    for record in result.failed_records:       # every failed record of the run, never a sample
        print(record.entity, record.source_id, record.error_class, record.message)

Each call builds a ``SyncEngine`` from ``sync.yaml`` (the same adapters, staging file and
ledger the CLI and Dagster use), runs the stages, closes everything and returns a typed,
immutable result. The engine's rules hold: an unchanged record costs no write, every record
of the run ends in the ledger (and a failed one in ``failed_records``), a failing record never
raises. What raises is what stops a run before its records: see docs/library.md.

Counts and failed records come from the run's ledger rows (the last row per record), so they
are complete however many records failed (the SDK's aggregated results kept counters only,
reference-sdk-behaviour.md P3).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from crmsync_pipelines.config.models import SyncConfig
from crmsync_pipelines.engine.custom import all_entities, engine_for, retry_all
from crmsync_pipelines.engine.engine import SyncEngine
from crmsync_pipelines.engine.record_outcomes import NOT_FOUND, RecordOutcome, record_outcomes
from crmsync_pipelines.engine.reports import PlannedChange, StageReport, Window
from crmsync_pipelines.errors import ConfigError

#: Ledger entities in sync order; others (``custom:<name>``) follow in the order they ran.
_ORDER = ("account", "auto_contact", "contact", "activity")
#: Ledger outcomes, in the order results show them.
OUTCOMES = ("created", "updated", "unchanged", "failed", "skipped")

ConfigLike = str | Path | SyncConfig
Instant = datetime | date | str | None


@dataclass(frozen=True)
class FailedRecord:
    """One record that failed in the run: its ledger entity, source id, error class and message.

    ``error_class`` is one of ``validation``, ``transient``, ``auth``, ``conflict``,
    ``not_supported`` (docs/operations.md says which ones the next run retries by itself).
    """

    entity: str
    source_id: str
    error_class: str
    message: str
    lookup_key: str | None = None


@dataclass(frozen=True)
class EntityResult:
    """What a run did to one ledger entity (``account``, ``auto_contact``, ``contact``,
    ``activity``, ``custom:<name>``): record counts, API calls per system, seconds."""

    entity: str
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    skipped: int = 0
    not_found: int = 0
    api_calls: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0
    failures: tuple[FailedRecord, ...] = ()
    #: Descriptions of checks that failed (a blocking mapping check keeps a batch from loading).
    failed_checks: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        return self.created + self.updated + self.unchanged + self.failed + self.skipped + self.not_found

    def summary(self) -> str:
        """The SDK's summary line: ``Contact: 10 total, 2 created, 1 updated, 7 unchanged, 0 failed (0.42s)``."""
        label = self.entity[:1].upper() + self.entity[1:]
        return (f"{label}: {self.total} total, {self.created} created, {self.updated} updated, "
                f"{self.unchanged} unchanged, {self.skipped} skipped, {self.failed} failed"
                + (f", {self.not_found} not found" if self.not_found else "") + f" ({self.duration_s:.2f}s)")


@dataclass(frozen=True)
class SyncResult:
    """The result of ``sync``, ``sync_ids`` or ``retry_failed``.

    ``entities`` is keyed by ledger entity in sync order; ``records`` holds the field-level
    result of each requested record (``sync_ids`` only); ``waiting`` counts records of the
    synced entities that still wait in ``failed_records`` from earlier runs.
    """

    run_id: str
    window: Window | None
    entities: dict[str, EntityResult]
    records: tuple[RecordOutcome, ...] = ()
    waiting: int = 0
    #: The engine's stage reports, for callers who want every detail (API calls per stage, checks).
    reports: tuple[StageReport, ...] = ()

    @property
    def failed_records(self) -> list[FailedRecord]:
        """Every record that failed in this run, over all entities (not a sample)."""
        return [f for result in self.entities.values() for f in result.failures]

    @property
    def ok(self) -> bool:
        """Nothing failed in this run, no requested id was missing and no check failed."""
        return all(not r.failed and not r.not_found and not r.failed_checks for r in self.entities.values())

    def summary(self) -> str:
        return "\n".join(result.summary() for result in self.entities.values())


@dataclass(frozen=True)
class EntityPlan:
    """What a sync of the window would do to one entity; ``changes`` holds up to
    ``EngineSettings.plan_sample_limit`` planned writes field by field."""

    entity: str
    would_create: int
    would_update: int
    unchanged: int
    invalid: int
    changes: tuple[PlannedChange, ...]
    failures: tuple[FailedRecord, ...]


@dataclass(frozen=True)
class PlanResult:
    window: Window
    entities: dict[str, EntityPlan]

    @property
    def ok(self) -> bool:
        """Every record of the window maps (nothing would fail validation)."""
        return all(not plan.invalid for plan in self.entities.values())


# -- public functions ----------------------------------------------------------------------------
def sync(config: ConfigLike, entities: Sequence[str] | None = None, since: Instant = None, until: Instant = None,
         *, force_full: bool = False, run_id: str | None = None) -> SyncResult:
    """Sync the window ``[since, until)`` entity by entity (accounts, contacts, activities, then
    enabled custom entities ``custom:<name>``) and return the result.

    ``config``: a ``sync.yaml`` path or a loaded ``SyncConfig``. ``entities``: names to sync
    (default: every enabled one). ``since``/``until``: datetimes, dates or ISO strings; naive
    values are in the Daktela instance's time zone (``daktela.timezone``); both ``None`` means
    the current partition (the window a scheduled run syncs). ``force_full``: no window start
    and no hash shortcut: every record is compared with the target.

    Raises ``ConfigError`` (bad file, entity unknown or not enabled), ``ValueError`` (a bad
    ``since``/``until``), ``AuthError`` (a token Daktela never accepted), ``StagingBusyError``
    (another process holds the staging file). Failing records never raise.
    """
    loaded = _config(config)
    window = _window(loaded, since, until, force_full=force_full)
    run = run_id or _run_id("sync")
    with _engine(loaded) as engine:
        chosen = _entities(engine, entities)
        reports = [r for entity in chosen
                   for r in engine_for(engine, entity).sync(entity, window, run, verify=force_full)]
        return _result(engine, run, window, reports)


def sync_ids(config: ConfigLike, entity: str, ids: Iterable[str], *, run_id: str | None = None) -> SyncResult:
    """Sync exactly these records (CRM ids; Daktela activity names for ``activity``).

    The same diff and ledger as a window run; ``result.records`` holds each record's
    field-level result in the order of ``ids`` (``not_found`` for ids the source lacks).
    Raises as ``sync``, and ``ValueError`` when ``ids`` is empty.
    """
    wanted = list(dict.fromkeys(str(i) for i in ids if str(i).strip()))
    if not wanted:
        raise ValueError("sync_ids needs at least one id")
    loaded = _config(config)
    run = run_id or _run_id("sync")
    with _engine(loaded) as engine:
        [name] = _entities(engine, [entity])
        report = engine_for(engine, name).sync_ids(name, wanted, run)
        found = {o.source_id: o for o in record_outcomes(engine.staging, run, name, wanted)}
        records = tuple(found.get(i) or RecordOutcome(name, i, NOT_FOUND) for i in wanted
                        if i in found or i in report.not_found)
        return _result(engine, run, None, [report], records=records)


def retry_failed(config: ConfigLike, entity: str | None = None, *, run_id: str | None = None) -> SyncResult:
    """Re-read and re-sync every record waiting in ``failed_records`` (held-back ones too).

    ``entity``: one entity (``auto_contact`` retries only contacts auto-created for accounts),
    default all. Raises as ``sync``.
    """
    loaded = _config(config)
    run = run_id or _run_id("retry")
    with _engine(loaded) as engine:
        if entity is not None:
            _entities(engine, ["account" if entity == "auto_contact" else entity])
        reports = retry_all(engine, entity, run)
        return _result(engine, run, None, reports)


def plan(config: ConfigLike, entities: Sequence[str] | None = None, since: Instant = None,
         until: Instant = None) -> PlanResult:
    """Dry run: what ``sync`` of the window would create and update. Writes to neither system
    (only to the staging file's extract and mapping tables). Raises as ``sync``."""
    loaded = _config(config)
    window = _window(loaded, since, until)
    run = _run_id("plan")
    with _engine(loaded) as engine:
        plans: dict[str, EntityPlan] = {}
        for entity in _entities(engine, entities):
            report = engine_for(engine, entity).plan(entity, window, run)
            plans[entity] = EntityPlan(
                entity=entity,
                would_create=report.counts.get("would_create", 0),
                would_update=report.counts.get("would_update", 0),
                unchanged=report.counts.get("unchanged", 0),
                invalid=report.counts.get("invalid", 0) + report.failed,
                changes=tuple(report.planned),
                failures=tuple(FailedRecord(entity, f.source_id, f.error_class, f.message) for f in report.failures),
            )
        return PlanResult(window, plans)


def reset_state(config: ConfigLike, entity: str | None = None) -> None:
    """Forget the change-detection memory (one entity or all); neither system is touched."""
    with _engine(_config(config)) as engine:
        if entity is not None:
            _entities(engine, [entity])
        engine.reset_state(entity)  # type: ignore[arg-type]


# -- internals -----------------------------------------------------------------------------------
@contextmanager
def _engine(config: SyncConfig) -> Iterator[SyncEngine]:
    """``SyncEngine.from_config`` whose clients are always closed."""
    engine = SyncEngine.from_config(config)
    try:
        yield engine
    finally:
        engine.close()


def _config(config: ConfigLike) -> SyncConfig:
    if isinstance(config, SyncConfig):
        return config
    from crmsync_pipelines.config import load_config

    path = Path(config)
    if not path.is_file():
        raise ConfigError("configuration file not found", file=str(path))
    return load_config(path)


def _run_id(prefix: str) -> str:
    import uuid

    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _instant(value: Instant, zone: ZoneInfo, name: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"{name}={value!r} is not an ISO date or datetime (e.g. 2026-11-01)") from None
    if not isinstance(value, datetime):
        value = datetime.combine(value, time())
    return value if value.tzinfo is not None else value.replace(tzinfo=zone)


def _window(config: SyncConfig, since: Instant, until: Instant, *, force_full: bool = False) -> Window:
    zone = ZoneInfo(config.daktela.timezone)
    start, end = _instant(since, zone, "since"), _instant(until, zone, "until")
    if force_full:
        return Window(None, end)
    if start is None and end is None:
        from crmsync_pipelines.cli.common import current_window

        return current_window(config)
    if start is not None and end is not None and start >= end:
        raise ValueError(f"since ({start.isoformat()}) must be before until ({end.isoformat()})")
    return Window(start, end)


def _entities(engine: SyncEngine, requested: Sequence[str] | None) -> list[Any]:
    enabled = all_entities(engine)
    if requested is None:
        return list(enabled)
    unknown = [e for e in requested if e not in enabled]
    if unknown:
        raise ConfigError(f"entity not enabled in sync.yaml: {', '.join(map(str, unknown))} "
                          f"(enabled: {', '.join(enabled) or 'none'})", file=_file(engine))
    return [e for e in enabled if e in requested]


def _file(engine: SyncEngine) -> str | None:
    return str(engine.config.source_path) if engine.config.source_path else None


def _result(engine: SyncEngine, run_id: str, window: Window | None, reports: list[StageReport],
            records: tuple[RecordOutcome, ...] = ()) -> SyncResult:
    from crmsync_pipelines.cli.common import load_rows

    rows = {str(row["entity"]): row for row in load_rows(reports)}
    counts: dict[str, dict[str, int]] = {}
    failures: dict[str, list[FailedRecord]] = {}
    # Each record once, with its final outcome (a transient failure retried at the end of the
    # load counts once): counted in staging, only the failed records are read.
    for entity, outcome, n in engine.staging.final_outcomes(run_id):
        counts.setdefault(entity, dict.fromkeys(OUTCOMES, 0))
        counts[entity][outcome] = counts[entity].get(outcome, 0) + n
    for row in engine.staging.final_failures(run_id):
        entity = str(row["entity"])
        failures.setdefault(entity, []).append(FailedRecord(
            entity, str(row["source_id"]), str(row["error_class"] or "transient"),
            str(row["error_message"] or ""), row["lookup_key"]))
    not_found: dict[str, int] = {}
    checks: dict[str, list[str]] = {}
    for report in reports:
        for side in (report, *report.all_side_reports()):
            not_found[side.entity] = not_found.get(side.entity, 0) + len(side.not_found)
        checks.setdefault(report.entity, []).extend(
            c.description for c in report.checks if not c.passed and c.name != "no_failed_records")
    seen = list(dict.fromkeys([*rows, *counts]))
    names = sorted(seen, key=lambda n: (_ORDER.index(n) if n in _ORDER else len(_ORDER), seen.index(n)))
    entities = {
        name: EntityResult(
            entity=name,
            **{k: v for k, v in counts.get(name, {}).items() if k in OUTCOMES},
            not_found=not_found.get(name, 0),
            api_calls=_api_calls(reports, name),
            duration_s=float(rows.get(name, {}).get("duration_s", 0.0)),
            failures=tuple(failures.get(name, ())),
            failed_checks=tuple(checks.get(name, ())),
        )
        for name in names
    }
    waiting = sum(r.waiting for r in reports)
    return SyncResult(run_id, window, entities, records, waiting, tuple(reports))


def _api_calls(reports: list[StageReport], entity: str) -> dict[str, int]:
    calls: dict[str, int] = {}
    for report in reports:
        for stage in (report, *report.all_side_reports()):
            if stage.entity != entity:
                continue
            own = dict(stage.api_calls)
            for side in stage.side_reports:
                for system, n in side.api_calls.items():
                    own[system] = own.get(system, 0) - n
            for system, n in own.items():
                calls[system] = calls.get(system, 0) + n
    return {k: v for k, v in calls.items() if v}


__all__ = [
    "EntityPlan",
    "EntityResult",
    "FailedRecord",
    "PlanResult",
    "SyncResult",
    "plan",
    "reset_state",
    "retry_failed",
    "sync",
    "sync_ids",
]
