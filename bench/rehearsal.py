"""The scale-out rehearsal: scimsvc on distributed engines, under IdP load, while its parts are killed.

    bench/rehearse [--short] [--duration S] [--concurrency C] [--no-pgbouncer] [--no-cluster] [--json-out F]

Starts, on 127.0.0.1 only and on free ports: a database of its own on the machine's PostgreSQL (dropped at
the end), PgBouncer in transaction mode in front of it (query_timeout and idle_transaction_timeout at 0.8
and 0.5 of SCIMSVC_DB_WAIT_SECONDS, README.md, Running at scale), a 6-node Redis Cluster (3 masters, 3
replicas) for the rate limiter and the page cursors, one plain redis-server for the arq queue, 3 `scimsvc
serve` through PgBouncer (each with its internal port for the operator's paths) and 3 `scimsvc worker`
processes connected to PostgreSQL directly (as compose.yaml runs them), and nginx in front of the serves
(as deploy/nginx.conf: its timeouts, SCIM and the health checks only). Two tenants are made with `scimsvc
tenant create`, each with a budget the load goes over and a team for group traffic (through a serve's
internal port); `scimsvc loadtest` drives the Okta mix at one and the Entra mix at the other, through
nginx, for a bounded time. Meanwhile, one after the other, each after the previous one recovered: a serve
is SIGKILLed and started again, then a worker, then the cluster master holding the Okta tenant's bucket
(its replica takes over; the killed node is started again and rejoins as a replica).

Then it checks, from the loadtests' request logs (`scimsvc loadtest --log`: each request's own
X-Request-Id, status and the user attributes a write set) and the database:
- every acknowledged user write (2xx POST/PUT/PATCH) has exactly one outbox row, applied (a PATCH that
  changes nothing has none; a PUT in flight on the killed serve may have two: nginx replays it); refused
  writes (4xx, 429) have none; the tenant's users are exactly the acknowledged creates plus the unanswered
  creates that landed; each user's displayName and active are what one of the writes that may have
  committed last set; no worker decision was audited twice;
- seats in use never above the tenant's seats (sampled every second, and at the end);
- live workers in /ops/queue = the workers running, once the killed worker's heartbeat is stale;
- admitted credits <= budget + refill over the run, not counting the requests sent while the limiter
  could fail open (from a cluster master's kill to the failover's end, plus the limiter's 5 s pause
  after an error and its 3 s bound on a cluster call: README.md, Redis);
- with the cluster: the rate-limit keys are on it at the end of the load, and neither they nor page
  cursors on the queue's Redis;
- no 5xx, except 503 during a kill and 502 for a POST/PATCH in flight on the killed serve (nginx never
  replays those on another serve);
- each kill recovered within 60 s (the times are in the report).
Statements of the run's database running over a second are sampled into the report: what a 503 waited for.

Prints a short report, writes it as JSON to bench/results/rehearsal-<date>.json (or --json-out) and exits
1 if a check failed. --short (the CI variant, tests/test_rehearsal.py) runs 70 s of load and takes under 3
minutes on 2 cores; the full run 300 s. --no-pgbouncer and --no-cluster leave out one engine (the
database is then reached directly; the limiter uses the queue's Redis and no master is killed).
Every process is stopped by pid at the end, on failure and on Ctrl-C too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import Proc, Run, free_port  # noqa: E402

from scimsvc.ratelimit.levels import WINDOW_SECONDS  # noqa: E402
from scimsvc.ratelimit.limiter import REDIS_RETRY_SECONDS  # noqa: E402
from scimsvc.ratelimit.limiter_redis import CLUSTER_CALL_SECONDS  # noqa: E402

HERE = Path(__file__).resolve().parent
SERVES = 3
WORKERS = 3
CLUSTER_NODES = 6  # 3 masters, 3 replicas
BUDGET = 60_000  # credits per 30 s of each tenant: the load goes over it
SEATS = 25
TEAM = "scimsvc-loadtest"  # the loadtest's default --group: its SCIM group links this team
HEARTBEAT_STALE = 20  # SCIMSVC_WORKER_HEARTBEAT_STALE_SECONDS here: workers beat every 10 s
RECOVERY_BOUND = 60.0  # seconds a kill may take to recover before the check fails
DRAIN_BOUND = 180.0  # seconds the workers get to apply the outbox once the load ends
START_BOUND = 60.0  # seconds an engine gets to start answering
NODE_TIMEOUT_MS = 1000  # cluster-node-timeout: a dead master is failed over within a few seconds
IN_FLIGHT_GRACE = 1.0  # a POST/PATCH sent this soon after a serve's kill may still go to it (kept-alive)
MIXES = (("okta", 11), ("entra", 12))  # mix, seed
QUEUE_VIEW_SERVE = 1  # /ops/queue is read from this serve's internal port: it is never killed
# After the failover a process may still skip Redis for REDIS_RETRY_SECONDS after an error of a call that
# was bounded by CLUSTER_CALL_SECONDS (README.md, Redis): admissions until then may be unmetered.
FAIL_OPEN_AFTER_FAILOVER = REDIS_RETRY_SECONDS + CLUSTER_CALL_SECONDS + 1.0

WRITES = frozenset({"POST /Users", "PUT /Users/{id}", "PATCH /Users/{id}", "PATCH /Groups/{id}"})
USER_WRITES = frozenset({"POST /Users", "PUT /Users/{id}", "PATCH /Users/{id}"})


@dataclass(frozen=True)
class Plan:
    duration: float  # seconds of load
    concurrency: int  # per loadtest
    kills_at: tuple[float, float, float]  # fractions of the duration: serve, worker, cluster master


SHORT = Plan(duration=70, concurrency=6, kills_at=(0.15, 0.4, 0.65))
FULL = Plan(duration=300, concurrency=8, kills_at=(0.2, 0.45, 0.7))


def binary(name: str) -> str | None:
    """The path of an engine's program: on PATH, or where Debian puts it."""
    return shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None
    )


def missing_engines(*, pgbouncer: bool, cluster: bool) -> list[str]:
    """The programs this run needs that the machine lacks."""
    needed = (
        ["nginx", "redis-server"] + (["pgbouncer"] if pgbouncer else []) + (["redis-cli"] if cluster else [])
    )
    return [name for name in needed if binary(name) is None]


