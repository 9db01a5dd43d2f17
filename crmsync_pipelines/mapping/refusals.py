"""Refused values: what a transformer does with a value it cannot convert correctly.

A value crmsync writes is either the correct conversion or refused *visibly*; it is never
replaced by a plausible guess. Transformers that can refuse (``phone_normalize``,
``date_format``) take an ``on_invalid`` param:

- ``fail`` (the default): raise ``RefusedValueError``; the mapper turns it into a
  ``RecordMappingError`` naming the rule, the field and the raw value, and the record fails
  with error class *validation*.
- ``keep``: write the raw value unchanged.
- ``drop``: write null instead (or leave the element out of a list).

``keep`` and ``drop`` are reported through ``note_refusal`` into the collector of the record
being mapped (``start_collecting``), so the engine's map stage can count them; outside a collector
the note is a no-op. The collector is a ``ContextVar``, so threads and tasks never mix notes,
and only rules whose transformers set ``NOTES_REFUSALS`` pay for attributing them.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any, Literal, cast

from crmsync_pipelines.mapping.transformers.params import get_choice

OnInvalid = Literal["fail", "keep", "drop"]
ON_INVALID_CHOICES: tuple[str, ...] = ("fail", "keep", "drop")

#: Longest raw value quoted in a message (a refused value is quoted, never the whole record).
_QUOTE_LIMIT = 80


class RefusedValueError(ValueError):
    """A value a transformer cannot convert correctly; ``raw`` is the value as read."""

    def __init__(self, message: str, raw: Any) -> None:
        super().__init__(message)
        self.raw = raw


@dataclass(frozen=True, slots=True)
class Refusal:
    """One refused value: ``field`` is the target field, ``policy`` what was written instead."""

    field: str
    raw: Any
    reason: str
    policy: OnInvalid


#: A compiled transformer that may call ``note_refusal`` sets this attribute to True, so the
#: runner of its rule attributes the notes to the rule's target field (``claim_refusals``).
NOTES_REFUSALS = "notes_refusals"

#: The record being mapped collects ``Refusal``s, and notes not yet claimed by a rule as
#: ``(raw, reason, policy)`` tuples.
_COLLECTOR: ContextVar[list[Any] | None] = ContextVar("crmsync_refusals", default=None)


def quote(raw: Any) -> str:
    """``repr`` of a raw value, shortened for messages."""
    text = repr(raw)
    return text if len(text) <= _QUOTE_LIMIT else text[: _QUOTE_LIMIT - 1] + "…"


def on_invalid_param(params: dict[str, Any]) -> OnInvalid:
    """The ``on_invalid`` param (default ``fail``); a bad value is a load-time error."""
    return cast(OnInvalid, get_choice(params, "on_invalid", "fail", ON_INVALID_CHOICES))


def note_refusal(raw: Any, reason: str, policy: OnInvalid) -> None:
    """Report a value refused under ``keep``/``drop`` to the current collector, if any."""
    sink = _COLLECTOR.get()
    if sink is not None:
        sink.append((raw, reason, policy))


def refuse(raw: Any, reason: str, policy: OnInvalid) -> Any:
    """Apply ``policy`` to a refused value: raise (``fail``), or note it and return what to write.

    Returns the raw value (``keep``) or None (``drop``).
    """
    if policy == "fail":
        raise RefusedValueError(reason, raw)
    note_refusal(raw, reason, policy)
    return raw if policy == "keep" else None


def claim_refusals(field: str) -> None:
    """Attribute the notes made since the last claim to ``field`` (called by a rule's runner)."""
    sink = _COLLECTOR.get()
    if sink:
        for index, note in enumerate(sink):
            if type(note) is tuple:
                sink[index] = Refusal(field, *note)


def start_collecting(refusals: list[Refusal]) -> Token[list[Any] | None]:
    """Append the ``Refusal``s of values refused from now on to ``refusals``; pass the token back to
    ``stop_collecting`` (a plain function pair, cheaper than a context manager per record)."""
    return _COLLECTOR.set(refusals)


def stop_collecting(token: Token[list[Any] | None]) -> None:
    """End the collection; notes no rule claimed (a transformer without ``NOTES_REFUSALS``) get field ``""``."""
    claim_refusals("")
    _COLLECTOR.reset(token)
