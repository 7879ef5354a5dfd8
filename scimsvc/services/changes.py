"""The one way to write: a resource and its outbox rows commit together, then the worker is woken.

`write(scope, steps)` is the door for every write that records outbox rows, from SCIM, admin and console
alike (operator writes with no outbox row, a token or a team, are actions: services/actions.py). It
runs
`steps` in a transaction where `tx.record` adds an outbox row for each change (what a row may say is
`scimsvc.contract`). Its fast paths save the BEGIN, lock and COMMIT round trips of the hottest writes: a
single statement that saves one user with its outbox row (`new_user`, `read_user_update`, `put_user`,
`set_user_active`, `set_user_texts`, `deleted_user`), tried first; only when it writes nothing (a taken
userName, a user changed or gone meanwhile) do the `steps` run (`saved_by` runs one alone, for a caller
with another way on). New users that arrive together go in as one statement, and
so do user updates (the app's batchers, store/batches.py), each user still with its own outbox row.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar
from uuid import UUID

import asyncpg
from arq.connections import ArqRedis
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from scimsvc.contract import ChangeKind, ResourceType, Wakeup
from scimsvc.scim.users import change_kind
from scimsvc.services.wakeups import waker_for
from scimsvc.settings import Settings
from scimsvc.store import new_users, outbox, user_deletes, user_updates
from scimsvc.store.db import transaction
from scimsvc.store.new_users import NewUserInserts
from scimsvc.store.user_deletes import UserDelete, UserDeletes
from scimsvc.store.user_reads import UserReads
from scimsvc.store.user_updates import Kind, UserUpdate, UserUpdates

log = logging.getLogger(__name__)
T = TypeVar("T")
# PostgreSQL aborted the transaction to break a deadlock, or on a serialization failure: nothing of it was
# written, and run again it sees what the other transaction did.
CONFLICTS = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)


class Scope(NamedTuple):
    """Who is writing and with what: the app's resources plus the caller's tenant and request id. A named
    tuple: made for every SCIM request, at a third of a frozen dataclass's cost."""

    pool: asyncpg.Pool
    redis: ArqRedis  # the queue's: wake-ups
    limiter_redis: Redis | RedisCluster  # the per-request keys' (page cursors): `redis` itself, or its own
    settings: Settings
    tenant_id: UUID
    request_id: str | None = None
    allowed_domains: tuple[str, ...] = ()  # the tenant's allowlist; empty allows every domain
    new_users: NewUserInserts | None = None  # the app's batcher of new-user inserts; None: one by one
    user_updates: UserUpdates | None = None  # the app's batcher of PUT/PATCH saves; None: one by one
    user_deletes: UserDeletes | None = None  # the app's batcher of DELETEs; None: one by one
    user_reads: UserReads | None = None  # the app's batcher of the reads PATCHes build on; None: one by one
    # The outbox ids this scope's writes recorded, for the provisioning log (README.md, What happened);
    # None: nobody asks.
    written: list[int] | None = None


@dataclass
class Transaction:
    """An open write transaction; `record` adds the outbox row for each change it makes."""

    conn: asyncpg.Connection
    scope: Scope
    touched: list[Wakeup] = field(default_factory=list)

    async def record(
        self,
        resource_type: ResourceType,
        resource_id: UUID,
        change: ChangeKind,
        payload: dict[str, Any] | None = None,
    ) -> None:
        """Add the outbox row of a change this transaction makes; the worker is woken for it after commit."""
        outbox_id = await outbox.record_change(
            self.conn,
            tenant_id=self.scope.tenant_id,
            resource_type=resource_type,
            resource_id=resource_id,
            change=change,
            payload=payload,
            request_id=self.scope.request_id,
        )
        self.touched.append(Wakeup(self.scope.tenant_id, resource_type, resource_id, outbox_id))


@dataclass(frozen=True)
class OneStatement:
    """A fast path of `write`: one statement (atomic without a transaction) that saves a resource with its
    outbox row and returns the resource's row with `id` and `outbox_id`, or None when it wrote nothing."""

    resource_type: ResourceType
    run: Callable[[asyncpg.Pool], Awaitable[asyncpg.Record | None]]


async def write(
    scope: Scope,
    steps: Callable[[Transaction], Awaitable[T]],
    *,
    one_statement: OneStatement | None = None,
    tries: int = 3,
) -> T | asyncpg.Record:
    """Write resources with their outbox rows, then wake the worker for the rows; returns what wrote them.

    `one_statement`, when given, is tried first, and its row is the result if it wrote one. Otherwise (or
    when PostgreSQL aborted it as one of the `CONFLICTS`)
    `steps` run in one transaction, which runs again (up to `tries` times in all) when PostgreSQL aborts it
    as one of the `CONFLICTS`. The wake-up is sent in the background: the response does not wait for
    Redis, as the committed outbox rows are the record and the worker's sweeper re-enqueues any wake-up
    that gets lost.
    """
    if one_statement is not None and (row := await saved_by(scope, one_statement)) is not None:
        return row
    return await _retrying(lambda: _in_transaction(scope, steps), tries=tries)


