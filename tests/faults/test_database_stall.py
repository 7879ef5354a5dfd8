"""PostgreSQL going silent (the tests' proxy holds every byte): each request is answered 503 with
Retry-After within the bound SCIMSVC_DB_WAIT_SECONDS sets, and no write the clients were told failed is
applied once the link flows again and delivers what it held (README, "When PostgreSQL stalls")."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from scimsvc.scim.errors import ERROR_SCHEMA
from scimsvc.store import new_users, teams, tenants, user_deletes, user_updates
from scimsvc.store.db import create_pool, transaction
from scimsvc.web.app import create_app
from tests.conftest import create_team, make_tenant, proxied_url, unique_email, user_body, wait_until

WAIT_SECONDS = 2
# Generous: a request waits for a connection and then one statement, each at most WAIT_SECONDS; the rest
# is a slow machine's scheduling. Without the bound the first answer came after asyncpg's 60 s.
ANSWERED_WITHIN = 6 * WAIT_SECONDS

STATE = """
SELECT (SELECT coalesce(array_agg((id, user_name, active, scim_linked, version, resource->>'displayName')
                                  ORDER BY id)::text, '')
        FROM users WHERE tenant_id = $1) AS users,
       (SELECT coalesce(array_agg((id, display_name, version) ORDER BY id)::text, '')
        FROM groups WHERE tenant_id = $1) AS groups,
       (SELECT count(*) FROM outbox WHERE tenant_id = $1) AS changes
