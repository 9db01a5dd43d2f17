"""``multi_value`` strategies: reshaping lists and delimited strings (reference section D)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from crmsync_pipelines.mapping.models import MultiValue
from crmsync_pipelines.mapping.transformers.text import to_text

MultiValueFn = Callable[[Any], Any]


def _as_array(value: Any) -> Any:
    if isinstance(value, list):
        return value
    if value is None or value == "":
        return []
    return [value]


def _first(value: Any) -> Any:
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _last(value: Any) -> Any:
    if isinstance(value, list):
        return value[-1] if value else None
    return value


def compile_multi_value(config: MultiValue) -> MultiValueFn:
    """The strategy as a one-argument function with its separator bound."""
    strategy = config.strategy
    if strategy == "as_array":
        return _as_array
    if strategy == "first":
        return _first
    if strategy == "last":
        return _last
    if strategy == "join":
        joiner = config.separator

        def join(value: Any) -> Any:
            if isinstance(value, list):
                return joiner.join(to_text(item) for item in value)
            return to_text(value)

        return join
    splitter = config.separator or ","

    def split(value: Any) -> Any:
        if type(value) is str and value:
            return [part.strip() for part in value.split(splitter)]
        if isinstance(value, list):
            return value
        if value is None or value == "":
            return []
        return [part.strip() for part in to_text(value).split(splitter)]

    return split
