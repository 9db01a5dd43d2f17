"""A thread-safe token bucket that paces requests of one client.

Daktela documents no rate limit, but a sync that fires writes from several threads can
overwhelm a small instance; pacing on our side keeps 429s the exception, not the rule.
Callers that find the bucket empty reserve a future token and sleep outside the lock, so
waiting threads are served in arrival order and none of them busy-waits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """``rate_per_s`` tokens per second with a burst of ``capacity`` (default: one second's worth)."""

    def __init__(
        self,
        rate_per_s: float,
        capacity: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate_per_s <= 0:
            raise ValueError(f"rate_per_s must be positive, got {rate_per_s}")
        self.rate_per_s = rate_per_s
        self.capacity = capacity if capacity is not None else max(1.0, rate_per_s)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.capacity
        self._updated = clock()
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Take one token and return how long the caller must wait before using it."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate_per_s)
            self._updated = now
            self._tokens -= 1.0
            if self._tokens >= 0:
                return 0.0
            return -self._tokens / self.rate_per_s

    def acquire(self) -> float:
        """Block until a token is available; returns the time waited in seconds."""
        wait = self.reserve()
        if wait > 0:
            self._sleep(wait)
        return wait
