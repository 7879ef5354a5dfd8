"""The console's users list and user page: every attribute, the provisioning state, license history,
notices with their delivery, the latest log and audit entries; and provisionedAt that stays put."""

from __future__ import annotations

import html
from typing import Any

from tests.conftest import (
    ADMIN_HEADERS,
    make_tenant,
    post_user,
    run_worker,
    unique_email,
    user_body,
    wait_until,
)
from tests.test_console import signed_in

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PRODUCT = "urn:scimsvc:schemas:extension:product:2.0:User"


async def page_of(client: Any, path: str) -> tuple[int, str]:
    resp = await client.get(path)
    return resp.status, html.unescape(await resp.text())


async def full_user(client: Any, tenant: Any, manager_id: str) -> dict[str, Any]:
    return await post_user(
        client,
        tenant,
        unique_email("grace"),
        name={
            "givenName": "Grace",
            "middleName": "Brewster",
            "familyName": "Hopper",
            "formatted": "Dr G. Hopper",
        },
        displayName="Grace Hopper",
        emails=[{"value": "grace.home@example.org", "type": "home", "primary": False}],
        userType="Employee",
        externalId="ext-4711",
        roles=[{"value": "board-admin", "primary": True}],
        photos=[{"value": "https://photos.example.com/grace.png", "type": "photo"}],
        schemas=["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        **{
            ENTERPRISE: {
                "employeeNumber": "E-1906",
                "costCenter": "CC-77",
                "organization": "Navy",
                "division": "Computing",
                "department": "Compilers",
                "manager": {"value": manager_id},
            }
        },
    )


async def test_the_user_page_shows_every_attribute_and_links_the_manager(client, tenant, settings):
    boss = await post_user(client, tenant, unique_email("boss"), displayName="The Boss")
    user = await full_user(client, tenant, boss["id"])
    await run_worker(settings)
    await signed_in(client)
    base = f"/console/tenants/{tenant.id}/users"
    status, body = await page_of(client, f"{base}/{user['id']}")
    assert status == 200
    for shown in (
        user["userName"],
        "Grace",
        "Brewster",
        "Hopper",
        "Dr G. Hopper",
        "Grace Hopper",
        "grace.home@example.org",
        "Employee",
        "ext-4711",
        "board-admin",
        "https://photos.example.com/grace.png",
        "E-1906",
        "CC-77",
        "Navy",
        "Computing",
        "Compilers",
    ):
        assert shown in body, shown
    assert f'href="{base}/{boss["id"]}">The Boss</a>' in body
    assert "Applied" in body and 'http-equiv="refresh"' not in body
    assert f"/console/tenants/{tenant.id}/log?user={user['id']}" in body
    assert f"/console/tenants/{tenant.id}/audit?user={user['id']}" in body
    assert "tenant" not in body.split("<main", 1)[1].lower().replace("/console/tenants/", "")


async def test_a_user_the_worker_has_not_applied_is_pending_in_the_list_and_on_its_page(
    client, tenant, settings
):
    user = await post_user(client, tenant)
    await signed_in(client)
    base = f"/console/tenants/{tenant.id}/users"
    status, listing = await page_of(client, base)
    assert status == 200
    row = listing.split(user["userName"], 1)[1].split("</tr>", 1)[0]
    assert "pending" in row and "none" not in row
    assert f'href="{base}/{user["id"]}"' in listing
    status, body = await page_of(client, f"{base}/{user['id']}")
    assert "applying…" in body and 'http-equiv="refresh"' in body
    await run_worker(settings)
    status, listing = await page_of(client, base)
    row = listing.split(user["userName"], 1)[1].split("</tr>", 1)[0]
    assert "pending" not in row and "Full license" in row


async def test_a_failed_apply_shows_its_error(client, tenant, db):
    user = await post_user(client, tenant)
    await db.execute(
        "UPDATE outbox SET attempts = 3, last_error = 'boom: the worker fell over' "
        "WHERE resource_id = $1::uuid AND applied_at IS NULL",
        user["id"],
    )
    await signed_in(client)
    status, body = await page_of(client, f"/console/tenants/{tenant.id}/users/{user['id']}")
    assert (
        status == 200 and "failed" in body and "boom: the worker fell over" in body and "3 attempts" in body
    )


