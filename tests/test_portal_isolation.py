"""One organization's portal session never sees or touches another's: every console route, walked from the
app's own router, so a new page or action is covered the day it is added.

Organizations A and B each get something of everything (users, a team linked to a SCIM group, tokens, a
webhook endpoint with deliveries, audit rows, provisioning log entries, a registered admin address), made
through the admin API and SCIM as a product and an identity provider make them, applied by a real worker.
Then, signed in to A's portal (an admin API link, opened with GET):

- every route under `/console/tenants/{tid}`, with B's ids (and with A's `{tid}` and B's other ids), GET and
  POST (with A's valid CSRF token and a plausible form): 404, nothing of B changed, none of B's names shown;
- every operator-only console route (a handler not marked `roles.py:for_org_admins`), also with A's own
  ids: 404;
- every form on A's pages that carries an id (a user, a team, ...): sent with B's id instead, 404 and
  nothing changed in A or B;
- A's own marked pages: 200.

A route whose `{placeholder}` has no id here fails `test_every_console_route_placeholder_has_an_id`, naming
it: add the id to `Organization.ids` (the walk must not skip what it cannot fill in).
"""

from __future__ import annotations

import dataclasses
import html
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit

import asyncpg
import pytest
from multidict import MultiDict

from scimsvc.settings import Settings
from tests.conftest import ADMIN_HEADERS, make_tenant, run_worker, user_body
from tests.console_routes import TENANT_ROUTES, Route, console_routes, router_app

# Console routes outside any organization that a portal session may open (or that need no session): the
# portal's own paths (web/console/access.py: PORTAL_PREFIX, PORTAL_PATHS), sign-in, the static files.
NOT_OPERATOR_ONLY = {
    "/console": "sends a portal session to its own organization's SCIM panel",
    "/console/": "sends a portal session to its own organization's SCIM panel",
    "/console/login": "the operator's sign-in form (needs no session)",
    "/console/logout": "signing out: every session may",
    "/console/language": "the language switch: every session may",
}
PUBLIC_PREFIXES = ("/console/portal/", "/console/static/")  # before any sign-in: a link, a sign-in by email
HOOK_URL = "https://localhost:8443/hooks/{marker}"  # loopback, allowed below; nobody answers
# A form a POST route may read: plausible values, so an answer is never a 400 for a missing field before
# the ids are looked at. Ids of the other organization are filled in per request.
PLAUSIBLE_FORM = {
    "name": "Isolation check",
    "label": "Isolation check",
    "seats": "7",
    "enabled": "false",
    "license": "full",
    "fallback_license": "none",
    "default_license": "full",
    "confirm": "yes",
    "confirmed": "yes",
    "url": "https://localhost:8443/hooks/isolation",
    "description": "Isolation check",
    "event_id": "evt_1",
    "since": "2026-01-01T00:00:00",
    "until": "2026-01-02T00:00:00",
    "email": "isolation@example.com",
    "minutes": "5",
    "force": "yes",
}
# Form fields that name a user or a team (typed by a person): sent with the other organization's.
USER_FIELDS = ("user", "uid", "user_id", "member", "manager")
TEAM_FIELDS = ("team", "team_id", "teams")
# A typed event id (the webhook replay form): sent with the other organization's, 404 it must be.
EVENT_FIELDS = ("event_id",)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Webhook endpoints on this machine's loopback (their deliveries fail: nobody answers)."""
    return dataclasses.replace(
        settings,
        webhook_signing_key="isolation-signing-key-" + uuid.uuid4().hex,
        webhook_allowed_networks="127.0.0.0/8,::1/128",
    )


@dataclass
class Organization:
    """An organization with something of everything; `ids` maps a route's `{placeholder}` to its id."""

    name: str
    marker: str  # in every name of this organization: seen on a page of the other, it leaked
    ids: dict[str, str]
    user_name: str


async def _admin(client: Any, method: str, path: str, body: Any = None) -> Any:
    resp = await client.request(method, "/admin/v1" + path, json=body, headers=ADMIN_HEADERS)
    assert resp.status < 300, (method, path, resp.status, await resp.text())
    return await resp.json() if resp.status != 204 else None


