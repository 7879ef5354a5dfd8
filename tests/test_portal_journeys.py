"""The issue's journeys, walked in headless Chromium against a real `scimsvc serve` and worker, with
axe-core and the page-width check on every step and screenshots (tests/browser.py:screenshot says where).

- An organization admin: a portal link from the operator → SCIM on → a token shown once → Okta-shaped and
  Entra-shaped SCIM calls → the last request seen → seats and the waiting list → a user page → the
  provisioning log → re-linking a team → a webhook endpoint and a delivery → signing out (a copied cookie
  is refused). Screenshots `portal-journey-*` in English, the key pages again in Japanese.
- The operator: signs in, creates an organization, edits its settings, lowers its seats below use (with
  the confirmation), makes a portal link, ends every portal session (with the confirmation), the queue page.
- Two organizations side by side: the admin of one gets the 404 page for a page of the other
  (tests/test_portal_isolation.py walks every route; this is the browser's view of it).

Several browser contexts at once (the operator and an admin; a copied cookie), so one `chromium_browser`
for the module rather than test_console_browser's single-context fixtures.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from tests import test_console_browser as console
from tests.browser import (
    DESKTOP,
    NARROW,
    assert_accessible,
    axe_marks,
    call,
    chromium_browser,
    open_portal,
    screenshot,
    set_language,
    sign_in_as_operator,
    wait_for,
)
from tests.conftest import ADMIN_KEY
from tests.test_console_accessibility import too_wide

try:
    from playwright.sync_api import Browser, Page, expect
except ImportError:  # pragma: no cover - the test extra installs it; axe_marks skip without it
    pass

pytestmark = axe_marks
server = console.server

OKTA = "Okta SCIM Client 1.0.0"  # the User-Agents the provisioning log tells the IdPs apart by
ENTRA = "Microsoft Azure AD SCIM provisioning"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
HOOK_URL = "https://localhost:9443/hooks/scim"  # the test server allows this machine; nobody answers


@pytest.fixture(scope="module")
def browser(server: str) -> Iterator[Browser]:
    with chromium_browser() as b:
        yield b


def new_page(browser: Browser, server: str, *, lang: str = "en", viewport: dict[str, int] = DESKTOP) -> Page:
    context = browser.new_context(viewport=viewport)
    context.set_default_timeout(60_000)
    set_language(context, server, lang)
    return context.new_page()


def check(page: Page, name: str | None = None) -> None:
    """axe-core (no serious or critical violation) and the width rule on the page as it is; a screenshot."""
    assert_accessible(page)
    wide = too_wide(page)
    assert not wide, "\n".join(str(v) for v in wide)
    if name:
        screenshot(page, name)


def admin(server: str, method: str, path: str, body: Any = None) -> Any:
    status, answer = call(server, method, "/admin/v1" + path, body, bearer=ADMIN_KEY)
    assert status < 300, (method, path, status, answer)
    return answer


def idp(server: str, agent: str, token: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """A SCIM request as the identity provider sends it (its User-Agent included)."""
    request = urllib.request.Request(
        server + "/scim/v2" + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/scim+json",
            "Accept": "application/scim+json",
            "User-Agent": agent,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def okta_user(email: str, given: str) -> dict[str, Any]:
    """Okta's POST /Users body (its documented shape, password and all)."""
    return {
        "schemas": [CORE_USER],
        "userName": email,
        "name": {"givenName": given, "familyName": "Okta"},
        "emails": [{"primary": True, "value": email, "type": "work"}],
        "displayName": f"{given} Okta",
        "locale": "en-US",
        "externalId": f"00u{uuid.uuid4().hex[:10]}",
        "groups": [],
        "password": "1mz050nq",
        "active": True,
    }


def entra_user(email: str) -> dict[str, Any]:
    """Entra ID's POST /Users body: enterprise extension, no password."""
    return {
        "schemas": [CORE_USER, ENTERPRISE],
        "externalId": str(uuid.uuid4()),
        "userName": email,
        "active": True,
        "displayName": "Erin Entra",
        "emails": [{"primary": True, "type": "work", "value": email}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "Erin Entra", "familyName": "Entra", "givenName": "Erin"},
        "roles": [],
        ENTERPRISE: {"department": "Finance"},
    }


def by_user_name(email: str) -> str:
    """The lookup both IdPs make before they write."""
    return "/Users?filter=" + quote(f'userName eq "{email}"')


def tokens(server: str, tid: str) -> list[dict[str, Any]]:
    answer = admin(server, "GET", f"/tenants/{tid}/scim/tokens")
    return answer["items"] if isinstance(answer, dict) else answer


