"""Fixtures on the real services: a fresh PostgreSQL database per run, run-unique Redis keys; waits with
deadlines; processes of a test's own (any `scimsvc` command, a private redis-server) stopped by pid, and a
fault-injecting proxy in front of PostgreSQL.

Everything here holds on a slow, busy machine: a test waits for the condition it needs (a row, a lock
wait, an answer) with a deadline that only bounds a hang, never for a fixed time.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email
import inspect
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import hypothesis
import pytest
import redis.asyncio as aioredis
from aiosmtpd.controller import Controller
from arq.connections import ArqRedis
from arq.worker import Worker

from scimsvc.settings import Settings
from scimsvc.store.migrations import migrate
from scimsvc.web.app import create_app
from tests.faults.proxy import FaultProxy
from worker.settings import worker_settings

RUN_ID = uuid.uuid4().hex[:12]
SERVER_URL = os.environ.get("SCIMSVC_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("SCIMSVC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ADMIN_KEY = "test-admin-key-" + RUN_ID
PUBLIC_URL = "http://scim.test"
QUEUE_NAME = f"scimsvc:test:{RUN_ID}:queue"

# An example's run time says nothing about its correctness, and on a busy machine any example can be slow.
hypothesis.settings.register_profile(
    "scimsvc", deadline=None, suppress_health_check=[hypothesis.HealthCheck.too_slow]
)
hypothesis.settings.load_profile("scimsvc")


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


# A test machine runs the suite beside other work: a 50,000-member push that takes 0.3 s alone may take
# several seconds there. The stall tests (tests/faults/test_database_stall.py) set their own short bound.
DB_WAIT_SECONDS = 60


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
        db_wait_seconds=DB_WAIT_SECONDS,
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


def cli_main(argv: list[str]) -> int:
    """`scimsvc.cli.main(argv)` in this process, the root logger put back afterwards.

    `main` points the root logger at the stderr of the moment, which under pytest is this test's capture
    file, closed once the test ends: every later log line (of any test, in any thread) would print a
    "Logging error" traceback instead.
    """
    from scimsvc.cli import main

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        return main(argv)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def unique_email(prefix: str = "user", domain: str = "example.com") -> str:
    return f"{prefix}.{uuid.uuid4().hex[:8]}@{domain}"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_outside_ephemeral(taken: Collection[int] = ()) -> int:
    """A free TCP port on 127.0.0.1, not in `taken`, below the range the kernel picks outgoing connections'
    ports from: a server of the test that is killed and started again on it finds it still free."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    while True:
        port = random.randrange(max(low - 12000, 1024), low)
        if port in taken:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


async def post_user(
    client: Any, tenant: Tenant, user_name: str | None = None, **extra: Any
) -> dict[str, Any]:
    """POST a user (a unique email unless given) and return the created resource."""
    resp = await client.post(
        "/scim/v2/Users", json=user_body(user_name or unique_email(), **extra), headers=tenant.headers
    )
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def tenant_with_token(http: aiohttp.ClientSession, base: str, name: str) -> tuple[str, str]:
    """A tenant and a SCIM token of it, made through the admin API of a server at `base`."""
    async with http.post(f"{base}/admin/v1/tenants", json={"name": name}, headers=ADMIN_HEADERS) as r:
        assert r.status == 201, await r.text()
        tenant = (await r.json())["id"]
    async with http.post(f"{base}/admin/v1/tenants/{tenant}/scim/tokens", headers=ADMIN_HEADERS) as r:
        assert r.status == 201, await r.text()
        return tenant, (await r.json())["token"]


async def create_team(client: Any, tenant: Tenant, name: str) -> dict[str, Any]:
    """Create a team with the Teams API and return it."""
    resp = await client.post(
        f"/admin/v1/tenants/{tenant.id}/teams", json={"name": name}, headers=ADMIN_HEADERS
    )
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def wait_until(
    condition: Callable[[], Any], *, what: str, within: float = 120, every: float = 0.05
) -> Any:
    """Poll `condition` (plain or async) until it is truthy and return that; fail naming `what` after
    `within` seconds (a bound on a hang, not an expectation of speed)."""
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out after {within} s waiting for {what}"
        await asyncio.sleep(every)


WAITING_FOR = """
SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND $1::int = ANY(pg_blocking_pids(pid))
"""


async def wait_until_blocked_by(
    db: asyncpg.Connection, holder: asyncpg.Connection, request: asyncio.Future[Any], *, what: str
) -> int:
    """Until a backend waits for a lock `holder` holds; its pid. Fails if `request` (the task that should
    be the one waiting) finishes first: then it did not wait."""

    async def blocked() -> int | None:
        assert not request.done(), f"{what}: it finished without waiting ({request})"
        return await db.fetchval(WAITING_FOR, holder.get_server_pid())

    return await wait_until(blocked, what=what)


