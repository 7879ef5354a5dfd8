"""POST /Users: a new userName is one statement (user + outbox row); other cases take the locked path."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

import asyncpg
import pytest

from scimsvc.web.keys import NEW_USERS
from tests.conftest import (
    WAITING_ON_LOCKS,
    hold_user_name,
    run_worker,
    unique_email,
    user_body,
    wait_until,
    wait_until_blocked_by,
)

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


async def rows_of(db, tenant_id):
    users = await db.fetchval("SELECT count(*) FROM users WHERE tenant_id = $1::uuid", tenant_id)
    outbox = await db.fetch(
        "SELECT change, request_id FROM outbox WHERE tenant_id = $1::uuid ORDER BY id", tenant_id
    )
    return users, [tuple(r) for r in outbox]


async def test_a_taken_user_name_in_any_case_writes_neither_user_nor_outbox_row(client, tenant, db):
    name = unique_email()
    first = await client.post("/scim/v2/Users", json=user_body(name), headers=tenant.headers)
    assert first.status == 201
    again = await client.post("/scim/v2/Users", json=user_body(name.upper()), headers=tenant.headers)
    assert again.status == 409 and (await again.json())["scimType"] == "uniqueness"
    assert await rows_of(db, tenant.id) == (1, [("create", first.headers["X-Request-Id"])])


async def test_a_new_user_with_a_manager_is_created_with_the_managers_name(client, tenant, db, settings):
    boss = await (
        await client.post(
            "/scim/v2/Users", json=user_body(unique_email(), displayName="Boss"), headers=tenant.headers
        )
    ).json()
    body = user_body(unique_email(), **{ENTERPRISE: {"manager": {"value": boss["id"]}}})
    resp = await client.post("/scim/v2/Users", json=body, headers=tenant.headers)
    assert resp.status == 201
    stored = await db.fetchval(
        "SELECT resource->$2::text->'manager'->>'displayName' FROM users WHERE id = $1::uuid",
        (await resp.json())["id"],
        ENTERPRISE,
    )
    assert stored == "Boss"
    users, changes = await rows_of(db, tenant.id)
    assert users == 2 and [c for c, _ in changes] == ["create", "create"]
    await run_worker(settings)
    assert not await db.fetchval(
        "SELECT count(*) FROM outbox WHERE tenant_id = $1::uuid AND applied_at IS NULL", tenant.id
    )


# --- POSTs that arrive together go in by one statement (scimsvc/store/batches.py) ---------------------

SENDERS = 2  # batches a front end has out at once (store/new_users.py new_user_inserts)


@pytest.fixture
async def other_conn(database_url):
    """A connection of the test's own, standing in for another front end mid-insert."""
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


@asynccontextmanager
async def inserts_held_up(client, tenant, db, other_conn):
    """While inside, every batch of new users is out and waiting: another connection holds, uncommitted,
    the userNames of one POST per sender. Leaving rolls that back, and those POSTs create their users."""
    names = [unique_email("held") for _ in range(SENDERS)]
    tx = other_conn.transaction()
    await tx.start()
    for name in names:
        await other_conn.execute(
            "INSERT INTO users (tenant_id, user_name, resource) VALUES ($1::uuid, $2, '{}')", tenant.id, name
        )
    held = []
    for name in names:  # one at a time, so that each goes out in a batch of its own
        held.append(
            asyncio.create_task(client.post("/scim/v2/Users", json=user_body(name), headers=tenant.headers))
        )
        out = len(held)
        await wait_until(
            lambda n=out: waiting_on_locks(db, n), what=f"{out} batches to wait for the held names"
        )
    try:
        yield
    finally:
        await tx.rollback()
        assert [r.status for r in await asyncio.gather(*held)] == [201] * SENDERS


async def waiting_on_locks(db, n: int) -> bool:
    return await db.fetchval(WAITING_ON_LOCKS) >= n


async def post_later(client, tenant, name, request_id):
    headers = {**tenant.headers, "X-Request-Id": request_id}
    return asyncio.create_task(client.post("/scim/v2/Users", json=user_body(name), headers=headers))


async def queued_for_the_next_batch(client, posts) -> None:
    """Until every one of `posts` waits in the front end's batcher for the next batch (none went alone)."""

    def queued() -> bool:
        assert not any(p.done() for p in posts), "a POST went out while every sender was busy"
        return len(client.app[NEW_USERS]._pending) == len(posts)

    await wait_until(queued, what=f"{len(posts)} POSTs to reach the batcher")


