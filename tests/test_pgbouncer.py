"""scimsvc through a real PgBouncer in transaction mode (README.md, "PgBouncer"): the front end and the
worker connect through it with SCIMSVC_DATABASE_POOLER=transaction; LISTEN uses the direct URL."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from scimsvc.settings import Settings
from scimsvc.web.app import create_app
from tests.conftest import (
    ADMIN_HEADERS,
    free_port,
    make_tenant,
    run_worker,
    unique_email,
    user_body,
    wait_until,
)
from tests.pgbouncer import PGBOUNCER, PgBouncer

pytestmark = pytest.mark.skipif(
    PGBOUNCER is None,
    reason="pgbouncer is not installed (Debian package pgbouncer; .ci/run installs it as root)",
)


@pytest.fixture
def pgbouncer(database_url: str) -> Iterator[PgBouncer]:
    bouncer = PgBouncer(database_url, free_port(), pool_size=3)
    bouncer.start()
    yield bouncer
    bouncer.stop()


@pytest.fixture
def settings(settings: Settings, pgbouncer: PgBouncer) -> Settings:
    """The suite's settings with PostgreSQL reached through the test's PgBouncer; more clients than it has
    server connections, so transactions of different clients take turns on the same ones."""
    return dataclasses.replace(
        settings,
        database_url=pgbouncer.url(settings.database_url),
        database_direct_url=settings.database_url,
        database_pooler="transaction",
        db_pool_min=2,
        db_pool_max=10,
        token_cache_seconds=600,  # only the NOTIFY on the direct connection can empty the cache in time
    )


async def test_new_sessions_of_the_database_run_without_jit(settings: Settings) -> None:
    """Migration 0014: asyncpg's type lookup on a new connection is not compiled, even when its session
    setting went to another server connection of the pooler."""
    conn = await asyncpg.connect(settings.database_url, statement_cache_size=0)  # through PgBouncer
    try:
        assert await conn.fetchval("SHOW jit") == "off"
    finally:
        await conn.close()


async def server_connections(db: asyncpg.Connection) -> set[int]:
    """Backends of this database that PgBouncer opened (it names none; they are not the test's own)."""
    rows = await db.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        " AND application_name = ''"
    )
    return {r["pid"] for r in rows}


async def test_writes_reads_a_group_push_and_a_worker_drain_through_pgbouncer(
    client: Any, settings: Settings, db: asyncpg.Connection
) -> None:
    tenant = await make_tenant(client, seats=50)
    names = [unique_email() for _ in range(200)]

    async def create(name: str) -> tuple[int, str]:
        resp = await client.post("/scim/v2/Users", json=user_body(name), headers=tenant.headers)
        return resp.status, await resp.text()

    answers = await asyncio.gather(*(create(n) for n in names))
    assert [status for status, _ in answers] == [201] * len(names), [a for a in answers if a[0] != 201][:3]

    for name in names[:20]:
        resp = await client.get(f'/scim/v2/Users?filter=userName eq "{name}"', headers=tenant.headers)
        body = await resp.json()
        assert resp.status == 200 and body["totalResults"] == 1, body

    resp = await client.post(
        f"/admin/v1/tenants/{tenant.id}/teams", json={"name": "Design"}, headers=ADMIN_HEADERS
    )
    assert resp.status == 201, await resp.text()
    ids = [
        row["id"]
        for row in await db.fetch(
            "SELECT id::text FROM users WHERE tenant_id = $1::uuid AND user_name = ANY($2::text[])",
            tenant.id,
            names,
        )
    ]
    group = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "Design",
        "members": [{"value": i} for i in ids[:120]],
    }
    resp = await client.post("/scim/v2/Groups", json=group, headers=tenant.headers)
    assert resp.status == 201, await resp.text()
    group_id = (await resp.json())["id"]
    resp = await client.put(
        f"/scim/v2/Groups/{group_id}",
        json={**group, "members": [{"value": i} for i in ids]},
        headers=tenant.headers,
    )
    assert resp.status == 200, await resp.text()

    await run_worker(settings)  # the worker's pool goes through PgBouncer too
    unapplied = await db.fetchval(
        "SELECT count(*) FROM outbox WHERE tenant_id = $1::uuid AND applied_at IS NULL", tenant.id
    )
    licensed = await db.fetch(
        "SELECT license, count(*) AS n FROM users WHERE tenant_id = $1::uuid GROUP BY 1", tenant.id
    )
    members = await db.fetchval(
        "SELECT count(*) FROM team_members m JOIN teams t ON t.id = m.team_id"
        " WHERE t.tenant_id = $1::uuid AND t.name = 'Design'",
        tenant.id,
    )
    assert unapplied == 0
    assert {r["license"]: r["n"] for r in licensed} == {"full": 50, "free_restricted": 150}
    assert members == 200
    # Every statement ran on PgBouncer's few server connections, not on connections of scimsvc's own.
    assert 0 < len(await server_connections(db)) <= 3


async def test_a_revoked_token_is_refused_by_every_front_end_through_the_direct_url(
    aiohttp_client: Any, settings: Settings
) -> None:
    first = await aiohttp_client(create_app(settings))
    second = await aiohttp_client(create_app(settings))
    tenant = await make_tenant(first)
    resp = await second.get("/scim/v2/Users", headers=tenant.headers)
    assert resp.status == 200  # the second front end has the token in its cache now

    resp = await first.delete(
        f"/admin/v1/tenants/{tenant.id}/scim/tokens/{tenant.token_id}", headers=ADMIN_HEADERS
    )
    assert resp.status == 204, await resp.text()

    async def refused() -> bool:
        return (await second.get("/scim/v2/Users", headers=tenant.headers)).status == 401

    await wait_until(
        refused, what="the second front end to refuse the revoked token (LISTEN on the direct URL)"
    )
