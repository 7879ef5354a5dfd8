"""A token bucket in Redis: one atomic Lua script refills by the Redis clock and spends a cost.

The script can also hand a caller a lease of extra credits to spend without coming back (see
`scimsvc.ratelimit.limiter`), but only while the bucket stays at least half full after it, and takes back
credits a caller returns unspent.
"""

from __future__ import annotations

from typing import NamedTuple

from scimsvc.ratelimit.limiter_redis import LimiterRedis

# KEYS[1]: the bucket (a hash: tokens, ts in ms), the only key the script touches (one Redis Cluster slot).
# ARGV: capacity (credits), window in ms (an empty bucket refills fully in one window), cost,
#       optionally "now" in ms — tests only; otherwise the Redis server's TIME, so every replica
#       shares one clock —, the lease wanted (credits, optional) and credits returned (optional).
# Returns {allowed (0/1), remaining credits (floored), wait ms until `cost` credits exist (0 if
# allowed), ms until the bucket is full again, lease granted (credits)}.
# Returned credits go back in before anything else (never above the capacity): they were taken from this
# bucket by an earlier lease and never spent. The cost is decided exactly as without a lease. The lease
# is granted, whole or not at all, only to an admitted request and only if the bucket still holds half
# its capacity after it: near the limit every request comes here, and 429s and Retry-After are exact.
# A cost above the capacity is admitted only from a full bucket and leaves it in debt, so the
# long-run rate still holds. The key expires once it would be full again: a full bucket and a missing
# one are the same, so idle tenants leave nothing behind.
TOKEN_BUCKET_LUA = """
local capacity = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local lease = tonumber(ARGV[5]) or 0
local returned = tonumber(ARGV[6]) or 0
local now
if ARGV[4] and ARGV[4] ~= '' then
    now = tonumber(ARGV[4])
else
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- Milliseconds until `credits` more have refilled, rounded up (less a float-noise epsilon).
local function ms_until(credits)
    if credits <= 0 then
        return 0
    end
    return math.ceil(credits * window / capacity - 1e-6)
end
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
    tokens = capacity
    ts = now
end
if now > ts then
    tokens = math.min(capacity, tokens + (now - ts) * capacity / window)
    ts = now
end
tokens = tokens + returned
if tokens > capacity then
    tokens = capacity
end
local allowed = 0
local wait = 0
if cost <= tokens or (cost > capacity and tokens >= capacity) then
    tokens = tokens - cost
    allowed = 1
elseif cost > capacity then
    wait = ms_until(capacity - tokens)
else
    wait = ms_until(cost - tokens)
end
local granted = 0
if allowed == 1 and lease > 0 and tokens - lease >= capacity / 2 then
    tokens = tokens - lease
    granted = lease
end
local full_in = ms_until(capacity - tokens)
if full_in > 0 then
    redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'ts', ts)
    redis.call('PEXPIRE', KEYS[1], full_in)
else
    redis.call('DEL', KEYS[1])
end
local remaining = math.floor(tokens)
if remaining < 0 then
    remaining = 0
end
return {allowed, remaining, wait, full_in, granted}
"""


class Verdict(NamedTuple):
    """What the bucket said about one request (a tuple: made once per SCIM request, cheaply)."""

    allowed: bool
    remaining: int  # credits left after this request
    wait_ms: int  # until enough credits exist for it (0 when allowed)
    full_in_ms: int  # until the bucket is full again
    granted: int = 0  # credits leased to the caller on top of the cost (already out of `remaining`)


class TokenBucket:
    """Buckets under one key prefix; the script is loaded once and run with EVALSHA (reloaded on NOSCRIPT)."""

    def __init__(self, redis: LimiterRedis, *, window_ms: int = 30_000) -> None:
        # redis-py types register_script for Redis only; RedisCluster's runs EVALSHA on the key's slot.
        self._script = redis.register_script(TOKEN_BUCKET_LUA)  # type: ignore[misc]
        self.window_ms = window_ms

    async def take(
        self,
        key: str,
        *,
        capacity: int,
        cost: int,
        lease: int = 0,
        returned: int = 0,
        now_ms: int | None = None,
    ) -> Verdict:
        """Spend `cost` credits from the bucket at `key` if it holds them, after putting back `returned`
        unspent leased credits; an admitted request is also granted `lease` more if the bucket stays half
        full."""
        args = [capacity, self.window_ms, cost, "" if now_ms is None else now_ms, lease, returned]
        allowed, remaining, wait, full_in, granted = await self._script(keys=[key], args=args)
        return Verdict(bool(allowed), int(remaining), int(wait), int(full_in), int(granted))
