"""Manual license assignment by an operator, allowed only while SCIM is off (the seat dashboard lock), and
the seats operators see."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast
from uuid import UUID

import asyncpg

from scimsvc.contract import ChangeKind, ResourceType
from scimsvc.product.licenses import MANAGED_BY_SCIM, License, Licensing, manual_refusal
from scimsvc.product.seats import NoSeatReason, no_seat_reason
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


# Tenant changes after which the seats page says "applying…" until the worker has applied them.
APPLYING_CHANGES = (ChangeKind.LICENSING, ChangeKind.MANUAL_LICENSE, ChangeKind.SEAT_RELEASED)


@dataclass(frozen=True)
class SeatUser:
    """A user on the seats page: its place in the waiting list (None: not waiting) and why it has no seat."""

    id: UUID
    name: str
    user_name: str
    since: datetime | None
    position: int | None
    reason: NoSeatReason


@dataclass(frozen=True)
class Applying:
    """Whether licensing changes of a tenant are still being applied, and why the worker's last attempt
    failed (None: it has not failed)."""

    applying: bool
    failed: str | None = None


async def licensing_applying(pool: asyncpg.Pool, tenant_id: UUID) -> Applying:
    """Whether the tenant's licensing changes (`APPLYING_CHANGES`) are still being applied (the settings
    page's "applying…": one indexed read of the tenant's unapplied outbox rows, no count of users)."""
    row = await licenses.applying_state(pool, tenant_id, changes=list(APPLYING_CHANGES))
    failed = row["last_error"] if row["applying"] and row["attempts"] > 0 and row["last_error"] else None
    return Applying(row["applying"], failed)


@dataclass(frozen=True)
class SeatOverview:
    """The seats page of a tenant: the figures as applied, whether licensing changes are still being
    applied, a page of the waiting list and a page of the active users without a seat who do not wait."""

    licensing: Licensing
    scim_enabled: bool
    used: int
    waiting_count: int
    progress: Applying
    waiting: list[SeatUser]
    without_seat: list[SeatUser]
    waiting_rows: list[asyncpg.Record]  # the pages' rows, for the next pages' cursors
    without_seat_rows: list[asyncpg.Record]

    @property
    def applying(self) -> bool:
        return self.progress.applying

    @property
    def seats(self) -> int:
        return self.licensing.seats

    @property
    def free(self) -> int:
        return max(self.seats - self.used, 0)

    @property
    def over_allocated(self) -> bool:
        return self.used > self.seats


async def seat_overview(
    pool: asyncpg.Pool,
    tenant_id: UUID,
    *,
    waiting_after: licenses.Place | None = None,
    others_after: licenses.Place | None = None,
    limit: int = 50,
) -> SeatOverview:
    """The seats page (404 if the tenant is unknown): a few indexed statements whatever the tenant's size;
    each list is a page of at most `limit` users after the place given ((waiting_since, id) of the
    waiting list, (created_at, id) of the others), which need not be a user's any more."""
    figures = await licenses.seat_figures(pool, tenant_id)
    if figures is None:
        raise not_found(f"tenant {tenant_id} not found")
    tenant = Licensing(
        seats=figures["seats"],
        flexible=figures["flexible_licenses"],
        default_license=figures["default_license"],
        fallback_license=figures["fallback_license"],
    )
    scim_enabled = figures["scim_enabled"]
    before, waiting_rows = await licenses.waiting_page(pool, tenant_id, after=waiting_after, limit=limit)
    others = await licenses.without_seat_page(pool, tenant_id, after=others_after, limit=limit)
    pending = await licenses.unapplied_users(pool, [r["id"] for r in [*waiting_rows, *others]])

    def seat_user(row: asyncpg.Record, position: int | None) -> SeatUser:
        reason = no_seat_reason(
            tenant,
            scim_enabled=scim_enabled,
            active=row["active"],
            pending=row["id"] in pending,
            user_type=row["user_type"],
            waiting_position=position,
        )
        return SeatUser(row["id"], row["name"], row["user_name"], row["waiting_since"], position, reason)

    return SeatOverview(
        licensing=tenant,
        scim_enabled=scim_enabled,
        used=figures["used"],
        waiting_count=figures["waiting"],
        progress=await licensing_applying(pool, tenant_id),
        waiting=[seat_user(r, before + i) for i, r in enumerate(waiting_rows, start=1)],
        without_seat=[seat_user(r, None) for r in others],
        waiting_rows=list(waiting_rows),
        without_seat_rows=list(others),
    )
