"""The console's SCIM panel over HTTP and the database: tokens (shown once, no second token on a reload,
label, created by, last used, expiry), confirmations for revoking and turning SCIM off, the Okta and Entra
setup guides, and the last request seen from the organization's identity provider."""

from __future__ import annotations

import asyncio
import html
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from scimsvc.web import token_cache
from scimsvc.web.app import create_app
from scimsvc.web.console import scim_pages
from scimsvc.web.console.reveal import REVEAL_SECONDS
from scimsvc.web.console.roles import open_to_org_admins
from scimsvc.web.keys import TOKEN_CACHE
from tests.conftest import ADMIN_HEADERS, make_tenant, post_user, run_scimsvc, service_env, wait_until
from tests.test_console import signed_in

NEW_TOKEN = re.compile(r'<code id="new-token">([^<]+)</code>')


@pytest.fixture
async def client(aiohttp_client: Any, settings: Any) -> Any:
    """The app with uses of tokens written every second (60 by default)."""
    return await aiohttp_client(create_app(replace(settings, token_last_used_seconds=1)))


async def live_tokens(db: Any, tenant_id: str) -> int:
    return await db.fetchval(
        "SELECT count(*) FROM scim_tokens WHERE tenant_id = $1::uuid AND revoked_at IS NULL", tenant_id
    )


async def create_in_console(client: Any, csrf: str, tenant_id: str, **fields: str) -> Any:
    return await client.post(
        f"/console/tenants/{tenant_id}/scim/tokens",
        data={"csrf_token": csrf, **fields},
        allow_redirects=False,
    )


# --- tokens: shown once, never twice --------------------------------------------------------------


async def test_a_new_token_is_shown_once_and_a_reload_makes_no_other(client, db):
    tenant = await make_tenant(client)
    csrf = await signed_in(client)
    assert await live_tokens(db, tenant.id) == 1

    resp = await create_in_console(client, csrf, tenant.id, label="Okta production")
    reveal = f"/console/tenants/{tenant.id}/scim/tokens/new"
    assert resp.status == 303 and resp.headers["Location"] == reveal  # never the token in a URL
    cookie = resp.cookies[scim_pages.NEW_TOKEN_COOKIE]
    assert cookie["path"] == reveal and cookie["httponly"] and cookie["samesite"] == "Strict"
    assert cookie["max-age"] == str(REVEAL_SECONDS)
    row = await db.fetchrow(
        "SELECT label, created_by FROM scim_tokens WHERE tenant_id = $1::uuid"
        " ORDER BY created_at DESC LIMIT 1",
        tenant.id,
    )
    assert (row["label"], row["created_by"]) == ("Okta production", "operator")
    assert await live_tokens(db, tenant.id) == 2

    shown = await client.get(reveal)
    body = await shown.text()
    assert shown.status == 200
    secret = NEW_TOKEN.search(body)
    assert secret and "Okta production" in body
    assert f"<code>{secret.group(1)}</code>" in body  # in place in the guides on that page
    assert (
        await db.fetchval(
            "SELECT count(*) FROM scim_tokens WHERE token_hash = sha256(convert_to($1, 'UTF8'))",
            secret.group(1),
        )
        == 1
    )  # only its hash is stored
    headers = {"Authorization": f"Bearer {secret.group(1)}"}
    assert (await client.get("/scim/v2/Users", headers=headers)).status == 200

    again = await client.get(reveal)  # a reload: the cookie was cleared by the first answer
    body = await again.text()
    assert again.status == 200 and secret.group(1) not in body
    assert "This token was shown once; generate another if you lost it." in body
    assert secret.group(1) not in await (await client.get(f"/console/tenants/{tenant.id}/scim")).text()
    assert await live_tokens(db, tenant.id) == 2  # the reload made no token


