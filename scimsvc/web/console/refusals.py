"""A refused SCIM request as the organization's admin reads it: why, in the words of the help pages, and
the page of the console where it is fixed. The provisioning log keeps the refusal's `reason`
(scim/errors.py:Reason); `detail`, what the IdP was told, is shown beside it as it was sent."""

from __future__ import annotations

from typing import NamedTuple

from scimsvc.scim.errors import Reason


class Explained(NamedTuple):
    text: str  # English; the page translates it (locales/ja/log.json)
    page: str | None = None  # the organization's page where it is fixed (a path under /console/tenants/{id}/)
    label: str = ""  # that page's tab, as templates/base.html names it


REFUSALS = {
    Reason.DOMAIN_NOT_ALLOWED: Explained(
        "The user's email domain is not one of this organization's allowed domains. Add it under Allowed "
        "domains on the Settings page, then have your identity provider send the user again.",
        "settings",
        "Settings",
    ),
    Reason.NO_TEAM: Explained(
        "No team has exactly this group's name. Create the team on the Teams page, then push the group "
        "again from your identity provider.",
        "teams",
        "Teams",
    ),
    Reason.TEAM_TAKEN: Explained(
        "The team with this group's name already follows another SCIM group. Push that group instead, or "
        "delete it in your identity provider first.",
        "teams",
        "Teams",
    ),
    Reason.UNKNOWN_MEMBER: Explained(
        "The group names users this organization does not have yet. Assign them to the app in your "
        "identity provider so that they are provisioned first, then push the group again.",
        "users",
        "Users",
    ),
    Reason.UNKNOWN_MANAGER: Explained(
        "The user's manager is not a user of this organization yet. Assign the manager to the app in your "
        "identity provider first, then send the user again.",
        "users",
        "Users",
    ),
    Reason.SCIM_DISABLED: Explained(
        "SCIM is turned off for this organization, so its tokens are refused. Turn it back on from the SCIM "
        "page.",
        "scim",
        "SCIM",
    ),
    Reason.RATE_LIMITED: Explained(
        "Your identity provider sent more requests than this organization's rate limit allows at once. It "
        "was told when to retry and sends the request again by itself; nothing is lost.",
    ),
}


def explained(reason: str | None) -> Explained | None:
    """The explanation of a logged refusal's reason; None for none, or for a reason this version does not
    know (a row written by a newer one)."""
    try:
        return REFUSALS[Reason(reason)] if reason else None
    except ValueError:
        return None