async def waits_for(db: asyncpg.Connection, waiter: int, holder: int) -> bool:
    """Whether backend `waiter` waits for a lock backend `holder` holds."""
    return await db.fetchval("SELECT $2::int = ANY(pg_blocking_pids($1))", waiter, holder)


def wait_listening(port: int, proc: subprocess.Popen[bytes], what: str, log: Callable[[], str] = str) -> None:
    """Until `proc` (`what`, a server this test started) accepts connections on 127.0.0.1:`port`; fails
    with its exit status and `log()` if it exits, or after 60 s."""
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert proc.poll() is None, f"{what} exited ({proc.returncode}) {log()}"
            assert time.monotonic() < deadline, f"{what} did not listen on port {port} within 60 s"
            time.sleep(0.05)


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
        wait_listening(self.port, self.proc, "own redis-server")

    def stop(self) -> None:
        """Kill the server this test started (never a shared one)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=60)
            self.proc = None


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    """A private redis-server on a free port (never the shared one), killed at the end."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed: this test needs a private server")
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


@pytest.fixture
async def own_database(settings: Settings) -> AsyncIterator[Settings]:
    """Settings on a database and queue of this test only, for figures read across every tenant (the
    whole outbox, the whole queue), which other tests' rows would change."""
    name = f"scimsvc_test_{RUN_ID}_own_{uuid.uuid4().hex[:6]}"
    url = with_database(SERVER_URL, name)
    await migrate(url)
    yield dataclasses.replace(settings, database_url=url, queue_name=f"scimsvc:test:{RUN_ID}:own:{name[-6:]}")
    await _drop_database(url)


def bare_env(**values: str) -> dict[str, str]:
    """This process's environment without any SCIMSVC_* setting (a developer's own), plus `values`."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SCIMSVC_")} | values


def service_env(
    database_url: str, *, redis_url: str = REDIS_URL, queue_name: str = QUEUE_NAME, **extra: str
) -> dict[str, str]:
    """The environment of a `scimsvc serve`/`worker` subprocess on the test's database and queue."""
    return (
        bare_env(
            SCIMSVC_DATABASE_URL=database_url,
            SCIMSVC_REDIS_URL=redis_url,
            SCIMSVC_QUEUE_NAME=queue_name,
            SCIMSVC_LOG_LEVEL="WARNING",
            SCIMSVC_RATE_LIMIT_PREFIX=f"scimsvc:test:{RUN_ID}:rl:procs",
            SCIMSVC_DB_WAIT_SECONDS=str(DB_WAIT_SECONDS),
        )
        | extra
    )


PROCESS_DEADLINE = 120  # seconds a `scimsvc` subprocess gets to start, answer or end: only bounds a hang


