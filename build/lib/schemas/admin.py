"""Admin API payloads (operator side). Unknown fields are errors here: a typo must not pass silently."""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, fields, post_load, validate

LICENSES = ("free", "free_restricted")
FALLBACKS = ("free_restricted", "none")


class TenantSettingsSchema(Schema):
    """Settings of a tenant; every field optional (PATCH)."""

    class Meta:
        unknown = RAISE

    name = fields.String(validate=validate.Length(min=1, max=200))
    scim_enabled = fields.Boolean()
    seats = fields.Integer(strict=True, validate=validate.Range(min=0, max=10_000_000))
    flexible_licenses = fields.Boolean()
    default_license = fields.String(validate=validate.OneOf(LICENSES))
    fallback_license = fields.String(validate=validate.OneOf(FALLBACKS))
    allowed_domains = fields.List(fields.String(validate=validate.Length(min=1, max=253)))
    domain_teams = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))
    rate_limit = fields.Dict()

    @post_load
    def _lower_domains(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        if "allowed_domains" in data:
            data["allowed_domains"] = sorted({d.strip().lstrip("@").lower() for d in data["allowed_domains"]})
        return data


class TenantCreateSchema(TenantSettingsSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))


class ScimToggleSchema(Schema):
    class Meta:
        unknown = RAISE

    enabled = fields.Boolean(required=True)
