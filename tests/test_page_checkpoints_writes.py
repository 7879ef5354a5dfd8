"""Checkpointed deep pages (scimsvc/store/pages.py) under writes: writes of every kind interleaved with
pages at random startIndex, each compared with OFFSET and a count; writes that leave few traces (a hard
delete while retention drops old audit rows, a commit from a transaction begun before the pass); passes
of several pages or tenants at once."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import asyncpg
import pytest

from scimsvc.settings import Settings
from scimsvc.store import pages
from scimsvc.store.db import create_pool
from scimsvc.store.users import UNLINK_USER
from tests import test_page_checkpoints
from tests.conftest import (
    ADMIN_HEADERS,
    RUN_ID,
    Tenant,
    make_tenant,
    post_user,
    run_worker,
    unique_email,
    user_body,
)
from tests.test_page_checkpoints import offset_page, page_ids
from worker.retention import purge_expired

small_checkpoints = test_page_checkpoints.small_checkpoints  # the fixture, used here too
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"


async def age_everything(db: asyncpg.Connection, tenant: Tenant) -> None:
    """Every write of the tenant so far happened two hours ago: only a later change leaves a trace."""
    await db.execute(
        "UPDATE users SET updated_at = now() - interval '2 hours' WHERE tenant_id = $1", tenant.id
    )


@pytest.mark.parametrize("rebuild", [0.0, 10.0])
async def test_interleaved_writes_of_every_kind_match_offset(
    client: Any,
    db: asyncpg.Connection,
    tenant: Tenant,
    settings: Settings,
    small_checkpoints: None,
    monkeypatch: pytest.MonkeyPatch,
    rebuild: float,
) -> None:
    monkeypatch.setattr(pages, "REBUILD_SECONDS", rebuild)
    used = {"passes": 0, "kept": 0}
    build, current = pages._build, pages._current

    async def counted_build(*args: Any, **kwargs: Any) -> Any:
        used["passes"] += 1
        return await build(*args, **kwargs)

    async def counted_current(*args: Any, **kwargs: Any) -> Any:
        marks = await current(*args, **kwargs)
        used["kept"] += marks is not None
        return marks

    monkeypatch.setattr(pages, "_build", counted_build)
    monkeypatch.setattr(pages, "_current", counted_current)
    names = [unique_email() for _ in range(30)]
    linked = {(await post_user(client, tenant, n))["id"]: n for n in names}
    unlinked: dict[str, str] = {}
    await age_everything(db, tenant)
    rng = random.Random(7)
    kinds = ["post", "delete", "patch", "put", "relink", "hard", "bulk", "worker", "none"]
    for step in range(150):
        kind = rng.choice(kinds)
        some = rng.choice(sorted(linked)) if linked else None
        h = tenant.headers
        if kind == "post" or some is None:
            n = unique_email()
            linked[(await post_user(client, tenant, n))["id"]] = n
        elif kind == "delete" and len(linked) > 8:
            assert (await client.delete(f"/scim/v2/Users/{some}", headers=h)).status == 204
            unlinked[some] = linked.pop(some)
        elif kind == "patch":
            body = {
                "schemas": [PATCH_OP],
                "Operations": [{"op": "replace", "path": "active", "value": False}],
            }
            assert (await client.patch(f"/scim/v2/Users/{some}", json=body, headers=h)).status == 200
        elif kind == "put":
            body = user_body(linked[some], displayName=f"step {step}")
            resp = await client.put(f"/scim/v2/Users/{some}", json=body, headers=h)
            assert resp.status == 200, await resp.text()
        elif kind == "relink" and unlinked:  # POST of a deleted user's userName: back at its old place
            back = rng.choice(sorted(unlinked))
            made = await post_user(client, tenant, unlinked[back])
            linked[made["id"]] = unlinked.pop(back)
        elif kind == "hard" and len(linked) > 8:
            path = f"/admin/v1/tenants/{tenant.id}/users/{some}"
            assert (await client.delete(path, headers=ADMIN_HEADERS)).status == 200
            linked.pop(some)
        elif kind == "bulk":
            n = unique_email()
            ops = [{"method": "POST", "path": "/Users", "bulkId": "a", "data": user_body(n)}]
            if len(linked) > 8:
                ops.append({"method": "DELETE", "path": f"/Users/{some}"})
            resp = await client.post(
                "/scim/v2/Bulk", json={"schemas": [BULK_REQUEST], "Operations": ops}, headers=h
            )
            assert resp.status == 200, await resp.text()
            if len(ops) == 2:
                unlinked[some] = linked.pop(some)
            linked[(await db.fetchval("SELECT id::text FROM users WHERE user_name = $1", n))] = n
        elif kind == "worker":
            await run_worker(settings)
        if rng.random() < 0.2:
            # Everything so far written long ago, and no list kept from before (as after a restart): the
            # next change is the only trace. (Aging under a kept list would erase a change it missed.)
            await age_everything(db, tenant)
            pages._lists.clear()
            pages._passes.clear()
        for _ in range(2):
            start, count = rng.randint(3, len(linked) + 3), rng.randint(0, 7)
            assert await page_ids(client, tenant, start, count) == await offset_page(
                db, tenant, start, count
            ), (
                step,
                kind,
                start,
                count,
            )
    assert used["passes"] > 20 and used["kept"] > 20, used  # both ways of answering were tried
    print(used)


async def test_hard_delete_while_retention_drops_an_old_hard_delete_audit_row(
    client: Any, db: asyncpg.Connection, tenant: Tenant, settings: Settings, small_checkpoints: None
) -> None:
    users = [(await post_user(client, tenant))["id"] for _ in range(13)]
    # An operator deleted a user outright more than the audit retention ago.
    resp = await client.delete(f"/admin/v1/tenants/{tenant.id}/users/{users.pop(0)}", headers=ADMIN_HEADERS)
    assert resp.status == 200, await resp.text()
    await db.execute(
        "UPDATE audit_log SET created_at = now() - interval '500 days' WHERE tenant_id = $1", tenant.id
    )
    await age_everything(db, tenant)
    assert await page_ids(client, tenant, 5, 3) == await offset_page(db, tenant, 5, 3)  # checkpoints built
    # Today: another user deleted outright, and the worker's retention drops last year's audit rows.
    resp = await client.delete(f"/admin/v1/tenants/{tenant.id}/users/{users[1]}", headers=ADMIN_HEADERS)
    assert resp.status == 200, await resp.text()
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        await purge_expired({"pool": pool, "settings": settings, "redis": None})
    finally:
        await pool.close()
    for start in (4, 7, 10):
        assert await page_ids(client, tenant, start, 3) == await offset_page(db, tenant, start, 3), start


async def test_write_committed_after_the_pass_by_a_transaction_begun_long_before(
    client: Any,
    db: asyncpg.Connection,
    database_url: str,
    tenant: Tenant,
    small_checkpoints: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A write's updated_at is its transaction's start. With WRITE_SECONDS and START_SECONDS at 0 s (so
    the test need not wait a minute), a transaction that began before the pass and commits after it stands for
    one open longer than any fixed window (SCIMSVC_DB_WAIT_SECONDS >= 76, PgBouncer without
    query_timeout, a COMMIT waiting for a synchronous standby): the pass's window starts at it."""
    monkeypatch.setattr(pages, "WRITE_SECONDS", 0)
    monkeypatch.setattr(pages, "START_SECONDS", 0)
    users = [(await post_user(client, tenant))["id"] for _ in range(12)]
    await age_everything(db, tenant)
    writer = await asyncpg.connect(database_url)
    try:
        tx = writer.transaction()
        await tx.start()
        await writer.fetchval("SELECT now()")  # the transaction's start, before the pass
        assert await page_ids(client, tenant, 5, 3) == await offset_page(db, tenant, 5, 3)  # the pass
        assert await writer.fetchval(UNLINK_USER, tenant.id, users[1]) is not None  # a SCIM DELETE's write
        await tx.commit()
    finally:
        await writer.close()
    for start in (4, 7, 10):
        assert await page_ids(client, tenant, start, 3) == await offset_page(db, tenant, start, 3), start


