"""Every console page through axe-core, in English and Japanese, on a laptop and on a 360 px wide phone,
with a screenshot of each (tests/browser.py:screenshot says where).

The pages are the console's GET routes, read from the app's router (tests/console_routes.py): a page added
tomorrow is walked tomorrow, as the operator sees it and, when `roles.py:for_org_admins` marks it, as an
organization admin's portal session sees it (`portal-<page>` screenshots). A route whose placeholder has no
id here fails `test_every_console_page_can_be_walked`, naming it; NOT_PAGES lists the GET routes that are
no page (redirects, a download), with the reason.

A real `scimsvc serve` and worker (tests/test_console_browser.py's), one organization with something of
everything (users, a team linked to a SCIM group, tokens, a webhook endpoint with deliveries, audit rows,
provisioning log entries) and an operator's webhook endpoint, made through the admin API and SCIM as a
product and an identity provider would. Besides axe-core's serious and critical violations, a page wider
than the window fails (`page-too-wide`: the house rule, wide tables in `<div class="table-wrap">`).
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from tests import test_console_browser as console
from tests.browser import (
    LANGUAGES,
    VIEWPORTS,
    Violation,
    axe_marks,
    axe_violations,
    call,
    open_portal,
    screenshot,
    set_language,
    sign_in_as_operator,
    wait_for,
)
from tests.conftest import ADMIN_KEY, user_body
from tests.console_routes import Route, console_routes, router_app
from tests.test_console_browser import Page

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
    operator_wid: str


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
    operator_wid = _admin(server, "POST", "/webhooks", {"url": HOOK_URL, "description": "Data warehouse"})[
        "id"
    ]
    # Disabled: an operator-wide endpoint would queue deliveries of every tenant's events, the other
    # tests' (which count them) included.
    _admin(server, "PATCH", f"/webhooks/{operator_wid}", {"enabled": False})
    return World(
        tid=tid, team_id=team_id, uid=uids[0], token_id=token["id"], wid=wid, operator_wid=operator_wid
    )


# GET routes of the console that are no page of their own, and why. Every other GET route is walked.
NOT_PAGES = {
    "/console": "redirects to /console/tenants",
    "/console/": "redirects to /console/tenants",
    "/console/tenants/{tid}": "redirects to the SCIM panel",
    "/console/tenants/{tid}/users.csv": "a CSV download",
    "/console/portal/{token}": "a portal link: walked signed out (its Continue page; a used link's 410 page)",
    "/console/portal/continue": "an emailed link's Continue page: needs its cookie (410 without)",
}
SIGNED_OUT = ("/console/login", "/console/portal/sign-in")  # walked before signing in


def _pages() -> list[Route]:
    return [
        r
        for r in console_routes(router_app())
        if "GET" in r.handlers and r.template not in NOT_PAGES and r.template not in SIGNED_OUT
    ]


def _ids(world: World, route: Route) -> dict[str, str]:
    """The ids a route's placeholders take: the organization's, or the operator's endpoint."""
    if route.of_an_organization:
        return {
            "tid": world.tid,
            "team_id": world.team_id,
            "uid": world.uid,
            "user_id": world.uid,
            "token_id": world.token_id,
            "wid": world.wid,
            "endpoint_id": world.wid,
        }
    return {"wid": world.operator_wid, "endpoint_id": world.operator_wid}


def test_every_console_page_can_be_walked() -> None:
    """A page whose placeholder the walk has no id for would go unchecked: fail, naming it."""
    unfilled = {}
    example = World(*(["x"] * len(dataclasses.fields(World))))
    for route in _pages():
        missing = set(route.placeholders) - set(_ids(example, route))
        if missing:
            unfilled[route.template] = sorted(missing)
    assert not unfilled, (
        f"console pages the accessibility walk has no id for: {unfilled}; make such a resource in `world` "
        "and add its id to _ids (tests/test_console_accessibility.py), or add the route to NOT_PAGES "
        "with the reason it is no page"
    )


