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


class AdaptiveConcurrency:
    """How many writes may be in flight at once, found by AIMD (additive increase,
    multiplicative decrease) instead of a fixed rate.

    Daktela documents no rate limit, so the right pace is measured: the limit starts at
    ``initial``, stays there for four rounds (``4 × initial`` writes) while the baseline
    latency is measured, then doubles per round of successes (slow start) until the first overload,
    then grows by one per round of ``limit`` successes while the write latency stays flat
    (smoothed latency at most twice the lowest seen). An overload — HTTP 429, a 5xx, a
    ``Retry-After``, a timeout or a reset — halves it, at most once per round trip (a burst of
    refusals from one overload halves it once). After an overload it grows back quickly to
    just below the level that overloaded the server, then probes above it slowly, so the
    average stays close to what the server allows. Never above ``maximum``, never below 1.
    """

    def __init__(self, initial: int, maximum: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        if initial < 1 or maximum < 1:
            raise ValueError(f"concurrency must be at least 1, got initial={initial}, maximum={maximum}")
        self.maximum = max(initial, maximum)
        self._limit = float(initial)
        self._clock = clock
        self._cond = threading.Condition()
        self._in_flight = 0
        self._peak = initial
        self._ceiling: float | None = None
        self._base_s: float | None = None
        self._smoothed_s: float | None = None
        self._last_decrease = float("-inf")
        self._done = 0
        self._warmup = 4 * initial
        self._window_start = clock()
        self._window_done = 0
        self._rate = 0.0
        self.overloads = 0

    @property
    def limit(self) -> int:
        with self._cond:
            return int(self._limit)

    def acquire(self) -> None:
        """Block until fewer than ``limit`` writes are in flight, then count this one in."""
        with self._cond:
            while self._in_flight >= int(self._limit):
                self._cond.wait()
            self._in_flight += 1

    def release(self, latency_s: float | None, *, overloaded: bool) -> None:
        """Count a write out: ``latency_s`` of a completed request (None when it never got an
        answer), ``overloaded`` when the server pushed back (429, 5xx, Retry-After, timeout)."""
        with self._cond:
            self._in_flight -= 1
            now = self._clock()
            self._done += 1
            self._window_done += 1
            if now - self._window_start >= 1.0:
                self._rate = self._window_done / (now - self._window_start)
                self._window_start, self._window_done = now, 0
            if overloaded:
                self._overload(now)
            elif latency_s is not None:
                self._observe(latency_s)
            self._cond.notify_all()

    def signal_overload(self) -> None:
        """The server pushed back on a write that keeps its slot (it waits and retries): halve now."""
        with self._cond:
            self._overload(self._clock())

    def _overload(self, now: float) -> None:
        self.overloads += 1
        if now - self._last_decrease >= (self._smoothed_s or 0.0):
            self._ceiling = self._limit
            self._limit = max(1.0, self._limit / 2)
            self._last_decrease = now

    def _observe(self, latency_s: float) -> None:
        self._smoothed_s = latency_s if self._smoothed_s is None else 0.9 * self._smoothed_s + 0.1 * latency_s
        self._base_s = latency_s if self._base_s is None else min(self._base_s, latency_s)
        if self._done <= self._warmup or self._smoothed_s > 2 * self._base_s + 0.002:
            return  # measuring the baseline, or latency is rising (the server queues our writes): hold
        if self._ceiling is None:
            step = 1.0  # slow start: +1 per success doubles the limit per round
        elif self._limit < self._ceiling - 1:
            step = 1.0 / self._limit * 4  # back to just below the last overload within a few rounds
        else:
            step = 1.0 / (self._limit * 8)  # probe above it slowly
        self._limit = min(float(self.maximum), self._limit + step)
        self._peak = max(self._peak, int(self._limit))

    def snapshot(self) -> dict[str, float | int]:
        """Current limit, peak limit, writes in flight, writes/s over the last second, overloads."""
        with self._cond:
            now = self._clock()
            elapsed = now - self._window_start
            rate = self._window_done / elapsed if elapsed >= 1.0 else self._rate
            return {"limit": int(self._limit), "peak": self._peak, "in_flight": self._in_flight,
                    "writes_per_s": round(rate, 1), "overloads": self.overloads}
