"""Rate limits (README.md, Rate limits): the Lua token bucket, honest 429s, isolation, replicas, Redis
down, auth abuse."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
import uuid

import aiohttp
import pytest
import redis.asyncio as aioredis

from scimsvc.ops.metrics import WebMetrics
from scimsvc.ratelimit.levels import LEVELS, ROUTE_LEVELS, STRICT_CREDITS, request_level, tenant_credits
from scimsvc.ratelimit.limiter import RateLimiter
from scimsvc.ratelimit.token_bucket import TOKEN_BUCKET_LUA, TokenBucket
from scimsvc.scim.errors import ScimError
from scimsvc.settings import parse_networks
from scimsvc.web.app import create_app
from scimsvc.web.client_address import client_address
from tests.conftest import (
    ADMIN_HEADERS,
    REDIS_URL,
    RUN_ID,
    Processes,
    free_port,
    make_tenant,
    service_env,
    unique_email,
    user_body,
)

RATE_HEADERS = (
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
)


def own_prefix() -> str:
    """Keys of one test, under the run's prefix (the session fixture removes them at the end)."""
    return f"scimsvc:test:{RUN_ID}:rl:{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def redis_client():
    client = aioredis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
async def bucket(redis_client):
    return TokenBucket(redis_client, window_ms=30_000), own_prefix()


# --- the bucket maths, run by the Lua script with an explicit clock ---------------------------


async def test_full_bucket_spends_then_refuses_with_exact_wait(bucket):
    tb, key = bucket
    t0 = 1_000_000
    for i in range(3):
        v = await tb.take(key, capacity=300, cost=100, now_ms=t0)
        assert v.allowed and v.remaining == 200 - 100 * i
    v = await tb.take(key, capacity=300, cost=100, now_ms=t0)
    # 300 credits per 30 s = 0.01 credit/ms: 100 credits take 10 s.
    assert not v.allowed and v.remaining == 0 and v.wait_ms == 10_000 and v.full_in_ms == 30_000
    early = await tb.take(key, capacity=300, cost=100, now_ms=t0 + 9_999)
    assert not early.allowed and early.wait_ms == 1
    on_time = await tb.take(key, capacity=300, cost=100, now_ms=t0 + 10_000)
    assert on_time.allowed and on_time.remaining == 0


async def test_refill_never_exceeds_capacity_and_full_buckets_leave_no_key(bucket, redis_client):
    tb, key = bucket
    t0 = 5_000_000
    await tb.take(key, capacity=1000, cost=500, now_ms=t0)
    ttl = await redis_client.pttl(key)
    assert 0 < ttl <= 15_000  # expires when it would be full again
    v = await tb.take(key, capacity=1000, cost=0, now_ms=t0 + 3_600_000)
    assert v.allowed and v.remaining == 1000 and v.full_in_ms == 0
    assert await redis_client.exists(key) == 0


async def test_clock_going_backwards_refills_nothing(bucket):
    tb, key = bucket
    t0 = 9_000_000
    await tb.take(key, capacity=300, cost=300, now_ms=t0)
    v = await tb.take(key, capacity=300, cost=10, now_ms=t0 - 5_000)
    assert not v.allowed and v.remaining == 0
    v = await tb.take(key, capacity=300, cost=10, now_ms=t0 + 1_000)
    assert v.allowed  # 10 credits refilled in the second after t0, none for the step back


async def test_cost_above_capacity_is_admitted_only_from_a_full_bucket_and_leaves_debt(bucket):
    tb, key = bucket
    t0 = 2_000_000
    v = await tb.take(key, capacity=1000, cost=2000, now_ms=t0)
    assert v.allowed and v.remaining == 0 and v.full_in_ms == 60_000  # 1000 in debt + 1000 to refill
    v = await tb.take(key, capacity=1000, cost=50, now_ms=t0 + 1_000)
    assert not v.allowed and v.wait_ms == 30_000 - 1_000 + 1_500  # until the debt is paid and 50 refilled
    v = await tb.take(key, capacity=1000, cost=2000, now_ms=t0 + 30_000)
    assert not v.allowed and v.wait_ms == 30_000  # a full bucket is needed again


