"""Valid SCIM tokens are cached in the web process; any revocation or tenant change empties the cache."""

from __future__ import annotations

import asyncio
from typing import Any

from scimsvc.store.db import create_pool, unavailable
from scimsvc.store.tenants import new_token
from scimsvc.web import token_cache
from scimsvc.web.keys import TOKEN_CACHE
from scimsvc.web.token_cache import LISTENER_NAME, TokenCache
from tests.conftest import ADMIN_HEADERS, make_tenant, proxied_url, wait_until


async def listening(client: Any) -> TokenCache:
    cache: TokenCache = client.app[TOKEN_CACHE]

    await wait_until(lambda: cache.active, what="the token cache to listen")
    return cache


async def status_of(client: Any, headers: dict[str, str]) -> int:
    resp = await client.get("/scim/v2/Users?count=1", headers=headers)
    return resp.status


async def test_a_valid_token_is_served_from_the_cache(client, tenant):
    cache = await listening(client)
    assert await status_of(client, tenant.headers) == 200
    assert cache.holds(tenant.token)
    assert await status_of(client, tenant.headers) == 200


async def test_a_token_revoked_through_the_admin_api_is_refused_at_once(client, tenant):
    await listening(client)
    assert await status_of(client, tenant.headers) == 200
    resp = await client.delete(
        f"/admin/v1/tenants/{tenant.id}/scim/tokens/{tenant.token_id}", headers=ADMIN_HEADERS
    )
    assert resp.status == 204, await resp.text()
    assert await status_of(client, tenant.headers) == 401


async def test_a_token_revoked_by_another_process_is_refused_once_postgres_tells(client, tenant, db):
    cache = await listening(client)
    assert await status_of(client, tenant.headers) == 200
    # As `scimsvc token revoke` or another replica's admin API would: straight in the database.
    await db.execute("UPDATE scim_tokens SET revoked_at = now() WHERE id = $1::uuid", tenant.token_id)

    async def refused() -> bool:
        return await status_of(client, tenant.headers) == 401

    await wait_until(refused, what="the revoked token to be refused")
    assert not cache.holds(tenant.token)


async def test_scim_switched_off_elsewhere_is_403_once_postgres_tells(client, tenant, db):
    await listening(client)
    assert await status_of(client, tenant.headers) == 200
    await db.execute("UPDATE tenants SET scim_enabled = false WHERE id = $1::uuid", tenant.id)

    async def forbidden() -> bool:
        return await status_of(client, tenant.headers) == 403

    await wait_until(forbidden, what="SCIM switched off to be refused")


async def test_without_its_listener_the_cache_is_off_and_revocations_still_hold(client, tenant, db):
    cache = await listening(client)
    assert await status_of(client, tenant.headers) == 200
    await db.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND datname = "
        "current_database()",
        LISTENER_NAME,
    )

    await wait_until(lambda: not cache.active, what="the cache to turn off")
    assert not cache.holds(tenant.token)
    await db.execute("UPDATE scim_tokens SET revoked_at = now() WHERE id = $1::uuid", tenant.token_id)
    assert await status_of(client, tenant.headers) == 401  # straight from the database
    assert (await listening(client)) is cache  # and it listens again


async def test_requests_with_one_token_share_its_lookup_and_its_failure(
    database_url, pg_proxy, client, tenant
):
    """Ten requests with one token while PostgreSQL hangs: one lookup; when the connection dies, all ten
    get the outage's error (a 503 for each request), and the next request looks the token up afresh."""
    lookups: list[bool] = []
    pool = await create_pool(proxied_url(pg_proxy, database_url), min_size=1, max_size=2)
    cache = TokenCache(pool, database_url, ttl=0, counted=lookups.append)
    try:
        pg_proxy.stall()  # the lookup's query is sent and never answered
        checks = [asyncio.create_task(cache.check(tenant.token)) for _ in range(10)]
        await asyncio.sleep(0)  # each task runs up to its first wait: one lookup, nine waiting for it
        await pg_proxy.cut()
        # Bounded: a waiter that went on to a lookup of its own would hang on the stalled proxy.
        results = await asyncio.wait_for(asyncio.gather(*checks, return_exceptions=True), 120)
        assert all(isinstance(r, Exception) and unavailable(r) for r in results), results
        await pg_proxy.forward()
        check = await cache.check(tenant.token)
        assert check.tenant is not None and str(check.tenant["tenant_id"]) == tenant.id
        assert lookups == [True]  # the failed lookup was not counted; the one after it was
    finally:
        await pool.close()


async def test_a_full_cache_keeps_the_tokens_used_last(client, monkeypatch):
    """Past MAX_ENTRIES the cache drops what expired and the oldest half of the rest, not every entry:
    with many organizations taking turns, the ones in use stay cached."""
    monkeypatch.setattr(token_cache, "MAX_ENTRIES", 4)
    cache = await listening(client)
    tenants = [await make_tenant(client) for _ in range(5)]

    async def held_after_a_turn() -> bool:
        # From an empty cache, each tenant once. The notifications of the tenants' creation may still
        # arrive and empty the cache during a turn (never making the pattern below): then another turn.
        cache.forget()
        for tenant in tenants:
            assert await status_of(client, tenant.headers) == 200
        return [cache.holds(t.token) for t in tenants] == [False, False, True, True, True]

    await wait_until(held_after_a_turn, what="the three tokens used last to stay cached", within=60)


async def test_tokens_looked_up_at_once_each_find_their_own_tenant(client, database_url):
    """Lookups that arrive together go as one statement (`store/tenants.py:tokens_by_hash`): each token
    still finds its own tenant, a revoked one is refused as a token we issued, an unknown one as a guess."""
    tenants = [await make_tenant(client) for _ in range(12)]
    revoked = tenants.pop()
    resp = await client.delete(
        f"/admin/v1/tenants/{revoked.id}/scim/tokens/{revoked.token_id}", headers=ADMIN_HEADERS
    )
    assert resp.status == 204, await resp.text()
    lookups: list[bool] = []
    pool = await create_pool(database_url, min_size=1, max_size=2)
    cache = TokenCache(pool, database_url, ttl=0, counted=lookups.append)
    try:
        tokens = [t.token for t in tenants] + [revoked.token, new_token()]
        checks = await asyncio.gather(*(cache.check(token) for token in tokens))
    finally:
        await pool.close()
    assert [c.tenant and str(c.tenant["tenant_id"]) for c in checks[:-2]] == [t.id for t in tenants]
    assert checks[-2].tenant is None and not checks[-2].guess
    assert checks[-1].tenant is None and checks[-1].guess
    assert sorted(lookups) == [False, False] + [True] * len(tenants)
