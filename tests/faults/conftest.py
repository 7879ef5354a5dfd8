"""Fault-test helpers: a fault-injecting proxy in front of PostgreSQL, and tenants forgotten after each test.

Processes of a test's own, the private redis-server and the waits are tests/conftest.py's (`processes`,
`own_redis`, `wait_until`); they are imported here too for the fault tests that name them from this module.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from tests.conftest import Processes, free_port, service_env, wait_until
from tests.faults.proxy import FaultProxy

__all__ = ["Processes", "proxied_url", "service_env", "wait_until"]


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


@pytest.fixture
async def pg_proxy(database_url: str) -> AsyncIterator[FaultProxy]:
    """A fault-injecting proxy in front of PostgreSQL (`proxied_url` gives the database URL through it)."""
    parts = urlsplit(database_url)
    proxy = FaultProxy(parts.hostname or "127.0.0.1", parts.port or 5432, free_port())
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()


def proxied_url(proxy: FaultProxy, database_url: str) -> str:
    """The database URL with its host and port replaced by the proxy's."""
    parts = urlsplit(database_url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{proxy.address}" if userinfo else proxy.address
    return urlunsplit(parts._replace(netloc=netloc))
