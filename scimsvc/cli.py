"""The `scimsvc` command: migrate, serve, worker, up, tenant and token management, loadtest."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import errno
import gc
import importlib.metadata
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Coroutine
from typing import Any
from uuid import UUID

from scimsvc import logs
from scimsvc.settings import Settings, SettingsError, _env_choice, _env_int

# Exit statuses: 0 done, 1 a runtime failure (PostgreSQL or Redis cannot be used, nothing to revoke), 2 a
# bad setting or usage (as argparse), 130 interrupted; `scimsvc queue` has its own (scimsvc/queue_view.py).
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency everywhere but Windows
        return asyncio.run(coro)
    return uvloop.run(coro)


async def _with_conn(settings: Settings, work: Any) -> Any:
    from scimsvc.store.db import connect

    conn = await connect(settings.database_url)
    try:
        return await work(conn)
    finally:
        await conn.close()


def cmd_migrate(settings: Settings, _: argparse.Namespace) -> int:
    from scimsvc.store.migrations import migrate

    applied = _run(migrate(settings.database_url))
    for m in applied:
        print(f"applied {m.version:04d}_{m.name}")
    print("database is up to date" if not applied else f"{len(applied)} migration(s) applied")
    return 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from aiohttp import web

    from scimsvc.app import create_app

    loop: asyncio.AbstractEventLoop
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:  # pragma: no cover
        loop = asyncio.new_event_loop()
    app = create_app(settings)
    app.on_startup.append(_freeze_startup_objects)  # last: after the pools and caches exist
    try:
        web.run_app(app, host=args.host, port=args.port, loop=loop)  # access log: create_app's handler_args
    except OSError as exc:
        if exc.errno not in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES) or "bind" not in str(exc):
            raise
        reason = os.strerror(exc.errno or 0).lower()
        _error(
            f"cannot listen on {args.host}:{args.port} (--host/--port, SCIMSVC_HOST/SCIMSVC_PORT): {reason}"
        )
        return EXIT_FAILURE
    return 0


async def _freeze_startup_objects(_: object) -> None:
    """What start-up made lives as long as the process: the collector need not scan it again.

    Without this, every full collection walks the schemas, routes and OpenAPI document anew while
    requests wait (gc.freeze: objects made later are collected as usual).
    """
    gc.collect()
    gc.freeze()


def cmd_worker(settings: Settings, _: argparse.Namespace) -> int:
    from arq.worker import Worker

    from worker.settings import POLL_DELAY_SECONDS, worker_settings

    try:
        import uvloop

        asyncio.set_event_loop(uvloop.new_event_loop())
    except ImportError:  # pragma: no cover
        asyncio.set_event_loop(asyncio.new_event_loop())
    Worker(**worker_settings(settings), poll_delay=POLL_DELAY_SECONDS).run()
    return 0


async def _create_tenant(
    settings: Settings, name: str, options: dict[str, Any], *, reuse: bool = False
) -> tuple[Any, UUID, str]:
    """Create a tenant (or, with `reuse`, take the oldest one of that name) and issue it a token."""
    from scimsvc.store import tenants

    async def work(conn: Any) -> tuple[Any, UUID, str]:
        async with conn.transaction():
            row = await tenants.find_tenant_by_name(conn, name) if reuse else None
            if row is None:
                row = await tenants.create_tenant(conn, name=name, settings=options)
            token_id, token = await tenants.create_token(conn, row["id"])
        return row, token_id, token

    return await _with_conn(settings, work)


def _print_tenant(settings: Settings, row: Any, token_id: UUID, token: str) -> None:
    print(f"tenant id:     {row['id']}")
    print(f"tenant name:   {row['name']}")
    print(f"seats:         {row['seats']}")
    print(f"SCIM base URL: {settings.public_url}/scim/v2")
    print(f"SCIM token id: {token_id}")
    print(f"SCIM token:    {token}")
    print("(the token is shown only now; only its hash is stored)")


def cmd_tenant_create(settings: Settings, args: argparse.Namespace) -> int:
    from marshmallow import ValidationError

    from schemas.admin import TenantCreateSchema
    from schemas.base import flatten_errors

    given = {
        "name": args.name,
        "seats": args.seats,
        "flexible_licenses": args.flexible or None,
        "default_license": args.default_license,
        "fallback_license": args.fallback_license,
        "allowed_domains": args.allowed_domain or None,
    }
    try:
        options = TenantCreateSchema().load({k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        _error("invalid tenant: " + "; ".join(flatten_errors(exc.messages)))
        return EXIT_USAGE
    row, token_id, token = _run(_create_tenant(settings, options.pop("name"), options))
    _print_tenant(settings, row, token_id, token)
    return 0


def cmd_token_create(settings: Settings, args: argparse.Namespace) -> int:
    from scimsvc.store import tenants

    async def work(conn: Any) -> tuple[UUID, str] | None:
        if await tenants.get_tenant(conn, args.tenant_id) is None:
            return None
        return await tenants.create_token(conn, args.tenant_id)

    created = _run(_with_conn(settings, work))
    if created is None:
        _error(f"no tenant {args.tenant_id}")
        return EXIT_FAILURE
    print(f"SCIM token id: {created[0]}")
    print(f"SCIM token:    {created[1]}")
    return 0


def cmd_token_revoke(settings: Settings, args: argparse.Namespace) -> int:
    from scimsvc.store import tenants

    revoked = _run(
        _with_conn(settings, lambda conn: tenants.revoke_token(conn, args.tenant_id, args.token_id))
    )
    if not revoked:
        _error(f"no active token {args.token_id} for tenant {args.tenant_id}")
        return EXIT_FAILURE
    print(f"revoked {args.token_id}")
    return 0


def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    """Migrate, create a demo tenant, then run the worker (child process) and the web front end.

    Without a database or Redis URL and with nothing answering on the default ports, it first starts
    an embedded PostgreSQL and Redis (scimsvc.embedded) and stops them on exit.
    """
    from scimsvc.connection_errors import one_line
    from scimsvc.embedded import EmbeddedError, embedded_services

    try:
        with embedded_services(settings) as settings:
            return _up(settings, args)
    except EmbeddedError as exc:
        _error(str(exc))
        return EXIT_FAILURE
    except Exception as exc:
        line = one_line(exc, settings)  # the URLs of the servers `up` chose
        if line is None:
            raise
        _error(line)
        return EXIT_FAILURE


def _up(settings: Settings, args: argparse.Namespace) -> int:
    """`up` once PostgreSQL and Redis are there: migrate, the demo tenant, the worker, the front end."""
    cmd_migrate(settings, args)
    if not args.no_demo:
        row, token_id, token = _run(_create_tenant(settings, "demo", {"seats": 10}, reuse=True))
        print("\n== demo tenant ==")
        _print_tenant(settings, row, token_id, token)
    print(f"Swagger UI:    {settings.public_url}/api/docs")
    print(f"Console:       {settings.public_url}/console/ (sign in with SCIMSVC_ADMIN_KEY)\n")
    # The worker logs as this process does, even when `up`'s output goes to a pipe or a file.
    env = {**os.environ, "SCIMSVC_LOG_FORMAT": args.log_format, "SCIMSVC_LOG_LEVEL": args.log_level}
    worker = subprocess.Popen([sys.executable, "-m", "scimsvc", "worker"], env=env)
    try:
        return cmd_serve(settings, args)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:  # it lets its running jobs finish first (SCIMSVC_WORKER_SHUTDOWN_SECONDS)
            worker.wait(timeout=settings.worker_shutdown_seconds + 10)
        except subprocess.TimeoutExpired:
            worker.kill()


# Settings each command reads beyond its options, listed under its --help (all of them: README.md,
# Configuration).
_DATABASE = ("SCIMSVC_DATABASE_URL", "PostgreSQL (default postgresql://postgres@127.0.0.1:5432/scimsvc)")
_REDIS = ("SCIMSVC_REDIS_URL", "Redis (default redis://127.0.0.1:6379/0)")
_QUEUE = ("SCIMSVC_QUEUE_NAME", "arq queue name (default scimsvc:queue)")
_PUBLIC = ("SCIMSVC_PUBLIC_URL", "address shown in SCIM base URLs (default http://HOST:PORT served)")
_ADMIN = ("SCIMSVC_ADMIN_KEY", "operator key of /admin/v1 and the console (default empty: 403)")
_LOGS = (
    ("SCIMSVC_LOG_LEVEL", "debug, info, warning, error or critical (default info)"),
    ("SCIMSVC_LOG_FORMAT", "json or text (default text for `up` or when stderr is a terminal, else json)"),
)
ENVIRONMENT: dict[str, tuple[tuple[str, str], ...]] = {
    "migrate": (_DATABASE, *_LOGS),
    "serve": (_DATABASE, _REDIS, _QUEUE, _PUBLIC, _ADMIN, *_LOGS),
    "worker": (
        _DATABASE,
        _REDIS,
        _QUEUE,
        ("SCIMSVC_WORKER_MAX_JOBS", "jobs run at once (default 20)"),
        (
            "SCIMSVC_WORKER_SHUTDOWN_SECONDS",
            "on SIGTERM/SIGINT, how long running jobs may finish (default 25)",
        ),
        *_LOGS,
    ),
    "up": (
        _DATABASE,
        _REDIS,
        _PUBLIC,
        _ADMIN,
        ("SCIMSVC_DATA_DIR", "data of the embedded PostgreSQL and Redis, if started (default ./.local)"),
        *_LOGS,
    ),
    "tenant": (
        _DATABASE,
        ("SCIMSVC_PUBLIC_URL", "address shown in the SCIM base URL (default http://127.0.0.1:8080)"),
    ),
    "token": (_DATABASE,),
    "queue": (
        _DATABASE,
        _REDIS,
        _QUEUE,
        ("SCIMSVC_QUEUE_DEGRADED_AFTER_SECONDS", "oldest unapplied change older: degraded (default 60)"),
        ("SCIMSVC_QUEUE_STALLED_AFTER_SECONDS", "oldest unapplied change older: stalled (default 300)"),
    ),
}


def _epilog(command: str) -> str:
    entries = ENVIRONMENT.get(command, ())
    if not entries:
        return ""
    width = max(len(name) for name, _ in entries)
    lines = "".join(f"\n  {name:<{width}}  {meaning}" for name, meaning in entries)
    return f"environment:{lines}\n\nEvery setting: README.md, Configuration."


def _add_command(
    sub: Any, name: str, helptext: str, *, description: str | None = None, env: str | None = None
) -> argparse.ArgumentParser:
    """A subcommand whose --help ends with the environment variables it reads (ENVIRONMENT[env or name])."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=helptext,
        description=textwrap.fill(description or helptext[:1].upper() + helptext[1:] + ".", 79),
        epilog=_epilog(env or name),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def _port(text: str) -> int:
    """argparse type of --port."""
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 0 to 65535, got {text!r}")
    return int(text)


