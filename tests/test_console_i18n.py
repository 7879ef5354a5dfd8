"""The console in English and Japanese: the browser's `Accept-Language`, the header's switch (its cookie
and its redirect, same-origin console paths only), pages in Japanese, and catalogues that do not rot."""

from __future__ import annotations

import ast
import html
import json
import string
from pathlib import Path
from typing import Any

import jinja2
import jinja2.nodes
import pytest

from scimsvc.web.console.i18n import (
    LANG_COOKIE,
    LANGUAGE_PATH,
    LOCALES,
    accepted_language,
    back_to,
    catalogue,
    translator,
)
from tests.conftest import make_tenant
from tests.portal import portal_session
from tests.test_console import csrf_of, signed_in
from tests.test_webhook_endpoints import HOOK_URL, add_endpoint, hook_settings, hooks, hooks_of

__all__ = ["hook_settings", "hooks"]  # the fixtures of a client that may register loopback endpoints

CONSOLE = Path(__file__).parent.parent / "scimsvc" / "web" / "console"
TEMPLATES = CONSOLE / "templates"
# The pages this part of the console owns: every text of theirs has its Japanese.
# Every page and every module that writes a text on one is translated (English is the key).
TRANSLATED_TEMPLATES = tuple(sorted(p.name for p in TEMPLATES.glob("*.html")))
TRANSLATED_MODULES = tuple(sorted(p.name for p in CONSOLE.glob("*.py")))
YEAR = 365 * 24 * 3600


# --- Accept-Language -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("", "en"),
        ("ja", "ja"),
        ("JA-jp", "ja"),
        ("ja-JP,ja;q=0.9,en-US;q=0.8,en;q=0.7", "ja"),
        ("en-US,en;q=0.9,ja;q=0.8", "en"),
        ("fr-CA, fr;q=0.9, ja;q=0.1", "ja"),  # neither French nor anything else: the one we have
        ("de, *;q=0.5", "en"),  # a wildcard is no language of ours
        ("ja;q=0", "en"),  # q=0: "not acceptable"
        ("ja;q=0.5, en;q=0.5", "ja"),  # a tie: the header's order
        ("en;q=0.5, ja;q=0.5", "en"),
        ("en;q=0.3, ja ; q=0.8", "ja"),  # spaces around the parameter
        ("ja;Q=0.9, en;q=0.8", "ja"),  # the parameter's name is case-insensitive
        ("ja;q=abc, en;q=0.1", "en"),  # a weight that is no number: the entry is ignored
        ("ja;q=nan, en;q=0.1", "en"),
        ("ja;q=inf, en;q=0.1", "en"),
        ("ja;q=1.5, en;q=0.9", "en"),  # above 1: not a weight
        ("ja;q=0.0001, en;q=0.001", "en"),  # more than three decimals: not a weight
        ("ja;q=-1", "en"),
        ("jav, ja-x;q=0.2", "ja"),  # Javanese is not Japanese; "ja-x" is
        ("x-ja, en-JA;q=0.5", "en"),
        ("ja_JP", "en"),  # an underscore is no tag separator
        (",,;;,=,", "en"),
        (",".join(["fr"] * 20 + ["ja"]), "en"),  # only the first 20 entries are read
        ("日本語", "en"),
    ],
)
def test_accept_language_picks_the_best_language_we_have(header, expected):
    assert accepted_language(header) == expected


async def test_the_browsers_language_picks_japanese_when_no_switch_was_used(client):
    resp = await client.get("/console/login", headers={"Accept-Language": "ja-JP,ja;q=0.9,en;q=0.8"})
    body = await resp.text()
    assert resp.status == 200 and '<html lang="ja">' in body
    assert "<title>サインイン · scimsvc コンソール</title>" in body
    assert '<h1 id="page-title">サインイン</h1>' in body
    assert '<label for="key">オペレーターキー</label>' in body
    resp = await client.get("/console/login", headers={"Accept-Language": "en-GB,ja;q=0.5"})
    assert '<html lang="en">' in await resp.text()


# --- the switch ------------------------------------------------------------------------------------------


async def switch(client: Any, lang: str, back: str, *, csrf: str | None = None) -> Any:
    """Post the header's language form (as a page of `client`'s session shows it)."""
    if csrf is None:
        csrf = csrf_of(await (await client.get("/console/login")).text())
    data = {"csrf_token": csrf, "lang": lang, "next": back}
    return await client.post(LANGUAGE_PATH, data=data, allow_redirects=False)