async def _scim(client: Any, token: str, method: str, path: str, body: Any) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
    resp = await client.request(method, "/scim/v2" + path, json=body, headers=headers)
    return resp.status, await resp.json()


async def organization(client: Any, letter: str) -> Organization:
    marker = f"zq{letter}{uuid.uuid4().hex[:8]}"  # unlikely in any page text but this organization's
    tenant = await make_tenant(client, name=f"Org {marker}", seats=1)
    tid = tenant.id
    wid = (await _admin(client, "POST", f"/tenants/{tid}/webhooks", {"url": HOOK_URL.format(marker=marker)}))[
        "id"
    ]
    team_name = f"Team {marker}"
    team_id = (await _admin(client, "POST", f"/tenants/{tid}/teams", {"name": team_name}))["id"]
    second = await _admin(client, "POST", f"/tenants/{tid}/scim/tokens", {"label": f"Okta {marker}"})
    await _admin(client, "POST", f"/tenants/{tid}/org-admins", {"email": f"{marker}@example.com"})
    uids, user_names = [], []
    for name in ("ada", "bob"):  # one seat: the second waits
        user_name = f"{name}.{marker}@example.com"
        status, user = await _scim(client, tenant.token, "POST", "/Users", user_body(user_name))
        assert status == 201, user
        uids.append(user["id"])
        user_names.append(user_name)
    group = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": team_name,
        "members": [{"value": uid} for uid in uids],
    }
    status, created = await _scim(client, tenant.token, "POST", "/Groups", group)
    assert status == 201, created
    # A team linked to no group (its page has the "Link a SCIM group" form), and a group of a team of its own
    # that `_unlink` deletes once the worker applied it: a group linked to no team, the form's choice.
    free_team = await _admin(client, "POST", f"/tenants/{tid}/teams", {"name": f"Free team {marker}"})
    await _admin(client, "POST", f"/tenants/{tid}/teams", {"name": f"Gone team {marker}"})
    free_group = {**group, "displayName": f"Gone team {marker}", "members": [{"value": uids[0]}]}
    status, free_group = await _scim(client, tenant.token, "POST", "/Groups", free_group)
    assert status == 201, free_group
    status, refused = await _scim(client, tenant.token, "POST", "/Users", {"schemas": []})
    assert status == 400, refused  # a refused request in the provisioning log
    return Organization(
        name=f"Org {marker}",
        marker=marker,
        user_name=user_names[0],
        ids={
            "tid": tid,
            "uid": uids[0],
            "user_id": uids[0],
            "team_id": team_id,
            "gid": created["id"],
            "group_id": created["id"],
            "token_id": second["id"],
            "wid": wid,
            "endpoint_id": wid,
            # Not placeholders of any route: ids that forms carry (`_with_ids_of_b`).
            "free_team_id": free_team["id"],
            "free_group_id": free_group["id"],
        },
    )


async def _unlink(client: Any, db: asyncpg.Connection, org: Organization) -> None:
    """Delete the team of the organization's free group (the group stays, linked to nothing)."""
    team_id = await db.fetchval("SELECT team_id FROM groups WHERE id = $1::uuid", org.ids["free_group_id"])
    assert team_id is not None, "the group was not linked to its team"
    await _admin(client, "DELETE", f"/tenants/{org.ids['tid']}/teams/{team_id}")


async def _applied(db: asyncpg.Connection, org: Organization) -> None:
    """What the worker made of the requests is there: the team linked, deliveries, audit rows."""
    tid = org.ids["tid"]
    linked = await db.fetchval(
        "SELECT count(*) FROM teams t JOIN groups g ON g.team_id = t.id WHERE t.id = $1::uuid",
        org.ids["team_id"],
    )
    assert linked == 1, "the team is not linked to its SCIM group"
    for table in ("webhook_deliveries", "audit_log", "provisioning_log", "events"):
        count = await db.fetchval(f"SELECT count(*) FROM {table} WHERE tenant_id = $1::uuid", tid)  # noqa: S608
        assert count > 0, f"no {table} rows of {org.name}"
    unlinked = await db.fetchval(
        "SELECT team_id IS NULL FROM groups WHERE id = $1::uuid", org.ids["free_group_id"]
    )
    assert unlinked, "the free SCIM group was linked to a team"
    # An event of the organization, by its public id (services/webhooks.py: `evt_<n>`), for the replay form.
    last_event = await db.fetchval("SELECT max(id) FROM events WHERE tenant_id = $1::uuid", tid)
    org.ids["event_id"] = f"evt_{last_event}"