def reload_until(page: Page, ready: Any, what: str) -> None:
    def again() -> bool:
        if ready():
            return True
        page.reload()
        return False

    wait_for(again, what)


def test_an_organization_admin_connects_okta_and_entra_and_finds_everything_in_the_portal(
    browser: Browser, server: str
) -> None:
    tid = admin(server, "POST", "/tenants", {"name": f"Globex {uuid.uuid4().hex[:4]}", "seats": 2})["id"]
    admin(server, "PUT", f"/tenants/{tid}/scim", {"enabled": False})  # the admin turns it on
    page = new_page(browser, server)
    open_portal(page, server, tid)
    expect(page.locator("#scim-state")).to_contain_text("SCIM provisioning is off")
    check(page, "portal-journey-01-scim-off")

    page.get_by_role("button", name="Turn SCIM on").click()
    expect(page).to_have_url(re.compile(r"done=scim-on"))
    expect(page.locator("#scim-state")).to_contain_text("SCIM provisioning is on")
    assert admin(server, "GET", f"/tenants/{tid}")["scim_enabled"] is True
    check(page)

    # A token, shown once; a reload shows none and makes none.
    page.get_by_label("Label (which identity provider connection uses it; optional)").fill("Okta")
    page.get_by_role("button", name="Generate a new token").click()
    token = page.locator("#new-token").inner_text().strip()
    assert token.startswith("scim_")
    check(page, "portal-journey-02-new-token")
    [made] = tokens(server, tid)
    assert made["label"] == "Okta" and made["created_by"] == "org_admin"
    page.reload()
    expect(page.locator("#new-token")).to_have_count(0)
    expect(page.locator("#shown-once")).to_be_visible()
    check(page)
    assert [t["id"] for t in tokens(server, tid)] == [made["id"]]

    # The admin makes the team the IdP's group will link to.
    page.locator(".tenant-nav").get_by_role("link", name="Teams").click()
    page.get_by_label("Name (exactly as the SCIM group's displayName)").fill("Engineering")
    page.get_by_role("button", name="Create team").click()
    expect(page.locator("#teams-table")).to_contain_text("Engineering")
    check(page)

    # Okta: a lookup by userName, three creations in its shape, a profile push (PUT), a group and its PATCH.
    names = [f"{n}.{uuid.uuid4().hex[:6]}@example.com" for n in ("ada", "bob", "cyd")]
    status, found = idp(server, OKTA, token, "GET", by_user_name(names[0]))
    assert status == 200 and found["totalResults"] == 0, found
    okta_ids = []
    for name, given in zip(names, ("Ada", "Bob", "Cyd"), strict=True):
        status, body = idp(server, OKTA, token, "POST", "/Users", okta_user(name, given))
        assert status == 201, body
        okta_ids.append(body["id"])
    status, ada = idp(server, OKTA, token, "GET", f"/Users/{okta_ids[0]}")
    put = {k: v for k, v in okta_user(names[0], "Ada").items() if k != "password"}
    put.update(id=okta_ids[0], meta=ada["meta"], name={"givenName": "Ada", "familyName": "Lovelace"})
    status, body = idp(server, OKTA, token, "PUT", f"/Users/{okta_ids[0]}", put)
    assert status == 200 and body["name"]["familyName"] == "Lovelace", body
    status, group = idp(
        server, OKTA, token, "POST", "/Groups", {"schemas": [CORE_GROUP], "displayName": "Engineering"}
    )
    assert status == 201, group
    add = {
        "schemas": [PATCH_OP],
        "Operations": [
            {
                "op": "add",
                "path": "members",
                "value": [{"value": u, "display": n} for u, n in zip(okta_ids[:2], names, strict=False)],
            }
        ],
    }
    status, body = idp(server, OKTA, token, "PATCH", f"/Groups/{group['id']}", add)
    assert status in (200, 204), body

    # Entra ID: its creation, its lookup, its PATCH of "Replace"/"Add" ops with roles and the manager.
    erin = f"erin.{uuid.uuid4().hex[:6]}@example.com"
    status, body = idp(server, ENTRA, token, "POST", "/Users", entra_user(erin))
    assert status == 201, body
    erin_id = body["id"]
    status, found = idp(server, ENTRA, token, "GET", by_user_name(erin))
    assert status == 200 and found["Resources"][0]["id"] == erin_id, found
    patch = {
        "schemas": [PATCH_OP],
        "Operations": [
            {"op": "Replace", "path": "displayName", "value": "Erin E."},
            {"op": "Add", "path": "roles", "value": [{"value": "admin", "primary": "True"}]},
            {"op": "Replace", "path": f"{ENTERPRISE}:department", "value": "Sales"},
            {"op": "Add", "path": f"{ENTERPRISE}:manager", "value": okta_ids[0]},
            {"op": "Replace", "path": "userType", "value": "Employee"},
        ],
    }
    status, body = idp(server, ENTRA, token, "PATCH", f"/Users/{erin_id}", patch)
    assert status == 200, body
    assert body["roles"] == [{"value": "admin", "primary": True}]
    assert body[ENTERPRISE]["manager"]["value"] == okta_ids[0]

    # The SCIM panel: the last request seen is Entra's PATCH.
    page.locator(".tenant-nav").get_by_role("link", name="SCIM").click()

    # The log is written after the answer: earlier requests (Okta's group PATCH, Entra's lookup) may show
    # first, so the page is reloaded until the last one seen is Entra's PATCH itself.
    def entra_patch_seen() -> bool:
        seen = page.locator("#last-request").inner_text()
        return "Microsoft Entra ID" in seen and "PATCH /scim/v2/Users/" in seen

    reload_until(page, entra_patch_seen, "Entra's PATCH as the last request")
    expect(page.locator("#tokens")).to_contain_text("organization admin")
    check(page, "portal-journey-03-last-request-seen")

    # Seats: two seats, four users who all want one: two wait, each with the reason.
    page.locator(".tenant-nav").get_by_role("link", name="Seats and licenses").click()
    reload_until(
        page,
        lambda: (
            page.locator("#seats-used").inner_text() == "2"
            and page.locator("#waiting-table tbody tr").count() == 2
        ),
        "two seats used and two users waiting",
    )
    expect(page.locator("#seats-free")).to_have_text("0")
    reasons = page.locator("#waiting-table td.reason").all_inner_texts()
    assert len(reasons) == 2 and all(r.strip() for r in reasons), reasons
    expect(page.locator("#seats-operator-only")).to_be_visible()
    check(page, "portal-journey-04-seats-waiting-list")

    # The user page of Entra's user: every attribute, license history, provisioning log entries.
    page.locator(".tenant-nav").get_by_role("link", name="Users").click()
    check(page)
    page.locator("#users-table").get_by_role("link", name=erin).click()
    reload_until(page, lambda: "Applied" in page.locator("#provisioning-state").inner_text(), "Erin applied")
    attributes = page.locator("#attributes-table")
    for shown in ("Employee", "admin", "Sales", "Erin E."):
        expect(attributes).to_contain_text(shown)
    expect(page.locator("#manager")).to_contain_text("Ada Okta")
    expect(page.locator("#license-history tbody tr").first).to_be_visible()
    expect(page.locator("#user-log")).to_contain_text("PATCH")
    check(page, "portal-journey-05-user")

    # The provisioning log page, with the IdPs' entries.
    page.locator(".tenant-nav").get_by_role("link", name="Provisioning log").click()
    expect(page.locator("#log-table")).to_contain_text("PATCH")
    expect(page.locator("#log-table")).to_contain_text("POST")
    check(page, "portal-journey-06-provisioning-log")

    # Re-linking: the team linked to Okta's group is deleted (after a confirmation), made again with the
    # group's name, and Okta's next push links the group and applies its members.
    page.locator(".tenant-nav").get_by_role("link", name="Teams").click()
    reload_until(page, lambda: "2" in page.locator("#teams-table tbody tr").first.inner_text(), "the push")
    page.get_by_role("link", name="Delete team Engineering").click()
    expect(page.locator("#delete-linked-group")).to_contain_text("Engineering")
    check(page, "portal-journey-07-team-delete-confirm")
    page.get_by_role("button", name="Delete team Engineering").click()
    expect(page).to_have_url(re.compile(r"done=team-deleted"))
    page.get_by_label("Name (exactly as the SCIM group's displayName)").fill("Engineering")
    page.get_by_role("button", name="Create team").click()
    expect(page.locator("#teams-table")).to_contain_text("no SCIM group")
    add = {
        "schemas": [PATCH_OP],
        "Operations": [
            {"op": "add", "path": "members", "value": [{"value": okta_ids[2], "display": names[2]}]}
        ],
    }
    status, body = idp(server, OKTA, token, "PATCH", f"/Groups/{group['id']}", add)
    assert status in (200, 204), body
    page.get_by_role("link", name="Engineering", exact=True).click()
    reload_until(page, lambda: page.locator("#members-table tbody tr").count() == 3, "the group's members")
    for name in names:
        expect(page.locator("#members-table")).to_contain_text(name)
    check(page, "portal-journey-08-team-relinked")

    # A webhook endpoint of the organization, and a delivery of the next change.
    page.locator(".tenant-nav").get_by_role("link", name="Webhooks").click()
    page.get_by_label("URL (https://)").fill(HOOK_URL)
    page.get_by_label("Description").fill("HR system")
    page.get_by_role("button", name="Add endpoint").click()
    expect(page.locator("#new-secret")).to_have_text(re.compile(r"^whsec_"))
    check(page, "portal-journey-09-webhook-secret")
    page.get_by_role("link", name="All endpoints").click()
    page.get_by_role("link", name=HOOK_URL).click()
    expect(page.locator("#new-secret")).to_have_count(0)  # shown once
    endpoint_url = page.url.split("?")[0]
    deactivate = {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": False}}]}
    status, body = idp(server, OKTA, token, "PATCH", f"/Users/{okta_ids[1]}", deactivate)
    assert status == 200 and body["active"] is False, body
    page.goto(endpoint_url)
    reload_until(page, lambda: page.locator("#deliveries-table tbody tr").count() > 0, "a delivery")
    check(page, "portal-journey-10-webhook-delivery")

    # The key pages again, in Japanese (and on a phone).
    set_language(page.context, server, "ja")
    base = f"{server}/console/tenants/{tid}"
    for path, name in (
        ("/scim", "portal-journey-03-last-request-seen"),
        ("/seats", "portal-journey-04-seats-waiting-list"),
        (f"/users/{erin_id}", "portal-journey-05-user"),
        ("/log", "portal-journey-06-provisioning-log"),
        ("/teams", "portal-journey-08-teams"),
        (endpoint_url.removeprefix(base), "portal-journey-10-webhook-delivery"),
    ):
        page.goto(base + path)
        assert page.evaluate("() => document.documentElement.lang") == "ja"
        check(page, name)
    page.set_viewport_size(NARROW)
    page.goto(base + f"/users/{erin_id}")
    check(page, "portal-journey-05-user-narrow")
    set_language(page.context, server, "en")
    page.set_viewport_size(DESKTOP)

    # Signing out ends the session on the server: the same cookie, copied, is refused.
    page.goto(base + "/scim")
    cookies = page.context.cookies()
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{server}/console/portal/sign-in")
    check(page)
    thief = browser.new_context(viewport=DESKTOP)
    try:
        thief.add_cookies(cookies)  # type: ignore[arg-type]
        stolen = thief.new_page()
        stolen.goto(base + "/scim")
        # Refused: a sign-in page (the operator's, or the organization admin's), not the SCIM panel.
        assert urlsplit(stolen.url).path in ("/console/login", "/console/portal/sign-in"), stolen.url
    finally:
        thief.close()
    page.context.close()


def test_the_operator_sets_up_an_organization_and_ends_its_portal_sessions(
    browser: Browser, server: str
) -> None:
    page = new_page(browser, server)
    sign_in_as_operator(page, server)
    check(page, "operator-journey-01-organizations")
    name = f"Initech {uuid.uuid4().hex[:4]}"
    page.get_by_label("Name").fill(name)
    page.get_by_label("Seats (full licenses)").fill("2")
    page.get_by_role("button", name="Create organization").click()
    expect(page).to_have_url(re.compile(r"/scim\?done=tenant-created"))
    tid = re.search(r"/console/tenants/([0-9a-f-]{36})/scim", page.url).group(1)  # type: ignore[union-attr]
    check(page)
    base = f"{server}/console/tenants/{tid}"

    # Settings: allowed domains, a domain team (its team first), the rate-limit preset.
    page.goto(base + "/teams")
    page.get_by_label("Name (exactly as the SCIM group's displayName)").fill("Sales")
    page.get_by_role("button", name="Create team").click()
    expect(page.locator("#teams-table")).to_contain_text("Sales")
    page.locator(".tenant-nav").get_by_role("link", name="Settings").click()
    page.get_by_label("Allowed domains, one per line").fill("example.com\ninitech.example")
    page.get_by_label("Domain teams: one “domain: team name” per line").fill("initech.example: Sales")
    page.get_by_role("button", name="Save domains").click()
    expect(page).to_have_url(re.compile(r"/settings\?done="))
    page.get_by_label("SCIM rate limit").select_option("strict")
    page.get_by_role("button", name="Save name and rate limit").click()
    expect(page).to_have_url(re.compile(r"/settings\?done="))
    check(page, "operator-journey-02-settings")
    tenant = admin(server, "GET", f"/tenants/{tid}")
    assert sorted(tenant["allowed_domains"]) == ["example.com", "initech.example"], tenant
    assert tenant["rate_limit"]["preset"] == "strict", tenant
    assert "initech.example" in json.dumps(tenant.get("domain_teams")), tenant

    # Seats below use, with the confirmation: two users hold the two seats, the operator lowers them to 1.
    page.locator(".tenant-nav").get_by_role("link", name="SCIM").click()
    page.get_by_role("button", name="Generate a new token").click()
    token = page.locator("#new-token").inner_text().strip()
    for n in ("amy", "ben"):
        email = f"{n}.{uuid.uuid4().hex[:6]}@initech.example"
        status, body = idp(server, OKTA, token, "POST", "/Users", okta_user(email, n.title()))
        assert status == 201, body
    page.goto(base + "/seats")
    reload_until(page, lambda: page.locator("#seats-used").inner_text() == "2", "two seats used")
    page.get_by_label("Seats (full licenses)").fill("1")
    page.get_by_role("button", name="Save seats").click()
    expect(page).to_have_url(re.compile(r"/seats/lower\?seats=1"))
    expect(page.locator("#lower-consequence")).to_contain_text("2")
    check(page, "operator-journey-03-seats-below-use")
    assert admin(server, "GET", f"/tenants/{tid}")["seats"] == 2  # the confirmation changed nothing
    page.get_by_role("button", name="Lower the seats to 1").click()
    expect(page).to_have_url(re.compile(r"/seats\?done=seats-saved"))
    assert admin(server, "GET", f"/tenants/{tid}")["seats"] == 1
    expect(page.locator("#seats-total")).to_have_text("1")
    check(page)  # "applying…" (refreshing itself) while the worker applies it, or already applied
    reload_until(page, lambda: page.locator("#applying").count() == 0, "the seats change applied")
    check(page, "operator-journey-04-seats-lowered")
    page.locator(".tenant-nav").get_by_role("link", name="Settings").click()
    check(page)

    # Portal access: a link, opened by the organization's admin in their own browser.
    page.locator(".tenant-nav").get_by_role("link", name="Portal access").click()
    page.get_by_role("button", name="Make a portal link").click()
    link = page.locator("#new-link").inner_text().strip()
    check(page, "operator-journey-05-portal-link")
    org_admin = new_page(browser, server, viewport=NARROW)
    org_admin.goto(link)  # a link handed over by hand: a Continue page (link scanners only GET it)
    check(org_admin, "portal-journey-00-continue")
    org_admin.get_by_role("button", name=re.compile("^Continue to")).click()
    org_admin.wait_for_url(base + "/scim")
    page.reload()
    expect(page.get_by_role("link", name="End every portal session")).to_be_visible()
    page.get_by_role("link", name="End every portal session").click()
    check(page, "operator-journey-06-end-sessions-confirm")
    org_admin.reload()
    assert urlsplit(org_admin.url).path == f"/console/tenants/{tid}/scim"  # the confirmation ended nothing
    page.get_by_role("button", name="End every portal session").click()
    expect(page).to_have_url(re.compile(r"done=portal-sessions-ended"))
    check(page)
    org_admin.reload()
    assert urlsplit(org_admin.url).path in ("/console/login", "/console/portal/sign-in"), org_admin.url
    org_admin.context.close()

    page.goto(server + "/console/queue")
    check(page, "operator-journey-07-queue")
    page.context.close()


def test_the_admin_of_one_organization_gets_the_404_page_for_another(browser: Browser, server: str) -> None:
    a = admin(server, "POST", "/tenants", {"name": f"Alpha {uuid.uuid4().hex[:4]}"})["id"]
    b = admin(server, "POST", "/tenants", {"name": f"Beta {uuid.uuid4().hex[:4]}"})["id"]
    page = new_page(browser, server)
    open_portal(page, server, a)
    for path in ("/scim", "/users", "/seats", "/settings"):
        response = page.goto(f"{server}/console/tenants/{b}{path}")
        assert response is not None and response.status == 404, (path, response and response.status)
        expect(page.get_by_role("heading", level=1)).to_have_text("Not found")
    check(page, "portal-journey-11-another-organization-404")
    response = page.goto(f"{server}/console/tenants/{a}/scim")
    assert response is not None and response.status == 200
    page.context.close()
