"""The words a page shows for the codes the product stores (a license, an IdP family, ...): one place for
each, in English; a template translates them with `_` like any other text (their Japanese is in
locales/ja/names.json). Registered as template globals by `setup_console`."""

from __future__ import annotations

# The help pages' names of the licenses (フルライセンス, 無料ライセンス, 制限付き無料ライセンス).
LICENSES = {
    "full": "Full license",
    "free": "Free license",
    "free_restricted": "Restricted free license",
}
NO_LICENSE = "No license"
IDPS = {"okta": "Okta", "entra": "Microsoft Entra ID"}
OTHER_IDP = "another client"


def license_name(code: str | None) -> str:
    """A license as the help pages name it; no license (None, "none") is "No license"."""
    return LICENSES.get(code or "", NO_LICENSE if code in (None, "", "none") else str(code))


def idp_name(family: str | None) -> str:
    """The identity provider a request came from (`web/access_log.py:idp_family`)."""
    return IDPS.get(family or "", OTHER_IDP)


# The audit log's actions (the `action` column: worker/seats.py, product/seats.py:seat_action, services/*.py
# record_action and audit_action, store/webhook_deliveries.py), in the order the audit filter lists them.
ACTIONS = {
    "allocation": "Seat given (full license)",
    "release": "Seat released",
    "license_change": "License changed",
    "waiting": "Joined the waiting list",
    "promotion": "Seat given from the waiting list",
    "manual_assignment": "License assigned by hand",
    "manual_assignment_refused": "License assignment by hand refused",
    "deactivation": "User deactivated",
    "reactivation": "User reactivated",
    "email_change": "Email address changed",
    "hard_delete": "User deleted for good",
    "handover": "Boards handed over",
    "tenant_created": "Organization created",
    "settings_changed": "Settings changed",
    "scim_enabled": "SCIM turned on",
    "scim_disabled": "SCIM turned off",
    "token_created": "SCIM token generated",
    "token_revoked": "SCIM token revoked",
    "team_created": "Team created",
    "team_renamed": "Team renamed",
    "team_deleted": "Team deleted",
    "team_linked": "SCIM group linked to a team",
    "member_added": "Team member added",
    "member_removed": "Team member removed",
    "portal_link_created": "Portal link made",
    "portal_session_started": "Portal session started",
    "portal_sessions_ended": "Portal sessions ended",
    "org_admin_added": "Organization admin address registered",
    "org_admin_removed": "Organization admin address removed",
    "webhook_created": "Webhook endpoint added",
    "webhook_updated": "Webhook endpoint changed",
    "webhook_enabled": "Webhook endpoint enabled",
    "webhook_disabled": "Webhook endpoint disabled",
    "webhook_secret_rotated": "Webhook signing secret rotated",
    "webhook_replayed": "Webhook events replayed",
    "webhook_deleted": "Webhook endpoint deleted",
}
# Who did it (the `actor` column: services/actions.py:ActorKind, and the rows of SCIM and the worker).
ACTORS = {
    "admin": "Operator",
    "org_admin": "Organization admin",
    "scim": "Identity provider (SCIM)",
    "worker": "The service (automatic)",
}
# An email-change notice's delivery (store/migrations/0004_notices.sql: notices.status).
NOTICE_DELIVERIES = {
    "pending": "waiting to be sent",
    "sent": "sent",
    "not_sent": "not sent: no mail server is set up",
    "failed": "failed: gave up after several attempts",
}
# A webhook delivery's state (store/migrations/0015_what_happened.sql: webhook_deliveries.state).
WEBHOOK_DELIVERIES = {"pending": "waiting to be sent", "delivered": "delivered", "failed": "failed"}
# Who added a team member (store/migrations/0005_teams.sql: team_members.added_by).
MEMBER_SOURCES = {"admin": "by hand", "scim": "SCIM group push", "domain": "domain team"}


def action_name(code: str) -> str:
    """An audit action in words; an action this list does not know yet is shown as stored."""
    return ACTIONS.get(code, code)


def actor_name(code: str) -> str:
    """Who did an audited action, in words."""
    return ACTORS.get(code, code)


def notice_delivery(status: str) -> str:
    """An email-change notice's delivery state, in words."""
    return NOTICE_DELIVERIES.get(status, status)


def webhook_delivery(state: str) -> str:
    """A webhook delivery's state, in words."""
    return WEBHOOK_DELIVERIES.get(state, state)


def member_source(added_by: str) -> str:
    """How a user became a team member, in words."""
    return MEMBER_SOURCES.get(added_by, added_by)


GLOBALS = {
    "license_name": license_name,
    "idp_name": idp_name,
    "action_name": action_name,
    "actor_name": actor_name,
    "notice_delivery": notice_delivery,
    "webhook_delivery": webhook_delivery,
    "member_source": member_source,
}