async def test_lowering_capacity_clamps_the_stored_credits(bucket):
    tb, key = bucket
    t0 = 3_000_000
    await tb.take(key, capacity=10_000, cost=50, now_ms=t0)
    v = await tb.take(key, capacity=1_000, cost=50, now_ms=t0)
    assert v.allowed and v.remaining == 950


async def test_script_is_reloaded_after_the_cache_is_flushed(own_redis):
    client = aioredis.from_url(own_redis.url)  # SCRIPT FLUSH empties a whole server's cache: our own
    try:
        tb = TokenBucket(client)
        assert (await tb.take("k", capacity=100, cost=10)).allowed
        await client.script_flush()
        assert (await tb.take("k", capacity=100, cost=10)).remaining == 80
    finally:
        await client.aclose()


async def test_a_lease_is_granted_only_while_the_bucket_stays_half_full(bucket):
    tb, key = bucket
    t0 = 4_000_000
    v = await tb.take(key, capacity=10_000, cost=50, lease=300, now_ms=t0)
    assert v.allowed and v.granted == 300 and v.remaining == 9650
    await tb.take(key, capacity=10_000, cost=4350, lease=0, now_ms=t0)  # 5300 left
    v = await tb.take(key, capacity=10_000, cost=50, lease=300, now_ms=t0)
    assert v.allowed and v.granted == 0 and v.remaining == 5250  # 4950 after a lease: below half
    v = await tb.take(key, capacity=10_000, cost=50, lease=200, now_ms=t0)
    assert v.allowed and v.granted == 200 and v.remaining == 5000  # exactly half stays
    await tb.take(key, capacity=10_000, cost=4990, now_ms=t0)
    v = await tb.take(key, capacity=10_000, cost=50, lease=300, now_ms=t0)
    assert not v.allowed and v.granted == 0 and v.remaining == 10 and v.wait_ms == 120  # as without leases


async def test_returned_credits_are_put_back_before_the_cost_is_decided(bucket):
    tb, key = bucket
    t0 = 6_000_000
    await tb.take(key, capacity=10_000, cost=9970, now_ms=t0)  # 30 left
    v = await tb.take(key, capacity=10_000, cost=50, returned=30, now_ms=t0)
    assert v.allowed and v.remaining == 10
    v = await tb.take(key, capacity=10_000, cost=50, returned=100_000, now_ms=t0)
    assert v.allowed and v.remaining == 9950  # never above the capacity


# --- levels and presets (pure) ------------------------------------------------------------------


def test_strict_preset_reproduces_the_published_table():
    per_30s = {
        ("GET", "/scim/v2/Users"): 200,
        ("GET", "/scim/v2/Users/{id}"): 200,
        ("POST", "/scim/v2/Users"): 200,
        ("PUT", "/scim/v2/Users/{id}"): 100,
        ("PATCH", "/scim/v2/Users/{id}"): 100,
        ("DELETE", "/scim/v2/Users/{id}"): 20,
        ("GET", "/scim/v2/Groups/{id}"): 20,
        ("GET", "/scim/v2/Groups"): 5,
    }
    credits = tenant_credits({"preset": "strict"}, default_credits=1)
    assert credits == STRICT_CREDITS
    for (method, route), calls in per_30s.items():
        assert credits // LEVELS[request_level(method, route, None)] == calls, (method, route)
    assert credits // LEVELS[request_level("PATCH", "/scim/v2/Groups/{id}", 501)] == 5
    assert credits // LEVELS[request_level("PATCH", "/scim/v2/Groups/{id}", 500)] == 100


def test_default_budget_allows_25_requests_a_second_of_any_user_route():
    credits = tenant_credits({}, default_credits=400_000)
    assert credits is not None
    for method, route in ROUTE_LEVELS:
        if "/Users" in route:
            assert credits / LEVELS[request_level(method, route, None)] / 30 >= 25, (method, route)
    assert tenant_credits({"preset": "off"}, default_credits=400_000) is None
    assert tenant_credits({"preset": "strict", "credits_per_30s": 4000}, default_credits=1) == 4000