def cluster_port() -> int:
    """A loopback port free with its cluster bus port (+10000), both below the kernel's range for outgoing
    connections' ports (32768 and up by default), so that a killed node's ports are still free when it
    is started again."""
    while True:
        port = random.randint(12000, 22000)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
            return port
        except OSError:
            continue


async def wait_for(what: str, condition: Callable[[], Awaitable[Any]], *, within: float) -> Any:
    """Poll `condition` until it returns something truthy and return that; fail naming `what` after that."""
    deadline = time.monotonic() + within
    while True:
        result = await condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not happen within {within:.0f} s")
        await asyncio.sleep(0.2)


async def command(*argv: str, env: dict[str, str] | None = None, within: float = 60.0) -> tuple[int, str]:
    """Run a short command to its end: its exit status and its output (stdout and stderr)."""
    process = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), within)
    except TimeoutError:
        process.kill()
        await process.wait()
        return -1, f"{argv[0]} did not end within {within:.0f} s"
    return process.returncode or 0, out.decode(errors="replace")


def log_file(path: Path) -> IO[bytes]:
    """A process's log file, appended to (a restarted process writes after its predecessor)."""
    return path.open("ab")


def tail(path: Path, chars: int = 1500) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


# --- the Redis Cluster, seen through redis-cli ------------------------------------------------------------


async def redis_cli(port: int, *args: str) -> str | None:
    """One redis-cli command against a node; None when the node does not answer."""
    status, out = await command(binary("redis-cli") or "redis-cli", "-p", str(port), *args, within=5)
    return out if status == 0 and not out.startswith("Could not connect") else None


def cluster_nodes(text: str) -> list[dict[str, Any]]:
    """CLUSTER NODES as dicts: port, flags, master id, link state and the slot ranges a master serves."""
    nodes = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 8:
            continue
        slots = []
        for item in parts[8:]:
            if item.startswith("["):
                continue  # a slot being migrated
            low, _, high = item.partition("-")
            slots.append((int(low), int(high or low)))
        nodes.append(
            {
                "id": parts[0],
                "port": int(parts[1].split("@")[0].rsplit(":", 1)[1]),
                "flags": set(parts[2].split(",")),
                "master": parts[3],
                "link": parts[7],
                "slots": slots,
            }
        )
    return nodes


async def master_of(port: int, slot: int) -> int | None:
    """The port of the master serving `slot`, as the node on `port` sees it (None: none, or no answer)."""
    text = await redis_cli(port, "cluster", "nodes")
    for node in cluster_nodes(text or ""):
        if "master" in node["flags"] and not node["flags"] & {"fail", "fail?"}:
            if any(low <= slot <= high for low, high in node["slots"]):
                return int(node["port"])
    return None


async def cluster_ok(port: int) -> bool:
    info = await redis_cli(port, "cluster", "info")
    return info is not None and "cluster_state:ok" in info


# --- the rehearsal ------------------------------------------------------------------------------------------


