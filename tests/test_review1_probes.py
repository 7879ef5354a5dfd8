"""Review probes (branch review1): behaviours of the merged PUT/PATCH/DELETE fast paths."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import create_team, unique_email, user_body

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


async def new_user(client: Any, tenant: Any) -> dict[str, Any]:
    resp = await client.post("/scim/v2/Users", json=user_body(unique_email()), headers=tenant.headers)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def test_put_with_nul_in_display_name_is_a_400_not_a_500(client, tenant):
    user = await new_user(client, tenant)
    body = user_body(user["userName"], displayName="bad\u0000name")
    resp = await client.put(f"/scim/v2/Users/{user['id']}", json=body, headers=tenant.headers)
    print("PUT fast path:", resp.status, await resp.text())
    patch = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "path": "displayName", "value": "x\u0000y"}],
    }
    resp2 = await client.patch(f"/scim/v2/Users/{user['id']}", json=patch, headers=tenant.headers)
    print("PATCH read path:", resp2.status, await resp2.text())
    assert resp.status == 400 and resp2.status == 400


async def test_other_tenants_id_reaches_nothing_even_in_a_batch(client, tenant, new_tenant, db):
    other = await new_tenant()
    theirs = [await new_user(client, other) for _ in range(6)]
    off = {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": False}}]}

    async def send(method: str, who: Any, user: dict[str, Any], body: Any) -> int:
        resp = await client.request(method, f"/scim/v2/Users/{user['id']}", json=body, headers=who.headers)
        return resp.status

    sent = []
    for u in theirs:
        sent += [
            send("PATCH", tenant, u, off),
            send("PUT", tenant, u, user_body(u["userName"], active=False)),
            send("DELETE", tenant, u, None),
            send(
                "PATCH",
                other,
                u,
                {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "title", "value": "t"}]},
            ),
        ]
    statuses = await asyncio.gather(*sent)
    print(statuses)
    for i in range(len(theirs)):
        assert statuses[4 * i : 4 * i + 3] == [404, 404, 404]
        assert statuses[4 * i + 3] == 200
    rows = await db.fetch(
        "SELECT active, scim_linked FROM users WHERE id = ANY($1::uuid[])", [u["id"] for u in theirs]
    )
    assert all(r["active"] and r["scim_linked"] for r in rows)


async def test_put_with_a_long_display_name_is_not_a_500(client, tenant):
    import os

    user = await new_user(client, tenant)
    name = os.urandom(3000).hex()
    resp = await client.put(
        f"/scim/v2/Users/{user['id']}",
        json=user_body(user["userName"], displayName=name),
        headers=tenant.headers,
    )
    print("PUT long displayName:", resp.status, (await resp.text())[:300])
    resp2 = await client.put(
        f"/scim/v2/Users/{user['id']}",
        json=user_body(user["userName"], externalId=name),
        headers=tenant.headers,
    )
    print("PUT long externalId:", resp2.status, (await resp2.text())[:300])
    assert resp.status < 500 and resp2.status < 500


async def test_lone_surrogate_in_put_is_a_400(client, tenant):
    user = await new_user(client, tenant)
    schema = "urn:ietf:params:scim:schemas:core:2.0:User"
    raw = f'{{"schemas":["{schema}"],"userName":"{user["userName"]}","displayName":"a\\ud800b"}}'
    resp = await client.put(
        f"/scim/v2/Users/{user['id']}",
        data=raw,
        headers={**tenant.headers, "Content-Type": "application/scim+json"},
    )
    print("PUT surrogate:", resp.status, (await resp.text())[:300])
    assert resp.status == 400


async def test_users_deleted_while_groups_add_them_end_in_no_group(client, tenant, db, settings):
    from tests.conftest import run_worker

    users = [await new_user(client, tenant) for _ in range(30)]
    groups = []
    for n in range(3):
        team = (await create_team(client, tenant, f"g{n} {unique_email()}"))["name"]
        body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": team}
        resp = await client.post("/scim/v2/Groups", json=body, headers=tenant.headers)
        assert resp.status == 201, await resp.text()
        groups.append(await resp.json())
    sent = []
    for u in users:
        for g in groups:
            add = {
                "schemas": [PATCH_OP],
                "Operations": [{"op": "add", "path": "members", "value": [{"value": u["id"]}]}],
            }
            sent.append(client.patch(f"/scim/v2/Groups/{g['id']}", json=add, headers=tenant.headers))
        sent.append(client.delete(f"/scim/v2/Users/{u['id']}", headers=tenant.headers))
    answers = await asyncio.gather(*sent)
    statuses = sorted({(a.method, a.status) for a in answers})
    print(statuses)
    assert all(a.status < 500 for a in answers)
    before = await db.fetchval(
        "SELECT count(*) FROM group_members gm JOIN users u ON u.id = gm.user_id "
        "WHERE u.id = ANY($1::uuid[]) AND NOT u.scim_linked",
        [u["id"] for u in users],
    )
    print("deleted users still members before the worker:", before)
    await run_worker(settings)
    left = await db.fetchval(
        "SELECT count(*) FROM group_members gm JOIN users u ON u.id = gm.user_id "
        "WHERE u.id = ANY($1::uuid[]) AND NOT u.scim_linked",
        [u["id"] for u in users],
    )
    assert left == 0


async def test_top_tenants_limit_in_superscript_digits_is_a_400(client):
    from tests.conftest import ADMIN_KEY

    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    resp = await client.get("/admin/v1/stats/tenants?limit=%C2%B2", headers=admin)  # "²"
    print("limit=²:", resp.status, (await resp.text())[:200])
    assert resp.status == 400


async def test_top_tenants_limit_padded_with_zeros_stays_bounded(client):
    from tests.conftest import ADMIN_KEY

    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    resp = await client.get("/admin/v1/stats/tenants?limit=0000010000000", headers=admin)
    print("limit=0000010000000:", resp.status, (await resp.text())[:200])
    assert resp.status == 400
    resp = await client.get("/admin/v1/stats/tenants?limit=00000" + "1" * 5000, headers=admin)
    print("limit=00000111...:", resp.status, (await resp.text())[:200])
    assert resp.status == 400
