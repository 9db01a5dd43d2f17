"""The per-record mapping failure, carrying which rule failed."""

from __future__ import annotations

from crmsync_pipelines.errors import MappingError


class RecordMappingError(MappingError):
    """One record could not be mapped; ``rule_index`` and ``field`` locate the rule in the file.

    ``refused`` is True when a transformer refused the value it read (``on_invalid: fail``,
    see ``crmsync_pipelines.mapping.refusals``): the message then quotes the raw value.
    """

    def __init__(
        self, message: str, *, rule_index: int, field: str, record_id: str | None = None, refused: bool = False
    ) -> None:
        super().__init__(message)
        self.rule_index = rule_index
        self.field = field
        self.record_id = record_id
        self.refused = refused
