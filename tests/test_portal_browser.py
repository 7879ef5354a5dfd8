"""Portal access in a real browser (headless Debian chromium, as tests/test_console_browser.py): a product
on another site embeds the portal the way WorkOS's Admin Portal is embedded (its settings page asks the
admin API for a link and redirects its admin's browser there), and the session cookie, SameSite=Strict,
still signs that browser in; signing out ends it. An emailed link clicked in a webmail (another site)
leaves the address bar for the Continue page, and its button signs in."""

from __future__ import annotations

import asyncio
import hashlib
import http.server
import json
import secrets
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from tests import test_console_browser as console
from tests.conftest import ADMIN_KEY, free_port
from tests.test_console_browser import Page, expect, shoot

# The console browser test's server, worker, browser and skips (no chromium, no playwright).
pytestmark = console.pytestmark
server = console.server
browser_context = console.browser_context
page = console.page


def admin(server: str, method: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        server + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as resp:
        return json.loads(resp.read() or b"null")


@pytest.fixture
def product(server: str) -> Iterator[tuple[str, dict[str, str]]]:
    """The customer's product on another site (`localhost`, where the console is `127.0.0.1`): its
    settings page links to /scim-settings, which asks the admin API for a portal link and redirects."""
    tenant: dict[str, str] = {}

    class Product(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's API
            if self.path == "/scim-settings":
                link = admin(
                    server, "POST", f"/admin/v1/tenants/{tenant['id']}/portal-links", {"redirect": True}
                )
                self.send_response(302)
                self.send_header("Location", link["url"])
                self.end_headers()
                return
            if self.path == "/mail":  # a webmail showing an emailed sign-in link
                body = (
                    f'<!doctype html><title>Mail</title><a href="{tenant["mail_link"]}">Sign in</a>'.encode()
                )
            else:
                body = b'<!doctype html><title>Product settings</title><a href="/scim-settings">SCIM settings'
                body += b"</a>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Product)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{httpd.server_address[1]}", tenant
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_product_on_another_site_embeds_the_portal_and_signing_out_ends_it(
    page: Page, server: str, product: tuple[str, dict[str, str]]
) -> None:
    site, tenant = product
    tenant["id"] = admin(server, "POST", "/admin/v1/tenants", {"name": "Embedded Org"})["id"]
    scim_page = f"{server}/console/tenants/{tenant['id']}/scim"

    page.goto(site + "/")
    page.get_by_role("link", name="SCIM settings").click()
    expect(page).to_have_url(scim_page)
    expect(page.get_by_role("heading", level=1)).to_have_text("SCIM")
    shoot(page, "portal-01-embedded-scim")

    page.goto(f"{server}/console/tenants")  # the operator's pages are not there
    expect(page.get_by_role("heading", level=1)).to_have_text("Not found")
    shoot(page, "portal-02-operator-page-404")

    page.goto(scim_page)
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{server}/console/portal/sign-in")
    shoot(page, "portal-03-sign-in-by-email")
    page.goto(scim_page)  # signed out: the sign-in page, which leads organization admins to theirs
    expect(page).to_have_url(f"{server}/console/login")
    page.get_by_role("link", name="Organization admin? Ask for a sign-in link by email").click()
    expect(page).to_have_url(f"{server}/console/portal/sign-in")
    page.get_by_label("Your email").fill("nobody@example.com")
    page.get_by_role("button", name="Send me a sign-in link").click()
    expect(page.get_by_role("status")).to_contain_text("a sign-in link is on its way")


def _emailed_link(database_url: str, tenant_id: str) -> str:
    """An emailed sign-in link as the worker leaves it once sent (its token in the email only): the token.
    In a thread of its own: Playwright's sync API owns this thread's event loop."""
    token = secrets.token_urlsafe(32)

    async def insert() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(
                "INSERT INTO portal_links (tenant_id, token_hash, email, emailed, expires_at) "
                "VALUES ($1, $2, 'it@mailed.example', true, now() + interval '15 minutes')",
                uuid.UUID(tenant_id),
                hashlib.sha256(token.encode()).digest(),
            )
        finally:
            await conn.close()

    thread = threading.Thread(target=asyncio.run, args=(insert(),))
    thread.start()
    thread.join()
    return token


def test_an_emailed_link_opened_from_webmail_leaves_the_address_bar_and_continues(
    page: Page, server: str, product: tuple[str, dict[str, str]], database_url: str
) -> None:
    """A link clicked in a webmail (another site): its token moves into a SameSite=Lax cookie of the
    Continue page, which the browser sends on that cross-site navigation's redirect; the page's URL holds
    no token, and the Continue button signs in."""
    site, tenant = product
    tenant["id"] = admin(server, "POST", "/admin/v1/tenants", {"name": "Mailed Org"})["id"]
    token = _emailed_link(database_url, tenant["id"])
    tenant["mail_link"] = f"{server}/console/portal/{token}"

    page.goto(site + "/mail")
    page.get_by_role("link", name="Sign in").click()
    expect(page).to_have_url(f"{server}/console/portal/continue")
    assert token not in page.content()
    page.get_by_role("button", name="Continue to Mailed Org").click()
    expect(page).to_have_url(f"{server}/console/tenants/{tenant['id']}/scim")
    expect(page.get_by_role("heading", level=1)).to_have_text("SCIM")