async def test_create_followed_and_reloaded_leaves_exactly_one_live_token(client, db):
    tenant = await make_tenant(client)
    await client.delete(f"/admin/v1/tenants/{tenant.id}/scim/tokens/{tenant.token_id}", headers=ADMIN_HEADERS)
    csrf = await signed_in(client)
    resp = await client.post(f"/console/tenants/{tenant.id}/scim/tokens", data={"csrf_token": csrf})
    assert resp.status == 200 and str(resp.url).endswith("/scim/tokens/new")  # followed the 303
    assert NEW_TOKEN.search(await resp.text())
    reload = await client.get(resp.url.path)
    assert reload.status == 200 and not NEW_TOKEN.search(await reload.text())
    assert await live_tokens(db, tenant.id) == 1


async def test_a_new_token_cookie_of_another_session_or_forged_shows_nothing(
    client, aiohttp_client, settings
):
    tenant = await make_tenant(client)
    csrf = await signed_in(client)
    resp = await create_in_console(client, csrf, tenant.id)
    value = resp.cookies[scim_pages.NEW_TOKEN_COOKIE].value
    reveal = f"/console/tenants/{tenant.id}/scim/tokens/new"
    other = await aiohttp_client(create_app(settings))
    await signed_in(other)
    for given in (value, value[:-4] + "AAAA"):
        other.session.cookie_jar.update_cookies({scim_pages.NEW_TOKEN_COOKIE: given}, other.make_url(reveal))
        body = await (await other.get(reveal)).text()
        assert not NEW_TOKEN.search(body) and "shown once" in body


async def test_the_token_form_refuses_a_bad_expiry_and_keeps_the_label(client, db):
    tenant = await make_tenant(client)
    csrf = await signed_in(client)
    plain = "Expires in: a whole number of days from 1 to 3650, or empty for a token that never expires."
    for days in ("0", "soon", "4000", "99999999999999"):
        resp = await create_in_console(client, csrf, tenant.id, label="Entra", expires_in_days=days)
        body = html.unescape(await resp.text())
        assert resp.status == 400 and plain in body, body[:2000]
        assert "Must be" not in body and "Not a valid" not in body  # never the schema's words
        assert 'value="Entra"' in body
    for label in ("x" * 101, "a\x00b"):
        resp = await create_in_console(client, csrf, tenant.id, label=label)
        body = html.unescape(await resp.text())
        assert resp.status == 400 and "The label is at most 100 characters of text." in body
        assert "label:" not in body
    resp = await client.post(
        f"/console/tenants/{tenant.id}/scim", data={"csrf_token": csrf, "enabled": "maybe"}
    )
    body = html.unescape(await resp.text())
    assert resp.status == 400 and "Choose whether SCIM provisioning is on or off." in body
    assert "Not a valid boolean" not in body
    assert await live_tokens(db, tenant.id) == 1
    resp = await create_in_console(client, csrf, tenant.id, label="Entra", expires_in_days="30")
    assert resp.status == 303
    expires_at = await db.fetchval(
        "SELECT expires_at FROM scim_tokens WHERE tenant_id = $1::uuid AND label = 'Entra'", tenant.id
    )
    assert timedelta(days=29) < expires_at - datetime.now(UTC) <= timedelta(days=30)


# --- last used and expiry --------------------------------------------------------------------------


async def test_last_used_is_written_after_scim_requests_without_a_write_per_request(
    aiohttp_client, settings, db, monkeypatch
):
    """20 requests within an hour's interval: no write; stopping the app writes them, in one statement."""
    writes: list[dict[UUID, float]] = []
    real = token_cache.record_token_uses

    async def counted(pool: Any, uses: dict[UUID, float]) -> None:
        writes.append(dict(uses))
        await real(pool, uses)

    monkeypatch.setattr(token_cache, "record_token_uses", counted)  # the real write, counted
    hourly = await aiohttp_client(create_app(replace(settings, token_last_used_seconds=3600)))
    tenant = await make_tenant(hourly)
    other = await make_tenant(hourly)
    for _ in range(10):
        assert (await hourly.get("/scim/v2/Users", headers=tenant.headers)).status == 200
        assert (await hourly.get("/scim/v2/Users", headers=other.headers)).status == 200
    assert writes == []
    assert (
        await db.fetchval(
            "SELECT count(*) FROM scim_tokens WHERE id = ANY($1::uuid[]) AND last_used_at IS NOT NULL",
            [tenant.token_id, other.token_id],
        )
        == 0
    )
    await hourly.close()  # the app stops: the last uses are written
    assert [set(map(str, w)) for w in writes] == [{tenant.token_id, other.token_id}]
    for token_id in (tenant.token_id, other.token_id):
        used = await db.fetchval("SELECT last_used_at FROM scim_tokens WHERE id = $1::uuid", token_id)
        assert used is not None and datetime.now(UTC) - used < timedelta(minutes=5)