async def test_writes_just_before_the_pass_are_not_read_again_by_every_page(
    client: Any, db: asyncpg.Connection, tenant: Tenant, small_checkpoints: None
) -> None:
    """Writes half a minute before the pass, every transaction since committed: this role sees every
    session's start, so the window starts START_SECONDS before the pass and each later page's check reads
    none of those writes again; a write after the pass is still seen."""
    for _ in range(12):
        await post_user(client, tenant)
    await db.execute(
        "UPDATE users SET updated_at = now() - interval '30 seconds' WHERE tenant_id = $1", tenant.id
    )
    assert await page_ids(client, tenant, 5, 3) == await offset_page(db, tenant, 5, 3)  # the pass
    (marks,) = test_page_checkpoints.kept_lists(tenant)
    assert marks.window[0] == 0
    await post_user(client, tenant)
    for start in (4, 7, 10, 13):
        assert await page_ids(client, tenant, start, 3) == await offset_page(db, tenant, start, 3), start


async def test_a_session_hidden_from_the_role_widens_the_window_to_write_seconds(
    db: asyncpg.Connection, database_url: str
) -> None:
    """PostgreSQL hides the transaction start of another role's session (here this test's own `db`) from a
    role without pg_read_all_stats: a pass by such a role starts its window WRITE_SECONDS back; one that
    sees every session, START_SECONDS back."""
    role = f"scimsvc_pages_{RUN_ID}"
    await db.execute(f"CREATE ROLE {role} LOGIN")
    try:
        for user, back in ((role, pages.WRITE_SECONDS), (None, pages.START_SECONDS)):
            conn = await asyncpg.connect(database_url, user=user)  # None: the URL's own (a superuser)
            try:
                async with pages._snapshot(conn, open_since=True) as (one, since):
                    now = await one.fetchval("SELECT clock_timestamp()")
                assert since is not None
                assert back <= (now - since).total_seconds() < back + 30, (user, since, now)
            finally:
                await conn.close()
    finally:
        await db.execute(f"DROP ROLE {role}")


