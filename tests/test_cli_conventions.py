"""The `scimsvc` command behaves as a command-line server should: run as people and scripts run it."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib.metadata
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
from arq.connections import ArqRedis
from arq.jobs import Job

from scimsvc import logs
from scimsvc.app import create_app
from scimsvc.cli import build_parser
from scimsvc.connection_errors import address
from scimsvc.settings import Settings
from tests.conftest import (
    ADMIN_KEY,
    REDIS_URL,
    RUN_ID,
    SERVER_URL,
    _drop_database,
    free_port,
    make_tenant,
    post_user,
    with_database,
)

DEADLINE = 120  # seconds; only bounds a hang


def _env(**values: str) -> dict[str, str]:
    """This process's environment without any SCIMSVC_* setting of the developer's, plus `values`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCIMSVC_")}
    return env | values


def scimsvc(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m scimsvc ARGS` to its end."""
    return subprocess.run(
        [sys.executable, "-m", "scimsvc", *args],
        env=env if env is not None else _env(),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )


def store_env(database_url: str, queue: str, **values: str) -> dict[str, str]:
    return (
        _env(SCIMSVC_DATABASE_URL=database_url, SCIMSVC_REDIS_URL=REDIS_URL, SCIMSVC_QUEUE_NAME=queue)
        | values
    )


def new_queue() -> str:
    return f"scimsvc:test:{RUN_ID}:cli:{uuid.uuid4().hex[:8]}"


class Running:
    """A `scimsvc` process of this test's own, its stderr in a file; stopped by its pid only."""

    def __init__(self, args: list[str], env: dict[str, str], folder: Path) -> None:
        self.err_path = folder / f"{args[0]}-{uuid.uuid4().hex[:6]}.err"
        self.out_path = self.err_path.with_suffix(".out")
        with self.err_path.open("wb") as err, self.out_path.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "scimsvc", *args], env=env, stdout=out, stderr=err
            )

    @property
    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def wait_for(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + DEADLINE
        while not condition():
            assert self.proc.poll() is None, f"exited {self.proc.returncode} before {what}:\n{self.stderr}"
            assert time.monotonic() < deadline, f"no {what} within {DEADLINE} s:\n{self.stderr}"
            time.sleep(0.1)

    def wait_for_line(self, text: str) -> None:
        self.wait_for(lambda: text in self.stderr, repr(text))

    async def until(self, condition: Callable[[], Awaitable[bool]], what: str) -> None:
        """As wait_for, for conditions read over this test's event loop (database, Redis)."""
        deadline = time.monotonic() + DEADLINE
        while not await condition():
            assert self.proc.poll() is None, f"exited {self.proc.returncode} before {what}:\n{self.stderr}"
            assert time.monotonic() < deadline, f"no {what} within {DEADLINE} s:\n{self.stderr}"
            await asyncio.sleep(0.1)

    async def until_line(self, text: str) -> None:
        async def seen() -> bool:
            return text in self.stderr

        await self.until(seen, repr(text))

    async def ended(self) -> int:
        """Wait (bounded, without blocking the loop) for the process to end by itself; its status."""
        deadline = time.monotonic() + DEADLINE
        while self.proc.poll() is None:
            assert time.monotonic() < deadline, f"still running {DEADLINE} s later:\n{self.stderr}"
            await asyncio.sleep(0.1)
        return self.proc.returncode

    def exit_status(self) -> int:
        """Wait for the process to end by itself (bounded) and return its status."""
        try:
            return self.proc.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {DEADLINE} s later:\n{self.stderr}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Callable[..., Running]]:
    """Start `scimsvc` processes; whatever is still running at the end is killed (by pid)."""
    started: list[Running] = []

    def start(*args: str, env: dict[str, str]) -> Running:
        started.append(Running(list(args), env, tmp_path))
        return started[-1]

    yield start
    for process in started:
        process.kill()


def error_lines(stderr: str) -> list[str]:
    """stderr without log lines (JSON objects): what the command itself printed."""
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith("{")]


# --- version and help ------------------------------------------------------------------------------


def test_python_m_scimsvc_prints_the_version():
    out = scimsvc("--version")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"scimsvc {importlib.metadata.version('scimsvc')}"


def _commands(parser: argparse.ArgumentParser, path: str = "scimsvc") -> Iterator[tuple[str, Any]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, f"{path} {name}")


def test_every_option_says_what_it_does_and_its_default():
    commands = dict(_commands(build_parser()))
    assert {"scimsvc serve", "scimsvc worker", "scimsvc queue", "scimsvc tenant create"} <= set(commands)
    for path, parser in commands.items():
        for action in parser._actions:
            if isinstance(
                action, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)
            ):
                continue
            where = f"{path} {'/'.join(action.option_strings) or action.dest}"
            assert action.help, f"{where} has no help"
            if action.option_strings and not action.required:
                assert "default" in action.help, f"{where} does not say its default: {action.help!r}"


def test_help_names_the_environment_variables_behind_the_options():
    out = scimsvc("serve", "--help")
    assert out.returncode == 0, out.stderr
    for text in ("--port", "SCIMSVC_PORT", "8080", "--host", "SCIMSVC_HOST", "SCIMSVC_DATABASE_URL"):
        assert text in out.stdout
    out = scimsvc("worker", "--help")
    assert "SCIMSVC_WORKER_SHUTDOWN_SECONDS" in out.stdout and "(default 25)" in out.stdout


def test_a_bad_port_option_or_variable_exits_2():
    out = scimsvc("serve", "--port", "not-a-port")
    assert out.returncode == 2 and "argument --port: must be a port number" in out.stderr
    out = scimsvc("serve", env=_env(SCIMSVC_PORT="80x"))  # the option's default comes from here
    assert out.returncode == 2
    assert out.stderr.strip() == "scimsvc: error: SCIMSVC_PORT must be a whole number, got '80x'"


# --- errors: one line, a meaningful exit status ------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "variable", "value", "expected"),
    [
        ("serve", "SCIMSVC_DB_POOL_MAX", "ten", "SCIMSVC_DB_POOL_MAX must be a whole number, got 'ten'"),
        ("migrate", "SCIMSVC_SWEEP_AFTER_SECONDS", "-5", "SCIMSVC_SWEEP_AFTER_SECONDS must be 0 or more"),
        ("worker", "SCIMSVC_RATE_LIMIT_ENABLED", "maybe", "SCIMSVC_RATE_LIMIT_ENABLED must be true or false"),
        ("queue", "SCIMSVC_RATE_LIMIT_ON_REDIS_ERROR", "sometimes", "must be one of open, closed"),
        ("migrate", "SCIMSVC_LOG_LEVEL", "loud", "SCIMSVC_LOG_LEVEL must be one of debug, info"),
        ("serve", "SCIMSVC_LOG_FORMAT", "xml", "SCIMSVC_LOG_FORMAT must be one of json, text"),
    ],
)
def test_a_bad_setting_is_one_line_naming_the_variable_and_exits_2(command, variable, value, expected):
    out = scimsvc(command, env=_env(**{variable: value}))
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("scimsvc: error: ") and expected in lines[0]


@pytest.mark.parametrize("command", [["migrate"], ["tenant", "create", "Acme"], ["serve"], ["worker"]])
def test_an_unreachable_database_is_one_line_naming_its_address_and_exits_1(command):
    port = free_port()  # nothing listens there
    url = f"postgresql://scimsvc:hunter2@127.0.0.1:{port}/scimsvc"
    out = scimsvc(*command, env=store_env(url, new_queue(), SCIMSVC_PORT=str(free_port())))
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr and "hunter2" not in out.stderr
    lines = error_lines(out.stderr)  # the worker logs its start (JSON) before it connects
    assert lines == [
        f"scimsvc: error: cannot connect to PostgreSQL at 127.0.0.1:{port} (SCIMSVC_DATABASE_URL): "
        "connection refused"
    ], out.stderr


def test_a_missing_database_says_migrate_creates_it(database_url):
    url = with_database(database_url, f"scimsvc_missing_{uuid.uuid4().hex[:8]}")
    out = scimsvc("tenant", "create", "Acme", env=store_env(url, new_queue()))
    assert out.returncode == 1
    assert error_lines(out.stderr) == [
        f"scimsvc: error: cannot connect to PostgreSQL at {address(url, 5432)} (SCIMSVC_DATABASE_URL): "
        f'database "{urlsplit(url).path[1:]}" does not exist (`scimsvc migrate` creates it)'
    ], out.stderr


def test_a_port_in_use_is_one_line(database_url, running):
    queue = new_queue()
    port = free_port()
    first = running("serve", "--port", str(port), env=store_env(database_url, queue))
    first.wait_for(lambda: _http_status(f"http://127.0.0.1:{port}/ops/health") == 200, "the first serve")
    out = scimsvc("serve", "--port", str(port), env=store_env(database_url, queue))
    assert out.returncode == 1
    assert error_lines(out.stderr) == [
        f"scimsvc: error: cannot listen on 127.0.0.1:{port} (--host/--port, SCIMSVC_HOST/SCIMSVC_PORT): "
        "address already in use"
    ], out.stderr


def _http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status
    except OSError:
        return None


# --- scimsvc queue's exit status ----------------------------------------------------------------------


@pytest.fixture
def fresh_database() -> Iterator[str]:
    """A database of this test's own, created by `scimsvc migrate`, so its outbox holds only its rows."""
    url = with_database(SERVER_URL, f"scimsvc_clitest_{uuid.uuid4().hex[:8]}")
    try:
        yield url
    finally:
        asyncio.run(_drop_database(url))


def test_queue_exit_status_follows_the_verdict(fresh_database, running):
    queue = new_queue()
    env = store_env(fresh_database, queue)
    out = scimsvc("migrate", env=env)
    assert out.returncode == 0, out.stderr

    # Nothing waits, but no worker is alive: degraded.
    out = scimsvc("queue", env=env)
    assert "status: degraded" in out.stdout and out.returncode == 1, out.stdout + out.stderr

    # A worker beats: ok.
    worker = running("worker", env=env)
    deadline = time.monotonic() + DEADLINE
    while (out := scimsvc("queue", env=env)).returncode != 0:
        assert worker.proc.poll() is None, worker.stderr
        assert time.monotonic() < deadline, out.stdout + out.stderr
    assert "status: ok" in out.stdout
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.exit_status() == 0, worker.stderr

    # A change unapplied for 400 s, and no worker: stalled.
    async def age_a_change() -> None:
        conn = await asyncpg.connect(fresh_database)
        try:
            tenant_id = await conn.fetchval("INSERT INTO tenants (name) VALUES ('queue-cli') RETURNING id")
            await conn.execute(
                "INSERT INTO outbox (tenant_id, resource_type, resource_id, change, created_at) "
                "VALUES ($1, 'group', gen_random_uuid(), 'update', now() - interval '400 seconds')",
                tenant_id,
            )
        finally:
            await conn.close()

    asyncio.run(age_a_change())
    out = scimsvc("queue", env=env)
    assert "status: stalled" in out.stdout and out.returncode == 2, out.stdout + out.stderr


def test_queue_exits_3_when_it_cannot_read_the_figures(database_url):
    redis_port, pg_port = free_port(), free_port()
    out = scimsvc(
        "queue",
        env=store_env(database_url, new_queue(), SCIMSVC_REDIS_URL=f"redis://127.0.0.1:{redis_port}/0"),
    )
    assert out.returncode == 3, out.stdout + out.stderr
    assert "status:" in out.stdout  # the outbox figures, which PostgreSQL gave, are shown
    assert error_lines(out.stderr) == [
        "scimsvc: error: cannot read the queue figures: cannot connect to Redis at "
        f"127.0.0.1:{redis_port} (SCIMSVC_REDIS_URL)"
    ]

    out = scimsvc("queue", env=store_env(f"postgresql://postgres@127.0.0.1:{pg_port}/scimsvc", new_queue()))
    assert out.returncode == 3, out.stdout + out.stderr
    assert error_lines(out.stderr) == [
        "scimsvc: error: cannot read the queue figures: cannot connect to PostgreSQL at "
        f"127.0.0.1:{pg_port} (SCIMSVC_DATABASE_URL): connection refused"
    ]


# --- the worker's stop ------------------------------------------------------------------------------

WAITING_BEHIND = "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))"
UNAPPLIED = "SELECT count(*) FROM outbox WHERE tenant_id = $1::uuid AND applied_at IS NULL"


async def _user_waiting_for_a_worker(aiohttp_client: Any, settings: Settings, queue: str) -> Any:
    """A tenant with one user POSTed and not applied yet, its drain job queued on `queue`."""
    client = await aiohttp_client(create_app(dataclasses.replace(settings, queue_name=queue)))
    tenant = await make_tenant(client)
    await post_user(client, tenant)
    return tenant


async def _drain_jobs_in_progress(redis: ArqRedis, queue: str) -> list[str]:
    """Ids of the queue's drain_users jobs that a worker has started."""
    started = []
    for raw in await redis.zrange(queue, 0, -1):
        job_id = raw.decode()
        info = await Job(job_id, redis, _queue_name=queue).info()
        if (
            info is not None
            and info.function == "drain_users"
            and await redis.exists(f"arq:in-progress:{job_id}")
        ):
            started.append(job_id)
    return started


async def _hold_tenant_lock(database_url: str, tenant_id: str) -> tuple[asyncpg.Connection, Any]:
    """Hold the tenant row as a drain's licensing lock wants it: the drain waits until we let go."""
    conn = await asyncpg.connect(database_url)
    tx = conn.transaction()
    await tx.start()
    await conn.execute("SELECT 1 FROM tenants WHERE id = $1::uuid FOR NO KEY UPDATE", tenant_id)
    return conn, tx


async def test_worker_sigterm_lets_a_running_job_finish(aiohttp_client, settings, database_url, db, running):
    queue = new_queue()
    tenant = await _user_waiting_for_a_worker(aiohttp_client, settings, queue)
    lock, tx = await _hold_tenant_lock(database_url, tenant.id)
    redis = ArqRedis.from_url(REDIS_URL)
    try:
        worker = running("worker", env=store_env(database_url, queue))

        async def drain_waits_on_our_lock() -> bool:
            return await db.fetchval(WAITING_BEHIND, lock.get_server_pid()) > 0

        await worker.until(drain_waits_on_our_lock, "the drain waiting on the tenant lock")
        in_progress = await _drain_jobs_in_progress(redis, queue)
        assert in_progress

        worker.proc.send_signal(signal.SIGTERM)
        await worker.until_line("shutdown on SIGTERM")  # the worker has taken the signal in
        assert worker.proc.poll() is None and await drain_waits_on_our_lock()  # the job still runs
        await tx.commit()

        assert await worker.ended() == 0, worker.stderr
        assert await db.fetchval(UNAPPLIED, tenant.id) == 0  # the job applied the user
        for job_id in in_progress:
            result = await Job(job_id, redis, _queue_name=queue).result_info()
            assert result is not None and result.success, worker.stderr  # finished, not cancelled
        assert "cancelled" not in worker.stderr
    finally:
        await lock.close()
        await redis.aclose()


async def test_worker_sigterm_stops_waiting_after_the_shutdown_bound(
    aiohttp_client, settings, database_url, db, running
):
    queue = new_queue()
    tenant = await _user_waiting_for_a_worker(aiohttp_client, settings, queue)
    lock, _ = await _hold_tenant_lock(database_url, tenant.id)
    redis = ArqRedis.from_url(REDIS_URL)
    try:
        worker = running("worker", env=store_env(database_url, queue, SCIMSVC_WORKER_SHUTDOWN_SECONDS="1"))

        async def drain_waits_on_our_lock() -> bool:
            return await db.fetchval(WAITING_BEHIND, lock.get_server_pid()) > 0

        await worker.until(drain_waits_on_our_lock, "the drain waiting on the tenant lock")
        in_progress = await _drain_jobs_in_progress(redis, queue)
        worker.proc.send_signal(signal.SIGTERM)
        # The lock is never let go: the worker gives up on the job after the bound and exits by itself.
        assert await worker.ended() == 0, worker.stderr
        assert await db.fetchval(UNAPPLIED, tenant.id) == 1
        for job_id in in_progress:  # cut, and left in the queue to be run again
            assert await redis.zscore(queue, job_id) is not None
    finally:
        await lock.close()
        await redis.aclose()


# --- logs: readable for `up`, cron ticks at DEBUG --------------------------------------------------------


def _is_tick(line: str) -> bool:
    """arq's line for a cron job that started (→) or finished (←)."""
    return "\u2192 cron:" in line or "\u2190 cron:" in line


def _level(line: str) -> str:
    return line.split()[1]  # text format: "HH:MM:SS LEVEL logger message  extras"


async def test_worker_logs_cron_ticks_at_debug_and_applied_changes_at_info(
    aiohttp_client, settings, database_url, running
):
    queue = new_queue()
    await _user_waiting_for_a_worker(aiohttp_client, settings, queue)
    env = store_env(database_url, queue, SCIMSVC_LOG_FORMAT="text", SCIMSVC_LOG_LEVEL="debug")
    worker = running("worker", env=env)
    await worker.until_line("applied user change create")
    await worker.until_line("\u2190 cron:sweep_outbox")  # finished; it runs at start-up, then every 15 s
    worker.proc.send_signal(signal.SIGTERM)
    assert await worker.ended() == 0, worker.stderr

    lines = worker.stderr.splitlines()
    assert lines and not any(line.startswith("{") for line in lines)
    ticks = [line for line in lines if _is_tick(line)]
    assert ticks, worker.stderr
    assert {_level(line) for line in ticks} == {"DEBUG"}, ticks
    assert all(_level(line) == "DEBUG" for line in lines if "recording health" in line)
    applied = [line for line in lines if "applied user change create" in line]
    assert applied and _level(applied[0]) == "INFO" and "request_id=" in applied[0]
    assert any(_level(line) == "INFO" and "Starting worker" in line for line in lines)


def test_at_info_cron_ticks_are_not_shown_and_job_failures_are(capsys):
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    arq_worker = logging.getLogger("arq.worker")
    try:
        logs.configure(level="INFO", fmt="text")
        # The calls arq 0.28 makes (arq/worker.py: run_job, record_health), with a cron job's reference.
        ref = "cron:sweep_outbox"  # a cron job's reference is its name
        arq_worker.info("%6.2fs \u2192 %s(%s)%s", 0.01, ref, "", "")
        arq_worker.info("%6.2fs \u2190 %s \u25cf %s", 0.02, ref, "0")
        arq_worker.info("recording health: %s", "Jan-01 00:00:00 j_complete=3 j_failed=0")
        arq_worker.info("%6.2fs \u2192 %s(%s)%s", 0.01, "4f2a:drain_users", "'t'", "")
        arq_worker.error("%6.2fs ! %s failed, %s: %s", 0.03, ref, "OSError", "boom")
        shown = capsys.readouterr().err
        assert "cron:sweep_outbox(" not in shown and "recording health" not in shown
        assert "4f2a:drain_users('t')" in shown  # jobs a request caused stay visible
        assert "ERROR" in shown and "failed, OSError: boom" in shown
        logs.configure(level="DEBUG", fmt="text")
        arq_worker.info("%6.2fs \u2192 %s(%s)%s", 0.01, ref, "", "")
        assert "DEBUG   arq.worker" in capsys.readouterr().err
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)


async def test_up_prints_readable_lines_without_cron_ticks(aiohttp_client, settings, database_url, running):
    import aiohttp

    queue, port = new_queue(), free_port()
    # No SCIMSVC_LOG_FORMAT: up's default. The port comes from SCIMSVC_PORT, as --port's default.
    env = store_env(database_url, queue, SCIMSVC_ADMIN_KEY=ADMIN_KEY, SCIMSVC_PORT=str(port))
    up = running("up", "--no-demo", env=env)

    async def serving() -> bool:
        return await asyncio.to_thread(_http_status, f"http://127.0.0.1:{port}/ops/health") == 200

    await up.until(serving, "up serving")
    client = await aiohttp_client(create_app(dataclasses.replace(settings, queue_name=queue)))
    tenant = await make_tenant(client)
    async with aiohttp.ClientSession() as session:
        body = {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": f"up-{uuid.uuid4().hex[:8]}@example.com",
        }
        async with session.post(
            f"http://127.0.0.1:{port}/scim/v2/Users", json=body, headers=tenant.headers
        ) as resp:
            assert resp.status == 201, await resp.text()
    await up.until_line("applied user change create")
    up.proc.send_signal(signal.SIGTERM)
    assert await up.ended() == 0, up.stderr

    lines = [line for line in up.stderr.splitlines() if line.strip()]
    assert not any(line.startswith("{") for line in lines), up.stderr  # text, not JSON
    assert not any(_is_tick(line) or "recording health" in line for line in lines), up.stderr
    assert any(_level(line) == "INFO" and "applied user change create" in line for line in lines)
    assert "Swagger UI:" in up.out_path.read_text()
