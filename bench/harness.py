"""What every benchmark here shares: its own database, queue and Redis keys, its own processes, a client.

A `Run` owns one benchmark run's resources on the machine's PostgreSQL and Redis and removes them at the
end: the database `scimsvc_bench_<run>`, the Redis keys under `scimsvc:bench:<run>:` (the arq queue and
the rate-limit buckets live there) and the arq job keys of jobs still queued. Processes it starts
(`scimsvc serve`, `scimsvc worker`, anything else) are stopped by pid. Everything listens on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import os
import resource
import secrets
import socket
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import redis.asyncio as aioredis

from scimsvc.store.migrations import migrate
from scimsvc.tools.loadtest.stats import percentile

SERVER = os.environ.get("SCIMSVC_BENCH_SERVER_URL", "postgresql://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("SCIMSVC_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
PENDING = "SELECT count(*) FROM outbox WHERE tenant_id = $1::uuid AND applied_at IS NULL"

# Users with every exported attribute set, written in one statement: no HTTP, no worker.
SEED_USERS = """
INSERT INTO users (tenant_id, user_name, display_name, active, resource, license, provisioning_state)
SELECT $1::uuid, 'user' || i || '@bench.example', 'User, "' || i || '"', true,
       jsonb_build_object(
           'userName', 'user' || i || '@bench.example',
           'displayName', 'User, "' || i || '"',
           'name', jsonb_build_object('givenName', 'Given' || i, 'familyName', 'Family' || i),
           'userType', 'Employee',
           'roles', jsonb_build_array(jsonb_build_object('value', 'member', 'primary', true)),
           'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User',
               jsonb_build_object('employeeNumber', i::text, 'department', 'Dept ' || (i % 50))
       ),
       CASE WHEN i % 3 = 0 THEN 'full' ELSE 'free_restricted' END, 'provisioned'
