"""One compiled rule as a closure: read -> transformers -> relation -> multi_value/append -> write.

A value written to a Daktela custom field is made a list just before the write (Daktela
refuses anything else with "Value must be an array", daktela-v6-api.md §5.5).

Each rule becomes a function whose decisions (plain key or dotted path, static value,
which transformers) are captured as closure variables, so the per-record work is a few
local lookups and the calls that do real work. That is what keeps mapping above
50,000 records/s (bench/mapping_bench.py). A failure is re-raised as ``StepFailure`` with
the stage it happened in, so the mapper can name the rule and the transformer.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from crmsync_pipelines.mapping.plan import FieldPath, Step
from crmsync_pipelines.mapping.refusals import NOTES_REFUSALS, claim_refusals
from crmsync_pipelines.mapping.transformers.text import as_list

Relations = dict[str, dict[str, str]]
Runner = Callable[[dict[str, Any], dict[str, Any], Relations], None]


class StepFailure(Exception):
    """A rule failed on one record; ``stage`` says where (read, transformer X, relation, ...)."""

    def __init__(self, step: Step, stage: str, cause: Exception) -> None:
        super().__init__(f"{stage}: {cause}")
        self.step = step
        self.stage = stage
        self.cause = cause


def read_field(record: dict[str, Any], path: FieldPath) -> Any:
    """A plain key, or a dotted walk through dicts (and list indices); missing -> None.

    A literal key containing dots (a flattened record) wins over the walk.
    """
    parts = path.parts
    if parts is None:
        return record.get(path.name)
    if path.name in record:
        return record[path.name]
    current: Any = record
    for part in parts:
        if isinstance(current, dict):
            current = current.get(part)
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return None
        if current is None:
            return None
    return current


def write_field(out: dict[str, Any], path: FieldPath, value: Any) -> None:
    """Set a plain key, or create intermediate dicts for a dotted path (replacing non-dicts)."""
    parts = path.parts
    if parts is None:
        out[path.name] = value
        return
    current = out
    for part in parts[:-1]:
        nxt = current.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            current[part] = nxt
        current = nxt
    current[parts[-1]] = value


def resolve_related(value: Any, table: dict[str, str]) -> Any:
    """Relation lookup by ``str(value)`` for str and int ids (and each element of a list)."""
    if isinstance(value, list):
        return [resolve_related(item, table) for item in value]
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        return value
    return table.get(str(value), value)


def appended(current: Any, value: Any) -> list[Any]:
    """Accumulate ``value`` into the target's list (a new list: inputs are never mutated)."""
    merged: list[Any] = [] if current is None else list(current) if isinstance(current, list) else [current]
    if isinstance(value, list):
        merged.extend(value)
    elif value is not None and value != "":
        merged.append(value)
    return merged


def custom_fields_object(value: Any) -> Any:
    """The whole ``customFields`` written at once: every value becomes a list (null stays null)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(f"customFields takes an object of lists, got {type(value).__name__}")
    return {key: as_list(item) for key, item in value.items()}


def build_runner(step: Step) -> Runner:
    static = step.static
    constant = step.value
    copy_constant = step.copy_value
    source = step.source
    source_key = source.name if source is not None else ""
    source_is_path = source is not None and source.parts is not None
    transformers = step.transformers
    claims = any(getattr(fn, NOTES_REFUSALS, False) for _, fn in transformers)
    relation = step.relation_entity
    multi = step.multi
    append = step.append
    custom = step.custom_fields
    wrap = as_list if custom == "key" else custom_fields_object if custom == "object" else None
    target = step.target
    target_key = target.name
    target_parts = target.parts
    pair = target_parts if target_parts is not None and len(target_parts) == 2 else None

    def run(record: dict[str, Any], out: dict[str, Any], relations: Relations) -> None:
        stage = "read"
        try:
            if static:
                value = copy.deepcopy(constant) if copy_constant else constant
            elif source_is_path:
                value = read_field(record, source)  # type: ignore[arg-type]
            else:
                value = record.get(source_key)
            for name, transform in transformers:
                stage = f"transformer {name}"
                value = transform(value)
            if claims:
                claim_refusals(target_key)
            if relation is not None and value is not None:
                stage = "relation"
                table = relations.get(relation)
                if table:
                    value = table.get(value, value) if type(value) is str else resolve_related(value, table)
            if append:
                stage = "append"
                value = appended(read_field(out, target), value)
            elif multi is not None:
                stage = "multi_value"
                value = multi(value)
            if wrap is not None and type(value) is not list:
                stage = "custom field"
                value = wrap(value)
            if target_parts is None:
                out[target_key] = value
            elif pair is not None:
                head = out.get(pair[0])
                if type(head) is not dict:
                    head = out[pair[0]] = {}
                head[pair[1]] = value
            else:
                write_field(out, target, value)
        except Exception as exc:
            raise StepFailure(step, stage, exc) from exc

    return run
