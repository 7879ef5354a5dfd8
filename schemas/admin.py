"""Admin API payloads (operator side). Unknown fields are errors here: a typo must not pass silently."""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, fields, post_load, validate

from schemas.base import Text

LICENSES = ("free", "free_restricted")
FALLBACKS = ("free_restricted", "none")


class TenantSettingsSchema(Schema):
    """Settings of a tenant; every field optional (PATCH)."""

    class Meta:
        unknown = RAISE

    name = Text(validate=validate.Length(min=1, max=200))
    scim_enabled = fields.Boolean()
    seats = fields.Integer(strict=True, validate=validate.Range(min=0, max=10_000_000))
    flexible_licenses = fields.Boolean()
    default_license = Text(validate=validate.OneOf(LICENSES))
    fallback_license = Text(validate=validate.OneOf(FALLBACKS))
    allowed_domains = fields.List(Text(validate=validate.Length(min=1, max=253)))
    domain_teams = fields.Dict(keys=Text(), values=fields.List(Text()))
    rate_limit = fields.Dict()

    @post_load
    def _lower_domains(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        if "allowed_domains" in data:
            data["allowed_domains"] = sorted({d.strip().lstrip("@").lower() for d in data["allowed_domains"]})
        return data


class TenantCreateSchema(TenantSettingsSchema):
    name = Text(required=True, validate=validate.Length(min=1, max=200))


class ScimToggleSchema(Schema):
    class Meta:
        unknown = RAISE

    enabled = fields.Boolean(required=True)


class LicenseAssignmentSchema(Schema):
    """`PUT users/{uid}/license`: null takes the license away."""

    class Meta:
        unknown = RAISE

    license = Text(required=True, allow_none=True, validate=validate.OneOf(("full", *LICENSES)))
