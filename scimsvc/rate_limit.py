"""Per-tenant credit budgets on SCIM routes and a per-address limit on failed authentications.

Both are token buckets in Redis (`scimsvc.token_bucket`), so every front-end replica shares them.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any
from uuid import UUID

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler
from redis.asyncio import Redis
from redis.exceptions import RedisError

from scimsvc.keys import RATE_LIMIT, SETTINGS, TENANT_ID
from scimsvc.metrics import WebMetrics
from scimsvc.rate_levels import BULK, LEVELS, WINDOW_SECONDS, bulk_credits, request_level, tenant_credits
from scimsvc.scim.errors import ScimError
from scimsvc.settings import Settings
from scimsvc.token_bucket import TokenBucket, Verdict

log = logging.getLogger(__name__)

REDIS_RETRY_SECONDS = 5  # after a Redis error, skip it for this long instead of timing out per request
LOG_EVERY_SECONDS = 60


class RateLimiter:
    """The buckets, what to do when Redis is unreachable, and counters for metrics."""

    def __init__(self, redis: Redis, settings: Settings, metrics: WebMetrics) -> None:
        self.tenants = TokenBucket(redis, window_ms=WINDOW_SECONDS * 1000)
        self.auth = TokenBucket(redis, window_ms=60_000)
        self.settings = settings
        self.metrics = metrics
        self.redis_errors = 0
        self._redis_down_until = 0.0
        self._logged_at = -math.inf
        self._blocked: dict[str, float] = {}  # address -> monotonic time its failures are refused until

    def _key(self, kind: str, who: str) -> str:
        # The {hash tag} keeps each tenant's (or address's) keys on one Redis Cluster slot.
        return f"{self.settings.rate_limit_prefix}:{kind}:{{{who}}}"

    async def _take(self, bucket: TokenBucket, key: str, *, capacity: int, cost: int) -> Verdict | None:
        """The bucket's verdict; None when Redis is unreachable and the limit fails open."""
        now = time.monotonic()
        if now >= self._redis_down_until:
            try:
                return await bucket.take(key, capacity=capacity, cost=cost)
            except (RedisError, OSError) as exc:
                self._redis_down_until = now + REDIS_RETRY_SECONDS
                self._redis_failed(exc)
        else:
            self.redis_errors += 1
            self.metrics.rate_limit_redis_errors.inc()
        if self.settings.rate_limit_on_redis_error == "closed":
            raise ScimError(
                503,
                "rate limiting is unavailable (its store cannot be reached) and this server refuses "
                "requests until it is back: retry later",
                headers={"Retry-After": str(REDIS_RETRY_SECONDS)},
            )
        return None

    def _redis_failed(self, exc: BaseException) -> None:
        self.redis_errors += 1
        self.metrics.rate_limit_redis_errors.inc()
        now = time.monotonic()
        if now - self._logged_at >= LOG_EVERY_SECONDS:
            self._logged_at = now
            log.error(
                "rate limiter cannot reach Redis (%r); failing %s (%d errors so far)",
                exc,
                self.settings.rate_limit_on_redis_error,
                self.redis_errors,
            )

    async def spend(
        self, tenant_id: UUID, *, capacity: int, level: str, cost: int | None = None
    ) -> Verdict | None:
        verdict = await self._take(
            self.tenants,
            self._key("tenant", str(tenant_id)),
            capacity=capacity,
            cost=LEVELS[level] if cost is None else cost,
        )
        if verdict is not None and not verdict.allowed:
            self.metrics.rate_limited.labels(str(tenant_id), level).inc()
        return verdict

    def auth_blocked(self, address: str) -> float:
        """Seconds this address must still wait after too many failed authentications (0: none)."""
        until = self._blocked.get(address)
        if until is None:
            return 0.0
        left = until - time.monotonic()
        if left <= 0:
            del self._blocked[address]
            return 0.0
        return left

    async def auth_failed(self, address: str) -> Verdict | None:
        """Count a failed authentication of `address`; a refusal blocks it here until the bucket refills."""
        limit = self.settings.auth_failures_per_minute
        verdict = await self._take(self.auth, self._key("auth", address), capacity=limit, cost=1)
        if verdict is not None and not verdict.allowed:
            self.metrics.rate_limited.labels("-", "auth").inc()
            self._blocked[address] = time.monotonic() + verdict.wait_ms / 1000
        return verdict


LIMITER = web.AppKey("rate_limiter", RateLimiter)


def retry_after(wait_ms: int) -> str:
    """Whole seconds, rounded up, never 0: a client that waits this long is never early."""
    return str(max(1, math.ceil(wait_ms / 1000)))


def rate_headers(capacity: int, verdict: Verdict) -> dict[str, str]:
    reset = str(math.ceil(verdict.full_in_ms / 1000))
    headers = {
        "RateLimit-Limit": str(capacity),
        "RateLimit-Remaining": str(verdict.remaining),
        "RateLimit-Reset": reset,
        "RateLimit-Policy": f"{capacity};w={WINDOW_SECONDS}",
        "X-RateLimit-Limit": str(capacity),
        "X-RateLimit-Remaining": str(verdict.remaining),
        "X-RateLimit-Reset": reset,
    }
    if not verdict.allowed:
        headers["Retry-After"] = retry_after(verdict.wait_ms)
    return headers


async def _body_bytes(request: web.Request) -> int:
    if request.content_length is not None:
        return request.content_length
    return len(await request.read()) if request.can_read_body else 0


def _json_or_none(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def _route(request: web.Request) -> str | None:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else None


@web.middleware
async def rate_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Spend the request's credits from its tenant's bucket; over budget → 429, nothing done."""
    settings: Settings = request.app[SETTINGS]
    if not settings.rate_limit_enabled or TENANT_ID not in request:
        return await handler(request)
    capacity = tenant_credits(request[RATE_LIMIT], default_credits=settings.rate_limit_credits)
    if capacity is None:
        return await handler(request)
    route = _route(request)
    body = await _body_bytes(request) if request.method == "PATCH" else None
    level = request_level(request.method, route, body)
    cost = LEVELS[level]
    if (request.method, route) == BULK:
        # The sum of its operations, capped at the budget so that any bulk can pass once the bucket is full.
        cost = min(capacity, bulk_credits(_json_or_none(await request.read())))
    verdict = await request.app[LIMITER].spend(request[TENANT_ID], capacity=capacity, level=level, cost=cost)
    if verdict is None:  # Redis unreachable, failing open
        return await handler(request)
    headers = rate_headers(capacity, verdict)
    if not verdict.allowed:
        raise ScimError(
            429,
            f"this tenant's SCIM budget of {capacity} credits per {WINDOW_SECONDS} s is spent "
            f"({request.method} {route or request.path} costs {cost}, level {level}; "
            f"{verdict.remaining} left): retry after {headers['Retry-After']} s",
            headers=headers,
        )
    try:
        response = await handler(request)
    except (ScimError, web.HTTPException) as exc:
        exc.headers.update(headers)
        raise
    response.headers.update(headers)
    return response
