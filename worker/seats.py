"""Applying the seat rules (scimsvc/product/seats.py) under the tenant lock: a batch of users, or the
waiting list after seats were freed or raised. The rules decide; these functions read, write and audit,
and return a license.changed event for every license or waiting state they changed (README.md, What
happened), for their caller to record in the same transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from scimsvc.contract import AuditAction, ChangeKind
from scimsvc.product.events import EventType, NewEvent
from scimsvc.product.licenses import Licensing, manual_refusal, takes_a_seat
from scimsvc.product.seats import (
    Holder,
    SeatPlan,
    Waiter,
    follow_rules,
    plan_seats,
    promote_waiting,
    seat_action,
    seats_that_may_free,
    waiting_since,
)
from scimsvc.store import audit, licenses
from scimsvc.store.audit import AuditRow
from scimsvc.store.db import transaction
from scimsvc.store.events import record_events

# Users decided per transaction when the license rules changed (`follow_license_rules`), and waiters
# promoted per transaction afterwards: each batch holds the tenant lock for a few milliseconds.
RULE_BATCH = 1000

# What each outbox change means for the audit log (actor: the IdP through SCIM).
SCIM_AUDITED: dict[str, AuditAction] = {
    ChangeKind.DEACTIVATE: AuditAction.DEACTIVATION,
    ChangeKind.REACTIVATE: AuditAction.REACTIVATION,
    ChangeKind.DELETE: AuditAction.DEACTIVATION,
    ChangeKind.RELINK: AuditAction.REACTIVATION,
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


def licensing_of(row: asyncpg.Record) -> Licensing:
    """The tenant's license settings from its locked row."""
    return Licensing(
        seats=row["seats"],
        flexible=row["flexible_licenses"],
        default_license=row["default_license"],
        fallback_license=row["fallback_license"],
    )


@dataclass(frozen=True)
class Applied:
    """A user's license as decided, and its place in the waiting list (None: not waiting)."""

    license: str | None
    waiting_since: datetime | None


@dataclass(frozen=True)
class SeatBatch:
    """One tenant's part of a drain: its settings, its seat figures read under its lock
    (`store/licenses.py:drain_figures`), its users in the order their changes arrived and their
    `licenses.users_licensing`."""

    tenant_id: UUID
    tenant: Licensing
    figures: asyncpg.Record  # used, waiters, now
    users: Sequence[PendingUser]
    stored: Sequence[asyncpg.Record]


@dataclass(frozen=True)
class Allocation:
    """What `allocate_licenses` decided for one tenant: the batch's users' licenses, and the license.changed
    events of the batch's users (in batch order) and then of the waiters promoted outside it."""

    applied: dict[UUID, Applied]
    events: list[NewEvent]


def license_changed(
    user_id: UUID, before: str | None, after: str | None, *, waiting: bool, request_id: str | None
) -> NewEvent:
    """The event of a user's license (or waiting state) changing from `before` to `after`."""
    data = {"from": before, "to": after, "seat": after == "full", "waiting": waiting}
    return NewEvent(EventType.LICENSE_CHANGED, data, user_id=user_id, request_id=request_id)


