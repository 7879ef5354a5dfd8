"""Per-organization figures as the admin API documents them (scimsvc/services/tenant_stats.py)."""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

# The top list (GET /admin/v1/stats/tenants): what it can be ordered by, and its length.
TOP_ORDERS = ("requests", "rate_limited", "server_errors")
TOP_DEFAULT = 10
TOP_MAX = 100


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


class SmallWholeNumber(fields.Integer):
    """A query's whole number as ASCII digits alone, at most three: never a sign, a space, an underscore,
    a long run of leading zeros or another script's digit, all of which int() would take."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if not isinstance(value, str) or not value.isascii() or not value.isdigit() or len(value) > 3:
            raise ValidationError(self.error_messages["invalid"])
        return int(value)


class TopTenantsQuerySchema(Schema):
    class Meta:
        unknown = EXCLUDE  # other parameters are ignored, as elsewhere in the admin API

    by = fields.String(
        load_default="requests",
        validate=validate.OneOf(TOP_ORDERS, error="must be one of {choices}"),
        metadata=_d("What the tenants are ordered by: requests by default"),
    )
    limit = SmallWholeNumber(
        load_default=TOP_DEFAULT,
        validate=validate.Range(1, TOP_MAX, error=f"must be a whole number from 1 to {TOP_MAX}"),
        error_messages={"invalid": f"must be a whole number from 1 to {TOP_MAX}"},
        metadata=_d(f"How many tenants: {TOP_DEFAULT} by default, 1 to {TOP_MAX}"),
    )


class TopTenantSchema(Schema):
    tenant_id = fields.UUID(required=True)
    name = fields.String(required=True)
    last_hour = fields.Nested(RequestCountsSchema, required=True)


class TopTenantsSchema(Schema):
    by = fields.String(required=True)
    window_seconds = fields.Integer(required=True)
    tenants = fields.List(fields.Nested(TopTenantSchema), required=True)
