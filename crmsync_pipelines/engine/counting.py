"""Counting CRM adapter calls, so every stage can report how many API calls it made."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

from crmsync_pipelines.crm.base import CrmAdapter


class CallCounter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.total = 0

    def add(self, n: int = 1) -> None:
        with self._lock:
            self.total += n


class CountingCrm:
    """Wraps a CRM adapter; each public method call (and each iterator started) counts as one call."""

    def __init__(self, adapter: CrmAdapter) -> None:
        self.adapter = adapter
        self.counter = CallCounter()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.adapter, name)
        if name.startswith("_") or not callable(attr):
            return attr
        counter = self.counter

        def counted(*args: Any, **kwargs: Any) -> Any:
            counter.add()
            return attr(*args, **kwargs)

        return counted

    def iterate(self, method: Callable[..., Iterator[dict[str, Any]]], *args: Any) -> Iterator[dict[str, Any]]:
        self.counter.add()
        yield from method(*args)
