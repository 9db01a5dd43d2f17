"""The per-record mapping failure, carrying which rule failed."""

from __future__ import annotations

from crmsync_pipelines.errors import MappingError


class RecordMappingError(MappingError):
    """One record could not be mapped; ``rule_index`` and ``field`` locate the rule in the file."""

    def __init__(self, message: str, *, rule_index: int, field: str, record_id: str | None = None) -> None:
        super().__init__(message)
        self.rule_index = rule_index
        self.field = field
        self.record_id = record_id
