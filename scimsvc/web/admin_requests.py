"""Reading an operator's request (admin API and console): ids in the path and query, page sizes, payloads
validated by the admin schemas (`schemas/admin.py`), and the scope of a write to one tenant."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from aiohttp import web
from marshmallow import Schema, ValidationError

from schemas.base import flatten_errors
from scimsvc.scim.errors import invalid_value
from scimsvc.scim.ids import id_or_404
from scimsvc.services.actions import ActionScope, Actor
from scimsvc.services.admin_users import LICENSE_FILTERS, USER_STATES, storable_text
from scimsvc.services.changes import Scope
from scimsvc.web.console.session import ADMIN_EMAIL, SESSION
from scimsvc.web.keys import LIMITER_REDIS, POOL, REDIS, REQUEST_ID, SETTINGS


def load(schema: Schema, body: Any) -> dict[str, Any]:
    """Validate an admin payload; a 400 naming every wrong field."""
    if not isinstance(body, dict):
        raise invalid_value("the request body must be a JSON object")
    try:
        return schema.load(body)
    except ValidationError as exc:
        raise invalid_value("; ".join(flatten_errors(exc.messages))) from None


def page_limit(query: Mapping[str, str]) -> int:
    """`limit` of a paged admin list: 100 by default, clamped to 1..1000."""
    try:
        return min(max(int(query.get("limit", "100")), 1), 1000)
    except ValueError:  # not a number, or more digits than int() converts
        raise invalid_value("limit must be a whole number (a page holds 1 to 1000 items)") from None


def query_id(query: Mapping[str, str], name: str, what: str) -> UUID | None:
    """The id in query parameter `name` (a `what`), None when absent or empty; a 404 when it cannot be one."""
    raw = query.get(name)
    return id_or_404(raw, what) if raw else None


def tenant_id_of(request: web.Request) -> UUID:
    """The tenant id in the path (`{tid}`)."""
    return id_or_404(request.match_info["tid"], "tenant")


def team_id_of(request: web.Request) -> UUID:
    """The team id in the path (`{team_id}`)."""
    return id_or_404(request.match_info["team_id"], "team")


def user_id_of(request: web.Request) -> UUID:
    """The user id in the path (`{uid}`)."""
    return id_or_404(request.match_info["uid"], "user")


def admin_scope(request: web.Request, tenant_id: UUID) -> Scope:
    """The operator's writes to one tenant go through the same transaction + outbox as SCIM's."""
    app = request.app
    return Scope(
        pool=app[POOL],
        redis=app[REDIS],
        limiter_redis=app[LIMITER_REDIS],
        settings=app[SETTINGS],
        tenant_id=tenant_id,
        request_id=request.get(REQUEST_ID),
    )


def action_scope(request: web.Request) -> ActionScope:
    """Admin and settings actions: audited with actor `admin` (the operator: admin API, console) and this
    request's id, or `org_admin` with the admin's address when the request carries a portal session."""
    app = request.app
    session = request.get(SESSION)
    if session is not None and session.tenant_id is not None:
        actor = Actor("org_admin", request.get(REQUEST_ID), request.get(ADMIN_EMAIL))
    else:
        actor = Actor("admin", request.get(REQUEST_ID))
    return ActionScope(pool=app[POOL], redis=app[REDIS], settings=app[SETTINGS], actor=actor)


def user_filters(query: Mapping[str, str]) -> dict[str, Any]:
    """`state`, `license` and `q` (userName or name contains) of a user list; a 400 naming a bad value."""
    state, license = query.get("state") or None, query.get("license") or None
    if state is not None and state not in USER_STATES:
        raise invalid_value(f"state must be one of {', '.join(USER_STATES)}, got {state!r}")
    if license is not None and license not in LICENSE_FILTERS:
        raise invalid_value(f"license must be one of {', '.join(LICENSE_FILTERS)}, got {license!r}")
    q = query.get("q") or None
    return {"state": state, "license": license, "q": q and storable_text("q", q)}
