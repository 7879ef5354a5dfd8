"""The console's routes, read from the app's own router, for tests that must cover every page and action
(a page added tomorrow is walked tomorrow): tests/test_portal_isolation.py,
tests/test_console_accessibility.py.

    for route in console_routes(router_app()):
        route.template          # "/console/tenants/{tid}/teams/{team_id}" (a placeholder's pattern dropped)
        route.placeholders      # ["tid", "team_id"]
        route.marked("GET")     # roles.py:for_org_admins on its GET handler: open to organization admins
        route.url(ids)          # the path with each placeholder filled in from `ids` (KeyError: no id)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from scimsvc.settings import Settings
from scimsvc.web.app import create_app
from scimsvc.web.console.roles import open_to_org_admins
from tests.conftest import ADMIN_KEY

TENANT_ROUTES = "/console/tenants/{tid}"  # an organization's pages and actions start so
# The query a page needs to be a page (a confirmation of a value the previous form sent).
PAGE_QUERIES = {
    "/console/tenants/{tid}/seats/lower": "seats=1",
}
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Route:
    """A console route: its path template and its handler per method (GET, POST; absent: not answered)."""

    template: str
    handlers: dict[str, Any]

    @property
    def placeholders(self) -> list[str]:
        return _PLACEHOLDER.findall(self.template)

    @property
    def of_an_organization(self) -> bool:
        return self.template.startswith(TENANT_ROUTES)

    def marked(self, method: str) -> bool:
        """Whether the handler of `method` is open to organization admins (`roles.py:for_org_admins`)."""
        handler = self.handlers.get(method)
        return handler is not None and open_to_org_admins(handler)

    def url(self, ids: dict[str, str]) -> str:
        return _PLACEHOLDER.sub(lambda m: ids[m.group(1)], self.template)

    def page_url(self, ids: dict[str, str]) -> str:
        """`url`, with the query the page needs (PAGE_QUERIES), if any."""
        query = PAGE_QUERIES.get(self.template)
        return self.url(ids) + (f"?{query}" if query else "")

    @property
    def slug(self) -> str:
        """A file name for the page: `/console/tenants/{tid}/teams/{team_id}` is `org-teams-team_id`."""
        path = self.template.removeprefix("/console").replace(TENANT_ROUTES.removeprefix("/console"), "/org")
        return (
            re.sub(r"[^a-z0-9_.]+", "-", path.replace("{", "").replace("}", "").lower()).strip("-") or "home"
        )


def console_routes(app: web.Application) -> list[Route]:
    """Every console route of the app (its static files aside), by template."""
    found: dict[str, dict[str, Any]] = {}
    for resource in app.router.resources():
        info = resource.get_info()
        if "prefix" in info:  # static files
            continue
        path = info.get("path") or info.get("formatter") or ""
        if not (path == "/console" or path.startswith("/console/")):
            continue
        template = re.sub(r"\{(\w+)(:[^}]*)?\}", r"{\1}", path)
        for route in resource:
            if route.method in ("GET", "POST"):
                found.setdefault(template, {})[route.method] = route.handler
    return [Route(t, h) for t, h in sorted(found.items())]


def router_app() -> web.Application:
    """An app built only for its router (never started: no database, no Redis)."""
    return create_app(Settings(database_url="postgresql://unused", admin_key=ADMIN_KEY))