def run_scimsvc(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m scimsvc ARGS` to its end (`bare_env()` unless `env` is given); its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "scimsvc", *args],
        env=bare_env() if env is None else env,
        capture_output=True,
        text=True,
        timeout=PROCESS_DEADLINE,
    )


async def answers_health(base: str) -> bool:
    """Whether the `scimsvc serve` at `base` answers /ops/health with 200."""
    try:
        async with aiohttp.ClientSession() as http, http.get(f"{base}/ops/health") as resp:
            return resp.status == 200
    except aiohttp.ClientError:
        return False


class Processes:
    """`scimsvc` subprocesses a test started, stdout and stderr each in a file of its own; stopped (and only
    they) by pid at the end."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: list[asyncio.subprocess.Process] = []
        self._log_of: dict[int, Path] = {}
        self._started = 0  # names each process's log files, also when several start at once

    async def start(self, *args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
        """Start `python -m scimsvc ARGS` (any subcommand) in the background."""
        log = self.logs / f"{args[0]}-{self._started}"
        self._started += 1
        out, err = log.with_suffix(".out"), log.with_suffix(".err")
        with out.open("wb") as stdout, err.open("wb") as stderr:  # the child has its own descriptors
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "scimsvc", *args, env=env, stdout=stdout, stderr=stderr
            )
        self.procs.append(proc)
        self._log_of[proc.pid] = log
        return proc

    def stdout(self, proc: asyncio.subprocess.Process) -> str:
        """What the process wrote to stdout so far."""
        return self._log_of[proc.pid].with_suffix(".out").read_text(errors="replace")

    def stderr(self, proc: asyncio.subprocess.Process) -> str:
        """What the process wrote to stderr so far: its log lines and errors."""
        return self._log_of[proc.pid].with_suffix(".err").read_text(errors="replace")

    def output(self, proc: asyncio.subprocess.Process) -> str:
        """All the process wrote so far: stdout, then stderr."""
        return self.stdout(proc) + self.stderr(proc)

    async def worker(self, env: dict[str, str]) -> asyncio.subprocess.Process:
        return await self.start("worker", env=env)

    async def serve(self, env: dict[str, str]) -> str:
        """Start `scimsvc serve` on a free port; returns its base URL once it answers /ops/health."""
        port = free_port()
        proc = await self.start("serve", "--port", str(port), env=env)
        base = f"http://127.0.0.1:{port}"
        await self.until(proc, lambda: answers_health(base), what="scimsvc serve to answer /ops/health")
        return base

    async def until(
        self, proc: asyncio.subprocess.Process, condition: Callable[[], Any], *, what: str
    ) -> Any:
        """`wait_until(condition)`, failing at once, with the process's stderr, if the process ends first."""

        def running_and() -> Any:
            assert proc.returncode is None, (
                f"exited {proc.returncode} before {what}: {self.stderr(proc)[-3000:]}"
            )
            return condition()

        return await wait_until(running_and, what=f"{what} (stderr: {self._log_of[proc.pid]}.err)")

    async def until_line(self, proc: asyncio.subprocess.Process, text: str) -> None:
        """Until `text` appears in the process's stderr (its log)."""
        await self.until(proc, lambda: text in self.stderr(proc), what=repr(text))

    async def ended(self, proc: asyncio.subprocess.Process) -> int:
        """Wait (bounded) for the process to end by itself; its exit status."""
        try:
            return await asyncio.wait_for(proc.wait(), PROCESS_DEADLINE)
        except TimeoutError:
            pytest.fail(f"still running {PROCESS_DEADLINE} s later: {self.stderr(proc)[-3000:]}")

    @staticmethod
    async def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """`run_scimsvc` off the event loop: the command may talk to a server this loop runs."""
        return await asyncio.to_thread(run_scimsvc, *args, env=env)

    @staticmethod
    async def kill(proc: asyncio.subprocess.Process) -> None:
        """SIGKILL one of our processes by its pid and reap it."""
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):  # it ended; the loop has not heard yet
                os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()

    async def stop(self, proc: asyncio.subprocess.Process) -> int:
        """SIGTERM one of our processes and wait for it (SIGKILL after 60 s); its exit status."""
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):  # it ended; the loop has not heard yet
                os.kill(proc.pid, signal.SIGTERM)
        try:
            return await asyncio.wait_for(proc.wait(), 60)
        except TimeoutError:
            await self.kill(proc)
            return await proc.wait()

    async def stop_all(self) -> None:
        await asyncio.gather(*(self.stop(proc) for proc in self.procs))


@pytest.fixture
async def processes(tmp_path: Path) -> AsyncIterator[Processes]:
    """Start `scimsvc` subprocesses (`service_env` for a server's or worker's environment) and run commands
    to their end; whatever still runs is stopped at the end of the test."""
    procs = Processes(tmp_path)
    try:
        yield procs
    finally:
        await procs.stop_all()


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


# --- a real SMTP server (notices, portal sign-in links) ------------------------------------------------


class Inbox:
    """Every message the server received: its recipients and the parsed message."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], email.message.Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd API
        self.messages.append((list(envelope.rcpt_tos), email.message_from_bytes(envelope.content)))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    """A real SMTP server in this process (aiosmtpd), on a port of its own."""
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


@pytest.fixture
async def own_queue(aiohttp_client, settings):
    """A client and settings with a queue of their own, and an arq client of its Redis, so the test can read
    the jobs in it (`clear_queue` empties it)."""
    own = dataclasses.replace(settings, queue_name=f"{settings.queue_name}:{uuid.uuid4().hex[:8]}")
    client = await aiohttp_client(create_app(own))
    redis = ArqRedis.from_url(REDIS_URL)
    yield client, own, redis
    await clear_queue(redis, own)
    await redis.aclose()


async def clear_queue(redis: ArqRedis, settings: Settings) -> None:
    """Delete the jobs waiting in the settings' queue."""
    job_ids = await redis.zrange(settings.queue_name, 0, -1)
    await redis.delete(settings.queue_name, *(b"arq:job:" + j for j in job_ids))


@contextlib.asynccontextmanager
async def refusing_apply_of(db: asyncpg.Connection, user_id: str) -> AsyncIterator[None]:
    """While inside, the worker's write to this user fails, as a broken row or a bug would make it."""
    user = uuid.UUID(user_id)  # a uuid, so the text below holds nothing else
    await db.execute(
        f"""
        CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.id = '{user}'::uuid AND NEW.provisioning_state <> 'pending' THEN
                RAISE EXCEPTION 'poisoned user';
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER refuse_poison BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION refuse_poison();
        """
    )
    try:
        yield
    finally:
        await db.execute("DROP TRIGGER refuse_poison ON users; DROP FUNCTION refuse_poison()")
