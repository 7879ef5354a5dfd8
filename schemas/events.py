"""The events API's documented shapes (README.md, What happened): an event, a page of them, the query.

The handler parses the query itself (scimsvc/services/events.py gives each bad value a clear 400); these
schemas feed the OpenAPI document.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields


def _d(description: str) -> dict[str, Any]:
    return {"description": description}


class EventSchema(Schema):
    id = fields.String(required=True, metadata=_d("evt_<n>; also the webhook-id of its deliveries"))
    type = fields.String(required=True, metadata=_d("user.created, license.changed, ... (README.md)"))
    tenant_id = fields.UUID(required=True)
    sequence = fields.Integer(
        required=True, metadata=_d("1, 2, 3... per tenant, without gaps, in the order its events committed")
    )
    occurred_at = fields.DateTime(required=True)
    request_id = fields.String(allow_none=True, required=True, metadata=_d("X-Request-Id of the change"))
    data = fields.Dict(required=True, metadata=_d("The resource as it now is, and what the type adds"))


class EventPageSchema(Schema):
    events = fields.List(fields.Nested(EventSchema), required=True)
    next_cursor = fields.String(
        required=True, metadata=_d("`after` of the next page: the last event's cursor, or the one given")
    )


class TenantEventQuerySchema(Schema):
    after = fields.String(metadata=_d("next_cursor of the previous page; none: from the first event"))
    type = fields.List(fields.String(), metadata=_d("Only these types (repeat, or comma-separate)"))
    limit = fields.Integer(metadata=_d("Page size: 100 by default, clamped to 1..1000"))


class EventQuerySchema(TenantEventQuerySchema):
    tenant = fields.UUID(metadata=_d("Only this tenant's events"))
