"""Fault tests forget the tenants they made.

Their processes, the private redis-server, the PostgreSQL proxy and the waits are tests/conftest.py's
(`processes`, `own_redis`, `pg_proxy`, `wait_until`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest


@pytest.fixture(autouse=True)
async def forget_tenants(database_url: str) -> AsyncIterator[None]:
    """Delete the tenants a fault test made (with their users, rows and audit, by cascade) at its end.

    The fault tests write tens of thousands of fresh rows; left in the run's database they would skew the
    planner statistics that later tests read (EXPLAIN checks of which index a filter uses).
    """
    conn = await asyncpg.connect(database_url)
    try:
        before = {r[0] for r in await conn.fetch("SELECT id FROM tenants")}
        yield
        made = [r[0] for r in await conn.fetch("SELECT id FROM tenants") if r[0] not in before]
        await conn.execute("DELETE FROM tenants WHERE id = ANY($1::uuid[])", made)
    finally:
        await conn.close()
