"""POST /Users: a new userName is one statement (user + outbox row); other cases take the locked path."""

from __future__ import annotations

from tests.conftest import run_worker, unique_email, user_body

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
