"""The `scimsvc` command behaves as a command-line server should: run as people and scripts run it."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import subprocess
import sys
import tomllib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
from arq.connections import ArqRedis
from arq.jobs import Job

from scimsvc.cli import build_parser
from scimsvc.ops import logs
from scimsvc.ops.connection_errors import address
from scimsvc.settings import Settings
from scimsvc.web.app import create_app
from tests.conftest import (
    ADMIN_KEY,
    PROCESS_DEADLINE,
    REDIS_URL,
    RUN_ID,
    SERVER_URL,
    Processes,
    _drop_database,
    answers_health,
    bare_env,
    free_port,
    make_tenant,
    post_user,
    run_scimsvc,
    service_env,
    with_database,
)


def store_env(database_url: str, queue: str, **values: str) -> dict[str, str]:
    """`service_env` at the log level people run with (info, the default): these tests read its lines."""
    return service_env(database_url, queue_name=queue, **{"SCIMSVC_LOG_LEVEL": "info", **values})


def new_queue() -> str:
    return f"scimsvc:test:{RUN_ID}:cli:{uuid.uuid4().hex[:8]}"


def error_lines(stderr: str) -> list[str]:
    """stderr without log lines (JSON objects): what the command itself printed."""
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith("{")]


# --- version and help ------------------------------------------------------------------------------


ROOT = Path(__file__).resolve().parent.parent


def project_version() -> str:
    """The version in pyproject.toml, the one place it is written (CONTRIBUTING.md, Changelog)."""
    with (ROOT / "pyproject.toml").open("rb") as f:
        version = tomllib.load(f)["project"]["version"]
    assert isinstance(version, str)
    return version


def test_python_m_scimsvc_prints_the_version_in_pyproject():
    out = run_scimsvc("--version")
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"scimsvc {project_version()}\n", "installed metadata is stale: pip install -e ."


def test_the_installed_scimsvc_command_prints_the_version():
    out = subprocess.run(
        [str(Path(sys.executable).with_name("scimsvc")), "--version"],
        env=bare_env(),
        capture_output=True,
        text=True,
        timeout=PROCESS_DEADLINE,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"scimsvc {project_version()}\n"


async def test_the_openapi_document_states_the_same_version(client: Any) -> None:
    resp = await client.get("/api/docs/openapi.json")
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["info"]["version"] == project_version()


def test_the_changelog_has_an_unreleased_section_and_the_current_version():
    headings = [line for line in (ROOT / "CHANGELOG.md").read_text().splitlines() if line.startswith("## ")]
    assert headings[0] == "## [Unreleased]"
    assert any(h.startswith(f"## [{project_version()}] - ") for h in headings), headings


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
    out = run_scimsvc("serve", "--help")
    assert out.returncode == 0, out.stderr
    for text in ("--port", "SCIMSVC_PORT", "8080", "--host", "SCIMSVC_HOST", "SCIMSVC_DATABASE_URL"):
        assert text in out.stdout
    out = run_scimsvc("worker", "--help")
    assert "SCIMSVC_WORKER_SHUTDOWN_SECONDS" in out.stdout and "(default 25)" in out.stdout


def test_a_bad_port_option_or_variable_exits_2():
    out = run_scimsvc("serve", "--port", "not-a-port")
    assert out.returncode == 2 and "argument --port: must be a port number" in out.stderr
    out = run_scimsvc("serve", env=bare_env(SCIMSVC_PORT="80x"))  # the option's default comes from here
    assert out.returncode == 2
    assert out.stderr.strip() == "scimsvc: error: SCIMSVC_PORT must be a whole number, got '80x'"


# --- errors: one line, a meaningful exit status ------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "variable", "value", "expected"),
    [
        ("serve", "SCIMSVC_DB_POOL_MAX", "ten", "SCIMSVC_DB_POOL_MAX must be a whole number, got 'ten'"),
        ("migrate", "SCIMSVC_SWEEP_AFTER_SECONDS", "-5", "SCIMSVC_SWEEP_AFTER_SECONDS must be 0 or more"),
        ("worker", "SCIMSVC_RATE_LIMIT_ENABLED", "maybe", "SCIMSVC_RATE_LIMIT_ENABLED must be true or false"),
        ("serve", "SCIMSVC_RATE_LIMIT_ON_REDIS_ERROR", "sometimes", "must be one of open, closed"),
        ("migrate", "SCIMSVC_LOG_LEVEL", "loud", "SCIMSVC_LOG_LEVEL must be one of debug, info"),
        ("serve", "SCIMSVC_LOG_FORMAT", "xml", "SCIMSVC_LOG_FORMAT must be one of json, text"),
    ],
)
def test_a_bad_setting_is_one_line_naming_the_variable_and_exits_2(command, variable, value, expected):
    out = run_scimsvc(command, env=bare_env(**{variable: value}))
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("scimsvc: error: ") and expected in lines[0]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["tenant", "create", "Acme", "--seats", "ten"], "argument --seats: invalid int value: 'ten'"),
        (["serve", "--port", "99999"], "argument --port: must be a port number from 0 to 65535"),
        (["token", "create", "not-a-uuid"], "argument tenant_id: invalid UUID value"),
        # Each refresh reads PostgreSQL and Redis: 0 or less would be a busy loop.
        (["queue", "--watch", "--interval", "0"], "argument --interval: must be a number of seconds"),
        (["queue", "--watch", "--interval", "-1"], "argument --interval: must be a number of seconds"),
        # loadtest checks some of its options itself, and words its refusals the same way.
        (
            ["loadtest", "--base-url", "http://127.0.0.1:9/scim/v2", "--token", "t", "--rate", "-1"],
            "--rate must",
        ),
        (["loadtest", "--base-url", "http://example.com/scim/v2", "--token", "t"], "not a loopback address"),
    ],
)
def test_an_option_argparse_refuses_is_one_line_and_exits_2(args, expected):
    # argparse prints its usage block before the error; scimsvc's parser says where the usage is instead.
    out = run_scimsvc(*args, env=bare_env())
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(f"scimsvc {args[0]}") and expected in lines[0], lines[0]
    assert lines[0].endswith("--help)"), lines[0]


@pytest.mark.parametrize("command", [["migrate"], ["tenant", "create", "Acme"], ["serve"], ["worker"]])
def test_an_unreachable_database_is_one_line_naming_its_address_and_exits_1(command):
    port = free_port()  # nothing listens there
    url = f"postgresql://scimsvc:hunter2@127.0.0.1:{port}/scimsvc"
    out = run_scimsvc(*command, env=store_env(url, new_queue(), SCIMSVC_PORT=str(free_port())))
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr and "hunter2" not in out.stderr
    lines = error_lines(out.stderr)  # the worker logs its start (JSON) before it connects
    assert lines == [
        f"scimsvc: error: cannot connect to PostgreSQL at 127.0.0.1:{port} (SCIMSVC_DATABASE_URL): "
        "connection refused"
    ], out.stderr


def test_migrate_names_the_direct_url_it_could_not_reach(database_url):
    port = free_port()  # nothing listens there; the pooler's URL is fine but migrate does not use it
    direct = f"postgresql://scimsvc:hunter2@127.0.0.1:{port}/scimsvc"
    env = store_env(database_url, new_queue(), SCIMSVC_DATABASE_DIRECT_URL=direct)
    out = run_scimsvc("migrate", env=env)
    assert out.returncode == 1, out.stderr
    assert error_lines(out.stderr) == [
        f"scimsvc: error: cannot connect to PostgreSQL at 127.0.0.1:{port} (SCIMSVC_DATABASE_DIRECT_URL): "
        "connection refused"
    ], out.stderr


def test_a_missing_database_says_migrate_creates_it(database_url):
    url = with_database(database_url, f"scimsvc_missing_{uuid.uuid4().hex[:8]}")
    out = run_scimsvc("tenant", "create", "Acme", env=store_env(url, new_queue()))
    assert out.returncode == 1
    assert error_lines(out.stderr) == [
        f"scimsvc: error: cannot connect to PostgreSQL at {address(url, 5432)} (SCIMSVC_DATABASE_URL): "
        f'database "{urlsplit(url).path[1:]}" does not exist (`scimsvc migrate` creates it)'
    ], out.stderr


async def test_a_port_in_use_is_one_line(database_url, processes: Processes):
    env = store_env(database_url, new_queue())
    port = urlsplit(await processes.serve(env)).port  # the first serve answers on it
    out = await processes.run("serve", "--port", str(port), env=env)
    assert out.returncode == 1
    assert error_lines(out.stderr) == [
        f"scimsvc: error: cannot listen on 127.0.0.1:{port} (--host/--port, SCIMSVC_HOST/SCIMSVC_PORT): "
        "address already in use"
    ], out.stderr


# --- scimsvc queue's exit status ----------------------------------------------------------------------


@pytest.fixture
async def fresh_database() -> AsyncIterator[str]:
    """A database of this test's own, created by `scimsvc migrate`, so its outbox holds only its rows."""
    url = with_database(SERVER_URL, f"scimsvc_clitest_{uuid.uuid4().hex[:8]}")
    try:
        yield url
    finally:
        await _drop_database(url)