async def test_the_switch_works_on_the_sign_in_page_and_sets_a_years_strict_cookie(client):
    page = await (await client.get("/console/login")).text()
    assert f'action="{LANGUAGE_PATH}"' in page
    assert '<label for="language-choice">Language</label>' in page  # the switch is labelled
    assert 'name="next" value="/console/login"' in page
    resp = await switch(client, "ja", "/console/login")
    assert resp.status == 303 and resp.headers["Location"] == "/console/login"
    cookie = resp.cookies[LANG_COOKIE]
    assert cookie.value == "ja" and cookie["path"] == "/console/" and cookie["samesite"] == "Strict"
    assert cookie["httponly"] and int(cookie["max-age"]) == YEAR and not cookie["secure"]
    # The cookie wins over the browser's language.
    body = await (await client.get("/console/login", headers={"Accept-Language": "en"})).text()
    assert '<html lang="ja">' in body and '<h1 id="page-title">サインイン</h1>' in body
    resp = await switch(client, "en", "/console/login")
    assert resp.cookies[LANG_COOKIE].value == "en"
    body = await (await client.get("/console/login", headers={"Accept-Language": "ja"})).text()
    assert '<html lang="en">' in body


async def test_the_switch_keeps_a_signed_in_pages_query(client):
    csrf = await signed_in(client)
    resp = await switch(client, "ja", "/console/tenants?done=team-created", csrf=csrf)
    assert resp.headers["Location"] == "/console/tenants?done=team-created"
    body = await (await client.get(resp.headers["Location"])).text()
    assert '<p class="notice" role="status">チームを作成しました。</p>' in body  # a notice, translated


@pytest.mark.parametrize(
    "back",
    [
        "",
        "https://evil.example/console/",
        "//evil.example/console/",
        "///evil.example",
        "/\\evil.example",
        "/console\\..\\admin",
        "javascript:alert(1)",
        "/admin/v1/tenants",
        "/consolex/tenants",
        "/console/../admin/v1/tenants",
        "/console/./tenants",
        "/console/%2e%2e/admin/v1/tenants",
        "/console/.%2e/admin/v1/tenants",
        "/console/%2E%2E/%2E%2E/scim/v2/Users",
        "/console/tenants/%2e/x",
        "/console/%2f/evil.example",
        "/console/%5c%5cevil.example",
        "/console/%0d%0aSet-Cookie:x",
        "/console//evil.example",
        "/console/tenants\r\nSet-Cookie: x=1",
        "/console/tenants#top",
        "/console/tenants?q=a b",
        "/console/tenants/ünïcode",
        "/console/" + "a" * 2001,
        "http:/console/tenants",
    ],
)
async def test_the_switch_sends_back_only_to_a_path_of_this_console(client, back):
    resp = await switch(client, "ja", back)
    assert resp.status == 303 and resp.headers["Location"] == "/console/"
    assert resp.cookies[LANG_COOKIE].value == "ja"


@pytest.mark.parametrize(
    "back", ["/console", "/console/", "/console/tenants?after=1&done=x", "/console/tenants/x-y_z~1/audit"]
)
def test_a_console_path_is_kept_as_it_is(back):
    assert back_to(back) == back


async def test_the_switch_checks_the_forms_token_and_the_language(client):
    await client.get("/console/login")
    resp = await switch(client, "ja", "/console/login", csrf="made-up")
    assert resp.status == 403 and LANG_COOKIE not in resp.cookies
    resp = await client.post(LANGUAGE_PATH, data={"lang": "ja"}, allow_redirects=False)
    assert resp.status == 403 and LANG_COOKIE not in resp.cookies
    resp = await switch(client, "fr", "/console/login")  # not one of ours: nothing remembered
    assert resp.status == 303 and LANG_COOKIE not in resp.cookies


# --- pages in Japanese -----------------------------------------------------------------------------------


