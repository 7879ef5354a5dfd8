"""The console speaks the words of the product's help pages, in English and Japanese: licenses, audit
actions and actors, delivery states by their names (web/console/names.py), never the stored codes; and a
form's error in the page's language, in words the person who reads it can act on (an organization admin is
never told to change a server setting), a 400 page with nothing changed."""

from __future__ import annotations

import dataclasses
import html
import re
from typing import Any

from scimsvc.web.app import create_app
from scimsvc.web.console.i18n import LANG_COOKIE
from tests.conftest import ADMIN_HEADERS, create_team, make_tenant, post_user, run_worker, unique_email
from tests.portal import portal_session
from tests.test_console import csrf_of, sign_in, signed_in
from tests.test_webhook_endpoints import SIGNING_KEY, hook_settings, hooks

__all__ = ["hook_settings", "hooks"]  # the fixtures of a client that may register loopback endpoints

JA = {"Accept-Language": "ja"}
TAG = re.compile(r"<[^>]*>")


def visible(body: str) -> str:
    """The text a person reads: no tags (so no attribute values: option values, URLs, classes)."""
    without_head = body.split("</head>", 1)[-1]
    return html.unescape(TAG.sub(" ", without_head))


def part(body: str, start: str, end: str = "</table>") -> str:
    return body.split(start, 1)[1].split(end, 1)[0]


def japanese(client: Any) -> None:
    client.session.cookie_jar.update_cookies({LANG_COOKIE: "ja"})


async def restricted_user(client: Any, settings: Any) -> tuple[Any, dict[str, Any]]:
    """An organization with no seat, whose new user gets the restricted free license."""
    tenant = await make_tenant(client, seats=0, fallback_license="free_restricted")
    user = await post_user(client, tenant)
    await run_worker(settings)
    return tenant, user


# --- licenses --------------------------------------------------------------------------------------------


async def test_the_users_list_and_a_user_page_name_the_license_as_the_help_pages_do(client, settings):
    tenant, user = await restricted_user(client, settings)
    await portal_session(client, tenant.id)
    base = f"/console/tenants/{tenant.id}/users"
    body = await (await client.get(base)).text()
    table = visible(part(body, 'id="users-table"'))
    assert "Restricted free license" in table and "free_restricted" not in table
    japanese(client)
    body = await (await client.get(base)).text()
    table = visible(part(body, 'id="users-table"'))
    assert "制限付き無料ライセンス" in table and "free_restricted" not in table
    # The license filter: its options' labels are names, their values the codes the URL carries.
    options = part(body, '<select id="license" name="license">', "</select>")
    assert '<option value="free_restricted">制限付き無料ライセンス</option>' in options
    assert '<option value="none">ライセンスなし</option>' in options
    assert "free_restricted" not in visible(options) and "full" not in visible(options)
    body = await (await client.get(f"{base}/{user['id']}")).text()
    assert '<dd id="user-license">制限付き無料ライセンス</dd>' in body


async def test_the_seats_and_new_organization_forms_offer_licenses_by_name(client):
    tenant = await make_tenant(client, scim_enabled=False)
    await signed_in(client)
    japanese(client)
    body = await (await client.get(f"/console/tenants/{tenant.id}/seats")).text()
    choices = part(body, '<select id="assign-license" name="license">', "</select>")
    assert '<option value="free_restricted">制限付き無料ライセンス</option>' in choices
    assert '<option value="full">フルライセンス</option>' in choices
    assert "free_restricted" not in visible(choices)
    body = await (await client.get("/console/tenants")).text()
    form = visible(part(body, 'id="create-heading"', "</form>"))
    assert "制限付き無料ライセンス" in form and "free_restricted" not in form and "none:" not in form


