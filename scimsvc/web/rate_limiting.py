"""The rate limiter at the door: each SCIM request is charged its tenant's credits before its handler runs
(or by its handler, for requests priced once read), and the rate-limit headers go on its answer.
`charged` runs from the authentication middleware (`web/middlewares.py`) once it knows the tenant.

The prices and budgets are `scimsvc/ratelimit/levels.py`; the buckets and leases `ratelimit/limiter.py`.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from scimsvc.ratelimit.levels import LEVELS, PRICED_BY_HANDLER, WINDOW_SECONDS, request_level, tenant_credits
from scimsvc.ratelimit.limiter import rate_headers
from scimsvc.scim.errors import Reason, ScimError
from scimsvc.settings import Settings
from scimsvc.web.body_limits import body_limit
from scimsvc.web.keys import LIMITER, RATE_HEADERS, RATE_LIMIT, SETTINGS, TENANT_ID
from scimsvc.web.route_template import route_template


async def _body_bytes(request: web.Request) -> int:
    if request.content_length is not None:
        return request.content_length
    return len(await request.read()) if request.can_read_body else 0


async def charge(request: web.Request, *, cost: int | None = None) -> dict[str, str] | None:
    """Spend a SCIM request's credits from its tenant's bucket: its level's cost, or `cost` when its
    handler prices it (capped at the budget, so that any such request can pass once the bucket is full).
    Over budget → 429, nothing done. A body larger than its endpoint reads costs nothing (413 follows).
    The rate-limit headers go on whatever the request answers; they are returned too (None: no limit)."""
    app = request.app
    settings: Settings = app[SETTINGS]
    if not settings.rate_limit_enabled:
        return None
    capacity = tenant_credits(request[RATE_LIMIT], default_credits=settings.rate_limit_credits)
    if capacity is None:
        return None
    method = request.method
    route = route_template(request)
    body = await _body_bytes(request) if method == "PATCH" else request.content_length
    if body is not None and body > body_limit(settings, method, route):
        return None  # its handler answers 413
    level = request_level(method, route, body if method == "PATCH" else None)
    cost = LEVELS[level] if cost is None else min(capacity, cost)
    verdict = await app[LIMITER].spend(request[TENANT_ID], capacity=capacity, level=level, cost=cost)
    if verdict is None:  # Redis unreachable, failing open
        return None
    headers = request[RATE_HEADERS] = rate_headers(capacity, verdict)
    if not verdict.allowed:
        raise ScimError(
            429,
            f"this organization's SCIM budget of {capacity} credits per {WINDOW_SECONDS} s is spent "
            f"({method} {route or request.path} costs {cost}, level {level}; "
            f"{verdict.remaining} left): retry after {headers['Retry-After']} s",
            headers=headers,
            reason=Reason.RATE_LIMITED,
        )
    return headers


async def charged(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Run a SCIM request of a known tenant (`web/middlewares.py:auth_middleware` calls this once it has
    the tenant): charged before its handler runs, except those their handler prices once it has read them
    (a /Bulk is the sum of its operations, and one refused for its size or shape costs nothing); the
    rate-limit headers go on the answer."""
    by_handler = (request.method, route_template(request)) in PRICED_BY_HANDLER
    headers = None if by_handler else await charge(request)
    try:
        response = await handler(request)
    except (ScimError, web.HTTPException) as exc:
        if by_handler:
            headers = request.get(RATE_HEADERS)
        if headers is not None:
            exc.headers.update(headers)
        raise
    if by_handler:
        headers = request.get(RATE_HEADERS)
    if headers is not None:
        response.headers.update(headers)
    return response