FROM generate_series(1, $2) AS i
"""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds_of(pid: int | str) -> float:
    """User plus system CPU time a process has used so far (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds() -> float:
    """CPU time used so far by every PostgreSQL process on the machine (backends, WAL writer, ...)."""
    total = 0.0
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/comm") as f:
                if not f.read().startswith("postgres"):
                    continue
        except OSError:  # not a process, or gone
            continue
        total += cpu_seconds_of(pid)
    return total


BACKENDS = """
SELECT pid FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'
  AND ($1::text IS NULL OR application_name = $1)
"""


async def backends_cpu_seconds(
    conn: asyncpg.Connection, application_name: str | None = None
) -> dict[int, float]:
    """CPU seconds used so far by each PostgreSQL backend serving this run's database (but `conn`'s own),
    those of one `application_name` only if given: the share of PostgreSQL's CPU one process's queries
    cost, which other databases' load on the machine does not blur."""
    return {r["pid"]: cpu_seconds_of(r["pid"]) for r in await conn.fetch(BACKENDS, application_name)}


def backends_cpu_spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds the backends spent between two `backends_cpu_seconds` (a new backend from its start)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def with_application_name(url: str, name: str) -> str:
    """A database URL whose connections carry `application_name` (asyncpg passes it on as a setting)."""
    return f"{url}{'&' if '?' in url else '?'}application_name={name}"


def own_cpu_seconds() -> float:
    """CPU time this process (the load generator) has used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_snapshot(procs: dict[str, Proc | None]) -> dict[str, float]:
    """CPU seconds used so far by each named process, all of PostgreSQL, and this load generator."""
    return {
        **{name: proc.cpu_seconds() for name, proc in procs.items() if proc is not None},
        "postgres": postgres_cpu_seconds(),
        "client": own_cpu_seconds(),
    }


def cpu_ms_per_request(before: dict[str, float], after: dict[str, float], requests: int) -> dict[str, float]:
    """Milliseconds of CPU per request each part spent between two snapshots, and their sum."""
    parts = {name: 1000 * (after[name] - before[name]) / requests for name in before}
    return {**{name: round(ms, 3) for name, ms in parts.items()}, "total": round(sum(parts.values()), 3)}


def proc_status(pid: int, field_name: str) -> float:
    """A /proc/<pid>/status memory field (VmHWM, VmRSS) in MB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb(pid: int) -> float:
    """Peak resident set size of a process (VmHWM) in MB."""
    return proc_status(pid, "VmHWM")


@dataclass
class Proc:
    """A process this run started: its pid, peak memory and CPU time."""

    name: str
    process: asyncio.subprocess.Process

    @property
    def pid(self) -> int:
        return self.process.pid

    def peak_rss_mb(self) -> float:
        return peak_rss_mb(self.pid)

    def rss_mb(self) -> float:
        return proc_status(self.pid, "VmRSS")

    def reset_peak(self) -> None:
        """Reset VmHWM to the current RSS (Linux clear_refs 5), so the next peak is one workload's."""
        try:
            with open(f"/proc/{self.pid}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass  # not allowed here: the peak is then the process's since it started

    def cpu_seconds(self) -> float:
        return cpu_seconds_of(self.pid)

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 15)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


@dataclass
class Load:
    """What `drive` measured: requests, seconds, sorted latencies and non-2xx answers."""

    requests: int
    seconds: float
    latencies: list[float]
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def per_s(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def figures(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "per_s": round(self.per_s, 1),
            "p50_ms": round(percentile(self.latencies, 50) * 1000, 2),
            "p99_ms": round(percentile(self.latencies, 99) * 1000, 2),
            "errors": self.errors,
        }


Request = tuple[str, str, bytes | None]  # method, url, body


async def drive(
    http: aiohttp.ClientSession,
    requests: Callable[[int], Request],
    count: int,
    *,
    concurrency: int,
    headers: dict[str, str],
    ok: Callable[[int], bool] = lambda status: 200 <= status < 300,
    seconds: float | None = None,
) -> Load:
    """Send requests(0..count-1) from `concurrency` clients at once; time each round trip. With
    `seconds`, no request starts after that long (the Load counts those sent)."""
    numbers = iter(range(count))
    deadline = None if seconds is None else time.perf_counter() + seconds
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0

    async def client() -> None:
        nonlocal errors
        for i in numbers:
            if deadline is not None and time.perf_counter() > deadline:
                return
            method, url, body = requests(i)
            start = time.perf_counter()
            try:
                async with http.request(method, url, data=body, headers=headers) as resp:
                    await resp.read()
                    status = resp.status
            except aiohttp.ClientError:
                status = 0
            latencies.append(time.perf_counter() - start)
            statuses[status] = statuses.get(status, 0) + 1
            if not ok(status):
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return Load(len(latencies), time.perf_counter() - started, sorted(latencies), errors, statuses)


async def wait_http(http: aiohttp.ClientSession, url: str, *, seconds: float = 30.0) -> None:
    """Wait until `url` answers at all (any status)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            async with http.get(url) as resp:
                await resp.read()
                return
        except (aiohttp.ClientError, OSError):
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} did not answer in {seconds} s")


class Run:
    """One benchmark run's database, Redis keys and processes (async context manager)."""

    def __init__(self, *, rate_limit: bool = False) -> None:
        self.run = uuid.uuid4().hex[:8]
        self.database = f"scimsvc_bench_{self.run}"
        self.db_url = f"{SERVER}/{self.database}"
        self.prefix = f"scimsvc:bench:{self.run}"
        self.queue = f"{self.prefix}:queue"
        self.admin_key = secrets.token_urlsafe(24)
        self.port = free_port()
        self.env = {
            **os.environ,
            "SCIMSVC_DATABASE_URL": self.db_url,
            "SCIMSVC_REDIS_URL": REDIS_URL,
            "SCIMSVC_QUEUE_NAME": self.queue,
            "SCIMSVC_RATE_LIMIT_PREFIX": f"{self.prefix}:rl",
            "SCIMSVC_RATE_LIMIT_ENABLED": "true" if rate_limit else "false",
            "SCIMSVC_ADMIN_KEY": self.admin_key,
            "SCIMSVC_LOG_LEVEL": "WARNING",
            "SCIMSVC_PUBLIC_URL": f"http://127.0.0.1:{self.port}",
        }
        self.root = f"http://127.0.0.1:{self.port}"
        self.scim_base = f"{self.root}/scim/v2"
        self.admin_headers = {"Authorization": f"Bearer {self.admin_key}"}
        self.procs: list[Proc] = []
        self.serve: Proc | None = None
        self.workers: list[Proc] = []
        self.redis = aioredis.from_url(REDIS_URL)

    async def __aenter__(self) -> Run:
        await migrate(self.db_url)
        self.conn: asyncpg.Connection = await asyncpg.connect(self.db_url)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop_workers(wait_idle=False)
        for proc in reversed(self.procs):
            await proc.stop()
        await self.conn.close()
        admin = await asyncpg.connect(f"{SERVER}/postgres")
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        finally:
            await admin.close()
        await forget_keys(self.redis, self.prefix)
        await self.redis.aclose()

    async def start(
        self,
        name: str,
        *argv: str,
        env: dict[str, str] | None = None,
        quiet: bool = True,
        stderr: Any = None,
        stdout: Any = None,
        cwd: str | None = None,
    ) -> Proc:
        """Start a process of this run (stopped at the end), in `cwd` if given; quiet: its output goes to
        /dev/null; `stderr` and `stdout`, files, take its output whatever `quiet` says."""
        out = asyncio.subprocess.DEVNULL if quiet else None
        process = await asyncio.create_subprocess_exec(
            *argv,
            env=env or self.env,
            stdout=out if stdout is None else stdout,
            stderr=out if stderr is None else stderr,
            cwd=cwd,
        )
        proc = Proc(name, process)
        self.procs.append(proc)
        return proc

    async def start_serve(
        self, http: aiohttp.ClientSession, *, wrapper: Sequence[str] = (), quiet: bool = False
    ) -> Proc:
        """`scimsvc serve` on this run's port, once it answers /ops/health; `wrapper`: a script and its
        arguments that run the module given after them (bench/profiled.py); `quiet` as `start`'s."""
        module = ("-m", "scimsvc.cli") if not wrapper else (*wrapper, "scimsvc.cli")
        self.serve = await self.start(
            "web", sys.executable, *module, "serve", "--port", str(self.port), quiet=quiet
        )
        await wait_http(http, f"{self.root}/ops/health")
        return self.serve

    async def start_workers(self, count: int = 1) -> list[Proc]:
        for _ in range(count):
            self.workers.append(
                await self.start("worker", sys.executable, "-m", "scimsvc.cli", "worker", quiet=False)
            )
        return self.workers

    async def queue_idle(self, seconds: float = 5.0) -> None:
        """Wait (up to `seconds`) until the workers have run every queued job."""
        deadline = time.monotonic() + seconds
        while self.workers and time.monotonic() < deadline and await self.redis.zcard(self.queue):  # noqa: ASYNC110
            await asyncio.sleep(0.05)

    async def stop_workers(self, *, wait_idle: bool = True) -> None:
        if wait_idle:
            await self.queue_idle()  # no job is cut off mid-way
        for proc in self.workers:
            await proc.stop()
            self.procs.remove(proc)
        self.workers = []

    async def tenant(
        self, http: aiohttp.ClientSession, *, rate_limit: dict[str, Any] | None = None, seats: int = 0
    ) -> tuple[str, str]:
        """A tenant made through the admin API; returns (tenant id, SCIM token)."""
        body: dict[str, Any] = {"name": f"bench-{uuid.uuid4().hex[:6]}", "seats": seats}
        body["rate_limit"] = rate_limit or {"preset": "off"}
        async with http.post(f"{self.root}/admin/v1/tenants", json=body, headers=self.admin_headers) as resp:
            assert resp.status == 201, await resp.text()
            tid = (await resp.json())["id"]
        async with http.post(
            f"{self.root}/admin/v1/tenants/{tid}/scim/tokens", headers=self.admin_headers
        ) as resp:
            assert resp.status == 201, await resp.text()
            token = (await resp.json())["token"]
        return tid, token

    async def team(self, http: aiohttp.ClientSession, tenant_id: str, name: str) -> str:
        url = f"{self.root}/admin/v1/tenants/{tenant_id}/teams"
        async with http.post(url, json={"name": name}, headers=self.admin_headers) as resp:
            assert resp.status == 201, await resp.text()
            return str((await resp.json())["id"])

    async def seed_users(self, tenant_id: str, count: int) -> list[str]:
        """`count` users written by one INSERT ... SELECT (no worker needed); returns their ids in order."""
        await self.conn.execute(SEED_USERS, tenant_id, count)
        # As autovacuum would soon after: statistics, and the visibility map index-only scans rely on.
        await self.conn.execute("VACUUM ANALYZE users")
        rows = await self.conn.fetch(
            "SELECT id::text FROM users WHERE tenant_id = $1::uuid ORDER BY created_at, id", tenant_id
        )
        return [r[0] for r in rows]

    async def wait_applied(self, tenant_id: str, *, seconds: float = 300.0) -> None:
        """Wait until no outbox row of the tenant is unapplied."""
        deadline = time.monotonic() + seconds
        while await self.conn.fetchval(PENDING, tenant_id):  # noqa: ASYNC110
            if time.monotonic() > deadline:
                raise RuntimeError(f"outbox of {tenant_id} not applied after {seconds} s")
            await asyncio.sleep(0.02)


async def forget_keys(redis: aioredis.Redis, prefix: str) -> None:
    """Remove a run's Redis keys: everything under `prefix` and the arq jobs still in its queue.

    Results of jobs that ran live outside the prefix and expire by themselves (arq's keep_result).
    """
    keys = [b"arq:job:" + j for j in await redis.zrange(f"{prefix}:queue", 0, -1)]
    keys += [k async for k in redis.scan_iter(match=f"{prefix}:*")]
    if keys:
        await redis.delete(*keys)


def scim_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}


async def sample_while(
    work: Awaitable[Any], probe: Callable[[], float], *, every: float = 1.0
) -> tuple[Any, list[float]]:
    """Run `work` and call `probe` every `every` seconds meanwhile; returns (its result, the samples)."""
    samples: list[float] = []
    task = asyncio.ensure_future(work)
    while not task.done():
        samples.append(probe())
        await asyncio.wait({task}, timeout=every)
    samples.append(probe())
    return task.result(), samples


BASELINE_APP = Path(__file__).resolve().parent / "baseline_app.py"


async def start_baseline(
    run: Run, http: aiohttp.ClientSession, *, wrapper: Sequence[str] = ()
) -> tuple[Proc, str]:
    """bench/baseline_app.py on a port of its own, in the run's database: its process and root URL;
    `wrapper`: a script and its arguments that run the script given after them (bench/profiled.py)."""
    port = free_port()
    proc = await run.start(
        "baseline",
        sys.executable,
        *wrapper,
        str(BASELINE_APP),
        "--port",
        str(port),
        "--database-url",
        run.db_url,
    )
    root = f"http://127.0.0.1:{port}"
    await wait_http(http, f"{root}/Users?count=1")
    return proc, root