async def test_pages_in_japanese_show_their_translated_titles(client):
    tenant = await make_tenant(client)
    await signed_in(client)
    client.session.cookie_jar.update_cookies({LANG_COOKIE: "ja"})
    base = f"/console/tenants/{tenant.id}"
    titles = {
        "/console/tenants": "組織",
        "/console/queue": "キューの状態",
        "/console/webhooks": "Webhook",
        base + "/audit": "監査ログ",
        base + "/log": "プロビジョニングログ",
        base + "/webhooks": "Webhook",
    }
    for path, title in titles.items():
        resp = await client.get(path)
        body = await resp.text()
        assert resp.status == 200, (path, body[:300])
        assert '<html lang="ja">' in body, path
        assert f"<title>{title} · scimsvc コンソール</title>" in body, path
        assert f'<h1 id="page-title">{title}</h1>' in body, path
        assert ">サインアウト</button>" in body and "Sign out" not in body, path
    body = await (await client.get(base + "/audit")).text()
    assert '<nav aria-label="組織" class="tenant-nav">' in body and ">シートとライセンス</a>" in body
    resp = await client.get(f"/console/tenants/{tenant.id}/webhooks/00000000-0000-0000-0000-000000000000")
    assert resp.status == 404 and "この Webhook エンドポイントはここにはありません" in await resp.text()
    # The queue's waiting jobs are not users waiting for a seat, and its status is a word, not a code.
    queue = await (await client.get("/console/queue")).text()
    assert "<dt>待機中のジョブ</dt>" in queue and "シート待ち" not in queue
    assert "Jobs waiting" not in queue
    assert not any(f"<strong>{status}</strong>" in queue for status in ("ok", "degraded", "stalled"))
    assert any(f"<strong>{word}</strong>" in queue for word in ("正常", "低下", "停止"))


async def test_a_notice_of_the_portals_sign_in_page_is_in_its_language(client):
    # The page's notices (portal_pages.py:NOTICES) go through `pages.page`, which translates them.
    resp = await client.get("/console/portal/sign-in?done=link-sent", headers={"Accept-Language": "ja"})
    body = await resp.text()
    assert resp.status == 200 and '<html lang="ja">' in body
    english = "If that address is registered for an organization, a sign-in link is on its way to it."
    assert english not in body
    assert catalogue("ja")[english + " It works once, within a few minutes."] in html.unescape(body)


async def test_the_japanese_confirmation_page_of_a_webhook_action(hooks):
    tenant = await make_tenant(hooks)
    created = await add_endpoint(hooks, hooks_of(tenant))
    await signed_in(hooks)
    hooks.session.cookie_jar.update_cookies({LANG_COOKIE: "ja"})
    page_url = f"/console/tenants/{tenant.id}/webhooks/{created['id']}"
    body = html.unescape(await (await hooks.get(page_url + "/delete")).text())
    assert '<h1 id="page-title">このエンドポイントを削除しますか?</h1>' in body
    assert f"エンドポイント {HOOK_URL} はその配信とともに削除されます。" in body
    assert f'<a href="{page_url}">キャンセル</a>' in body


async def test_a_portal_sessions_error_pages_lead_back_to_its_own_organization(client):
    tenant = await make_tenant(client)
    other = await make_tenant(client)
    await portal_session(client, tenant.id)
    home = f'<a href="/console/tenants/{tenant.id}/scim">Back to your organization</a>'
    for path in (f"/console/tenants/{other.id}/scim", "/console/queue", f"/console/tenants/{tenant.id}/nope"):
        resp = await client.get(path)
        body = await resp.text()
        assert resp.status == 404 and home in body, path
        assert 'href="/console/tenants"' not in body and "Back to the organizations" not in body, path
    client.session.cookie_jar.update_cookies({LANG_COOKIE: "ja"})
    body = await (await client.get("/console/queue")).text()
    assert "/console/queue にはコンソールのページがありません" in body and "組織のページに戻る" in body
    resp = await client.post(f"/console/tenants/{tenant.id}/scim/tokens", data={"csrf_token": "made-up"})
    body = await resp.text()
    assert resp.status == 403 and "このフォームは期限切れ" in body
    assert f'href="/console/tenants/{tenant.id}/scim"' in body


# --- the catalogues --------------------------------------------------------------------------------------


def template_texts(path: Path) -> set[str]:
    """The literal texts a template passes to `_()`."""
    tree = jinja2.Environment().parse(path.read_text(encoding="utf-8"))
    return {
        call.args[0].value
        for call in tree.find_all(jinja2.nodes.Call)
        if isinstance(call.node, jinja2.nodes.Name)
        and call.node.name == "_"
        and call.args
        and isinstance(call.args[0], jinja2.nodes.Const)
    }


