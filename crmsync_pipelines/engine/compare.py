"""Field-level change detection between a mapped payload and what the target holds.

Only the fields the mapping writes are compared (an unmapped Daktela custom field never
causes an update — W10), through ``comparable`` so representation noise (``[x]`` vs ``x``,
``""`` vs ``null``, relation objects vs names) is not a change, while real differences
(``"0420"`` vs ``"420"``) are.
"""

from __future__ import annotations

import hashlib
from typing import Any

from crmsync_pipelines.daktela.normalize import comparable
from crmsync_pipelines.engine.paths import flatten, read_path
from crmsync_pipelines.engine.reports import FieldChange
from crmsync_pipelines.staging.store import dumps

#: Nested objects that are sent whole on update so a partial PUT cannot wipe sibling keys.
MERGED_OBJECTS = ("customFields",)


def payload_hash(payload: dict[str, Any]) -> str:
    return hashlib.sha256(dumps(payload).encode("utf-8")).hexdigest()[:32]


def changed_fields(payload: dict[str, Any], target: dict[str, Any]) -> list[FieldChange]:
    changes: list[FieldChange] = []
    for path, new in flatten(payload).items():
        old = read_path(target, path)
        if comparable(new) != comparable(old):
            changes.append(FieldChange(path, old, new))
    return changes


def update_body(payload: dict[str, Any], target: dict[str, Any], changes: list[FieldChange]) -> dict[str, Any]:
    """The PUT body: changed top-level fields only; merged objects carry their unmapped keys too."""
    body: dict[str, Any] = {}
    for change in changes:
        top = change.field.split(".", 1)[0]
        if top in body:
            continue
        if top in MERGED_OBJECTS and isinstance(payload.get(top), dict):
            current = target.get(top)
            existing: dict[str, Any] = current if isinstance(current, dict) else {}
            body[top] = {**existing, **payload[top]}
        else:
            body[top] = payload.get(top)
    return body


def project(target: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    """The target record cut down to the mapped fields (what the snapshot table keeps)."""
    projected: dict[str, Any] = {}
    for path in flatten(payload):
        value = read_path(target, path)
        node = projected
        parts = path.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return projected
