"""SCIM /Users end to end: HTTP in, HTTP and database state out."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

import asyncpg

from tests.conftest import (
    PUBLIC_URL,
    hold_user_name,
    unique_email,
    user_body,
    wait_until,
    wait_until_blocked_by,
    waits_for,
)

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


async def create(client: Any, tenant: Any, user_name: str | None = None, **extra: Any) -> dict[str, Any]:
    resp = await client.post(
        "/scim/v2/Users", json=user_body(user_name or unique_email(), **extra), headers=tenant.headers
    )
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def test_post_creates_user_with_meta_and_location(client, tenant, db):
    email = unique_email("ada")
    resp = await client.post(
        "/scim/v2/Users", json=user_body(email, externalId="ext-1"), headers=tenant.headers
    )
    assert resp.status == 201
    assert resp.content_type == "application/scim+json"
    body = await resp.json()
    assert body["userName"] == email
    assert body["externalId"] == "ext-1"
    assert body["active"] is True
    assert body["meta"]["resourceType"] == "User"
    assert body["meta"]["location"] == f"{PUBLIC_URL}/scim/v2/Users/{body['id']}"
    assert body["meta"]["version"].startswith('W/"')
    assert resp.headers["Location"] == body["meta"]["location"]
    assert resp.headers["ETag"] == body["meta"]["version"]
    assert "urn:ietf:params:scim:schemas:core:2.0:User" in body["schemas"]
    row = await db.fetchrow(
        "SELECT user_name, tenant_id::text, active FROM users WHERE id = $1::uuid", body["id"]
    )
    assert row["user_name"] == email and row["tenant_id"] == tenant.id and row["active"]


async def test_user_ids_are_made_in_time_order(client, tenant):
    """Ids are UUID version 7 (store/migrations/0036): a later user's id sorts after an earlier one's,
    and an id's first 48 bits are the milliseconds of its creation, never before its meta.created."""
    one_by_one = [await create(client, tenant) for _ in range(4)]
    together = await asyncio.gather(*(create(client, tenant) for _ in range(8)))
    ids = [uuid.UUID(u["id"]) for u in [*one_by_one, *together]]
    assert {i.version for i in ids} == {7}
    assert ids[:4] == sorted(ids[:4]) and max(ids[:4]) < min(ids[4:])
    for user, made in zip([*one_by_one, *together], ids, strict=True):
        created = datetime.fromisoformat(user["meta"]["created"].replace("Z", "+00:00"))
        assert int(made.hex[:12], 16) >= int(created.timestamp() * 1000), (made, created)


async def test_get_returns_the_created_user(client, tenant):
    created = await create(client, tenant)
    resp = await client.get(f"/scim/v2/Users/{created['id']}", headers=tenant.headers)
    assert resp.status == 200
    assert (await resp.json())["userName"] == created["userName"]


async def test_get_unknown_or_malformed_id_is_404(client, tenant):
    for user_id in ("2b1f4a0e-0000-4000-8000-000000000000", "not-a-uuid"):
        resp = await client.get(f"/scim/v2/Users/{user_id}", headers=tenant.headers)
        assert resp.status == 404
        body = await resp.json()
        assert body["status"] == "404"
        assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]


async def test_user_name_is_unique_case_insensitively(client, tenant, db):
    email = unique_email("dup")
    await create(client, tenant, email)
    resp = await client.post("/scim/v2/Users", json=user_body(email.upper()), headers=tenant.headers)
    assert resp.status == 409
    body = await resp.json()
    assert body["scimType"] == "uniqueness"
    assert email.upper() in body["detail"]
    assert await db.fetchval("SELECT count(*) FROM users WHERE lower(user_name) = lower($1)", email) == 1


async def test_same_user_name_in_two_tenants_is_allowed(client, tenant, new_tenant):
    other = await new_tenant()
    email = unique_email()
    await create(client, tenant, email)
    await create(client, other, email)


async def test_put_replaces_the_user_and_bumps_version(client, tenant, db):
    created = await create(client, tenant, title="Engineer")
    new_body = user_body(created["userName"], displayName="Ada L.", active=True)
    resp = await client.put(f"/scim/v2/Users/{created['id']}", json=new_body, headers=tenant.headers)
    assert resp.status == 200
    body = await resp.json()
    assert body["displayName"] == "Ada L."
    assert "title" not in body  # PUT replaces: attributes left out are cleared
    assert body["meta"]["version"] != created["meta"]["version"]
    assert await db.fetchval("SELECT display_name FROM users WHERE id = $1::uuid", created["id"]) == "Ada L."