# --- through HTTP ---------------------------------------------------------------------------------


async def limited_tenant(client, credits):
    tenant = await make_tenant(client)
    resp = await client.patch(
        f"/admin/v1/tenants/{tenant.id}",
        json={"rate_limit": {"credits_per_30s": credits}},
        headers=ADMIN_HEADERS,
    )
    assert resp.status == 200, await resp.text()
    return tenant


async def test_over_budget_gets_429_with_headers_and_changes_nothing(client, db):
    tenant = await limited_tenant(client, 2000)  # 40 L1 requests
    admitted = 0
    started = time.monotonic()
    while True:
        resp = await client.get("/scim/v2/Users", headers=tenant.headers)
        for name in RATE_HEADERS:
            assert name in resp.headers, name
        assert resp.headers["RateLimit-Limit"] == "2000"
        if resp.status == 429:
            break
        assert resp.status == 200
        admitted += 1
    # 2000 credits, plus what refilled meanwhile (2000 per 30 s).
    assert 40 <= admitted <= 40 + math.ceil((time.monotonic() - started) * 2000 / 30 / 50)
    body = await resp.json()
    assert (
        body["status"] == "429"
        and "2000 credits per 30 s" in body["detail"]
        and "retry after" in body["detail"]
    )
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert int(resp.headers["Retry-After"]) >= 1

    resp = await client.post("/scim/v2/Users", json=user_body(unique_email()), headers=tenant.headers)
    assert resp.status == 429
    assert await db.fetchval("SELECT count(*) FROM users WHERE tenant_id = $1::uuid", tenant.id) == 0
    assert await db.fetchval("SELECT count(*) FROM outbox WHERE tenant_id = $1::uuid", tenant.id) == 0


async def test_retry_after_is_never_early(client):
    tenant = await limited_tenant(client, 2000)
    for _ in range(100):
        resp = await client.delete(f"/scim/v2/Users/{uuid.uuid4()}", headers=tenant.headers)  # L3: 500
        if resp.status == 429:
            break
    wait = int(resp.headers["Retry-After"])
    await asyncio.sleep(wait)
    resp = await client.delete(f"/scim/v2/Users/{uuid.uuid4()}", headers=tenant.headers)
    assert resp.status == 404  # admitted (and the user does not exist)


async def test_errors_carry_rate_headers_and_admin_routes_are_not_limited(client, tenant):
    resp = await client.get(f"/scim/v2/Users/{uuid.uuid4()}", headers=tenant.headers)
    assert resp.status == 404 and "RateLimit-Remaining" in resp.headers
    resp = await client.get("/scim/v2/Users", params={"filter": "bogus"}, headers=tenant.headers)
    assert resp.status == 400 and "X-RateLimit-Remaining" in resp.headers
    resp = await client.get(f"/admin/v1/tenants/{tenant.id}", headers=ADMIN_HEADERS)
    assert resp.status == 200 and "RateLimit-Limit" not in resp.headers


async def test_one_tenant_exhausted_leaves_another_unaffected(client):
    a = await limited_tenant(client, 2000)
    b = await limited_tenant(client, 2000)
    while (await client.get("/scim/v2/Users", headers=a.headers)).status != 429:
        pass
    resp = await client.get("/scim/v2/Users", headers=b.headers)
    assert resp.status == 200 and int(resp.headers["RateLimit-Remaining"]) >= 1900


async def test_preset_off_and_bad_rate_limit_settings(client, tenant, db):
    resp = await client.patch(
        f"/admin/v1/tenants/{tenant.id}", json={"rate_limit": {"preset": "off"}}, headers=ADMIN_HEADERS
    )
    assert resp.status == 200
    resp = await client.get("/scim/v2/Users", headers=tenant.headers)
    assert resp.status == 200 and "RateLimit-Limit" not in resp.headers
    for bad in ({"preset": "lax"}, {"credits_per_30s": 10}, {"credits_per_30s": "9000"}, {"burst": 1}, 5):
        resp = await client.patch(
            f"/admin/v1/tenants/{tenant.id}", json={"rate_limit": bad}, headers=ADMIN_HEADERS
        )
        assert resp.status == 400, bad
    assert await db.fetchval("SELECT rate_limit::text FROM tenants WHERE id = $1::uuid", tenant.id) == (
        '{"preset": "off"}'
    )