async def test_posts_that_arrive_while_inserts_are_out_go_in_together_each_with_its_own_user_and_outbox_row(
    client, tenant, db, other_conn
):
    names = {f"req-{i}": unique_email(f"together{i}") for i in range(20)}
    async with inserts_held_up(client, tenant, db, other_conn):
        posts = {rid: await post_later(client, tenant, name, rid) for rid, name in names.items()}
        await queued_for_the_next_batch(client, list(posts.values()))
    for rid, post in posts.items():
        resp = await post
        assert resp.status == 201, await resp.text()
        body = await resp.json()
        assert body["userName"] == names[rid]
        assert resp.headers["Location"].endswith(f"/Users/{body['id']}")
        row = await db.fetchrow(
            "SELECT u.user_name, o.change, o.request_id FROM users u JOIN outbox o ON o.resource_id = u.id "
            "WHERE u.id = $1::uuid",
            body["id"],
        )
        assert tuple(row) == (names[rid], "create", rid)
    # One statement wrote them all: one transaction, and one outbox row per user.
    assert (
        await db.fetchval(
            "SELECT count(DISTINCT xmin::text) FROM users WHERE user_name = ANY($1::text[])",
            list(names.values()),
        )
        == 1
    )
    assert (
        await db.fetchval(
            "SELECT count(*) FROM outbox WHERE tenant_id = $1::uuid AND change = 'create'", tenant.id
        )
        == len(names) + SENDERS
    )


async def test_one_user_name_posted_together_in_several_cases_is_created_once(client, tenant, db, other_conn):
    name = unique_email("twice")
    spellings = [name, name.upper(), name, name.capitalize()]
    others = [unique_email("bystander") for _ in range(3)]
    async with inserts_held_up(client, tenant, db, other_conn):
        posts = [await post_later(client, tenant, n, f"req-{i}") for i, n in enumerate(spellings + others)]
        await queued_for_the_next_batch(client, posts)
    statuses = [(await p).status for p in posts]
    assert sorted(statuses[: len(spellings)]) == [201, 409, 409, 409]
    assert statuses[len(spellings) :] == [201] * len(others)
    created = await posts[statuses.index(201)].result().json()
    assert created["userName"] in spellings
    assert (
        await db.fetchval("SELECT user_name FROM users WHERE id = $1::uuid", created["id"])
        == created["userName"]
    )
    for post, other in zip(posts[len(spellings) :], others, strict=True):
        body = await post.result().json()
        assert await db.fetchval("SELECT user_name FROM users WHERE id = $1::uuid", body["id"]) == other
    users, changes = (
        await db.fetchval(
            "SELECT count(*) FROM users WHERE tenant_id = $1::uuid AND lower(user_name) = lower($2)",
            tenant.id,
            name,
        ),
        await db.fetchval(
            "SELECT count(*) FROM outbox o JOIN users u ON u.id = o.resource_id "
            "WHERE u.tenant_id = $1::uuid AND lower(u.user_name) = lower($2)",
            tenant.id,
            name,
        ),
    )
    assert (users, changes) == (1, 1)


async def test_a_batch_that_meets_a_name_locked_elsewhere_goes_one_by_one_and_only_that_post_waits(
    client, tenant, db, other_conn, database_url
):
    contended = unique_email("contended")
    holder, tx = await hold_user_name(database_url, tenant, contended)  # another front end, mid-insert
    try:
        others = {f"req-{i}": unique_email(f"free{i}") for i in range(10)}
        async with inserts_held_up(client, tenant, db, other_conn):
            waiting = await post_later(client, tenant, contended, "req-contended")
            posts = {rid: await post_later(client, tenant, name, rid) for rid, name in others.items()}
            await queued_for_the_next_batch(client, [waiting, *posts.values()])
        # Out together, held by the lock on `contended`; after the batch's lock timeout, one by one.
        for rid, post in posts.items():
            resp = await asyncio.wait_for(post, 120)
            assert resp.status == 201, await resp.text()
            assert (await resp.json())["userName"] == others[rid]
        await wait_until_blocked_by(
            db, holder, waiting, what="the POST of the name locked elsewhere to wait for that lock"
        )
        await tx.rollback()
        resp = await asyncio.wait_for(waiting, 120)
        assert resp.status == 201 and (await resp.json())["userName"] == contended
    finally:
        await holder.close()
    assert (
        await db.fetchval(
            "SELECT count(*) FROM outbox o JOIN users u ON u.id = o.resource_id WHERE u.tenant_id = $1::uuid",
            tenant.id,
        )
        == len(others) + SENDERS + 1
    )