async def test_put_to_a_taken_user_name_is_409_and_changes_nothing(client, tenant, db):
    a = await create(client, tenant)
    b = await create(client, tenant)
    resp = await client.put(
        f"/scim/v2/Users/{b['id']}", json=user_body(a["userName"]), headers=tenant.headers
    )
    assert resp.status == 409
    assert (await resp.json())["scimType"] == "uniqueness"
    assert await db.fetchval("SELECT user_name FROM users WHERE id = $1::uuid", b["id"]) == b["userName"]


async def test_patch_replace_without_path_deactivates_okta_style(client, tenant, db):
    created = await create(client, tenant)
    patch = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"active": False}}],
    }
    resp = await client.patch(f"/scim/v2/Users/{created['id']}", json=patch, headers=tenant.headers)
    assert resp.status == 200
    assert (await resp.json())["active"] is False
    assert await db.fetchval("SELECT active FROM users WHERE id = $1::uuid", created["id"]) is False
    # Deactivated users are still readable and listed: Entra and Okta read them back.
    resp = await client.get(f"/scim/v2/Users/{created['id']}", headers=tenant.headers)
    assert resp.status == 200 and (await resp.json())["active"] is False
    resp = await client.get(
        f'/scim/v2/Users?filter=userName eq "{created["userName"]}"', headers=tenant.headers
    )
    assert (await resp.json())["totalResults"] == 1


async def test_patch_with_empty_operations_is_a_noop(client, tenant, db):
    created = await create(client, tenant)
    patch = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": []}
    resp = await client.patch(f"/scim/v2/Users/{created['id']}", json=patch, headers=tenant.headers)
    assert resp.status == 200
    assert (await resp.json())["meta"]["version"] == created["meta"]["version"]
    assert await db.fetchval("SELECT count(*) FROM outbox WHERE resource_id = $1::uuid", created["id"]) == 1


async def test_delete_deactivates_unlinks_and_repost_relinks_same_user(client, tenant, db):
    created = await create(client, tenant)
    resp = await client.delete(f"/scim/v2/Users/{created['id']}", headers=tenant.headers)
    assert resp.status == 204
    resp = await client.get(f"/scim/v2/Users/{created['id']}", headers=tenant.headers)
    assert resp.status == 404
    row = await db.fetchrow("SELECT active, scim_linked FROM users WHERE id = $1::uuid", created["id"])
    assert row["active"] is False and row["scim_linked"] is False  # deactivated, never destroyed
    resp = await client.get(
        f'/scim/v2/Users?filter=userName eq "{created["userName"]}"', headers=tenant.headers
    )
    assert (await resp.json())["totalResults"] == 0
    resp = await client.delete(f"/scim/v2/Users/{created['id']}", headers=tenant.headers)
    assert resp.status == 404

    resp = await client.post("/scim/v2/Users", json=user_body(created["userName"]), headers=tenant.headers)
    assert resp.status == 201
    again = await resp.json()
    assert again["id"] == created["id"]
    assert again["active"] is True
    row = await db.fetchrow("SELECT active, scim_linked FROM users WHERE id = $1::uuid", created["id"])
    assert row["active"] is True and row["scim_linked"] is True


async def test_password_is_ignored_on_post_and_refused_on_put_and_patch(client, tenant, db):
    email = unique_email()
    created = await create(client, tenant, email, password="s3cret!")
    assert "password" not in created
    stored = await db.fetchval("SELECT resource::text FROM users WHERE id = $1::uuid", created["id"])
    assert "s3cret" not in stored
    resp = await client.put(
        f"/scim/v2/Users/{created['id']}", json=user_body(email, password="x"), headers=tenant.headers
    )
    assert resp.status == 400
    assert (await resp.json())["scimType"] == "mutability"
    patch = {"Operations": [{"op": "replace", "path": "password", "value": "x"}]}
    resp = await client.patch(f"/scim/v2/Users/{created['id']}", json=patch, headers=tenant.headers)
    assert resp.status == 400
    body = await resp.json()
    assert body["scimType"] == "mutability" and "password" in body["detail"]
    assert await db.fetchval("SELECT version FROM users WHERE id = $1::uuid", created["id"]) == 1


async def test_unknown_attributes_are_accepted_and_ignored(client, tenant):
    created = await create(client, tenant, favouriteColour="teal", **{"urn:example:custom:1.0": {"x": 1}})
    assert "favouriteColour" not in created


