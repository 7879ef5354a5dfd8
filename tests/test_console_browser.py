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
    page.get_by_role("button", name="Create tenant").click()
    expect(page.get_by_role("status")).to_contain_text("Tenant created")
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
    for field in ("Base URL", "API Token", "Tenant URL", "Secret Token"):
        expect(new_token.get_by_role("cell", name=field, exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Copy token")).to_be_visible()  # the script shows it
    shoot(page, "03-scim-new-token")

    names = [f"{n}.{uuid.uuid4().hex[:6]}@example.com" for n in ("first", "second", "third")]
    for name in names:  # one after another: the waiting list is first come, first served
        status, body = scim(server, token, "POST", "/Users", user_body(name))
        assert status == 201, body

    page.goto(f"{server}/console/tenants/{tenant_id}/seats")

    def seat_and_queue() -> bool:
        used = page.locator("#seats-used").inner_text()
        return used == "1" and page.locator("#waiting-list li").count() == 2

    reload_until(page, seat_and_queue, "the worker to hand out the one seat and queue the others")
    waiting = page.locator("#waiting-list li").all_inner_texts()
    assert [w.split()[0] for w in waiting] == names[1:]
    expect(page.locator("#seats-free")).to_have_text("0")
    expect(page.locator("#assign-locked")).to_contain_text("Managed by SCIM")
    expect(page.get_by_label("User (id or userName)")).to_be_disabled()
    shoot(page, "04-seats-scim-on")

    page.goto(f"{server}/console/tenants/{tenant_id}/scim")
    page.get_by_role("button", name="Disable SCIM").click()
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
    page.get_by_role("button", name="Save seats and license rules").click()
    expect(page.get_by_role("status")).to_contain_text("Saved")
    reload_until(page, lambda: page.locator("#waiting-empty").count() == 1, "waiting users to be promoted")
    expect(page.locator("#seats-used")).to_have_text("3")

    page.get_by_label("Seats (full licenses)").fill("1")
    page.get_by_role("button", name="Save seats and license rules").click()
    expect(page.locator("#over-allocated")).to_contain_text("Over-allocated")
    shoot(page, "06-seats-over-allocated")

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
    expect(page.locator("#teams-table")).to_contain_text(body["id"])  # the linked SCIM group
    shoot(page, "07-teams")

    page.get_by_role("link", name="Engineering").click()
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
    expect(rows.first).to_contain_text("allocation")
    assert all(users[ada] in row for row in rows.all_inner_texts())
    shoot(page, "10-audit")

    page.goto(server + "/console/queue")
    expect(page.locator("#queue-status")).to_contain_text("Status:")
    assert page.locator('meta[http-equiv="refresh"]').count() == 1
    shoot(page, "11-queue")

    page.goto(f"{server}/console/tenants/{tenant_id}/scim")
    page.get_by_role("button", name=re.compile("^Revoke token")).click()
    expect(page.get_by_role("status")).to_contain_text("Token revoked")
    assert scim(server, token, "GET", "/Users")[0] == 401

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(server + "/console/login")
    page.goto(server + "/console/tenants")
    expect(page).to_have_url(server + "/console/login")


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
    expect(page.get_by_role("alert")).to_contain_text("evt_999999999 not found")
    page.get_by_label("From (UTC, included)").fill("2026-01-01T00:00:00")
    page.get_by_label("Until (UTC, excluded)").fill("2026-01-02T00:00:00")
    page.get_by_role("button", name="Replay time range").click()
    expect(page.get_by_role("status")).to_contain_text("Replay queued")

    page.get_by_role("button", name="Disable").click()
    expect(page.get_by_role("status")).to_contain_text("Endpoint disabled")
    expect(page.locator("#endpoint-state")).to_contain_text("disabled by an operator")
    page.get_by_label("Yes, make a new secret").check()
    page.get_by_role("button", name="Rotate secret").click()
    expect(page.locator("#new-secret")).to_have_text(re.compile(r"^whsec_"))
    expect(page.locator("body")).to_contain_text("the previous one also signs until")
    shoot(page, "13-webhook-endpoint")
    page.get_by_label("Yes, delete this endpoint and its deliveries").check()
    page.get_by_role("button", name="Delete endpoint").click()
    expect(page.get_by_role("status")).to_contain_text("Endpoint deleted")
    expect(page.locator("main")).to_contain_text("No endpoints yet")

    page.locator("header").get_by_role("link", name="Webhooks").click()
    expect(page).to_have_url(server + "/console/webhooks")
    expect(page.locator("main")).to_contain_text("hear the events of every tenant")
