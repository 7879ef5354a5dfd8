"""Seats and licenses applied by the worker (README.md, API surface), through HTTP and the real worker."""

from __future__ import annotations

import asyncio
import json

from tests.conftest import ADMIN_HEADERS, post_user, run_worker, user_body

PRODUCT = "urn:scimsvc:schemas:extension:product:2.0:User"


async def licenses_of(db, tenant_id):
    rows = await db.fetch(
        "SELECT license, count(*) AS n FROM users WHERE tenant_id = $1::uuid GROUP BY 1", tenant_id
    )
    return {r["license"]: r["n"] for r in rows}


async def test_five_concurrent_creates_with_two_seats_give_two_full(client, new_tenant, db, settings):
    tenant = await new_tenant(seats=2)
    await asyncio.gather(*(post_user(client, tenant) for _ in range(5)))
    await run_worker(settings)
    assert await licenses_of(db, tenant.id) == {"full": 2, "free_restricted": 3}
    resp = await client.get(f"/admin/v1/tenants/{tenant.id}/licenses", headers=ADMIN_HEADERS)
    summary = await resp.json()
    # The waiting rule: on a non-flexible tenant the three who fell back for lack of a seat wait for one.
    assert summary == {**summary, "seats": 2, "used": 2, "free": 0, "over_allocated": False}
    assert len(summary["waiting"]) == 3


async def test_freed_seat_goes_to_the_oldest_waiting_user_full_or_not(client, new_tenant, db, settings):
    tenant = await new_tenant(seats=1)
    holder = await post_user(client, tenant)
    await run_worker(settings)
    first = await post_user(client, tenant, userType="Full")
    await run_worker(settings)
    second = await post_user(client, tenant, userType="full")
    plain = await post_user(client, tenant)
    await run_worker(settings)
    resp = await client.get(f"/admin/v1/tenants/{tenant.id}/licenses", headers=ADMIN_HEADERS)
    # The waiting rule: on a non-flexible tenant a plain user who fell back waits too, in arrival order.
    assert (await resp.json())["waiting"] == [first["id"], second["id"], plain["id"]]

    patch = {"Operations": [{"op": "replace", "value": {"active": False}}]}
    await client.patch(f"/scim/v2/Users/{holder['id']}", json=patch, headers=tenant.headers)
    await run_worker(settings)

    got = await (await client.get(f"/scim/v2/Users/{first['id']}", headers=tenant.headers)).json()
    assert (
        got[PRODUCT]["license"] == "full"
        and got[PRODUCT]["seat"] is True
        and got[PRODUCT]["waiting"] is False
    )
    old = await (await client.get(f"/scim/v2/Users/{holder['id']}", headers=tenant.headers)).json()
    assert "license" not in old[PRODUCT] and old[PRODUCT]["seat"] is False
    resp = await client.get(f"/admin/v1/tenants/{tenant.id}/licenses", headers=ADMIN_HEADERS)
    assert await resp.json() == {
        "seats": 1,
        "used": 1,
        "free": 0,
        "waiting": [second["id"], plain["id"]],
        "over_allocated": False,
    }
    actions = await db.fetch(
        "SELECT user_id::text, action, actor FROM audit_log WHERE tenant_id = $1::uuid ORDER BY id", tenant.id
    )
    assert (holder["id"], "deactivation", "scim") in [tuple(a) for a in actions]
    assert (holder["id"], "release", "worker") in [tuple(a) for a in actions]
    assert (first["id"], "promotion", "worker") in [tuple(a) for a in actions]
    assert plain["id"] in {a["user_id"] for a in actions if a["action"] == "waiting"}


async def test_flexible_tenant_gives_default_license_and_full_on_request(client, new_tenant, db, settings):
    tenant = await new_tenant(seats=1, flexible_licenses=True, default_license="free")
    a = await post_user(client, tenant)
    b = await post_user(client, tenant, userType="Full")
    c = await post_user(client, tenant, userType="Full")
    await run_worker(settings)
    rows = {
        r["id"]: (r["license"], r["waiting"])
        for r in await db.fetch(
            "SELECT id::text, license, waiting_since IS NOT NULL AS waiting FROM users "
            "WHERE tenant_id = $1::uuid",
            tenant.id,
        )
    }
    assert rows[a["id"]] == ("free", False)
    assert sorted([rows[b["id"]], rows[c["id"]]]) == [("free", True), ("full", False)]


