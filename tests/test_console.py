"""The admin console over plain HTTP: sign-in, the session cookie, CSRF, and what the pages do."""

from __future__ import annotations

import html
import logging
import re
import time
from dataclasses import replace
from typing import Any

import pytest

from scimsvc.web.app import create_app
from scimsvc.web.console.session import COOKIE, Session, decode_session, encode_session, new_session
from tests.conftest import ADMIN_HEADERS, ADMIN_KEY, make_tenant, post_user, run_worker

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
PAGES = [
    "/console/",
    "/console/tenants",
    "/console/queue",
    "/console/tenants/00000000-0000-0000-0000-000000000000/scim",
    "/console/tenants/00000000-0000-0000-0000-000000000000/seats",
    "/console/tenants/00000000-0000-0000-0000-000000000000/settings",
    "/console/tenants/00000000-0000-0000-0000-000000000000/users.csv",
    "/console/tenants/00000000-0000-0000-0000-000000000000/portal",
    "/console/tenants/00000000-0000-0000-0000-000000000000/users/00000000-0000-0000-0000-000000000000",
    "/console/tenants/00000000-0000-0000-0000-000000000000/teams/00000000-0000-0000-0000-000000000000/delete",
    "/console/tenants/00000000-0000-0000-0000-000000000000/audit",
    "/console/tenants/00000000-0000-0000-0000-000000000000/log",
    "/console/no-such-page",
]


def csrf_of(body: str) -> str:
    found = CSRF.search(body)
    assert found, "no CSRF token on the page"
    return html.unescape(found.group(1))


async def sign_in(client: Any, key: str = ADMIN_KEY) -> Any:
    """Sign in through the form; returns the response to the key's POST (not followed)."""
    form = await client.get("/console/login")
    assert form.status == 200
    token = csrf_of(await form.text())
    return await client.post("/console/login", data={"csrf_token": token, "key": key}, allow_redirects=False)


async def signed_in(client: Any) -> str:
    """Sign in and return the CSRF token of the signed-in session."""
    resp = await sign_in(client)
    assert resp.status == 303 and resp.headers["Location"] == "/console/tenants"
    page = await client.get("/console/tenants")
    return csrf_of(await page.text())


