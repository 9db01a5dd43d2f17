"""Fault injection, the optional rate limiter, and the request log with per-route counters.

Tests use these to prove a client's retries are bounded, that writes are not retried on 5xx,
and that it honours ``Retry-After`` in both its forms.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import Counter, deque
from email.utils import formatdate
from fnmatch import fnmatchcase

from crmsync_pipelines.simulator.config import Fault, RequestRecord


def route_matches(pattern: str, method: str, path: str) -> bool:
    """``"*"``, ``"METHOD PATTERN"`` (method may be ``*``) or a bare path pattern."""
    if pattern.strip() == "*":
        return True
    wanted_method, sep, path_pattern = pattern.strip().partition(" ")
    if not sep:
        return fnmatchcase(path, wanted_method)
    return (wanted_method == "*" or wanted_method.upper() == method) and fnmatchcase(path, path_pattern.strip())


class FaultBook:
    """Active faults; each match consumes one of its ``times`` (``None`` = forever)."""

    def __init__(self, seed: str = "faults") -> None:
        self._lock = threading.Lock()
        self._faults: list[list[object]] = []  # [fault, remaining, still to let through]
        self._random = random.Random(seed)

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append([fault, fault.times, fault.after])

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def active(self) -> list[Fault]:
        with self._lock:
            return [entry[0] for entry in self._faults]  # type: ignore[misc]

    def take(self, method: str, path: str) -> Fault | None:
        """The first fault that fires for this request, consuming one use of it."""
        with self._lock:
            for entry in self._faults:
                fault, remaining, let_through = entry
                assert isinstance(fault, Fault)
                if not route_matches(fault.route, method, path):
                    continue
                assert isinstance(let_through, int)
                if let_through > 0:
                    entry[2] = let_through - 1
                    continue
                if fault.probability < 1.0 and self._random.random() >= fault.probability:
                    continue
                if remaining is not None:
                    assert isinstance(remaining, int)
                    entry[1] = remaining - 1
                    if remaining - 1 <= 0:
                        self._faults.remove(entry)
                return fault
        return None


class RateLimiter:
    """N requests per fixed window; beyond that the answer is 429 with ``Retry-After``."""

    def __init__(self, limit: int | None, window_s: float, retry_after_form: str = "seconds") -> None:
        self.limit = limit
        self.window_s = window_s
        self.retry_after_form = retry_after_form
        self._lock = threading.Lock()
        self._window_start = time.monotonic()
        self._used = 0

    def check(self) -> str | None:
        """None when the request may proceed, else the ``Retry-After`` value to send."""
        if self.limit is None:
            return None
        with self._lock:
            now = time.monotonic()
            if now - self._window_start >= self.window_s:
                self._window_start, self._used = now, 0
            if self._used < self.limit:
                self._used += 1
                return None
            wait = self.window_s - (now - self._window_start)
        if self.retry_after_form == "http-date":
            return formatdate(time.time() + max(wait, 1.0), usegmt=True)
        return str(max(1, math.ceil(wait)))


class RequestLog:
    """Every API request (bounded list) plus unbounded per-route and per-status counters."""

    def __init__(self, max_records: int | None) -> None:
        self._lock = threading.Lock()
        self.records: deque[RequestRecord] = deque(maxlen=max_records)
        self.by_route: Counter[str] = Counter()
        self.by_status: Counter[int] = Counter()

    def add(self, record: RequestRecord) -> None:
        with self._lock:
            self.records.append(record)
            self.by_route[f"{record.method} {record.path}"] += 1
            self.by_status[record.status] += 1

    def reset(self) -> None:
        with self._lock:
            self.records.clear()
            self.by_route.clear()
            self.by_status.clear()

    def count(self, method: str | None = None, path: str | None = None) -> int:
        """Requests matching a method and a path (exact, or a prefix when it ends in ``*``)."""
        with self._lock:
            items = list(self.by_route.items())
        total = 0
        for route, hits in items:
            route_method, _, route_path = route.partition(" ")
            if method is not None and route_method != method.upper():
                continue
            if path is not None and not (
                route_path.startswith(path[:-1]) if path.endswith("*") else route_path == path
            ):
                continue
            total += hits
        return total

    def snapshot(self) -> list[RequestRecord]:
        with self._lock:
            return list(self.records)
