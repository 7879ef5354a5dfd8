"""One measured request (`Sample`), and the response headers it records: Retry-After, RateLimit-Limit."""

from __future__ import annotations

import email.utils
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class Sample:
    """One request: who sent it, when (seconds since the run started), what came back."""

    worker: int
    route: str  # "PATCH /Users/{id}"
    sent: float
    latency: float
    status: int | None  # None: no response (connection error or timeout)
    cost: int
    retry_after: float | None = None
    limit: int | None = None  # RateLimit-Limit, when the server announced one

    @property
    def admitted(self) -> bool:
        return self.status is not None and self.status != 429


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Retry-After in seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def parse_limit(value: str | None) -> int | None:
    """The budget from a RateLimit-Limit header ("10000", or a draft's "10000, 10000;w=30")."""
    if not value:
        return None
    head = value.split(",")[0].split(";")[0].strip()
    return int(head) if head.isdigit() else None