"""


async def test_a_stalled_database_answers_503_in_time_and_applies_nothing_late(
    aiohttp_client: Any, settings: Any, db: asyncpg.Connection, pg_proxy: Any
) -> None:
    own = dataclasses.replace(
        settings, database_url=proxied_url(pg_proxy, settings.database_url), db_wait_seconds=WAIT_SECONDS
    )
    client = await aiohttp_client(create_app(own))
    tenant = await make_tenant(client)
    targets = []
    for _ in range(160):
        resp = await client.post("/scim/v2/Users", json=user_body(unique_email()), headers=tenant.headers)
        assert resp.status == 201, await resp.text()
        targets.append((await resp.json())["id"])
    next_target = iter(targets)
    teams = iter([(await create_team(client, tenant, f"team {n}"))["name"] for n in range(60)])
    kinds = itertools.cycle(["post", "patch", "delete", "group"])
    answers: list[tuple[str, int, float, float]] = []  # kind, status, sent, answered
    stalled_at: list[float] = []
    stop = asyncio.Event()

    async def one(kind: str) -> int:
        if kind == "post":
            return (
                await client.post("/scim/v2/Users", json=user_body(unique_email()), headers=tenant.headers)
            ).status
        if kind == "group":
            body = {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": next(teams),
            }
            return (await client.post("/scim/v2/Groups", json=body, headers=tenant.headers)).status
        user_id = next(next_target)
        if kind == "patch":
            patch = {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "displayName", "value": f"patched {user_id}"}],
            }
            return (
                await client.patch(f"/scim/v2/Users/{user_id}", json=patch, headers=tenant.headers)
            ).status
        return (await client.delete(f"/scim/v2/Users/{user_id}", headers=tenant.headers)).status

    async def load() -> None:
        while not stop.is_set():
            kind = next(kinds)
            sent = time.monotonic()
            resp_status = await one(kind)
            answers.append((kind, resp_status, sent, time.monotonic()))

    def after_stall() -> list[tuple[str, int, float, float]]:
        return [a for a in answers if stalled_at and a[2] >= stalled_at[0]]

    clients = [asyncio.create_task(load()) for _ in range(16)]
    try:
        await wait_until(lambda: len(answers) >= 40, what="load to start")
        pg_proxy.stall()
        stalled_at.append(time.monotonic())
        # Every client has sent a request into the stall and been answered: the stall outlasts the bound.
        await wait_until(lambda: len(after_stall()) >= 32, what="answers during the stall", within=90)
    finally:
        stop.set()
        await asyncio.gather(*clients)
    statuses = {kind: sorted({a[1] for a in answers if a[0] == kind}) for kind in ("post", "patch", "delete")}
    during = after_stall()
    assert {a[1] for a in during} == {503}, statuses
    slowest = max(a[3] - a[2] for a in during)
    assert slowest < ANSWERED_WITHIN, f"a request sent into the stall waited {slowest:.1f} s"
    assert {a[1] for a in answers} <= {200, 201, 204, 503}, statuses

    # What PostgreSQL holds now that every client has its answer, read past the proxy...
    before = dict(await db.fetchrow(STATE, tenant.id))
    # ...is all it ever holds: the link flows again and delivers every statement and COMMIT it kept, the
    # app closes its connections, and the server has read everything once each link has closed.
    await pg_proxy.forward()
    await client.close()
    await wait_until(lambda: pg_proxy.open_links == 0, what="the proxy's links to close")
    assert dict(await db.fetchrow(STATE, tenant.id)) == before


async def test_a_stalled_request_gets_retry_after(aiohttp_client: Any, settings: Any, pg_proxy: Any) -> None:
    own = dataclasses.replace(
        settings, database_url=proxied_url(pg_proxy, settings.database_url), db_wait_seconds=WAIT_SECONDS
    )
    client = await aiohttp_client(create_app(own))
    tenant = await make_tenant(client)
    pg_proxy.stall()
    try:
        resp = await client.post("/scim/v2/Users", json=user_body(unique_email()), headers=tenant.headers)
        body = await resp.json()
    finally:
        await pg_proxy.forward()
    assert resp.status == 503 and int(resp.headers["Retry-After"]) > 0
    assert body["schemas"] == [ERROR_SCHEMA] and body["status"] == "503"


@pytest.fixture
async def bounded_pool(settings: Any) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(settings.database_url, min_size=1, max_size=2, wait_seconds=WAIT_SECONDS)
    yield pool
    await pool.close()


async def test_a_single_statement_write_that_reaches_postgres_too_late_writes_nothing(
    bounded_pool: Any, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = await tenants.create_tenant(db, name=unique_email("t"), settings={})
    kept = []
    for n in range(4):
        user = await new_users.insert_new_user(
            bounded_pool, tenant["id"], user_body(unique_email()), request_id=f"r{n}"
        )
        assert user is not None
        kept.append(user)
    before = dict(await db.fetchrow(STATE, tenant["id"]))
    # As if each statement spent longer on the way than its request waited for it.
    monkeypatch.setattr(bounded_pool, "write_by", lambda: datetime.now(UTC) - timedelta(seconds=1))
    with pytest.raises(asyncpg.QueryCanceledError):
        await new_users.insert_new_user(
            bounded_pool, tenant["id"], user_body(unique_email()), request_id="r5"
        )
    batched = new_users.new_user_inserts(bounded_pool)  # several at once: one multi-row statement
    outcomes = await asyncio.gather(
        *(batched.submit(new_users.NewUser(tenant["id"], user_body(unique_email()), "r6")) for _ in range(3)),
        return_exceptions=True,
    )
    assert all(isinstance(o, asyncpg.QueryCanceledError) for o in outcomes), outcomes

    def update(user: asyncpg.Record, kind: user_updates.Kind) -> user_updates.UserUpdate:
        resource = {**user["resource"], "displayName": "changed"}
        return user_updates.UserUpdate(
            tenant["id"],
            user["id"],
            kind,
            resource=None if kind == "active" else resource,
            active=not user["active"] if kind == "active" else None,
            version=user["version"],
            change_if_active="update",
            change_if_inactive="update",
            request_id="r7",
        )

    for kind in ("read", "put", "active"):
        with pytest.raises(asyncpg.QueryCanceledError):
            await user_updates.update_user(bounded_pool, update(kept[0], kind))
    updates = user_updates.user_updates(bounded_pool)
    outcomes = await asyncio.gather(
        *(
            updates.submit(update(user, kind))
            for user, kind in zip(kept, ("read", "put", "active", "read"), strict=True)
        ),
        return_exceptions=True,
    )
    assert all(isinstance(o, asyncpg.QueryCanceledError) for o in outcomes), outcomes

    with pytest.raises(asyncpg.QueryCanceledError):
        await user_deletes.delete_linked_user(
            bounded_pool, user_deletes.UserDelete(tenant["id"], kept[0]["id"], "r8")
        )
    deletes = user_deletes.user_deletes(bounded_pool)
    outcomes = await asyncio.gather(
        *(deletes.submit(user_deletes.UserDelete(tenant["id"], user["id"], "r9")) for user in kept),
        return_exceptions=True,
    )
    assert all(isinstance(o, asyncpg.QueryCanceledError) for o in outcomes), outcomes
    assert dict(await db.fetchrow(STATE, tenant["id"])) == before


async def test_a_commit_held_up_longer_than_half_the_bound_is_never_applied(
    settings: Any, db: asyncpg.Connection, pg_proxy: Any
) -> None:
    tenant = await tenants.create_tenant(db, name=unique_email("t"), settings={})
    proxied = proxied_url(pg_proxy, settings.database_url)
    pool = await create_pool(proxied, min_size=1, max_size=1, wait_seconds=WAIT_SECONDS)
    try:
        with pytest.raises(TimeoutError):
            async with transaction(pool) as conn:
                backend = conn.get_server_pid()
                await teams.create_team(conn, tenant["id"], "held up")
                pg_proxy.stall()  # the COMMIT goes out and is held on the way
        # PostgreSQL ended the session that sat idle in its transaction: nothing of it can commit now...
        gone = "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)"
        await wait_until(
            lambda: db.fetchval(gone, backend), what="the server to end the idle session", within=60
        )
        # ...not even once the link delivers the COMMIT it held.
        await pg_proxy.forward()
        await pool.close()
        await wait_until(lambda: pg_proxy.open_links == 0, what="the proxy's links to close")
    finally:
        await pg_proxy.forward()
        pool.terminate()
    assert await db.fetchval("SELECT count(*) FROM teams WHERE tenant_id = $1", tenant["id"]) == 0