def _version() -> str:
    try:
        return importlib.metadata.version("scimsvc")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The `scimsvc` argument parser: every subcommand with its options, defaults and variables."""
    parser = argparse.ArgumentParser(
        prog="scimsvc",
        description=__doc__,
        epilog="Exit status: 0 done, 1 failed (PostgreSQL or Redis unreachable, nothing found), 2 bad "
        "setting or usage; `scimsvc queue`: 0 ok, 1 degraded, 2 stalled, 3 figures unreadable.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _add_command(sub, "migrate", "create the database if needed and apply migrations").set_defaults(
        func=cmd_migrate
    )
    for name, func, helptext in (
        ("serve", cmd_serve, "run the web front end"),
        ("up", cmd_up, "migrate, print a demo tenant and token, run web + worker"),
    ):
        p = _add_command(sub, name, helptext)
        p.add_argument(
            "--host", help="address to listen on (default: SCIMSVC_HOST, else 127.0.0.1)", metavar="HOST"
        )
        p.add_argument(
            "--port", type=_port, help="port to listen on (default: SCIMSVC_PORT, else 8080)", metavar="PORT"
        )
        if name == "up":
            p.add_argument(
                "--no-demo",
                action="store_true",
                help="do not create or reuse the `demo` tenant (default: do)",
            )
        p.set_defaults(func=func)
    _add_command(
        sub,
        "worker",
        "run the arq worker (jobs and the outbox sweeper)",
        description="Run the arq worker: the jobs that apply changes, and the outbox sweeper every 15 s. "
        "SIGTERM or SIGINT stops taking jobs and lets running ones finish for up to "
        "SCIMSVC_WORKER_SHUTDOWN_SECONDS, then exits 0.",
    ).set_defaults(func=cmd_worker)

    tenant = _add_command(sub, "tenant", "manage tenants").add_subparsers(
        dest="tenant_command", required=True, metavar="ACTION"
    )
    create = _add_command(
        tenant,
        "create",
        "create a tenant and print its id and a SCIM token",
        description="Create a tenant and print its id, SCIM base URL and a SCIM token (shown only now).",
        env="tenant",
    )
    create.add_argument("name", help="the tenant's name")
    create.add_argument("--seats", type=int, help="full seats (default: 10)")
    create.add_argument(
        "--flexible",
        action="store_true",
        help="flexible licenses: users get --default-license, a seat only with userType Full (default: off)",
    )
    create.add_argument(
        "--default-license",
        choices=["free", "free_restricted"],
        help="with --flexible, the license a new user gets (default: free)",
    )
    create.add_argument(
        "--fallback-license",
        choices=["free_restricted", "none"],
        help="without --flexible, the license of a user left without a seat (default: free_restricted)",
    )
    create.add_argument(
        "--allowed-domain",
        action="append",
        default=[],
        metavar="DOMAIN",
        help="a domain the tenant's userNames may have; repeat for several (default: any domain)",
    )
    create.set_defaults(func=cmd_tenant_create)

    token = _add_command(sub, "token", "manage SCIM tokens").add_subparsers(
        dest="token_command", required=True, metavar="ACTION"
    )
    tcreate = _add_command(
        token,
        "create",
        "issue a new SCIM token for a tenant (shown once)",
        description="Issue another SCIM token for a tenant (shown only now); the old ones stay valid.",
        env="token",
    )
    tcreate.add_argument("tenant_id", type=UUID, help="the tenant's id")
    tcreate.set_defaults(func=cmd_token_create)
    trevoke = _add_command(
        token,
        "revoke",
        "revoke a SCIM token",
        description="Revoke one SCIM token: from then on it gets 401. Exit status 1 if it was not active.",
        env="token",
    )
    trevoke.add_argument("tenant_id", type=UUID, help="the tenant's id")
    trevoke.add_argument("token_id", type=UUID, help="the token's id (printed when it was issued)")
    trevoke.set_defaults(func=cmd_token_revoke)

    from scimsvc.queue_view import add_queue_command  # imports rich only when the CLI is built

    add_queue_command(sub, epilog=_epilog("queue"))

    from scimsvc.loadtest import add_loadtest_command  # its options live with the command

    add_loadtest_command(sub)
    return parser


def _settings_for(args: argparse.Namespace) -> Settings:
    """Settings from the environment; without SCIMSVC_PUBLIC_URL, the address being served is public."""
    settings = Settings.from_env()
    if hasattr(args, "port"):
        args.host = args.host or os.environ.get("SCIMSVC_HOST") or "127.0.0.1"
        if args.port is None:
            args.port = _env_int("SCIMSVC_PORT", 8080, maximum=65535)
        if not os.environ.get("SCIMSVC_PUBLIC_URL"):
            settings = dataclasses.replace(settings, public_url=f"http://{args.host}:{args.port}")
    return settings


def _error(message: str) -> None:
    """One line on stderr, as argparse words its errors."""
    print(f"scimsvc: error: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run one `scimsvc` command; returns its exit status."""
    args = build_parser().parse_args(argv)  # usage errors: argparse prints them and exits 2
    settings: Settings | None = None
    try:
        # `up` is what a person runs at a terminal; the services log JSON unless stderr is one.
        readable = args.command == "up" or sys.stderr.isatty()
        args.log_format = _env_choice("SCIMSVC_LOG_FORMAT", logs.FORMATS, "text" if readable else "json")
        args.log_level = _env_choice("SCIMSVC_LOG_LEVEL", logs.LEVELS, "info")
        logs.configure(level=args.log_level, fmt=args.log_format)
        settings = _settings_for(args)
        return int(args.func(settings, args))
    except SettingsError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:
        from scimsvc.connection_errors import one_line

        # loadtest talks to a SCIM URL, not to the stores, and words its own errors.
        line = None if args.command == "loadtest" else one_line(exc, settings or Settings())
        if line is None:
            raise  # a bug: its traceback is what to report
        _error(line)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