async def allocate_licenses(conn: asyncpg.Connection, batches: Sequence[SeatBatch]) -> list[Allocation]:
    """Decide each user's license by the policy, seats first come first served, tenant by tenant; audit it
    all. Returns each batch's `Allocation`, in order.

    Runs inside the drain transaction, which holds every one of the tenants' locks: the seat counts read
    under them stay true until commit, so no seat is handed out twice. A seat released by one of the users
    goes to the longest-waiting user of its tenant, in or out of the batch (the waiting list is read only
    when someone waits). Waiters outside the batch who get a seat are written here, with every audit row,
    one statement each for all the tenants; the batch's users' licenses are returned (users that no longer
    exist left out) for the caller to write with their provisioning state, in one statement, before the
    transaction ends, with the events of every change.
    """
    allocations: list[Allocation] = []
    audits: list[tuple[UUID, AuditRow]] = []
    promoted: list[UUID] = []
    for batch in batches:
        by_id = {r["id"]: r for r in batch.stored}
        present = [u for u in batch.users if u.id in by_id]  # a hard-deleted user has nothing to license
        holders = [
            Holder(
                id=u.id,
                eligible=by_id[u.id]["eligible"],
                user_type=by_id[u.id]["user_type"],
                license=by_id[u.id]["license"],
                waiting_since=by_id[u.id]["waiting_since"],
            )
            for u in present
        ]
        used = batch.figures["used"]
        may_free = seats_that_may_free(batch.tenant, used=used, batch=holders)
        waiting = await _waiting_list(
            conn, batch.tenant_id, may_free if batch.figures["waiters"] else 0, excluding=holders
        )
        plan = plan_seats(batch.tenant, used=used, batch=holders, waiting=waiting)
        allocation, tenant_audits = _allocation(plan, present, holders, waiting, now=batch.figures["now"])
        allocations.append(allocation)
        audits += [(batch.tenant_id, a) for a in tenant_audits]
        promoted += plan.promoted
    await licenses.set_licenses(conn, [(user_id, "full", None) for user_id in promoted])
    await audit.tenants_audit_rows(conn, audits)
    return allocations


def _allocation(
    plan: SeatPlan,
    present: Sequence[PendingUser],
    holders: Sequence[Holder],
    waiting: Sequence[WaitingUser],
    *,
    now: datetime,
) -> tuple[Allocation, list[AuditRow]]:
    """One tenant's licenses, events and audit rows, as `plan` decided them."""
    audits: list[AuditRow] = []
    events: list[NewEvent] = []
    applied: dict[UUID, Applied] = {}
    released_by: str | None = None
    for place, (user, holder) in enumerate(zip(present, holders, strict=True), start=1):
        audits.extend(
            AuditRow(user.id, SCIM_AUDITED[c], "scim", request_id=request_id)
            for c, request_id in zip(user.changes, user.request_ids, strict=True)
            if c in SCIM_AUDITED
        )
        decision = plan.decisions[user.id]
        since = waiting_since(decision, since=holder.waiting_since, now=now, place=place)
        applied[user.id] = Applied(decision.license, since)
        if since == holder.waiting_since and decision.license == holder.license:
            continue
        if decision.license != holder.license or (since is None) != (holder.waiting_since is None):
            events.append(
                license_changed(
                    user.id,
                    holder.license,
                    decision.license,
                    waiting=since is not None,
                    request_id=user.request_id,
                )
            )
        if decision.license != holder.license:
            action = seat_action(holder.license, decision.license)
            if action == "release":
                released_by = user.request_id
            detail = {"from": holder.license, "to": decision.license}
            audits.append(AuditRow(user.id, action, "worker", detail, user.request_id))
        if decision.waiting and holder.waiting_since is None:
            audits.append(AuditRow(user.id, AuditAction.WAITING, "worker", request_id=user.request_id))
    # Outside waiters owe their seat to a release in this batch (else to the seats being free already).
    cause = released_by or (present[-1].request_id if present else None)
    audits.extend(AuditRow(u, AuditAction.PROMOTION, "worker", {"to": "full"}, cause) for u in plan.promoted)
    events.extend(_promotions(plan.promoted, waiting, cause))
    return Allocation(applied, events), audits


def _promotions(
    promoted: Sequence[UUID], waiting: Sequence[WaitingUser], request_id: str | None
) -> list[NewEvent]:
    held = {w.id: w.license for w in waiting}
    return [license_changed(u, held.get(u), "full", waiting=False, request_id=request_id) for u in promoted]


@dataclass(frozen=True)
class WaitingUser(Waiter):
    """A waiter with the license it holds meanwhile (the `from` of its promotion's event)."""

    license: str | None = None


async def _waiting_list(
    conn: asyncpg.Connection, tenant_id: UUID, may_free: int, *, excluding: Sequence[Holder] = ()
) -> list[WaitingUser]:
    # Only as many of the oldest waiters as seats may free: the rest cannot get one in this transaction.
    if may_free <= 0:
        return []
    rows = await licenses.oldest_waiting(conn, tenant_id, limit=may_free, excluding=[h.id for h in excluding])
    return [WaitingUser(r["id"], r["waiting_since"], r["license"]) for r in rows]


