"""Retry timing: exponential backoff with full jitter and ``Retry-After`` parsing.

Kept apart from the client so the policy (what to wait, when to give up) can be read and
tested on its own; the client decides *which* failures are retried.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

#: The shortest wait after a 429, even when the server says ``Retry-After: 0`` or a past
#: date: retrying instantly would only hammer an instance that just asked us to slow down.
MIN_RETRY_AFTER_S = 0.1


@dataclass
class RetryPolicy:
    """How often and how long to retry; one instance per client (its RNG is not shared)."""

    max_retries: int = 5
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    max_retry_after_s: float = 120.0
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.backoff_base_s < 0 or self.backoff_max_s < 0:
            raise ValueError("backoff times must be >= 0")

    def backoff_s(self, attempt: int) -> float:
        """Full jitter: uniform in ``[0, min(max, base * 2**attempt)]`` so parallel clients spread out."""
        ceiling = min(self.backoff_max_s, self.backoff_base_s * (2 ** min(attempt, 30)))
        return self.rng.uniform(0.0, ceiling)

    def delay_s(self, attempt: int, retry_after_s: float | None) -> float | None:
        """Seconds to wait before retry number ``attempt + 1``; ``None`` means "give up now".

        The server's ``Retry-After`` (RFC 9110 §10.2.3, sent with 429 and 503, and honoured
        with any status that carries it) wins over our backoff; a demand longer than
        ``max_retry_after_s`` ends the retries at once instead of holding a worker for minutes.
        """
        if retry_after_s is None:
            return self.backoff_s(attempt)
        if retry_after_s > self.max_retry_after_s:
            return None
        return retry_after_s


def parse_retry_after(header: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP-date).

    Returns ``None`` when the header is missing or unreadable (the caller then backs off on
    its own); never less than ``MIN_RETRY_AFTER_S``.
    """
    if header is None:
        return None
    text = header.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(MIN_RETRY_AFTER_S, seconds)
