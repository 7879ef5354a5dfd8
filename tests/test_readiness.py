"""/ops/ready answers 503 exactly when this replica cannot accept SCIM writes: PostgreSQL unreachable or a
migration not applied (Redis is not part of it: tests/test_ops.py checks ready without Redis)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from scimsvc.settings import Settings
from scimsvc.store.migrations import available_migrations, migrate
from scimsvc.web.app import create_app
from tests.conftest import RUN_ID, SERVER_URL, _drop_database, proxied_url, wait_until, with_database


async def readiness(client: Any) -> tuple[int, dict[str, Any]]:
    resp = await client.get("/ops/ready")
    return resp.status, await resp.json()


@pytest.fixture
async def migrated_database(settings: Settings) -> AsyncIterator[str]:
    """A migrated database of this test only: the test takes a migration back out of its ledger."""
    url = with_database(SERVER_URL, f"scimsvc_test_{RUN_ID}_ready_{uuid.uuid4().hex[:6]}")
    await migrate(url)
    yield url
    await _drop_database(url)


async def test_not_ready_while_a_migration_is_pending_and_ready_once_applied(
    aiohttp_client, settings, migrated_database
):
    latest = available_migrations()[-1]
    conn = await asyncpg.connect(migrated_database)
    try:
        # A release deployed before `scimsvc migrate` ran: its newest migration is not in the ledger.
        await conn.execute("DELETE FROM schema_migrations WHERE version = $1", latest.version)
        app = create_app(dataclasses.replace(settings, database_url=migrated_database))
        client = await aiohttp_client(app)
        status, body = await readiness(client)
        assert status == 503
        assert body == {"status": "not ready", "checks": {"postgres": f"migrations pending: {latest.name}"}}

        await conn.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", latest.version, latest.name
        )
        status, body = await readiness(client)
        assert status == 200 and body == {"status": "ready", "checks": {"postgres": "ok"}}
    finally:
        await conn.close()


async def test_not_ready_while_postgres_is_unreachable_and_ready_once_it_is_back(
    aiohttp_client, settings, pg_proxy
):
    url = proxied_url(pg_proxy, settings.database_url)
    client = await aiohttp_client(create_app(dataclasses.replace(settings, database_url=url)))
    status, body = await readiness(client)
    assert status == 200 and body["checks"] == {"postgres": "ok"}

    await pg_proxy.refuse()  # new connections refused
    await pg_proxy.cut()  # and the pool's open ones reset, as when the server goes away
    status, body = await readiness(client)
    assert status == 503 and body["status"] == "not ready", body
    assert body["checks"]["postgres"].startswith("unreachable: "), body

    await pg_proxy.forward()

    async def ready_again() -> bool:
        return (await readiness(client))[0] == 200

    await wait_until(ready_again, within=60, what="/ops/ready to answer 200 once PostgreSQL is back")