async def test_a_cancelled_write_of_last_used_puts_the_uses_back(aiohttp_client, settings):
    hourly = await aiohttp_client(create_app(replace(settings, token_last_used_seconds=3600)))
    tenant = await make_tenant(hourly)
    cache = hourly.server.app[TOKEN_CACHE]
    assert (await hourly.get("/scim/v2/Users", headers=tenant.headers)).status == 200
    noted = dict(cache._used)  # what the next write would send
    assert UUID(tenant.token_id) in noted
    write = asyncio.create_task(cache.write_uses())
    await asyncio.sleep(0)  # the write has taken the uses and waits on the database
    assert cache._used == {}
    write.cancel()
    with pytest.raises(asyncio.CancelledError):
        await write
    assert cache.take_uses() == noted  # back for the next write, nothing lost


async def test_last_used_is_written_every_interval_and_shown_on_the_panel(client, db):
    tenant = await make_tenant(client)
    assert (
        await db.fetchval("SELECT last_used_at FROM scim_tokens WHERE id = $1::uuid", tenant.token_id) is None
    )
    for _ in range(5):
        assert (await client.get("/scim/v2/Users", headers=tenant.headers)).status == 200
    used = await wait_until(
        lambda: db.fetchval("SELECT last_used_at FROM scim_tokens WHERE id = $1::uuid", tenant.token_id),
        what="the token's last use written",
    )
    assert datetime.now(UTC) - used < timedelta(minutes=5)
    await signed_in(client)
    page = await (await client.get(f"/console/tenants/{tenant.id}/scim")).text()
    assert used.strftime("%Y-%m-%d %H:%M") in page


async def test_writing_last_used_sends_no_change_notification(db, database_url, tenant):
    """Those writes would otherwise empty every web process's token cache once a minute."""
    import asyncpg

    from scimsvc.store.tenants import AUTH_CHANNEL, record_token_uses

    heard: list[str] = []
    listener = await asyncpg.connect(database_url)
    try:
        await listener.add_listener(AUTH_CHANNEL, lambda *args: heard.append(args[-1]))
        await record_token_uses(db, {UUID(tenant.token_id): datetime.now(UTC).timestamp()})
        assert await db.fetchval("SELECT last_used_at FROM scim_tokens WHERE id = $1::uuid", tenant.token_id)
        # Notifications of one session arrive in commit order: once this one is heard, an earlier one was.
        await db.execute("SELECT pg_notify($1, 'sentinel')", AUTH_CHANNEL)
        await wait_until(lambda: "sentinel" in heard, what="the sentinel notification")
        assert heard == ["sentinel"]
        await db.execute("UPDATE scim_tokens SET revoked_at = now() WHERE id = $1::uuid", tenant.token_id)
        await wait_until(lambda: len(heard) == 2, what="a revocation notified as before")
    finally:
        await listener.close()