def _visit(
    page: Page, url: str, name: str, viewport: str, problems: dict[str, list[str]], *, status: int = 200
) -> None:
    """Open a page, screenshot it, check it; what is wrong goes into `problems` under its name."""
    response = page.goto(url)
    found = [str(v) for v in _checked(page, name, viewport)]
    if response is None or response.status != status:
        found.insert(0, f"answered {response and response.status}, not {status}")
    if found:
        problems[f"{name} ({url})"] = found


def _signed_out(page: Page, server: str, world: World, viewport: str, problems: dict[str, list[str]]) -> None:
    """The sign-in pages; a portal link's Continue page (opening it uses nothing up: only its button does),
    and the page of a link that no longer works (410)."""
    paths = {r.template for r in console_routes(router_app())}
    for path in SIGNED_OUT:
        if path in paths:
            _visit(page, server + path, Route(path, {}).slug, viewport, problems)
    link = _admin(server, "POST", f"/tenants/{world.tid}/portal-links", {})["url"]
    _visit(page, link, "portal-continue", viewport, problems)
    gone = link.rsplit("/", 1)[0] + "/" + "x" * 43
    _visit(page, gone, "portal-link-gone", viewport, problems, status=410)


def _report(who: str, lang: str, viewport: str, problems: dict[str, list[str]]) -> str:
    return (
        f"{who}'s pages ({lang}, {viewport}): axe-core serious/critical violations and page faults\n"
        + "\n".join(f"{name}:\n    " + "\n    ".join(found) for name, found in problems.items())
    )


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
    # Where it starts: the elements that stick out of a parent that does not (a table not in a wrap, a
    # long unbroken word, a wide field).
    culprits = page.evaluate(
        """(width) => {
            const out = e => e.getBoundingClientRect().right > width + 1;
            const name = e => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "")
                + (typeof e.className === "string" && e.className ? "." + e.className.split(" ")[0] : "");
            const all = [...document.body.querySelectorAll("*")].filter(e => !e.closest(".table-wrap"));
            const boxes = all.filter(e => out(e) && e.parentElement && !out(e.parentElement));
            // Else text that overflows its own box (an unbroken URL in a heading): the innermost such box.
            const spills = e => e.scrollWidth > e.clientWidth + 1
                && getComputedStyle(e).overflowX === "visible";
            const texts = all.filter(e => spills(e) && ![...e.children].some(spills));
            return (boxes.length ? boxes : texts).slice(0, 6).map(name);
        }""",
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
def test_every_operator_page_has_no_serious_accessibility_violations(
    page: Page, server: str, world: World, lang: str, viewport: str
) -> None:
    """Signed out (the sign-in pages), then as the operator every GET page of the console, then an error
    page: axe-core, the width, a screenshot each."""
    page.set_viewport_size(VIEWPORTS[viewport])
    set_language(page.context, server, lang)
    problems: dict[str, list[str]] = {}
    _signed_out(page, server, world, viewport, problems)
    sign_in_as_operator(page, server)
    assert page.evaluate("() => document.documentElement.lang") == lang
    for route in _pages():
        _visit(page, server + route.page_url(_ids(world, route)), route.slug, viewport, problems)
    _visit(page, f"{server}/console/tenants/{uuid.uuid4()}/scim", "error-404", viewport, problems, status=404)
    assert not problems, _report("the operator", lang, viewport, problems)


@pytest.mark.parametrize("viewport", sorted(VIEWPORTS))
@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_portal_page_has_no_serious_accessibility_violations(
    page: Page, server: str, world: World, lang: str, viewport: str
) -> None:
    """An organization admin's portal session (an admin API link, opened in the browser): every page
    open to organization admins (roles.py:for_org_admins), as they see it; screenshots `portal-<page>`."""
    page.set_viewport_size(VIEWPORTS[viewport])
    set_language(page.context, server, lang)
    open_portal(page, server, world.tid)
    problems: dict[str, list[str]] = {}
    marked = [r for r in _pages() if r.of_an_organization and r.marked("GET")]
    assert marked, "no console page is open to organization admins (roles.py:for_org_admins marks none)"
    for route in marked:
        _visit(page, server + route.page_url(_ids(world, route)), "portal-" + route.slug, viewport, problems)
    assert not problems, _report("an organization admin", lang, viewport, problems)