# --- the router --------------------------------------------------------------------------------------


def _known_placeholders() -> set[str]:
    # The keys of `Organization.ids` (the fixture's organizations have every one of them).
    return {"tid", "uid", "user_id", "team_id", "gid", "group_id", "token_id", "wid", "endpoint_id"}


def test_every_console_route_placeholder_has_an_id() -> None:
    """A route whose placeholder the walk cannot fill in is a route nobody checked: fail, naming it."""
    known = _known_placeholders()
    unfilled = {
        route.template: sorted(set(route.placeholders) - known)
        for route in console_routes(router_app())
        if route.template.startswith(TENANT_ROUTES) and set(route.placeholders) - known
    }
    assert not unfilled, (
        f"console routes with placeholders the isolation walk has no id for: {unfilled}; make such a "
        "resource in each organization (tests/test_portal_isolation.py:organization) and add its id to "
        "`ids` and _known_placeholders"
    )


# --- what B has, before and after ----------------------------------------------------------------------

VOLATILE_TABLES = ("console_sessions",)  # every signed-in request touches the session's last_seen_at


async def snapshot(db: asyncpg.Connection, tid: str) -> dict[str, list[str]]:
    """Every row of the organization: its tenants row, every table with a tenant_id (found in the catalog,
    so new tables count), team and webhook rows keyed through their parents."""
    tables = await db.fetch(
        "SELECT c.table_name FROM information_schema.columns c JOIN information_schema.tables t "
        "USING (table_schema, table_name) WHERE c.table_schema = current_schema() "
        "AND c.column_name = 'tenant_id' AND t.table_type = 'BASE TABLE' ORDER BY 1"
    )
    rows: dict[str, list[str]] = {}
    queries = {
        "tenants": "SELECT * FROM tenants WHERE id = $1::uuid",
        "team_members": "SELECT m.* FROM team_members m JOIN teams t ON t.id = m.team_id "
        "WHERE t.tenant_id = $1::uuid",
        "group_members": "SELECT m.* FROM group_members m JOIN groups g ON g.id = m.group_id "
        "WHERE g.tenant_id = $1::uuid",
        "webhook_attempts": "SELECT a.* FROM webhook_attempts a "
        "JOIN webhook_deliveries d ON d.id = a.delivery_id WHERE d.tenant_id = $1::uuid",
    }
    for (table,) in tables:
        if table not in VOLATILE_TABLES:
            queries[table] = f'SELECT * FROM "{table}" WHERE tenant_id = $1::uuid'  # noqa: S608
    for table, query in queries.items():
        rows[table] = sorted(repr(tuple(r.values())) for r in await db.fetch(query, tid))
    return rows


def changed(before: dict[str, list[str]], after: dict[str, list[str]]) -> list[str]:
    return [table for table in sorted(before) if before[table] != after.get(table)]


# --- forms on a page -------------------------------------------------------------------------------------


