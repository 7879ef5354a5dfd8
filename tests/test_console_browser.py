"""The admin console end to end: a real `scimsvc serve` and worker, driven in headless Chromium.

Debian's chromium (/usr/bin/chromium, installed by .ci/run) driven by Playwright's Python package
(tests/browser.py); no browser is ever downloaded. Each page is saved as a screenshot under
tests/screenshots/.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.browser import browser_marks, call, chromium_context
from tests.conftest import ADMIN_KEY, RUN_ID, Processes, service_env, user_body

SCREENSHOTS = Path(__file__).parent / "screenshots"
QUEUE = f"scimsvc:test:{RUN_ID}:console:queue"
WEBHOOK_SIGNING_KEY = f"console-webhook-key-{RUN_ID}"
T = TypeVar("T")

try:
    from playwright.sync_api import Page, expect
except ImportError:  # pragma: no cover - the test extra installs it; browser_marks skip without it
    pass

pytestmark = browser_marks


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`scimsvc serve` and `scimsvc worker` on the test database: the base URL. Their logs are checked.

    They are started and stopped by an event loop in a thread of its own: Playwright's sync API owns this
    thread's."""
    env = service_env(
        database_url,
        queue_name=QUEUE,
        SCIMSVC_ADMIN_KEY=ADMIN_KEY,
        SCIMSVC_RATE_LIMIT_PREFIX=f"scimsvc:test:{RUN_ID}:console:rl",
        SCIMSVC_SWEEP_AFTER_SECONDS="1",
        SCIMSVC_LOG_LEVEL="DEBUG",
        SCIMSVC_WEBHOOK_SIGNING_KEY=WEBHOOK_SIGNING_KEY,
        SCIMSVC_WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8",  # webhook endpoints on this machine
    )
    env.pop("SCIMSVC_PUBLIC_URL", None)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="console-processes", daemon=True)
    thread.start()

    def run(coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result()

    procs = Processes(tmp_path_factory.mktemp("console"))
    try:
        base_url = run(procs.serve(env))
        run(procs.worker(env))
        yield base_url
    finally:
        run(procs.stop_all())
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
    for proc in procs.procs:
        assert ADMIN_KEY not in procs.output(proc), f"operator key in the log of {proc.pid}"


@pytest.fixture(scope="module")
def browser_context() -> Iterator[Any]:
    """Headless Debian chromium with a fresh profile, a laptop-sized window and clipboard access."""
    SCREENSHOTS.mkdir(exist_ok=True)
    with chromium_context() as context:
        yield context


@pytest.fixture
def page(browser_context: Any, server: str) -> Iterator[Page]:
    browser_context.clear_cookies()
    page = browser_context.new_page()
    try:
        yield page
    finally:
        page.close()


def shoot(page: Page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def sign_in(page: Page, server: str) -> None:
    page.goto(server + "/console/")
    expect(page).to_have_url(server + "/console/login")
    page.get_by_label("Operator key").fill(ADMIN_KEY)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(server + "/console/tenants")


def create_tenant(page: Page, server: str, *, seats: int, fallback: str = "free_restricted") -> str:
    """Create a tenant with the form; returns its id (the SCIM page it lands on)."""
    page.goto(server + "/console/tenants")
    page.get_by_label("Name").fill(f"Acme {uuid.uuid4().hex[:6]}")
    page.get_by_label("Seats (full licenses)").fill(str(seats))
    page.get_by_label("When no seat is free").select_option(fallback)
    page.get_by_role("button", name="Create organization").click()
    expect(page.get_by_role("status")).to_contain_text("Organization created")
    found = re.search(r"/console/tenants/([0-9a-f-]{36})/scim", page.url)
    assert found, page.url
    return found.group(1)


def generate_token(page: Page) -> str:
    page.get_by_role("button", name="Generate a new token").click()
    token = page.locator("#new-token").inner_text().strip()
    assert token.startswith("scim_")
    return token


def scim(server: str, token: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """A real SCIM request with the tenant's token, as an identity provider sends it."""
    return call(server, method, "/scim/v2" + path, body, bearer=token)


def reload_until(page: Page, ready: Callable[[], bool], what: str, seconds: float = 120) -> None:
    """Reload until the worker's effect shows (it applies changes after the front end answers)."""
    deadline = time.monotonic() + seconds
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)
        page.reload()


def test_operator_connects_a_tenant_and_manages_its_seats(page: Page, server: str) -> None:
    page.goto(server + "/console/tenants")
    expect(page).to_have_url(server + "/console/login")  # nothing without signing in
    shoot(page, "01-sign-in")
    sign_in(page, server)

    tenant_id = create_tenant(page, server, seats=1, fallback="none")
    base_url = server + "/scim/v2"
    expect(page.locator("#base-url")).to_have_text(base_url)
    token = generate_token(page)
    new_token = page.locator(".new-token")
    for field in ("SCIM connector base URL", "Authorization (Bearer)", "Tenant URL", "Secret Token"):
        expect(new_token.get_by_role("cell", name=field, exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Copy token")).to_be_visible()  # the script shows it
    shoot(page, "03-scim-new-token")
    page.reload()  # shown once: a reload neither shows it again nor makes another token
    expect(page.locator("#shown-once")).to_be_visible()
    expect(page.locator("#new-token")).to_have_count(0)
    page.get_by_role("link", name="Back to the SCIM panel").click()
    expect(page.locator("#tokens")).to_contain_text("operator")  # created by
    shoot(page, "03b-scim-panel")
    page.get_by_role("link", name="Okta", exact=True).click()
    expect(page.locator(".okta-fields")).to_contain_text(base_url)
    shoot(page, "03c-scim-okta-guide")

    names = [f"{n}.{uuid.uuid4().hex[:6]}@example.com" for n in ("first", "second", "third")]
    for name in names:  # one after another: the waiting list is first come, first served
        status, body = scim(server, token, "POST", "/Users", user_body(name))
        assert status == 201, body

    page.goto(f"{server}/console/tenants/{tenant_id}/seats")

    def seat_and_queue() -> bool:
        used = page.locator("#seats-used").inner_text()
        return used == "1" and page.locator("#waiting-table tbody tr").count() == 2

    reload_until(page, seat_and_queue, "the worker to hand out the one seat and queue the others")
    waiting = page.locator("#waiting-table tbody tr td:nth-child(2)").all_inner_texts()
    assert [w.split()[0] for w in waiting] == names[1:]
    expect(page.locator("#waiting-table tbody tr").first).to_contain_text("no seat was free")
    expect(page.locator("#seats-free")).to_have_text("0")
    expect(page.locator("#assign-locked")).to_contain_text("Managed by SCIM")
    expect(page.get_by_label("User (id or userName)")).to_be_disabled()
    shoot(page, "04-seats-scim-on")

    page.goto(f"{server}/console/tenants/{tenant_id}/scim")
    page.get_by_role("link", name="Turn SCIM off…").click()
    expect(page.locator("#what-happens")).to_contain_text("Every token of this organization is refused")
    page.get_by_role("button", name="Turn SCIM off").click()
    expect(page.get_by_role("status")).to_contain_text("SCIM provisioning is off")
    assert scim(server, token, "GET", "/Users")[0] == 403  # the token is refused while SCIM is off

    page.goto(f"{server}/console/tenants/{tenant_id}/seats")
    expect(page.locator("#assign-locked")).to_have_count(0)
    expect(page.get_by_label("User (id or userName)")).to_be_enabled()
    page.get_by_label("User (id or userName)").fill(names[2])
    page.get_by_label("License", exact=True).select_option("full")
    page.get_by_role("button", name="Assign license").click()
    expect(page.get_by_role("alert")).to_contain_text("no seat is free")  # the service's rule, shown
    shoot(page, "05-seats-scim-off")

    page.get_by_label("Seats (full licenses)").fill("3")
    page.get_by_role("button", name="Save seats").click()
    expect(page.locator("p.notice")).to_contain_text("Saved")
    expect(page.locator("#applying")).to_contain_text("applying…")  # until the worker applied it
    reload_until(
        page,
        lambda: page.locator("#waiting-empty").count() == 1 and page.locator("#applying").count() == 0,
        "waiting users to be promoted",
    )
    expect(page.locator("#seats-used")).to_have_text("3")

    page.get_by_label("Seats (full licenses)").fill("1")
    page.get_by_role("button", name="Save seats").click()
    expect(page.locator("#lower-consequence")).to_contain_text("3 users hold seats. No one loses a seat now")
    shoot(page, "06-seats-lower-confirmation")
    page.get_by_role("button", name="Lower the seats to 1").click()
    expect(page.locator("#over-allocated")).to_contain_text("Over-allocated")
    shoot(page, "06-seats-over-allocated")

    page.goto(f"{server}/console/tenants/{tenant_id}/settings")
    domains = page.get_by_label("Allowed domains, one per line")
    domains.fill("example.com\nnot a domain")
    page.get_by_role("button", name="Save domains").click()
    expect(page.get_by_role("alert")).to_contain_text("“not a domain” is not an email domain")
    page.get_by_label("Allowed domains, one per line").fill("example.com")
    page.get_by_role("button", name="Save domains").click()
    expect(page.locator("p.notice")).to_contain_text("Allowed domains and domain teams saved")
    shoot(page, "06-settings")

    page.goto(server + "/console/tenants")
    expect(page.get_by_role("row").filter(has_text=tenant_id)).to_contain_text("3 of 1")
    shoot(page, "02-tenants")


def test_operator_manages_teams_users_audit_and_sees_the_queue(page: Page, server: str) -> None:
    sign_in(page, server)
    tenant_id = create_tenant(page, server, seats=5)
    token = generate_token(page)
    ada, bob = (f"{n}.{uuid.uuid4().hex[:6]}@example.com" for n in ("ada", "bob"))
    users = {}
    for name in (ada, bob):
        status, body = scim(server, token, "POST", "/Users", user_body(name))
        assert status == 201, body
        users[name] = body["id"]

    page.goto(f"{server}/console/tenants/{tenant_id}/teams")
    page.get_by_label("Name (exactly as the SCIM group's displayName)").fill("Engineering")
    page.get_by_role("button", name="Create team").click()
    expect(page.get_by_role("status")).to_contain_text("Team created")
    group = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "Engineering",
        "members": [{"value": users[ada]}],
    }
    status, body = scim(server, token, "POST", "/Groups", group)
    assert status == 201, body
    page.reload()
    expect(page.locator("#teams-table")).to_contain_text("members: 1")  # the linked SCIM group
    shoot(page, "07-teams")

    page.get_by_role("link", name="Engineering", exact=True).click()
    reload_until(page, lambda: ada in page.locator("body").inner_text(), "the group push to reach the team")
    page.get_by_label("New name").fill("Platform")
    page.get_by_role("button", name="Rename team").click()
    expect(page.get_by_role("status")).to_contain_text("Team renamed")
    expect(page.locator("#linked-group")).to_contain_text("Engineering")  # names are decoupled
    page.get_by_label("Add a member (user id or userName)").fill(bob.upper())
    page.get_by_role("button", name="Add member").click()
    expect(page.locator("#members-table")).to_contain_text(bob)
    shoot(page, "08-team")

    page.goto(f"{server}/console/tenants/{tenant_id}/users")
    reload_until(page, lambda: page.locator("#users-table tbody tr").count() == 2, "both users")
    page.get_by_label("Search userName or name").fill(ada.split("@")[0])
    page.get_by_label("State").select_option("active")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#users-table tbody tr")).to_have_count(1)
    expect(page.locator("#users-table")).to_contain_text(ada)
    with page.expect_download() as download:
        page.get_by_role("link", name="Download these users as CSV").click()
    csv = Path(download.value.path()).read_text()
    assert ada in csv and bob not in csv  # the same filters as the table
    shoot(page, "09-users")

    page.goto(f"{server}/console/tenants/{tenant_id}/audit")
    page.get_by_label("User (id or userName; empty for everyone)").fill(ada)
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("#audit-table tbody tr")
    expect(rows.first).to_contain_text("Seat given (full license)")  # the action by name (names.py)
    assert all(users[ada] in row for row in rows.all_inner_texts())
    shoot(page, "10-audit")

    page.goto(server + "/console/queue")
    expect(page.locator("#queue-status")).to_contain_text("Status:")
    # It reloads itself (a meta refresh without script, console.js with it), and the reload can be paused.
    assert page.locator("noscript").first.inner_html().startswith('<meta http-equiv="refresh"')
    with page.expect_navigation(timeout=30_000):
        pass  # console.js reloads it after a few seconds
    page.get_by_role("button", name="Pause updates").click()
    expect(page.get_by_role("button", name="Resume updates")).to_have_attribute("aria-pressed", "true")
    shoot(page, "11-queue")

    page.goto(f"{server}/console/tenants/{tenant_id}/scim")
    page.get_by_role("link", name=re.compile("^Revoke token")).click()
    expect(page.locator("#what-happens")).to_contain_text("will get 401 from now on")
    assert scim(server, token, "GET", "/Users")[0] == 200  # the confirmation page changed nothing
    page.get_by_role("button", name="Revoke the token").click()
    expect(page.get_by_role("status")).to_contain_text("Token revoked")
    assert scim(server, token, "GET", "/Users")[0] == 401

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(server + "/console/login")
    page.goto(server + "/console/tenants")
    expect(page).to_have_url(server + "/console/login")


def test_operator_relinks_a_team_after_deleting_it_and_reads_a_user_page(page: Page, server: str) -> None:
    sign_in(page, server)
    tenant_id = create_tenant(page, server, seats=5)
    token = generate_token(page)
    boss = f"boss.{uuid.uuid4().hex[:6]}@example.com"
    status, body = scim(server, token, "POST", "/Users", user_body(boss))
    assert status == 201, body
    ada = f"ada.{uuid.uuid4().hex[:6]}@example.com"
    enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    status, body = scim(
        server,
        token,
        "POST",
        "/Users",
        {
            **user_body(ada),
            "userType": "Employee",
            "externalId": "ext-ada",
            enterprise: {"department": "Analytics", "manager": {"value": body["id"]}},
        },
    )
    assert status == 201, body
    ada_id = body["id"]

    page.goto(f"{server}/console/tenants/{tenant_id}/teams")
    page.get_by_label("Name (exactly as the SCIM group's displayName)").fill("Research")
    page.get_by_role("button", name="Create team").click()
    group = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "Research",
        "members": [{"value": ada_id}],
    }
    status, body = scim(server, token, "POST", "/Groups", group)
    assert status == 201, body
    page.get_by_role("link", name="Research", exact=True).click()
    reload_until(page, lambda: ada in page.locator("body").inner_text(), "the group to reach the team")
    page.get_by_role("link", name="Delete this team…").click()
    expect(page.locator("#delete-linked-group")).to_contain_text("Research")
    shoot(page, "20-team-delete-confirm")
    page.get_by_role("button", name="Delete team Research").click()
    expect(page.get_by_role("status")).to_contain_text("Team deleted")

    page.get_by_label("Name (exactly as the SCIM group's displayName)").fill("Research lab")
    page.get_by_role("button", name="Create team").click()
    expect(page.locator("#teams-table")).to_contain_text("no SCIM group")
    page.get_by_role("link", name="Research lab", exact=True).click()
    page.get_by_label("SCIM group linked to no team").select_option(label="Research (members: 1)")
    page.get_by_role("button", name="Link group").click()
    expect(page.get_by_role("status").first).to_contain_text("SCIM group linked")
    reload_until(page, lambda: page.locator("#members-table").count() == 1, "the group's members to join")
    expect(page.locator("#members-table")).to_contain_text(ada)
    shoot(page, "21-team-relinked")

    page.locator("#members-table").get_by_role("link", name=ada).click()
    reload_until(page, lambda: "Applied" in page.locator("#provisioning-state").inner_text(), "ada applied")
    expect(page.locator("#attributes-table")).to_contain_text("ext-ada")
    expect(page.locator("#attributes-table")).to_contain_text("Analytics")
    shoot(page, "22-user")
    page.set_viewport_size({"width": 360, "height": 800})  # a phone: wide tables scroll in their box
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    shoot(page, "22-user-narrow")
    page.set_viewport_size({"width": 1366, "height": 900})
    page.locator("#manager").get_by_role("link").click()
    expect(page.locator("h1")).to_contain_text(boss)


def test_operator_adds_a_webhook_endpoint_sees_its_secret_once_and_manages_it(
    page: Page, server: str
) -> None:
    sign_in(page, server)
    tenant_id = create_tenant(page, server, seats=5)
    page.locator(".tenant-nav").get_by_role("link", name="Webhooks").click()
    expect(page).to_have_url(f"{server}/console/tenants/{tenant_id}/webhooks")
    page.get_by_label("URL (https://)").fill("https://localhost:9443/hooks/scim")
    page.get_by_label("Description").fill("HR system")
    page.get_by_label("user.created").check()
    page.get_by_label("user.deactivated").check()
    page.get_by_role("button", name="Add endpoint").click()
    expect(page.locator("#new-secret")).to_have_text(re.compile(r"^whsec_"))
    expect(page.get_by_role("button", name="Copy secret")).to_be_visible()
    shoot(page, "12-webhook-new-secret")
    page.get_by_role("link", name="All endpoints").click()
    expect(page.locator("#webhooks-table")).to_contain_text("user.created, user.deactivated")
    shoot(page, "14-webhooks")
    page.get_by_role("link", name="https://localhost:9443/hooks/scim").click()
    expect(page.locator("#new-secret")).to_have_count(0)  # a later visit never shows it

    page.get_by_label("One event (its id, e.g. evt_12)").fill("evt_999999999")
    page.get_by_role("button", name="Replay event").click()
    expect(page.get_by_role("alert")).to_contain_text(
        "There is no event evt_999999999 among this organization"
    )
    page.get_by_label("From (UTC, included)").fill("2026-01-01T00:00:00")
    page.get_by_label("Until (UTC, excluded)").fill("2026-01-02T00:00:00")
    page.get_by_role("button", name="Replay time range").click()
    expect(page.get_by_role("status")).to_contain_text("Replay queued")

    page.get_by_role("link", name="Disable…").click()  # destructive: a confirmation page first
    expect(page.locator("h1")).to_have_text("Disable this endpoint?")
    page.get_by_role("link", name="Cancel").click()
    expect(page.locator("#endpoint-state")).to_contain_text("enabled")
    page.get_by_role("link", name="Disable…").click()
    shoot(page, "15-webhook-confirm-disable")
    page.get_by_role("button", name="Disable endpoint").click()
    expect(page.get_by_role("status")).to_contain_text("Endpoint disabled")
    expect(page.locator("#endpoint-state")).to_contain_text("disabled by an operator")
    page.get_by_role("link", name="Rotate secret…").click()
    page.get_by_role("button", name="Rotate secret").click()
    expect(page.locator("#new-secret")).to_have_text(re.compile(r"^whsec_"))
    expect(page.locator("body")).to_contain_text("the previous one also signs until")
    shoot(page, "13-webhook-endpoint")
    page.get_by_role("link", name="Delete endpoint…").click()
    page.get_by_role("button", name="Delete endpoint").click()
    expect(page.get_by_role("status")).to_contain_text("Endpoint deleted")
    expect(page.locator("main")).to_contain_text("No endpoints yet")

    page.locator("header").get_by_role("link", name="Webhooks").click()
    expect(page).to_have_url(server + "/console/webhooks")
    expect(page.locator("main")).to_contain_text("hear the events of every organization")


def fits(page: Page, width: int) -> bool:
    """Nothing wider than the window: wide tables scroll inside their own box, never the page."""
    return bool(page.evaluate(f"document.documentElement.scrollWidth <= {width}"))


def test_the_console_in_japanese_on_a_360_px_window_by_keyboard(page: Page, server: str) -> None:
    page.set_viewport_size({"width": 360, "height": 740})
    page.goto(server + "/console/login")
    page.get_by_label("Language").select_option("ja")  # the switch works before signing in
    page.get_by_role("button", name="Change language").click()
    expect(page).to_have_url(server + "/console/login")
    expect(page.locator("html")).to_have_attribute("lang", "ja")
    expect(page.locator("h1")).to_have_text("サインイン")
    assert fits(page, 360)
    shoot(page, "ja-360-01-sign-in")
    page.get_by_label("オペレーターキー").fill(ADMIN_KEY)
    page.get_by_role("button", name="サインイン").click()
    expect(page).to_have_url(server + "/console/tenants")
    page.keyboard.press("Tab")  # the skip link comes first and takes the focus to the page's content
    expect(page.get_by_role("link", name="本文へ移動")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()

    page.get_by_label("名前").fill(f"Acme {uuid.uuid4().hex[:6]}")
    page.get_by_role("button", name="組織を作成").click()
    expect(page.get_by_role("status")).to_contain_text("組織を作成しました")
    tenant_id = re.search(r"/console/tenants/([0-9a-f-]{36})/scim", page.url).group(1)  # type: ignore[union-attr]
    base = f"{server}/console/tenants/{tenant_id}"
    for name, path in (("02-organizations", "/console/tenants"), ("03-queue", "/console/queue")):
        page.goto(server + path)
        assert fits(page, 360), path
        shoot(page, f"ja-360-{name}")
    page.goto(base + "/scim")
    for name, tab in (
        ("04-audit", "監査ログ"),
        ("05-log", "プロビジョニングログ"),
        ("06-webhooks", "Webhook"),
    ):
        page.locator(".tenant-nav").get_by_role("link", name=tab, exact=True).click()
        expect(page.locator("h1")).to_have_text(tab)
        assert fits(page, 360), tab
        shoot(page, f"ja-360-{name}")

    page.get_by_label("URL(https://)").fill("https://localhost:9443/hooks/narrow")
    page.get_by_role("button", name="エンドポイントを追加").click()
    expect(page.locator("#new-secret")).to_have_text(re.compile(r"^whsec_"))
    assert fits(page, 360)
    shoot(page, "ja-360-07-webhook-endpoint")
    page.get_by_role("link", name="エンドポイントを削除…").click()
    expect(page.locator("h1")).to_have_text("このエンドポイントを削除しますか?")
    assert fits(page, 360)
    shoot(page, "ja-360-08-confirm")
    page.get_by_role("button", name="エンドポイントを削除").click()
    expect(page).to_have_url(f"{base}/webhooks?done=webhook-deleted")
    expect(page.get_by_role("status")).to_have_text("エンドポイントをその配信とともに削除しました。")
