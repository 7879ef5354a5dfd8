"""Fixtures on the real services: a fresh PostgreSQL database per run, run-unique Redis keys."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import redis.asyncio as aioredis
from arq.worker import Worker

from scimsvc.app import create_app
from scimsvc.settings import Settings
from scimsvc.store.migrations import migrate
from worker.settings import worker_settings

RUN_ID = uuid.uuid4().hex[:12]
SERVER_URL = os.environ.get("SCIMSVC_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("SCIMSVC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ADMIN_KEY = "test-admin-key-" + RUN_ID
PUBLIC_URL = "http://scim.test"
QUEUE_NAME = f"scimsvc:test:{RUN_ID}:queue"


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


async def _drop_database(url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    conn = await asyncpg.connect(with_database(url, "postgres"))
    try:
        quoted = await conn.fetchval("SELECT quote_ident($1)", name)
        await conn.execute(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")
    finally:
        await conn.close()


async def _forget_redis_keys() -> None:
    client = aioredis.from_url(REDIS_URL)
    try:
        job_ids = await client.zrange(QUEUE_NAME, 0, -1)
        keys = [b"arq:job:" + j for j in job_ids]
        async for key in client.scan_iter(match=f"scimsvc:test:{RUN_ID}:*"):
            keys.append(key)
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A database made for this test run, migrated, dropped at the end."""
    url = with_database(SERVER_URL, f"scimsvc_test_{RUN_ID}")
    asyncio.run(migrate(url))
    yield url
    asyncio.run(_drop_database(url))
    asyncio.run(_forget_redis_keys())


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=REDIS_URL,
        admin_key=ADMIN_KEY,
        public_url=PUBLIC_URL,
        queue_name=QUEUE_NAME,
        db_pool_min=1,
        db_pool_max=5,
        sweep_after_seconds=0,
        rate_limit_prefix=f"scimsvc:test:{RUN_ID}:rl",
        auth_failures_per_minute=100_000,  # every test fails auth from 127.0.0.1; tests of the limit lower it
    )


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings) -> Any:
    return await aiohttp_client(create_app(settings))


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection for asserting on database state."""
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}"}


@dataclass
class Tenant:
    id: str
    token: str
    token_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Content-Type": "application/scim+json"}


async def make_tenant(client: Any, **settings: Any) -> Tenant:
    resp = await client.post(
        "/admin/v1/tenants", json={"name": "t-" + uuid.uuid4().hex[:6], **settings}, headers=ADMIN_HEADERS
    )
    assert resp.status == 201, await resp.text()
    tenant_id = (await resp.json())["id"]
    resp = await client.post(f"/admin/v1/tenants/{tenant_id}/scim/tokens", headers=ADMIN_HEADERS)
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    return Tenant(id=tenant_id, token=body["token"], token_id=body["id"])


@pytest.fixture
async def tenant(client: Any) -> Tenant:
    return await make_tenant(client)


@pytest.fixture
def new_tenant(client: Any) -> Callable[..., Awaitable[Tenant]]:
    return lambda **settings: make_tenant(client, **settings)


def user_body(user_name: str, **extra: Any) -> dict[str, Any]:
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "emails": [{"value": user_name, "type": "work", "primary": True}],
        "active": True,
        **extra,
    }


async def run_worker(settings: Settings) -> Worker:
    """Run a real arq worker in burst mode until the queue is empty."""
    worker = Worker(**worker_settings(settings), burst=True, handle_signals=False, poll_delay=0.05)
    try:
        await worker.main()
    finally:
        await worker.close()
    return worker


def unique_email(prefix: str = "user", domain: str = "example.com") -> str:
    return f"{prefix}.{uuid.uuid4().hex[:8]}@{domain}"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def post_user(
    client: Any, tenant: Tenant, user_name: str | None = None, **extra: Any
) -> dict[str, Any]:
    """POST a user (a unique email unless given) and return the created resource."""
    resp = await client.post(
        "/scim/v2/Users", json=user_body(user_name or unique_email(), **extra), headers=tenant.headers
    )
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def create_team(client: Any, tenant: Tenant, name: str) -> dict[str, Any]:
    """Create a team with the Teams API and return it."""
    resp = await client.post(
        f"/admin/v1/tenants/{tenant.id}/teams", json={"name": name}, headers=ADMIN_HEADERS
    )
    assert resp.status == 201, await resp.text()
    return await resp.json()


class OwnRedis:
    """A redis-server of the test's own, on its own port, that the test may kill and restart."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("own redis-server did not start")

    def stop(self) -> None:
        """Kill the server this test started (never a shared one)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None


WAITING_ON_LOCKS = """
SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'
"""


async def hold_user_name(database_url: str, tenant: Tenant, user_name: str) -> tuple[asyncpg.Connection, Any]:
    """Another writer mid-insert: a connection whose open transaction holds `user_name` uncommitted.
    Returns (connection, transaction); roll back and close it when done."""
    conn = await asyncpg.connect(database_url)
    tx = conn.transaction()
    await tx.start()
    await conn.execute(
        "INSERT INTO users (tenant_id, user_name, resource) VALUES ($1::uuid, $2, '{}')", tenant.id, user_name
    )
    return conn, tx
