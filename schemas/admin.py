"""Admin API payloads (operator side). Unknown fields are errors here: a typo must not pass silently."""

from __future__ import annotations

import re
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate

from schemas.base import JsonBoolean, Name, Text

LICENSES = ("free", "free_restricted")
FALLBACKS = ("free_restricted", "none")


def _domain(raw: str) -> str:
    return raw.strip().lstrip("@").lower()


# An email domain: dot-separated labels of letters, digits, hyphens (not at a label's ends) or underscores.
_DOMAIN = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)(\.(?!-)[a-z0-9_-]{1,63}(?<!-))*")


def is_domain(raw: str) -> bool:
    """Whether `raw` (an optional leading @, any case) is an email domain such as example.com."""
    return _DOMAIN.fullmatch(_domain(raw)) is not None


def _check_domain(raw: str) -> None:
    if not is_domain(raw):
        raise ValidationError(f"{raw!r} is not an email domain (such as example.com)")


class TenantSettingsSchema(Schema):
    """Settings of a tenant; every field optional (PATCH)."""

    class Meta:
        unknown = RAISE

    name = Name(validate=validate.Length(min=1, max=200))
    scim_enabled = JsonBoolean()
    seats = fields.Integer(strict=True, validate=validate.Range(min=0, max=10_000_000))
    flexible_licenses = JsonBoolean()
    default_license = Text(validate=validate.OneOf(LICENSES))
    fallback_license = Text(validate=validate.OneOf(FALLBACKS))
    allowed_domains = fields.List(Text(validate=[validate.Length(min=1, max=253), _check_domain]))
    # email domain -> ids of teams every user of that domain joins (the ids are checked against the tenant)
    domain_teams = fields.Dict(
        keys=Text(validate=[validate.Length(min=1, max=253), _check_domain]),
        values=fields.List(fields.UUID(), required=True),
    )
    rate_limit = fields.Nested(lambda: RateLimitSchema())

    @post_load
    def _lower_domains(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        if "allowed_domains" in data:
            data["allowed_domains"] = sorted({_domain(d) for d in data["allowed_domains"]})
        if "domain_teams" in data:
            merged: dict[str, list[str]] = {}
            for domain, team_ids in data["domain_teams"].items():
                merged.setdefault(_domain(domain), []).extend(str(t) for t in team_ids)
            data["domain_teams"] = {d: sorted(set(ids)) for d, ids in merged.items()}
        return data


class RateLimitSchema(Schema):
    """A tenant's SCIM budget: a preset, or an explicit number of credits per 30 s (which wins)."""

    class Meta:
        unknown = RAISE

    preset = Text(validate=validate.OneOf(("default", "strict", "off")))
    # At least one L4 request (2,000 credits) must fit in the budget.
    credits_per_30s = fields.Integer(strict=True, validate=validate.Range(min=2000, max=1_000_000_000))


class TenantCreateSchema(TenantSettingsSchema):
    name = Name(required=True, validate=validate.Length(min=1, max=200))


class ScimToggleSchema(Schema):
    class Meta:
        unknown = RAISE

    enabled = JsonBoolean(required=True)


class TokenCreateSchema(Schema):
    """`POST scim/tokens`: an optional label saying which identity provider connection uses the token, and
    an optional expiry: a time (`expires_at`, ISO 8601) or a number of days (`expires_in_days`), not both
    (services/tokens.py:token_expiry refuses a past time)."""

    class Meta:
        unknown = RAISE

    label = Text(load_default="", validate=validate.Length(max=100))
    expires_at = fields.DateTime(load_default=None, allow_none=True)
    expires_in_days = fields.Integer(
        load_default=None, allow_none=True, strict=True, validate=validate.Range(min=1, max=3650)
    )


class LicenseAssignmentSchema(Schema):
    """`PUT users/{uid}/license`: null takes the license away."""

    class Meta:
        unknown = RAISE

    license = Text(required=True, allow_none=True, validate=validate.OneOf(("full", *LICENSES)))


class TeamSchema(Schema):
    """`POST teams` and `PATCH teams/{team_id}`: a team's name (exact, case-sensitive)."""

    class Meta:
        unknown = RAISE

    name = Name(required=True, validate=validate.Length(min=1, max=200))


class TeamGroupLinkSchema(Schema):
    """`PUT teams/{team_id}/group`: the SCIM group (linked to no team) to link to the team."""

    class Meta:
        unknown = RAISE

    group_id = fields.UUID(required=True)


class BoardCreateSchema(Schema):
    """`POST boards`: a board owned by a user of the tenant, in one of its teams (or none)."""

    class Meta:
        unknown = RAISE

    title = Text(required=True, validate=validate.Length(min=1, max=500))
    team_id = fields.UUID(load_default=None, allow_none=True)
    owner_id = fields.UUID(required=True)
