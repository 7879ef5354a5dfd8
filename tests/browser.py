"""Headless Chromium for the console's browser tests: Debian's chromium driven by Playwright's Python
package (never a downloaded browser), axe-core's accessibility check, and the screenshots the README shows.

- `browser_marks`: a test module's `pytestmark` (skip, saying why, without /usr/bin/chromium or Playwright);
  `axe_marks` adds axe-core (`tests/browser/node_modules`, installed by `npm ci` in .ci/run).
- `chromium_context(viewport=...)`: a fresh headless chromium profile (a context manager).
- `set_language(context, base_url, "ja")`: the console's language switch cookie, as the switch sets it.
- `assert_accessible(page)`: runs axe-core on the page and fails with its serious and critical violations
  (rule, help text, the elements' selectors); `axe_violations(page)` returns them instead.
- `screenshot(page, name)`: the whole page as `<lang>/<name>.png` under SCREENSHOTS, `<lang>` the page's
  `<html lang>`: `tests/screenshots/` (git-ignored), or the README's `docs/screenshots/` with
  SCIMSVC_DOC_SCREENSHOTS=1 (README.md, For organization admins).
- `sign_in_as_operator(page, base_url)` (by the field's name: any language), `open_portal(page, base_url,
  tid)` (an organization admin's session: an admin API portal link, opened), `call(base_url, method, path,
  body, bearer=...)` (the admin API or SCIM, as a product or an IdP calls them), `wait_for(ready, what)`.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import ADMIN_KEY

try:
    from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    sync_playwright = None  # type: ignore[assignment]

ROOT = Path(__file__).parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AXE_JS = Path(__file__).parent / "browser" / "node_modules" / "axe-core" / "axe.min.js"
# A test run leaves the repository as it found it: screenshots go to a git-ignored folder, unless the ones
# the README shows are being refreshed (after a change to the console's pages).
DOC_SCREENSHOTS = os.environ.get("SCIMSVC_DOC_SCREENSHOTS") == "1"
SCREENSHOTS = ROOT / ("docs" if DOC_SCREENSHOTS else "tests") / "screenshots"

DESKTOP = {"width": 1366, "height": 860}
NARROW = {"width": 360, "height": 740}  # a small phone: tables must wrap or scroll in their own box
VIEWPORTS = {"desktop": DESKTOP, "narrow": NARROW}
LANGUAGES = ("en", "ja")
LANG_COOKIE = "scimsvc_lang"  # scimsvc/web/console/i18n.py:LANG_COOKIE

# What fails a page: axe-core's two highest impacts (the issue: "no serious or critical violations").
FAILING_IMPACTS = ("serious", "critical")

browser_marks = [
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="no /usr/bin/chromium: install Debian's chromium (as root: apt-get install -y chromium)",
    ),
    pytest.mark.skipif(sync_playwright is None, reason="no playwright package: pip install -e '.[test]'"),
]
axe_marks = [
    *browser_marks,
    pytest.mark.skipif(
        not AXE_JS.exists(),
        reason=f"no {AXE_JS.relative_to(ROOT)}: run `npm ci` in tests/browser (bash .ci/run does)",
    ),
]


@contextmanager
def chromium_context(*, viewport: dict[str, int] | None = None) -> Iterator[BrowserContext]:
    """Headless Debian chromium with a fresh profile (clipboard and all), a laptop-sized window unless
    told otherwise, and a bound on a hang (the machine may be busy)."""
    assert sync_playwright is not None
    with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        context = p.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=viewport or DESKTOP,
        )
        context.set_default_timeout(60_000)
        try:
            yield context
        finally:
            context.close()


def set_language(context: BrowserContext, base_url: str, lang: str) -> None:
    """The console's language, as its switch chooses it (the `scimsvc_lang` cookie)."""
    assert lang in LANGUAGES, lang
    context.add_cookies([{"name": LANG_COOKIE, "value": lang, "url": base_url + "/console/"}])


# --- axe-core ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Violation:
    """One axe-core rule broken on a page: its id, impact, help text and the elements' selectors."""

    rule: str
    impact: str
    help: str
    targets: tuple[str, ...]
    url: str

    def __str__(self) -> str:
        shown = ", ".join(self.targets[:8]) + (
            f" (+{len(self.targets) - 8} more)" if len(self.targets) > 8 else ""
        )
        return f"[{self.impact}] {self.rule}: {self.help} -- {shown}"


# axe.run's options: WCAG 2.x A and AA rules plus axe's best practices; only violations come back.
_AXE_RUN = """async () => {
    const results = await axe.run(document, {
        runOnly: {type: "tag", values: [
            "wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]},
        resultTypes: ["violations"],
    });
    return results.violations.map(v => ({
        id: v.id, impact: v.impact, help: v.help,
        targets: v.nodes.map(n => n.target.map(t => Array.isArray(t) ? t.join(" >> ") : t).join(" ")),
    }));
}"""