async def test_queue_exit_status_follows_the_verdict(fresh_database, processes: Processes):
    queue = new_queue()
    env = store_env(fresh_database, queue)
    out = await processes.run("migrate", env=env)
    assert out.returncode == 0, out.stderr

    # Nothing waits, but no worker is alive: degraded.
    out = await processes.run("queue", env=env)
    assert "status: degraded" in out.stdout and out.returncode == 1, out.stdout + out.stderr

    # A worker beats: ok.
    worker = await processes.worker(env)

    async def queue_ok() -> Any:
        out = await processes.run("queue", env=env)
        return out if out.returncode == 0 else None

    out = await processes.until(worker, queue_ok, what="`scimsvc queue` to exit 0")
    assert "status: ok" in out.stdout
    assert await processes.stop(worker) == 0, processes.stderr(worker)

    # A change unapplied for 400 s, and no worker: stalled.
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
    out = await processes.run("queue", env=env)
    assert "status: stalled" in out.stdout and out.returncode == 2, out.stdout + out.stderr


def test_queue_exits_3_when_it_cannot_read_the_figures(database_url):
    redis_port, pg_port = free_port(), free_port()
    out = run_scimsvc(
        "queue",
        env=store_env(database_url, new_queue(), SCIMSVC_REDIS_URL=f"redis://127.0.0.1:{redis_port}/0"),
    )
    assert out.returncode == 3, out.stdout + out.stderr
    assert "status:" in out.stdout  # the outbox figures, which PostgreSQL gave, are shown
    assert error_lines(out.stderr) == [
        "scimsvc: error: cannot read the queue figures: cannot connect to Redis at "
        f"127.0.0.1:{redis_port} (SCIMSVC_REDIS_URL)"
    ]

    out = run_scimsvc(
        "queue", env=store_env(f"postgresql://postgres@127.0.0.1:{pg_port}/scimsvc", new_queue())
    )
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