async def test_a_request_refused_for_its_size_costs_nothing(aiohttp_client, settings):
    small = dataclasses.replace(
        settings, group_patch_max_bytes=1000, max_body_bytes=4000, rate_limit_prefix=own_prefix()
    )
    client = await aiohttp_client(create_app(small))
    tenant = await make_tenant(client, rate_limit={"preset": "strict"})
    patch = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "add", "path": "members", "value": [{"value": str(uuid.uuid4())}] * 40}],
    }
    big_user = user_body(unique_email(), displayName="x" * 5000)
    # Priced, these would cost 2,000 credits (a large group PATCH) and 50: ten of each, 20,500.
    for _ in range(10):
        resp = await client.patch(f"/scim/v2/Groups/{uuid.uuid4()}", json=patch, headers=tenant.headers)
        assert resp.status == 413 and "Retry-After" not in resp.headers
        resp = await client.post("/scim/v2/Users", json=big_user, headers=tenant.headers)
        assert resp.status == 413 and "Retry-After" not in resp.headers
    resp = await client.get("/scim/v2/Users", headers=tenant.headers)
    assert resp.status == 200
    assert int(resp.headers["X-RateLimit-Remaining"]) == STRICT_CREDITS - LEVELS["L1"]


@pytest.mark.parametrize("mode", ["open", "closed"])
async def test_redis_down_fails_open_or_closed_as_configured(aiohttp_client, settings, mode, db):
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    app = create_app(
        dataclasses.replace(
            settings, redis_url=dead, rate_limit_on_redis_error=mode, enqueue_timeout_seconds=0.2
        )
    )
    client = await aiohttp_client(app)
    tenant = await make_tenant(client)
    resp = await client.post("/scim/v2/Users", json=user_body(unique_email()), headers=tenant.headers)
    if mode == "open":
        assert resp.status == 201  # admitted; the outbox row waits for the sweeper
        assert "RateLimit-Limit" not in resp.headers
    else:
        body = await resp.json()
        assert resp.status == 503 and body["status"] == "503" and int(resp.headers["Retry-After"]) >= 1
        assert await db.fetchval("SELECT count(*) FROM users WHERE tenant_id = $1::uuid", tenant.id) == 0
    resp = await client.get("/scim/v2/Users", headers=tenant.headers)  # within the retry interval: no stall
    assert resp.status == (200 if mode == "open" else 503)


async def serve_two(
    processes: Processes, *, database_url: str, redis_url: str = REDIS_URL, **env: str
) -> list[str]:
    """Two `scimsvc serve` processes on one Redis, with keys of their own unless `env` names a
    SCIMSVC_RATE_LIMIT_PREFIX (and the limiter's Redis if `env` names it): their base URLs."""
    env = service_env(database_url, redis_url=redis_url, **{"SCIMSVC_RATE_LIMIT_PREFIX": own_prefix(), **env})
    return list(await asyncio.gather(processes.serve(env), processes.serve(env)))


async def two_replicas_serve(
    processes: Processes, tenant, requests: int, *, database_url: str, redis_url: str = REDIS_URL, **env: str
) -> tuple[list[int], float]:
    """Send `requests` GET /Users, 32 at a time, alternately to two `scimsvc serve` processes on one
    Redis: their statuses and the seconds they took."""
    replicas = await serve_two(processes, database_url=database_url, redis_url=redis_url, **env)
    return await send_alternately(replicas, tenant, requests)


