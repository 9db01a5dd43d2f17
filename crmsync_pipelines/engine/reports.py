"""What every engine stage returns: counts, API calls, duration, failure samples, checks.

The Dagster assets turn a ``StageReport`` into ``MaterializeResult`` metadata and asset
check results; the CLI prints it. Keeping it a plain dataclass keeps the engine free of
Dagster.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Stage = Literal["extract", "map", "load", "retry", "webhook"]
Entity = Literal["account", "contact", "activity"]
Outcome = Literal["created", "updated", "unchanged", "failed", "skipped"]

#: Ledger entities written on behalf of an entity's load, reported inside its ``StageReport``
#: with their counts prefixed (``auto_contact_failed``): the contacts ``auto_create_contact``
#: makes for accounts. Their failures are the entity's failures (exit code, checks, retries).
RELATED_LEDGER_ENTITIES: dict[str, tuple[str, ...]] = {"account": ("auto_contact",)}


@dataclass(frozen=True)
class Window:
    """A half-open time window ``[start, end)``; ``None`` leaves an end open. Always tz-aware."""

    start: datetime | None
    end: datetime | None

    def label(self) -> str:
        start = self.start.isoformat() if self.start else "-inf"
        end = self.end.isoformat() if self.end else "+inf"
        return f"[{start}, {end})"


@dataclass(frozen=True)
class FailureSample:
    source_id: str
    error_class: str
    message: str
    #: The ledger entity when it is not the report's own (``auto_contact`` in an account report).
    entity: str = ""


@dataclass(frozen=True)
class CheckOutcome:
    """The result of one data check run by the engine (for Dagster asset checks and the CLI)."""

    name: str
    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FieldChange:
    field: str
    old: Any
    new: Any


@dataclass(frozen=True)
class PlannedChange:
    """One write the load stage would make (``crmsync plan``)."""

    entity: Entity
    source_id: str
    target_key: str
    action: Literal["create", "update"]
    changes: tuple[FieldChange, ...]


@dataclass
class StageReport:
    entity: Entity
    stage: Stage
    run_id: str
    window: Window
    counts: dict[str, int] = field(default_factory=dict)
    api_calls: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0
    failures: list[FailureSample] = field(default_factory=list)
    checks: list[CheckOutcome] = field(default_factory=list)
    planned: list[PlannedChange] = field(default_factory=list)
    #: Figures the CRM adapter reports through its optional ``usage()`` hook, prefixed ``crm_``
    #: (``crm_requests_used``, ``crm_budget_remaining``, ...): shown in the run metadata.
    metadata: dict[str, Any] = field(default_factory=dict)
    #: API calls (per system) made for related ledger entities; already included in ``api_calls``.
    related_api_calls: dict[str, int] = field(default_factory=dict)
    #: Records of this entity (and its related ledger entities) that wait in ``failed_records``
    #: from EARLIER runs: held-back validation/conflict failures, auth failures, ... Set by
    #: the load, retry and webhook stages.
    waiting: int = 0
    #: Reports of records of OTHER entities synced on the fly during this stage (the accounts
    #: a contact batch references but Daktela lacks); their API calls and duration are
    #: already included in this report's.
    side_reports: list[StageReport] = field(default_factory=list)
    #: Requested ids (``sync_ids``, retries) that no longer exist at the source.
    not_found: list[str] = field(default_factory=list)

    def all_side_reports(self) -> list[StageReport]:
        """Side reports, recursively (a side sync may itself sync related records)."""
        found: list[StageReport] = []
        for side in self.side_reports:
            found.append(side)
            found.extend(side.all_side_reports())
        return found

    def related_counts(self, related: str) -> dict[str, int]:
        """The outcome counts of one related ledger entity (``auto_contact_created`` -> ``created``)."""
        prefix = f"{related}_"
        return {k[len(prefix):]: v for k, v in self.counts.items() if k.startswith(prefix)}

    @property
    def failed(self) -> int:
        """Records that failed in this stage, including those of related ledger entities."""
        related = RELATED_LEDGER_ENTITIES.get(self.entity, ())
        return self.counts.get("failed", 0) + sum(self.counts.get(f"{r}_failed", 0) for r in related)

    def summary_line(self) -> str:
        parts = ", ".join(f"{k} {v}" for k, v in self.counts.items())
        calls = sum(self.api_calls.values())
        return f"{self.entity}/{self.stage}: {parts}; {calls} API calls; {self.duration_s:.2f}s"