async def test_license_history_waiting_place_and_notices_with_their_delivery(client, settings, db):
    tenant = await make_tenant(client, seats=1)
    first = await post_user(client, tenant, userType="Full")
    second = await post_user(client, tenant, userType="Full")
    await run_worker(settings)
    # An email change (a new userName) writes a notice to each address; with no SMTP they are not sent.
    new_name = unique_email("renamed")
    resp = await client.patch(
        f"/scim/v2/Users/{second['id']}",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "userName", "value": new_name}],
        },
        headers=tenant.headers,
    )
    assert resp.status in (200, 204), await resp.text()
    await run_worker(settings)
    await wait_until(
        lambda: db.fetchval(
            "SELECT count(*) = 2 FROM notices WHERE user_id = $1::uuid AND status <> 'pending'", second["id"]
        ),
        what="the notices delivered",
    )
    await signed_in(client)
    base = f"/console/tenants/{tenant.id}/users"
    _, body = await page_of(client, f"{base}/{first['id']}")
    history = body.split('id="license-history"', 1)[1].split("</table>", 1)[0]
    assert "Seat given (full license)" in history
    _, body = await page_of(client, f"{base}/{second['id']}")
    history = body.split('id="license-history"', 1)[1].split("</table>", 1)[0]
    assert "Joined the waiting list" in history
    assert "number 1 in line" in body
    notices = body.split('id="notices-table"', 1)[1].split("</table>", 1)[0]
    assert second["userName"] in notices and new_name in notices
    assert notices.count("not sent: no mail server is set up") == 2
    assert notices.count('class="delivery-not_sent"') == 2
    # A failed delivery shows as failed with its attempts.
    await db.execute(
        "UPDATE notices SET status = 'failed', attempts = 5 WHERE user_id = $1::uuid AND to_address = $2",
        second["id"],
        new_name,
    )
    _, body = await page_of(client, f"{base}/{second['id']}")
    notices = body.split('id="notices-table"', 1)[1].split("</table>", 1)[0]
    assert 'class="delivery-failed"' in notices and "<td>5</td>" in notices
    # The provisioning log of this user, latest first.
    await wait_until(
        lambda: db.fetchval(
            "SELECT count(*) >= 2 FROM provisioning_log "
            "WHERE tenant_id = $1::uuid AND resource_id = $2::uuid",
            tenant.id,
            second["id"],
        ),
        what="the user's provisioning log rows",
    )
    _, body = await page_of(client, f"{base}/{second['id']}")
    log = body.split('id="user-log"', 1)[1].split("</table>", 1)[0]
    assert "PATCH" in log and "POST" in log
    audit = body.split('id="user-audit"', 1)[1].split("</table>", 1)[0]
    assert "Email address changed" in audit


async def test_provisioned_at_stays_the_first_provisioning_time(client, tenant, settings, db):
    user = await post_user(client, tenant)
    await run_worker(settings)
    first = await (await client.get(f"/scim/v2/Users/{user['id']}", headers=tenant.headers)).json()
    provisioned = first[PRODUCT]["provisionedAt"]
    assert provisioned
    resp = await client.patch(
        f"/scim/v2/Users/{user['id']}",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "displayName", "value": "Changed later"}],
        },
        headers=tenant.headers,
    )
    assert resp.status in (200, 204)
    await run_worker(settings)
    later = await (await client.get(f"/scim/v2/Users/{user['id']}", headers=tenant.headers)).json()
    assert later[PRODUCT]["provisioningState"] == "provisioned"
    assert later[PRODUCT]["provisionedAt"] == provisioned
    assert later["meta"]["lastModified"] > first["meta"]["lastModified"]
    resp = await client.get(f"/admin/v1/tenants/{tenant.id}/users/{user['id']}", headers=ADMIN_HEADERS)
    assert (await resp.json())["provisionedAt"] == provisioned
    row = await db.fetchrow("SELECT provisioned_at, updated_at FROM users WHERE id = $1::uuid", user["id"])
    assert row["provisioned_at"] < row["updated_at"]


async def test_provisioned_at_is_set_only_when_the_user_is_first_provisioned(client, tenant, settings, db):
    resp = await client.post(
        "/scim/v2/Users", json=user_body(unique_email(), active=False), headers=tenant.headers
    )
    assert resp.status == 201
    user_id = (await resp.json())["id"]
    await run_worker(settings)
    row = await db.fetchrow(
        "SELECT provisioning_state, provisioned_at FROM users WHERE id = $1::uuid", user_id
    )
    assert (row["provisioning_state"], row["provisioned_at"]) == ("deprovisioned", None)
    shown = await (await client.get(f"/scim/v2/Users/{user_id}", headers=tenant.headers)).json()
    assert shown[PRODUCT].get("provisionedAt") is None
    patch = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": True}],
    }
    assert (await client.patch(f"/scim/v2/Users/{user_id}", json=patch, headers=tenant.headers)).status in (
        200,
        204,
    )
    await run_worker(settings)
    row = await db.fetchrow(
        "SELECT provisioning_state, provisioned_at FROM users WHERE id = $1::uuid", user_id
    )
    assert row["provisioning_state"] == "provisioned" and row["provisioned_at"] is not None


async def test_another_organizations_user_is_not_found(client, tenant, settings):
    other = await make_tenant(client)
    foreign = await post_user(client, other)
    mine = await post_user(client, tenant)
    await signed_in(client)
    assert (await client.get(f"/console/tenants/{tenant.id}/users/{foreign['id']}")).status == 404
    assert (await client.get(f"/console/tenants/{tenant.id}/users/{mine['id']}")).status == 200
    assert (await client.get(f"/console/tenants/{tenant.id}/users/not-an-id")).status == 404
    assert (await client.get(f"/console/tenants/{other.id}/users/{mine['id']}")).status == 404
    resp = await client.get(f"/admin/v1/tenants/{tenant.id}/users/{foreign['id']}", headers=ADMIN_HEADERS)
    assert resp.status == 404


async def test_teams_and_users_pages_speak_japanese_when_the_browser_asks(client, tenant, settings):
    user = await post_user(client, tenant)
    await run_worker(settings)
    await signed_in(client)
    ja = {"Accept-Language": "ja,en;q=0.5"}
    base = f"/console/tenants/{tenant.id}"
    for path, text in (
        (f"{base}/teams", "チームを作成"),
        (f"{base}/users", "これらのユーザーを CSV でダウンロード"),
        (f"{base}/users/{user['id']}", "ライセンスの履歴"),
    ):
        resp = await client.get(path, headers=ja)
        assert resp.status == 200 and text in await resp.text(), path