async def test_fallback_none_leaves_users_waiting_without_license(client, new_tenant, db, settings):
    tenant = await new_tenant(seats=0, fallback_license="none")
    user = await post_user(client, tenant)
    await run_worker(settings)
    got = await (await client.get(f"/scim/v2/Users/{user['id']}", headers=tenant.headers)).json()
    assert got[PRODUCT]["waiting"] is True and "license" not in got[PRODUCT]


async def test_delete_then_repost_reallocates_the_same_user(client, new_tenant, db, settings):
    tenant = await new_tenant(seats=1)
    user = await post_user(client, tenant)
    await run_worker(settings)
    await client.delete(f"/scim/v2/Users/{user['id']}", headers=tenant.headers)
    await run_worker(settings)
    assert await db.fetchval("SELECT license FROM users WHERE id = $1::uuid", user["id"]) is None
    resp = await client.post("/scim/v2/Users", json=user_body(user["userName"]), headers=tenant.headers)
    assert (await resp.json())["id"] == user["id"]
    await run_worker(settings)
    assert await db.fetchval("SELECT license FROM users WHERE id = $1::uuid", user["id"]) == "full"


async def test_raising_seats_promotes_waiting_users_and_lowering_reports_over_allocation(
    client, new_tenant, db, settings
):
    tenant = await new_tenant(seats=1)
    await post_user(client, tenant)
    await run_worker(settings)
    waiting = [await post_user(client, tenant, userType="Full") for _ in range(2)]
    await run_worker(settings)

    resp = await client.patch(f"/admin/v1/tenants/{tenant.id}", json={"seats": 2}, headers=ADMIN_HEADERS)
    assert resp.status == 200
    await run_worker(settings)
    summary = await (
        await client.get(f"/admin/v1/tenants/{tenant.id}/licenses", headers=ADMIN_HEADERS)
    ).json()
    assert summary == {
        "seats": 2,
        "used": 2,
        "free": 0,
        "waiting": [waiting[1]["id"]],
        "over_allocated": False,
    }

    await client.patch(f"/admin/v1/tenants/{tenant.id}", json={"seats": 1}, headers=ADMIN_HEADERS)
    await run_worker(settings)
    summary = await (
        await client.get(f"/admin/v1/tenants/{tenant.id}/licenses", headers=ADMIN_HEADERS)
    ).json()
    assert summary["used"] == 2 and summary["over_allocated"] is True  # no one is downgraded silently
    assert await licenses_of(db, tenant.id) == {"full": 2, "free_restricted": 1}


