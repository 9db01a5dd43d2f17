"""Knobs of the Daktela V6 simulator.

Every behaviour of the real API that the research notes mark as unverified is a setting here,
so a client can be tested against each plausible variant instead of one guess.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

FaultKind = Literal["status", "rate_limit", "malformed_json", "slow", "reset"]
FAULT_KINDS: tuple[str, ...] = ("status", "rate_limit", "malformed_json", "slow", "reset")


@dataclass
class SimulatorConfig:
    """How one simulated Daktela instance behaves; see docs/simulator.md for each knob."""

    host: str = "127.0.0.1"
    port: int = 0
    seed: str | None = "demo"
    db_path: Path | None = None
    token: str = "sim-token"
    timezone: str = "Europe/Prague"
    latency_ms: float = 0.0
    rate_limit: int | None = None
    rate_window_s: float = 1.0
    rate_limit_retry_after: Literal["seconds", "http-date"] = "seconds"
    #: Requests the instance serves at once; one more gets 429 with ``Retry-After: 1``. None: no cap.
    max_concurrent: int | None = None
    take_max: int = 1000
    take_max_mode: Literal["clamp", "error"] = "clamp"
    default_take: int = 100
    locale: Literal["en", "cs"] = "en"
    custom_fields_put: Literal["merge", "replace"] = "merge"
    reject_activity_date_filters: bool = False
    not_found_error_form: Literal["string", "list"] = "string"
    total_as_string: bool = False
    data_as_object: bool = False
    omit_timezone: bool = False
    forbidden_models: tuple[str, ...] = ()
    username: str = "api"
    password: str = "sim-password"
    login_token_ttl_s: float = 3600.0
    webhook_url: str | None = None
    webhook_secret: str | None = None
    webhook_format: Literal["json", "form"] = "json"
    request_log_max: int | None = 20_000

    def with_overrides(self, overrides: dict[str, Any]) -> SimulatorConfig:
        """A copy with the given fields replaced; unknown names are a TypeError, not ignored."""
        known = set(self.__dataclass_fields__)
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"unknown SimulatorConfig field(s): {', '.join(unknown)}")
        values = {name: getattr(self, name) for name in known}
        values.update(overrides)
        if values["db_path"] is not None:
            values["db_path"] = Path(values["db_path"])
        return SimulatorConfig(**values)


@dataclass
class Fault:
    """One injected failure, matched against ``"METHOD /path"`` of each API request.

    ``route`` is ``"*"``, ``"METHOD PATTERN"`` or just ``"PATTERN"`` (any method); patterns
    use shell wildcards, so ``"GET /api/v6/contacts*"`` covers the list and single reads.
    """

    route: str
    kind: FaultKind
    status: int = 500
    retry_after: str | None = None
    delay_s: float = 0.0
    times: int | None = 1
    probability: float = 1.0
    apply_after: bool = False
    body: Literal["empty", "html"] = "empty"
    #: How many matching requests pass untouched before the fault starts to fire (for example
    #: a token revoked after the 10th create: ``after=10, status=401, times=None``).
    after: int = 0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; allowed: {', '.join(FAULT_KINDS)}")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError("fault probability must be between 0 and 1")
        if self.times is not None and self.times < 1:
            raise ValueError("fault times must be >= 1 or None (forever)")
        if self.after < 0:
            raise ValueError("fault after must be >= 0")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fault:
        """Build from the JSON of ``POST /_sim/faults``; unknown keys are an error."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(unknown)}")
        return cls(**data)

    @classmethod
    def parse(cls, spec: str) -> Fault:
        """Parse the CLI form ``ROUTE=WHAT[xTIMES]``.

        WHAT is a status code (``500``; ``429`` means a rate-limit answer), optionally with a
        ``Retry-After`` in seconds (``503:10``), ``malformed``, ``reset`` or ``slow:SECONDS``;
        TIMES is a count or ``*`` for forever (default 1).
        Examples: ``'POST /api/v6/contacts.json=500x2'``, ``'*=503:10x3'``, ``'*=slow:1.5x*'``.
        """
        route, sep, what = spec.rpartition("=")
        if not sep or not route.strip() or not what:
            raise ValueError(f"fault spec {spec!r} must look like 'ROUTE=500x2'")
        times: int | None = 1
        if "x" in what:
            what, _, count = what.rpartition("x")
            if count == "*":
                times = None
            elif count.isdigit() and int(count) > 0:
                times = int(count)
            else:
                raise ValueError(f"fault spec {spec!r}: times must be a positive number or '*'")
        route = route.strip()
        code_text, _, retry_after = what.partition(":")
        if code_text.isdigit():
            code = int(code_text)
            if retry_after and not retry_after.isdigit():
                raise ValueError(f"fault spec {spec!r}: Retry-After must be whole seconds, e.g. 503:10")
            if code == 429:
                return cls(route=route, kind="rate_limit", status=429, retry_after=retry_after or "1", times=times)
            return cls(route=route, kind="status", status=code, retry_after=retry_after or None, times=times)
        if what == "malformed":
            return cls(route=route, kind="malformed_json", times=times)
        if what == "reset":
            return cls(route=route, kind="reset", times=times)
        if what.startswith("slow:"):
            try:
                delay = float(what.removeprefix("slow:"))
            except ValueError:
                raise ValueError(f"fault spec {spec!r}: slow needs seconds, e.g. slow:2.5") from None
            return cls(route=route, kind="slow", delay_s=delay, times=times)
        raise ValueError(f"fault spec {spec!r}: unknown fault {what!r} (status code, malformed, reset, slow:S)")


@dataclass
class RequestRecord:
    """One API request as the server saw it, for asserting exact wire encodings in tests."""

    method: str
    path: str
    query: dict[str, Any]
    raw_query: str
    headers: dict[str, str]
    json: Any
    status: int
    fault: str | None = None
    at: float = field(default=0.0)
    #: The client's ``host:port``: which TCP connection carried the request (keep-alive reuse).
    peer: str = ""
