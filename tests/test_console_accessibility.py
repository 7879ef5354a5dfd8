"""Every console page through axe-core, in English and Japanese, on a laptop and on a 360 px wide phone,
with a screenshot of each under docs/screenshots/<lang>/ (the README names the folder).

A real `scimsvc serve` and worker (tests/test_console_browser.py's), one organization with something of
everything (users, a team linked to a SCIM group, a token, a webhook endpoint with deliveries, audit rows,
provisioning log entries), made through the admin API and SCIM as a product and an identity provider
would. A console page (a GET route of the app) that is neither walked here nor exempt with a reason fails
`test_every_console_page_is_walked`, so a new page cannot slip by unchecked.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from scimsvc.settings import Settings
from scimsvc.web.app import create_app
from tests import test_console_browser as console
from tests.browser import (
    LANGUAGES,
    VIEWPORTS,
    Violation,
    axe_marks,
    axe_violations,
    call,
    screenshot,
    set_language,
    wait_for,
)
from tests.conftest import ADMIN_KEY, user_body
from tests.test_console_browser import Page, sign_in

pytestmark = axe_marks
server = console.server
browser_context = console.browser_context
page = console.page

HOOK_URL = "https://localhost:9443/hooks/scim"  # nobody answers: its deliveries fail and are retried


@dataclass(frozen=True)
class World:
    """One organization with something of everything, and the ids its pages take."""

    tid: str
    team_id: str
    uid: str
    token_id: str
    wid: str


def _admin(server: str, method: str, path: str, body: Any = None) -> Any:
    status, answer = call(server, method, "/admin/v1" + path, body, bearer=ADMIN_KEY)
    assert status < 300, (method, path, status, answer)
    return answer


@pytest.fixture(scope="module")
def world(server: str) -> World:
    tid = _admin(server, "POST", "/tenants", {"name": f"Acme {uuid.uuid4().hex[:6]}", "seats": 2})["id"]
    token = _admin(server, "POST", f"/tenants/{tid}/scim/tokens", {"label": "Okta"})
    wid = _admin(server, "POST", f"/tenants/{tid}/webhooks", {"url": HOOK_URL, "description": "HR system"})[
        "id"
    ]
    team_id = _admin(server, "POST", f"/tenants/{tid}/teams", {"name": "Engineering"})["id"]
    uids = []
    for name in ("ada", "bob", "cyd"):  # two seats: the third waits
        status, user = call(
            server,
            "POST",
            "/scim/v2/Users",
            user_body(f"{name}.{uuid.uuid4().hex[:6]}@example.com"),
            bearer=token["token"],
        )
        assert status == 201, user
        uids.append(user["id"])
    group = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "Engineering",
        "members": [{"value": uid} for uid in uids[:2]],
    }
    status, body = call(server, "POST", "/scim/v2/Groups", group, bearer=token["token"])
    assert status == 201, body
    status, body = call(server, "POST", "/scim/v2/Users", {"schemas": []}, bearer=token["token"])
    assert status == 400, body  # a refused request in the provisioning log
    wait_for(
        lambda: _admin(server, "GET", f"/tenants/{tid}/teams/{team_id}")["member_count"] == 2,
        "the group push",
    )
    wait_for(
        lambda: _admin(server, "GET", f"/tenants/{tid}/webhooks/{wid}/deliveries")["items"],
        "a webhook delivery",
    )
    return World(tid=tid, team_id=team_id, uid=uids[0], token_id=token["id"], wid=wid)


# Every console page a person opens, by a name (its screenshot's) and its route. The operator's.
PAGES = {
    "tenants": "/console/tenants",
    "scim": "/console/tenants/{tid}/scim",
    "seats": "/console/tenants/{tid}/seats",
    "teams": "/console/tenants/{tid}/teams",
    "team": "/console/tenants/{tid}/teams/{team_id}",
    "users": "/console/tenants/{tid}/users",
    "audit": "/console/tenants/{tid}/audit",
    "provisioning-log": "/console/tenants/{tid}/log",
    "webhooks-operator": "/console/webhooks",
    "webhooks": "/console/tenants/{tid}/webhooks",
    "webhook-endpoint": "/console/tenants/{tid}/webhooks/{wid}",
    "queue": "/console/queue",
}
# GET routes that are no page of their own, and why.
NOT_PAGES = {
    "/console": "redirects to /console/tenants",
    "/console/": "redirects to /console/tenants",
    "/console/login": "walked signed out, before the others",
    "/console/tenants/{tid}": "redirects to the SCIM panel",
    "/console/tenants/{tid}/users.csv": "a CSV download",
    "/console/webhooks/{wid}": "the operator's endpoint: the same page as webhook-endpoint",
    "/console/portal/{token}": "a portal link: starts a session and redirects",
}


def _console_get_routes() -> set[str]:
    app = create_app(Settings(database_url="postgresql://unused", admin_key=ADMIN_KEY))
    found = set()
    for resource in app.router.resources():
        info = resource.get_info()
        path = info.get("path") or info.get("formatter")
        if not path or not path.startswith("/console") or "prefix" in info:
            continue  # static files are a prefix resource
        if any(route.method in ("GET", "*") for route in resource):
            found.add(re.sub(r"\{(\w+)(:[^}]*)?\}", r"{\1}", path))
    return found


def test_every_console_page_is_walked() -> None:
    unwalked = _console_get_routes() - set(PAGES.values()) - set(NOT_PAGES)
    assert not unwalked, (
        f"console pages no accessibility walk covers: {sorted(unwalked)}; add each to PAGES of "
        "tests/test_console_accessibility.py (or to NOT_PAGES with the reason it is no page)"
    )


def _walk(page: Page, server: str, world: World, viewport: str) -> Iterator[tuple[str, list[Violation]]]:
    """Open each page (the sign-in page signed out, then the operator's, then an error page), check it
    with axe-core and screenshot it; its name and violations."""
    ids = {
        "tid": world.tid,
        "team_id": world.team_id,
        "uid": world.uid,
        "token_id": world.token_id,
        "wid": world.wid,
    }
    page.goto(server + "/console/login")
    yield "login", _checked(page, "login", viewport)
    sign_in(page, server)
    for name, route in PAGES.items():
        response = page.goto(server + route.format(**ids))
        assert response is not None and response.status == 200, (name, response and response.status)
        yield name, _checked(page, name, viewport)
    response = page.goto(f"{server}/console/tenants/{uuid.uuid4()}/scim")
    assert response is not None and response.status == 404
    yield "error-404", _checked(page, "error-404", viewport)


def _checked(page: Page, name: str, viewport: str) -> list[Violation]:
    screenshot(page, f"{name}-{viewport}")
    return axe_violations(page) + too_wide(page)


def too_wide(page: Page) -> list[Violation]:
    """The house rule "usable on a narrow window": the page itself never scrolls sideways (a wide table
    scrolls inside its own `<div class="table-wrap">`). Reported as axe reports its rules."""
    wider = page.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
    if wider <= 0:
        return []
    width = page.evaluate("() => document.documentElement.clientWidth")
    culprits = page.evaluate(
        """(width) => [...document.querySelectorAll("table, pre")]
            .filter(e => e.getBoundingClientRect().right > width && !e.closest(".table-wrap"))
            .map(e => e.id ? "#" + e.id : e.tagName.toLowerCase())""",
        width,
    )
    return [
        Violation(
            "page-too-wide",
            "serious",
            f"The page is {wider}px wider than a {width}px window "
            '(wrap wide tables in <div class="table-wrap">)',
            tuple(culprits) or ("html",),
            page.url,
        )
    ]


def test_axe_runs_under_the_consoles_content_security_policy(page: Page, server: str) -> None:
    """axe-core really runs on a console page (whose CSP refuses any script not served by the console) and
    reports what it should: an unlabelled field put there by the test."""
    response = page.goto(server + "/console/login")
    assert response is not None and "script-src 'self'" in response.headers["content-security-policy"]
    assert axe_violations(page) == []
    page.evaluate("() => document.querySelector('main').insertAdjacentHTML('beforeend', '<input id=bare>')")
    [violation] = axe_violations(page)
    assert (violation.rule, violation.impact, violation.targets) == ("label", "critical", ("#bare",))
    assert "label" in str(violation) and "#bare" in str(violation)


@pytest.mark.parametrize("viewport", sorted(VIEWPORTS))
@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_console_page_has_no_serious_accessibility_violations(
    page: Page, server: str, world: World, lang: str, viewport: str
) -> None:
    page.set_viewport_size(VIEWPORTS[viewport])
    set_language(page.context, server, lang)
    found = {name: violations for name, violations in _walk(page, server, world, viewport) if violations}
    assert page.evaluate("() => document.documentElement.lang") == lang
    assert not found, f"axe-core ({lang}, {viewport}): serious/critical violations\n" + "\n".join(
        f"{name} ({violations[0].url}):\n    " + "\n    ".join(str(v) for v in violations)
        for name, violations in found.items()
    )