def _load_axe(page: Page) -> None:
    """Put axe-core into the page. `page.evaluate` runs through the DevTools protocol, which the
    console's `script-src 'self'` does not govern (a `<script>` tag with the same text would be
    refused); axe's own code needs no eval."""
    if page.evaluate("() => typeof window.axe === 'object'"):
        return
    page.evaluate(AXE_JS.read_text(encoding="utf-8"))
    assert page.evaluate("() => typeof window.axe === 'object' && typeof axe.run === 'function'"), (
        "axe-core did not load into the page"
    )


def axe_violations(page: Page, *, impacts: tuple[str, ...] = FAILING_IMPACTS) -> list[Violation]:
    """axe-core's violations of these impacts on the page as it is now."""
    _load_axe(page)
    found: list[dict[str, Any]] = page.evaluate(_AXE_RUN)
    return [
        Violation(v["id"], v["impact"] or "?", v["help"], tuple(v["targets"]), page.url)
        for v in found
        if v["impact"] in impacts
    ]


def assert_accessible(page: Page) -> None:
    """Fail, with a readable list, if axe-core finds serious or critical violations on the page."""
    violations = axe_violations(page)
    if violations:
        listed = "\n  ".join(str(v) for v in violations)
        raise AssertionError(
            f"axe-core: {len(violations)} serious/critical violation(s) on {page.url}:\n  {listed}"
        )


# --- screenshots ---------------------------------------------------------------------------------------


def screenshot(page: Page, name: str) -> Path:
    """The whole page as `<lang>/<name>.png` under SCREENSHOTS (`<lang>` from `<html lang>`); its path."""
    lang = page.evaluate("() => document.documentElement.lang") or "en"
    folder = SCREENSHOTS / lang
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


# --- the admin API and SCIM, as a product and an identity provider call them ----------------------------


def call(base_url: str, method: str, path: str, body: Any = None, *, bearer: str) -> tuple[int, Any]:
    """One JSON request to the running server (plain urllib: Playwright's sync API owns this thread's
    event loop); its status and decoded body (None when empty)."""
    request = urllib.request.Request(
        base_url + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={
            "Authorization": f"Bearer {bearer}",
            "Content-Type": "application/scim+json" if path.startswith("/scim/") else "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def wait_for(ready: Callable[[], Any], what: str, seconds: float = 120) -> Any:
    """Poll `ready()` until it returns something true (the worker applies changes after the answer);
    that value. The deadline only bounds a hang."""
    deadline = time.monotonic() + seconds
    while not (value := ready()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)
    return value


# --- signing in, in any language -------------------------------------------------------------------------


def sign_in_as_operator(page: Page, base_url: str, key: str | None = None) -> None:
    """The operator's sign-in through the form, by its field's name (so in any language)."""
    page.goto(base_url + "/console/login")
    field = page.locator('input[name="key"]')
    field.fill(key or ADMIN_KEY)
    with page.expect_navigation():
        field.press("Enter")
    assert urlsplit(page.url).path == "/console/tenants", f"the operator's sign-in ended at {page.url}"


def open_portal(page: Page, base_url: str, tenant_id: str, *, email: str | None = None) -> None:
    """An organization admin's portal session in this browser, as a product embeds it: the admin API makes
    a link (POST /admin/v1/tenants/{tid}/portal-links), the browser opens it and lands on the SCIM panel."""
    body: dict[str, Any] = {"redirect": True, "email": email} if email else {"redirect": True}
    status, link = call(
        base_url, "POST", f"/admin/v1/tenants/{tenant_id}/portal-links", body, bearer=ADMIN_KEY
    )
    assert status == 201, f"no portal link for {tenant_id}: {status} {link}"
    page.goto(base_url + "/console/portal/" + link["url"].rsplit("/console/portal/", 1)[1])
    # The link answers a page that moves on by itself (SameSite=Strict, see README): goto returns with it.
    scim_panel = f"/console/tenants/{tenant_id}/scim"
    page.wait_for_url(lambda url: urlsplit(url).path == scim_panel)
    landed = urlsplit(page.url).path
    assert landed == f"/console/tenants/{tenant_id}/scim", f"the portal link landed on {page.url}"


@contextmanager
def chromium_browser() -> Iterator[Browser]:
    """Headless Debian chromium as a browser of several contexts (each its own cookies): the operator in
    one, an organization admin's portal session in another, side by side.

        with chromium_browser() as browser:
            operator = browser.new_context(viewport=DESKTOP).new_page()
            admin = browser.new_context(viewport=NARROW).new_page()

    One Playwright per thread: not inside `chromium_context` (or test_console_browser's fixtures)."""
    assert sync_playwright is not None
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
