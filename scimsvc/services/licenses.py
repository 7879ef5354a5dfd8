"""Manual license assignment by an operator, allowed only while SCIM is off (the seat dashboard lock)."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import asyncpg

from scimsvc.scim.errors import ScimError, not_found
from scimsvc.store import licenses
from scimsvc.store import tenants as tenant_store
from scimsvc.store.db import transaction

MANAGED_BY_SCIM = (
    "licenses of this tenant are managed by SCIM: the identity provider assigns them while SCIM is enabled. "
    "Change the user's assignment in the IdP, or disable SCIM (PUT /admin/v1/tenants/{tid}/scim "
    '{"enabled": false}) to assign licenses by hand'
)


async def assign_license(
    conn: asyncpg.Connection,
    *,
    tenant_id: UUID,
    user_id: UUID,
    license: str | None,
    scim_enabled: bool,
    request_id: str | None,
) -> None:
    """Set a user's license by hand under the tenant's allocation lock; a seat must be free for `full`."""
    if scim_enabled:
        raise ScimError(409, MANAGED_BY_SCIM)
    tenant = await licenses.lock_tenant_licensing(conn, tenant_id)
    user = await licenses.lock_user_in_tenant(conn, tenant_id, user_id)
    if tenant is None or user is None:
        raise not_found(f"user {user_id} not found in tenant {tenant_id}")
    if license is not None and not user["eligible"]:
        raise ScimError(409, "the user is deactivated: deactivated users hold no license")
    if license == "full" and user["license"] != "full":
        used = await licenses.full_seats_used(conn, tenant_id, excluding=user_id)
        if used >= tenant["seats"]:
            raise ScimError(
                409, f"no seat is free ({used} of {tenant['seats']} used): raise seats or free one"
            )
    if license == user["license"]:
        return
    await licenses.set_license(conn, user_id, license, waiting=False)
    await licenses.audit(
        conn,
        tenant_id,
        [user_id],
        "manual_assignment",
        actor="admin",
        detail={"from": user["license"], "to": license},
        request_id=request_id,
    )
    promoted = await licenses.promote_waiting(conn, tenant_id, tenant["seats"])
    await licenses.audit(
        conn, tenant_id, promoted, "promotion", actor="admin", detail={"to": "full"}, request_id=request_id
    )


async def assign_license_by_hand(
    pool: asyncpg.Pool, *, tenant_id: UUID, user_id: UUID, license: str | None, request_id: str | None
) -> None:
    """An operator's assignment (admin API or console): the tenant's SCIM lock applies, in one transaction."""
    tenant = await tenant_store.get_tenant(pool, tenant_id)
    if tenant is None:
        raise not_found(f"tenant {tenant_id} not found")
    async with transaction(pool) as conn:
        await assign_license(
            conn,
            tenant_id=tenant_id,
            user_id=user_id,
            license=license,
            scim_enabled=tenant["scim_enabled"],
            request_id=request_id,
        )


@dataclass(frozen=True)
class SeatSummary:
    """Seats of a tenant as operators see them; `waiting` is the waiting list, oldest first."""

    seats: int
    used: int
    waiting: list[UUID]

    @property
    def free(self) -> int:
        return max(self.seats - self.used, 0)

    @property
    def over_allocated(self) -> bool:
        """Seats were lowered below use: nobody is downgraded, the tenant is reported until seats free up."""
        return self.used > self.seats


async def seat_summary(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID) -> SeatSummary:
    """Seats, seats used and the waiting list of a tenant (404 if unknown)."""
    row = await licenses.license_summary(conn, tenant_id)
    if row is None:
        raise not_found(f"tenant {tenant_id} not found")
    return SeatSummary(seats=row["seats"], used=row["used"], waiting=list(row["waiting"]))
