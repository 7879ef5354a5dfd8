"""The rate limit seen from outside: admissions sent before a 429's Retry-After had passed, and the
credits the server admitted against what its announced budget allows (the budget plus its refill)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from scimsvc.ratelimit.levels import WINDOW_SECONDS
from scimsvc.tools.loadtest.samples import Sample


@dataclass(frozen=True)
class EarlyAdmission:
    worker: int
    route: str
    sent: float
    not_before: float  # the refused request's send time + its Retry-After


def early_admissions(samples: Iterable[Sample]) -> tuple[list[EarlyAdmission], int]:
    """Admissions sent before a previous 429's Retry-After had passed, per worker; and how many 429s had one.

    The announced time is measured from when the refused request was *sent*, which is before the server
    decided: an admission before it is early whatever the network added.
    """
    by_worker: dict[int, list[Sample]] = defaultdict(list)
    for s in samples:
        by_worker[s.worker].append(s)
    early: list[EarlyAdmission] = []
    announced = 0
    for worker, own in by_worker.items():
        not_before = -math.inf
        for s in sorted(own, key=lambda s: s.sent):
            if s.status == 429 and s.retry_after is not None:
                announced += 1
                not_before = max(not_before, s.sent + s.retry_after)
            elif s.admitted and s.sent < not_before:
                early.append(EarlyAdmission(worker, s.route, round(s.sent, 3), round(not_before, 3)))
    return early, announced


def credit_accounting(samples: Sequence[Sample], elapsed: float) -> dict[str, Any]:
    """Admitted credits against what the announced budget allows over the run: limit + refill."""
    limits = [s.limit for s in samples if s.limit is not None]
    limit = max(limits) if limits else None
    admitted = sum(s.cost for s in samples if s.admitted and s.limit is not None)
    allowed = limit + limit * elapsed / WINDOW_SECONDS if limit else None
    offered = sum(s.cost for s in samples)
    refill = limit * elapsed / WINDOW_SECONDS if limit and elapsed > 0 else None
    return {
        "offered_credits": offered,
        # the offered credit rate over the sustainable one (the refill): 10 is a 10x overload
        "overload": round(offered / refill, 2) if refill else None,
        "admitted_credits": admitted,
        "limit": limit,
        "window_s": WINDOW_SECONDS,
        "allowed_over_run": round(allowed, 1) if allowed is not None else None,
        "ratio": round(admitted / allowed, 4) if allowed else None,
    }
