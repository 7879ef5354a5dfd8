"""The console's provisioning log page (README.md, What happened): a tenant's SCIM requests, newest first,
with the admin API's filters and each entry's outcome."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from aiohttp import web

from scimsvc.scim.errors import ScimError, invalid_value
from scimsvc.services import provisioning_log
from scimsvc.services.provisioning_log import LogFilters
from scimsvc.web.console.i18n import Translate
from scimsvc.web.console.pages import organization, page, texts
from scimsvc.web.console.roles import for_org_admins
from scimsvc.web.keys import POOL

routes = web.RouteTableDef()

PAGE_SIZE = 50
FILTERS = ("status", "user", "group", "since", "until")
# What to write instead, for a filter the service refuses (it decides; these only say it in the page's words).
_PLAIN = {
    "status": "Choose the status from the list.",
    "user": "Type a user's id or userName (at most 256 characters).",
    "group": "Type a group's id: the UUID in the address of its entries.",
    "since": "Type the time as a date and time (UTC), like 2026-12-05 14:30.",
    "until": "Type the time as a date and time (UTC), like 2026-12-05 14:30.",
    "cursor": "This page of the log no longer exists: start again from the first page.",
}


def _filters(query: Mapping[str, str], _: Translate) -> LogFilters:
    """The page's filters (`services/provisioning_log.py:log_filters`), a refusal told in the page's words:
    the filter at fault is the one the service refuses on its own."""
    try:
        return provisioning_log.log_filters(query)
    except ScimError as exc:
        for name, plain in _PLAIN.items():
            try:
                provisioning_log.log_filters({name: query.get(name, "")})
            except ScimError:
                raise invalid_value(_(plain)) from None
        if query.get("user", "").strip() and query.get("group", "").strip():
            raise invalid_value(_("Filter by a user or by a group, not both.")) from None
        if query.get("since", "").strip() and query.get("until", "").strip():
            raise invalid_value(_("The start of the period must be before its end.")) from None
        raise exc


@routes.get("/console/tenants/{tid}/log")
@for_org_admins
async def provisioning_log_page(request: web.Request) -> web.Response:
    pool = request.app[POOL]
    tenant = await organization(request)
    tenant_id = UUID(tenant["id"])
    query = request.query
    shown = {k: query.get(k, "").strip() for k in FILTERS}
    context: dict[str, Any] = {
        "tenant": tenant,
        "section": "log",
        "query": shown,
        "filters": {k: v for k, v in shown.items() if v},
        "status_classes": provisioning_log.STATUS_CLASSES,
        "entries": [],
        "next_cursor": None,
    }
    try:
        filters = _filters(query, texts(request))
    except ScimError as exc:
        return page(request, "log.html", {**context, "error": exc.detail}, status=exc.status)
    found = await provisioning_log.log_page(pool, tenant_id, filters, limit=PAGE_SIZE)
    context["entries"] = found.entries
    context["next_cursor"] = found.next_cursor
    return page(request, "log.html", context)