class Forms(HTMLParser):
    """The POST forms of a page: (action, fields as (name, value) pairs, the names a person types into)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, list[tuple[str, str]], set[str]]] = []
        self._select: str | None = None
        self._chosen: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            if a.get("method", "get").lower() == "post":
                self.forms.append((a.get("action", ""), [], set()))
            else:
                self.forms.append(("", [], set()))  # a GET form: a filter, not an action
        elif tag == "option" and self._select is not None:  # an option has no name of its own
            if self._chosen is None or "selected" in a:
                self._chosen = a.get("value", "")
        elif not self.forms or not a.get("name"):
            return
        elif tag == "input":
            kind = a.get("type", "text").lower()
            if kind in ("checkbox", "radio") and "checked" not in a:
                if kind == "checkbox":  # a confirmation box: ticked, so the action is really asked for
                    self.forms[-1][1].append((a["name"], a.get("value") or "on"))
                return
            if kind not in ("submit", "button", "reset", "file"):
                self.forms[-1][1].append((a["name"], a.get("value", "")))
                if kind in ("text", "search", "email", "url", "number"):
                    self.forms[-1][2].add(a["name"])
        elif tag == "textarea":
            self.forms[-1][1].append((a["name"], ""))
            self.forms[-1][2].add(a["name"])
        elif tag == "select":
            self._select, self._chosen = a["name"], None

    def handle_endtag(self, tag: str) -> None:
        if tag == "select" and self._select is not None and self.forms:
            self.forms[-1][1].append((self._select, self._chosen or ""))
            self._select = None


def post_forms(body: str) -> list[tuple[str, list[tuple[str, str]], set[str]]]:
    parser = Forms()
    parser.feed(body)
    return [f for f in parser.forms if f[0]]


# --- the walk ---------------------------------------------------------------------------------------------


@dataclass
class Walk:
    client: Any
    csrf: str
    a: Organization
    b: Organization
    problems: list[str]

    def leaked(self, body: str, sent: MultiDict[str] | None = None) -> bool:
        """Whether B's marker is on the page, apart from an echo of what the request itself sent (a form
        shown again with what was typed in it)."""
        for value in (sent or {}).values():
            if self.b.marker in value:
                for echo in (value, html.escape(value), quote(value, safe=""), quote_plus(value)):
                    body = body.replace(echo, "").replace(html.escape(echo), "")
        return self.b.marker in body

    async def send(self, method: str, url: str, form: MultiDict[str] | None = None) -> tuple[int, str, str]:
        """GET, or POST with the session's CSRF token and the form (a plausible one unless given): the
        status, the redirect's target and the page."""
        if method == "GET":
            resp = await self.client.get(url, allow_redirects=False)
        else:
            data: MultiDict[str] = MultiDict(form if form is not None else PLAUSIBLE_FORM)
            data["csrf_token"] = self.csrf
            resp = await self.client.post(url, data=data, allow_redirects=False)
        return resp.status, resp.headers.get("Location", ""), await resp.text()

    async def expect_404(self, method: str, url: str, form: MultiDict[str] | None = None) -> None:
        """404, and none of B's data on the page."""
        status, location, body = await self.send(method, url, form)
        shown = f"{method} {url}" + (f" {dict(form or {})}" if form is not None else "")
        if status != 404:
            self.problems.append(f"{shown}: {status} {location}".rstrip())
        if self.leaked(body, form):
            self.problems.append(f"{shown}: the answer shows organization B's data ({self.b.marker})")


def _session_routes(routes: list[Route]) -> Iterator[tuple[Route, str]]:
    for route in routes:
        for method in ("GET", "POST"):
            yield route, method