async def saved_by(scope: Scope, one_statement: OneStatement) -> asyncpg.Record | None:
    """The row `one_statement` wrote, the worker woken for it; None when it wrote nothing (or PostgreSQL
    aborted it as one of the `CONFLICTS`, which wrote nothing either)."""
    try:
        row = await one_statement.run(scope.pool)
    except CONFLICTS as exc:
        log.warning("a one-statement write was aborted by PostgreSQL (%s)", exc.sqlstate)
        return None
    if row is not None:
        _wake(scope, [Wakeup(scope.tenant_id, one_statement.resource_type, row["id"], row["outbox_id"])])
    return row


def new_user(scope: Scope, resource: dict[str, Any]) -> OneStatement:
    """The fast path of a POST with a new userName: the user and its "create" row, batched with the
    POSTs that arrive with it when the app has a batcher; writes nothing if the userName is taken."""
    return OneStatement(
        ResourceType.USER,
        lambda pool: new_users.insert_new_user(
            scope.new_users or pool, scope.tenant_id, resource, request_id=scope.request_id
        ),
    )


def read_user_update(
    scope: Scope, user_id: UUID, resource: dict[str, Any], *, version: int, change: ChangeKind
) -> OneStatement:
    """The fast path of a PUT or PATCH: the user's new resource and its `change` row, if the user is
    still at the `version` the resource was built on; writes nothing if it has changed since."""
    active = resource.get("active", True)
    return _user_update(scope, user_id, "read", resource, active, version, change, change)


def put_user(scope: Scope, user_id: UUID, resource: dict[str, Any]) -> OneStatement:
    """The fast path of a PUT without If-Match whose resource names no manager: saved unread, if the
    user still has the resource's userName (`active` left out keeps the stored value); writes nothing
    otherwise."""
    active = resource.get("active")
    if_active = change_kind(was_active=True, was_linked=True, active=True if active is None else active)
    if_inactive = change_kind(was_active=False, was_linked=True, active=False if active is None else active)
    return _user_update(scope, user_id, "put", resource, active, None, if_active, if_inactive)


def set_user_active(scope: Scope, user_id: UUID, active: bool) -> OneStatement:
    """The fast path of a PATCH without If-Match that only sets `active`: saved unread, if the user has
    the other value and no manager; writes nothing otherwise."""
    change = change_kind(was_active=not active, was_linked=True, active=active)
    return _user_update(scope, user_id, "active", None, active, None, change, change)


def set_user_texts(scope: Scope, user_id: UUID, texts: dict[str, Any]) -> OneStatement:
    """The fast path of a PATCH without If-Match that only sets single text attributes
    (scim/patch.py:patched_texts): saved unread, if the user has no manager and the values change it;
    writes nothing otherwise."""
    if_active = change_kind(was_active=True, was_linked=True, active=True)
    if_inactive = change_kind(was_active=False, was_linked=True, active=False)
    return _user_update(scope, user_id, "texts", texts, None, None, if_active, if_inactive)


def _user_update(
    scope: Scope,
    user_id: UUID,
    kind: Kind,
    resource: dict[str, Any] | None,
    active: bool | None,
    version: int | None,
    change_if_active: ChangeKind,
    change_if_inactive: ChangeKind,
) -> OneStatement:
    """An update batched with the updates that arrive with it, when the app has a batcher."""
    update = UserUpdate(
        scope.tenant_id,
        user_id,
        kind,
        resource,
        active,
        version,
        change_if_active,
        change_if_inactive,
        scope.request_id,
    )
    return OneStatement(
        ResourceType.USER, lambda pool: user_updates.update_user(scope.user_updates or pool, update)
    )


def deleted_user(scope: Scope, user_id: UUID) -> OneStatement:
    """The fast path of a DELETE without If-Match: the user unlinked, out of its groups, and its "delete"
    row, in one statement; writes nothing if the tenant has no such linked user."""
    delete = UserDelete(scope.tenant_id, user_id, scope.request_id)
    return OneStatement(
        ResourceType.USER, lambda pool: user_deletes.delete_linked_user(scope.user_deletes or pool, delete)
    )


async def _in_transaction(scope: Scope, steps: Callable[[Transaction], Awaitable[T]]) -> T:
    async with transaction(scope.pool) as conn:
        tx = Transaction(conn, scope)
        result = await steps(tx)
    _wake(scope, tx.touched)  # once the outbox rows have committed
    return result


async def _retrying(attempt: Callable[[], Awaitable[T]], *, tries: int) -> T:
    for _ in range(tries - 1):
        try:
            return await attempt()
        except CONFLICTS as exc:
            log.warning("write aborted by PostgreSQL (%s), running it again", exc.sqlstate)
    return await attempt()


def _wake(scope: Scope, wakeups: list[Wakeup]) -> None:
    if scope.written is not None:
        scope.written.extend(w.outbox_id for w in wakeups)
    # In the background: the response does not wait for Redis (see `write`).
    if wakeups:
        waker_for(
            scope.redis, queue_name=scope.settings.queue_name, wait=scope.settings.enqueue_timeout_seconds
        ).wake(wakeups)
