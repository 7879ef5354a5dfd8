"""The provisioning log as the admin API documents it: the query's filters and a page of entries."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from schemas.messages import PageLimitQuerySchema


def _d(description: str) -> dict[str, Any]:
    return {"description": description}


class ProvisioningLogQuerySchema(PageLimitQuerySchema):
    status = fields.String(
        validate=validate.OneOf(("2xx", "3xx", "4xx", "5xx")), metadata=_d("Status class of the answer")
    )
    user = fields.String(metadata=_d("A user's id, or a userName (case-insensitive)"))
    group = fields.UUID(metadata=_d("A group's id"))
    since = fields.DateTime(metadata=_d("Entries at or after this time (ISO 8601; UTC without an offset)"))
    until = fields.DateTime(metadata=_d("Entries before this time"))
    cursor = fields.Integer(
        validate=validate.Range(min=1, max=2**63 - 1), metadata=_d("The next_cursor of the previous page")
    )


class LogAuditSchema(Schema):
    id = fields.Integer(required=True)
    action = fields.String(required=True)
    user_id = fields.UUID(allow_none=True, required=True)


class LogEventSchema(Schema):
    id = fields.String(required=True, metadata=_d("evt_<n>"))
    type = fields.String(required=True)


class LogOutcomeSchema(Schema):
    state = fields.String(required=True, validate=validate.OneOf(("applied", "pending", "failed")))
    applied_at = fields.DateTime(allow_none=True, required=True)
    error = fields.String(allow_none=True, required=True, metadata=_d("The worker's last error (failed)"))
    attempts = fields.Integer(required=True)
    license = fields.String(allow_none=True, required=True, metadata=_d("The license the worker decided"))
    waiting = fields.Boolean(required=True, metadata=_d("The user was put on the waiting list for a seat"))
    teams = fields.List(fields.String(), required=True, metadata=_d("Teams the change reached (events)"))
    audit = fields.List(fields.Nested(LogAuditSchema), required=True)
    events = fields.List(fields.Nested(LogEventSchema), required=True)


class LogEntrySchema(Schema):
    id = fields.Integer(required=True)
    at = fields.DateTime(required=True)
    request_id = fields.String(required=True)
    idp = fields.String(required=True, validate=validate.OneOf(("okta", "entra", "other")))
    method = fields.String(required=True)
    endpoint = fields.String(required=True, metadata=_d("The route template, e.g. /scim/v2/Users/{id}"))
    resource_type = fields.String(allow_none=True, required=True, validate=validate.OneOf(("user", "group")))
    resource_id = fields.UUID(allow_none=True, required=True)
    user_name = fields.String(allow_none=True, required=True)
    summary = fields.String(required=True, metadata=_d("e.g. PATCH replace active=false"))
    status = fields.Integer(required=True)
    scim_type = fields.String(allow_none=True, required=True)
    detail = fields.String(allow_none=True, required=True)
    reason = fields.String(
        allow_none=True,
        required=True,
        metadata=_d(
            "Why it was refused, where the fix is outside the request: domain_not_allowed, no_team, "
            "team_taken, unknown_member, unknown_manager, scim_disabled, rate_limited (None: no such reason)"
        ),
    )
    duration_ms = fields.Float(required=True)
    outcome = fields.Nested(
        LogOutcomeSchema, allow_none=True, required=True, metadata=_d("None: the request wrote nothing")
    )


class ProvisioningLogPageSchema(Schema):
    entries = fields.List(fields.Nested(LogEntrySchema), required=True, metadata=_d("Newest first"))
    next_cursor = fields.Integer(allow_none=True, required=True)