async def test_an_expired_token_is_refused_like_a_revoked_one(client, db):
    tenant = await make_tenant(client)
    revoked = await make_tenant(client)
    await client.delete(
        f"/admin/v1/tenants/{revoked.id}/scim/tokens/{revoked.token_id}", headers=ADMIN_HEADERS
    )
    assert (await client.get("/scim/v2/Users", headers=tenant.headers)).status == 200  # cached now
    await db.execute(
        "UPDATE scim_tokens SET expires_at = now() - interval '1 second' WHERE id = $1::uuid", tenant.token_id
    )

    async def refused() -> Any:
        resp = await client.get("/scim/v2/Users", headers=tenant.headers)
        return resp if resp.status == 401 else None

    expired = await wait_until(refused, what="the expired token refused")
    revoked_answer = await client.get("/scim/v2/Users", headers=revoked.headers)
    assert revoked_answer.status == 401
    assert (await expired.json())["detail"] == (await revoked_answer.json())["detail"]
    assert "expired" in (await expired.json())["detail"]
    assert expired.headers["WWW-Authenticate"] == revoked_answer.headers["WWW-Authenticate"]
    listed = await (
        await client.get(f"/admin/v1/tenants/{tenant.id}/scim/tokens", headers=ADMIN_HEADERS)
    ).json()
    assert listed[0]["state"] == "expired"


async def test_the_token_cache_honours_an_expiry_without_a_notification(aiohttp_client, settings, db):
    # Cached for ten minutes: only the expiry itself can end the entry before then.
    client = await aiohttp_client(create_app(replace(settings, token_cache_seconds=600)))
    tenant = await make_tenant(client)
    soon = (datetime.now(UTC) + timedelta(seconds=10)).isoformat()
    resp = await client.post(
        f"/admin/v1/tenants/{tenant.id}/scim/tokens", json={"expires_at": soon}, headers=ADMIN_HEADERS
    )
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    headers = {"Authorization": f"Bearer {body['token']}"}
    cache = client.app[TOKEN_CACHE]
    await wait_until(lambda: cache.active, what="the token cache listening")
    assert (await client.get("/scim/v2/Users", headers=headers)).status == 200
    assert cache.holds(body["token"])  # served from memory from now on
    generation = cache._generation  # bumped by every change notification

    async def refused() -> bool:
        return (await client.get("/scim/v2/Users", headers=headers)).status == 401

    await wait_until(refused, what="the cached token refused once it expired")
    assert cache._generation == generation and cache.active  # no notification, no reconnect emptied it
    assert await db.fetchval("SELECT revoked_at FROM scim_tokens WHERE id = $1::uuid", body["id"]) is None


# --- admin API -------------------------------------------------------------------------------------


async def test_the_admin_api_creates_tokens_with_an_expiry_and_lists_every_field(client):
    tenant = await make_tenant(client)
    url = f"/admin/v1/tenants/{tenant.id}/scim/tokens"
    resp = await client.post(url, json={"label": "Entra", "expires_in_days": 90}, headers=ADMIN_HEADERS)
    assert resp.status == 201
    created = await resp.json()
    assert set(created) == {"id", "label", "expires_at", "token"}
    assert timedelta(days=89) < datetime.fromisoformat(created["expires_at"]) - datetime.now(UTC)
    at = (datetime.now(UTC) + timedelta(days=7)).replace(microsecond=0)
    resp = await client.post(url, json={"expires_at": at.isoformat()}, headers=ADMIN_HEADERS)
    assert resp.status == 201 and datetime.fromisoformat((await resp.json())["expires_at"]) == at

    listed = await (await client.get(url, headers=ADMIN_HEADERS)).json()
    assert [t["label"] for t in listed] == ["", "Entra", ""]
    for token in listed:
        assert set(token) == {
            "id",
            "label",
            "created_by",
            "created_at",
            "last_used_at",
            "expires_at",
            "revoked_at",
            "state",
        }
        assert token["created_by"] == "operator" and token["state"] == "live" and "token" not in token
    assert listed[0]["expires_at"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"expires_at": "2001-01-01T00:00:00Z"}, "expires_at must be in the future"),
        ({"expires_at": "next tuesday"}, "expires_at"),
        ({"expires_at": "9999-12-31T23:59:59-05:00"}, "expires_at"),
        ({"expires_in_days": 0}, "expires_in_days"),
        ({"expires_in_days": "30"}, "expires_in_days"),
        ({"expires_in_days": 3651}, "expires_in_days"),
        ({"expires_in_days": 3, "expires_at": "2099-01-01T00:00:00Z"}, "not both"),
    ],
)
async def test_a_bad_expiry_is_a_400_naming_the_field_and_creates_nothing(client, db, body, field):
    tenant = await make_tenant(client)
    resp = await client.post(f"/admin/v1/tenants/{tenant.id}/scim/tokens", json=body, headers=ADMIN_HEADERS)
    assert resp.status == 400
    assert field in (await resp.json())["detail"]
    assert await live_tokens(db, tenant.id) == 1