@pytest.mark.parametrize("path", PAGES)
async def test_every_console_page_sends_a_stranger_to_the_sign_in_page(client, path):
    resp = await client.get(path, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/console/login"


async def test_a_forged_or_expired_cookie_is_no_session(client):
    forged = encode_session(Session("x", int(time.time()) + 3600, True), "not-the-admin-key")
    expired = encode_session(Session("x", int(time.time()) - 1, True), ADMIN_KEY)
    anonymous = encode_session(new_session(operator=False), ADMIN_KEY)
    for value in (forged, expired, anonymous, "garbage", "a.b"):
        client.session.cookie_jar.clear()
        resp = await client.get("/console/tenants", cookies={COOKIE: value}, allow_redirects=False)
        assert resp.status == 303, value


def test_session_cookie_is_signed_and_expires():
    session = new_session(operator=True)
    value = encode_session(session, "k1")
    assert decode_session(value, "k1") == session
    assert decode_session(value, "k2") is None  # a new admin key signs everyone out
    payload, mac = value.split(".")
    assert decode_session(payload[:-2] + "AA." + mac, "k1") is None
    assert decode_session(value, "k1", now=session.expires) is None
    assert decode_session(value, "") is None


async def test_sign_in_sets_an_http_only_strict_cookie(client):
    resp = await sign_in(client)
    assert resp.status == 303
    cookie = resp.cookies[COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/console/"
    assert not cookie["secure"]  # the public URL of the tests is plain http
    assert 0 < int(cookie["max-age"]) <= 8 * 3600
    assert ADMIN_KEY not in cookie.value
    assert (await client.get("/console/tenants", allow_redirects=False)).status == 200


async def test_cookie_is_secure_when_the_public_url_is_https(aiohttp_client, settings):
    client = await aiohttp_client(create_app(replace(settings, public_url="https://scim.example.com")))
    resp = await client.get("/console/login")
    assert resp.cookies[COOKIE]["secure"]


async def test_wrong_key_is_refused_counted_and_logged_without_the_key(aiohttp_client, settings, caplog):
    client = await aiohttp_client(create_app(replace(settings, auth_failures_per_minute=2)))
    caplog.set_level(logging.DEBUG)
    for i in range(2):
        resp = await sign_in(client, key=f"wrong{i}-" + ADMIN_KEY)
        assert resp.status == 401
        assert "That is not the operator key" in await resp.text()
    resp = await sign_in(client, key="wrong2-" + ADMIN_KEY)  # over this address's budget
    assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 1
    resp = await sign_in(client)  # even the right key waits now
    assert resp.status == 429
    assert "failed authentication (console sign-in)" in caplog.text
    assert ADMIN_KEY not in caplog.text


async def test_the_key_never_appears_in_a_url_a_page_or_a_log(client, caplog):
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    resp = await sign_in(client)
    seen += [str(resp.url), resp.headers.get("Location", ""), await resp.text()]
    for path in ("/console/tenants", "/console/queue", "/console/login"):
        page = await client.get(path)
        seen += [str(page.url), await page.text(), *page.headers.values()]
    assert not any(ADMIN_KEY in text for text in seen)
    assert ADMIN_KEY not in caplog.text


async def test_a_post_without_the_sessions_csrf_token_is_refused(client, db):
    await signed_in(client)
    other = await aiohttp_session_token(client)
    for data in ({}, {"csrf_token": "made-up"}, {"csrf_token": other}):
        resp = await client.post("/console/tenants", data={"name": "csrf-victim", **data})
        assert resp.status == 403, data
        assert "reload the page" in await resp.text()
    assert await db.fetchval("SELECT count(*) FROM tenants WHERE name = 'csrf-victim'") == 0


async def aiohttp_session_token(client: Any) -> str:
    """The CSRF token of another, anonymous session (what a cross-site attacker could obtain)."""
    session = new_session(operator=False)
    from scimsvc.web.console.csrf import csrf_token

    return csrf_token(session, ADMIN_KEY)


async def test_a_post_without_a_session_is_refused(client):
    resp = await client.post("/console/tenants", data={"name": "x"}, allow_redirects=False)
    assert resp.status == 403


async def test_sign_out_ends_the_session(client):
    token = await signed_in(client)
    resp = await client.post("/console/logout", data={"csrf_token": token}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/console/login"
    assert resp.cookies[COOKIE]["max-age"] == "0"
    assert (await client.get("/console/tenants", allow_redirects=False)).status == 303


async def test_pages_send_strict_security_headers(client):
    await signed_in(client)
    for path in ("/console/tenants", "/console/login", "/console/static/console.css"):
        resp = await client.get(path)
        assert resp.status == 200, path
        assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
        assert resp.headers["Cache-Control"] == "no-store"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"


async def test_console_is_off_without_an_admin_key(aiohttp_client, settings):
    client = await aiohttp_client(create_app(replace(settings, admin_key="")))
    resp = await client.get("/console/login")
    assert resp.status == 403 and "SCIMSVC_ADMIN_KEY" in await resp.text()
    assert resp.content_type == "text/html"


async def test_create_tenant_form_shows_the_schemas_errors_and_keeps_the_input(client, db):
    token = await signed_in(client)
    resp = await client.post(
        "/console/tenants", data={"csrf_token": token, "name": "Form Co", "seats": "lots"}
    )
    assert resp.status == 400
    body = await resp.text()
    assert "Seats must be a whole number from 0 to 10,000,000 (for example 25)." in body
    assert "Not a valid integer" not in body and 'value="Form Co"' in body
    assert await db.fetchval("SELECT count(*) FROM tenants WHERE name = 'Form Co'") == 0

    resp = await client.post(
        "/console/tenants",
        data={"csrf_token": token, "name": "Form Co", "seats": "3", "fallback_license": "none"},
        allow_redirects=False,
    )
    assert resp.status == 303 and resp.headers["Location"].endswith("/scim?done=tenant-created")
    row = await db.fetchrow(
        "SELECT seats, fallback_license, scim_enabled FROM tenants WHERE name = 'Form Co'"
    )
    assert dict(row) == {"seats": 3, "fallback_license": "none", "scim_enabled": False}


async def test_unknown_tenant_is_a_404_page(client):
    await signed_in(client)
    resp = await client.get("/console/tenants/00000000-0000-0000-0000-000000000000/seats")
    assert resp.status == 404 and resp.content_type == "text/html"
    assert "There is no such organization" in await resp.text()
    resp = await client.get("/console/no-such-page")
    assert resp.status == 404 and resp.content_type == "text/html"


async def test_manual_license_is_refused_while_scim_is_on_and_works_when_off(client, settings, db):
    tenant = await make_tenant(client, seats=1)
    user = await post_user(client, tenant)
    await run_worker(settings)
    token = await signed_in(client)
    seats = f"/console/tenants/{tenant.id}/seats"
    page = await (await client.get(seats)).text()
    assert re.search(r'<fieldset id="assign-fieldset" disabled', page) and "Managed by SCIM" in page

    form = {"csrf_token": token, "user": user["userName"], "license": "free"}
    resp = await client.post(seats + "/assign", data=form)
    assert resp.status == 409 and "managed by SCIM" in await resp.text()

    resp = await client.post(f"/console/tenants/{tenant.id}/scim/disable", data={"csrf_token": token})
    assert resp.status == 200 and "Turn SCIM on" in await resp.text()
    page = await (await client.get(seats)).text()
    assert '<fieldset id="assign-fieldset">' in page and "Managed by SCIM" not in page
    resp = await client.post(seats + "/assign", data=form)
    assert resp.status == 200 and "License assignment accepted" in await resp.text()
    await run_worker(settings)
    assert await db.fetchval("SELECT license FROM users WHERE id = $1::uuid", user["id"]) == "free"


async def test_users_csv_downloads_with_the_session(client):
    tenant = await make_tenant(client)
    user = await post_user(client, tenant)
    await signed_in(client)
    resp = await client.get(f"/console/tenants/{tenant.id}/users.csv?state=active")
    assert resp.status == 200 and resp.content_type == "text/csv"
    assert user["userName"] in await resp.text()


async def test_every_page_of_a_tenant_renders(client, settings):
    tenant = await make_tenant(client, seats=1, fallback_license="none")
    first, second = await post_user(client, tenant), await post_user(client, tenant)
    await run_worker(settings)
    resp = await client.post(
        f"/admin/v1/tenants/{tenant.id}/teams", json={"name": "Ops"}, headers=ADMIN_HEADERS
    )
    team_id = (await resp.json())["id"]
    await signed_in(client)
    base = f"/console/tenants/{tenant.id}"
    pages = {
        "/console/tenants": tenant.id,
        "/console/queue": "Status:",
        base + "/scim": "http://scim.test/scim/v2",
        base + "/seats": second["userName"],  # waiting for the one seat
        base + "/settings": "License rules",
        base + "/teams": "Ops",
        f"{base}/teams/{team_id}": "No SCIM group is linked",
        base + "/users?state=active&license=full": first["userName"],
        f"{base}/audit?user={first['userName']}": "allocation",
    }
    for path, expected in pages.items():
        resp = await client.get(path)
        body = await resp.text()
        assert resp.status == 200, (path, body[:500])
        assert resp.content_type == "text/html" and expected in body, path
        assert unlabelled_inputs(body) == [], path


def unlabelled_inputs(body: str) -> list[str]:
    """Form controls (but hidden ones) without an id that a <label for=...> names."""
    labelled = set(re.findall(r'<label for="([^"]+)"', body))
    missing = []
    for control in re.findall(r"<(?:input|select|textarea)\b[^>]*>", body):
        if 'type="hidden"' in control:
            continue
        found = re.search(r'id="([^"]+)"', control)
        if not found or found.group(1) not in labelled:
            missing.append(control)
    return missing


async def test_bad_filters_show_an_error_on_the_page(client, tenant):
    await signed_in(client)
    resp = await client.get(f"/console/tenants/{tenant.id}/users?state=sleeping")
    assert resp.status == 400 and "Choose the state from the list." in await resp.text()
    resp = await client.get(f"/console/tenants/{tenant.id}/audit?user=nobody@example.com")
    assert resp.status == 404 and "There is no user “nobody@example.com”" in await resp.text()


async def test_a_new_token_is_shown_once_and_provisions(client, tenant):
    token = await signed_in(client)
    scim = f"/console/tenants/{tenant.id}/scim"
    resp = await client.post(scim + "/tokens", data={"csrf_token": token})
    assert resp.status == 200 and resp.url.path == scim + "/tokens/new"  # POST, 303, GET
    secret = re.search(r'<code id="new-token">([^<]+)</code>', await resp.text())
    assert secret
    headers = {"Authorization": f"Bearer {secret.group(1)}"}
    assert (await client.get("/scim/v2/Users", headers=headers)).status == 200
    assert secret.group(1) not in await (await client.get(scim)).text()  # never again


# --- the chrome: what the header and the tabs show, by role ------------------------------------------------

OPERATOR_LINKS = ('href="/console/tenants"', 'href="/console/webhooks"', 'href="/console/queue"')
TABS = ("scim", "seats", "teams", "users", "log", "audit", "webhooks")


def visible_text(body: str) -> str:
    """A page's words as a person reads them: no tags, no attributes, no code samples."""
    body = re.sub(r"<(code|script|style)\b.*?</\1>", " ", body, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", body))


async def test_the_sign_in_page_shows_no_operator_links_but_the_language_switch(client):
    body = await (await client.get("/console/login")).text()
    assert not any(link in body for link in OPERATOR_LINKS)
    assert 'action="/console/logout"' not in body
    assert 'action="/console/language"' in body and '<label for="language-choice">' in body


async def test_the_operator_sees_the_console_nav_and_the_organizations_tabs(client):
    tenant = await make_tenant(client)
    await signed_in(client)
    body = await (await client.get(f"/console/tenants/{tenant.id}/audit")).text()
    assert all(link in body for link in OPERATOR_LINKS)
    assert ">Organizations</a>" in body and 'action="/console/logout"' in body
    assert re.search(f"Organization <strong>t-[0-9a-f]+</strong> <code>{tenant.id}</code>", body)
    for key in TABS:
        assert f'href="/console/tenants/{tenant.id}/{key}"' in body, key
    assert f'href="/console/tenants/{tenant.id}/audit" aria-current="page"' in body


async def test_pages_say_organization_never_tenant(client, settings):
    tenant = await make_tenant(client)
    await post_user(client, tenant)
    await run_worker(settings)
    await signed_in(client)
    base = f"/console/tenants/{tenant.id}"
    for path in (
        "/console/tenants",
        "/console/queue",
        "/console/webhooks",
        base + "/log",
        base + "/webhooks",
    ):
        body = await (await client.get(path)).text()
        assert "tenant" not in visible_text(body).lower(), path


async def test_every_table_of_these_pages_scrolls_inside_its_own_box(client, settings):
    tenant = await make_tenant(client)
    await post_user(client, tenant)
    await run_worker(settings)
    await signed_in(client)
    base = f"/console/tenants/{tenant.id}"
    for path in ("/console/tenants", base + "/audit"):
        body = await (await client.get(path)).text()
        assert "<table" in body, path
        wrapped = re.findall(
            r'<div class="table-wrap" tabindex="0" role="group" aria-labelledby="[^"]+">\s*<table', body
        )
        assert body.count("<table") == len(wrapped), path  # focusable: a keyboard can scroll it


def render_as(client: Any, template: str, context: dict[str, Any], *, tab: str = "") -> str:
    """A console template rendered as a session with `context` sees it; `tab`: a line added to base.html's
    tab list (as another part of the console adds its own)."""
    import aiohttp_jinja2
    import jinja2

    from scimsvc.web.console.i18n import translator

    env = aiohttp_jinja2.get_env(client.server.app)
    assert env.loader is not None
    source = env.loader.get_source(env, "base.html")[0]
    if tab:
        source = source.replace(
            '("webhooks", _("Webhooks"), false),', '("webhooks", _("Webhooks"), false),\n' + tab
        )
    loader = jinja2.ChoiceLoader([jinja2.DictLoader({"base.html": source}), env.loader])
    overridden = env.overlay(loader=loader)
    defaults = {
        "lang": "en",
        "_": translator("en"),
        "csrf": "token",
        "notice": None,
        "error": None,
        "here": "/console/",
    }
    return overridden.get_template(template).render({**defaults, **context})


def test_a_portal_session_sees_its_organization_its_tabs_and_sign_out_only(client):
    tenant = {"id": "11111111-1111-1111-1111-111111111111", "name": "Acme Ltd"}
    context = {
        "portal": True,
        "signed_in": True,
        "tenant": tenant,
        "section": "audit",
        "title": "Delete?",
        "message": "It goes.",
        "action": "/console/tenants/x/y/delete",
        "button": "Delete",
        "cancel": "/console/tenants/x/y",
        "fields": {},
    }
    tab = '    ("portal", _("Portal access"), true),'
    body = render_as(client, "confirm.html", context, tab=tab)
    assert not any(link in body for link in OPERATOR_LINKS)
    assert "Organization <strong>Acme Ltd</strong>" in body and f"<code>{tenant['id']}</code>" not in body
    assert 'action="/console/logout"' in body and 'action="/console/language"' in body
    for key in TABS:
        assert f'href="/console/tenants/{tenant["id"]}/{key}"' in body, key
    assert "/portal" not in body  # an operator-only tab is hidden from the portal
    operator = render_as(client, "confirm.html", {**context, "portal": False}, tab=tab)
    assert f'href="/console/tenants/{tenant["id"]}/portal"' in operator and all(
        link in operator for link in OPERATOR_LINKS
    )


async def test_errors_on_these_pages_are_in_the_consoles_words(client):
    await signed_in(client)
    for page in ("audit", "log", "webhooks"):
        resp = await client.get(f"/console/tenants/00000000-0000-0000-0000-000000000000/{page}")
        body = await resp.text()
        assert resp.status == 404 and "There is no such organization" in body, page
        assert "tenant" not in visible_text(body).lower(), page


async def test_a_method_no_console_page_takes_is_a_405_naming_those_it_does(client, tenant):
    await signed_in(client)
    for method in ("PUT", "DELETE", "PATCH"):
        resp = await client.request(method, f"/console/tenants/{tenant.id}/scim")
        assert resp.status == 405, (method, await resp.text())
        assert set(resp.headers["Allow"].split(",")) >= {"GET"}, resp.headers["Allow"]
    resp = await client.request("PUT", "/console/tenants")  # no form is asked for: no handler runs
    assert resp.status == 405
