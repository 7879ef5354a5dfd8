"""The console's provisioning log page (README.md, What happened): a tenant's SCIM requests, newest first,
with the admin API's filters and each entry's outcome."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from aiohttp import web

from scimsvc.scim.errors import ScimError
from scimsvc.services import provisioning_log
from scimsvc.web.console.pages import organization, page
from scimsvc.web.console.roles import for_org_admins
from scimsvc.web.keys import POOL

routes = web.RouteTableDef()

PAGE_SIZE = 50
FILTERS = ("status", "user", "group", "since", "until")


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
        filters = provisioning_log.log_filters(query)
    except ScimError as exc:
        return page(request, "log.html", {**context, "error": exc.detail}, status=exc.status)
    found = await provisioning_log.log_page(pool, tenant_id, filters, limit=PAGE_SIZE)
    context["entries"] = found.entries
    context["next_cursor"] = found.next_cursor
    return page(request, "log.html", context)
