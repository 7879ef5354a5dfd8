"""Portal access as its settings make it (README.md, For organization admins): the session cookie over https,
the portal session's lifetime (`SCIMSVC_PORTAL_SESSION_HOURS`), a link's default lifetime
(`SCIMSVC_PORTAL_LINK_MINUTES`), a link that expires on its Continue page, and the admin API's strict
`"redirect"` flag. Expiry is set by SQL, never waited for."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import pytest

from scimsvc.web.app import create_app
from scimsvc.web.console.session import COOKIE
from tests.conftest import ADMIN_HEADERS
from tests.portal import portal_link
from tests.test_portal_access import GONE, LINKS_OF, SESSIONS_OF, csrf_of

SESSION_ROW = "SELECT created_at, expires_at FROM console_sessions WHERE tenant_id = $1"


async def test_over_https_a_portal_link_sets_a_secure_strict_cookie(aiohttp_client, settings, tenant):
    client = await aiohttp_client(
        create_app(dataclasses.replace(settings, public_url="https://scim.example.com"))
    )
    for path, status in (
        (await portal_link(client, tenant.id), 200),  # signs in at once
        (await portal_link(client, tenant.id, redirect=False), 200),  # its Continue page's anonymous session
    ):
        resp = await client.get(path, allow_redirects=False)
        assert resp.status == status, await resp.text()
        cookie = resp.cookies[COOKIE]
        assert cookie["secure"] and cookie["httponly"], path
        assert cookie["samesite"] == "Strict" and cookie["path"] == "/console/", path


async def test_a_portal_session_lasts_the_hours_of_its_setting(aiohttp_client, settings, db, tenant):
    client = await aiohttp_client(create_app(dataclasses.replace(settings, portal_session_hours=1)))
    resp = await client.get(await portal_link(client, tenant.id), allow_redirects=False)
    assert resp.status == 200, await resp.text()
    cookie = resp.cookies[COOKIE]
    # An hour from when the server made it, a few seconds of a slow machine aside; not the default 8.
    assert 3600 - 120 <= int(cookie["max-age"]) <= 3600
    row = await db.fetchrow(SESSION_ROW, uuid.UUID(tenant.id))
    assert dt.timedelta(minutes=58) <= row["expires_at"] - row["created_at"] <= dt.timedelta(hours=1)

    # A copy of the cookie in another browser works until the server's row expires, then goes to sign-in.
    copied = {"Cookie": f"{COOKIE}={cookie.value}"}
    scim = f"/console/tenants/{tenant.id}/scim"
    other = await aiohttp_client(create_app(settings))
    assert (await other.get(scim, headers=copied, allow_redirects=False)).status == 200
    await db.execute(
        "UPDATE console_sessions SET expires_at = now() - interval '1 second' WHERE tenant_id = $1",
        uuid.UUID(tenant.id),
    )
    resp = await other.get(scim, headers=copied, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/console/portal/sign-in"


async def test_a_link_that_expires_on_its_continue_page_signs_nobody_in(client, db, tenant):
    path = await portal_link(client, tenant.id, redirect=False)  # as the console, the CLI and emails make
    page = await client.get(path, allow_redirects=False)
    assert page.status == 200 and "Continue" in await page.text()
    csrf = csrf_of(await page.text())
    await db.execute(
        "UPDATE portal_links SET expires_at = now() - interval '1 second' WHERE tenant_id = $1",
        uuid.UUID(tenant.id),
    )
    resp = await client.post(path, data={"csrf_token": csrf}, allow_redirects=False)
    assert resp.status == 410 and GONE in await resp.text()
    assert COOKIE not in resp.cookies or not resp.cookies[COOKIE].value
    assert await db.fetchval(SESSIONS_OF, uuid.UUID(tenant.id)) == 0
    used = await db.fetchval("SELECT used_at FROM portal_links WHERE tenant_id = $1", uuid.UUID(tenant.id))
    assert used is None
    assert (await client.get(f"/console/tenants/{tenant.id}/scim", allow_redirects=False)).status == 303


async def test_a_link_made_without_minutes_lasts_the_minutes_of_its_setting(
    aiohttp_client, settings, db, tenant
):
    client = await aiohttp_client(create_app(dataclasses.replace(settings, portal_link_minutes=7)))
    resp = await client.post(f"/admin/v1/tenants/{tenant.id}/portal-links", json={}, headers=ADMIN_HEADERS)
    assert resp.status == 201, await resp.text()
    expires_at = dt.datetime.fromisoformat((await resp.json())["expires_at"])
    row = await db.fetchrow(
        "SELECT created_at, expires_at FROM portal_links WHERE tenant_id = $1", uuid.UUID(tenant.id)
    )
    assert row["expires_at"] == expires_at
    assert row["expires_at"] - row["created_at"] == dt.timedelta(minutes=7)


@pytest.mark.parametrize("flag", [1, 0, "yes", "on", "off", "true", "1", 1.0, None, [], {}])
async def test_the_redirect_flag_is_a_json_boolean_or_a_400_naming_it(client, db, tenant, flag):
    resp = await client.post(
        f"/admin/v1/tenants/{tenant.id}/portal-links", json={"redirect": flag}, headers=ADMIN_HEADERS
    )
    assert resp.status == 400, await resp.text()
    body = await resp.json()
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert body["status"] == "400" and body["detail"].startswith("redirect: ")
    assert await db.fetchval(LINKS_OF, uuid.UUID(tenant.id)) == 0


@pytest.mark.parametrize("flag", [True, False])
async def test_the_redirect_flag_takes_true_and_false(client, db, tenant, flag):
    resp = await client.post(
        f"/admin/v1/tenants/{tenant.id}/portal-links", json={"redirect": flag}, headers=ADMIN_HEADERS
    )
    assert resp.status == 201, await resp.text()
    stored = await db.fetchval("SELECT redirect FROM portal_links WHERE tenant_id = $1", uuid.UUID(tenant.id))
    assert stored is flag
