"""Fault-test helpers: processes of the test's own (started and stopped by pid), waits with deadlines,
a private redis-server and a fault-injecting proxy in front of PostgreSQL."""

from __future__ import annotations

import asyncio
import inspect
import os
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import pytest

from tests.conftest import QUEUE_NAME, REDIS_URL, RUN_ID, OwnRedis, free_port
from tests.faults.proxy import FaultProxy


async def wait_until(condition: Callable[[], Any], *, within: float, what: str, every: float = 0.1) -> Any:
    """Poll `condition` (plain or async) until it is truthy; fail naming `what` after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out after {within} s waiting for {what}"
        await asyncio.sleep(every)


def service_env(database_url: str, *, redis_url: str = REDIS_URL, **extra: str) -> dict[str, str]:
    """The environment of a `scimsvc serve`/`worker` subprocess on the test's database and queue."""
    return {
        **os.environ,
        "SCIMSVC_DATABASE_URL": database_url,
        "SCIMSVC_REDIS_URL": redis_url,
        "SCIMSVC_QUEUE_NAME": QUEUE_NAME,
        "SCIMSVC_LOG_LEVEL": "WARNING",
        "SCIMSVC_RATE_LIMIT_PREFIX": f"scimsvc:test:{RUN_ID}:rl:faults",
        **extra,
    }


class Processes:
    """`scimsvc` subprocesses this test started; stopped (and only they) by pid at the end."""

    def __init__(self) -> None:
        self.procs: list[asyncio.subprocess.Process] = []

    async def start(self, *args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "scimsvc.cli",
            *args,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        self.procs.append(proc)
        return proc

    async def worker(self, env: dict[str, str]) -> asyncio.subprocess.Process:
        return await self.start("worker", env=env)

    async def serve(self, env: dict[str, str]) -> str:
        """Start `scimsvc serve` on a free port; returns its base URL once it answers /ops/health."""
        port = free_port()
        proc = await self.start("serve", "--port", str(port), env=env)
        base = f"http://127.0.0.1:{port}"

        async def healthy() -> bool:
            assert proc.returncode is None, "scimsvc serve exited"
            try:
                async with aiohttp.ClientSession() as http, http.get(f"{base}/ops/health") as resp:
                    return resp.status == 200
            except aiohttp.ClientError:
                return False

        await wait_until(healthy, within=30, what="scimsvc serve to answer", every=0.05)
        return base

    @staticmethod
    async def kill(proc: asyncio.subprocess.Process) -> None:
        """SIGKILL one of our processes by its pid and reap it."""
        if proc.returncode is None:
            os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()

    async def stop_all(self) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                os.kill(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                await self.kill(proc)


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
async def processes() -> AsyncIterator[Processes]:
    procs = Processes()
    try:
        yield procs
    finally:
        await procs.stop_all()


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    """A private redis-server on a free port (never the shared one), killed at the end."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed: the Redis faults need a private server")
    server = OwnRedis()
    server.start()
    yield server
    server.stop()


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
