"""Counting CRM adapter calls, so every stage can report how many API calls it made.

An adapter that talks HTTP and counts its own requests (its optional ``usage()`` hook reports
``requests_used``, as the built-in Raynet and HubSpot adapters do) is measured in those
requests: one ``upsert_activities`` call may be 22 Raynet requests or one HubSpot batch, and
a stage's ``api_calls`` must say what the CRM's quota was charged. Other adapters (the SQL
CRM, a custom one without the figure) count one call per method call and iterator.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

from crmsync_pipelines.crm.base import CrmAdapter


class CallCounter:
    """Method calls made through ``CountingCrm``; ``total`` prefers the adapter's own request count."""

    def __init__(self, requests: Callable[[], int | None] | None = None) -> None:
        self._lock = threading.Lock()
        self._calls = 0
        self._requests = requests
        self._last_sent: int | None = None

    def add(self, n: int = 1) -> None:
        with self._lock:
            self._calls += n

    @property
    def total(self) -> int:
        """HTTP requests the adapter reports having sent, else the method calls counted here."""
        if self._requests is not None:
            sent = self._requests()
            if sent is not None:
                self._last_sent = sent
            if self._last_sent is not None:  # a hook that fails once must not switch units mid-run
                return self._last_sent
        return self._calls


def adapter_requests(adapter: CrmAdapter) -> int | None:
    """``usage()["requests_used"]`` of the adapter when it reports one (an int), else None.

    Never raises: a failing ``usage()`` hook is the adapter's reporting bug, not a sync failure.
    """
    usage = getattr(adapter, "usage", None)
    if not callable(usage):
        return None
    try:
        figures = usage()
    except Exception:  # reporting must never fail a stage (engine._adapter_usage logs it)
        return None
    sent = figures.get("requests_used") if isinstance(figures, dict) else None
    return sent if isinstance(sent, int) and not isinstance(sent, bool) else None


class CountingCrm:
    """Wraps a CRM adapter; each public method call (and each iterator started) counts as one call,
    unless the adapter reports its own HTTP requests (``usage()["requests_used"]``)."""

    def __init__(self, adapter: CrmAdapter) -> None:
        self.adapter = adapter
        counts_requests = adapter_requests(adapter) is not None
        self.counter = CallCounter(lambda: adapter_requests(adapter) if counts_requests else None)

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
