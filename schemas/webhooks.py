"""Admin API payloads and answers of webhook endpoints (README.md, What happened, Webhooks).

Unknown fields are errors, as in `schemas/admin.py`. Event type names are checked by the service against
`scimsvc/product/events.py:EVENT_TYPES` (schemas depend on nothing of the product).
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from schemas.base import JsonBoolean, Text

MAX_URL = 2000  # characters of an endpoint's URL
MAX_DESCRIPTION = 200


def _d(description: str) -> dict[str, Any]:
    return {"description": description}


class WebhookUpdateSchema(Schema):
    """`PATCH .../webhooks/{wid}`: the fields to change."""

    class Meta:
        unknown = RAISE

    url = Text(
        validate=validate.Length(min=1, max=MAX_URL), metadata=_d("https:// URL the events are POSTed to")
    )
    description = Text(validate=validate.Length(max=MAX_DESCRIPTION))
    event_types = fields.List(
        Text(validate=validate.Length(min=1, max=100)),
        validate=validate.Length(max=100),
        metadata=_d("Event types this endpoint wants (user.created, ...); an empty list means every type"),
    )
    enabled = JsonBoolean(
        metadata=_d("false stops deliveries; true resumes them and clears the reason it was disabled")
    )


class WebhookCreateSchema(WebhookUpdateSchema):
    """`POST .../webhooks`: a new endpoint."""

    url = Text(
        required=True,
        validate=validate.Length(min=1, max=MAX_URL),
        metadata=_d("https:// URL the events are POSTed to"),
    )


class WebhookRotateSchema(Schema):
    """`POST .../webhooks/{wid}/rotate-secret` (the body is optional)."""

    class Meta:
        unknown = RAISE

    force = JsonBoolean(
        metadata=_d("Rotate even while the previous secret still signs (it then stops at once)")
    )


class WebhookReplaySchema(Schema):
    """`POST .../webhooks/{wid}/replay`: one event, or every event that occurred in [since, until)."""

    class Meta:
        unknown = RAISE

    event_id = Text(validate=validate.Length(min=1, max=40), metadata=_d("An event id, e.g. evt_12"))
    since = fields.AwareDateTime(metadata=_d("ISO 8601 with a time zone; included"))
    until = fields.AwareDateTime(metadata=_d("ISO 8601 with a time zone; excluded"))

    @validates_schema
    def _one_event_or_a_range(self, data: dict[str, Any], **_: Any) -> None:
        has_range = "since" in data or "until" in data
        if ("event_id" in data) == has_range:
            raise ValidationError("give either event_id, or since and until (a time range)")
        if has_range and ("since" not in data or "until" not in data):
            raise ValidationError("a time range needs both since and until")
        if has_range:
            for name in ("since", "until"):
                try:  # a time zone can carry a date past the years a timestamp holds
                    data[name] = data[name].astimezone(UTC)
                except OverflowError:
                    raise ValidationError(
                        f"{name} is out of range: give a date from year 1 to 9999"
                    ) from None
        if has_range and data["since"] >= data["until"]:
            raise ValidationError("since must be before until")


# --- answers (documented, not loaded) ----------------------------------------------------------------


class WebhookEndpointSchema(Schema):
    id = fields.UUID(required=True)
    tenant_id = fields.UUID(allow_none=True, required=True, metadata=_d("null: the operator's, every tenant"))
    url = fields.String(required=True)
    description = fields.String(required=True)
    event_types = fields.List(fields.String(), required=True, metadata=_d("Empty: every type"))
    enabled = fields.Boolean(required=True)
    disabled_reason = fields.String(allow_none=True, required=True)
    failing_since = fields.DateTime(
        allow_none=True, required=True, metadata=_d("The first failed attempt since the last success")
    )
    secret_generation = fields.Integer(required=True)
    previous_secret_until = fields.DateTime(
        allow_none=True,
        required=True,
        metadata=_d("After a rotation: the previous secret also signs until then"),
    )
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


class WebhookWithSecretSchema(WebhookEndpointSchema):
    secret = fields.String(
        required=True, metadata=_d("The whsec_ signing secret; shown only in this answer (never stored)")
    )


class WebhookListSchema(Schema):
    items = fields.List(fields.Nested(WebhookEndpointSchema), required=True)


class WebhookAttemptSchema(Schema):
    at = fields.DateTime(required=True)
    status = fields.Integer(allow_none=True, required=True, metadata=_d("HTTP status; null: no answer"))
    latency_ms = fields.Float(required=True)
    excerpt = fields.String(required=True, metadata=_d("The start of the answer's body, or what went wrong"))


class WebhookDeliverySchema(Schema):
    id = fields.Integer(required=True)
    event_id = fields.String(required=True, metadata=_d("evt_<n>, the webhook-id header"))
    event_type = fields.String(required=True)
    tenant_id = fields.UUID(required=True)
    state = fields.String(required=True, validate=validate.OneOf(("pending", "delivered", "failed")))
    attempt_count = fields.Integer(required=True)
    next_attempt_at = fields.DateTime(allow_none=True, required=True, metadata=_d("null once finished"))
    created_at = fields.DateTime(required=True)
    finished_at = fields.DateTime(allow_none=True, required=True)
    attempts = fields.List(
        fields.Nested(WebhookAttemptSchema), required=True, metadata=_d("The latest attempts, newest first")
    )


class WebhookDeliveryPageSchema(Schema):
    items = fields.List(fields.Nested(WebhookDeliverySchema), required=True)
    next_before = fields.Integer(
        allow_none=True, required=True, metadata=_d("Pass as before= for older ones")
    )


class WebhookDeliveryQuerySchema(Schema):
    limit = fields.Integer(metadata=_d("Page size: 100 by default, clamped to 1..1000"))
    before = fields.Integer(validate=validate.Range(min=1, max=2**63 - 1), metadata=_d("The last id seen"))


class WebhookReplayedSchema(Schema):
    queued = fields.Integer(required=True, metadata=_d("New deliveries queued to this endpoint"))


class OperatorAuditQuerySchema(Schema):
    limit = fields.Integer(metadata=_d("Page size: 100 by default, clamped to 1..1000"))
    before = fields.Integer(
        validate=validate.Range(min=1, max=2**63 - 1), metadata=_d("The last audit id seen: older entries")
    )
