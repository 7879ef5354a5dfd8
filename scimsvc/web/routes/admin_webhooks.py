"""Admin API: webhook endpoints of a tenant (`/tenants/{tid}/webhooks`) and the operator's, for every tenant
(`/webhooks`); their deliveries, secret rotation and replay; the operator-wide audit log."""

from __future__ import annotations

from aiohttp import web
from aiohttp_apigami import docs, querystring_schema, request_schema, response_schema

from schemas.messages import AuditPageSchema
from schemas.webhooks import (
    OperatorAuditQuerySchema,
    WebhookCreateSchema,
    WebhookDeliveryPageSchema,
    WebhookDeliveryQuerySchema,
    WebhookEndpointSchema,
    WebhookListSchema,
    WebhookReplayedSchema,
    WebhookReplaySchema,
    WebhookRotateSchema,
    WebhookUpdateSchema,
    WebhookWithSecretSchema,
)
from scimsvc.services import webhooks
from scimsvc.services.audit import audit_before, operator_audit_page
from scimsvc.web.admin_requests import action_scope, load, page_limit
from scimsvc.web.admin_views import audit_page_body
from scimsvc.web.keys import POOL
from scimsvc.web.openapi import errors
from scimsvc.web.routes.responses import json_response, read_json
from scimsvc.web.webhook_views import (
    delivery_before,
    endpoint_id_of,
    owner_of,
    render_delivery,
    render_endpoint,
)

routes = web.RouteTableDef()

OPERATOR = "/admin/v1/webhooks"
TENANT = "/admin/v1/tenants/{tid}/webhooks"
TAGS = ["Admin: webhooks"]


@routes.post(OPERATOR)
@routes.post(TENANT)
@docs(
    tags=TAGS,
    summary="Register a webhook endpoint (of a tenant, or the operator's for every tenant)",
    description="The answer carries the endpoint's whsec_ secret, shown only this once. 409 when "
    "SCIMSVC_WEBHOOK_SIGNING_KEY is not set.",
)
@request_schema(WebhookCreateSchema)
@response_schema(WebhookWithSecretSchema, 201)
@errors(400, 404, 409)
async def create_webhook(request: web.Request) -> web.Response:
    data = load(WebhookCreateSchema(), await read_json(request))
    row, secret = await webhooks.create_endpoint(action_scope(request), owner_of(request), data)
    return json_response(render_endpoint(row, secret=secret), status=201)


@routes.get(OPERATOR)
@routes.get(TENANT)
@docs(tags=TAGS, summary="List webhook endpoints (never their secrets)")
@response_schema(WebhookListSchema, 200)
@errors(404)
async def list_webhooks(request: web.Request) -> web.Response:
    rows = await webhooks.list_endpoints(request.app[POOL], owner_of(request))
    return json_response({"items": [render_endpoint(r) for r in rows]})


@routes.get(OPERATOR + "/{wid}")
@routes.get(TENANT + "/{wid}")
@docs(tags=TAGS, summary="Read a webhook endpoint")
@response_schema(WebhookEndpointSchema, 200)
@errors(404)
async def get_webhook(request: web.Request) -> web.Response:
    row = await webhooks.endpoint_or_404(request.app[POOL], owner_of(request), endpoint_id_of(request))
    return json_response(render_endpoint(row))


@routes.patch(OPERATOR + "/{wid}")
@routes.patch(TENANT + "/{wid}")
@docs(
    tags=TAGS,
    summary="Change a webhook endpoint: URL, description, event types, enabled",
    description="enabled=true turns a disabled endpoint back on and clears why it was disabled.",
)
@request_schema(WebhookUpdateSchema)
@response_schema(WebhookEndpointSchema, 200)
@errors(400, 404)
async def patch_webhook(request: web.Request) -> web.Response:
    owner, endpoint_id = owner_of(request), endpoint_id_of(request)
    data = load(WebhookUpdateSchema(), await read_json(request))
    row = await webhooks.update_endpoint(action_scope(request), owner, endpoint_id, data)
    return json_response(render_endpoint(row))