# --- confirmations ---------------------------------------------------------------------------------


async def test_revoking_goes_through_a_confirmation_page_that_changes_nothing(client, db):
    tenant = await make_tenant(client)
    csrf = await signed_in(client)
    panel = await (await client.get(f"/console/tenants/{tenant.id}/scim")).text()
    confirm = f"/console/tenants/{tenant.id}/scim/tokens/{tenant.token_id}/revoke"
    assert f'href="{confirm}"' in panel and f'action="{confirm}"' not in panel  # a link, not a form

    resp = await client.get(confirm)
    body = await resp.text()
    assert resp.status == 200
    assert "The identity provider using this token will get 401 from now on." in body
    assert f'method="post" action="{confirm}"' in body
    assert await live_tokens(db, tenant.id) == 1  # the GET changed nothing
    assert (await client.get("/scim/v2/Users", headers=tenant.headers)).status == 200

    resp = await client.post(confirm, data={"csrf_token": csrf}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].endswith("/scim?done=token-revoked")
    assert await live_tokens(db, tenant.id) == 0
    assert (
        await db.fetchval(
            "SELECT actor FROM audit_log WHERE tenant_id = $1::uuid AND action = 'token_revoked'", tenant.id
        )
        == "admin"
    )
    assert "already revoked" in await (await client.get(confirm)).text()  # no form any more
    assert (await client.post(confirm, data={"csrf_token": csrf})).status == 404


async def test_another_organizations_token_is_a_404_on_the_confirmation_and_the_revoke(client, db):
    tenant, other = await make_tenant(client), await make_tenant(client)
    csrf = await signed_in(client)
    confirm = f"/console/tenants/{tenant.id}/scim/tokens/{other.token_id}/revoke"
    assert (await client.get(confirm)).status == 404
    assert (await client.post(confirm, data={"csrf_token": csrf})).status == 404
    assert await live_tokens(db, other.id) == 1