async def test_a_portal_session_reaches_nothing_of_another_organization(
    client: Any, settings: Settings, db: asyncpg.Connection
) -> None:
    try:
        from tests.portal import portal_session  # the portal's helper: an admin API link, opened with GET
    except ImportError:
        pytest.fail(
            "no tests/portal.py: this walk needs portal sessions (POST /admin/v1/tenants/{tid}/portal-links)"
        )

    a, b = await organization(client, "a"), await organization(client, "b")
    operator_wid = (await _admin(client, "POST", "/webhooks", {"url": HOOK_URL.format(marker="operator")}))[
        "id"
    ]
    # Disabled: an operator-wide endpoint would queue deliveries of every tenant's events, the other
    # tests' (which count them) included.
    await _admin(client, "PATCH", f"/webhooks/{operator_wid}", {"enabled": False})
    await run_worker(settings)
    for org in (a, b):
        await _unlink(client, db, org)
    await run_worker(settings)
    for org in (a, b):
        await _applied(db, org)
    routes = console_routes(client.server.app)
    known = _known_placeholders()
    assert all(set(r.placeholders) <= known for r in routes if r.template.startswith(TENANT_ROUTES)), (
        "see test_every_console_route_placeholder_has_an_id"
    )
    portal = await portal_session(client, a.ids["tid"])
    walk = Walk(client, portal.csrf, a, b, [])
    before = await snapshot(db, b.ids["tid"])

    # A's own pages open: every marked GET route with A's ids answers 200 (following a redirect, staying
    # in A), none shows B's data.
    own = [r for r in routes if r.template.startswith(TENANT_ROUTES) and r.marked("GET")]
    assert own, "no console page is open to organization admins (roles.py:for_org_admins marks none)"
    pages: dict[str, str] = {}
    for route in own:
        url = route.page_url(a.ids)
        resp = await client.get(url)
        body = await resp.text()
        if resp.status != 200 or not urlsplit(str(resp.url)).path.startswith(
            f"/console/tenants/{a.ids['tid']}"
        ):
            walk.problems.append(f"GET {url} (A's own page): {resp.status} at {resp.url}")
        elif walk.leaked(body):
            walk.problems.append(f"GET {url} (A's own page): shows organization B's data ({b.marker})")
        else:
            pages[url] = body
    # The page of A's team linked to no group: its "Link a SCIM group" form, with A's free group to choose.
    free_team = f"/console/tenants/{a.ids['tid']}/teams/{a.ids['free_team_id']}"
    resp = await client.get(free_team)
    body = await resp.text()
    assert resp.status == 200 and a.ids["free_group_id"] in body, (resp.status, free_team)
    assert not walk.leaked(body), f"GET {free_team}: shows organization B's data ({b.marker})"
    pages[free_team] = body

    # Every route of an organization, with B's ids, and with A's tid and B's other ids: 404.
    for route, method in _session_routes([r for r in routes if r.template.startswith(TENANT_ROUTES)]):
        await walk.expect_404(method, route.url(b.ids))
        if len(route.placeholders) > 1:
            await walk.expect_404(method, route.url({**b.ids, "tid": a.ids["tid"]}))

    # A route of A with more than one id of its own (a team's member): A's ids with one of them B's, one
    # at a time (`teams/{A's team}/members/{B's user}/remove`): 404, nothing of A or B changed.
    before_a = await snapshot(db, a.ids["tid"])
    swapped = []
    for route in routes:
        others = [p for p in route.placeholders if p != "tid"]
        if not route.template.startswith(TENANT_ROUTES) or len(others) < 2:
            continue
        for method in route.handlers:
            for name in others:
                url = route.url({**a.ids, name: b.ids[name]})
                swapped.append(f"{method} {url}")
                await walk.expect_404(method, url)
    if changed(before_a, await snapshot(db, a.ids["tid"])):
        walk.problems.append("organization A's rows changed by URLs with one of B's ids")
    remove_member = f"teams/{a.ids['team_id']}/members/{b.ids['uid']}/remove"
    assert any(url.endswith(remove_member) for url in swapped), "no URL of A's team with B's user was sent"

    # Every operator-only route: 404, with A's own ids too (the operator's pages of A are not A's).
    operator_ids = {**a.ids, "wid": operator_wid}
    for route, method in _session_routes(routes):
        if route.marked(method) or route.template in NOT_OPERATOR_ONLY:
            continue
        if route.template.startswith(PUBLIC_PREFIXES):
            continue
        ids = a.ids if route.template.startswith(TENANT_ROUTES) else operator_ids
        if not set(route.placeholders) <= set(ids):
            walk.problems.append(f"{route.template}: no id for {sorted(set(route.placeholders) - set(ids))}")
            continue
        await walk.expect_404(method, route.url(ids))

    # A's own pages with B's ids in the query (filters: ?user=, ?team=): nothing of B shown.
    for url in pages:
        query = {"user": b.ids["uid"], "uid": b.ids["uid"], "team": b.ids["team_id"], "q": b.user_name}
        resp = await client.get(url, params=query, allow_redirects=False)
        body = await resp.text()
        if resp.status not in (200, 303, 400, 404):
            walk.problems.append(f"GET {url} with B's ids in the query: {resp.status}")
        if walk.leaked(body, MultiDict(query)):
            walk.problems.append(
                f"GET {url} with B's ids in the query: shows organization B's data ({b.marker})"
            )

    after = await snapshot(db, b.ids["tid"])
    if changed(before, after):
        walk.problems.append(f"organization B's rows changed: {changed(before, after)}")
    before = after

    # Every form on A's pages that names a user or a team (typed, or a hidden id), sent with B's: 404, and
    # nothing of A or B changed.
    before_a = await snapshot(db, a.ids["tid"])
    a_ids_to_b = {v: b.ids[k] for k, v in a.ids.items() if k != "tid"}
    sent = 0
    sent_fields: set[tuple[str, str]] = set()  # (the action's last segment, the field that carried B's id)
    for page_url, body in pages.items():
        for action, fields, typed in post_forms(body):
            if not urlsplit(action).path.startswith(f"/console/tenants/{a.ids['tid']}/"):
                continue
            for form, nobody in _with_ids_of_b(fields, typed, a_ids_to_b, b):
                sent += 1
                sent_fields |= {
                    (action.rsplit("/", 1)[1], name)
                    for name, value in form.items()
                    if value in b.ids.values()
                }
                before_form = await snapshot(db, a.ids["tid"])
                # A typed user of another organization is answered as one that exists nowhere: 404.
                if nobody is not None:
                    await walk.expect_404("POST", action, nobody)
                await walk.expect_404("POST", action, form)
                if changed(before_form, await snapshot(db, a.ids["tid"])):
                    walk.problems.append(f"POST {action} (form of {page_url}) with B's ids changed A's rows")
    if changed(before_a, await snapshot(db, a.ids["tid"])):
        walk.problems.append("organization A's rows changed by forms carrying B's ids")
    after = await snapshot(db, b.ids["tid"])
    if changed(before, after):
        walk.problems.append(f"organization B's rows changed by A's forms: {changed(before, after)}")
    for needed in (("group", "group_id"), ("replay", "event_id"), ("members", "user")):
        assert needed in sent_fields, (
            f"no form {needed[0]} was sent with B's {needed[1]}: {sorted(sent_fields)}"
        )

    assert not walk.problems, (
        f"a portal session of organization A ({len(routes)} console routes, {len(own)} of A's pages, "
        f"{sent} forms with B's ids):\n  " + "\n  ".join(walk.problems)
    )


