"""The one way to write: a transaction that records outbox rows and, after commit, wakes the worker."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
from arq.connections import ArqRedis

from scimsvc.services.wakeups import Wakeup, waker_for
from scimsvc.settings import Settings
from scimsvc.store import outbox
from scimsvc.store.db import transaction
from scimsvc.store.new_users import NewUserInserts

log = logging.getLogger(__name__)
T = TypeVar("T")
# PostgreSQL aborted the transaction to break a deadlock, or on a serialization failure: nothing of it was
# written, and run again it sees what the other transaction did.
CONFLICTS = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)


@dataclass(frozen=True)
class Scope:
    """Who is writing and with what: the app's resources plus the caller's tenant and request id."""

    pool: asyncpg.Pool
    redis: ArqRedis
    settings: Settings
    tenant_id: UUID
    request_id: str | None = None
    allowed_domains: tuple[str, ...] = ()  # the tenant's allowlist; empty allows every domain
    new_users: NewUserInserts | None = None  # the app's batcher of new-user inserts; None: one by one


@dataclass
class Transaction:
    """An open write transaction; `record` adds the outbox row for each change it makes."""

    conn: asyncpg.Connection
    scope: Scope
    touched: list[Wakeup] = field(default_factory=list)

    async def record(
        self, resource_type: str, resource_id: UUID, change: str, payload: dict[str, Any] | None = None
    ) -> None:
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


@asynccontextmanager
async def write(scope: Scope) -> AsyncIterator[Transaction]:
    """Run a write and its outbox rows in one transaction, then wake the worker for them.

    The wake-up is sent in the background: the response does not wait for Redis, as the committed outbox
    rows are the record and the worker's sweeper re-enqueues any wake-up that gets lost.
    """
    async with transaction(scope.pool) as conn:
        tx = Transaction(conn, scope)
        yield tx
    _wake(scope, tx.touched)


async def retrying(attempt: Callable[[], Awaitable[T]], *, tries: int = 3) -> T:
    """`attempt()`, a whole write transaction, run again when PostgreSQL aborted it as a `CONFLICTS`."""
    for _ in range(tries - 1):
        try:
            return await attempt()
        except CONFLICTS as exc:
            log.warning("write aborted by PostgreSQL (%s), running it again", exc.sqlstate)
    return await attempt()


async def write_one(
    scope: Scope, resource_type: str, statement: Callable[[asyncpg.Pool], Awaitable[asyncpg.Record | None]]
) -> asyncpg.Record | None:
    """A write that is a single statement saving a resource and its outbox row; then wake the worker.

    One statement is atomic without a transaction, so the write still commits with its outbox row. The
    statement returns the resource's row with `id` and `outbox_id`, or None when it wrote nothing.
    """
    row = await statement(scope.pool)
    if row is not None:
        _wake(scope, [Wakeup(scope.tenant_id, resource_type, row["id"], row["outbox_id"])])
    return row


def _wake(scope: Scope, wakeups: list[Wakeup]) -> None:
    # In the background: the response does not wait for Redis (see `write`).
    if wakeups:
        waker_for(
            scope.redis, queue_name=scope.settings.queue_name, wait=scope.settings.enqueue_timeout_seconds
        ).wake(wakeups)
