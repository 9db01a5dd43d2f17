"""``FieldMapper``: applies a compiled mapping to records.

Per rule: read (static value or dotted read) -> transformers -> relation -> multi_value
(deferred for append targets) -> custom fields made lists -> write (dot notation creates
intermediate dicts). Every rule writes its target key even when the value is null: the CRM
is the source of truth, so a cleared CRM field clears the Daktela field too (reference E3/W24).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from crmsync_pipelines.mapping.errors import RecordMappingError
from crmsync_pipelines.mapping.models import Mapping
from crmsync_pipelines.mapping.plan import Plan, compile_plan
from crmsync_pipelines.mapping.refusals import Refusal, RefusedValueError, start_collecting, stop_collecting
from crmsync_pipelines.mapping.runner import StepFailure, read_field, write_field
from crmsync_pipelines.mapping.transformers import TransformerRegistry, default_registry
from crmsync_pipelines.mapping.transformers.text import as_list

Relations = dict[str, dict[str, str]]
#: The Daktela instance zone, or a function returning it when asked (it can change at run time,
#: when the API announces ``_timezone``).
ZoneSource = str | Callable[[], str | None] | None

__all__ = ["FieldMapper", "Relations", "ZoneSource", "read_field", "write_field"]

_CACHE_LIMIT = 64


def _record_id(record: dict[str, Any]) -> str | None:
    for key in ("id", "name"):
        value = record.get(key)
        if value not in (None, ""):
            return str(value)
    return None


def _failure(failure: StepFailure, plan: Plan, record: dict[str, Any]) -> RecordMappingError:
    step = failure.step
    source = step.source.name if step.source is not None else "static value"
    where = f"{plan.file}: " if plan.file else ""
    message = f"{where}mappings[{step.index}] ({source} -> {step.target.name}): {failure.stage}: {failure.cause}"
    return RecordMappingError(
        message,
        rule_index=step.index,
        field=step.target.name,
        record_id=_record_id(record),
        refused=isinstance(failure.cause, RefusedValueError),
    )


class FieldMapper:
    """Maps records with mappings; compiled plans are cached per (mapping, direction, instance zone).

    ``instance_timezone`` is what ``from_tz``/``to_tz: instance`` stand for: an IANA name, or
    a function asked before each mapping call (the engine passes the Daktela adapter's zone,
    which follows the API's ``_timezone``). Without it, records using ``instance`` fail.
    """

    def __init__(self, registry: TransformerRegistry | None = None, *, instance_timezone: ZoneSource = None) -> None:
        self.registry = registry if registry is not None else default_registry()
        self.instance_timezone: ZoneSource = instance_timezone
        self._plans: dict[tuple[int, str], tuple[Mapping, int, str | None, Plan]] = {}

    def _zone(self) -> str | None:
        source = self.instance_timezone
        return source() if callable(source) else source

    def plan(self, mapping: Mapping, direction: str) -> Plan:
        """The compiled plan (raises ``ConfigError`` when the mapping cannot run in ``direction``)."""
        key = (id(mapping), direction)
        zone = self._zone()
        cached = self._plans.get(key)
        if cached is not None and cached[0] is mapping and cached[1] == self.registry.version and cached[2] == zone:
            return cached[3]
        plan = compile_plan(mapping, direction, self.registry, instance_timezone=zone)
        if len(self._plans) >= _CACHE_LIMIT:
            self._plans.clear()
        self._plans[key] = (mapping, self.registry.version, zone, plan)
        return plan

    def map(
        self,
        record: dict[str, Any],
        mapping: Mapping,
        direction: str,
        relations: Relations | None = None,
        *,
        refusals: list[Refusal] | None = None,
    ) -> dict[str, Any]:
        """One record -> the target-side payload; a failing rule raises ``RecordMappingError``.

        With a ``refusals`` list, the values transformers refused under ``on_invalid: keep``
        or ``drop`` are appended to it (a ``fail`` refusal raises instead).
        """
        plan = self.plan(mapping, direction)
        if refusals is None:
            return self._apply(plan, record, relations or {})
        token = start_collecting(refusals)
        try:
            return self._apply(plan, record, relations or {})
        finally:
            stop_collecting(token)

    def map_many(
        self,
        records: Iterable[dict[str, Any]],
        mapping: Mapping,
        direction: str,
        relations: Relations | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Like ``map`` over many records, compiling once; stops at the first failing record.

        Callers that must keep going past a bad record call ``map`` per record instead.
        """
        plan = self.plan(mapping, direction)
        tables = relations or {}
        apply = self._apply
        for record in records:
            yield apply(plan, record, tables)

    @staticmethod
    def _apply(plan: Plan, record: dict[str, Any], relations: Relations) -> dict[str, Any]:
        if not isinstance(record, dict):
            raise RecordMappingError(f"expected a record (dict), got {type(record).__name__}", rule_index=-1, field="")
        out: dict[str, Any] = {}
        try:
            for run in plan.runners:
                run(record, out, relations)
        except StepFailure as failure:
            raise _failure(failure, plan, record) from failure.cause
        for target, multi, custom in plan.deferred:
            current = read_field(out, target)
            if current is None:
                continue
            try:
                value = multi(current)
                write_field(out, target, as_list(value) if custom else value)
            except Exception as exc:
                where = f"{plan.file}: " if plan.file else ""
                raise RecordMappingError(
                    f"{where}multi_value of appended {target.name}: {exc}",
                    rule_index=-1,
                    field=target.name,
                    record_id=_record_id(record),
                ) from exc
        return out