async def send_alternately(replicas: list[str], tenant, requests: int) -> tuple[list[int], float]:
    """Send `requests` GET /Users, 32 at a time, alternately to `replicas`: their statuses (each 200 or
    429) and the seconds they took."""
    async with aiohttp.ClientSession() as http:
        gate = asyncio.Semaphore(32)

        async def get(i: int) -> int:
            async with (
                gate,
                http.get(f"{replicas[i % 2]}/scim/v2/Users?count=1", headers=tenant.headers) as resp,
            ):
                await resp.read()
                return resp.status

        started = time.monotonic()
        statuses = await asyncio.gather(*(get(i) for i in range(requests)))
        elapsed = time.monotonic() - started
    assert statuses.count(200) + statuses.count(429) == requests
    return list(statuses), elapsed


def assert_budget_and_refill(statuses: list[int], elapsed: float, *, credits: int) -> None:
    """GET /Users (L1) of a fresh bucket of `credits`: admitted = the budget + what refilled, not more."""
    admitted = statuses.count(200)
    refill = elapsed * credits / 30 / 50
    assert credits // 50 <= admitted <= credits // 50 + math.ceil(refill) + 1, (admitted, elapsed)


async def replicas_admit_exactly_the_budget(client, database_url: str, processes: Processes, **env: str):
    """Two `scimsvc serve` processes share one bucket: admitted credits = budget + refill, not twice it.
    `env` may put the limiter's keys on a Redis of their own (tests/test_redis_cluster.py: a cluster).
    Returns the tenant."""
    tenant = await limited_tenant(client, 5000)  # 100 L1 requests
    statuses, elapsed = await two_replicas_serve(processes, tenant, 400, database_url=database_url, **env)
    assert_budget_and_refill(statuses, elapsed, credits=5000)
    return tenant


async def test_two_replicas_admit_exactly_the_budget(client, database_url, processes):
    await replicas_admit_exactly_the_budget(client, database_url, processes)


def test_client_address_behind_trusted_proxies():
    trusted = parse_networks("10.0.0.0/8, 127.0.0.1")
    assert client_address("10.1.2.3", "203.0.113.9, 10.0.0.5", trusted) == "203.0.113.9"
    assert (
        client_address("127.0.0.1", "198.51.100.1, 203.0.113.9", trusted) == "203.0.113.9"
    )  # rightmost untrusted
    assert (
        client_address("203.0.113.9", "10.9.9.9", trusted) == "203.0.113.9"
    )  # untrusted peer: header ignored
    assert client_address("10.1.2.3", None, trusted) == "10.1.2.3"
    assert client_address("10.1.2.3", "203.0.113.9", ()) == "10.1.2.3"
    with pytest.raises(ValueError, match="nope"):
        parse_networks("10.0.0.0/8,nope")


async def test_auth_failures_count_per_forwarded_client_behind_a_trusted_proxy(aiohttp_client, settings):
    tight = dataclasses.replace(
        settings, auth_failures_per_minute=3, rate_limit_prefix=own_prefix(), trusted_proxies="127.0.0.1"
    )
    client = await aiohttp_client(create_app(tight))
    tenant = await make_tenant(client)
    statuses = []
    for i in range(4):
        attacker = {"Authorization": f"Bearer scim_guess{i}", "X-Forwarded-For": "203.0.113.66"}
        statuses.append((await client.get("/scim/v2/Users", headers=attacker)).status)
    assert statuses == [401, 401, 401, 429]
    # Another client behind the same proxy is not blocked by the attacker's failures.
    resp = await client.get("/scim/v2/Users", headers={**tenant.headers, "X-Forwarded-For": "198.51.100.7"})
    assert resp.status == 200


async def test_x_forwarded_for_from_an_untrusted_peer_does_not_evade_the_limit(aiohttp_client, settings):
    tight = dataclasses.replace(settings, auth_failures_per_minute=3, rate_limit_prefix=own_prefix())
    client = await aiohttp_client(create_app(tight))
    statuses = [
        (
            await client.get(
                "/scim/v2/Users",
                headers={"Authorization": f"Bearer scim_guess{i}", "X-Forwarded-For": f"192.0.2.{i}"},
            )
        ).status
        for i in range(4)
    ]
    assert statuses == [401, 401, 401, 429]