class Rehearsal:
    """The engines, processes, tenants, kills and checks of one rehearsal; stopped by `Run` at the end."""

    def __init__(self, run: Run, http: aiohttp.ClientSession, plan: Plan, *, pgbouncer: bool, cluster: bool):
        self.run = run
        self.http = http
        self.plan = plan
        self.with_pgbouncer = pgbouncer
        self.with_cluster = cluster
        self.folder = Path(tempfile.mkdtemp(prefix="scimsvc-rehearsal-"))
        self.folder.chmod(
            0o755
        )  # nginx's workers and pgbouncer (run as postgres under root) read their files
        self.logs = self.folder / "logs"
        self.logs.mkdir()
        self.serve_ports = [free_port() for _ in range(SERVES)]
        # The operator's paths (admin API, /ops/queue) on each serve's own port (SCIMSVC_INTERNAL_PORT).
        self.internal_ports = [free_port() for _ in range(SERVES)]
        self.serves: list[Proc | None] = [None] * SERVES
        self.workers: list[Proc | None] = [None] * WORKERS
        self.cluster: dict[int, Proc] = {}
        self.queue_port = 0
        self.nginx_port = free_port()
        self.root = f"http://127.0.0.1:{self.nginx_port}"
        self.env: dict[str, str] = {}
        self.tenants: list[dict[str, Any]] = []
        self.kills: list[dict[str, Any]] = []
        self.seat_samples: dict[str, int] = {}  # tenant -> most seats in use seen
        self.seat_overruns: list[dict[str, Any]] = []
        self.slow: dict[tuple[int, Any], dict[str, Any]] = {}  # (pid, since) -> a statement running > 1 s
        self.load_started = time.time()  # set again when the load starts

    # -- processes

    async def spawn(self, name: str, *argv: str, env: dict[str, str] | None = None) -> Proc:
        """Start a process of this run (stopped by pid at the end), its output in logs/<name>.log."""
        with log_file(self.logs / f"{name}.log") as log:
            return await self.run.start(name, *argv, env=env or self.env, stdout=log, stderr=log)

    async def kill(self, proc: Proc) -> None:
        """SIGKILL a process of this run and forget it."""
        proc.process.kill()
        await proc.process.wait()
        self.run.procs.remove(proc)

    async def check_alive(self, proc: Proc) -> None:
        if proc.process.returncode is not None:
            log = tail(self.logs / f"{proc.name}.log")
            raise RuntimeError(f"{proc.name} exited with status {proc.process.returncode}: {log}")

    # -- engines

    async def start_queue_redis(self) -> str:
        port = free_port()
        folder = self.folder / "redis-queue"
        folder.mkdir()
        proc = await self.spawn(
            "redis-queue",
            binary("redis-server") or "redis-server",
            *("--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
            *("--dir", str(folder)),
        )

        async def answers() -> bool:
            await self.check_alive(proc)
            return await self.redis_answers(port)

        await wait_for(f"the queue's redis-server on port {port} to answer", answers, within=START_BOUND)
        self.queue_port = port
        return f"redis://127.0.0.1:{port}/0"

    async def redis_answers(self, port: int) -> bool:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return False
        try:
            writer.write(b"PING\r\n")
            await writer.drain()
            return (await asyncio.wait_for(reader.readline(), 2)).startswith(b"+PONG")
        except (OSError, TimeoutError):
            return False
        finally:
            writer.close()

    async def start_cluster_node(self, port: int) -> Proc:
        folder = self.folder / f"redis-{port}"
        folder.mkdir(exist_ok=True)  # a restarted node finds its nodes.conf there and rejoins
        proc = await self.spawn(
            f"redis-{port}",
            binary("redis-server") or "redis-server",
            *("--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
            *("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"),
            *("--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--dir", str(folder)),
        )
        self.cluster[port] = proc
        return proc

    async def start_cluster(self) -> str:
        ports: list[int] = []
        while len(ports) < CLUSTER_NODES:
            port = cluster_port()
            if port not in ports:
                ports.append(port)
        for port in ports:
            await self.start_cluster_node(port)
        for port in ports:
            await wait_for(
                f"cluster node {port} to answer", lambda p=port: self.redis_answers(p), within=START_BOUND
            )
        status, out = await command(
            binary("redis-cli") or "redis-cli",
            "--cluster",
            "create",
            *(f"127.0.0.1:{p}" for p in ports),
            "--cluster-replicas",
            "1",
            "--cluster-yes",
        )
        if status != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {out[-1500:]}")

        async def all_ok() -> bool:
            return all(await asyncio.gather(*(cluster_ok(p) for p in ports)))

        await wait_for("every cluster node to report cluster_state:ok", all_ok, within=START_BOUND)
        return f"redis://127.0.0.1:{ports[0]}/0"

    async def start_pgbouncer(self) -> str:
        """PgBouncer in transaction mode before this run's database, with README.md's timeouts."""
        port = free_port()
        folder = self.folder / "pgbouncer"
        folder.mkdir()
        wait = float(os.environ.get("SCIMSVC_DB_WAIT_SECONDS", "5"))
        (folder / "users.txt").write_text('"postgres" ""\n')
        server = self.run.db_url.split("://", 1)[1].split("@")[-1].split("/")[0]
        host, _, server_port = server.partition(":")
        (folder / "pgbouncer.ini").write_text(
            f"""[databases]
{self.run.database} = host={host} port={server_port or 5432} dbname={self.run.database}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder}/users.txt
pool_mode = transaction
default_pool_size = 20
max_client_conn = 1000
server_reset_query =
ignore_startup_parameters = extra_float_digits
query_timeout = {0.8 * wait:g}
idle_transaction_timeout = {0.5 * wait:g}
logfile =
pidfile =
"""
        )
        folder.chmod(0o755)
        for path in folder.iterdir():
            path.chmod(0o644)
        as_user = ["-u", "postgres"] if os.geteuid() == 0 else []  # PgBouncer refuses to run as root
        proc = await self.spawn(
            "pgbouncer", binary("pgbouncer") or "pgbouncer", *as_user, str(folder / "pgbouncer.ini")
        )

        async def listens() -> bool:
            await self.check_alive(proc)
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                return False
            writer.close()
            return True

        await wait_for(f"pgbouncer on port {port} to listen", listens, within=START_BOUND)
        return f"postgresql://postgres@127.0.0.1:{port}/{self.run.database}"

    async def start_nginx(self) -> None:
        """nginx round robin over the serves as deploy/nginx.conf has it (its timeouts; SCIM and the health
        checks published, the operator's paths not), in plain HTTP and without Docker's DNS."""
        folder = self.folder / "nginx"
        folder.mkdir()
        folder.chmod(0o755)
        servers = "\n".join(
            f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;" for p in self.serve_ports
        )
        temp = "\n".join(
            f"    {kind}_temp_path {folder}/{kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        (folder / "nginx.conf").write_text(
            f"""worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
{temp}
    upstream scimsvc_web {{
{servers}
        keepalive 32;
        keepalive_timeout 10s;
    }}
    server {{
        listen 127.0.0.1:{self.nginx_port};
        server_name _;
        client_header_timeout 10s;
        client_body_timeout 30s;
        keepalive_timeout 15s;
        send_timeout 60s;
        client_max_body_size 17m;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $http_host;
        proxy_set_header X-Forwarded-For $remote_addr;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_next_upstream error timeout;
        proxy_connect_timeout 2s;
        proxy_read_timeout 60s;
        location /scim/v2/ {{ proxy_pass http://scimsvc_web; }}
        location = /ops/health {{ proxy_pass http://scimsvc_web; }}
        location = /ops/ready {{ proxy_pass http://scimsvc_web; }}
        location / {{ return 404; }}
    }}
}}
"""
        )
        proc = await self.spawn(
            "nginx",
            binary("nginx") or "nginx",
            "-p",
            str(folder),
            "-c",
            str(folder / "nginx.conf"),
            "-g",
            "daemon off;",
        )

        async def answers() -> bool:
            await self.check_alive(proc)
            return await self.ready(self.root)

        await wait_for("nginx to pass /ops/ready to a serve", answers, within=START_BOUND)

    async def ready(self, root: str) -> bool:
        try:
            async with self.http.get(f"{root}/ops/ready") as resp:
                await resp.read()
                return resp.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def start_serve(self, i: int) -> Proc:
        proc = await self.spawn(
            f"serve-{i}",
            *(sys.executable, "-m", "scimsvc", "serve", "--port", str(self.serve_ports[i])),
            env={**self.env, "SCIMSVC_INTERNAL_PORT": str(self.internal_ports[i])},
        )
        self.serves[i] = proc
        root = f"http://127.0.0.1:{self.serve_ports[i]}"

        async def answers() -> bool:
            await self.check_alive(proc)
            return await self.ready(root)

        await wait_for(f"serve {i} to answer /ops/ready", answers, within=START_BOUND)
        return proc

    async def start_worker(self, i: int) -> Proc:
        # As compose.yaml runs them (README.md, Docker Compose): workers reach PostgreSQL directly, since
        # PgBouncer's query_timeout, the web's bound, would cancel a long job's statements.
        direct = {"SCIMSVC_DATABASE_URL": self.run.db_url, "SCIMSVC_DATABASE_POOLER": "none"}
        proc = await self.spawn(
            f"worker-{i}", sys.executable, "-m", "scimsvc", "worker", env={**self.env, **direct}
        )
        self.workers[i] = proc

        async def beats() -> bool:
            await self.check_alive(proc)
            view = await self.queue_view()
            return view is not None and any(w.get("pid") == proc.pid for w in view.get("workers") or [])

        await wait_for(f"worker {i} to report its heartbeat", beats, within=START_BOUND)
        return proc

    async def queue_view(self) -> dict[str, Any] | None:
        """/ops/queue through nginx (None when it cannot be read)."""
        try:
            url = f"http://127.0.0.1:{self.internal_ports[QUEUE_VIEW_SERVE]}/ops/queue"
            async with self.http.get(url, headers=self.run.admin_headers) as resp:
                body = await resp.read()
                return orjson.loads(body) if resp.status in (200, 503) else None
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError):
            return None

    async def start(self) -> None:
        """Every engine and process, in the order they depend on each other."""
        queue_url = await self.start_queue_redis()
        limiter_url = await self.start_cluster() if self.with_cluster else ""
        database_url = await self.start_pgbouncer() if self.with_pgbouncer else self.run.db_url
        self.env = {
            **self.run.env,
            "SCIMSVC_DATABASE_URL": database_url,
            "SCIMSVC_DATABASE_POOLER": "transaction" if self.with_pgbouncer else "none",
            "SCIMSVC_DATABASE_DIRECT_URL": self.run.db_url,
            "SCIMSVC_REDIS_URL": queue_url,
            "SCIMSVC_LIMITER_REDIS_URL": limiter_url,
            "SCIMSVC_LIMITER_REDIS_CLUSTER": "on" if self.with_cluster else "off",
            "SCIMSVC_RATE_LIMIT_ENABLED": "true",
            "SCIMSVC_PUBLIC_URL": self.root,
            "SCIMSVC_TRUSTED_PROXIES": "127.0.0.1",
            "SCIMSVC_ACCESS_LOG": "off",
            "SCIMSVC_LOG_FORMAT": "json",
            "SCIMSVC_WORKER_HEARTBEAT_STALE_SECONDS": str(HEARTBEAT_STALE),
        }
        await asyncio.gather(*(self.start_serve(i) for i in range(SERVES)))
        await self.start_nginx()
        await asyncio.gather(*(self.start_worker(i) for i in range(WORKERS)))
        for mix, seed in MIXES:
            self.tenants.append(await self.tenant(mix, seed))

    async def tenant(self, mix: str, seed: int) -> dict[str, Any]:
        """A tenant made by `scimsvc tenant create`, its budget and team set through a serve's admin API."""
        name = f"rehearsal-{mix}"
        status, out = await command(
            sys.executable, "-m", "scimsvc", "tenant", "create", name, "--seats", str(SEATS), env=self.env
        )
        if status != 0:
            raise RuntimeError(f"scimsvc tenant create failed ({status}): {out[-1000:]}")
        fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        tenant_id, token = fields["tenant id"].strip(), fields["SCIM token"].strip()
        url = f"http://127.0.0.1:{self.internal_ports[0]}/admin/v1/tenants/{tenant_id}"
        body = {"rate_limit": {"credits_per_30s": BUDGET}}
        async with self.http.patch(url, json=body, headers=self.run.admin_headers) as resp:
            if resp.status != 200:
                raise RuntimeError(
                    f"setting the budget of {name} answered {resp.status}: {await resp.text()}"
                )
        async with self.http.post(
            f"{url}/teams", json={"name": TEAM}, headers=self.run.admin_headers
        ) as resp:
            if resp.status != 201:
                raise RuntimeError(f"creating the team of {name} answered {resp.status}: {await resp.text()}")
        return {"name": name, "id": tenant_id, "token": token, "mix": mix, "seed": seed}

    # -- load

    async def start_load(self, tenant: dict[str, Any]) -> Proc:
        mix = tenant["mix"]
        tenant["log"] = self.folder / f"loadtest-{mix}.jsonl"
        tenant["report_file"] = self.folder / f"loadtest-{mix}.json"
        with tenant["report_file"].open("wb") as out, log_file(self.logs / f"loadtest-{mix}.log") as err:
            return await self.run.start(
                f"loadtest-{mix}",
                sys.executable,
                *(
                    "-m",
                    "scimsvc",
                    "loadtest",
                    "--base-url",
                    f"{self.root}/scim/v2",
                    "--token",
                    tenant["token"],
                ),
                *("--mix", mix, "--duration", str(self.plan.duration)),
                *("--concurrency", str(self.plan.concurrency), "--seed", str(tenant["seed"])),
                *("--user-domain", f"{mix}.rehearsal.example", "--json", "--log", str(tenant["log"])),
                env=self.env,
                stdout=out,
                stderr=err,
            )

    async def watch(self) -> None:
        """Every second until cancelled: the seats in use of each tenant, and the statements of this run's
        database running for over a second (what a 503 of the database's wait bound waited for)."""
        ids = [t["id"] for t in self.tenants]
        while True:
            for slow in await self.run.conn.fetch(SLOW_STATEMENTS, self.run.database):
                key = (slow["pid"], slow["started"])
                self.slow[key] = {
                    "at_s": self.at(slow["started"].timestamp()),
                    "seconds": round(slow["seconds"], 1),
                    "state": slow["state"],
                    "wait": slow["wait"],
                    "query": slow["query"],
                }
            rows = await self.run.conn.fetch(SEATS_IN_USE, ids)
            for row in rows:
                tid = row["id"]
                self.seat_samples[tid] = max(self.seat_samples.get(tid, 0), row["used"])
                if row["used"] > row["seats"]:
                    self.seat_overruns.append(
                        {"tenant": tid, "at_s": self.at(time.time()), "used": row["used"]}
                    )
            await asyncio.sleep(1.0)

    def at(self, wall: float) -> float:
        """Seconds since the load started."""
        return round(wall - self.load_started, 2)

    # -- kills

    async def kill_serve(self) -> dict[str, Any]:
        """SIGKILL serve 0 and start it again; recovered: it answers /ops/ready and so does nginx."""
        proc = self.serves[0]
        assert proc is not None
        killed_at = time.time()
        await self.kill(proc)
        await self.start_serve(0)
        await wait_for("nginx to pass /ops/ready", lambda: self.ready(self.root), within=RECOVERY_BOUND)
        return {"kill": "serve", "pid": proc.pid, "killed_at": killed_at, "recovered_at": time.time()}

    async def kill_worker(self) -> dict[str, Any]:
        """SIGKILL worker 0 and start another; recovered: its heartbeat is reported and every outbox row that
        was unapplied at the kill is applied (the killed worker's jobs ran again)."""
        proc = self.workers[0]
        assert proc is not None
        ids = [t["id"] for t in self.tenants]
        backlog = await self.run.conn.fetchval(LAST_UNAPPLIED, ids)
        killed_at = time.time()
        await self.kill(proc)
        await self.start_worker(0)

        async def drained() -> bool:
            return backlog is None or not await self.run.conn.fetchval(UNAPPLIED_UP_TO, ids, backlog)

        await wait_for(
            "the outbox rows unapplied at the worker's kill to be applied", drained, within=RECOVERY_BOUND
        )
        return {"kill": "worker", "pid": proc.pid, "killed_at": killed_at, "recovered_at": time.time()}

    async def kill_master(self) -> dict[str, Any]:
        """SIGKILL the cluster master holding the first tenant's bucket; recovered: a replica serves its slot
        and the cluster is ok; then the node is started again and must rejoin as a replica."""
        ports = list(self.cluster)
        out = await redis_cli(ports[0], "cluster", "keyslot", self.tenants[0]["id"])
        slot = int((out or "").strip())  # the bucket's key is hash-tagged {tenant id}
        victim = await master_of(ports[0], slot)
        if victim is None:
            raise RuntimeError(f"no master serves slot {slot}")
        survivor = next(p for p in ports if p != victim)
        killed_at = time.time()
        await self.kill(self.cluster.pop(victim))

        async def failed_over() -> bool:
            owner = await master_of(survivor, slot)
            return owner is not None and owner != victim and await cluster_ok(survivor)

        await wait_for(f"a replica to take over slot {slot}", failed_over, within=RECOVERY_BOUND)
        failed_over_at = time.time()
        await self.start_cluster_node(victim)

        async def rejoined() -> bool:
            text = await redis_cli(victim, "cluster", "nodes")
            me = next((n for n in cluster_nodes(text or "") if "myself" in n["flags"]), None)
            info = await redis_cli(victim, "info", "replication")
            return me is not None and "slave" in me["flags"] and "master_link_status:up" in (info or "")

        await wait_for(f"node {victim} to rejoin as a replica", rejoined, within=RECOVERY_BOUND)
        return {
            "kill": "cluster master",
            "port": victim,
            "slot": slot,
            "killed_at": killed_at,
            "recovered_at": failed_over_at,
            "rejoined_at": time.time(),
        }

    async def kill_in_turn(self) -> None:
        """The kills, one after the other, each at its time and only after the previous one recovered."""
        steps: list[tuple[str, Callable[[], Awaitable[dict[str, Any]]] | None]] = [
            ("serve", self.kill_serve),
            ("worker", self.kill_worker),
            ("cluster master", self.kill_master if self.with_cluster else None),
        ]
        for (name, step), fraction in zip(steps, self.plan.kills_at, strict=True):
            if step is None:
                self.kills.append({"kill": name, "skipped": "--no-cluster"})
                continue
            delay = self.load_started + fraction * self.plan.duration - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            started = time.time()
            try:
                self.kills.append(await step())
            except RuntimeError as exc:
                self.kills.append(
                    {"kill": name, "killed_at": started, "recovered_at": None, "error": str(exc)}
                )

    # -- the run

    async def rehearse(self) -> dict[str, Any]:
        await self.start()
        self.load_started = time.time()
        loads = [await self.start_load(t) for t in self.tenants]
        seats = asyncio.ensure_future(self.watch())
        try:
            await self.kill_in_turn()
            for proc in loads:
                await asyncio.wait_for(proc.process.wait(), self.plan.duration + 120)
            load_ended = time.time()
            limiter_keys = await self.limiter_keys()
            ids = [t["id"] for t in self.tenants]

            async def applied() -> bool:
                return not await self.run.conn.fetchval(UNAPPLIED, ids)

            drain_error = None
            try:
                await wait_for("the outbox to be applied", applied, within=DRAIN_BOUND)
            except RuntimeError as exc:
                drain_error = str(exc)
            drained_s = round(time.time() - load_ended, 2)
            live = await self.live_workers()
        finally:
            seats.cancel()
        return await self.checks(
            drain_error=drain_error, drained_s=drained_s, live=live, limiter_keys=limiter_keys
        )

    async def limiter_keys(self) -> dict[str, dict[str, int]]:
        """The per-request keys (rate-limit buckets and leases; page cursors, services/page_cursors.py)
        found on the Redis Cluster and on the queue's Redis: which one the serves used."""
        patterns = {
            "rate_limit": f"{self.run.env['SCIMSVC_RATE_LIMIT_PREFIX']}:*",
            "page_cursors": f"{self.run.queue}:cursor:*",
        }
        stores = {"redis_cluster": list(self.cluster), "queue_redis": [self.queue_port]}
        found: dict[str, dict[str, int]] = {}
        for kind, pattern in patterns.items():
            found[kind] = {}
            for name, ports in stores.items():
                keys: set[str] = set()
                for port in ports:
                    keys.update((await redis_cli(port, "--scan", "--pattern", pattern) or "").split())
                found[kind][name] = len(keys)
        return found

    async def live_workers(self) -> dict[str, Any]:
        """Live workers in /ops/queue once the killed worker's heartbeat is stale (or the bound passes)."""
        running = sum(1 for w in self.workers if w is not None and w.process.returncode is None)
        last: dict[str, Any] = {}

        async def settled() -> bool:
            view = await self.queue_view()
            if view is not None:
                last.update(live=view.get("live_workers"), status=view.get("status"))
            return last.get("live") == running

        try:
            await wait_for("live workers to equal the workers running", settled, within=HEARTBEAT_STALE + 40)
        except RuntimeError:
            pass
        return {"running": running, "reported": last.get("live"), "status": last.get("status")}

    # -- checks

    async def checks(
        self,
        *,
        drain_error: str | None,
        drained_s: float,
        live: dict[str, Any],
        limiter_keys: dict[str, dict[str, int]],
    ) -> dict[str, Any]:
        kill_windows = [
            (k["kill"], k["killed_at"], (k.get("recovered_at") or time.time()) + 2.0)
            for k in self.kills
            if "killed_at" in k
        ]
        fail_open = [
            (k["killed_at"], (k.get("recovered_at") or time.time()) + FAIL_OPEN_AFTER_FAILOVER)
            for k in self.kills
            if k["kill"] == "cluster master" and "killed_at" in k
        ]
        serve_kills = [k["killed_at"] for k in self.kills if k["kill"] == "serve" and "killed_at" in k]
        tenants = []
        for tenant in self.tenants:
            lines = [orjson.loads(line) for line in tenant["log"].read_bytes().splitlines() if line.strip()]
            report = orjson.loads(tenant["report_file"].read_bytes() or b"{}")
            db = await self.database_state(tenant["id"])
            tenants.append(
                {
                    "name": tenant["name"],
                    "mix": tenant["mix"],
                    "requests": len(lines),
                    "statuses": report.get("status_counts"),
                    "users_created": report.get("users_created"),
                    "writes": write_checks(lines, db, serve_kills),
                    "seats": {
                        "seats": db["seats"],
                        "used_at_end": db["seats_used"],
                        "most_used_seen": self.seat_samples.get(tenant["id"], 0),
                        "overruns": [o for o in self.seat_overruns if o["tenant"] == tenant["id"]],
                    },
                    "credits": credit_check(lines, budget=BUDGET, fail_open=fail_open),
                    "errors": error_check(lines, kill_windows, serve_kills, self.at),
                }
            )
        kills = [
            {
                **{k: v for k, v in kill.items() if not k.endswith("_at")},
                **({"at_s": self.at(kill["killed_at"])} if "killed_at" in kill else {}),
                "recovered_s": round(kill["recovered_at"] - kill["killed_at"], 2)
                if kill.get("recovered_at")
                else None,
                **(
                    {"rejoined_s": round(kill["rejoined_at"] - kill["killed_at"], 2)}
                    if "rejoined_at" in kill
                    else {}
                ),
            }
            for kill in self.kills
        ]
        verdicts = {
            "writes applied exactly once": all(t["writes"]["ok"] for t in tenants) and drain_error is None,
            "seats never above the count": all(
                not t["seats"]["overruns"] and t["seats"]["used_at_end"] <= t["seats"]["seats"]
                for t in tenants
            ),
            "live workers = workers running": live["reported"] == live["running"] == WORKERS,
            "admitted credits <= budget + refill": all(t["credits"]["ok"] for t in tenants),
            "no 5xx but the allowed ones": all(t["errors"]["ok"] for t in tenants),
            "every kill recovered": all(k.get("skipped") or k["recovered_s"] is not None for k in kills),
        }
        if self.with_cluster:
            verdicts["per-request keys on the Redis Cluster, none on the queue's"] = (
                limiter_keys["rate_limit"]["redis_cluster"] > 0
                and limiter_keys["rate_limit"]["queue_redis"] == 0
                and limiter_keys["page_cursors"]["queue_redis"] == 0
            )
        return {
            "engines": {
                "pgbouncer": self.with_pgbouncer,
                "redis_cluster": self.with_cluster,
                "serves": SERVES,
                "workers": WORKERS,
                "nginx": True,
                "keys_at_the_end_of_the_load": limiter_keys,
            },
            "plan": {
                "duration_s": self.plan.duration,
                "concurrency": self.plan.concurrency,
                "budget": BUDGET,
            },
            "kills": kills,
            "drain": {"seconds_after_load": drained_s, "error": drain_error},
            "statements_over_1s": sorted(self.slow.values(), key=lambda x: -x["seconds"])[:15],
            "live_workers": live,
            "tenants": tenants,
            "checks": verdicts,
            "ok": all(verdicts.values()),
            "logs": str(self.folder),
        }

    async def database_state(self, tenant_id: str) -> dict[str, Any]:
        conn = self.run.conn
        outbox = await conn.fetch(OUTBOX_ROWS, tenant_id)
        users = await conn.fetch(USERS, tenant_id)
        seats = await conn.fetchrow(SEATS_IN_USE_ONE, tenant_id)
        return {
            "outbox": [dict(r) for r in outbox],
            "users": {r["id"]: dict(r) for r in users},
            "audit_twice": [dict(r) for r in await conn.fetch(AUDITED_TWICE, tenant_id)],
            "seats": seats["seats"],
            "seats_used": seats["used"],
        }


SEATS_IN_USE = """
SELECT t.id::text AS id, t.seats,
       (SELECT count(*) FROM users u WHERE u.tenant_id = t.id AND u.license = 'full') AS used
FROM tenants t WHERE t.id = ANY($1::uuid[])
"""
SEATS_IN_USE_ONE = """
SELECT t.seats, (SELECT count(*) FROM users u WHERE u.tenant_id = t.id AND u.license = 'full') AS used
FROM tenants t WHERE t.id = $1::uuid
"""
# Statements (or transactions left idle) of this run's database running for over a second.
SLOW_STATEMENTS = """
SELECT pid, state, coalesce(wait_event_type || ':' || wait_event, '') AS wait, left(query, 160) AS query,
       CASE WHEN state = 'active' THEN query_start ELSE xact_start END AS started,
       extract(epoch FROM clock_timestamp() - CASE WHEN state = 'active' THEN query_start ELSE xact_start END)
           ::float8 AS seconds
FROM pg_stat_activity
WHERE datname = $1 AND pid <> pg_backend_pid()
  AND (state = 'active' AND query_start < clock_timestamp() - interval '1 second'
       OR state LIKE 'idle in transaction%' AND xact_start < clock_timestamp() - interval '1 second')
"""
UNAPPLIED = "SELECT count(*) FROM outbox WHERE tenant_id = ANY($1::uuid[]) AND applied_at IS NULL"
LAST_UNAPPLIED = "SELECT max(id) FROM outbox WHERE tenant_id = ANY($1::uuid[]) AND applied_at IS NULL"
UNAPPLIED_UP_TO = (
    "SELECT count(*) FROM outbox WHERE tenant_id = ANY($1::uuid[]) AND applied_at IS NULL AND id <= $2"
)
OUTBOX_ROWS = """
SELECT request_id, resource_type, resource_id::text AS resource_id, change, applied_at IS NOT NULL AS applied
FROM outbox WHERE tenant_id = $1::uuid
"""
USERS = "SELECT id::text AS id, user_name, display_name, active FROM users WHERE tenant_id = $1::uuid"
# A worker decision recorded twice for one request and user would be a change applied twice.
AUDITED_TWICE = """
SELECT request_id, user_id::text AS user_id, action, count(*) AS times
FROM audit_log WHERE tenant_id = $1::uuid AND request_id IS NOT NULL
GROUP BY request_id, user_id, action HAVING count(*) > 1
LIMIT 10
"""


# --- checks (pure: the loadtest's log lines and the database's rows) --------------------------------------


def write_checks(lines: list[dict[str, Any]], db: dict[str, Any], serve_kills: list[float]) -> dict[str, Any]:
    """Every acknowledged write applied exactly once, refused ones not at all, and the users' final state
    one that the writes that may have committed last set.

    A PUT in flight on a killed serve may have been applied there and then again on another serve: nginx
    replays an idempotent request after an error (deploy/nginx.conf, proxy_next_upstream); it is counted
    as replayed, with both rows for the same user."""
    rows_of: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in db["outbox"]:
        if row["request_id"]:
            rows_of[row["request_id"]].append(row)
    problems: list[str] = []
    acked = refused = unknown = landed = no_change = replayed = 0
    applied: dict[str, list[dict[str, Any]]] = defaultdict(list)  # user id -> writes that took effect
    created: set[str] = set()
    for line in lines:
        if line["route"] not in WRITES:
            continue
        status, rid = line["status"], line["request_id"]
        user_rows = [r for r in rows_of.get(rid, []) if r["resource_type"] == "user"]
        user_write = line["route"] in USER_WRITES
        target = line["id"] if line["route"] == "POST /Users" else line["path"].rsplit("/", 1)[-1]
        if status is not None and 200 <= status < 300:
            acked += 1
            # A PATCH that changes nothing saves nothing (services/users.py:patch_user): no row is right.
            unchanged = line["route"] == "PATCH /Users/{id}" and not user_rows
            no_change += unchanged
            replay = (
                line["route"] == "PUT /Users/{id}"
                and len(user_rows) == 2
                and any(line["sent_at"] <= killed <= line["done_at"] for killed in serve_kills)
            )
            replayed += replay
            if user_write and len(user_rows) != 1 and not (unchanged or replay):
                problems.append(f"acknowledged {line['route']} {rid} has {len(user_rows)} outbox rows")
            elif user_write and any(r["resource_id"] != target for r in user_rows):
                problems.append(f"acknowledged {line['route']} {rid} wrote another user")
        elif status is not None and status < 500:
            refused += 1
            if rows_of.get(rid):
                problems.append(f"refused {line['route']} {rid} ({status}) wrote an outbox row")
            continue
        else:
            unknown += 1
            if not user_rows:
                continue  # not answered and not applied
            landed += 1
            target = user_rows[0]["resource_id"]
        if not all(r["applied"] for r in rows_of.get(rid, [])):
            problems.append(f"{line['route']} {rid} is not applied")
        if user_write:
            applied[target].append(line)
            if line["route"] == "POST /Users":
                created.add(target)
    users = db["users"]
    for missing in sorted(created - set(users)):
        problems.append(f"created user {missing} is not in the database")
    for extra in sorted(set(users) - created):
        problems.append(f"user {extra} is in the database but no create of this run made it")
    wrong_state = 0
    for uid, writes in applied.items():
        user = users.get(uid)
        if user is None:
            continue
        for attribute, column in (("displayName", "display_name"), ("active", "active")):
            allowed = possible_last_values(writes, attribute)
            if allowed and user[column] not in allowed:
                wrong_state += 1
                problems.append(
                    f"user {uid}: {attribute} is {user[column]!r}, not one of {sorted(map(str, allowed))}"
                )
    for row in db["audit_twice"]:
        problems.append(f"audited twice: {row['action']} of {row['user_id']} for request {row['request_id']}")
    unapplied = sum(1 for r in db["outbox"] if not r["applied"])
    if unapplied:
        problems.append(f"{unapplied} outbox rows unapplied")
    return {
        "acknowledged": acked,
        "acknowledged_without_change": no_change,
        "acknowledged_replayed_by_nginx": replayed,
        "refused": refused,
        "unanswered": unknown,
        "unanswered_applied": landed,
        "users": len(users),
        "users_wrong_state": wrong_state,
        "audited_twice": len(db["audit_twice"]),
        "outbox_unapplied": unapplied,
        "problems": problems[:20],
        "ok": not problems,
    }


def possible_last_values(writes: Iterable[dict[str, Any]], attribute: str) -> set[Any]:
    """The values of `attribute` the user may end with: those of the writes that took effect and that no
    other such write certainly followed (one sent after it was answered commits after it)."""
    setting = [w for w in writes if w["state"] and attribute in w["state"]]
    return {
        w["state"][attribute]
        for w in setting
        if not any(other["sent_at"] > w["done_at"] for other in setting if other is not w)
    }


def credit_check(
    lines: list[dict[str, Any]], *, budget: int, fail_open: list[tuple[float, float]]
) -> dict[str, Any]:
    """Admitted credits against budget + refill over the run, the way tests/test_rate_limits.py counts them:
    a request admitted while the limiter may fail open is counted apart."""
    if not lines:
        return {"ok": False, "problem": "no requests"}
    first = min(line["sent_at"] for line in lines)
    last = max(line["done_at"] for line in lines)
    admitted = [
        line
        for line in lines
        if line["status"] is not None and line["status"] != 429 and line["status"] < 500
    ]
    open_credits = sum(
        line["cost"] for line in admitted if any(a <= line["sent_at"] <= b for a, b in fail_open)
    )
    charged = sum(line["cost"] for line in admitted) - open_credits
    allowed = budget + budget * (last - first) / WINDOW_SECONDS
    return {
        "budget": budget,
        "elapsed_s": round(last - first, 2),
        "admitted_credits": charged,
        "admitted_while_failing_open": open_credits,
        "allowed": round(allowed),
        "ratio": round(charged / allowed, 4),
        "rejected_429": sum(1 for line in lines if line["status"] == 429),
        "ok": charged <= allowed,
    }


def error_check(
    lines: list[dict[str, Any]],
    kill_windows: list[tuple[str, float, float]],
    serve_kills: list[float],
    at: Callable[[float], float],
) -> dict[str, Any]:
    """Every 5xx (and unanswered request) with its status, route and time; allowed: a 503 during a kill,
    a 502 for a POST or PATCH in flight on the killed serve (nginx never replays those)."""
    allowed, refused = [], []
    for line in lines:
        status = line["status"]
        if status is not None and status < 500:
            continue
        entry = {"status": status, "route": line["route"], "at_s": at(line["sent_at"])}
        during = next(
            (name for name, a, b in kill_windows if a <= line["done_at"] and line["sent_at"] <= b), None
        )
        in_flight = any(
            line["sent_at"] <= killed + IN_FLIGHT_GRACE and line["done_at"] >= killed
            for killed in serve_kills
        )
        if status == 503 and during is not None:
            allowed.append({**entry, "during": during})
        elif status == 502 and in_flight and line["route"].split()[0] in ("POST", "PATCH"):
            allowed.append({**entry, "during": "serve"})
        else:
            refused.append(entry)
    return {
        "allowed": allowed[:20],
        "allowed_count": len(allowed),
        "other": refused[:20],
        "other_count": len(refused),
        "ok": not refused,
    }


# --- output ------------------------------------------------------------------------------------------------


def show(report: dict[str, Any]) -> None:
    engines = report["engines"]
    print(
        f"\nscale-out rehearsal: pgbouncer {'on' if engines['pgbouncer'] else 'off'}, redis cluster "
        f"{'on' if engines['redis_cluster'] else 'off'}, {engines['serves']} serves, {engines['workers']} "
        f"workers, nginx; {report['plan']['duration_s']:g} s of load"
    )
    print("\nkills")
    for k in report["kills"]:
        if k.get("skipped"):
            print(f"  {k['kill']:<15} skipped ({k['skipped']})")
            continue
        rejoined = f", rejoined as replica after {k['rejoined_s']} s" if "rejoined_s" in k else ""
        error = f"  {k['error']}" if k.get("error") else ""
        print(
            f"  {k['kill']:<15} at {k['at_s']:>6.1f} s  recovered after {k['recovered_s']} s{rejoined}{error}"
        )
    print("\ntenants")
    for t in report["tenants"]:
        w, c, e, s = t["writes"], t["credits"], t["errors"], t["seats"]
        print(f"  {t['name']}: {t['requests']} requests, statuses {t['statuses']}")
        print(
            f"    writes: {w['acknowledged']} acknowledged, {w['refused']} refused, "
            f"{w['unanswered']} unanswered ({w['unanswered_applied']} applied); {w['users']} users; "
            f"problems {len(w['problems'])}"
        )
        print(f"    seats: {s['used_at_end']} / {s['seats']} at the end, at most {s['most_used_seen']} seen")
        if "admitted_credits" in c:
            print(
                f"    credits: {c['admitted_credits']} admitted / {c['allowed']} allowed "
                f"(ratio {c['ratio']}), {c['admitted_while_failing_open']} while failing open, "
                f"{c['rejected_429']} 429s"
            )
        print(f"    5xx: {e['allowed_count']} allowed (during kills), {e['other_count']} others")
        for problem in w["problems"][:5]:
            print(f"      ! {problem}")
        for other in e["other"][:5]:
            print(f"      ! {other}")
    print(
        f"\nlive workers: {report['live_workers']}; "
        f"outbox applied {report['drain']['seconds_after_load']} s after the load"
    )
    print("\nchecks")
    for name, ok in report["checks"].items():
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")


async def main(plan: Plan, *, pgbouncer: bool, cluster: bool) -> dict[str, Any]:
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is not None:
        loop.add_signal_handler(signal.SIGTERM, task.cancel)  # stop everything by pid, as on Ctrl-C
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as http, Run(rate_limit=True) as run:
        rehearsal = Rehearsal(run, http, plan, pgbouncer=pgbouncer, cluster=cluster)
        started = time.time()
        try:
            report = await rehearsal.rehearse()
        except RuntimeError as exc:
            report = {"ok": False, "error": str(exc), "logs": str(rehearsal.folder)}
        except BaseException:  # Ctrl-C, SIGTERM: `Run` stops every process; the logs go too
            shutil.rmtree(rehearsal.folder, ignore_errors=True)
            raise
        report["started"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))
        report["seconds"] = round(time.time() - started, 1)
        report["load_average"] = [round(x, 2) for x in os.getloadavg()]
        if report["ok"]:
            shutil.rmtree(rehearsal.folder, ignore_errors=True)
            report["logs"] = None
        return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--short", action="store_true", help="the CI variant: 70 s of load, under 3 minutes")
    parser.add_argument("--duration", type=float, help="seconds of load (default: 300, --short: 70)")
    parser.add_argument(
        "--concurrency", type=int, help="requests at once per loadtest (default: 8, --short: 6)"
    )
    parser.add_argument(
        "--no-pgbouncer", dest="pgbouncer", action="store_false", help="reach PostgreSQL directly"
    )
    parser.add_argument(
        "--no-cluster",
        dest="cluster",
        action="store_false",
        help="no Redis Cluster: the limiter uses the queue's Redis",
    )
    parser.add_argument(
        "--json-out", type=Path, help="where to write the JSON report (default: bench/results/)"
    )
    args = parser.parse_args()
    plan = SHORT if args.short else FULL
    if args.duration is not None or args.concurrency is not None:
        plan = Plan(args.duration or plan.duration, args.concurrency or plan.concurrency, plan.kills_at)
    if plan.duration < 20 or plan.concurrency < 1:
        parser.error("--duration must be at least 20 s and --concurrency at least 1")
    missing = missing_engines(pgbouncer=args.pgbouncer, cluster=args.cluster)
    if missing:
        print(
            f"bench/rehearse: not installed: {', '.join(missing)} "
            "(Debian packages: pgbouncer, nginx-light, redis-server)",
            file=sys.stderr,
        )
        sys.exit(2)
    try:
        result = asyncio.run(main(plan, pgbouncer=args.pgbouncer, cluster=args.cluster))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("bench/rehearse: interrupted; every process it started is stopped", file=sys.stderr)
        sys.exit(130)
    if "checks" in result:
        show(result)
    else:
        print(f"\nthe rehearsal could not run: {result['error']}")
    out = (
        args.json_out or HERE / "results" / f"rehearsal-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    print(f"\nJSON: {out}" + (f"\nlogs: {result['logs']}" if result.get("logs") else ""))
    sys.exit(0 if result["ok"] else 1)
