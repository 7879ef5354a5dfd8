"""Per-organization figures as the admin API documents them (scimsvc/services/tenant_stats.py)."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate


def _d(description: str) -> dict[str, Any]:
    return {"description": description}


class RequestCountsSchema(Schema):
    requests = fields.Integer(required=True, metadata=_d("SCIM requests answered"))
    rate_limited = fields.Integer(required=True, metadata=_d("Of them, refused with 429"))
    server_errors = fields.Integer(required=True, metadata=_d("Of them, answered with a 5xx"))


class TenantStatsSchema(Schema):
    tenant_id = fields.UUID(required=True)
    users = fields.Integer(required=True)
    active_users = fields.Integer(required=True)
    seats = fields.Integer(required=True)
    seats_used = fields.Integer(required=True, metadata=_d("Full licenses held"))
    seats_free = fields.Integer(required=True)
    waiting = fields.Integer(required=True, metadata=_d("Users on the waiting list"))
    groups = fields.Integer(required=True)
    active_tokens = fields.Integer(required=True, metadata=_d("SCIM tokens neither revoked nor expired"))
    token_last_used_at = fields.String(allow_none=True, required=True)
    outbox_pending_rows = fields.Integer(required=True, metadata=_d("Changes the worker has not applied yet"))
    outbox_oldest_age_seconds = fields.Float(allow_none=True, required=True)
    last_hour = fields.Nested(
        RequestCountsSchema,
        allow_none=True,
        required=True,
        metadata=_d("From the provisioning log; null when SCIMSVC_PROVISIONING_LOG is off"),
    )


class TopTenantsQuerySchema(Schema):
    by = fields.String(validate=validate.OneOf(("requests", "rate_limited", "server_errors")))
    limit = fields.Integer(metadata=_d("How many tenants: 10 by default, 1 to 100"))


class TopTenantSchema(Schema):
    tenant_id = fields.UUID(required=True)
    name = fields.String(required=True)
    last_hour = fields.Nested(RequestCountsSchema, required=True)


class TopTenantsSchema(Schema):
    by = fields.String(required=True)
    window_seconds = fields.Integer(required=True)
    tenants = fields.List(fields.Nested(TopTenantSchema), required=True)