async def test_manual_license_is_refused_while_scim_is_on_and_works_when_off(
    client, new_tenant, db, settings
):
    tenant = await new_tenant(seats=1)
    user = await post_user(client, tenant)
    other = await post_user(client, tenant)
    await run_worker(settings)
    url = f"/admin/v1/tenants/{tenant.id}/users/{other['id']}/license"
    resp = await client.put(url, json={"license": "full"}, headers=ADMIN_HEADERS)
    assert resp.status == 409 and "managed by SCIM" in (await resp.json())["detail"]

    await client.put(f"/admin/v1/tenants/{tenant.id}/scim", json={"enabled": False}, headers=ADMIN_HEADERS)
    resp = await client.put(url, json={"license": "full"}, headers=ADMIN_HEADERS)
    assert resp.status == 409 and "no seat is free" in (await resp.json())["detail"]
    holder = f"/admin/v1/tenants/{tenant.id}/users/{user['id']}/license"
    resp = await client.put(holder, json={"license": "free"}, headers=ADMIN_HEADERS)
    assert resp.status == 202 and await resp.json() == {
        "user_id": user["id"],
        "license": "free",
        "status": "accepted",
    }
    # The seat is promised to the worker already: assignments not applied yet count.
    assert (await client.put(url, json={"license": "full"}, headers=ADMIN_HEADERS)).status == 202
    resp = await client.put(holder, json={"license": "full"}, headers=ADMIN_HEADERS)
    assert resp.status == 409 and "no seat is free (1 of 1 used)" in (await resp.json())["detail"]
    assert await licenses_of(db, tenant.id) == {"full": 1, "free_restricted": 1}  # the worker applies them
    await run_worker(settings)
    assert await licenses_of(db, tenant.id) == {"full": 1, "free": 1}
    assert await db.fetchval("SELECT license FROM users WHERE id = $1::uuid", other["id"]) == "full"
    resp = await client.put(url, json={"license": "gold"}, headers=ADMIN_HEADERS)
    assert resp.status == 400

    resp = await client.get(
        f"/admin/v1/tenants/{tenant.id}/audit?user_id={other['id']}&limit=1", headers=ADMIN_HEADERS
    )
    page = await resp.json()
    assert [(i["action"], i["actor"], i["detail"]) for i in page["items"]] == [
        ("manual_assignment", "admin", {"from": "free_restricted", "to": "full"})
    ]
    assert page["next_before"] is not None
    resp = await client.get(
        f"/admin/v1/tenants/{tenant.id}/audit?before={page['next_before']}", headers=ADMIN_HEADERS
    )
    assert all(i["id"] < page["next_before"] for i in (await resp.json())["items"])


async def test_an_assignment_that_no_longer_stands_when_the_worker_applies_it_changes_nothing(
    client, new_tenant, db, settings
):
    tenant = await new_tenant(seats=2)
    holder = await post_user(client, tenant)
    other = await post_user(client, tenant)
    await run_worker(settings)
    await client.put(f"/admin/v1/tenants/{tenant.id}/scim", json={"enabled": False}, headers=ADMIN_HEADERS)
    base = f"/admin/v1/tenants/{tenant.id}/users"
    for user, license in ((holder, "free"), (other, "free")):
        resp = await client.put(
            f"{base}/{user['id']}/license", json={"license": license}, headers=ADMIN_HEADERS
        )
        assert resp.status == 202
    await run_worker(settings)
    resp = await client.put(
        f"{base}/{other['id']}/license",
        json={"license": "full"},
        headers={**ADMIN_HEADERS, "X-Request-Id": "late"},
    )
    assert resp.status == 202
    # Seats go to zero before the worker applies the assignment: it is refused then, and says why.
    resp = await client.patch(f"/admin/v1/tenants/{tenant.id}", json={"seats": 0}, headers=ADMIN_HEADERS)
    assert resp.status == 200, await resp.text()
    await run_worker(settings)
    assert await licenses_of(db, tenant.id) == {"free": 2}
    row = await db.fetchrow(
        "SELECT actor, detail, request_id FROM audit_log WHERE user_id = $1::uuid ORDER BY id DESC LIMIT 1",
        other["id"],
    )
    assert (row["actor"], row["request_id"]) == ("admin", "late")
    assert json.loads(row["detail"]) == {
        "from": "free",
        "to": "full",
        "reason": "no seat is free (0 of 0 used): raise seats or free one",
    }


async def test_an_assignment_accepted_before_scim_was_turned_back_on_is_refused_by_the_worker(
    client, new_tenant, db, settings
):
    tenant = await new_tenant(seats=2)
    user = await post_user(client, tenant)
    await run_worker(settings)
    scim = f"/admin/v1/tenants/{tenant.id}/scim"
    await client.put(scim, json={"enabled": False}, headers=ADMIN_HEADERS)
    url = f"/admin/v1/tenants/{tenant.id}/users/{user['id']}/license"
    assert (await client.put(url, json={"license": "free"}, headers=ADMIN_HEADERS)).status == 202
    await client.put(scim, json={"enabled": True}, headers=ADMIN_HEADERS)  # the IdP assigns licenses again
    await run_worker(settings)
    assert await db.fetchval("SELECT license FROM users WHERE id = $1::uuid", user["id"]) == "full"
    row = await db.fetchrow(
        "SELECT action, detail FROM audit_log WHERE user_id = $1::uuid ORDER BY id DESC LIMIT 1", user["id"]
    )
    assert row["action"] == "manual_assignment_refused"
    assert "managed by SCIM" in json.loads(row["detail"])["reason"]