async def test_worker_sigterm_lets_a_running_job_finish(
    aiohttp_client, settings, database_url, db, processes: Processes
):
    queue = new_queue()
    tenant = await _user_waiting_for_a_worker(aiohttp_client, settings, queue)
    lock, tx = await _hold_tenant_lock(database_url, tenant.id)
    redis = ArqRedis.from_url(REDIS_URL)
    try:
        worker = await processes.worker(store_env(database_url, queue))

        async def drain_waits_on_our_lock() -> bool:
            return await db.fetchval(WAITING_BEHIND, lock.get_server_pid()) > 0

        await processes.until(worker, drain_waits_on_our_lock, what="the drain waiting on the tenant lock")
        in_progress = await _drain_jobs_in_progress(redis, queue)
        assert in_progress

        worker.send_signal(signal.SIGTERM)
        await processes.until_line(worker, "shutdown on SIGTERM")  # the worker has taken the signal in
        assert worker.returncode is None and await drain_waits_on_our_lock()  # the job still runs
        await tx.commit()

        assert await processes.ended(worker) == 0, processes.stderr(worker)
        assert await db.fetchval(UNAPPLIED, tenant.id) == 0  # the job applied the user
        for job_id in in_progress:
            result = await Job(job_id, redis, _queue_name=queue).result_info()
            assert result is not None and result.success, processes.stderr(worker)  # finished, not cancelled
        assert "cancelled" not in processes.stderr(worker)
    finally:
        await lock.close()
        await redis.aclose()