async def apply_manual_assignments(
    conn: asyncpg.Connection, tenant_id: UUID, rows: list[asyncpg.Record]
) -> list[NewEvent]:
    """Operators' assignments (outbox rows `MANUAL_LICENSE`), in order, by the rule that accepted them
    (`manual_refusal`), checked again now: one that no longer stands (a seat taken meanwhile, the user
    deactivated) changes nothing and is audited as refused, with the reason. Assignments are made by
    hand and few, so each is applied on its own. Returns the events of the assignments applied.
    """
    row = await licenses.lock_tenant_licensing(conn, tenant_id)
    if row is None:
        return []
    tenant = licensing_of(row)
    events: list[NewEvent] = []
    for change in rows:
        user_id, wanted = UUID(change["payload"]["user_id"]), change["payload"]["license"]
        user = await licenses.lock_user_in_tenant(conn, tenant_id, user_id)
        if user is None:  # hard-deleted since
            continue
        current = user["license"]
        used = (
            await licenses.full_seats_used(conn, tenant_id, excluding=user_id)
            if takes_a_seat(current, wanted)
            else 0
        )
        refusal = manual_refusal(
            tenant,
            scim_enabled=row["scim_enabled"],  # turned on since: the identity provider assigns licenses
            eligible=user["eligible"],
            current=current,
            wanted=wanted,
            used=used,
        )
        request_id = change["request_id"]
        if refusal is not None:
            detail = {"from": current, "to": wanted, "reason": refusal}
            await audit.audit(
                conn,
                tenant_id,
                [user_id],
                AuditAction.MANUAL_ASSIGNMENT_REFUSED,
                actor="admin",
                detail=detail,
                request_id=request_id,
            )
            continue
        if wanted == current:
            continue
        await licenses.set_licenses(conn, [(user_id, wanted, None)])
        events.append(license_changed(user_id, current, wanted, waiting=False, request_id=request_id))
        detail = {"from": current, "to": wanted}
        await audit.audit(
            conn,
            tenant_id,
            [user_id],
            AuditAction.MANUAL_ASSIGNMENT,
            actor="admin",
            detail=detail,
            request_id=request_id,
        )
    return events


async def apply_tenant_licensing(
    conn: asyncpg.Connection, tenant_id: UUID, *, request_id: str | None
) -> list[NewEvent]:
    """After a seat was freed (hard delete, an operator's assignment) or the tenant's seats or rules
    changed: free seats go to the oldest waiting users (`promote_waiting`). Lowering seats below use
    downgrades no one; the admin API reports the tenant over-allocated. Returns the promotions' events.
    """
    row = await licenses.lock_tenant_licensing(conn, tenant_id)
    if row is None:
        return []
    events, _ = await _promote(conn, tenant_id, licensing_of(row), request_id=request_id)
    return events


async def _promote(
    conn: asyncpg.Connection, tenant_id: UUID, tenant: Licensing, *, request_id: str | None, limit: int = 0
) -> tuple[list[NewEvent], int]:
    """Promote the oldest waiters to the free seats (at most `limit`, 0: all); returns the events and how
    many waiters were read."""
    figures = (await licenses.drain_figures(conn, [tenant_id]))[tenant_id]
    used = figures["used"]
    may_free = seats_that_may_free(tenant, used=used, batch=()) if figures["waiters"] else 0
    waiting = await _waiting_list(conn, tenant_id, min(may_free, limit) if limit else may_free)
    promoted = promote_waiting(tenant, used=used, waiting=waiting)
    await licenses.set_licenses(conn, [(user_id, "full", None) for user_id in promoted])
    await audit.audit(
        conn,
        tenant_id,
        promoted,
        AuditAction.PROMOTION,
        actor="worker",
        detail={"to": "full"},
        request_id=request_id,
    )
    return _promotions(promoted, waiting, request_id), len(waiting)


