"""PATCH, PUT and DELETE /Users sent together: each answered as if alone, each saved with its own outbox row.

Updates and deletes that arrive while others are out go to PostgreSQL as one statement (README.md,
Performance); these tests send many at once and check every answer and the database.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from scimsvc.scim.users import change_kind
from scimsvc.store import user_reads, user_updates, users
from scimsvc.store.db import create_pool
from tests.conftest import run_worker, unique_email, user_body, wait_until, wait_until_blocked_by

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


@pytest.fixture
async def other_conn(database_url):
    """A connection of the test's own, standing in for another request mid-transaction."""
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


async def create_users(client: Any, tenant: Any, count: int) -> list[dict[str, Any]]:
    users = []
    for _ in range(count):
        resp = await client.post("/scim/v2/Users", json=user_body(unique_email()), headers=tenant.headers)
        assert resp.status == 201, await resp.text()
        users.append(await resp.json())
    return users


def patch(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def entra(i: int) -> dict[str, Any]:
    return patch(
        {"op": "Replace", "path": "displayName", "value": f"Person {i}"},
        {"op": "Replace", "path": "name.givenName", "value": f"Given {i}"},
        {"op": "Replace", "path": "title", "value": f"Title {i}"},
        {"op": "Replace", "path": f"{ENTERPRISE}:department", "value": f"Dept {i}"},
    )


DEACTIVATE = patch({"op": "replace", "value": {"active": False}})


def headers(tenant: Any, request_id: str) -> dict[str, str]:
    return {**tenant.headers, "X-Request-Id": request_id}


async def outbox_rows(db: asyncpg.Connection, user_id: str) -> list[tuple[str, str]]:
    rows = await db.fetch(
        "SELECT change, request_id FROM outbox WHERE resource_id = $1::uuid ORDER BY id", user_id
    )
    return [(r["change"], r["request_id"]) for r in rows]


async def test_patches_puts_and_deletes_sent_together_are_each_answered_and_saved(client, tenant, db):
    users = await create_users(client, tenant, 40)
    entra_users, off_users, put_users, gone_users = users[:10], users[10:20], users[20:30], users[30:]

    async def send(method: str, user: dict[str, Any], body: Any, request_id: str) -> Any:
        url = f"/scim/v2/Users/{user['id']}"
        resp = await client.request(method, url, json=body, headers=headers(tenant, request_id))
        return resp.status, (await resp.json() if resp.status == 200 else None)

    sent = [
        *(send("PATCH", u, entra(i), f"entra{i}") for i, u in enumerate(entra_users)),
        *(send("PATCH", u, DEACTIVATE, f"off{i}") for i, u in enumerate(off_users)),
        *(
            send("PUT", u, user_body(u["userName"], title=f"Put {i}"), f"put{i}")
            for i, u in enumerate(put_users)
        ),
        *(send("DELETE", u, None, f"gone{i}") for i, u in enumerate(gone_users)),
    ]
    answers = await asyncio.gather(*sent)

    for i, (status, body) in enumerate(answers[:10]):
        assert status == 200
        assert body["displayName"] == f"Person {i}" and body["name"]["givenName"] == f"Given {i}"
        assert body["title"] == f"Title {i}" and body[ENTERPRISE]["department"] == f"Dept {i}"
        assert body["name"]["familyName"] == "Lovelace"  # untouched attributes stay
    for status, body in answers[10:20]:
        assert status == 200 and body["active"] is False
    for i, (status, body) in enumerate(answers[20:30]):
        assert status == 200 and body["title"] == f"Put {i}" and body["active"] is True
    assert [status for status, _ in answers[30:]] == [204] * 10

    for i, user in enumerate(entra_users):
        row = await db.fetchrow(
            "SELECT display_name, resource, version FROM users WHERE id = $1::uuid", user["id"]
        )
        assert row["display_name"] == f"Person {i}" and row["version"] == 2
        assert (await outbox_rows(db, user["id"]))[1:] == [("update", f"entra{i}")]
    for i, user in enumerate(off_users):
        assert not await db.fetchval("SELECT active FROM users WHERE id = $1::uuid", user["id"])
        assert (await outbox_rows(db, user["id"]))[1:] == [("deactivate", f"off{i}")]
        resp = await client.get(f"/scim/v2/Users/{user['id']}", headers=tenant.headers)
        assert (await resp.json())["active"] is False
    for i, user in enumerate(put_users):
        assert (await outbox_rows(db, user["id"]))[1:] == [("update", f"put{i}")]
    for i, user in enumerate(gone_users):
        linked, active = await db.fetchrow(
            "SELECT scim_linked, active FROM users WHERE id = $1::uuid", user["id"]
        )
        assert not linked and not active
        assert (await outbox_rows(db, user["id"]))[1:] == [("delete", f"gone{i}")]
        resp = await client.get(f"/scim/v2/Users/{user['id']}", headers=tenant.headers)
        assert resp.status == 404


async def test_patches_of_one_user_sent_together_keep_every_change(client, tenant, db):
    (user,) = await create_users(client, tenant, 1)
    attributes = ["displayName", "title", "nickName", "locale", "preferredLanguage", "profileUrl", "timezone"]
    values = [f"https://example.com/{i}" if a == "profileUrl" else f"v{i}" for i, a in enumerate(attributes)]
    values[attributes.index("locale")] = "en-GB"
    values[attributes.index("preferredLanguage")] = "en-GB"
    values[attributes.index("timezone")] = "Europe/London"
    url = f"/scim/v2/Users/{user['id']}"
    answers = await asyncio.gather(
        *(
            client.patch(url, json=patch({"op": "replace", "path": a, "value": v}), headers=tenant.headers)
            for a, v in zip(attributes, values, strict=True)
        )
    )
    assert [r.status for r in answers] == [200] * len(attributes)
    resp = await client.get(url, headers=tenant.headers)
    body = await resp.json()
    assert {a: body[a] for a in attributes} == dict(zip(attributes, values, strict=True))
    assert await db.fetchval("SELECT version FROM users WHERE id = $1::uuid", user["id"]) == 1 + len(
        attributes
    )
    changes = await outbox_rows(db, user["id"])
    assert [c for c, _ in changes] == ["create"] + ["update"] * len(attributes)


async def test_a_user_another_transaction_holds_does_not_hold_up_the_others(client, tenant, db, other_conn):
    users = await create_users(client, tenant, 6)
    held, others = users[0], users[1:]
    tx = other_conn.transaction()
    await tx.start()
    await other_conn.execute("SELECT 1 FROM users WHERE id = $1::uuid FOR UPDATE", held["id"])

    # The held user last: it goes in a batch with the others (which then waits for it at most 500 ms, and
    # its users go again one by one) or alone.
    sent = [
        asyncio.ensure_future(
            client.patch(f"/scim/v2/Users/{u['id']}", json=DEACTIVATE, headers=tenant.headers)
        )
        for u in [*others, held]
    ]
    stuck = sent[-1]
    answers = await asyncio.gather(*sent[:-1])
    assert [r.status for r in answers] == [200] * len(others)
    await wait_until_blocked_by(db, other_conn, stuck, what="the PATCH of the held user to wait for it")
    assert not stuck.done()
    await tx.commit()
    resp = await stuck
    assert resp.status == 200 and (await resp.json())["active"] is False
    actives = await db.fetch("SELECT active FROM users WHERE id = ANY($1::uuid[])", [u["id"] for u in users])
    assert [r["active"] for r in actives] == [False] * len(users)


async def test_a_batch_failed_on_held_users_leaves_connections_for_everyone_else(
    client, tenant, db, other_conn, settings
):
    """The batch waits for the held users at most 500 ms and fails; its updates go again one by one, a
    few at a time: the others are saved while the held users are still held, and a read of another user
    finds a free connection meanwhile (they once took the whole pool, and everyone else waited for it)."""
    created = await create_users(client, tenant, 13)
    held, free, unrelated = created[:6], created[6:12], created[12]
    tx = other_conn.transaction()
    await tx.start()
    await other_conn.execute(
        "SELECT 1 FROM users WHERE id = ANY($1::uuid[]) FOR UPDATE", [u["id"] for u in held]
    )
    pool = await create_pool(settings.database_url, min_size=1, max_size=4, wait_seconds=10)
    try:
        batcher = user_updates.user_updates(pool)
        deactivate = change_kind(was_active=True, was_linked=True, active=False)
        sent = [
            asyncio.ensure_future(
                batcher.submit(
                    user_updates.UserUpdate(
                        UUID(str(tenant.id)),
                        UUID(u["id"]),
                        "active",
                        None,
                        False,
                        None,
                        deactivate,
                        deactivate,
                        f"deactivate {u['id']}",
                    )
                )
            )
            for u in [*held, *free]  # submitted together: one batch, the held users first
        ]
        saved, waiting = sent[len(held) :], sent[: len(held)]
        await wait_until(lambda: all(f.done() for f in saved), what="the updates of the free users")
        assert all(f.result() is not None for f in saved)
        read = await users.get_user(pool, UUID(str(tenant.id)), UUID(unrelated["id"]))
        assert read is not None and read["active"] is True
        await wait_until_blocked_by(db, other_conn, waiting[0], what="an update of a held user to wait")
        assert not any(f.done() for f in waiting)
        await tx.commit()
        assert all(row is not None for row in await asyncio.gather(*waiting))
        await pool.close()
    finally:
        pool.terminate()  # nothing of it is left to wait for, unless an assertion failed
    rows = await db.fetch(
        "SELECT u.active, (SELECT count(*) FROM outbox o WHERE o.resource_id = u.id AND o.change = $2) AS n"
        " FROM users u WHERE u.id = ANY($1::uuid[])",
        [u["id"] for u in held + free],
        str(deactivate),
    )
    assert [(r["active"], r["n"]) for r in rows] == [(False, 1)] * 12


async def test_deactivating_an_inactive_user_writes_nothing(client, tenant, db):
    (user,) = await create_users(client, tenant, 1)
    url = f"/scim/v2/Users/{user['id']}"
    first = await client.patch(url, json=DEACTIVATE, headers=tenant.headers)
    again = await client.patch(url, json=DEACTIVATE, headers=tenant.headers)
    assert first.status == again.status == 200
    assert (await again.json())["active"] is False
    assert [c for c, _ in await outbox_rows(db, user["id"])] == ["create", "deactivate"]
    reactivate = patch({"op": "replace", "path": "active", "value": True})
    resp = await client.patch(url, json=reactivate, headers=tenant.headers)
    assert resp.status == 200 and (await resp.json())["active"] is True
    assert [c for c, _ in await outbox_rows(db, user["id"])] == ["create", "deactivate", "reactivate"]


async def test_put_without_active_keeps_it_and_a_rename_still_works(client, tenant, db):
    (user,) = await create_users(client, tenant, 1)
    url = f"/scim/v2/Users/{user['id']}"
    await client.patch(url, json=DEACTIVATE, headers=tenant.headers)
    body = user_body(user["userName"], title="Kept inactive")
    del body["active"]
    resp = await client.put(url, json=body, headers=tenant.headers)
    assert resp.status == 200 and (await resp.json())["active"] is False
    assert (await outbox_rows(db, user["id"]))[-1][0] == "update"
    renamed = unique_email("renamed")
    resp = await client.put(url, json=user_body(renamed), headers=tenant.headers)
    assert resp.status == 200
    assert (await resp.json())["userName"] == renamed
    assert await db.fetchval("SELECT user_name FROM users WHERE id = $1::uuid", user["id"]) == renamed
    assert (await outbox_rows(db, user["id"]))[-1][0] == "reactivate"


async def test_another_tenants_user_is_not_found_by_put_patch_or_delete(client, tenant, new_tenant, db):
    (user,) = await create_users(client, tenant, 1)
    other = await new_tenant()
    url = f"/scim/v2/Users/{user['id']}"
    answers = [
        await client.patch(url, json=DEACTIVATE, headers=other.headers),
        await client.patch(url, json=entra(1), headers=other.headers),
        await client.put(url, json=user_body(user["userName"]), headers=other.headers),
        await client.delete(url, headers=other.headers),
    ]
    assert [r.status for r in answers] == [404] * 4
    row = await db.fetchrow("SELECT active, scim_linked, version FROM users WHERE id = $1::uuid", user["id"])
    assert row["active"] and row["scim_linked"] and row["version"] == 1


async def test_a_second_delete_is_not_found_and_a_stale_if_match_is_refused(client, tenant, db):
    first, second = await create_users(client, tenant, 2)
    url = f"/scim/v2/Users/{first['id']}"
    assert (await client.delete(url, headers=tenant.headers)).status == 204
    assert (await client.delete(url, headers=tenant.headers)).status == 404
    assert [c for c, _ in await outbox_rows(db, first["id"])] == ["create", "delete"]
    url = f"/scim/v2/Users/{second['id']}"
    stale = {**tenant.headers, "If-Match": 'W/"99"'}
    assert (await client.patch(url, json=DEACTIVATE, headers=stale)).status == 412
    assert (await client.put(url, json=user_body(second["userName"]), headers=stale)).status == 412
    assert (await client.delete(url, headers=stale)).status == 412
    assert [c for c, _ in await outbox_rows(db, second["id"])] == ["create"]


async def test_a_delete_overlapping_a_patch_leaves_the_user_deleted(client, tenant, db, settings):
    users = await create_users(client, tenant, 8)
    sent = []
    for i, user in enumerate(users):
        url = f"/scim/v2/Users/{user['id']}"
        sent += [
            client.patch(url, json=entra(i), headers=tenant.headers),
            client.delete(url, headers=tenant.headers),
        ]
    answers = await asyncio.gather(*sent)
    for i, user in enumerate(users):
        patched, deleted = answers[2 * i], answers[2 * i + 1]
        assert deleted.status == 204
        changes = [c for c, _ in await outbox_rows(db, user["id"])]
        # The PATCH either came first (and is recorded before the delete) or found the user gone.
        assert (patched.status, changes) in (
            (200, ["create", "update", "delete"]),
            (404, ["create", "delete"]),
        )
        linked = await db.fetchval("SELECT scim_linked FROM users WHERE id = $1::uuid", user["id"])
        assert not linked
    await run_worker(settings)
    pending = await db.fetchval(
        "SELECT count(*) FROM outbox WHERE tenant_id = $1::uuid AND applied_at IS NULL", tenant.id
    )
    assert pending == 0
    states = await db.fetch(
        "SELECT provisioning_state FROM users WHERE id = ANY($1::uuid[])", [u["id"] for u in users]
    )
    assert {r["provisioning_state"] for r in states} == {"deprovisioned"}


STORED = [{"active": True}, {"active": False}, {}]  # the POSTed `active`: none is stored active
PUT_ACTIVE = [{"active": True}, {"active": False}, {}]  # a PUT's `active`: none keeps the stored value


async def _created(client: Any, tenant: Any, stored: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """A user POSTed with `stored` over the usual body (a None value leaves that attribute out)."""
    body = {k: v for k, v in user_body(unique_email()).items() if k != "active"}
    body = {k: v for k, v in {**body, **stored}.items() if v is not None}
    resp = await client.post("/scim/v2/Users", json=body, headers=tenant.headers)
    assert resp.status == 201, await resp.text()
    return await resp.json(), resp.headers["ETag"]


async def _saved(db: Any, user: dict[str, Any], resp: Any) -> tuple[Any, ...]:
    """What a write answered and saved: the answer and the stored resource (without what differs from user
    to user), `active`, the display name column and the user's outbox changes."""
    assert resp.status == 200, await resp.text()
    answer = await resp.json()
    row = await db.fetchrow(
        "SELECT u.active, u.resource, u.display_name, (SELECT array_agg(change ORDER BY id) FROM outbox o"
        " WHERE o.resource_id = u.id) AS changes FROM users u WHERE u.id = $1::uuid",
        user["id"],
    )
    own = ("id", "meta", "userName", "emails")
    return (
        {k: v for k, v in answer.items() if k not in own},
        row["active"],
        {k: v for k, v in json.loads(row["resource"]).items() if k not in own},
        row["display_name"],
        row["changes"],
    )


async def test_unread_puts_and_patches_save_what_the_read_path_builds(client, tenant, db):
    """A PUT or a PATCH of `active` without If-Match is saved without reading the user (its SQL merges it
    with the stored row); the same request with If-Match is built on the user read (services/users.py).
    Both save the same user, answer the same and record the same change."""
    requests: list[tuple[str, Any]] = [
        ("PUT", {"displayName": "Replaced", **active}) for active in PUT_ACTIVE
    ] + [("PATCH", patch({"op": "replace", "value": {"active": value}})) for value in (True, False)]
    for stored in STORED:
        for method, change in requests:
            results = []
            for if_match in (False, True):
                user, etag = await _created(client, tenant, stored)
                if method == "PUT":
                    body = {k: v for k, v in user_body(user["userName"]).items() if k != "active"}
                    body = {**body, **change}
                else:
                    body = change
                sent_headers = {**tenant.headers, **({"If-Match": etag} if if_match else {})}
                resp = await client.request(
                    method, f"/scim/v2/Users/{user['id']}", json=body, headers=sent_headers
                )
                results.append(await _saved(db, user, resp))
            assert results[0] == results[1], (stored, method, change)


# PATCHes that only give single text attributes a text: saved unread (services/users.py:patch_user).
TEXT_PATCHES = [
    entra(1),
    patch(
        {"op": "Add", "path": "NAME.familyname", "value": "Byron"},
        {"op": "replace", "path": "DisplayName", "value": "Ada B"},
    ),
    patch({"op": "replace", "path": "title", "value": ""}),
    patch({"op": "replace", "path": "name.givenName", "value": "Ada"}),  # user_body's: no change
    patch(
        {"op": "replace", "path": "displayName", "value": "One"},
        {"op": "add", "path": "displayName", "value": "Two"},
    ),
    patch({"op": "replace", "path": f"{ENTERPRISE}:department", "value": "Sales"}),
    patch({"op": "replace", "path": "userType", "value": "Full"}),
]
# Users as POSTed, then (for two) changed by SQL into states the read path corrects on its way: `active`
# missing from an inactive user's resource, and a resource whose `active` the column contradicts.
TEXT_STORED: list[tuple[dict[str, Any], str | None]] = [
    *((stored, None) for stored in STORED),
    ({"name": None, "displayName": "Shown"}, None),
    ({"name": {"familyName": "Only"}}, None),
    ({ENTERPRISE: {"costCenter": "C1", "department": "Old"}}, None),
    ({}, "UPDATE users SET resource = resource - 'active', active = false WHERE id = $1::uuid"),
    (
        {},
        """UPDATE users SET resource = resource || '{"active": true}', active = false WHERE id = $1::uuid""",
    ),
]


async def test_unread_text_patches_save_what_the_read_path_builds(client, tenant, db, monkeypatch):
    """A PATCH that only sets text attributes (Entra's `Replace` of displayName, name.givenName, title and
    the department) is saved without reading the user: the same as the read path saves for the same PATCH
    with If-Match, whatever the user holds. A PATCH that changes nothing, and one of a user with a
    manager, take the read path and save the same too."""
    reads = 0
    read_user = user_reads.read_user

    async def counted(*args: Any) -> Any:
        nonlocal reads
        reads += 1
        return await read_user(*args)

    monkeypatch.setattr(user_reads, "read_user", counted)
    manager, _ = await _created(client, tenant, {})
    stored_users = [*TEXT_STORED, ({ENTERPRISE: {"manager": {"value": manager["id"]}}}, None)]
    unread = 0
    for stored, made_by_sql in stored_users:
        for body in TEXT_PATCHES:
            results = []
            for if_match in (False, True):
                user, etag = await _created(client, tenant, stored)
                if made_by_sql:
                    await db.execute(made_by_sql, user["id"])
                reads = 0
                sent_headers = {**tenant.headers, **({"If-Match": etag} if if_match else {})}
                resp = await client.patch(f"/scim/v2/Users/{user['id']}", json=body, headers=sent_headers)
                results.append(saved := await _saved(db, user, resp))
                wrote = saved[-1] == ["create", "update"]
                expected = not if_match and wrote and "manager" not in stored.get(ENTERPRISE, {})
                assert reads == (0 if expected else 1), (stored, made_by_sql, body, if_match)
                unread += expected
            assert results[0] == results[1], (stored, made_by_sql, body)
    assert unread > len(TEXT_STORED) * len(TEXT_PATCHES) // 2  # most of them
    # The department PATCH on the user with a department changed it, and the display name column follows.
    user, _ = await _created(client, tenant, {ENTERPRISE: {"costCenter": "C1", "department": "Old"}})
    resp = await client.patch(f"/scim/v2/Users/{user['id']}", json=entra(7), headers=tenant.headers)
    assert resp.status == 200, await resp.text()
    row = await db.fetchrow("SELECT display_name, resource FROM users WHERE id = $1::uuid", user["id"])
    resource = json.loads(row["resource"])
    assert row["display_name"] == "Person 7"
    assert resource[ENTERPRISE] == {"costCenter": "C1", "department": "Dept 7"}
    assert resource["name"] == {"givenName": "Given 7", "familyName": "Lovelace"}