async def test_an_email_change_notice_shows_its_delivery_in_words(client, settings, db):
    tenant = await make_tenant(client)
    user = await post_user(client, tenant)
    await run_worker(settings)
    patch = {"op": "replace", "path": "userName", "value": unique_email("renamed")}
    resp = await client.patch(
        f"/scim/v2/Users/{user['id']}",
        json={"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [patch]},
        headers=tenant.headers,
    )
    assert resp.status in (200, 204), await resp.text()
    await run_worker(settings)  # no SMTP here: the notices are not sent
    assert await db.fetchval("SELECT count(*) FROM notices WHERE user_id = $1::uuid", user["id"]) == 2
    await portal_session(client, tenant.id)
    japanese(client)
    body = await (await client.get(f"/console/tenants/{tenant.id}/users/{user['id']}")).text()
    notices = visible(part(body, 'id="notices-table"'))
    assert notices.count("未送信:メールサーバーが設定されていません") == 2
    assert "not_sent" not in notices and "SCIMSVC_SMTP_URL" not in notices
    audit = visible(part(body, 'id="user-audit"'))
    assert "メールアドレスを変更" in audit and "IdP (SCIM)" in audit and "email_change" not in audit


# --- the audit log ---------------------------------------------------------------------------------------


async def test_the_audit_page_names_actions_and_actors_and_filters_by_a_list(client):
    tenant = await make_tenant(client)
    resp = await client.put(
        f"/admin/v1/tenants/{tenant.id}/scim", json={"enabled": False}, headers=ADMIN_HEADERS
    )
    assert resp.status == 200, await resp.text()
    await create_team(client, tenant, "Sales")
    await portal_session(client, tenant.id)
    audit = f"/console/tenants/{tenant.id}/audit"
    body = await (await client.get(audit)).text()
    table = visible(part(body, 'id="audit-table"'))
    assert "SCIM turned off" in table and "Team created" in table and "Operator" in table
    assert "scim_disabled" not in table and "team_created" not in table
    assert "name: Sales" in table  # the detail as key: value lines
    japanese(client)
    body = await (await client.get(audit)).text()
    table = visible(part(body, 'id="audit-table"'))
    assert "SCIM をオフ" in table and "チームを作成" in table and "オペレーター" in table
    # The filter is a list of the actions by name; its values are the codes.
    select = part(body, '<select id="action" name="action">', "</select>")
    assert '<option value="scim_disabled">SCIM をオフ</option>' in select
    assert '<option value="">すべての操作</option>' in select and "_" not in visible(select)
    body = await (await client.get(audit, params={"action": "scim_disabled"})).text()
    table = visible(part(body, 'id="audit-table"'))
    assert "SCIM をオフ" in table and "チームを作成" not in table
    assert '<option value="scim_disabled" selected>' in body
    resp = await client.get(audit, params={"action": "scim_destroyed"})
    body = await resp.text()
    assert resp.status == 400 and "操作は一覧から選んでください" in body
    assert 'id="audit-table"' not in body


async def test_the_audit_filters_errors_are_in_the_pages_language(client, tenant):
    await signed_in(client)
    japanese(client)
    audit = f"/console/tenants/{tenant.id}/audit"
    resp = await client.get(audit, params={"user": "nobody@example.com"})
    body = visible(await resp.text())
    assert resp.status == 404 and "この組織にユーザー「nobody@example.com」はいません" in body
    assert "user:" not in body and "no user" not in body
    resp = await client.get(audit, params={"before": "yesterday"})
    body = visible(await resp.text())
    assert resp.status == 400 and "監査ログのそのページはありません" in body and "before must" not in body


async def test_the_operators_webhook_changes_name_their_action_and_actor(hooks):
    resp = await hooks.post(
        "/admin/v1/webhooks", json={"url": "https://localhost:8443/hooks/scim"}, headers=ADMIN_HEADERS
    )
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    try:
        await signed_in(hooks)
        japanese(hooks)
        body = await (await hooks.get("/console/webhooks")).text()
    finally:
        # An operator's endpoint hears every organization's events: gone before other tests count deliveries.
        deleted = await hooks.delete(f"/admin/v1/webhooks/{created['id']}", headers=ADMIN_HEADERS)
        assert deleted.status == 204
    changes = visible(part(body, 'id="operator-audit-table"'))
    # This endpoint's row (operator rows have no tenant: other tests' may be listed too).
    added = changes.split("Webhook エンドポイントを追加")[1:]
    row = next(r for r in added if f"endpoint_id: {created['id']}" in r)
    assert "オペレーター" in changes and "url: https://localhost:8443/hooks/scim" in row
    assert "webhook_created" not in changes


# --- errors in the page's words --------------------------------------------------------------------------


async def test_a_team_name_taken_is_told_in_the_pages_language(client, tenant, db):
    await create_team(client, tenant, "Sales")
    portal = await portal_session(client, tenant.id)
    japanese(client)
    resp = await client.post(
        f"/console/tenants/{tenant.id}/teams", data={"csrf_token": portal.csrf, "name": "Sales"}
    )
    body = visible(await resp.text())
    assert resp.status == 409
    assert "この組織にはすでに「Sales」という名前のチームがあります。別の名前にしてください。" in body
    assert "already" not in body
    assert await db.fetchval("SELECT count(*) FROM teams WHERE tenant_id = $1::uuid", tenant.id) == 1


async def test_adding_an_unknown_member_or_assigning_to_an_unknown_user_says_so_in_japanese(client, db):
    tenant = await make_tenant(client, scim_enabled=False)
    team = await create_team(client, tenant, "Sales")
    csrf = await signed_in(client)
    japanese(client)
    resp = await client.post(
        f"/console/tenants/{tenant.id}/teams/{team['id']}/members",
        data={"csrf_token": csrf, "user": "ghost@example.com"},
    )
    body = visible(await resp.text())
    assert resp.status == 404 and "この組織にユーザー「ghost@example.com」はいません" in body
    assert "user:" not in body
    resp = await client.post(
        f"/console/tenants/{tenant.id}/seats/assign",
        data={"csrf_token": csrf, "user": "ghost@example.com", "license": "full"},
    )
    body = visible(await resp.text())
    assert resp.status == 404 and "この組織にユーザー「ghost@example.com」はいません" in body
    assert await db.fetchval("SELECT count(*) FROM team_members WHERE team_id = $1::uuid", team["id"]) == 0


async def test_without_a_signing_key_an_organization_admin_is_told_to_ask_the_operator(client, tenant, db):
    portal = await portal_session(client, tenant.id)
    japanese(client)
    form = {"csrf_token": portal.csrf, "url": "https://hooks.example.com/scim"}
    resp = await client.post(f"/console/tenants/{tenant.id}/webhooks", data=form)
    body = visible(await resp.text())
    assert resp.status == 409 and "このサービスのオペレーターに Webhook の署名を設定するよう依頼して" in body
    assert "SCIMSVC_WEBHOOK_SIGNING_KEY" not in body
    assert (
        await db.fetchval("SELECT count(*) FROM webhook_endpoints WHERE tenant_id = $1::uuid", tenant.id) == 0
    )


async def test_without_a_signing_key_the_operator_is_told_the_setting(client, tenant, db):
    csrf = await signed_in(client)
    japanese(client)
    form = {"csrf_token": csrf, "url": "https://hooks.example.com/scim"}
    resp = await client.post(f"/console/tenants/{tenant.id}/webhooks", data=form)
    body = visible(await resp.text())
    assert resp.status == 409 and "サーバーで SCIMSVC_WEBHOOK_SIGNING_KEY" in body
    assert "webhooks cannot be signed" not in body
    assert (
        await db.fetchval("SELECT count(*) FROM webhook_endpoints WHERE tenant_id = $1::uuid", tenant.id) == 0
    )


async def test_a_webhook_urls_errors_are_words_a_person_can_act_on(aiohttp_client, settings, db):
    signing = dataclasses.replace(settings, webhook_signing_key=SIGNING_KEY)  # no private network allowed
    client = await aiohttp_client(create_app(signing))
    tenant = await make_tenant(client)
    portal = await portal_session(client, tenant.id)
    japanese(client)
    hooks = f"/console/tenants/{tenant.id}/webhooks"
    too_long = "https://hooks.example.com/" + "a" * 2000
    resp = await client.post(hooks, data={"csrf_token": portal.csrf, "url": too_long})
    body = visible(await resp.text())
    assert (
        resp.status == 400 and "エンドポイントの URL を https:// から入力してください(2000 文字以内)" in body
    )
    assert "Length must be" not in body and "url:" not in body
    resp = await client.post(hooks, data={"csrf_token": portal.csrf, "url": "ftp://hooks.example.com/"})
    body = visible(await resp.text())
    assert resp.status == 400 and "URL は https:// で始めてください" in body
    resp = await client.post(hooks, data={"csrf_token": portal.csrf, "url": "https://10.1.2.3/hook"})
    body = visible(await resp.text())
    assert resp.status == 400 and "ホスト 10.1.2.3 はプライベートネットワークのアドレス" in body
    assert "オペレーターにそのネットワークを許可するよう依頼" in body
    assert "SCIMSVC_WEBHOOK_ALLOWED_NETWORKS" not in body and "url:" not in body
    resp = await client.post(hooks, data={"csrf_token": portal.csrf, "url": "https://no-such-host.invalid/h"})
    body = visible(await resp.text())
    assert resp.status == 400 and "ホスト no-such-host.invalid が見つかりません" in body, body[:400]
    assert (
        await db.fetchval("SELECT count(*) FROM webhook_endpoints WHERE tenant_id = $1::uuid", tenant.id) == 0
    )
    # The operator, who can change the setting, is told its name.
    operator = await aiohttp_client(create_app(signing))
    csrf = await signed_in(operator)
    resp = await operator.post(hooks, data={"csrf_token": csrf, "url": "https://10.1.2.3/hook"})
    body = visible(await resp.text())
    assert resp.status == 400 and "allow that network with SCIMSVC_WEBHOOK_ALLOWED_NETWORKS" in body


async def test_the_portal_sign_in_pages_email_error_is_in_japanese(client):
    page = await client.get("/console/portal/sign-in", headers=JA)
    csrf = csrf_of(await page.text())
    resp = await client.post(
        "/console/portal/sign-in", data={"csrf_token": csrf, "email": "not-an-address"}, headers=JA
    )
    body = visible(await resp.text())
    assert resp.status == 400 and "メールアドレスを入力してください(例: name@example.com)。" in body
    assert "email:" not in body and "Not a valid" not in body


async def test_a_wrong_operator_key_is_told_in_japanese(client):
    japanese(client)
    resp = await sign_in(client, key="not-the-key")
    body = visible(await resp.text())
    assert resp.status == 401 and "オペレーターキーが違います" in body and "That is not" not in body


async def test_the_new_organization_forms_errors_are_in_japanese(client, db):
    csrf = await signed_in(client)
    japanese(client)
    for field, typed, told in (
        ("seats", "lots", "シート数は 0 から 10,000,000 までの整数で入力してください"),
        ("allowed_domains", "example.com, bad_domain!", "「bad_domain!」はメールドメインではありません"),
    ):
        form = {"csrf_token": csrf, "name": "Words Co", "seats": "3", field: typed}
        resp = await client.post("/console/tenants", data=form)
        body = visible(await resp.text())
        assert resp.status == 400 and told in body, field
        assert "Not a valid" not in body and f"{field}:" not in body, field
    assert await db.fetchval("SELECT count(*) FROM tenants WHERE name = 'Words Co'") == 0


def test_audit_detail_lines_name_licenses_in_the_pages_language():
    from scimsvc.web.console.i18n import translator
    from scimsvc.web.console.user_pages import detail_lines

    english, japanese = translator("en"), translator("ja")
    allocation = {"action": "allocation", "detail": {"from": None, "to": "full", "team": "full"}}
    assert detail_lines(allocation, english) == ["from: No license", "to: Full license", "team: full"]
    waiting = {"action": "waiting", "detail": {"to": "free_restricted"}}
    assert detail_lines(waiting, japanese) == ["to: 制限付き無料ライセンス"]
    # Another action's from → to is shown as stored: a team renamed from "full" keeps its name.
    renamed = {"action": "team_renamed", "detail": {"from": "full", "to": None, "n": {"from": 3, "to": 5}}}
    assert detail_lines(renamed, english) == ["from: full", "to: –", 'n: {"from":3,"to":5}']


async def test_a_webhook_host_not_looked_up_in_time_is_told_as_such_not_as_a_typo(aiohttp_client, settings):
    # No lookup finishes within 0 s (services/webhooks.py:check_url waits webhook_timeout_seconds).
    hurried = dataclasses.replace(settings, webhook_signing_key=SIGNING_KEY, webhook_timeout_seconds=0)
    client = await aiohttp_client(create_app(hurried))
    tenant = await make_tenant(client)
    portal = await portal_session(client, tenant.id)
    hooks = f"/console/tenants/{tenant.id}/webhooks"
    resp = await client.post(hooks, data={"csrf_token": portal.csrf, "url": "https://hooks.example.com/h"})
    body = visible(await resp.text())
    assert resp.status == 400 and "did not answer in time when looked up" in body, body[:400]
    assert "was not found" not in body