async def test_seat_freed_by_hand_goes_to_the_oldest_waiting_user_through_the_worker(
    client, new_tenant, db, settings
):
    tenant = await new_tenant(seats=1)
    holder = await post_user(client, tenant)
    await run_worker(settings)
    first = await post_user(client, tenant, userType="Full")
    second = await post_user(client, tenant, userType="Full")
    await run_worker(settings)
    await client.put(f"/admin/v1/tenants/{tenant.id}/scim", json={"enabled": False}, headers=ADMIN_HEADERS)

    url = f"/admin/v1/tenants/{tenant.id}/users/{holder['id']}/license"
    resp = await client.put(
        url, json={"license": "free"}, headers={**ADMIN_HEADERS, "X-Request-Id": "free-1"}
    )
    assert resp.status == 202
    await run_worker(settings)
    assert await db.fetchval("SELECT license FROM users WHERE id = $1::uuid", holder["id"]) == "free"
    summary = await (
        await client.get(f"/admin/v1/tenants/{tenant.id}/licenses", headers=ADMIN_HEADERS)
    ).json()
    assert summary["used"] == 1 and summary["waiting"] == [second["id"]]
    promotion = await db.fetchrow(
        "SELECT actor, request_id FROM audit_log WHERE user_id = $1::uuid AND action = 'promotion'",
        first["id"],
    )
    assert dict(promotion) == {"actor": "worker", "request_id": "free-1"}


async def test_admin_user_list_filters_and_csv_export(client, new_tenant, settings):
    import csv
    import io

    tenant = await new_tenant(seats=1)
    full = await post_user(client, tenant, displayName='Quote "Me", Please')
    other = await post_user(client, tenant)
    gone = await post_user(client, tenant)
    await client.delete(f"/scim/v2/Users/{gone['id']}", headers=tenant.headers)
    await run_worker(settings)
    base = f"/admin/v1/tenants/{tenant.id}/users"

    async def ids(query: str) -> list[str]:
        resp = await client.get(f"{base}?{query}", headers=ADMIN_HEADERS)
        assert resp.status == 200, await resp.text()
        return [u["id"] for u in (await resp.json())["items"]]

    assert await ids("") == [full["id"], other["id"], gone["id"]]
    assert await ids("license=full") == [full["id"]]
    assert await ids("license=free_restricted") == [other["id"]]
    assert await ids("state=unlinked") == [gone["id"]]
    assert await ids("state=active&license=none") == []
    assert await ids("q=quote") == [full["id"]]
    assert await ids("limit=1&after=" + full["id"]) == [other["id"]]
    resp = await client.get(f"{base}?state=sleeping", headers=ADMIN_HEADERS)
    assert resp.status == 400
    one = await (await client.get(f"{base}/{full['id']}", headers=ADMIN_HEADERS)).json()
    assert one["license"] == "full" and one["seat"] is True and one["fullName"] == 'Quote "Me", Please'

    resp = await client.get(f"/admin/v1/tenants/{tenant.id}/users.csv", headers=ADMIN_HEADERS)
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert [r["id"] for r in rows] == [full["id"], other["id"], gone["id"]]
    assert rows[0]["fullName"] == 'Quote "Me", Please' and rows[0]["license"] == "full"
    assert rows[2]["state"] == "unlinked" and rows[2]["license"] == "none"


async def test_admin_user_search_with_a_nul_character_is_a_400(client, tenant):
    """Found by schemathesis: `q` with U+0000 reached PostgreSQL (a 500, or a CSV cut off mid-stream)."""
    for path in ("users", "users.csv"):
        resp = await client.get(f"/admin/v1/tenants/{tenant.id}/{path}?q=a%00b", headers=ADMIN_HEADERS)
        assert resp.status == 400, await resp.text()
        body = await resp.json()
        assert body["scimType"] == "invalidValue" and "NUL" in body["detail"]