def python_texts(path: Path) -> set[str]:
    """The literal texts a module passes to `_()`, and the values of its `NOTICES`."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "_":
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                found.add(node.args[0].value)
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "NOTICES" for t in node.targets
        ):
            assert isinstance(node.value, ast.Dict)
            found |= {ast.literal_eval(v) for v in node.value.values}
    return found


def every_text() -> set[str]:
    texts: set[str] = set()
    for path in TEMPLATES.glob("*.html"):
        texts |= template_texts(path)
    for path in CONSOLE.rglob("*.py"):
        texts |= python_texts(path)
    # Pages also translate values the code hands them (`_(u.reason.text)`, `_(u.state)`, a rate-limit
    # preset): the wording of `product/seats.py:no_seat_reason`, the states of `services/admin_users.py`.
    # Any string literal of the package counts for those.
    for path in (CONSOLE.parent.parent).rglob("*.py"):
        texts |= {
            node.value
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
        }
    return texts


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def test_every_japanese_text_is_a_non_empty_string_for_a_text_the_console_shows():
    shown = every_text()
    files = sorted((LOCALES / "ja").glob("*.json"))
    assert files
    for path in files:
        texts = json.loads(path.read_text(encoding="utf-8"))
        assert isinstance(texts, dict), path.name
        for english, japanese in texts.items():
            assert isinstance(japanese, str) and japanese.strip(), (path.name, english)
            assert english in shown, f"{path.name}: {english!r} is no _() text or notice any more"
            assert placeholders(japanese) == placeholders(english), (path.name, english)


def test_no_text_has_two_japanese_texts():
    # The catalogue is one dict of every file (`i18n.catalogue`): a text in two files with two translations
    # would show the last file's on every page, whatever the other file's page meant by it.
    seen: dict[str, tuple[str, str]] = {}
    clashes = []
    for path in sorted((LOCALES / "ja").glob("*.json")):
        for english, japanese in json.loads(path.read_text(encoding="utf-8")).items():
            first = seen.setdefault(english, (path.name, japanese))
            if first[1] != japanese:
                clashes.append((english, first, (path.name, japanese)))
    assert clashes == []


def test_every_text_of_these_pages_has_its_japanese():
    japanese = catalogue("ja")
    missing = []
    for name in TRANSLATED_TEMPLATES:
        missing += [(name, t) for t in template_texts(TEMPLATES / name) if t not in japanese]
    for name in TRANSLATED_MODULES:
        missing += [(name, t) for t in python_texts(CONSOLE / name) if t not in japanese]
    assert missing == []


def test_an_untranslated_text_is_shown_in_english_with_its_values():
    ja = translator("ja")
    assert ja("No such text in any catalogue: {n}", n=3) == "No such text in any catalogue: 3"
    assert ja("{used} of {seats}", used=2, seats=5) == "5 中 2"
    assert translator("en")("{used} of {seats}", used=2, seats=5) == "2 of 5"


async def test_the_switch_on_a_forms_answer_goes_back_to_the_page_the_form_was_on(client, db):
    csrf = await signed_in(client)
    form = {"csrf_token": csrf, "name": "Switch Co", "seats": "lots"}
    came_from = str(client.make_url("/console/tenants?after=1"))
    resp = await client.post("/console/tenants", data=form, headers={"Referer": came_from})
    assert resp.status == 400  # the form's answer: a page of a POST, which cannot be fetched again
    assert 'name="next" value="/console/tenants?after=1"' in await resp.text()
    resp = await client.post(
        "/console/tenants", data=form, headers={"Referer": "http://evil.example/console/tenants"}
    )
    assert 'name="next" value="/console/"' in await resp.text()
    assert await db.fetchval("SELECT count(*) FROM tenants WHERE name = 'Switch Co'") == 0


def test_every_name_a_page_shows_for_a_stored_code_has_its_japanese():
    from scimsvc.web.console import names

    japanese = catalogue("ja")
    tables = [
        v
        for k, v in vars(names).items()
        if k.isupper() and isinstance(v, dict) and all(isinstance(t, str) for t in v.values())
    ]
    assert names.ACTIONS in tables and names.LICENSES in tables
    shown = [t for table in tables for t in table.values()] + [names.NO_LICENSE, names.OTHER_IDP]
    assert [t for t in shown if t not in japanese] == []
    assert names.license_name("free_restricted") == "Restricted free license"
    assert names.license_name(None) == names.license_name("none") == "No license"
    assert names.idp_name("entra") == "Microsoft Entra ID" and names.idp_name("other") == "another client"


def test_every_audit_action_has_its_name_and_only_those():
    from scimsvc.contract import AuditAction
    from scimsvc.web.console import names

    # Every writer of an audit row names its action from AuditAction (store/audit.py types it): the console
    # names each, and lists nothing else in its filter.
    assert set(names.ACTIONS) == set(AuditAction)
