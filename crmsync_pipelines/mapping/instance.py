"""The Daktela instance's time zone as mappings see it: ``from_tz: instance`` / ``to_tz: instance``.

Daktela writes datetimes naive, in the instance's zone (daktela-v6-api.md §5.5), which
crmsync knows from ``daktela.timezone`` and, when the API announces it, ``_timezone``. A
mapping refers to it with the keyword ``instance`` instead of repeating the zone (or an
environment variable that can disagree with the instance). ``FieldMapper(instance_timezone=...)``
provides the zone; it reaches the ``date_format`` factory through this context variable while
the mapper compiles a plan, so custom transformer factories can read it the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

#: The zone keyword accepted by ``from_tz`` and ``to_tz``.
INSTANCE = "instance"

_ZONE: ContextVar[str | None] = ContextVar("crmsync_instance_timezone", default=None)


def current_instance_timezone() -> str | None:
    """The IANA name of the instance zone of the plan being compiled, or None when unknown."""
    return _ZONE.get()


@contextmanager
def instance_timezone(name: str | None) -> Iterator[None]:
    """Make ``name`` the instance zone for transformers compiled inside the block."""
    token = _ZONE.set(name)
    try:
        yield
    finally:
        _ZONE.reset(token)