async def follow_license_rules(
    pool: asyncpg.Pool, tenant_id: UUID, *, request_id: str | None, events: bool, batch: int = RULE_BATCH
) -> int:
    """Make every user's license and waiting state follow the tenant's license rules after they changed
    (flexible licenses turned on or off, SCIM turned back on, migration 0021), then give the free seats
    to the waiting list; returns the webhook deliveries queued.

    Runs in batches, each its own transaction under the tenant lock: the SCIM-linked users in the order
    they were created, `batch` at a time (the cursor is the last one's (created_at, id)), each decided by
    `follow_rules` (a user whose own changes are not applied yet is left to the drain that applies them);
    then promotions, `batch` at a time. Users who join the waiting list queue after everyone already
    waiting, in the order they were created: each batch places its joiners after the last place the
    previous batch gave out. A failure leaves the batches committed so far; the retry starts again from
    the first user and finds them done. With SCIM off nothing changes: an operator's assignments stand
    until SCIM is turned back on, which runs this again. `events`: record license.changed events.
    """
    after: tuple[datetime, UUID] | None = None
    last: datetime | None = None
    deliveries = 0
    while True:
        async with transaction(pool) as conn:
            row = await licenses.lock_tenant_licensing(conn, tenant_id)
            if row is None or not row["scim_enabled"]:
                return deliveries
            page = await licenses.rule_page(conn, tenant_id, after=after, limit=batch)
            if not page:
                break
            after = (page[-1]["created_at"], page[-1]["id"])
            now = (await licenses.drain_figures(conn, [tenant_id]))[tenant_id]["now"]
            base = max(now, last) if last else now
            changed, last_given = await _follow_rules_batch(
                conn, tenant_id, licensing_of(row), page, now=base, request_id=request_id
            )
            last = max(last_given, last) if last else last_given
            if events:
                deliveries += await record_events(conn, tenant_id, changed)
        if len(page) < batch:
            break
    while True:
        async with transaction(pool) as conn:
            row = await licenses.lock_tenant_licensing(conn, tenant_id)
            if row is None:
                return deliveries
            promoted, read = await _promote(
                conn, tenant_id, licensing_of(row), request_id=request_id, limit=batch
            )
            if events:
                deliveries += await record_events(conn, tenant_id, promoted)
        if read < batch:
            return deliveries


async def _follow_rules_batch(
    conn: asyncpg.Connection,
    tenant_id: UUID,
    tenant: Licensing,
    page: Sequence[asyncpg.Record],
    *,
    now: datetime,
    request_id: str | None,
) -> tuple[list[NewEvent], datetime]:
    """One batch of `follow_license_rules`: decide, write, audit; the events and the last place given."""
    unapplied = await licenses.unapplied_users(conn, [r["id"] for r in page])
    writes: list[tuple[UUID, str | None, datetime | None]] = []
    audits: list[AuditRow] = []
    events: list[NewEvent] = []
    last = now
    place = 0
    for r in page:
        if r["id"] in unapplied:
            continue
        holder = Holder(r["id"], r["eligible"], r["user_type"], r["license"], r["waiting_since"])
        decision = follow_rules(tenant, holder)
        joins = decision.waiting and holder.waiting_since is None
        place += joins
        since = waiting_since(decision, since=holder.waiting_since, now=now, place=place)
        if since is not None and joins:
            last = since
        if decision.license == holder.license and since == holder.waiting_since:
            continue
        writes.append((holder.id, decision.license, since))
        events.append(
            license_changed(
                holder.id, holder.license, decision.license, waiting=since is not None, request_id=request_id
            )
        )
        if decision.license != holder.license:
            detail: dict[str, Any] = {"from": holder.license, "to": decision.license}
            audits.append(
                AuditRow(
                    holder.id, seat_action(holder.license, decision.license), "worker", detail, request_id
                )
            )
        if joins:
            audits.append(AuditRow(holder.id, AuditAction.WAITING, "worker", request_id=request_id))
    await licenses.set_licenses(conn, writes)
    await audit.audit_rows(conn, tenant_id, audits)
    return events, last