async def test_worker_sigterm_stops_waiting_after_the_shutdown_bound(
    aiohttp_client, settings, database_url, db, processes: Processes
):
    queue = new_queue()
    tenant = await _user_waiting_for_a_worker(aiohttp_client, settings, queue)
    lock, _ = await _hold_tenant_lock(database_url, tenant.id)
    redis = ArqRedis.from_url(REDIS_URL)
    try:
        worker = await processes.worker(store_env(database_url, queue, SCIMSVC_WORKER_SHUTDOWN_SECONDS="1"))

        async def drain_waits_on_our_lock() -> bool:
            return await db.fetchval(WAITING_BEHIND, lock.get_server_pid()) > 0

        await processes.until(worker, drain_waits_on_our_lock, what="the drain waiting on the tenant lock")
        in_progress = await _drain_jobs_in_progress(redis, queue)
        worker.send_signal(signal.SIGTERM)
        # The lock is never let go: the worker gives up on the job after the bound and exits by itself.
        assert await processes.ended(worker) == 0, processes.stderr(worker)
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
    aiohttp_client, settings, database_url, processes: Processes
):
    queue = new_queue()
    await _user_waiting_for_a_worker(aiohttp_client, settings, queue)
    env = store_env(database_url, queue, SCIMSVC_LOG_FORMAT="text", SCIMSVC_LOG_LEVEL="debug")
    worker = await processes.worker(env)
    await processes.until_line(worker, "applied user change create")
    await processes.until_line(
        worker, "\u2190 cron:sweep_outbox"
    )  # finished; it runs at start-up, then every 15 s
    assert await processes.stop(worker) == 0, processes.stderr(worker)

    stderr = processes.stderr(worker)
    lines = stderr.splitlines()
    assert lines and not any(line.startswith("{") for line in lines)
    ticks = [line for line in lines if _is_tick(line)]
    assert ticks, stderr
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


def test_up_stops_serving_when_its_worker_dies(database_url):
    # The worker cannot reach Redis and exits 1; up must not go on acknowledging writes nobody applies.
    queue, port, dead = new_queue(), free_port(), free_port()  # nothing listens on `dead`
    env = store_env(database_url, queue, SCIMSVC_REDIS_URL=f"redis://127.0.0.1:{dead}/0")
    out = run_scimsvc("up", "--port", str(port), "--no-demo", env=env)
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    mine = [line for line in error_lines(out.stderr) if line.startswith("scimsvc: error: ")]
    assert f"cannot connect to Redis at 127.0.0.1:{dead}" in mine[0], out.stderr  # the worker's line
    assert mine[-1].startswith("scimsvc: error: the worker (pid "), out.stderr
    assert "exited with status 1, so up stopped serving" in mine[-1]


async def test_up_prints_readable_lines_without_cron_ticks(
    aiohttp_client, settings, database_url, processes: Processes
):
    import aiohttp

    queue, port = new_queue(), free_port()
    # No SCIMSVC_LOG_FORMAT: up's default. The port comes from SCIMSVC_PORT, as --port's default.
    env = store_env(database_url, queue, SCIMSVC_ADMIN_KEY=ADMIN_KEY, SCIMSVC_PORT=str(port))
    up = await processes.start("up", "--no-demo", env=env)
    await processes.until(up, lambda: answers_health(f"http://127.0.0.1:{port}"), what="up serving")
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
    await processes.until_line(up, "applied user change create")
    assert await processes.stop(up) == 0, processes.stderr(up)

    stderr = processes.stderr(up)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert not any(line.startswith("{") for line in lines), stderr  # text, not JSON
    assert not any(_is_tick(line) or "recording health" in line for line in lines), stderr
    assert any(_level(line) == "INFO" and "applied user change create" in line for line in lines)
    assert "Swagger UI:" in processes.stdout(up)