@routes.delete(OPERATOR + "/{wid}")
@routes.delete(TENANT + "/{wid}")
@docs(
    tags=TAGS,
    summary="Delete a webhook endpoint with its deliveries",
    responses={204: {"description": "Deleted"}},
)
@errors(404)
async def delete_webhook(request: web.Request) -> web.Response:
    await webhooks.delete_endpoint(action_scope(request), owner_of(request), endpoint_id_of(request))
    return web.Response(status=204)


@routes.post(OPERATOR + "/{wid}/rotate-secret")
@routes.post(TENANT + "/{wid}/rotate-secret")
@docs(
    tags=TAGS,
    summary="Rotate a webhook endpoint's secret (the new one shown once)",
    description="Deliveries carry signatures of both the new and the previous secret until "
    "previous_secret_until (SCIMSVC_WEBHOOK_SECRET_OVERLAP_HOURS). Within that overlap a rotation is 409 "
    'unless the body is {"force": true} (it stops the previous secret at once).',
)
@request_schema(WebhookRotateSchema, required=False)
@response_schema(WebhookWithSecretSchema, 200)
@errors(404, 409)
async def rotate_webhook_secret(request: web.Request) -> web.Response:
    owner, endpoint_id = owner_of(request), endpoint_id_of(request)
    body = await read_json(request) if request.body_exists else {}
    force = load(WebhookRotateSchema(), body).get("force", False)
    row, secret = await webhooks.rotate_secret(action_scope(request), owner, endpoint_id, force=force)
    return json_response(render_endpoint(row, secret=secret))


@routes.post(OPERATOR + "/{wid}/replay")
@routes.post(TENANT + "/{wid}/replay")
@docs(
    tags=TAGS,
    summary="Replay one event, or every event of a time range, to a webhook endpoint",
    description=f'New deliveries are queued: of one event ({{"event_id": "evt_12"}}) or of each event the '
    f"endpoint wants that occurred in [since, until) (at most {webhooks.REPLAY_LIMIT}).",
)
@request_schema(WebhookReplaySchema)
@response_schema(WebhookReplayedSchema, 202)
@errors(400, 404, 409)
async def replay_webhook(request: web.Request) -> web.Response:
    owner, endpoint_id = owner_of(request), endpoint_id_of(request)
    data = load(WebhookReplaySchema(), await read_json(request))
    queued = await webhooks.replay(
        action_scope(request),
        owner,
        endpoint_id,
        event=data.get("event_id"),
        since=data.get("since"),
        until=data.get("until"),
    )
    return json_response({"queued": queued}, status=202)


@routes.get(OPERATOR + "/{wid}/deliveries")
@routes.get(TENANT + "/{wid}/deliveries")
@docs(tags=TAGS, summary="A webhook endpoint's deliveries with their attempts, newest first")
@querystring_schema(WebhookDeliveryQuerySchema)
@response_schema(WebhookDeliveryPageSchema, 200)
@errors(400, 404)
async def list_webhook_deliveries(request: web.Request) -> web.Response:
    limit = page_limit(request.query)
    before = delivery_before(request.query)
    owner, endpoint_id = owner_of(request), endpoint_id_of(request)
    found = await webhooks.deliveries(request.app[POOL], owner, endpoint_id, before=before, limit=limit)
    items = [render_delivery(d) for d in found]
    return json_response({"items": items, "next_before": items[-1]["id"] if len(items) == limit else None})


@routes.get("/admin/v1/audit")
@docs(tags=TAGS, summary="The operator-wide audit log (the operator's webhook endpoints), newest first")
@querystring_schema(OperatorAuditQuerySchema)
@response_schema(AuditPageSchema, 200)
@errors(400)
async def get_operator_audit(request: web.Request) -> web.Response:
    limit = page_limit(request.query)
    rows = await operator_audit_page(request.app[POOL], before=audit_before(request.query), limit=limit)
    return json_response(audit_page_body(rows, limit=limit))
