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

    @property
    def failed(self) -> int:
        return self.counts.get("failed", 0)

    def summary_line(self) -> str:
        parts = ", ".join(f"{k} {v}" for k, v in self.counts.items())
        calls = sum(self.api_calls.values())
        return f"{self.entity}/{self.stage}: {parts}; {calls} API calls; {self.duration_s:.2f}s"
