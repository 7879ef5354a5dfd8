"""Per-tenant credit budgets on SCIM routes and a per-address limit on failed authentications.

Both are token buckets in Redis (`scimsvc.ratelimit.token_bucket`), so every front-end replica shares them.

Leases. A round trip to Redis (EVALSHA) adds about 0.25 ms to a cached `GET /Users/{id}` that takes 0.6 ms
in all, so a process does not make one per request while its tenant's bucket is comfortably full. A
request that goes to Redis asks, on top of its cost, for a lease of up to 20 times that cost (at most what
the bucket refills in one lease lifetime, `SCIMSVC_RATE_LIMIT_LEASE_MS`, 1 s: capacity/30; none if that is
less than the cost). The script grants it, whole or not at all, only to an admitted request and only if
the bucket stays at least half full after it. The next requests of that tenant in this process whose cost
fits in the lease, with the same capacity, before it expires, are admitted here without a round trip; one
that does not fit goes to Redis and first gives back whatever this process still holds for the tenant (the
script adds it to the bucket before deciding). So:
- Never over the shared budget: every admitted credit was taken from the one bucket in Redis, by the
  request itself or by a lease. A leased credit is spent at most one lease lifetime after it was taken,
  so over any interval a tenant gets at most budget + refill + what leases held when it began (at most
  one lease per process: only one request at a time asks for one).
- Exact near the limit: below half a bucket no lease is granted, every request goes to Redis, and 429s,
  Retry-After and the budget across replicas are what the script says, as without leases.
- Unspent credits are given back on the process's next call for the tenant, or lapse with the lease
  (at most one lease per process, taken while the bucket was more than half full) if none comes.
- A change of the tenant's capacity ends its lease (its credits are given back on that call).
- RateLimit-Remaining of a request admitted from a lease is the bucket's figure at this process's last
  call plus what it still holds, so it falls by each request's cost; it ignores refill and other
  replicas since (at most one lease lifetime old). RateLimit-Reset counts down the last call's figure.
- Redis unreachable: a lease already held is still spent (its credits were granted), then the
  configured open or closed behaviour applies. Failed-authentication buckets are never leased.
- On a Redis Cluster (`limiter_redis.py`) each bucket is one key, named with its tenant (or address) as
  hash tag, and the script touches only that key: every call is on one slot. A cluster's errors (no
  master for the slot, CLUSTERDOWN, TRYAGAIN, MOVED past redis-py's redirections, timeouts) are Redis
  errors like any other; one call to a cluster is bounded as a whole (`CLUSTER_CALL_SECONDS`).
A lease is one small object per tenant, created once and mutated in place; concurrent requests never
wait for each other: when a burst exhausts the lease, each one just goes to Redis.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Hashable
from uuid import UUID

from redis.asyncio.cluster import RedisCluster

from scimsvc.ops.metrics import WebMetrics
from scimsvc.ratelimit.expiring_set import ExpiringSet
from scimsvc.ratelimit.levels import LEVELS, WINDOW_SECONDS
from scimsvc.ratelimit.limiter_redis import CLUSTER_CALL_SECONDS, REDIS_ERRORS, LimiterRedis
from scimsvc.ratelimit.token_bucket import TokenBucket, Verdict
from scimsvc.scim.errors import ScimError
from scimsvc.settings import Settings

log = logging.getLogger(__name__)

REDIS_RETRY_SECONDS = 5  # after a Redis error, skip it for this long instead of timing out per request
LOG_EVERY_SECONDS = 60
# One round trip per 21 requests of one cost: ~5% of them pay it, so the median never does, and a lease
# stays small next to any budget it is granted from (at most 1,000 credits for a user read).
LEASE_COSTS = 20
REFUSED_SECONDS = 60  # a wrong credential sent again within this long is not counted again
MAX_BLOCKED = 10_000  # blocked addresses kept in memory; past this, expired ones are dropped


class Lease:
    """Credits this process took from a tenant's bucket in advance, and the bucket's figures then."""

    __slots__ = ("capacity", "credits", "expires", "asking", "remaining", "full_at")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.credits = 0  # held, not yet spent
        self.expires = 0.0  # monotonic
        self.asking = False  # a request of this process is asking Redis for a lease right now
        self.remaining = 0  # the bucket's credits in Redis after this process's last call
        self.full_at = 0.0  # monotonic time the bucket is full again, as of that call


def lease_size(capacity: int, cost: int, *, lease_ms: int, window_ms: int) -> int:
    """Credits to ask for on top of `cost`: whole costs, up to LEASE_COSTS of them and what the bucket
    refills in one lease lifetime."""
    if cost <= 0:
        return 0
    return cost * min(LEASE_COSTS, capacity * lease_ms // window_ms // cost)


class RateLimiter:
    """The buckets, what to do when Redis is unreachable, and counters for metrics."""

    def __init__(self, redis: LimiterRedis, settings: Settings, metrics: WebMetrics) -> None:
        self.tenants = TokenBucket(redis, window_ms=WINDOW_SECONDS * 1000)
        self.auth = TokenBucket(redis, window_ms=60_000)
        self.settings = settings
        self.metrics = metrics
        self.redis_errors = 0
        self._redis_down_until = 0.0
        self._logged_at = -math.inf
        # (kind, address) -> monotonic time until which its wrong credentials get 429
        self._blocked: dict[tuple[str, str], float] = {}
        self._refused = ExpiringSet(seconds=REFUSED_SECONDS)  # (kind, hash) of wrong credentials counted
        # tenant -> its lease in this process: one object per tenant ever leased, mutated in place
        self._leases: dict[UUID, Lease] = {}
        self._lease_seconds = settings.rate_limit_lease_ms / 1000
        # One Redis: its socket timeouts bound a call. A cluster client may read the topology and retry.
        self._call_seconds = CLUSTER_CALL_SECONDS if isinstance(redis, RedisCluster) else None

    def _key(self, kind: str, who: str) -> str:
        # The {hash tag} keeps each tenant's (or address's) keys on one Redis Cluster slot.
        return f"{self.settings.rate_limit_prefix}:{kind}:{{{who}}}"

    async def _take(
        self, bucket: TokenBucket, key: str, *, capacity: int, cost: int, lease: int = 0, returned: int = 0
    ) -> Verdict | None:
        """The bucket's verdict; None when Redis is unreachable and the limit fails open."""
        now = time.monotonic()
        if now >= self._redis_down_until:
            call = bucket.take(key, capacity=capacity, cost=cost, lease=lease, returned=returned)
            try:
                if self._call_seconds is None:
                    return await call
                async with asyncio.timeout(self._call_seconds):
                    return await call
            except REDIS_ERRORS as exc:
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
        """Spend a request's credits: from this process's lease if it fits, else from the bucket in Redis.

        The verdict's `remaining` counts the credits this process still holds for the tenant.
        """
        if cost is None:
            cost = LEVELS[level]
        now = time.monotonic()
        lease = self._leases.get(tenant_id)
        if lease is not None and lease.credits >= cost and now < lease.expires and lease.capacity == capacity:
            lease.credits -= cost
            full_in = math.ceil((lease.full_at - now) * 1000) if lease.full_at > now else 0
            return Verdict(True, lease.remaining + lease.credits, 0, full_in)
        want = lease_size(
            capacity, cost, lease_ms=self.settings.rate_limit_lease_ms, window_ms=self.tenants.window_ms
        )
        if lease is None and want:
            lease = self._leases[tenant_id] = Lease(capacity)
        returned = 0
        asking = False
        if lease is not None and now >= self._redis_down_until:
            # Give back what is left: near the limit it may pay for this request; it would lapse otherwise.
            returned, lease.credits = lease.credits, 0
            lease.capacity = capacity  # a lease under another capacity ends here
            # One request at a time asks for a lease: a burst that finds it spent does not take one each.
            asking = want > 0 and not lease.asking
            lease.asking = lease.asking or asking
        try:
            verdict = await self._take(
                self.tenants,
                self._key("tenant", str(tenant_id)),
                capacity=capacity,
                cost=cost,
                lease=want if asking else 0,
                returned=returned,
            )
        finally:
            if asking and lease is not None:
                lease.asking = False
        if verdict is None:
            return None
        if not verdict.allowed:
            self.metrics.rate_limited.labels(level).inc()
        if lease is None:
            return verdict
        if verdict.granted:
            lease.credits += verdict.granted
            lease.expires = now + self._lease_seconds  # from before the call: never later than granted + TTL
        lease.remaining = verdict.remaining
        lease.full_at = now + verdict.full_in_ms / 1000
        if lease.credits <= 0:
            return verdict
        return Verdict(
            verdict.allowed,
            verdict.remaining + lease.credits,
            verdict.wait_ms,
            verdict.full_in_ms,
            verdict.granted,
        )

    def auth_blocked(self, kind: str, address: str) -> float:
        """Seconds `address` must still wait after too many wrong credentials of `kind` (0: none)."""
        return self._auth_blocked((kind, address), time.monotonic())

    def new_refusal(self, credential: Hashable) -> bool:
        """Remember a refused credential (by kind and hash) for a while; False if it was already known."""
        if credential in self._refused:
            return False
        self._refused.add(credential)
        return True

    def _auth_blocked(self, key: tuple[str, str], now: float) -> float:
        until = self._blocked.get(key)
        if until is None:
            return 0.0
        if until <= now:
            del self._blocked[key]
            return 0.0
        return until - now

    async def auth_failed(self, kind: str, address: str) -> float:
        """Count a wrong credential of `kind` (scim, operator) from `address`: 0 while the address is within
        its budget, else the seconds until it may try unknown credentials again (429).

        Only wrong credentials are counted here. Once over budget, the address is refused in this process
        until its bucket refills, without asking Redis again; that is logged once per block. What a block
        refuses is the caller's rule (scimsvc/web/middlewares.py): SCIM guesses only, or every operator key.
        """
        now = time.monotonic()
        key = (kind, address)
        left = self._auth_blocked(key, now)
        if left <= 0:
            limit = self.settings.auth_failures_per_minute
            verdict = await self._take(self.auth, self._key(f"auth:{kind}", address), capacity=limit, cost=1)
            if verdict is None or verdict.allowed:
                return 0.0
            left = verdict.wait_ms / 1000
            if len(self._blocked) >= MAX_BLOCKED:
                self._blocked = {k: t for k, t in self._blocked.items() if t > now}
            self._blocked[key] = now + left
            log.warning(
                "too many failed authentications (%s) from %s: over %d a minute; 429 for %.0f s",
                kind,
                address,
                limit,
                left,
            )
        self.metrics.rate_limited.labels("auth").inc()
        return left


def retry_after(wait_ms: int) -> str:
    """Whole seconds, rounded up, never 0: a client that waits this long is never early."""
    return str(max(1, math.ceil(wait_ms / 1000)))


def rate_headers(capacity: int, verdict: Verdict) -> dict[str, str]:
    limit = str(capacity)
    remaining = str(verdict.remaining)
    reset = str(math.ceil(verdict.full_in_ms / 1000))
    headers = {
        "RateLimit-Limit": limit,
        "RateLimit-Remaining": remaining,
        "RateLimit-Reset": reset,
        "RateLimit-Policy": f"{limit};w={WINDOW_SECONDS}",
        "X-RateLimit-Limit": limit,
        "X-RateLimit-Remaining": remaining,
        "X-RateLimit-Reset": reset,
    }
    if not verdict.allowed:
        headers["Retry-After"] = retry_after(verdict.wait_ms)
    return headers
