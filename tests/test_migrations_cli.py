"""`scimsvc migrate` and the tenant/token commands, run as a user runs them."""

from __future__ import annotations

import asyncio
import re
import uuid

import asyncpg

from scimsvc.store.migrations import available_migrations, migrate
from tests.conftest import SERVER_URL, Processes, _drop_database, bare_env, with_database


async def test_migrate_creates_the_database_and_is_idempotent_under_concurrency():
    url = with_database(SERVER_URL, f"scimsvc_migtest_{uuid.uuid4().hex[:8]}")
    try:
        results = await asyncio.gather(*(migrate(url) for _ in range(3)))
        # Exactly one of the concurrent runs applied each migration; the others found nothing to do.
        assert sorted(len(r) for r in results) == [0, 0, len(available_migrations())]
        assert await migrate(url) == []
        conn = await asyncpg.connect(url)
        try:
            versions = [
                r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY 1")
            ]
        finally:
            await conn.close()
        assert versions == [m.version for m in available_migrations()]
    finally:
        await _drop_database(url)


async def test_cli_tenant_and_token_commands(database_url, client, processes: Processes):
    env = bare_env(SCIMSVC_DATABASE_URL=database_url, SCIMSVC_PUBLIC_URL="https://scim.example")
    out = await processes.run(
        "tenant", "create", "Cli Co", "--seats", "3", "--allowed-domain", "Cli.Example", env=env
    )
    assert out.returncode == 0, out.stderr
    tenant_id = re.search(r"tenant id:\s+(\S+)", out.stdout)[1]
    token = re.search(r"SCIM token:\s+(\S+)", out.stdout)[1]
    assert "https://scim.example/scim/v2" in out.stdout
    resp = await client.get("/scim/v2/Users", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 200

    out = await processes.run("token", "create", tenant_id, env=env)
    assert out.returncode == 0, out.stderr
    second_id = re.search(r"SCIM token id:\s+(\S+)", out.stdout)[1]
    second = re.search(r"SCIM token:\s+(\S+)", out.stdout)[1]
    out = await processes.run("token", "revoke", tenant_id, second_id, env=env)
    assert out.returncode == 0, out.stderr
    resp = await client.get("/scim/v2/Users", headers={"Authorization": f"Bearer {second}"})
    assert resp.status == 401
    out = await processes.run("token", "revoke", tenant_id, second_id, env=env)
    assert out.returncode == 1

    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow("SELECT seats, allowed_domains FROM tenants WHERE id = $1::uuid", tenant_id)
    finally:
        await conn.close()
    assert row["seats"] == 3 and row["allowed_domains"] == ["cli.example"]