def _with_ids_of_b(
    fields: list[tuple[str, str]], typed: set[str], a_ids_to_b: dict[str, str], b: Organization
) -> Iterator[tuple[MultiDict[str], MultiDict[str] | None]]:
    """The form as the page has it, once per field that carries an id, that field carrying B's instead:
    a hidden id of A becomes B's (no control: 404 it must be); a typed user field gets B's user id, then
    B's userName, a typed team field B's team id, each with a control: the same form naming nobody; a typed
    event id gets B's event (no control: 404 it must be)."""
    for i, (name, value) in enumerate(fields):
        replacements: list[tuple[str, str | None]] = []
        if value in a_ids_to_b:
            replacements.append((a_ids_to_b[value], None))
        elif name in typed and name in USER_FIELDS:
            replacements += [
                (b.ids["uid"], str(uuid.uuid4())),
                (b.user_name, f"nobody.{uuid.uuid4().hex}@example.com"),
            ]
        elif name in typed and name in TEAM_FIELDS:
            replacements.append((b.ids["team_id"], str(uuid.uuid4())))
        elif name in typed and name in EVENT_FIELDS:
            replacements.append((b.ids["event_id"], None))
        for replacement, nobody in replacements:
            yield _replaced(fields, i, replacement), (_replaced(fields, i, nobody) if nobody else None)


def _replaced(fields: list[tuple[str, str]], index: int, value: str) -> MultiDict[str]:
    """The form's fields (its CSRF token left out: `Walk.send` adds the session's) with one value changed."""
    return MultiDict(
        (name, value if i == index else old) for i, (name, old) in enumerate(fields) if name != "csrf_token"
    )
