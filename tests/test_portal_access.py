"""Portal access for organization admins: links (admin API, CLI, console), single use and expiry, sign-in
links by email through a real SMTP server, sessions ended on the server, and a portal session held to
its own organization's marked pages."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import html
import json
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from scimsvc.services import tokens
from scimsvc.store.db import create_pool
from scimsvc.web.admin_requests import action_scope, tenant_id_of
from scimsvc.web.app import create_app
from scimsvc.web.console.roles import for_org_admins
from scimsvc.web.console.session import COOKIE
from tests.conftest import (
    ADMIN_HEADERS,
    ADMIN_KEY,
    PUBLIC_URL,
    make_tenant,
    run_scimsvc,
    run_worker,
    service_env,
    unique_email,
)
from tests.portal import CSRF, portal_link, portal_session
from worker.retention import purge_expired
from worker.sign_in_links import resolve_sign_in_requests

SESSIONS_OF = "SELECT count(*) FROM console_sessions WHERE tenant_id = $1"
LINKS_OF = "SELECT count(*) FROM portal_links WHERE tenant_id = $1"
GONE = "This link has expired or was already used; ask for a new one."


def csrf_of(body: str) -> str:
    found = CSRF.search(body)
    assert found, "no CSRF token on the page"
    return html.unescape(found.group(1))


def sha256(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


async def operator(client: Any) -> str:
    """Sign `client` in as the operator; the CSRF token of its session."""
    form = await client.get("/console/login")
    resp = await client.post(
        "/console/login",
        data={"csrf_token": csrf_of(await form.text()), "key": ADMIN_KEY},
        allow_redirects=False,
    )
    assert resp.status == 303
    return csrf_of(await (await client.get("/console/tenants")).text())


async def audit_of(db: asyncpg.Connection, tenant_id: str, action: str) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT actor, detail, request_id FROM audit_log WHERE tenant_id = $1 AND action = $2 ORDER BY id",
        uuid.UUID(tenant_id),
        action,
    )
    return [{**dict(r), "detail": json.loads(r["detail"])} for r in rows]


# --- links ------------------------------------------------------------------------------------------


async def test_an_api_link_opens_once_into_a_session_of_its_organization(client, db, tenant):
    resp = await client.post(
        f"/admin/v1/tenants/{tenant.id}/portal-links", json={"redirect": True}, headers=ADMIN_HEADERS
    )
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert body["url"].startswith(f"{PUBLIC_URL}/console/portal/") and body["email"] is None
    token = body["url"].rsplit("/", 1)[1]
    row = await db.fetchrow(
        "SELECT token_hash, used_at FROM portal_links WHERE tenant_id = $1", uuid.UUID(tenant.id)
    )
    assert row["token_hash"] == sha256(token) and row["used_at"] is None  # only its hash is kept
    [audited] = await audit_of(db, tenant.id, "portal_link_created")
    assert audited["actor"] == "admin" and token not in str(audited["detail"])

    assert (await client.head(f"/console/portal/{token}")).status == 200  # a link checker uses nothing up
    resp = await client.get(f"/console/portal/{token}", allow_redirects=False)
    # A page that moves on by itself: a 303 would lose the SameSite=Strict cookie after another site's
    # redirect (tests/test_portal_browser.py).
    assert resp.status == 200
    assert f'content="0; url=/console/tenants/{tenant.id}/scim"' in await resp.text()
    cookie = resp.cookies[COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/console/"
    assert 0 < int(cookie["max-age"]) <= 8 * 3600
    session = await db.fetchrow(
        "SELECT tenant_id, email, ended_at FROM console_sessions ORDER BY created_at DESC LIMIT 1"
    )
    assert session["tenant_id"] == uuid.UUID(tenant.id) and session["ended_at"] is None
    page = await client.get(f"/console/tenants/{tenant.id}/scim")
    assert page.status == 200 and tenant.id in await page.text()

    client.session.cookie_jar.clear()
    again = await client.get(f"/console/portal/{token}", allow_redirects=False)
    assert again.status == 410 and GONE in await again.text()
    assert COOKIE not in again.cookies
    assert (
        await db.fetchval("SELECT count(*) FROM console_sessions WHERE tenant_id = $1", uuid.UUID(tenant.id))
        == 1
    )


async def test_an_expired_or_unknown_link_signs_nobody_in(client, db, tenant):
    path = await portal_link(client, tenant.id, minutes=5)
    await db.execute(
        "UPDATE portal_links SET expires_at = now() - interval '1 second' WHERE tenant_id = $1",
        uuid.UUID(tenant.id),
    )
    for target in (path, "/console/portal/no-such-link", "/console/portal/" + "A" * 43):
        resp = await client.get(target, allow_redirects=False)
        assert resp.status == 410, target
        assert GONE in await resp.text()
        assert COOKIE not in resp.cookies or not resp.cookies[COOKIE].value
    assert (
        await db.fetchval("SELECT count(*) FROM console_sessions WHERE tenant_id = $1", uuid.UUID(tenant.id))
        == 0
    )


async def test_a_link_for_a_named_admin_carries_the_address_into_the_session_and_the_audit(
    aiohttp_client, settings, db
):
    # A portal action (any page marked for organization admins) is audited as the organization admin's.
    app = create_app(settings)

    @for_org_admins
    async def issue(request: Any) -> Any:
        from aiohttp import web

        await tokens.create_token(action_scope(request), tenant_id_of(request), label="from the portal")
        raise web.HTTPSeeOther(f"/console/tenants/{request.match_info['tid']}/scim")

    app.router.add_post("/console/tenants/{tid}/test-portal-action", issue)
    client = await aiohttp_client(app)
    tenant = await make_tenant(client)
    resp = await client.post(
        f"/admin/v1/tenants/{tenant.id}/portal-links",
        json={"email": "Ada.Admin@Example.COM", "minutes": 30},
        headers=ADMIN_HEADERS,
    )
    assert resp.status == 201 and (await resp.json())["email"] == "ada.admin@example.com"
    portal = await portal_session(client, tenant.id, email="Ada.Admin@Example.COM")
    assert (
        await db.fetchval("SELECT email FROM console_sessions WHERE tenant_id = $1", uuid.UUID(tenant.id))
        == "ada.admin@example.com"
    )

    resp = await client.post(
        f"/console/tenants/{tenant.id}/test-portal-action",
        data={"csrf_token": portal.csrf},
        allow_redirects=False,
    )
    assert resp.status == 303, await resp.text()
    [row] = [r for r in await audit_of(db, tenant.id, "token_created") if r["detail"]["label"]]
    assert row["actor"] == "org_admin" and row["detail"]["by"] == "ada.admin@example.com"
    assert row["request_id"]

    other = await make_tenant(client)  # the same marked action for another organization: 404, nothing done
    resp = await client.post(
        f"/console/tenants/{other.id}/test-portal-action",
        data={"csrf_token": portal.csrf},
        allow_redirects=False,
    )
    assert resp.status == 404
    assert len(await audit_of(db, other.id, "token_created")) == 1  # make_tenant's own token only


async def test_bad_link_requests_are_400_or_404_and_make_nothing(client, db, tenant):
    for body in (
        {"minutes": 0},
        {"minutes": 10081},
        {"email": "not-an-address"},
        {"colour": "red"},
        {"minutes": "5"},
    ):
        resp = await client.post(
            f"/admin/v1/tenants/{tenant.id}/portal-links", json=body, headers=ADMIN_HEADERS
        )
        assert resp.status == 400, body
    missing = uuid.uuid4()
    resp = await client.post(f"/admin/v1/tenants/{missing}/portal-links", headers=ADMIN_HEADERS)
    assert resp.status == 404
    resp = await client.post(f"/admin/v1/tenants/{tenant.id}/portal-links")  # no operator key
    assert resp.status == 401
    assert (
        await db.fetchval("SELECT count(*) FROM portal_links WHERE tenant_id = $1", uuid.UUID(tenant.id)) == 0
    )


async def test_the_cli_prints_a_link_that_opens_the_portal(client, settings, db, tenant):
    env = service_env(
        settings.database_url, queue_name=settings.queue_name, SCIMSVC_PUBLIC_URL="https://scim.example.com"
    )
    out = run_scimsvc("portal-link", tenant.id, "--email", "it@customer.example", "--minutes", "20", env=env)
    assert out.returncode == 0, out.stderr
    url = out.stdout.strip()
    assert url.startswith("https://scim.example.com/console/portal/")
    token = url.rsplit("/", 1)[1]
    row = await db.fetchrow(
        "SELECT email, expires_at - created_at AS lasts FROM portal_links WHERE token_hash = $1",
        sha256(token),
    )
    assert row["email"] == "it@customer.example" and row["lasts"].total_seconds() == 20 * 60
    [audited] = await audit_of(db, tenant.id, "portal_link_created")
    assert audited["actor"] == "admin" and audited["request_id"] is None
    # A CLI link is sent to someone: its GET asks to continue (a mail scanner uses nothing up).
    resp = await client.get(f"/console/portal/{token}", allow_redirects=False)
    assert resp.status == 200 and "Continue to" in await resp.text()
    assert await db.fetchval(SESSIONS_OF, uuid.UUID(tenant.id)) == 0
    resp = await client.post(
        f"/console/portal/{token}", data={"csrf_token": csrf_of(await resp.text())}, allow_redirects=False
    )
    assert resp.status == 303 and resp.headers["Location"] == f"/console/tenants/{tenant.id}/scim"
    bad = run_scimsvc("portal-link", tenant.id, "--minutes", "0", env=env)
    assert bad.returncode == 2 and "minutes" in bad.stderr
    missing = run_scimsvc("portal-link", str(uuid.uuid4()), env=env)
    assert missing.returncode == 1 and "no tenant" in missing.stderr


async def test_the_console_tab_shows_a_new_link_once_and_a_reload_makes_no_other(client, db, tenant):
    csrf = await operator(client)
    tab = f"/console/tenants/{tenant.id}/portal"
    resp = await client.post(
        f"{tab}/links",
        data={"csrf_token": csrf, "email": "it@customer.example", "minutes": "10"},
        allow_redirects=False,
    )
    assert resp.status == 303 and resp.headers["Location"] == f"{tab}?done=portal-link-created"
    handed = resp.cookies["scimsvc_portal_link"]
    assert handed["httponly"] and handed["samesite"] == "Strict" and handed["path"] == tab
    page = await client.get(resp.headers["Location"])
    text = await page.text()
    [url] = re.findall(r"https?://[^\s<\"]+/console/portal/[A-Za-z0-9_-]+", text)
    assert "it@customer.example" in text
    reload = await client.get(resp.headers["Location"])
    assert url not in await reload.text()
    assert (
        await db.fetchval("SELECT count(*) FROM portal_links WHERE tenant_id = $1", uuid.UUID(tenant.id)) == 1
    )
    bad = await client.post(f"{tab}/links", data={"csrf_token": csrf, "minutes": "soon"})
    assert bad.status == 400 and "minutes" in await bad.text()

    client.session.cookie_jar.clear()
    opened = await client.get("/console/portal/" + url.rsplit("/", 1)[1], allow_redirects=False)
    assert opened.status == 200 and COOKIE in opened.cookies


# --- sessions that end -------------------------------------------------------------------------------


async def test_signing_out_ends_the_session_on_the_server_and_a_copied_cookie_goes_to_sign_in(
    aiohttp_client, settings, client, db, tenant
):
    portal = await portal_session(client, tenant.id)
    thief = await aiohttp_client(create_app(settings))
    scim = f"/console/tenants/{tenant.id}/scim"
    assert (await thief.get(scim, cookies={COOKIE: portal.cookie}, allow_redirects=False)).status == 200

    resp = await client.post("/console/logout", data={"csrf_token": portal.csrf}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/console/portal/sign-in"
    assert (
        await db.fetchval(
            "SELECT count(*) FROM console_sessions WHERE tenant_id = $1 AND ended_at IS NOT NULL",
            uuid.UUID(tenant.id),
        )
        == 1
    )
    thief.session.cookie_jar.clear()
    copied = await thief.get(scim, cookies={COOKIE: portal.cookie}, allow_redirects=False)
    assert copied.status == 303 and copied.headers["Location"] == "/console/portal/sign-in"

    # The operator's session likewise.
    csrf = await operator(client)
    operator_cookie = client.session.cookie_jar.filter_cookies(client.make_url("/console/"))[COOKIE].value
    await client.post("/console/logout", data={"csrf_token": csrf}, allow_redirects=False)
    thief.session.cookie_jar.clear()
    copied = await thief.get("/console/tenants", cookies={COOKIE: operator_cookie}, allow_redirects=False)
    assert copied.status == 303 and copied.headers["Location"] == "/console/login"


async def test_two_browsers_opening_one_link_at_once_get_one_session(
    aiohttp_client, settings, client, db, tenant
):
    path = await portal_link(client, tenant.id)
    browsers = [await aiohttp_client(create_app(settings)) for _ in range(2)]
    answers = await asyncio.gather(*(b.get(path, allow_redirects=False) for b in browsers))
    assert sorted(a.status for a in answers) == [200, 410]
    assert await db.fetchval(SESSIONS_OF, uuid.UUID(tenant.id)) == 1


async def test_the_operator_ends_every_portal_session_of_an_organization(
    aiohttp_client, settings, client, db
):
    tenant, other = await make_tenant(client), await make_tenant(client)
    admins = [await aiohttp_client(create_app(settings)) for _ in range(3)]
    await portal_session(admins[0], tenant.id)
    await portal_session(admins[1], tenant.id)
    await portal_session(admins[2], other.id)
    scim = f"/console/tenants/{tenant.id}/scim"

    resp = await client.delete(f"/admin/v1/tenants/{tenant.id}/portal-sessions", headers=ADMIN_HEADERS)
    assert resp.status == 200 and await resp.json() == {"ended": 2, "links_retired": 0}
    for admin in admins[:2]:
        resp = await admin.get(scim, allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"] == "/console/portal/sign-in"
    assert (await admins[2].get(f"/console/tenants/{other.id}/scim", allow_redirects=False)).status == 200
    [row] = await audit_of(db, tenant.id, "portal_sessions_ended")
    assert row["actor"] == "admin" and row["detail"]["ended"] == 2

    # The console: the tab lists the live sessions; ending them asks first.
    await portal_session(admins[0], tenant.id)
    csrf = await operator(client)
    tab = await client.get(f"/console/tenants/{tenant.id}/portal")
    assert tab.status == 200 and "End every portal session" in await tab.text()
    confirm = await client.get(f"/console/tenants/{tenant.id}/portal/end-sessions")
    assert confirm.status == 200 and "1 portal session of this organization is live." in await confirm.text()
    ja = await client.get(confirm.url.path, headers={"Accept-Language": "ja"})
    assert "ポータルのセッションは 1 件です" in await ja.text()
    await portal_session(admins[1], tenant.id)
    confirm = await client.get(f"/console/tenants/{tenant.id}/portal/end-sessions")
    assert "2 portal sessions of this organization are live." in await confirm.text()
    ja = await client.get(confirm.url.path, headers={"Accept-Language": "ja"})
    assert "ポータルのセッションは 2 件です" in await ja.text()
    resp = await client.post(
        f"/console/tenants/{tenant.id}/portal/end-sessions", data={"csrf_token": csrf}, allow_redirects=False
    )
    assert resp.status == 303 and resp.headers["Location"].endswith("?done=portal-sessions-ended")
    for admin in admins[:2]:
        assert (await admin.get(scim, allow_redirects=False)).status == 303
    assert (
        await client.delete(f"/admin/v1/tenants/{uuid.uuid4()}/portal-sessions", headers=ADMIN_HEADERS)
    ).status == 404


# --- one organization's pages, nothing else ---------------------------------------------------------


async def test_a_portal_session_gets_404_on_operator_pages_and_other_organizations(client, db, tenant):
    other = await make_tenant(client)
    portal = await portal_session(client, tenant.id)
    missing = await client.get("/console/no-such-page")
    assert missing.status == 404
    pages = [
        "/console/tenants",
        "/console/queue",
        "/console/webhooks",
        f"/console/tenants/{tenant.id}/portal",  # the operator's tab of its own organization
        f"/console/tenants/{tenant.id}/portal/end-sessions",
        f"/console/tenants/{other.id}/scim",
        f"/console/tenants/{other.id}/seats",
        f"/console/tenants/{other.id}/users.csv",
        f"/console/tenants/{tenant.id.upper()}x/scim",
        "/console/tenants/not-an-id/scim",
    ]
    for path in pages:
        resp = await client.get(path, allow_redirects=False)
        assert resp.status == 404, path
        assert f"there is no console page at {path}" in await resp.text(), path
    for path, data in (
        ("/console/tenants", {"name": "made-by-a-portal"}),
        (f"/console/tenants/{other.id}/scim", {"enabled": "true"}),
        (f"/console/tenants/{other.id}/scim/tokens", {"label": "stolen"}),
        (f"/console/tenants/{tenant.id}/portal/links", {}),
        (f"/console/tenants/{tenant.id}/portal/end-sessions", {}),
    ):
        resp = await client.post(path, data={"csrf_token": portal.csrf, **data}, allow_redirects=False)
        assert resp.status == 404, path
    assert await db.fetchval("SELECT count(*) FROM tenants WHERE name = 'made-by-a-portal'") == 0
    assert (
        await db.fetchval("SELECT count(*) FROM scim_tokens WHERE tenant_id = $1", uuid.UUID(other.id)) == 1
    )
    assert (
        await db.fetchval(
            "SELECT count(*) FROM console_sessions WHERE tenant_id = $1 AND ended_at IS NULL",
            uuid.UUID(tenant.id),
        )
        == 1
    )

    home = await client.get("/console/", allow_redirects=False)
    assert home.status == 303 and home.headers["Location"] == f"/console/tenants/{tenant.id}/scim"
    assert (await client.get(f"/console/tenants/{tenant.id}/scim")).status == 200
    assert (await client.get("/console/static/console.css")).status == 200


async def test_a_forged_portal_cookie_for_another_organization_is_no_session(client, db, tenant):
    from scimsvc.web.console.session import Session, decode_session, encode_session

    other = await make_tenant(client)
    portal = await portal_session(client, tenant.id)
    session = decode_session(portal.cookie, ADMIN_KEY)
    assert session is not None and session.tenant_id == uuid.UUID(tenant.id) and not session.operator
    # Even signed with the right key, the row on the server names its own organization.
    swapped = encode_session(Session(session.sid, session.expires, False, uuid.UUID(other.id)), ADMIN_KEY)
    client.session.cookie_jar.clear()
    resp = await client.get(
        f"/console/tenants/{other.id}/scim", cookies={COOKIE: swapped}, allow_redirects=False
    )
    assert resp.status == 303 and resp.headers["Location"] == "/console/portal/sign-in"


# --- registered admins and sign-in by email ---------------------------------------------------------


async def test_registered_admin_addresses_are_case_insensitive_and_audited(client, db, tenant):
    base = f"/admin/v1/tenants/{tenant.id}/org-admins"
    resp = await client.post(base, json={"email": "Ada@Example.COM"}, headers=ADMIN_HEADERS)
    assert resp.status == 201 and (await resp.json())["email"] == "ada@example.com"
    resp = await client.post(base, json={"email": " ada@example.com"}, headers=ADMIN_HEADERS)
    assert resp.status == 200
    for body in ({"email": "nope"}, {}, {"email": "a@b.example", "role": "x"}):
        assert (await client.post(base, json=body, headers=ADMIN_HEADERS)).status == 400, body
    listed = await (await client.get(base, headers=ADMIN_HEADERS)).json()
    assert [a["email"] for a in listed] == ["ada@example.com"]
    assert (await client.delete(f"{base}/ADA@example.com", headers=ADMIN_HEADERS)).status == 204
    assert (await client.delete(f"{base}/ada@example.com", headers=ADMIN_HEADERS)).status == 404
    assert (
        await client.get(f"/admin/v1/tenants/{uuid.uuid4()}/org-admins", headers=ADMIN_HEADERS)
    ).status == 404
    assert [r["detail"]["email"] for r in await audit_of(db, tenant.id, "org_admin_added")] == [
        "ada@example.com"
    ]
    assert len(await audit_of(db, tenant.id, "org_admin_removed")) == 1

    csrf = await operator(client)  # the console tab does the same
    tab = f"/console/tenants/{tenant.id}/portal"
    resp = await client.post(
        f"{tab}/admins", data={"csrf_token": csrf, "email": "Bo@Example.com"}, allow_redirects=False
    )
    assert resp.status == 303
    assert "bo@example.com" in await (await client.get(tab)).text()
    resp = await client.post(
        f"{tab}/admins/remove", data={"csrf_token": csrf, "email": "bo@example.com"}, allow_redirects=False
    )
    assert resp.status == 303
    assert (
        await db.fetchval("SELECT count(*) FROM org_admins WHERE tenant_id = $1", uuid.UUID(tenant.id)) == 0
    )


async def ask_for_link(client: Any, address: str) -> Any:
    form = await client.get("/console/portal/sign-in")
    assert form.status == 200
    return await client.post(
        "/console/portal/sign-in",
        data={"csrf_token": csrf_of(await form.text()), "email": address},
        allow_redirects=False,
    )


async def test_a_registered_admin_gets_a_link_by_email_for_each_organization(
    client, db, settings, smtp, pool
):
    inbox, port = smtp
    first, second = await make_tenant(client), await make_tenant(client)
    address = unique_email("it-admin")
    for t in (first, second):
        resp = await client.post(
            f"/admin/v1/tenants/{t.id}/org-admins", json={"email": address}, headers=ADMIN_HEADERS
        )
        assert resp.status == 201

    resp = await ask_for_link(client, address.upper())
    assert resp.status == 303 and resp.headers["Location"] == "/console/portal/sign-in?done=link-sent"
    answer = await (await client.get(resp.headers["Location"])).text()
    assert "a sign-in link is on its way" in answer

    await resolve_sign_in_requests(pool, settings)  # the worker's first step: the lookup, links, notices
    bodies = await db.fetch("SELECT body, portal_link_id FROM notices WHERE to_address = $1", address)
    assert len(bodies) == 2 and all(
        "{portal-link-token}" in b["body"] and b["portal_link_id"] for b in bodies
    )
    await run_worker(dataclasses.replace(settings, smtp_url=f"smtp://127.0.0.1:{port}"))
    mails = [m for rcpt, m in inbox.messages if rcpt == [address]]
    assert len(mails) == 2
    texts = [m.get_payload(decode=True).decode() for m in mails]  # type: ignore[union-attr]
    tokens_sent = [re.findall(r"/console/portal/([A-Za-z0-9_-]+)", text)[0] for text in texts]
    assert not await db.fetchval(
        "SELECT count(*) FROM notices WHERE body LIKE ANY($1::text[])", [f"%{t}%" for t in tokens_sent]
    )
    hashes = {
        r["token_hash"]
        for r in await db.fetch("SELECT token_hash FROM portal_links WHERE email = $1", address)
    }
    assert hashes == {sha256(t) for t in tokens_sent}

    # A mail scanner's GET signs nobody in: the token moves from the URL to a cookie of the Continue page,
    # which asks to continue; its POST does.
    client.session.cookie_jar.clear()
    token = tokens_sent[0]
    moved = await client.get(f"/console/portal/{token}", allow_redirects=False)
    assert moved.status == 303 and moved.headers["Location"] == "/console/portal/continue"
    held = moved.cookies["scimsvc_portal_token"]
    assert held.value == token and held["httponly"] and held["samesite"] == "Lax"
    assert held["path"] == "/console/portal/continue" and moved.headers["Referrer-Policy"] == "no-referrer"
    page = await client.get(moved.headers["Location"], allow_redirects=False)
    text = await page.text()
    assert page.status == 200 and "Continue to" in text and token not in text
    assert 'action="/console/portal/continue"' in text
    assert await db.fetchval("SELECT count(*) FROM console_sessions WHERE email = $1", address) == 0
    resp = await client.post(
        "/console/portal/continue", data={"csrf_token": csrf_of(text)}, allow_redirects=False
    )
    assert resp.status == 303 and resp.cookies["scimsvc_portal_token"].value == ""  # forgotten
    opened = resp.headers["Location"].split("/")[3]
    assert opened in (first.id, second.id)
    assert (
        await db.fetchval("SELECT email FROM console_sessions WHERE tenant_id = $1", uuid.UUID(opened))
        == address
    )
    [started] = await audit_of(db, opened, "portal_session_started")
    assert started["actor"] == "org_admin" and started["detail"]["emailed"] is True
    assert started["detail"]["by"] == address
    client.session.cookie_jar.clear()  # a second use, from a new anonymous session
    form = await client.get("/console/portal/sign-in")
    resp = await client.post(f"/console/portal/{token}", data={"csrf_token": csrf_of(await form.text())})
    assert resp.status == 410 and GONE in await resp.text()
    assert (await client.get(f"/console/portal/{token}", allow_redirects=False)).status == 410
    assert (await client.get("/console/portal/continue")).status == 410  # no cookie: nothing to open


async def test_an_unknown_address_gets_the_same_answer_and_no_email(client, db, settings, pool, tenant):
    address, known = unique_email("stranger"), unique_email("known")
    await client.post(
        f"/admin/v1/tenants/{tenant.id}/org-admins", json={"email": known}, headers=ADMIN_HEADERS
    )
    resp = await ask_for_link(client, address)
    assert resp.status == 303 and resp.headers["Location"] == "/console/portal/sign-in?done=link-sent"
    assert (await ask_for_link(client, known)).headers["Location"] == resp.headers["Location"]
    # The request did the same work for both (one row each, nothing looked up): the worker does the rest.
    requests = "SELECT count(*) FROM portal_sign_in_requests WHERE email = $1"
    assert await db.fetchval(requests, address) == 1 and await db.fetchval(requests, known) == 1
    assert await db.fetchval("SELECT count(*) FROM portal_links WHERE email = $1", known) == 0
    await resolve_sign_in_requests(pool, settings)
    assert await db.fetchval(requests, address) == 0 and await db.fetchval(requests, known) == 0
    assert await db.fetchval("SELECT count(*) FROM notices WHERE to_address = $1", known) == 1
    assert await db.fetchval("SELECT count(*) FROM notices WHERE to_address = $1", address) == 0
    assert await db.fetchval("SELECT count(*) FROM portal_links WHERE email = $1", address) == 0
    bad = await ask_for_link(client, "not an address")
    assert bad.status == 400 and "email" in await bad.text()
    client.session.cookie_jar.clear()
    no_form = await client.post("/console/portal/sign-in", data={"email": address})
    assert no_form.status == 403


async def test_sign_in_emails_to_one_address_are_bounded(client, db, tenant, settings, pool):
    address = unique_email("flooded")
    await client.post(
        f"/admin/v1/tenants/{tenant.id}/org-admins", json={"email": address}, headers=ADMIN_HEADERS
    )
    for _ in range(7):
        resp = await ask_for_link(client, address)
        assert resp.status == 303
    await resolve_sign_in_requests(pool, settings)
    assert await db.fetchval("SELECT count(*) FROM notices WHERE to_address = $1", address) == 5


async def test_sign_in_requests_from_one_client_are_bounded(aiohttp_client, settings, db):
    # A budget of its own (a prefix of its own): other tests' requests from 127.0.0.1 do not count here.
    prefix = f"{settings.rate_limit_prefix}:{uuid.uuid4().hex[:8]}"
    bounded = dataclasses.replace(settings, auth_failures_per_minute=2, rate_limit_prefix=prefix)
    client = await aiohttp_client(create_app(bounded))
    addresses = [unique_email("bounded") for _ in range(3)]
    for address in addresses[:2]:
        assert (await ask_for_link(client, address)).status == 303
    resp = await ask_for_link(client, addresses[2])
    assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 1
    assert "Too many sign-in link requests" in await resp.text()


async def test_without_smtp_an_emailed_link_gets_no_token(client, db, settings, tenant):
    address = unique_email("no-smtp")
    await client.post(
        f"/admin/v1/tenants/{tenant.id}/org-admins", json={"email": address}, headers=ADMIN_HEADERS
    )
    await ask_for_link(client, address)
    await run_worker(dataclasses.replace(settings, smtp_url=""))
    assert await db.fetchval("SELECT status FROM notices WHERE to_address = $1", address) == "not_sent"
    assert await db.fetchval("SELECT token_hash FROM portal_links WHERE email = $1", address) is None


# --- retention ---------------------------------------------------------------------------------------


@pytest.fixture
async def pool(settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    yield pool
    await pool.close()


async def test_retention_deletes_sessions_and_links_long_expired(aiohttp_client, settings, client, db, pool):
    old, fresh = await make_tenant(client), await make_tenant(client)
    await portal_session(await aiohttp_client(create_app(settings)), old.id)
    await portal_session(await aiohttp_client(create_app(settings)), fresh.id)
    for sql in ("UPDATE console_sessions", "UPDATE portal_links"):
        await db.execute(
            f"{sql} SET expires_at = now() - interval '31 days' WHERE tenant_id = $1", uuid.UUID(old.id)
        )
    removed = await purge_expired({"pool": pool, "settings": settings, "redis": None})
    assert removed["console_sessions"] >= 1 and removed["portal_links"] >= 1
    for count in (SESSIONS_OF, LINKS_OF):
        assert await db.fetchval(count, uuid.UUID(old.id)) == 0
        assert await db.fetchval(count, uuid.UUID(fresh.id)) == 1
