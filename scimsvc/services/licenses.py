"""Manual license assignment by an operator, allowed only while SCIM is off (the seat dashboard lock), and
the seats operators see."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast
from uuid import UUID

import asyncpg

from scimsvc.contract import ChangeKind, ResourceType
from scimsvc.product.licenses import MANAGED_BY_SCIM, License, Licensing, manual_refusal
from scimsvc.scim.errors import ScimError, not_found
from scimsvc.services.changes import Scope, Transaction, write
from scimsvc.store import licenses
from scimsvc.store import tenants as tenant_store


async def assign_license_by_hand(scope: Scope, user_id: UUID, license: License | None) -> None:
    """Accept an operator's assignment (admin API or console); the worker applies it (worker/seats.py).

    Refused at once (409) by the rule of `manual_refusal` while the tenant's SCIM is on, for a
    deactivated user, or for a full license when no seat is free, counting the assignments accepted and
    not applied yet, so the operator learns now what the worker would refuse. Accepted, it is an outbox
    row of the tenant: the worker applies it under the tenant's allocation lock by the same rule, like
    every other seat change, and gives a seat it frees to the oldest waiting user.
    """
    tenant = await tenant_store.get_tenant(scope.pool, scope.tenant_id)
    if tenant is None:
        raise not_found(f"tenant {scope.tenant_id} not found")
    if tenant["scim_enabled"]:
        raise ScimError(409, MANAGED_BY_SCIM)

    async def steps(tx: Transaction) -> None:
        conn = tx.conn
        settings = await licenses.lock_tenant_licensing(conn, scope.tenant_id)
        user = await licenses.lock_user_in_tenant(conn, scope.tenant_id, user_id)
        if settings is None or user is None:
            raise not_found(f"user {user_id} not found in tenant {scope.tenant_id}")
        used, current = await licenses.seats_after_assignments(
            conn, scope.tenant_id, user_id, change=ChangeKind.MANUAL_LICENSE
        )
        refusal = manual_refusal(
            Licensing(seats=settings["seats"]),
            scim_enabled=settings["scim_enabled"],  # read again under the lock: it may have just changed
            eligible=user["eligible"],
            current=cast(License | None, current),
            wanted=license,
            used=used,
        )
        if refusal is not None:
            raise ScimError(409, refusal)
        await tx.record(
            ResourceType.TENANT,
            scope.tenant_id,
            ChangeKind.MANUAL_LICENSE,
            {"user_id": str(user_id), "license": license},
        )

    await write(scope, steps, tries=1)


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
