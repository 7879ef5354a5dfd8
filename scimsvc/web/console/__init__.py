"""The operators' web console under /console/: server-rendered pages over the admin services."""

from __future__ import annotations

from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from scimsvc.web.console import i18n, log_pages, portal_pages, scim_pages, seat_pages, team_pages, user_pages
from scimsvc.web.console.access import STATIC_PREFIX, security_headers
from scimsvc.web.console.names import GLOBALS
from scimsvc.web.console.refusals import explained
from scimsvc.web.console.routes import routes
from scimsvc.web.console.webhook_pages import routes as webhook_routes

STATIC_DIR = Path(__file__).parent / "static"


def setup_console(app: web.Application) -> None:
    """Templates (autoescaped), the static CSS and script, the pages, and their strict headers."""
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("scimsvc.web.console", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        default_helpers=False,
    )
    aiohttp_jinja2.get_env(app).globals.update(GLOBALS, explained=explained)
    app.router.add_static(STATIC_PREFIX, STATIC_DIR)
    app.add_routes(routes)
    app.add_routes(webhook_routes)
    app.add_routes(log_pages.routes)
    app.add_routes(portal_pages.routes)
    app.add_routes(seat_pages.routes)
    app.add_routes(scim_pages.routes)
    app.add_routes(team_pages.routes)
    app.add_routes(user_pages.routes)
    app.add_routes(i18n.routes)
    app.on_response_prepare.append(security_headers)
