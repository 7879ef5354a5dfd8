"""The one way to write: a transaction that records outbox rows and, after commit, wakes the worker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg
from arq.connections import ArqRedis

from scimsvc.jobs import enqueue_apply
from scimsvc.settings import Settings
from scimsvc.store import outbox


@dataclass(frozen=True)
class Scope:
    """Who is writing and with what: the app's resources plus the caller's tenant and request id."""

    pool: asyncpg.Pool
    redis: ArqRedis
    settings: Settings
    tenant_id: UUID
    request_id: str | None = None
    allowed_domains: tuple[str, ...] = ()  # the tenant's allowlist; empty allows every domain


@dataclass
class Transaction:
    """An open write transaction; `record` adds the outbox row for each change it makes."""

    conn: asyncpg.Connection
    scope: Scope
    touched: list[tuple[str, UUID]] = field(default_factory=list)

    async def record(
        self, resource_type: str, resource_id: UUID, change: str, payload: dict[str, Any] | None = None
    ) -> None:
        await outbox.record_change(
            self.conn,
            tenant_id=self.scope.tenant_id,
            resource_type=resource_type,
            resource_id=resource_id,
            change=change,
            payload=payload,
            request_id=self.scope.request_id,
        )
        if (resource_type, resource_id) not in self.touched:
            self.touched.append((resource_type, resource_id))


@asynccontextmanager
async def write(scope: Scope) -> AsyncIterator[Transaction]:
    """Run a write and its outbox rows in one transaction, then enqueue a job per touched resource."""
    async with scope.pool.acquire() as conn:
        tx = Transaction(conn, scope)
        async with conn.transaction():
            yield tx
    for resource_type, resource_id in tx.touched:
        await enqueue_apply(
            scope.redis,
            queue_name=scope.settings.queue_name,
            resource_type=resource_type,
            resource_id=resource_id,
            wait=scope.settings.enqueue_timeout_seconds,
        )
