"""Admin API payloads of portal access (README.md, For organization admins): portal links, ending portal
sessions, an organization's registered admin addresses. Unknown fields are errors, as in schemas/admin.py."""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, fields, validate

from schemas.base import JsonBoolean, Text

MAX_LINK_MINUTES = 7 * 24 * 60  # scimsvc/product/portal.py:MAX_LINK_MINUTES
_EMAIL = (validate.Length(max=320), validate.Email(error="must be an email address"))


class EmailText(Text):
    """An email address as people paste it: spaces around it are dropped before it is checked."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        return super()._deserialize(value, attr, data, **kwargs).strip()


def _d(text: str) -> dict[str, str]:
    return {"description": text}


class PortalLinkCreateSchema(Schema):
    """`POST portal-links`: optionally the admin it is for, and how long it may wait to be opened."""

    class Meta:
        unknown = RAISE

    email = EmailText(allow_none=True, load_default=None, validate=_EMAIL, metadata=_d("The admin it is for"))
    minutes = fields.Integer(
        strict=True,
        allow_none=True,
        load_default=None,
        validate=validate.Range(min=1, max=MAX_LINK_MINUTES),
        metadata=_d("Minutes until it expires (default SCIMSVC_PORTAL_LINK_MINUTES)"),
    )
    # The flag that signs a browser in on a plain GET: only a JSON boolean turns it on.
    redirect = JsonBoolean(
        load_default=False,
        metadata=_d(
            "true: your settings page redirects the admin's browser straight to `url`, which signs in at "
            "once (on a plain GET). Otherwise opening it shows a Continue button, so a link sent by email or "
            "chat is not used up by a mail scanner or a link preview."
        ),
    )


class PortalLinkSchema(Schema):
    url = fields.String(required=True, metadata=_d("Opens the organization's portal once; shown only now"))
    expires_at = fields.DateTime(required=True)
    email = fields.String(allow_none=True, required=True)


class PortalSessionsEndedSchema(Schema):
    ended = fields.Integer(required=True, metadata=_d("How many live portal sessions were ended"))
    links_retired = fields.Integer(
        required=True, metadata=_d("How many unused portal links (any maker, emailed too) stopped working")
    )


class OrgAdminCreateSchema(Schema):
    """`POST org-admins`: an address that may ask for a sign-in link by email."""

    class Meta:
        unknown = RAISE

    email = EmailText(required=True, validate=_EMAIL)


class OrgAdminSchema(Schema):
    email = fields.String(required=True, metadata=_d("Lower-cased"))
    created_at = fields.DateTime(required=True)
