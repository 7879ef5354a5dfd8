"""The console's users pages: the filtered list (a user the worker has not applied yet is marked pending),
the CSV export, and one user's page (every attribute, provisioning state, license history, notices, the
latest provisioning log and audit entries).

Organization admins (portal sessions) may use every one of them for their own organization.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
import orjson
from aiohttp import web

from schemas.user import ENTERPRISE_SCHEMA
from scimsvc.product.users import ENTERPRISE_FIELDS, full_name, user_state
from scimsvc.scim.errors import ScimError, invalid_value, not_found
from scimsvc.services import admin_users, user_details
from scimsvc.web.admin_requests import query_id, user_filters, user_id_of
from scimsvc.web.admin_views import render_user_page, stream_users_csv
from scimsvc.web.console.i18n import Translate
from scimsvc.web.console.names import LICENSES, license_name
from scimsvc.web.console.pages import organization, page, texts
from scimsvc.web.console.roles import for_org_admins
from scimsvc.web.keys import POOL

routes = web.RouteTableDef()

PAGE_SIZE = 50
APPLYING_REFRESH_SECONDS = 3
TYPED_SHOWN = 80  # characters of a typed user an error repeats


async def find_typed_user(pool: asyncpg.Pool, tenant_id: UUID, typed: str, _: Translate) -> UUID:
    """The organization's user typed in a form (id or exact userName), in the page's words: nothing typed is
    a 400; no such user of this organization (another organization's alike) is a 404, the answer to any
    id of another organization."""
    if not typed:
        raise invalid_value(_("Type a user's id or userName."))
    try:
        admin_users.storable_text("user", typed)
    except ScimError:
        raise invalid_value(
            _("A user's id or userName cannot contain the NUL character (\\0): remove it.")
        ) from None
    try:
        return await admin_users.find_user(pool, tenant_id, typed)
    except ScimError as exc:
        if exc.status != 400:
            raise
        shown = typed if len(typed) <= TYPED_SHOWN else typed[:TYPED_SHOWN] + "…"
        raise not_found(
            _(
                "There is no user “{user}” in this organization: type the user's id or their exact userName.",
                user=shown,
            )
        ) from None


def _user_filters(query: Mapping[str, str], _: Translate) -> dict[str, Any]:
    """The list's filters (`admin_requests.user_filters`) with its refusals in the page's words."""
    if query.get("state") and query["state"] not in admin_users.USER_STATES:
        raise invalid_value(_("Choose the state from the list."))
    if query.get("license") and query["license"] not in admin_users.LICENSE_FILTERS:
        raise invalid_value(_("Choose the license from the list."))
    try:
        return user_filters(query)
    except ScimError as exc:
        if exc.status != 400:
            raise
        raise invalid_value(_("The search cannot contain the NUL character (\\0): remove it.")) from None


@routes.get("/console/tenants/{tid}/users")
@for_org_admins
async def users_list(request: web.Request) -> web.Response:
    tenant = await organization(request)
    tenant_id = UUID(tenant["id"])
    pool = request.app[POOL]
    query = request.query
    context: dict[str, Any] = {
        "tenant": tenant,
        "section": "users",
        "query": {k: query.get(k, "") for k in ("q", "state", "license")},
        "states": admin_users.USER_STATES,
        "licenses": admin_users.LICENSE_FILTERS,
        "users": [],
        "next_after": None,
        "filters": {},
    }
    context["filters"] = {k: v for k, v in context["query"].items() if v}
    try:
        filters = _user_filters(query, texts(request))
        after = query_id(query, "after", "user")
    except ScimError as exc:
        return page(request, "users.html", {**context, "error": exc.detail}, status=exc.status)
    users = await admin_users.user_page(pool, tenant_id, after=after, limit=PAGE_SIZE, **filters)
    context["users"] = render_user_page(users)
    context["next_after"] = str(users.rows[-1]["id"]) if len(users.rows) == PAGE_SIZE else None
    return page(request, "users.html", context)


@routes.get("/console/tenants/{tid}/users.csv")
@for_org_admins
async def users_csv(request: web.Request) -> web.StreamResponse:
    """The admin API's CSV export, for a browser that signed in with a session instead of a bearer key."""
    tenant_id = UUID((await organization(request))["id"])
    return await stream_users_csv(request, tenant_id, _user_filters(request.query, texts(request)))


def _attributes(row: Any) -> dict[str, Any]:
    """The SCIM attributes of a user as the page lists them (absent ones are None or empty)."""
    resource = row["resource"]
    name = resource.get("name") or {}
    enterprise = resource.get(ENTERPRISE_SCHEMA) or {}
    return {
        "userName": row["user_name"],
        "fullName": full_name(resource),
        "name": {k: name.get(k) for k in ("formatted", "givenName", "middleName", "familyName")},
        "displayName": resource.get("displayName"),
        "emails": resource.get("emails") or [],
        "userType": resource.get("userType"),
        "externalId": resource.get("externalId"),
        "active": row["active"],
        "roles": resource.get("roles") or [],
        "photos": resource.get("photos") or [],
        "enterprise": {k: enterprise.get(k) for k in ENTERPRISE_FIELDS},
        "manager": enterprise.get("manager") or {},
    }


def _when(at: datetime | None) -> str | None:
    """A time as the page shows it, to the second, in UTC."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if at else None


def detail_lines(row: Mapping[str, Any], _: Translate) -> list[str]:
    """An audit row's detail as readable "key: value" lines (a nested value as compact JSON); a license
    action's from → to by the licenses' names (names.py:license_name), in the page's language."""
    detail = row["detail"]
    if not isinstance(detail, dict):
        return [orjson.dumps(detail).decode()] if detail else []
    licenses = row["action"] in user_details.LICENSE_ACTIONS
    lines = []
    for key, value in detail.items():
        if licenses and key in ("from", "to") and (value is None or value in LICENSES or value == "none"):
            shown = _(license_name(value))
        elif value is None:
            shown = "–"
        elif isinstance(value, str | int | float) and not isinstance(value, bool):
            shown = str(value)
        else:
            shown = orjson.dumps(value).decode()
        lines.append(f"{key}: {shown}")
    return lines


def _audit_item(row: Any, _: Translate) -> dict[str, Any]:
    return {**dict(row), "detail": detail_lines(row, _)}


@routes.get("/console/tenants/{tid}/users/{uid}")
@for_org_admins
async def user_page(request: web.Request) -> web.Response:
    """One user: attributes, state, license and seat, history; refreshes itself while a change is applied."""
    tenant = await organization(request)
    try:
        details = await user_details.user_details(request.app[POOL], UUID(tenant["id"]), user_id_of(request))
    except ScimError as exc:
        if exc.status != 404:
            raise
        missing = "There is no such user in this organization: it was deleted, or the address is wrong."
        raise not_found(texts(request)(missing)) from None
    row = details.row
    context = {
        "tenant": tenant,
        "section": "users",
        "user": {
            "id": str(row["id"]),
            "state": user_state(row),
            "license": row["license"],
            "seat": row["license"] == "full",
            "waiting_since": row["waiting_since"],
            "provisioned_at": _when(row["provisioned_at"]),
            "created": _when(row["created_at"]),
            "last_modified": _when(row["updated_at"]),
            **_attributes(row),
        },
        "details": details,
        "license_history": [_audit_item(r, texts(request)) for r in details.license_history],
        "audit_entries": [_audit_item(r, texts(request)) for r in details.audit_entries],
        "shown": user_details.SHOWN,
        "refresh_seconds": APPLYING_REFRESH_SECONDS,
    }
    return page(request, "user.html", context)
