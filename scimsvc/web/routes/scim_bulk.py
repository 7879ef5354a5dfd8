"""POST /scim/v2/Bulk (RFC 7644 §3.7): read the BulkRequest, run it, render the BulkResponse."""

from __future__ import annotations

from aiohttp import web
from aiohttp_apigami import docs, request_schema, response_schema

from schemas.messages import BulkRequestSchema, BulkResponseSchema
from scimsvc.ratelimit.levels import bulk_credits
from scimsvc.scim.bulk import bulk_response, parse_bulk_request
from scimsvc.scim.errors import ScimError
from scimsvc.services import bulk as bulk_service
from scimsvc.web.body_limits import BULK, body_limit
from scimsvc.web.keys import SETTINGS
from scimsvc.web.rate_limiting import charge
from scimsvc.web.routes.responses import read_json, scim_response
from scimsvc.web.scim_responses import base_url, scope_of

routes = web.RouteTableDef()


def _too_large(limit: int) -> ScimError:
    return ScimError(
        413,
        f"the bulk request is larger than {limit} bytes (maxPayloadSize in /ServiceProviderConfig): "
        "split it into several requests",
    )


@routes.post("/scim/v2/Bulk")
@docs(tags=["SCIM bulk"], summary="Run several operations in one request (RFC 7644 Bulk)")
@request_schema(BulkRequestSchema)
@response_schema(BulkResponseSchema, 200, description="Each operation's outcome, in request order")
async def bulk(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    limit = body_limit(settings, *BULK)
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise _too_large(limit) from None
    if len(raw) > limit:
        raise _too_large(limit)
    # Each operation's depth and names are checked by the parser, so one bad operation is its own 400.
    body = await read_json(request, max_depth=None)
    parsed = parse_bulk_request(body, max_operations=settings.bulk_max_operations)
    # Priced only now: a bulk refused for its size or shape never spends the tenant's budget.
    await charge(request, cost=bulk_credits(parsed.operations))
    results = await bulk_service.run_bulk(scope_of(request), parsed, base_url=base_url(request))
    return scim_response(bulk_response(results))