# --- leases: credits a process takes in advance (scimsvc/ratelimit/limiter.py) ----------------------------


@pytest.fixture
async def own_redis_client(own_redis):
    """A client of a redis-server of this test's own, so that its INFO commandstats counts only this test's
    calls."""
    client = aioredis.from_url(own_redis.url)
    await client.script_load(TOKEN_BUCKET_LUA)  # no EVALSHA is refused with NOSCRIPT and counted twice
    yield client
    await client.aclose()


async def script_calls(client) -> int:
    """EVALSHA calls the server has answered so far."""
    stats = await client.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


def own_limiter(settings, client, **changes) -> RateLimiter:
    """A limiter on keys of its own. Its leases live a minute unless `changes` say otherwise: a test that
    counts calls to Redis must not see a lease lapse because the machine was slow between two requests (the
    lease sizes below are the same as with the default second: LEASE_COSTS bounds them)."""
    changes = {"rate_limit_lease_ms": 60_000, **changes}
    return RateLimiter(
        client, dataclasses.replace(settings, rate_limit_prefix=own_prefix(), **changes), WebMetrics()
    )


async def test_requests_inside_a_lease_make_no_redis_call(own_redis_client, settings):
    client = own_redis_client
    limiter = own_limiter(settings, client)
    tenant = uuid.uuid4()
    first = await limiter.spend(tenant, capacity=400_000, level="L1")
    # 20 reads' worth leased; the remaining credits count them as this tenant's.
    assert first is not None and first.allowed and first.granted == 1000 and first.remaining == 399_950
    calls = await script_calls(client)
    remaining = first.remaining
    for _ in range(20):
        v = await limiter.spend(tenant, capacity=400_000, level="L1")
        assert v is not None and v.allowed and v.remaining == remaining - 50
        remaining = v.remaining
    assert await script_calls(client) == calls
    await limiter.spend(tenant, capacity=400_000, level="L1")  # the lease is spent: back to Redis
    assert await script_calls(client) == calls + 1


async def test_below_half_a_bucket_every_request_goes_to_redis(own_redis_client, settings):
    client = own_redis_client
    limiter = own_limiter(settings, client)
    tenant = uuid.uuid4()
    capacity = STRICT_CREDITS  # a lease is 20 reads (1,000 credits)
    started = time.monotonic()
    before = await script_calls(client)
    for _ in range(42):
        assert (await limiter.spend(tenant, capacity=capacity, level="L1")).allowed
    assert await script_calls(client) == before + 2  # 1 + 20 leased, twice
    # Down to 4,600 (plus what refills): below half, so no more leases.
    big = await limiter.spend(tenant, capacity=capacity, level="L4", cost=capacity - 42 * 50 - 4600)
    assert big.allowed and big.granted == 0
    before = await script_calls(client)
    allowed = []
    for _ in range(120):
        v = await limiter.spend(tenant, capacity=capacity, level="L1")
        allowed.append(v.allowed)
        assert v.granted == 0
    assert await script_calls(client) == before + 120
    refill = (time.monotonic() - started) * capacity / 30 / 50
    assert 92 <= allowed.count(True) <= 92 + math.ceil(refill)


async def test_a_lapsed_lease_gives_its_credits_back(own_redis_client, settings):
    client = own_redis_client
    limiter = own_limiter(settings, client, rate_limit_lease_ms=300)
    tenant = uuid.uuid4()
    key = f"{limiter.settings.rate_limit_prefix}:tenant:{{{tenant}}}"
    capacity = 60_000  # 2 credits/ms: a lease is what refills in 300 ms, 600 credits
    await limiter.spend(tenant, capacity=capacity, level="L4", cost=18_000)  # no lease: 42,000 left
    assert (await limiter.spend(tenant, capacity=capacity, level="L1")).granted == 600
    tokens, ts = (float(x) for x in await client.hmget(key, "tokens", "ts"))
    calls = await script_calls(client)
    await asyncio.sleep(0.35)  # past the lease's life (a slow machine only makes it later)
    v = await limiter.spend(tenant, capacity=capacity, level="L1")
    assert await script_calls(client) == calls + 1  # lapsed: to Redis, though its 600 credits were unspent
    assert v.granted == 600
    tokens_after, ts_after = (float(x) for x in await client.hmget(key, "tokens", "ts"))
    # The refill by the Redis clock, the 600 given back, less this read and its new lease.
    assert tokens_after == pytest.approx(tokens + (ts_after - ts) * 2 + 600 - 50 - 600)


