"""The words a page shows for the codes the product stores (a license, an IdP family, ...): one place for
each, in English; a template translates them with `_` like any other text (their Japanese is in
locales/ja/names.json). Registered as template globals by `setup_console`."""

from __future__ import annotations

from scimsvc.contract import AuditAction

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


# The audit log's actions (contract.py:AuditAction, one entry each), in the order the audit filter lists them.
ACTIONS: dict[str, str] = {
    AuditAction.ALLOCATION: "Seat given (full license)",
    AuditAction.RELEASE: "Seat released",
    AuditAction.LICENSE_CHANGE: "License changed",
    AuditAction.WAITING: "Joined the waiting list",
    AuditAction.PROMOTION: "Seat given from the waiting list",
    AuditAction.MANUAL_ASSIGNMENT: "License assigned by hand",
    AuditAction.MANUAL_ASSIGNMENT_REFUSED: "License assignment by hand refused",
    AuditAction.DEACTIVATION: "User deactivated",
    AuditAction.REACTIVATION: "User reactivated",
    AuditAction.EMAIL_CHANGE: "Email address changed",
    AuditAction.HARD_DELETE: "User deleted for good",
    AuditAction.HANDOVER: "Boards handed over",
    AuditAction.TENANT_CREATED: "Organization created",
    AuditAction.SETTINGS_CHANGED: "Settings changed",
    AuditAction.SCIM_ENABLED: "SCIM turned on",
    AuditAction.SCIM_DISABLED: "SCIM turned off",
    AuditAction.TOKEN_CREATED: "SCIM token generated",
    AuditAction.TOKEN_REVOKED: "SCIM token revoked",
    AuditAction.TEAM_CREATED: "Team created",
    AuditAction.TEAM_RENAMED: "Team renamed",
    AuditAction.TEAM_DELETED: "Team deleted",
    AuditAction.TEAM_LINKED: "SCIM group linked to a team",
    AuditAction.MEMBER_ADDED: "Team member added",
    AuditAction.MEMBER_REMOVED: "Team member removed",
    AuditAction.PORTAL_LINK_CREATED: "Portal link made",
    AuditAction.PORTAL_SESSION_STARTED: "Portal session started",
    AuditAction.PORTAL_SESSIONS_ENDED: "Portal sessions ended",
    AuditAction.ORG_ADMIN_ADDED: "Organization admin address registered",
    AuditAction.ORG_ADMIN_REMOVED: "Organization admin address removed",
    AuditAction.WEBHOOK_CREATED: "Webhook endpoint added",
    AuditAction.WEBHOOK_UPDATED: "Webhook endpoint changed",
    AuditAction.WEBHOOK_ENABLED: "Webhook endpoint enabled",
    AuditAction.WEBHOOK_DISABLED: "Webhook endpoint disabled",
    AuditAction.WEBHOOK_SECRET_ROTATED: "Webhook signing secret rotated",
    AuditAction.WEBHOOK_REPLAYED: "Webhook events replayed",
    AuditAction.WEBHOOK_DELETED: "Webhook endpoint deleted",
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