async def test_schemas_that_do_not_name_a_user_are_refused_and_none_are_taken(client, tenant, db):
    # RFC 7643 §3: a body's `schemas` name what it is; one that says it is a Group is not stored as a User
    # (scimsvc/scim/body_shape.py:check_schemas). A body without them is taken, as IdPs leave them out.
    user = await create(client, tenant)
    for schemas in (
        ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        [],
        "urn:ietf:params:scim:schemas:core:2.0:User",
    ):
        user_name = unique_email("wrong-schemas")
        body = {**user_body(user_name), "schemas": schemas}
        resp = await client.post("/scim/v2/Users", json=body, headers=tenant.headers)
        assert resp.status == 400, (schemas, resp.status)
        error = await resp.json()
        assert error["scimType"] == "invalidValue"
        assert 'must list "urn:ietf:params:scim:schemas:core:2.0:User"' in error["detail"]
        resp = await client.put(f"/scim/v2/Users/{user['id']}", json=body, headers=tenant.headers)
        assert resp.status == 400, (schemas, resp.status)
        assert await db.fetchval("SELECT count(*) FROM users WHERE user_name = $1", user_name) == 0
    resp = await client.post(
        "/scim/v2/Groups",
        json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "displayName": "Not a user"},
        headers=tenant.headers,
    )
    assert resp.status == 400 and "core:2.0:Group" in (await resp.json())["detail"]
    bare = {"userName": unique_email("no-schemas")}
    resp = await client.post("/scim/v2/Users", json=bare, headers=tenant.headers)
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["userName"] == bare["userName"]
    spelled = {
        **user_body(unique_email("lower-urn")),
        "schemas": ["URN:ietf:params:scim:schemas:core:2.0:user"],
    }
    assert (await client.post("/scim/v2/Users", json=spelled, headers=tenant.headers)).status == 201


async def test_enterprise_extension_and_manager_round_trip(client, tenant):
    manager = await create(client, tenant, displayName="The Boss")
    created = await create(
        client,
        tenant,
        **{ENTERPRISE: {"employeeNumber": "42", "department": "R&D", "manager": {"value": manager["id"]}}},
    )
    ext = created[ENTERPRISE]
    assert ext["employeeNumber"] == "42" and ext["department"] == "R&D"
    # manager.displayName is filled in by the service and returned on request only (what the IdP sent
    # comes back as it was sent).
    assert ext["manager"] == {"value": manager["id"]}
    assert ENTERPRISE in created["schemas"]
    for asked in (f"{ENTERPRISE}:manager", f"{ENTERPRISE}:manager.displayName"):
        resp = await client.get(f"/scim/v2/Users/{created['id']}?attributes={asked}", headers=tenant.headers)
        assert (await resp.json())[ENTERPRISE]["manager"]["displayName"] == "The Boss"


async def test_manager_must_be_a_user_of_the_same_tenant(client, tenant, new_tenant, db):
    other = await new_tenant()
    foreign = await create(client, other)
    email = unique_email()
    resp = await client.post(
        "/scim/v2/Users",
        json=user_body(email, **{ENTERPRISE: {"manager": {"value": foreign["id"]}}}),
        headers=tenant.headers,
    )
    assert resp.status == 400
    body = await resp.json()
    assert body["scimType"] == "invalidValue" and foreign["id"] in body["detail"]
    assert await db.fetchval("SELECT count(*) FROM users WHERE user_name = $1", email) == 0


async def test_if_match_mismatch_is_412_and_if_none_match_is_304(client, tenant, db):
    created = await create(client, tenant)
    url = f"/scim/v2/Users/{created['id']}"
    headers = {**tenant.headers, "If-Match": 'W/"999"'}
    resp = await client.put(url, json=user_body(created["userName"], displayName="x"), headers=headers)
    assert resp.status == 412
    assert (await resp.json())["scimType"] == "preconditionFailed"
    assert await db.fetchval("SELECT display_name FROM users WHERE id = $1::uuid", created["id"]) is None
    headers = {**tenant.headers, "If-Match": created["meta"]["version"]}
    resp = await client.put(url, json=user_body(created["userName"], displayName="x"), headers=headers)
    assert resp.status == 200
    etag = resp.headers["ETag"]
    resp = await client.get(url, headers={**tenant.headers, "If-None-Match": etag})
    assert resp.status == 304


async def test_plain_application_json_is_accepted(client, tenant):
    headers = {**tenant.headers, "Content-Type": "application/json"}
    resp = await client.post("/scim/v2/Users", json=user_body(unique_email()), headers=headers)
    assert resp.status == 201


async def test_concurrent_patches_of_one_user_lose_nothing(client, tenant, db):
    import asyncio

    created = await create(client, tenant)
    url = f"/scim/v2/Users/{created['id']}"

    async def add_role(i: int) -> int:
        patch = {"Operations": [{"op": "add", "path": "roles", "value": [{"value": f"role-{i}"}]}]}
        resp = await client.patch(url, json=patch, headers=tenant.headers)
        return resp.status

    statuses = await asyncio.gather(*(add_role(i) for i in range(20)))
    assert statuses == [200] * 20
    body = await (await client.get(url, headers=tenant.headers)).json()
    assert {r["value"] for r in body["roles"]} == {f"role-{i}" for i in range(20)}
    assert body["meta"]["version"] == 'W/"21"'
    assert await db.fetchval("SELECT count(*) FROM outbox WHERE resource_id = $1::uuid", created["id"]) == 21