async def test_a_capacity_change_ends_the_lease(own_redis_client, settings):
    client = own_redis_client
    limiter = own_limiter(settings, client)
    tenant = uuid.uuid4()
    assert (await limiter.spend(tenant, capacity=2 * STRICT_CREDITS, level="L1")).granted == 1000
    calls = await script_calls(client)
    v = await limiter.spend(tenant, capacity=STRICT_CREDITS, level="L1")  # lowered: the lease is not used
    assert await script_calls(client) == calls + 1 and v.granted == 1000
    assert v.remaining == STRICT_CREDITS - 50  # clamped to the new capacity, then 50 spent
    w = await limiter.spend(tenant, capacity=STRICT_CREDITS, level="L1")
    assert await script_calls(client) == calls + 1 and w.remaining == v.remaining - 50
    assert (await limiter.spend(tenant, capacity=2 * STRICT_CREDITS, level="L1")).allowed
    assert await script_calls(client) == calls + 2


async def test_a_held_lease_is_spent_while_redis_is_down_then_it_fails_closed(
    own_redis, own_redis_client, settings
):
    server, client = own_redis, own_redis_client
    limiter = own_limiter(settings, client, rate_limit_on_redis_error="closed")
    tenant = uuid.uuid4()
    assert (await limiter.spend(tenant, capacity=STRICT_CREDITS, level="L1")).granted == 1000
    server.stop()
    for _ in range(20):  # its credits were taken from the bucket before Redis went away
        assert (await limiter.spend(tenant, capacity=STRICT_CREDITS, level="L1")).allowed
    with pytest.raises(ScimError) as refused:
        await limiter.spend(tenant, capacity=STRICT_CREDITS, level="L1")
    assert refused.value.status == 503 and limiter.redis_errors == 1


async def test_failed_authentications_are_never_leased(own_redis_client, settings):
    client = own_redis_client
    limiter = own_limiter(settings, client, auth_failures_per_minute=100_000)
    before = await script_calls(client)
    for _ in range(5):
        assert await limiter.auth_failed("scim", "192.0.2.1") == 0
    assert await script_calls(client) == before + 5


async def test_strict_preset_admits_its_200_user_reads_with_leases(client):
    tenant = await make_tenant(client, rate_limit={"preset": "strict"})
    started = time.monotonic()
    statuses = [(await client.get("/scim/v2/Users", headers=tenant.headers)).status for _ in range(230)]
    elapsed = time.monotonic() - started
    admitted = statuses.count(200)
    assert statuses.count(429) == 230 - admitted
    assert 200 <= admitted <= 200 + math.ceil(elapsed * STRICT_CREDITS / 30 / 50), (admitted, elapsed)


async def test_two_replicas_with_leases_stay_within_the_budget(
    client, database_url, own_redis, own_redis_client, processes
):
    """Leases are taken from the one bucket: two processes using them still admit budget + refill."""
    redis_client = own_redis_client
    tenant = await limited_tenant(client, 60_000)  # 1,200 reads; a lease is 20 of them
    statuses, elapsed = await two_replicas_serve(
        processes, tenant, 1800, database_url=database_url, redis_url=own_redis.url
    )
    admitted = statuses.count(200)
    refill = elapsed * 60_000 / 30 / 50
    assert 1200 <= admitted <= 1200 + math.ceil(refill) + 1, (admitted, elapsed)
    # Above half the bucket (~600 reads) most were admitted from a lease; below it each read went to Redis.
    calls = await script_calls(redis_client)
    assert calls < 1800 - 150, calls
