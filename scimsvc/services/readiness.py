"""Readiness of a web replica: PostgreSQL reachable with every migration applied (see `/ops/ready`)."""

from __future__ import annotations

import asyncio

import asyncpg

from scimsvc.store.db import unavailable
from scimsvc.store.migrations import pending_migrations


async def _postgres(pool: asyncpg.Pool) -> str:
    async with pool.acquire() as conn:
        pending = await pending_migrations(conn)
    return "ok" if not pending else f"migrations pending: {', '.join(m.name for m in pending)}"


async def postgres_check(pool: asyncpg.Pool, *, within_seconds: float) -> str:
    """`ok`, or why this replica cannot take writes: migrations pending, PostgreSQL unreachable or failing."""
    try:
        return await asyncio.wait_for(_postgres(pool), within_seconds)
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready", said plainly
        return f"{'unreachable' if unavailable(exc) else 'failed'}: {exc!r}"