async def test_allowlist_refuses_other_domains_and_names_the_setting(client, new_tenant, db):
    tenant = await new_tenant(allowed_domains=["allowed.example"])
    email = unique_email("out", domain="elsewhere.example")
    resp = await client.post("/scim/v2/Users", json=user_body(email), headers=tenant.headers)
    assert resp.status == 400
    body = await resp.json()
    assert body["scimType"] == "invalidValue"
    assert "elsewhere.example" in body["detail"] and "allowed_domains" in body["detail"]
    assert await db.fetchval("SELECT count(*) FROM users WHERE tenant_id = $1::uuid", tenant.id) == 0
    assert await db.fetchval("SELECT count(*) FROM outbox WHERE tenant_id = $1::uuid", tenant.id) == 0

    inside = await create(client, tenant, unique_email("in", domain="Allowed.Example"))
    patch = {"Operations": [{"op": "replace", "path": "userName", "value": email}]}
    resp = await client.patch(f"/scim/v2/Users/{inside['id']}", json=patch, headers=tenant.headers)
    assert resp.status == 400 and "elsewhere.example" in (await resp.json())["detail"]
    assert (
        await db.fetchval("SELECT user_name FROM users WHERE id = $1::uuid", inside["id"])
        == inside["userName"]
    )


async def test_user_outside_a_later_allowlist_can_still_be_deactivated(client, new_tenant):
    from tests.conftest import ADMIN_HEADERS

    tenant = await new_tenant()
    user = await create(client, tenant, unique_email(domain="old.example"))
    resp = await client.patch(
        f"/admin/v1/tenants/{tenant.id}", json={"allowed_domains": ["new.example"]}, headers=ADMIN_HEADERS
    )
    assert resp.status == 200
    patch = {"Operations": [{"op": "replace", "value": {"active": False}}]}
    resp = await client.patch(f"/scim/v2/Users/{user['id']}", json=patch, headers=tenant.headers)
    assert resp.status == 200 and (await resp.json())["active"] is False


async def test_a_rename_that_postgres_aborts_in_a_deadlock_runs_again_and_succeeds(
    client, tenant, db, database_url
):
    """The rename holds the user and waits for a name another transaction is inserting, while that one
    waits for the user: a deadlock. PostgreSQL checks a wait for one once, deadlock_timeout after the wait
    began, and aborts the transaction whose check finds it. So that this is the rename's check whatever the
    machine's speed, the other transaction is already waiting for the user when the rename starts waiting
    for the name, and checks late (its own deadlock_timeout, a superuser setting, is ten minutes): a third
    connection holds the user first, the rename queues for it, the other queues behind the rename, and
    only then is the user let go."""
    user = await create(client, tenant)
    new_name = unique_email("renamed")
    other, tx = await hold_user_name(database_url, tenant, new_name)  # a writer the rename will meet
    first = await asyncpg.connect(database_url)
    try:
        await other.execute("SET deadlock_timeout = '10min'")
        first_tx = first.transaction()
        await first_tx.start()
        await first.execute("SELECT 1 FROM users WHERE id = $1::uuid FOR UPDATE", user["id"])
        patch = asyncio.create_task(
            client.patch(
                f"/scim/v2/Users/{user['id']}",
                json={
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "replace", "path": "userName", "value": new_name}],
                },
                headers=tenant.headers,
            )
        )
        rename = await wait_until_blocked_by(db, first, patch, what="the rename to wait for the user")
        update = asyncio.create_task(
            other.execute("UPDATE users SET display_name = 'Other' WHERE id = $1::uuid", user["id"])
        )
        await wait_until(
            lambda: waits_for(db, other.get_server_pid(), rename), what="the other to queue behind the rename"
        )
        await first_tx.rollback()
        # The rename takes the user and waits for new_name: PostgreSQL aborts it, the other's update goes
        # through, and the rename's second try waits for the user until the other rolls back.
        await asyncio.wait_for(update, 120)
        await tx.rollback()
        resp = await asyncio.wait_for(patch, 120)
    finally:
        await first.close()
        await other.close()
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["userName"] == new_name
    assert await db.fetchval("SELECT user_name FROM users WHERE id = $1::uuid", user["id"]) == new_name
    changes = await db.fetch("SELECT change FROM outbox WHERE resource_id = $1::uuid ORDER BY id", user["id"])
    assert [c["change"] for c in changes] == ["create", "update"]  # the aborted try wrote nothing
