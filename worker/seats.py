"""Applying the license policy to one user under the tenant's allocation lock, and the waiting list."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from scimsvc.store import licenses
from worker.license_policy import Decision, Licensing, decide_license, wants_full

# What each outbox change means for the audit log (actor: the IdP through SCIM).
SCIM_AUDITED = {
    "deactivate": "deactivation",
    "reactivate": "reactivation",
    "delete": "deactivation",
    "relink": "reactivation",
}


def _license_action(before: str | None, after: str | None) -> str:
    if after == "full":
        return "allocation"
    if before == "full":
        return "release"
    return "license_change"


async def allocate_license(
    conn: asyncpg.Connection, user_id: UUID, *, changes: list[str], request_id: str | None
) -> None:
    """Bring the user's license to what the policy says; free seats go to the oldest waiting users.

    Runs inside the drain transaction. The tenant row lock serializes allocation per tenant.
    """
    user = await licenses.user_license(conn, user_id)
    if user is None:
        return
    tenant_id = user["tenant_id"]
    row = await licenses.lock_tenant_licensing(conn, tenant_id)
    tenant = Licensing(
        seats=row["seats"],
        flexible=row["flexible_licenses"],
        default_license=row["default_license"],
        fallback_license=row["fallback_license"],
    )
    for change in changes:
        if change in SCIM_AUDITED:
            await licenses.audit(
                conn, tenant_id, [user_id], SCIM_AUDITED[change], actor="scim", request_id=request_id
            )
    # Seats freed earlier (e.g. seats raised) go to those who waited longer than this user.
    promoted = await licenses.promote_waiting(conn, tenant_id, tenant.seats, excluding=user_id)

    keeps_seat = (
        user["license"] == "full"
        and user["eligible"]
        and (not tenant.flexible or wants_full(user["user_type"]))
    )
    if keeps_seat:
        decision = Decision("full")
    else:
        used = await licenses.full_seats_used(conn, tenant_id, excluding=user_id)
        decision = decide_license(
            tenant, active=user["eligible"], user_type=user["user_type"], seat_free=used < tenant.seats
        )
    was_waiting = user["waiting_since"] is not None
    if decision.license != user["license"] or decision.waiting != was_waiting:
        await licenses.set_license(conn, user_id, decision.license, waiting=decision.waiting)
        if decision.license != user["license"]:
            await licenses.audit(
                conn,
                tenant_id,
                [user_id],
                _license_action(user["license"], decision.license),
                actor="worker",
                detail={"from": user["license"], "to": decision.license},
                request_id=request_id,
            )
        if decision.waiting and not was_waiting:
            await licenses.audit(conn, tenant_id, [user_id], "waiting", actor="worker", request_id=request_id)

    promoted += await licenses.promote_waiting(conn, tenant_id, tenant.seats)
    await licenses.audit(
        conn, tenant_id, promoted, "promotion", actor="worker", detail={"to": "full"}, request_id=request_id
    )


async def apply_tenant_licensing(
    conn: asyncpg.Connection, tenant_id: UUID, *, request_id: str | None
) -> None:
    """After the tenant's seats or rules changed: free seats go to the oldest waiting users.

    Lowering seats below use downgrades no one; the admin API reports the tenant over-allocated.
    """
    row = await licenses.lock_tenant_licensing(conn, tenant_id)
    if row is None:
        return
    promoted = await licenses.promote_waiting(conn, tenant_id, row["seats"])
    await licenses.audit(
        conn, tenant_id, promoted, "promotion", actor="worker", detail={"to": "full"}, request_id=request_id
    )
