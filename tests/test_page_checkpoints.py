"""GET /Users at any startIndex: a deep page of the unfiltered list starts from a checkpoint
(scimsvc/store/pages.py) and returns exactly the rows OFFSET would, with writes in between."""

from __future__ import annotations

import random
from typing import Any

import asyncpg
import pytest

from scimsvc.services import page_cursors
from scimsvc.store import pages
from tests.conftest import ADMIN_HEADERS, Tenant, post_user

OFFSET_PAGE = """
SELECT id::text FROM users WHERE tenant_id = $1::uuid AND scim_linked
ORDER BY created_at, id OFFSET $2 LIMIT $3
"""
LINKED = "SELECT count(*) FROM users WHERE tenant_id = $1::uuid AND scim_linked"


@pytest.fixture
def small_checkpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    """Checkpoints every 3 rows, rebuilt as soon as the list changed, and no walk hints: every page
    below is read from a checkpoint (or by OFFSET), never after the previous page's last row."""
    monkeypatch.setattr(pages, "CHECKPOINT_EVERY", 3)
    monkeypatch.setattr(pages, "REBUILD_SECONDS", 0.0)
    monkeypatch.setattr(page_cursors, "remember", lambda *args: None)


async def page_ids(client: Any, tenant: Tenant, start: int, count: int) -> tuple[int, list[str]]:
    resp = await client.get(f"/scim/v2/Users?startIndex={start}&count={count}", headers=tenant.headers)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    return body["totalResults"], [r["id"] for r in body["Resources"]]


async def offset_page(
    db: asyncpg.Connection, tenant: Tenant, start: int, count: int
) -> tuple[int, list[str]]:
    """What OFFSET and a count say the page is: (totalResults, the ids)."""
    return await db.fetchval(LINKED, tenant.id), [
        r[0] for r in await db.fetch(OFFSET_PAGE, tenant.id, start - 1, count)
    ]


async def expect_offset_page(
    client: Any, db: asyncpg.Connection, tenant: Tenant, start: int, count: int
) -> None:
    assert await page_ids(client, tenant, start, count) == await offset_page(db, tenant, start, count), (
        start,
        count,
    )


def kept_lists(tenant: Tenant) -> list[pages.Checkpoints]:
    return [marks for key, marks in pages._lists.items() if tenant.id in map(str, key[1:])]


async def test_deep_pages_match_offset_with_writes_in_between(
    client: Any, db: asyncpg.Connection, tenant: Tenant, small_checkpoints: None
) -> None:
    users = [(await post_user(client, tenant))["id"] for _ in range(24)]
    rng = random.Random(22)
    for step in range(60):
        action = rng.random()
        if action < 0.15:
            users.append((await post_user(client, tenant))["id"])
        elif action < 0.35:  # one leaves, one comes: as many users as before, in other places
            gone = users.pop(rng.randrange(len(users) // 2))
            resp = await client.delete(f"/scim/v2/Users/{gone}", headers=tenant.headers)
            assert resp.status == 204, await resp.text()
            users.append((await post_user(client, tenant))["id"])
        elif action < 0.45 and len(users) > 8:  # SCIM DELETE: the user leaves the list
            gone = users.pop(rng.randrange(len(users)))
            resp = await client.delete(f"/scim/v2/Users/{gone}", headers=tenant.headers)
            assert resp.status == 204, await resp.text()
        elif action < 0.5 and len(users) > 8:  # hard delete by an operator: the row is gone
            gone = users.pop(rng.randrange(len(users)))
            resp = await client.delete(f"/admin/v1/tenants/{tenant.id}/users/{gone}", headers=ADMIN_HEADERS)
            assert resp.status == 200, await resp.text()
        start = rng.randint(4, len(users) + 2)
        await expect_offset_page(client, db, tenant, start, rng.randint(1, 7))
        if step == 0:
            assert [len(marks.keys) for marks in kept_lists(tenant)] == [len(users) // 3]


async def test_unchanged_list_keeps_its_checkpoints(
    client: Any, db: asyncpg.Connection, tenant: Tenant, small_checkpoints: None
) -> None:
    for _ in range(10):
        await post_user(client, tenant)
    await expect_offset_page(client, db, tenant, 5, 2)
    (first,) = kept_lists(tenant)
    for start in (4, 7, 9, 10, 11):
        await expect_offset_page(client, db, tenant, start, 3)
    assert kept_lists(tenant) == [first]  # no second pass while nothing changed
    await post_user(client, tenant)
    await expect_offset_page(client, db, tenant, 10, 3)  # finds the list changed: read by OFFSET, dropped
    assert kept_lists(tenant) == []
    await expect_offset_page(client, db, tenant, 7, 3)  # passes over the list again
    (second,) = kept_lists(tenant)
    assert second is not first and second.total == 11


async def test_filtered_and_sorted_pages_are_read_by_offset(
    client: Any, db: asyncpg.Connection, tenant: Tenant, small_checkpoints: None
) -> None:
    for _ in range(8):
        await post_user(client, tenant)
    for query in ("filter=active eq true&startIndex=5&count=2", "sortBy=userName&startIndex=5&count=2"):
        resp = await client.get(f"/scim/v2/Users?{query}", headers=tenant.headers)
        assert resp.status == 200, await resp.text()
        assert len((await resp.json())["Resources"]) == 2
    assert kept_lists(tenant) == []


async def test_user_deleted_outright_moves_the_deep_pages(
    client: Any, db: asyncpg.Connection, tenant: Tenant, small_checkpoints: None
) -> None:
    users = [(await post_user(client, tenant))["id"] for _ in range(12)]
    # Written long before the checkpoints: the deletion is the only trace of a change.
    await db.execute(
        "UPDATE users SET updated_at = now() - interval '2 hours' WHERE tenant_id = $1", tenant.id
    )
    await expect_offset_page(client, db, tenant, 8, 3)
    resp = await client.delete(f"/admin/v1/tenants/{tenant.id}/users/{users[1]}", headers=ADMIN_HEADERS)
    assert resp.status == 200, await resp.text()
    for start in (4, 7, 8, 10):
        await expect_offset_page(client, db, tenant, start, 3)
