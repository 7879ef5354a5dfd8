"""Portal access after its security review: the hourly bound of sign-in emails under concurrency, the
console without PostgreSQL (a 503 page, no token in the log), ending access ending every way in, links
that sign in on a GET (only `"redirect": true` ones), bad input, the session lifecycle (operator sign-in,
signing out twice, the audit of a link opened), the token's page sending no referrer, the indexes and the
fixed retention window of sessions and links."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from scimsvc.services.portal import resolve_sign_in_requests
from scimsvc.store.db import create_pool
from scimsvc.web.app import create_app
from scimsvc.web.console.session import COOKIE
from tests.conftest import ADMIN_HEADERS, make_tenant, proxied_url, unique_email, wait_until
from tests.portal import portal_link, portal_session
from tests.test_portal_access import GONE, SESSIONS_OF, ask_for_link, audit_of, csrf_of, operator
from worker.retention import purge_expired

LINKS_TO = "SELECT count(*) FROM portal_links WHERE email = $1"


@pytest.fixture
async def pool(settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(settings.database_url, min_size=1, max_size=12)
    yield pool
    await pool.close()


async def register(client: Any, tenant_id: str, address: str) -> None:
    resp = await client.post(
        f"/admin/v1/tenants/{tenant_id}/org-admins", json={"email": address}, headers=ADMIN_HEADERS
    )
    assert resp.status in (200, 201), await resp.text()


async def opens_on_get(client: Any, path: str) -> bool:
    """Whether a GET of the link signs in (True) or shows the Continue page (False); fails otherwise."""
    resp = await client.get(path, allow_redirects=False)
    assert resp.status == 200, await resp.text()
    text = await resp.text()
    assert ("Continue to" in text) != ('http-equiv="refresh"' in text), text
    return 'http-equiv="refresh"' in text


# --- 2: the hourly bound holds under concurrency ---------------------------------------------------


async def test_thirty_requests_at_once_for_one_address_send_five_emails(client, db, settings, pool, tenant):
    address = unique_email("crowd")
    other = await make_tenant(client)
    await register(client, tenant.id, address)
    await register(client, other.id, address)  # two organizations: 2 links a request, within the bound

    answers = await asyncio.gather(*(ask_for_link(client, address) for _ in range(30)))
    assert {a.status for a in answers} == {303}
    assert await db.fetchval("SELECT count(*) FROM portal_sign_in_requests WHERE email = $1", address) == 30
    # Resolved by ten workers at once, each request in a transaction of its own.
    await asyncio.gather(*(resolve_sign_in_requests(pool, settings) for _ in range(10)))
    assert await db.fetchval("SELECT count(*) FROM portal_sign_in_requests WHERE email = $1", address) == 0
    # The bound counts the links of the last hour before each insert: 4 < 5 lets one more request in,
    # which makes one per organization (so 6 here), and nothing after that, however many ran at once.
    assert await db.fetchval(LINKS_TO, address) == 6
    assert await db.fetchval("SELECT count(*) FROM notices WHERE to_address = $1", address) == 6


# --- 3: PostgreSQL down ----------------------------------------------------------------------------


async def test_without_postgres_the_console_answers_503_pages_and_logs_no_token(
    aiohttp_client, settings, pg_proxy, caplog
):
    own = dataclasses.replace(settings, database_url=proxied_url(pg_proxy, settings.database_url))
    client = await aiohttp_client(create_app(own))
    tenant = await make_tenant(client)
    path = await portal_link(client, tenant.id, redirect=False)
    token = path.rsplit("/", 1)[1]
    await operator(client)  # an operator's session: each console page looks it up
    caplog.set_level(logging.INFO)
    try:
        await pg_proxy.refuse()
        await pg_proxy.cut()
        for target in (path, "/console/tenants", "/console/portal/sign-in"):
            resp = await client.get(target, allow_redirects=False)
            text = await resp.text()
            assert resp.status == 503, (target, text)
            assert int(resp.headers["Retry-After"]) > 0
            assert resp.headers["Content-Type"].startswith("text/html") and "database" in text
        resp = await client.post(path, data={"csrf_token": "x"}, allow_redirects=False)
        assert resp.status == 503
    finally:
        await pg_proxy.forward()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], "a traceback was logged"
    assert all(token not in r.getMessage() for r in caplog.records), "the token reached a log line"
    assert any("{token}" in r.getMessage() for r in caplog.records if "unavailable" in r.getMessage())
    # The same app recovers by itself: the link is unused, so it still opens.
    await wait_until(
        lambda: _status(client, path, 200), what="the console to reach PostgreSQL again", every=0.2
    )


async def _status(client: Any, path: str, status: int) -> bool:
    return (await client.get(path, allow_redirects=False)).status == status


# --- 4: ending access ends every way in ----------------------------------------------------------------


async def test_ending_every_session_also_retires_unused_links(aiohttp_client, settings, client, db, pool):
    tenant, other = await make_tenant(client), await make_tenant(client)
    admin = await aiohttp_client(create_app(settings))
    await portal_session(admin, tenant.id)
    unused = [
        await portal_link(client, tenant.id),
        await portal_link(client, tenant.id, redirect=False, minutes=7 * 24 * 60),
    ]
    others = await portal_link(client, other.id)
    address = unique_email("emailed")
    await register(client, tenant.id, address)
    await ask_for_link(client, address)
    await resolve_sign_in_requests(pool, settings)
    assert await db.fetchval(LINKS_TO, address) == 1  # emailed, not sent yet

    resp = await client.delete(f"/admin/v1/tenants/{tenant.id}/portal-sessions", headers=ADMIN_HEADERS)
    assert resp.status == 200 and await resp.json() == {"ended": 1, "links_retired": 3}
    [row] = await audit_of(db, tenant.id, "portal_sessions_ended")
    assert row["detail"] == {"ended": 1, "links_retired": 3}
    stranger = await aiohttp_client(create_app(settings))
    for path in unused:
        resp = await stranger.get(path, allow_redirects=False)
        assert resp.status == 410 and GONE in await resp.text()
    assert await db.fetchval(SESSIONS_OF, uuid.UUID(tenant.id)) == 1  # only the ended one
    usable = (
        "SELECT count(*) FROM portal_links WHERE tenant_id = $1 AND used_at IS NULL AND expires_at > now()"
    )
    assert await db.fetchval(usable, uuid.UUID(tenant.id)) == 0
    assert await opens_on_get(stranger, others)  # another organization's link is untouched

    # The console: the same, and its notice says so.
    later = await portal_link(client, tenant.id)
    csrf = await operator(client)
    confirm = await client.get(f"/console/tenants/{tenant.id}/portal/end-sessions")
    assert "not used yet stops working too" in await confirm.text()
    resp = await client.post(f"/console/tenants/{tenant.id}/portal/end-sessions", data={"csrf_token": csrf})
    assert resp.status == 200 and "unused portal links no longer work" in await resp.text()
    assert (await stranger.get(later, allow_redirects=False)).status == 410


async def test_removing_an_admin_address_ends_its_sessions_and_links(aiohttp_client, settings, client, db):
    tenant = await make_tenant(client)
    gone, kept = unique_email("leaver"), unique_email("stayer")
    for address in (gone, kept):
        await register(client, tenant.id, address)
    leaver = await aiohttp_client(create_app(settings))
    stayer = await aiohttp_client(create_app(settings))
    await portal_session(leaver, tenant.id, email=gone.upper())
    await portal_session(stayer, tenant.id, email=kept)
    leavers_link = await portal_link(client, tenant.id, email=gone)
    stayers_link = await portal_link(client, tenant.id, email=kept, redirect=False)

    resp = await client.delete(
        f"/admin/v1/tenants/{tenant.id}/org-admins/{gone.upper()}", headers=ADMIN_HEADERS
    )
    assert resp.status == 204
    scim = f"/console/tenants/{tenant.id}/scim"
    resp = await leaver.get(scim, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/console/portal/sign-in"
    assert (await stayer.get(scim, allow_redirects=False)).status == 200
    fresh = await aiohttp_client(create_app(settings))
    assert (await fresh.get(leavers_link, allow_redirects=False)).status == 410
    assert not await opens_on_get(fresh, stayers_link)  # still usable (its Continue page)
    [row] = await audit_of(db, tenant.id, "org_admin_removed")
    assert row["detail"] == {"email": gone, "sessions_ended": 1, "links_retired": 1}

    # The console's remove form: the same for the other address.
    csrf = await operator(client)
    resp = await client.post(
        f"/console/tenants/{tenant.id}/portal/admins/remove", data={"csrf_token": csrf, "email": kept}
    )
    assert resp.status == 200 and "Its portal sessions have ended" in await resp.text()
    assert (await stayer.get(scim, allow_redirects=False)).status == 303
    assert (await fresh.get(stayers_link, allow_redirects=False)).status == 410


# --- 5: which links sign in on a GET -----------------------------------------------------------------


async def test_only_a_redirect_link_signs_in_on_a_get(aiohttp_client, settings, client, db, tenant):
    visitor = await aiohttp_client(create_app(settings))
    plain = await portal_link(client, tenant.id, redirect=False)
    for _ in range(2):  # a mail scanner, a chat preview: the link stays unused
        assert not await opens_on_get(visitor, plain)
    assert await db.fetchval(SESSIONS_OF, uuid.UUID(tenant.id)) == 0

    csrf = await operator(client)
    resp = await client.post(
        f"/console/tenants/{tenant.id}/portal/links", data={"csrf_token": csrf}, allow_redirects=False
    )
    text = await (await client.get(resp.headers["Location"])).text()
    [console_link] = re.findall(r"/console/portal/[A-Za-z0-9_-]{20,}", text)
    assert not await opens_on_get(visitor, console_link)
    assert await db.fetchval(SESSIONS_OF, uuid.UUID(tenant.id)) == 0

    made = await client.post(
        f"/admin/v1/tenants/{tenant.id}/portal-links", json={"redirect": True}, headers=ADMIN_HEADERS
    )
    assert made.status == 201
    [audited] = [
        a for a in await audit_of(db, tenant.id, "portal_link_created") if a["detail"].get("redirect")
    ]
    assert audited["actor"] == "admin"
    redirect = "/console/portal/" + (await made.json())["url"].rsplit("/", 1)[1]
    assert await opens_on_get(visitor, redirect)
    assert await db.fetchval(SESSIONS_OF, uuid.UUID(tenant.id)) == 1
    bad = await client.post(
        f"/admin/v1/tenants/{tenant.id}/portal-links", json={"redirect": "maybe"}, headers=ADMIN_HEADERS
    )
    assert bad.status == 400 and "redirect" in await bad.text()


async def test_pages_with_a_token_in_their_url_send_no_referrer(client, tenant):
    path = await portal_link(client, tenant.id, redirect=False)
    for method in ("GET", "HEAD"):
        resp = await client.request(method, path, allow_redirects=False)
        assert resp.status == 200 and resp.headers["Referrer-Policy"] == "no-referrer"
    gone = await client.get("/console/portal/" + "x" * 43, allow_redirects=False)
    assert gone.status == 410 and gone.headers["Referrer-Policy"] == "no-referrer"
    other = await client.get("/console/login")
    assert other.headers["Referrer-Policy"] == "same-origin"


# --- 7: bad input ------------------------------------------------------------------------------------


async def test_bad_minutes_and_addresses_are_clear_errors_and_change_nothing(client, db, tenant):
    address = unique_email("kept")
    await register(client, tenant.id, address)
    csrf = await operator(client)
    tab = f"/console/tenants/{tenant.id}/portal"
    for minutes in ("²", "١٢", "1e3", "-5"):
        resp = await client.post(f"{tab}/links", data={"csrf_token": csrf, "minutes": minutes})
        assert resp.status == 400 and "minutes" in await resp.text(), minutes
    assert (
        await db.fetchval("SELECT count(*) FROM portal_links WHERE tenant_id = $1", uuid.UUID(tenant.id)) == 0
    )

    base = f"/admin/v1/tenants/{tenant.id}/org-admins"
    for raw in ("%00", "a%00b%40example.com", "x" * 400, unique_email("never")):
        resp = await client.delete(f"{base}/{raw}", headers=ADMIN_HEADERS)
        assert resp.status == 404, (raw, await resp.text())
        assert "not a registered admin address" in (await resp.json())["detail"]
    for email in ("a\x00b@example.com", "\x00", unique_email("never")):
        resp = await client.post(f"{tab}/admins/remove", data={"csrf_token": csrf, "email": email})
        text = await resp.text()
        assert resp.status == 404 and "is not a registered admin address" in text
        assert "\x00" not in text
    assert (
        await db.fetchval("SELECT count(*) FROM org_admins WHERE tenant_id = $1", uuid.UUID(tenant.id)) == 1
    )
    assert await audit_of(db, tenant.id, "org_admin_removed") == []


# --- 8: the session lifecycle ------------------------------------------------------------------------


async def test_operator_sign_in_ends_the_portal_session_the_browser_held(client, db, tenant):
    await portal_session(client, tenant.id)
    assert await db.fetchval(SESSIONS_OF + " AND ended_at IS NULL", uuid.UUID(tenant.id)) == 1
    await operator(client)
    assert await db.fetchval(SESSIONS_OF + " AND ended_at IS NULL", uuid.UUID(tenant.id)) == 0
    operators = "SELECT count(*) FROM console_sessions WHERE tenant_id IS NULL AND ended_at IS NULL"
    before = await db.fetchval(operators)
    await operator(client)  # signing in again ends the earlier operator session
    assert await db.fetchval(operators) == before


async def test_signing_out_of_an_ended_session_goes_to_sign_in(aiohttp_client, settings, client, db, tenant):
    admin = await aiohttp_client(create_app(settings))
    portal = await portal_session(admin, tenant.id)
    await client.delete(f"/admin/v1/tenants/{tenant.id}/portal-sessions", headers=ADMIN_HEADERS)
    resp = await admin.post("/console/logout", data={"csrf_token": portal.csrf}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/console/portal/sign-in"
    assert resp.cookies[COOKIE].value == ""  # dropped

    csrf = await operator(client)
    first = await client.post("/console/logout", data={"csrf_token": csrf}, allow_redirects=False)
    assert first.status == 303 and first.headers["Location"] == "/console/login"
    again = await client.post("/console/logout", data={"csrf_token": csrf}, allow_redirects=False)
    assert again.status == 303 and again.headers["Location"] == "/console/login"
    # A live session still needs its form's token to sign out.
    await operator(client)
    forged = await client.post("/console/logout", data={"csrf_token": "forged"}, allow_redirects=False)
    assert forged.status == 403


async def test_opening_a_link_is_audited_as_the_organization_admin(client, db, tenant):
    address = unique_email("opener")
    path = await portal_link(client, tenant.id, email=address, redirect=False)
    page = await client.get(path)
    resp = await client.post(path, data={"csrf_token": csrf_of(await page.text())}, allow_redirects=False)
    assert resp.status == 303
    link_id = await db.fetchval("SELECT id FROM portal_links WHERE email = $1", address)
    [row] = await audit_of(db, tenant.id, "portal_session_started")
    assert row["actor"] == "org_admin" and row["request_id"]
    assert row["detail"] == {"link_id": str(link_id), "emailed": False, "by": address}
    # A used link writes nothing more.
    assert (await client.post(path, data={"csrf_token": csrf_of(await page.text())})).status in (403, 410)
    assert len(await audit_of(db, tenant.id, "portal_session_started")) == 1


# --- 10: indexes and retention -----------------------------------------------------------------------


async def test_the_review_indexes_exist(db):
    names = {r["indexname"] for r in await db.fetch("SELECT indexname FROM pg_indexes")}
    assert {"notices_portal_link", "portal_links_tenant", "console_sessions_tenant"} <= names


async def test_sessions_and_links_go_a_day_after_expiry_whatever_the_notices_window(
    aiohttp_client, settings, client, db, pool
):
    tenant = await make_tenant(client)
    await portal_session(await aiohttp_client(create_app(settings)), tenant.id)
    await portal_link(client, tenant.id)  # unused, not expired: stays
    await db.execute(
        "UPDATE console_sessions SET expires_at = now() - interval '2 days' WHERE tenant_id = $1",
        uuid.UUID(tenant.id),
    )
    await db.execute(
        "UPDATE portal_links SET expires_at = now() - interval '2 days' "
        "WHERE tenant_id = $1 AND used_at IS NOT NULL",
        uuid.UUID(tenant.id),
    )
    keep_notices = dataclasses.replace(settings, retention_notices_days=0)
    removed = await purge_expired({"pool": pool, "settings": keep_notices, "redis": None})
    assert removed["console_sessions"] >= 1 and removed["portal_links"] >= 1
    assert await db.fetchval(SESSIONS_OF, uuid.UUID(tenant.id)) == 0
    assert (
        await db.fetchval("SELECT count(*) FROM portal_links WHERE tenant_id = $1", uuid.UUID(tenant.id)) == 1
    )
