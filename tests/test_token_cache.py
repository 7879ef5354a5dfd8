"""Valid SCIM tokens are cached in the web process; any revocation or tenant change empties the cache."""

from __future__ import annotations

from typing import Any

from scimsvc.keys import TOKEN_CACHE
from scimsvc.token_cache import LISTENER_NAME, TokenCache
from tests.conftest import ADMIN_HEADERS, wait_until


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