async def test_list_dropped_while_checked_is_not_a_500(
    client: Any, db: asyncpg.Connection, small_checkpoints: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """_current awaits _changes, then moves its list to the end of the LRU: if other tenants' passes
    dropped the list meanwhile (more than CHECKPOINT_QUERIES lists, e.g. 10,000 organizations), KeyError."""
    monkeypatch.setattr(pages, "CHECKPOINT_QUERIES", 1)
    first, second = await make_tenant(client), await make_tenant(client)
    for t in (first, second):
        for _ in range(8):
            await post_user(client, t)
    assert await page_ids(client, first, 5, 2) == await offset_page(db, first, 5, 2)  # first's list kept
    second_built = asyncio.Event()
    changes, build = pages._changes, pages._build

    async def slow_changes(conn: Any, table: str, tenant_id: Any, *args: Any) -> Any:
        if str(tenant_id) == first.id:
            await second_built.wait()  # the other tenant's pass ends while this check waits
        return await changes(conn, table, tenant_id, *args)

    async def noted_build(*args: Any, **kwargs: Any) -> Any:
        marks = await build(*args, **kwargs)
        second_built.set()
        return marks

    monkeypatch.setattr(pages, "_changes", slow_changes)
    monkeypatch.setattr(pages, "_build", noted_build)
    got = await asyncio.gather(page_ids(client, first, 5, 2), page_ids(client, second, 5, 2))
    assert got == [await offset_page(db, first, 5, 2), await offset_page(db, second, 5, 2)]


async def test_one_pass_per_list_at_a_time(
    client: Any,
    db: asyncpg.Connection,
    tenant: Tenant,
    small_checkpoints: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Deep pages asked while the list is being passed over are read by OFFSET, not by passes of their own
    (each would hold a pool connection for a whole index pass)."""
    for _ in range(12):
        await post_user(client, tenant)
    passing, finish = asyncio.Event(), asyncio.Event()
    passes = []
    build = pages._build

    async def held_build(*args: Any, **kwargs: Any) -> Any:
        passes.append(1)
        passing.set()
        await finish.wait()
        return await build(*args, **kwargs)

    monkeypatch.setattr(pages, "_build", held_build)
    first = asyncio.create_task(page_ids(client, tenant, 8, 3))
    await passing.wait()
    for start in (4, 7, 10):
        assert await page_ids(client, tenant, start, 3) == await offset_page(db, tenant, start, 3), start
    finish.set()
    assert await first == await offset_page(db, tenant, 8, 3)
    assert len(passes) == 1
    assert await page_ids(client, tenant, 10, 3) == await offset_page(db, tenant, 10, 3)
    assert len(passes) == 1  # the list kept by the pass serves the next page


async def test_list_dropped_by_other_tenants_is_passed_over_again_at_most_every_rebuild_seconds(
    client: Any, db: asyncpg.Connection, small_checkpoints: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More tenants paging deep than lists kept: a tenant whose list was dropped reads by OFFSET until
    REBUILD_SECONDS since its last pass (here never), rather than passing over its list on every page."""
    monkeypatch.setattr(pages, "CHECKPOINT_QUERIES", 1)
    monkeypatch.setattr(pages, "REBUILD_SECONDS", 3600.0)
    passes: list[Any] = []
    build = pages._build

    async def counted_build(*args: Any, **kwargs: Any) -> Any:
        passes.append(args[2][0])
        return await build(*args, **kwargs)

    monkeypatch.setattr(pages, "_build", counted_build)
    first, second = await make_tenant(client), await make_tenant(client)
    for t in (first, second):
        for _ in range(8):
            await post_user(client, t)
    for _ in range(3):
        for t in (first, second):
            assert await page_ids(client, t, 5, 2) == await offset_page(db, t, 5, 2)
    assert sorted(map(str, passes)) == sorted([first.id, second.id])  # one pass each, then OFFSET
