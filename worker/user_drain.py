"""Draining a tenant's pending user changes: many users per transaction, one tenant lock per batch.

Every user change of a tenant is applied under the tenant's licensing lock, so the batches of one tenant
never interleave, whatever the number of workers: that serializes seat allocation and keeps each user's
rows in id order. A batch takes the resources behind the tenant's oldest pending rows, with all of their
pending rows, and applies them with a handful of set-based statements, the batch's events (README.md,
What happened) among them: one statement for the whole batch, in the batch's transaction.

Organizations woken together, each with a few rows, are drained together (`drain_tenants_at_once`): one
transaction holds all of their locks and each step is still one statement, for all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from uuid import UUID

import asyncpg

from scimsvc.contract import ChangeKind, ResourceType
from scimsvc.product.domain_teams import domain_memberships
from scimsvc.product.events import EventType, NewEvent
from scimsvc.store import groups, licenses, outbox, teams, user_states
from scimsvc.store.events import record_args, record_with_args
from worker.seats import PendingUser, SeatBatch, allocate_licenses, licensing_of
from worker.telemetry import log_applied

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")

USER = ResourceType.USER
BATCH_ROWS = 500  # outbox rows that pick a batch's users; a batch holds the tenant lock for ~0.1 s
MAX_BATCHES = 40  # per job, so that one busy tenant never runs into the job timeout
# Changes that (re)provision a user: it then joins its email domain's teams (domain_teams in README.md).
PROVISIONED = frozenset({ChangeKind.CREATE, ChangeKind.RELINK})
# The event each user change is told as.
CHANGE_EVENTS: dict[str, EventType] = {
    ChangeKind.CREATE: EventType.USER_CREATED,
    ChangeKind.UPDATE: EventType.USER_UPDATED,
    ChangeKind.DEACTIVATE: EventType.USER_DEACTIVATED,
    ChangeKind.REACTIVATE: EventType.USER_REACTIVATED,
    ChangeKind.RELINK: EventType.USER_REACTIVATED,
    ChangeKind.DELETE: EventType.USER_DELETED,
}


@dataclass
class DrainResult:
    """What one drain did."""

    applied: int = 0  # outbox rows applied
    failed: list[UUID] = field(default_factory=list)  # users left pending after an error (recorded)
    email_changed: bool = False  # a userName changed: notices were written with it
    deliveries: int = 0  # webhook deliveries queued with the events
    more: bool = False  # stopped after MAX_BATCHES with rows still pending
    created: int = 0  # users created (their "create" rows applied)

    def count(self, rows: list[asyncpg.Record], deliveries: int = 0) -> None:
        """Note rows whose transaction committed, and the webhook deliveries it queued."""
        log_applied(USER, rows)
        self.applied += len(rows)
        self.deliveries += deliveries
        self.email_changed |= any("previous_user_name" in r["payload"] for r in rows)
        self.created += sum(r["change"] == ChangeKind.CREATE for r in rows)


def pending_users(rows: list[asyncpg.Record]) -> list[PendingUser]:
    """Rows (in id order) grouped per user; users in the order of their oldest pending row."""
    users: dict[UUID, PendingUser] = {}
    for row in rows:
        user = users.get(row["resource_id"])
        if user is None:
            user = users[row["resource_id"]] = PendingUser(row["resource_id"], [], [])
        user.changes.append(row["change"])
        user.request_ids.append(row["request_id"])
    return list(users.values())


@dataclass(frozen=True)
class TenantRows:
    """A tenant's part of a drain: its settings row, locked by the drain's transaction
    (`store/licenses.py:lock_tenant_licensing`, or `lock_free_tenants_licensing` for many), and its pending
    rows (whole runs of each user's rows, by id)."""

    tenant_id: UUID
    licensing: asyncpg.Record
    rows: list[asyncpg.Record]


async def apply_user_rows(conn: asyncpg.Connection, batches: list[TenantRows], *, events: bool = True) -> int:
    """Apply these tenants' pending rows and stamp them applied; returns the number of webhook deliveries
    queued with their events (0 with `events` off).

    Each step is one statement for all the tenants; only the tenants that need one get a statement of their
    own (a waiting list to read, domain teams to join, deleted users to take out of groups). The desired
    state is the user row itself, so applying any run of a user's rows is idempotent. Users just created or
    re-linked then join their email domain's teams (`domain_memberships`); users deleted leave any group
    they are still a desired member of.
    """
    batches = [b for b in batches if b.rows]
    if not batches:
        return 0
    users_of = {b.tenant_id: pending_users(b.rows) for b in batches}
    figures = await licenses.drain_figures(conn, list(users_of))
    stored_of: dict[UUID, list[asyncpg.Record]] = {t: [] for t in users_of}
    for row in await licenses.users_licensing(conn, [(t, u.id) for t, us in users_of.items() for u in us]):
        stored_of[row["tenant_id"]].append(row)
    allocations = await allocate_licenses(
        conn,
        [
            SeatBatch(
                b.tenant_id,
                licensing_of(b.licensing),
                figures[b.tenant_id],
                users_of[b.tenant_id],
                stored_of[b.tenant_id],
            )
            for b in batches
        ],
    )
    joining: list[list[tuple[str, UUID]]] = []
    for batch in batches:
        names = {r["id"]: r["user_name"] for r in stored_of[batch.tenant_id]}
        users = users_of[batch.tenant_id]
        joined = [(u.id, names[u.id]) for u in users if u.id in names and PROVISIONED & set(u.changes)]
        joining.append(domain_memberships(joined, batch.licensing["domain_teams"]))

    def told(memberships: list[list[asyncpg.Record]]) -> tuple[Any, ...] | None:
        return record_args(
            [
                (b.tenant_id, e)
                for b, allocation, joins in zip(batches, allocations, memberships, strict=True)
                for e in batch_events(users_of[b.tenant_id], b.rows, allocation.events, joins)
            ]
        )

    # The batch's events are built (this process's CPU) while PostgreSQL updates the users, unless domain
    # teams are joined: those events are built once the joins are made. A batch of 500 users: ~1 ms.
    early = events and not any(joining)
    _, args = await _while_running(
        user_states.apply_user_states(
            conn, [(uid, a.license, a.waiting_since) for al in allocations for uid, a in al.applied.items()]
        ),
        lambda: told([[] for _ in batches]) if early else None,
    )
    memberships = []
    for batch, joins in zip(batches, joining, strict=True):
        memberships.append(await teams.add_domain_members(conn, batch.tenant_id, joins))
        # A SCIM DELETE took the user out of its groups when it was written; a member a group write
        # committed just as that DELETE began goes now (store/user_deletes.py).
        deleted = [u.id for u in users_of[batch.tenant_id] if ChangeKind.DELETE in u.changes]
        await groups.forget_unlinked_users(conn, batch.tenant_id, deleted)
    if events and not early:
        args = told(memberships)
    deliveries = await record_with_args(conn, args)
    await outbox.mark_applied(conn, [r["id"] for b in batches for r in b.rows])
    return deliveries


async def _while_running(statement: Awaitable[T], work: Callable[[], R]) -> tuple[T, R]:
    """`statement`'s result and `work()`'s: the statement is sent first, and `work` runs while PostgreSQL
    executes it (the connection is busy until it ends, so `work` must not use it)."""
    running = asyncio.ensure_future(statement)
    try:
        await asyncio.sleep(0)  # the statement goes out; the task waits for its answer
        done = work()
    except BaseException:  # a cancellation too: the statement must not outlive this on the connection
        with contextlib.suppress(Exception):
            await running  # the connection is free again before the error goes up
        raise
    return await running, done


def batch_events(
    users: list[PendingUser],
    rows: list[asyncpg.Record],
    license_events: list[NewEvent],
    memberships: list[asyncpg.Record],
) -> list[NewEvent]:
    """A batch's events, user by user (in the order of their oldest row): each of its changes, in order
    (an email change right after the change that made it), then its license change, then the domain teams
    it joined; then the promotions of waiters outside the batch.

    Each shows its user as it is at the end of the batch in `data["user"]` (store/events.py).
    """
    by_user: dict[UUID, list[NewEvent]] = {u.id: [] for u in users}
    for row in rows:
        uid, request_id = row["resource_id"], row["request_id"]
        by_user[uid].append(_user_event(CHANGE_EVENTS[row["change"]], uid, request_id))
        if "previous_user_name" in row["payload"]:
            previous = {"previous_user_name": row["payload"]["previous_user_name"]}
            by_user[uid].append(_user_event(EventType.USER_EMAIL_CHANGED, uid, request_id, previous))
    outside: list[NewEvent] = []
    for event in license_events:
        (by_user[event.user_id] if event.user_id in by_user else outside).append(event)
    # A domain team is joined because of the change that provisioned the user.
    requests = (
        {u.id: r for u in users for c, r in zip(u.changes, u.request_ids, strict=True) if c in PROVISIONED}
        if memberships
        else {}
    )
    for m in memberships:
        team = {"team": {"id": str(m["team_id"]), "name": m["team_name"]}}
        by_user[m["user_id"]].append(
            _user_event(EventType.TEAM_MEMBER_ADDED, m["user_id"], requests[m["user_id"]], team)
        )
    return [e for u in users for e in by_user[u.id]] + outside


def _user_event(
    type: EventType, user_id: UUID, request_id: str | None, data: dict[str, Any] | None = None
) -> NewEvent:
    # It shows the user in data["user"] ({"id"} alone if hard-deleted since): store/events.py.
    return NewEvent(type, data or {}, user_id=user_id, request_id=request_id)


async def drain_tenant_users(
    pool: asyncpg.Pool,
    tenant_id: UUID,
    *,
    batch_rows: int = BATCH_ROWS,
    max_batches: int = MAX_BATCHES,
    events: bool = True,
) -> DrainResult:
    """Apply the tenant's pending user rows, oldest first, one batch per transaction, until none is left.

    A batch that fails is retried one user per transaction, so one user that cannot be applied never holds
    up the others: its failure is recorded on its rows and the sweeper brings it back later.
    """
    result = DrainResult()
    for _ in range(max_batches):
        rows: list[asyncpg.Record] = []
        deliveries = 0
        try:
            async with pool.acquire() as conn, conn.transaction():
                licensing = await licenses.lock_tenant_licensing(conn, tenant_id)
                if licensing is None:
                    return result  # the tenant is gone, and its outbox rows with it
                rows = await outbox.tenant_batch(conn, tenant_id, USER, limit=batch_rows, skip=result.failed)
                batch = TenantRows(tenant_id, licensing, rows)
                deliveries = await apply_user_rows(conn, [batch], events=events)
        except Exception:
            if not rows:
                raise  # nothing was claimed (database unreachable?): the job fails, the sweeper retries
            log.warning(
                "a batch of %d user rows failed; applying its users one by one", len(rows), exc_info=True
            )
            await _apply_one_by_one(pool, tenant_id, rows, result, events=events)
        else:
            result.count(rows, deliveries)
        # Fewer rows than the limit: the batch's first query saw every pending row of the tenant.
        if len(rows) < batch_rows:
            return result
    result.more = True
    return result


@dataclass
class TenantsDrain(DrainResult):
    """What one drain of many tenants did, and which tenants are left for drains of their own."""

    left: list[UUID] = field(default_factory=list)


async def drain_tenants_at_once(
    pool: asyncpg.Pool, tenant_ids: list[UUID], *, batch_rows: int = BATCH_ROWS, events: bool = True
) -> TenantsDrain:
    """Apply the pending user rows of many tenants, each with little pending, in one transaction: a batch
    of each tenant (its oldest rows, `batch_rows` shared among the tenants) under the locks of all of them.

    Many organizations writing a few users each would otherwise cost a job and a transaction of a dozen
    statements per organization; this is one of each for them all (README.md, Performance). Left for
    drains of their own (`left`): tenants another transaction holds (skipped, not waited for), tenants
    with more rows than their share, and every tenant when the transaction fails (a tenant's own drain
    retries one user at a time and records failures).
    """
    result = TenantsDrain()
    share = max(1, batch_rows // max(1, len(tenant_ids)))
    rows: list[asyncpg.Record] = []
    try:
        async with pool.acquire() as conn, conn.transaction():
            held = await licenses.lock_free_tenants_licensing(conn, tenant_ids)
            locked = {r["tenant_id"]: r for r in held}
            result.left = [t for t in tenant_ids if t not in locked]
            rows = await outbox.tenants_batch(conn, list(locked), USER, limit=share) if locked else []
            rows_of: dict[UUID, list[asyncpg.Record]] = {t: [] for t in locked}
            for row in rows:
                rows_of[row["tenant_id"]].append(row)
            batches = [TenantRows(t, locked[t], r) for t, r in rows_of.items()]
            deliveries = await apply_user_rows(conn, batches, events=events)
    except Exception:
        if not rows:
            raise  # nothing was claimed (database unreachable?): the job fails, the sweeper retries
        log.warning("a drain of %d tenants failed; draining each on its own", len(tenant_ids), exc_info=True)
        result.left = list(tenant_ids)
        return result
    result.count(rows, deliveries)
    # As many rows as its share: the tenant may have more than the batch saw.
    result.left += [t for t, r in rows_of.items() if len(r) >= share]
    return result


async def _apply_one_by_one(
    pool: asyncpg.Pool,
    tenant_id: UUID,
    rows: list[asyncpg.Record],
    result: DrainResult,
    *,
    events: bool,
) -> None:
    for user in pending_users(rows):
        deliveries = 0
        try:
            async with pool.acquire() as conn, conn.transaction():
                licensing = await licenses.lock_tenant_licensing(conn, tenant_id)
                if licensing is None:
                    return
                own = await outbox.pending_of(conn, USER, [user.id])
                batch = TenantRows(tenant_id, licensing, own)
                deliveries = await apply_user_rows(conn, [batch], events=events)
        except Exception as exc:
            log.exception("applying user %s failed", user.id)
            await outbox.record_failure(pool, USER, user.id, repr(exc))
            result.failed.append(user.id)
        else:
            result.count(own, deliveries)
