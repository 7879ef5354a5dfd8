"""The console's provisioning log tab end to end, in headless Chromium (tests/test_console_browser.py's
server, worker and browser)."""

from __future__ import annotations

import uuid

from tests import test_console_browser as console
from tests.conftest import user_body
from tests.test_console_browser import (
    Page,
    create_tenant,
    expect,
    generate_token,
    reload_until,
    scim,
    shoot,
    sign_in,
)

# The console browser test's server, worker, browser and skips (no chromium, no playwright).
pytestmark = console.pytestmark
server = console.server
browser_context = console.browser_context
page = console.page


def test_operator_reads_the_provisioning_log_and_follows_a_user_to_its_audit(page: Page, server: str) -> None:
    sign_in(page, server)
    tenant_id = create_tenant(page, server, seats=5)
    token = generate_token(page)
    name = f"grace.{uuid.uuid4().hex[:6]}@example.com"
    status, user = scim(server, token, "POST", "/Users", user_body(name))
    assert status == 201, user
    status, refusal = scim(server, token, "POST", "/Users", {"schemas": []})
    assert status == 400, refusal

    page.get_by_role("link", name="Provisioning log").click()
    expect(page).to_have_url(f"{server}/console/tenants/{tenant_id}/log")
    rows = page.locator("#log-table tbody tr")
    reload_until(
        page, lambda: rows.count() == 2 and "applied" in rows.last.inner_text(), "both entries, applied"
    )
    expect(rows.first).to_contain_text(refusal["scimType"])
    expect(rows.last).to_contain_text(f'POST user "{name}"')
    expect(rows.last).to_contain_text("Full license")
    shoot(page, "12-provisioning-log")

    page.get_by_label("Status").select_option("4xx")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("400")

    page.goto(f"{server}/console/tenants/{tenant_id}/users")
    page.locator("#users-table").get_by_role("link", name="log").click()
    expect(page).to_have_url(f"{server}/console/tenants/{tenant_id}/log?user={user['id']}")
    expect(rows).to_have_count(1)
    rows.first.get_by_role("link", name="audit").click()
    expect(page.locator("#audit-table")).to_contain_text("Seat given (full license)")
