"""Applying the license policy to a batch of users under the tenant lock, and the waiting list."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from uuid import UUID

import asyncpg

from scimsvc.contract import ChangeKind
from scimsvc.store import licenses
from scimsvc.store.licenses import AuditRow
from worker.license_policy import Decision, Licensing
from worker.seat_order import Holder, Waiter, plan_seats, seats_that_may_free

# What each outbox change means for the audit log (actor: the IdP through SCIM).
SCIM_AUDITED: dict[str, str] = {
    ChangeKind.DEACTIVATE: "deactivation",
    ChangeKind.REACTIVATE: "reactivation",
    ChangeKind.DELETE: "deactivation",
    ChangeKind.RELINK: "reactivation",
}


@dataclass(frozen=True)
class PendingUser:
    """A user whose outbox rows are being applied: its changes in order, each with the request id of the
    SCIM call that made it."""

    id: UUID
    changes: list[str]
    request_ids: list[str | None] = field(default_factory=list)  # one per change, in the same order

    @property
    def request_id(self) -> str | None:
        """The latest change's request id: the state the license is decided on is the one it left."""
        return self.request_ids[-1] if self.request_ids else None


def _license_action(before: str | None, after: str | None) -> str:
    if after == "full":
        return "allocation"
    if before == "full":
        return "release"
    return "license_change"


def licensing_of(row: asyncpg.Record) -> Licensing:
    """The tenant's license settings from its locked row."""
    return Licensing(
        seats=row["seats"],
        flexible=row["flexible_licenses"],
        default_license=row["default_license"],
        fallback_license=row["fallback_license"],
    )


async def allocate_licenses(
    conn: asyncpg.Connection, tenant_id: UUID, tenant: Licensing, users: Sequence[PendingUser]
) -> dict[UUID, Decision]:
    """Decide each user's license by the policy, seats first come first served; audit it all.

    `users` come in the order their changes arrived. Runs inside the drain transaction, which holds the
    tenant lock: the seat count read here stays true until commit, so no seat is handed out twice.
    A seat released by one of the users goes to the longest-waiting user, in or out of the batch.
    Waiters outside the batch who get a seat are written here; the batch's users' decisions are
    returned (users that no longer exist left out) for the caller to write with their provisioning
    state, in one statement, before the transaction ends.
    """
    stored = {r["id"]: r for r in await licenses.users_licensing(conn, tenant_id, [u.id for u in users])}
    present = [u for u in users if u.id in stored]  # a hard-deleted user has nothing left to license
    holders = [
        Holder(
            id=u.id,
            eligible=stored[u.id]["eligible"],
            user_type=stored[u.id]["user_type"],
            license=stored[u.id]["license"],
            waiting_since=stored[u.id]["waiting_since"],
        )
        for u in present
    ]
    used = await licenses.full_seats(conn, tenant_id)
    waiting: list[Waiter] = []
    may_free = seats_that_may_free(tenant, used=used, batch=holders)
    if may_free > 0:
        rows = await licenses.oldest_waiting(
            conn, tenant_id, limit=may_free, excluding=[h.id for h in holders]
        )
        waiting = [Waiter(r["id"], r["waiting_since"]) for r in rows]
    plan = plan_seats(tenant, used=used, batch=holders, waiting=waiting)

    audits: list[AuditRow] = []
    released_by: str | None = None
    for user, holder in zip(present, holders, strict=True):
        audits.extend(
            AuditRow(user.id, SCIM_AUDITED[c], "scim", request_id=request_id)
            for c, request_id in zip(user.changes, user.request_ids, strict=True)
            if c in SCIM_AUDITED
        )
        decision = plan.decisions[user.id]
        was_waiting = holder.waiting_since is not None
        if decision.license == holder.license and decision.waiting == was_waiting:
            continue
        if decision.license != holder.license:
            action = _license_action(holder.license, decision.license)
            if action == "release":
                released_by = user.request_id
            detail = {"from": holder.license, "to": decision.license}
            audits.append(AuditRow(user.id, action, "worker", detail, user.request_id))
        if decision.waiting and not was_waiting:
            audits.append(AuditRow(user.id, "waiting", "worker", request_id=user.request_id))
    # Outside waiters owe their seat to a release in this batch (else to the seats being free already).
    cause = released_by or (present[-1].request_id if present else None)
    audits.extend(AuditRow(u, "promotion", "worker", {"to": "full"}, cause) for u in plan.promoted)
    await licenses.set_licenses(conn, [(user_id, "full", False) for user_id in plan.promoted])
    await licenses.audit_rows(conn, tenant_id, audits)
    return plan.decisions


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