async def test_turning_scim_off_goes_through_a_confirmation_and_on_needs_none(client, db):
    tenant = await make_tenant(client)
    csrf = await signed_in(client)
    scim = f"/console/tenants/{tenant.id}/scim"
    enabled = "SELECT scim_enabled FROM tenants WHERE id = $1::uuid"

    resp = await client.get(scim + "/disable")
    body = await resp.text()
    assert resp.status == 200 and "Every token of this organization is refused" in body
    assert f'method="post" action="{scim}/disable"' in body
    assert await db.fetchval(enabled, tenant.id) is True  # the GET changed nothing
    # The old toggle form's POST is sent to the confirmation, not obeyed.
    resp = await client.post(scim, data={"csrf_token": csrf, "enabled": "false"}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == scim + "/disable"
    assert await db.fetchval(enabled, tenant.id) is True

    resp = await client.post(scim + "/disable", data={"csrf_token": csrf}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == scim + "?done=scim-off"
    assert await db.fetchval(enabled, tenant.id) is False
    assert (await client.get("/scim/v2/Users", headers=tenant.headers)).status in (401, 403)
    page = await (await client.get(resp.headers["Location"])).text()
    assert "this organization&#39;s tokens are refused" in page and "Turn SCIM on" in page

    resp = await client.post(scim, data={"csrf_token": csrf, "enabled": "true"}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == scim + "?done=scim-on"
    assert await db.fetchval(enabled, tenant.id) is True


# --- guides ----------------------------------------------------------------------------------------


async def test_the_okta_guide_has_the_exact_fields_and_values(client):
    tenant = await make_tenant(client)
    await signed_in(client)
    resp = await client.get(f"/console/tenants/{tenant.id}/scim/okta")
    body = html.unescape(await resp.text())
    assert resp.status == 200
    for text in (
        "SCIM connector base URL</th><td><code>http://scim.test/scim/v2</code>",
        "Unique identifier field for users</th><td><code>userName</code>",
        "Supported provisioning actions",
        "Push New Users, Push Profile Updates and Push Groups",
        "Import New Users and Profile Updates",
        "Authentication Mode</th><td><code>HTTP Header</code>",
        "Authorization (Bearer)",
        "Test Connector Configuration",
        "To App",
        "Create Users, Update User Attributes and Deactivate Users",
        "links to the team with exactly its name",
    ):
        assert text in body, text


async def test_the_entra_guide_has_the_exact_fields_and_mappings(client):
    tenant = await make_tenant(client)
    await signed_in(client)
    resp = await client.get(f"/console/tenants/{tenant.id}/scim/entra")
    body = html.unescape(await resp.text())
    assert resp.status == 200
    for text in (
        "Provisioning Mode to Automatic",
        "Authentication Method</th><td>Bearer authentication",
        "Tenant URL</th><td><code>http://scim.test/scim/v2</code>",
        "Secret Token",
        "Test Connection",
        "<code>userPrincipalName</code></td><td><code>userName</code>",
        '<code>mail</code></td><td><code>emails[type eq "work"].value</code>',
        '<code>Switch([IsSoftDeleted], , "False", "True", "True", "False")</code></td>'
        "<td><code>active</code>",
        "<code>SingleAppRoleAssignment([appRoleAssignments])</code></td>"
        '<td><code>roles[primary eq "True"].value</code>',
        "<code>manager</code></td>"
        "<td><code>urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager</code>",
        "about every 40 minutes",
    ):
        assert text in body, text
    assert "aadOptscim062020" not in body  # README does not ask for it


async def test_the_guides_agree_with_the_readme(client):
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    okta = readme[readme.index("## Connecting Okta") : readme.index("## Connecting Microsoft Entra ID")]
    entra = readme[readme.index("## Connecting Microsoft Entra ID") : readme.index("## API surface")]
    for text in (
        "SCIM connector base URL",
        "Unique identifier field for users",
        "`userName`",
        "HTTP Header",
        "Push New Users",
        "Create Users, Update User Attributes",
        "/scim/okta",
    ):
        assert text in okta, text
    for text in (
        "Automatic",
        "Bearer authentication",
        "Tenant URL",
        "Secret Token",
        "Test Connection",
        "SingleAppRoleAssignment",
        'roles[primary eq "True"].value',
        "enterprise:2.0:User:manager",
        "40 minutes",
        "/scim/entra",
    ):
        assert text in entra, text
    assert "aadOptscim062020" not in readme


# --- last request seen -----------------------------------------------------------------------------


async def test_the_panel_shows_the_last_request_seen_from_the_idp(client, db):
    tenant = await make_tenant(client)
    await signed_in(client)
    scim = f"/console/tenants/{tenant.id}/scim"
    assert "No request seen yet." in await (await client.get(scim)).text()

    await post_user(client, tenant)
    resp = await client.post(
        "/scim/v2/Users",
        json={"userName": "not an email"},
        headers={**tenant.headers, "User-Agent": "Okta SCIM Client 1.0.0"},
    )
    assert resp.status == 400

    async def both_logged() -> bool:
        count = "SELECT count(*) FROM provisioning_log WHERE tenant_id = $1::uuid"
        return await db.fetchval(count, tenant.id) == 2

    await wait_until(both_logged, what="both requests logged")
    body = html.unescape(await (await client.get(scim)).text())
    last = body[body.index('id="last-request"') :]
    assert "okta" in last.lower() and "POST <code>/scim/v2/Users</code>" in last and "400 (refused)" in last
    assert "userName" in last  # the refusal's detail
    assert f'href="/console/tenants/{tenant.id}/log"' in last


async def test_the_last_request_is_one_query_through_the_tenants_index(db, tenant):
    from scimsvc.store.provisioning_log import SELECT_NEWEST

    await db.execute("SET enable_seqscan = off")  # a small table: ask which index it would take
    plan = await db.fetchval("EXPLAIN (FORMAT JSON) " + SELECT_NEWEST, tenant.id)
    assert '"Index Name": "provisioning_log_tenant"' in plan, plan
    await db.execute("RESET enable_seqscan")


async def test_the_panel_says_when_the_provisioning_log_is_off(aiohttp_client, settings):
    client = await aiohttp_client(create_app(replace(settings, provisioning_log=False)))
    tenant = await make_tenant(client)
    await signed_in(client)
    body = await (await client.get(f"/console/tenants/{tenant.id}/scim")).text()
    assert "SCIMSVC_PROVISIONING_LOG=off" in body and "No request seen yet." in body


# --- who may open them, and how they read -----------------------------------------------------------


def test_every_scim_page_is_open_to_the_organizations_admins():
    handlers = [r.handler for r in scim_pages.routes if hasattr(r, "handler")]  # type: ignore[attr-defined]
    assert len(handlers) == 10
    assert all(open_to_org_admins(h) for h in handlers)


async def test_the_scim_pages_render_in_japanese_with_labels_and_say_organization(client, tenant):
    await signed_in(client)
    base = f"/console/tenants/{tenant.id}/scim"
    from tests.test_console import unlabelled_inputs

    for path in (
        base,
        base + "/okta",
        base + "/entra",
        base + "/disable",
        f"{base}/tokens/{tenant.token_id}/revoke",
    ):
        resp = await client.get(path)
        body = await resp.text()
        assert resp.status == 200 and unlabelled_inputs(body) == [], path
        main = body[body.index("<main") :]
        assert "tenant" not in re.sub(r"<[^>]+>|/console/tenants/", "", main).lower().replace(
            "tenant url", ""
        ), path
        ja = await (await client.get(path, headers={"Accept-Language": "ja"})).text()
        assert "組織" in ja or "トークン" in ja, path


async def test_the_cli_creates_a_token_with_an_expiry_recorded_as_made_by_the_cli(
    client, db, settings, tenant
):
    env = service_env(settings.database_url, queue_name=settings.queue_name)
    out = run_scimsvc("token", "create", tenant.id, "--expires-in-days", "7", env=env)
    assert out.returncode == 0, out.stderr
    token_id = re.search(r"SCIM token id:\s+(\S+)", out.stdout).group(1)  # type: ignore[union-attr]
    assert "expires at:" in out.stdout
    row = await db.fetchrow("SELECT created_by, expires_at FROM scim_tokens WHERE id = $1::uuid", token_id)
    assert row["created_by"] == "cli"
    assert timedelta(days=6) < row["expires_at"] - datetime.now(UTC) <= timedelta(days=7)
    out = run_scimsvc("token", "create", tenant.id, "--expires-in-days", "0", env=env)
    assert out.returncode == 2 and "expires_in_days" in out.stderr
    assert await live_tokens(db, tenant.id) == 2


def test_every_text_of_the_scim_pages_has_its_japanese():
    from pathlib import Path

    from scimsvc.web.console.i18n import catalogue
    from scimsvc.web.console.pages import NOTICES

    templates = Path(scim_pages.__file__).parent / "templates"
    texts = {
        m.group(1) or m.group(2)
        for path in templates.glob("scim*.html")
        for m in re.finditer(r'_\(\s*"((?:[^"\\]|\\.)*)"|_\(\s*\'((?:[^\'\\]|\\.)*)\'', path.read_text())
    }
    texts = {t.replace('\\"', '"') for t in texts} | {
        NOTICES[k] for k in ("scim-on", "scim-off", "token-revoked")
    }
    assert len(texts) > 100
    assert sorted(t for t in texts if t not in catalogue("ja")) == []
