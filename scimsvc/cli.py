"""The `scimsvc` command: migrate, serve, worker, up, tenant and token management, loadtest."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import errno
import gc
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Coroutine
from typing import Any, NoReturn
from uuid import UUID

from scimsvc import __version__
from scimsvc.ops import logs, metrics_folder
from scimsvc.settings import MAX_WEB_PROCESSES, Settings, SettingsError, env_choice, env_int, env_value
from scimsvc.tools import embedded

# Exit statuses: 0 done, 1 a runtime failure (PostgreSQL or Redis cannot be used, nothing to revoke, an
# applied migration changed), 2 a bad setting or usage (as argparse), 130 interrupted; `scimsvc queue`
# has its own (scimsvc/ops/queue_view.py), a bad setting included.
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency everywhere but Windows
        return asyncio.run(coro)
    return uvloop.run(coro)


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from scimsvc.store.app_role import set_up_app_role
    from scimsvc.store.migrations import MigrationError, migrate

    settings.check_session_url()
    try:
        applied = _run(migrate(settings.direct_url))
        for m in applied:
            print(f"applied {m.version:04d}_{m.name}")
        print("database is up to date" if not applied else f"{len(applied)} migration(s) applied")
        role = getattr(args, "app_role", None)  # `up` migrates without one
        if role:
            done = _run(set_up_app_role(settings.direct_url, role, password=settings.app_role_password))
            print(f"app role {role}: {done.summary()}")
    except MigrationError as exc:  # an applied migration changed, a role that cannot be set up
        _error(str(exc))
        return EXIT_FAILURE
    return 0


def _role_name(text: str) -> str:
    """argparse type of --app-role."""
    from scimsvc.store.app_role import role_name_problem

    problem = role_name_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    # Resolved here: run_app resolves it after start-up, where PostgreSQL's unknown host raises alike.
    try:
        socket.getaddrinfo(args.host, args.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        _error(
            f"cannot listen on {args.host}:{args.port} (--host/--port, SCIMSVC_HOST/SCIMSVC_PORT): "
            f"unknown host ({exc.strerror})"
        )
        return EXIT_FAILURE
    settings.check_session_url()
    processes = args.processes or settings.web_processes
    if processes > 1:
        return _serve_processes(settings, args, processes)
    metrics_folder.single_process()  # before create_app imports prometheus_client
    internal = _internal_listener(settings, args)
    if internal is None and settings.internal_port:
        return EXIT_FAILURE
    try:
        _serve_app(settings, host=args.host, port=args.port, sockets=[internal] if internal else [])
    except OSError as exc:
        if exc.errno not in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES) or "bind" not in str(exc):
            raise
        _cannot_listen(args.host, args.port, exc)
        return EXIT_FAILURE
    return 0


def _serve_app(
    settings: Settings, *, host: str | None, port: int | None, sockets: list[socket.socket]
) -> None:
    """Run `create_app(settings)` until SIGTERM/SIGINT: on host:port (if given) and on `sockets`."""
    from aiohttp import web

    from scimsvc.web import read_deadlines
    from scimsvc.web.app import create_app

    loop: asyncio.AbstractEventLoop
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:  # pragma: no cover
        loop = asyncio.new_event_loop()
    app = create_app(settings)
    app.on_startup.append(_freeze_startup_objects)  # last: after the pools and caches exist
    read_deadlines.install(head_seconds=settings.header_read_seconds, body_seconds=settings.body_read_seconds)
    web.run_app(  # access log: create_app's handler_args
        app,
        host=host,
        port=port,
        sock=sockets or None,  # the internal port: a second site of the same app and pool
        loop=loop,
        keepalive_timeout=settings.keepalive_seconds,  # aiohttp's own: 75 s
        print=print if host is not None else None,  # the parent of several says where they serve
    )


def _cannot_listen(host: str, port: int, exc: OSError, *, variables: str = "") -> None:
    reason = os.strerror(exc.errno or 0).lower() if exc.errno else str(exc)
    variables = variables or "--host/--port, SCIMSVC_HOST/SCIMSVC_PORT"
    _error(f"cannot listen on {host}:{port} ({variables}): {reason}")


def _serve_processes(settings: Settings, args: argparse.Namespace, processes: int) -> int:
    """`serve` as `processes` processes on one port (scimsvc/web/process_group.py)."""
    from scimsvc.web import process_group

    ports = [(args.port, "")]
    if settings.internal_port:
        if settings.internal_port == args.port:
            raise SettingsError(
                f"SCIMSVC_INTERNAL_PORT must differ from the port served (--port/SCIMSVC_PORT), "
                f"got '{settings.internal_port}'"
            )
        ports.append((settings.internal_port, "SCIMSVC_INTERNAL_PORT"))
    for port, variables in ports:
        taken = process_group.port_taken(args.host, port)
        if taken is not None:
            _cannot_listen(args.host, port, taken, variables=variables)
            return EXIT_FAILURE
    print(f"======== Running on http://{args.host}:{args.port}, {processes} processes ========", flush=True)
    return process_group.supervise(
        _serve_child,
        (settings, args.host, args.port, args.log_level, args.log_format),
        processes=processes,
        say=_error,
    )


def _serve_child(
    index: int, settings: Settings, host: str, port: int, log_level: str, log_format: str
) -> None:
    """One of `serve --processes N`'s processes (a spawned interpreter): the app on SO_REUSEPORT sockets."""
    from scimsvc.web import process_group

    process_group.die_with_parent()
    logs.configure(level=log_level, fmt=log_format)
    sockets = []
    for listen_port, variables in ((port, ""), (settings.internal_port, "SCIMSVC_INTERNAL_PORT")):
        if not listen_port:
            continue
        try:
            sockets.append(process_group.reuse_port_socket(host, listen_port))
        except OSError as exc:
            _cannot_listen(host, listen_port, exc, variables=variables)
            sys.exit(EXIT_FAILURE)
    try:
        _serve_app(settings, host=None, port=None, sockets=sockets)
    except KeyboardInterrupt:  # SIGINT before run_app's handler was there: stopping anyway
        pass
    except Exception as exc:  # as main() words it for one process: PostgreSQL unreachable, ...
        from scimsvc.ops.connection_errors import one_line

        line = one_line(exc, settings)
        if line is None:
            raise  # a bug: its traceback is what to report
        _error(line)
        sys.exit(EXIT_FAILURE)


def _internal_listener(settings: Settings, args: argparse.Namespace) -> socket.socket | None:
    """The listening socket of SCIMSVC_INTERNAL_PORT on the served host (scimsvc/web/listeners.py), or
    None: when it is off, or when it cannot be bound (the error line is written)."""
    if not settings.internal_port:
        return None
    if settings.internal_port == args.port:
        raise SettingsError(
            f"SCIMSVC_INTERNAL_PORT must differ from the port served (--port/SCIMSVC_PORT), "
            f"got '{settings.internal_port}'"
        )
    family = socket.getaddrinfo(args.host, settings.internal_port, type=socket.SOCK_STREAM)[0][0]
    try:
        return socket.create_server((args.host, settings.internal_port), family=family, backlog=128)
    except OSError as exc:
        _cannot_listen(args.host, settings.internal_port, exc, variables="SCIMSVC_INTERNAL_PORT")
        return None


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


async def _acting(settings: Settings, work: Any) -> Any:
    """Run `work(scope)` as the operator's action (services/actions.py): actor `admin`, no request id."""
    from arq.connections import ArqRedis

    from scimsvc.services.actions import ActionScope, Actor
    from scimsvc.store.db import create_pool

    pool = await create_pool(settings.database_url, min_size=1, max_size=1, pooler=settings.database_pooler)
    # Only to wake the webhook deliverer: a Redis that is down costs a logged warning, never the command.
    redis = ArqRedis.from_url(
        settings.redis_url, socket_connect_timeout=1, socket_timeout=2, retry_on_timeout=False
    )
    try:
        return await work(ActionScope(pool=pool, redis=redis, settings=settings, actor=Actor("admin", None)))
    finally:
        await redis.aclose()
        await pool.close()


async def _create_tenant(
    settings: Settings, data: dict[str, Any], *, reuse: bool = False
) -> tuple[Any, UUID, str]:
    """Create a tenant (or, with `reuse`, take the oldest one of that name) and issue it a token."""
    from scimsvc.services.tenants import create_tenant_with_token

    async def work(scope: Any) -> tuple[Any, UUID, str]:
        row, new = await create_tenant_with_token(scope, data, reuse=reuse)
        return row, new.id, new.token

    return await _acting(settings, work)


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
    row, token_id, token = _run(_create_tenant(settings, options))
    _print_tenant(settings, row, token_id, token)
    return 0


def cmd_token_create(settings: Settings, args: argparse.Namespace) -> int:
    from marshmallow import ValidationError

    from schemas.admin import TokenCreateSchema
    from schemas.base import flatten_errors
    from scimsvc.scim.errors import ScimError
    from scimsvc.services import tokens

    try:
        data = TokenCreateSchema().load({"label": args.label, "expires_in_days": args.expires_in_days})
        expires_at = tokens.token_expiry(expires_at=None, expires_in_days=data["expires_in_days"])
    except ValidationError as exc:
        _error("invalid token: " + "; ".join(flatten_errors(exc.messages)))
        return EXIT_USAGE
    except ScimError as exc:
        _error("invalid token: " + exc.detail)
        return EXIT_USAGE

    async def work(scope: Any) -> Any:
        try:
            return await tokens.create_token(
                scope, args.tenant_id, label=data["label"], expires_at=expires_at
            )
        except ScimError:  # the only one: no such tenant
            return None

    created = _run(_acting(settings, work))
    if created is None:
        _error(f"no tenant {args.tenant_id}")
        return EXIT_FAILURE
    print(f"SCIM token id: {created.id}")
    if created.label:
        print(f"label:         {created.label}")
    if created.expires_at is not None:
        print(f"expires at:    {created.expires_at.isoformat(timespec='seconds')}")
    print(f"SCIM token:    {created.token}")
    return 0


def cmd_token_revoke(settings: Settings, args: argparse.Namespace) -> int:
    from scimsvc.services import tokens

    revoked = _run(_acting(settings, lambda scope: tokens.revoke_token(scope, args.tenant_id, args.token_id)))
    if not revoked:
        _error(f"no active token {args.token_id} for tenant {args.tenant_id}")
        return EXIT_FAILURE
    print(f"revoked {args.token_id}")
    return 0


def cmd_portal_link(settings: Settings, args: argparse.Namespace) -> int:
    from marshmallow import ValidationError

    from schemas.base import flatten_errors
    from schemas.portal import PortalLinkCreateSchema
    from scimsvc.scim.errors import ScimError
    from scimsvc.services import portal

    try:
        data = PortalLinkCreateSchema().load({"email": args.email, "minutes": args.minutes})
    except ValidationError as exc:
        _error("invalid portal link: " + "; ".join(flatten_errors(exc.messages)))
        return EXIT_USAGE

    async def work(scope: Any) -> Any:
        try:
            return await portal.create_link(
                scope, args.tenant_id, email=data["email"], minutes=data["minutes"]
            )
        except ScimError:  # the only one: no such tenant
            return None

    link = _run(_acting(settings, work))
    if link is None:
        _error(f"no tenant {args.tenant_id}")
        return EXIT_FAILURE
    print(link.url)
    print(
        f"(opens the organization's portal once, until {link.expires_at.isoformat()}; shown only now)",
        file=sys.stderr,
    )
    return 0


def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    """Migrate, create a demo tenant, then run the worker (child process) and the web front end.

    Without a database or Redis URL and with nothing answering on the default ports, it first starts
    an embedded PostgreSQL and Redis (scimsvc.tools.embedded) and stops them on exit.
    """
    from scimsvc.ops.connection_errors import one_line
    from scimsvc.tools.embedded import EmbeddedError, embedded_services

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
    status = cmd_migrate(settings, args)
    if status:
        return status
    if not args.no_demo:
        row, token_id, token = _run(_create_tenant(settings, {"name": "demo", "seats": 10}, reuse=True))
        print("\n== demo tenant ==")
        _print_tenant(settings, row, token_id, token)
    # With an internal port, the docs and the console are there only (scimsvc/web/listeners.py).
    internal = settings.internal_port
    operator = f"http://{args.host}:{internal}" if internal else settings.public_url
    print(f"Swagger UI:    {operator}/api/docs")
    print(f"Console:       {operator}/console/ (sign in with SCIMSVC_ADMIN_KEY)\n")
    # The worker logs as this process does, even when `up`'s output goes to a pipe or a file.
    env = {**os.environ, "SCIMSVC_LOG_FORMAT": args.log_format, "SCIMSVC_LOG_LEVEL": args.log_level}
    worker = subprocess.Popen([sys.executable, "-m", "scimsvc", "worker"], env=env)
    watch = _WorkerWatch(worker)
    try:
        status = cmd_serve(settings, args)
    except KeyboardInterrupt:
        if watch.exit_status is None:
            raise
        status = 0  # the watch interrupted the front end before it could serve
    finally:
        watch.stopping = True
        worker.send_signal(signal.SIGTERM)
        try:  # it lets its running jobs finish first (SCIMSVC_WORKER_SHUTDOWN_SECONDS)
            worker.wait(timeout=settings.worker_shutdown_seconds + 10)
        except subprocess.TimeoutExpired:
            worker.kill()
    if watch.exit_status is not None:
        _error(
            f"the worker (pid {worker.pid}) exited with status {watch.exit_status}, so up stopped serving: "
            "writes would have been acknowledged and never applied (a worker that failed says why above)"
        )
        return EXIT_FAILURE
    return status


class _WorkerWatch:
    """`up`'s worker child, watched from a thread: when it ends unasked, `up` stops its front end as Ctrl-C
    does (SIGINT: aiohttp's graceful stop once serving, KeyboardInterrupt before), and says so."""

    def __init__(self, worker: subprocess.Popen[bytes]) -> None:
        self.stopping = False
        self.exit_status: int | None = None
        self._worker = worker
        threading.Thread(target=self._wait, name="scimsvc-up-worker-watch", daemon=True).start()

    def _wait(self) -> None:
        status = self._worker.wait()
        # Ctrl-C at a terminal reaches the worker too, which then stops as asked: 0, 130, or the signal.
        asked = status in (0, EXIT_INTERRUPTED, -signal.SIGINT, -signal.SIGTERM)
        if not self.stopping and not asked:
            self.exit_status = status
            os.kill(os.getpid(), signal.SIGINT)


# The settings each command reads, listed under its --help (all of them: README.md, Configuration). The
# defaults shown are Settings' own (scimsvc/settings.py), or the CLI's and the embedded servers' below.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_LOG_LEVEL = "info"
_DEFAULTS = Settings()


def _default(field: str) -> str:
    """The default of a Settings field as --help shows it."""
    value = getattr(_DEFAULTS, field)
    if isinstance(value, bool):
        return "on" if value else "off"
    return "empty" if value == "" else str(value)


def _file_of(name: str) -> tuple[str, str]:
    """What `name`_FILE does (scimsvc/settings.py, env_value), as --help shows it, listed after `name`."""
    return (f"{name.removeprefix('SCIMSVC_')} read from this file (secrets), not with it", "empty")


# variable -> (what it does, its default)
_VARIABLES: dict[str, tuple[str, str]] = {
    "SCIMSVC_DATABASE_URL": ("PostgreSQL, the source of truth", _default("database_url")),
    "SCIMSVC_DATABASE_URL_FILE": _file_of("SCIMSVC_DATABASE_URL"),
    "SCIMSVC_DATABASE_POOLER": (
        "none, or transaction behind PgBouncer's transaction pooling",
        _default("database_pooler"),
    ),
    "SCIMSVC_DATABASE_DIRECT_URL": (
        "PostgreSQL without the pooler (LISTEN, migrate); empty: SCIMSVC_DATABASE_URL",
        _default("database_direct_url"),
    ),
    "SCIMSVC_DATABASE_DIRECT_URL_FILE": _file_of("SCIMSVC_DATABASE_DIRECT_URL"),
    "SCIMSVC_APP_ROLE_PASSWORD": (
        "with --app-role, the role's password (stored as a SCRAM verifier); empty: left as it is",
        _default("app_role_password"),
    ),
    "SCIMSVC_APP_ROLE_PASSWORD_FILE": _file_of("SCIMSVC_APP_ROLE_PASSWORD"),
    "SCIMSVC_REDIS_URL": ("Redis, for the job queue", _default("redis_url")),
    "SCIMSVC_LIMITER_REDIS_URL": (
        "Redis of rate limits and page cursors; empty: SCIMSVC_REDIS_URL",
        _default("limiter_redis_url"),
    ),
    "SCIMSVC_LIMITER_REDIS_CLUSTER": (
        "SCIMSVC_LIMITER_REDIS_URL names a node of a Redis Cluster",
        _default("limiter_redis_cluster"),
    ),
    "SCIMSVC_QUEUE_NAME": ("arq queue name, shared by front ends and workers", _default("queue_name")),
    "SCIMSVC_PUBLIC_URL": (
        "external address: meta.location, the SCIM base URL shown",
        _default("public_url"),
    ),
    "SCIMSVC_ADMIN_KEY": ("operator key of /admin/v1 and the console; empty: 403", _default("admin_key")),
    "SCIMSVC_ADMIN_KEY_FILE": _file_of("SCIMSVC_ADMIN_KEY"),
    "SCIMSVC_HOST": ("address to listen on, unless --host", DEFAULT_HOST),
    "SCIMSVC_PORT": ("port to listen on, unless --port", str(DEFAULT_PORT)),
    "SCIMSVC_INTERNAL_PORT": (
        "second port for the admin API, console, /metrics, /ops/queue and API docs, which the main port "
        "then answers 404; 0: off",
        _default("internal_port"),
    ),
    "SCIMSVC_WEB_PROCESSES": (
        "web processes on the one port (SO_REUSEPORT), each with its own pools, unless --processes",
        _default("web_processes"),
    ),
    "SCIMSVC_DB_POOL_MIN": ("PostgreSQL connections opened at start", _default("db_pool_min")),
    "SCIMSVC_DB_POOL_MAX": ("PostgreSQL connections at most", _default("db_pool_max")),
    "SCIMSVC_DB_WAIT_SECONDS": (
        "longest wait for PostgreSQL (a connection, a statement); past it: 503",
        _default("db_wait_seconds"),
    ),
    "SCIMSVC_MAX_BODY_BYTES": ("largest request body; larger: 413", _default("max_body_bytes")),
    "SCIMSVC_GROUP_MAX_BODY_BYTES": ("largest POST or PUT /Groups body", _default("group_max_body_bytes")),
    "SCIMSVC_GROUP_PATCH_MAX_BYTES": ("largest PATCH /Groups body", _default("group_patch_max_bytes")),
    "SCIMSVC_GROUP_PATCH_MAX_MEMBER_OPS": (
        "member values in one group PATCH",
        _default("group_patch_max_member_ops"),
    ),
    "SCIMSVC_BULK_MAX_OPERATIONS": ("operations in one /Bulk request", _default("bulk_max_operations")),
    "SCIMSVC_BULK_MAX_PAYLOAD_BYTES": (
        "largest /Bulk body (at most SCIMSVC_MAX_BODY_BYTES)",
        _default("bulk_max_payload_bytes"),
    ),
    "SCIMSVC_RATE_LIMIT_ENABLED": ("per-tenant budgets on SCIM routes", _default("rate_limit_enabled")),
    "SCIMSVC_RATE_LIMIT_CREDITS_PER_30S": ("a tenant's default budget", _default("rate_limit_credits")),
    "SCIMSVC_RATE_LIMIT_ON_REDIS_ERROR": (
        "Redis unreachable: open admits, closed answers 503",
        _default("rate_limit_on_redis_error"),
    ),
    "SCIMSVC_RATE_LIMIT_PREFIX": ("Redis key prefix of the budgets", _default("rate_limit_prefix")),
    "SCIMSVC_RATE_LIMIT_LEASE_MS": (
        "credits leased to a process live this long; 0: no leases",
        _default("rate_limit_lease_ms"),
    ),
    "SCIMSVC_AUTH_FAILURES_PER_MINUTE": (
        "wrong credentials per client address, then 429",
        _default("auth_failures_per_minute"),
    ),
    "SCIMSVC_TRUSTED_PROXIES": (
        "addresses or networks of proxies whose X-Forwarded-For names the client",
        _default("trusted_proxies"),
    ),
    "SCIMSVC_TOKEN_CACHE_SECONDS": (
        "valid SCIM tokens cached this long; 0: off",
        _default("token_cache_seconds"),
    ),
    "SCIMSVC_TOKEN_LAST_USED_SECONDS": (
        "when SCIM tokens were last used is written this often (1-3600)",
        _default("token_last_used_seconds"),
    ),
    "SCIMSVC_ACCESS_LOG": ("one JSON line per request on stderr", _default("access_log")),
    "SCIMSVC_PROVISIONING_LOG": (
        "every SCIM request of a tenant in its provisioning log",
        _default("provisioning_log"),
    ),
    "SCIMSVC_EVENTS": ("every applied change becomes an event (and webhook deliveries)", _default("events")),
    "SCIMSVC_WEBHOOK_SIGNING_KEY": (
        "key each webhook endpoint's secret is derived from; empty: no webhooks",
        _default("webhook_signing_key"),
    ),
    "SCIMSVC_WEBHOOK_SIGNING_KEY_FILE": _file_of("SCIMSVC_WEBHOOK_SIGNING_KEY"),
    "SCIMSVC_WEBHOOK_ALLOWED_NETWORKS": (
        "private or loopback networks webhooks may reach (others of those are refused)",
        _default("webhook_allowed_networks"),
    ),
    "SCIMSVC_WEBHOOK_ALLOW_HTTP": (
        "development: plain http:// webhooks to loopback addresses",
        _default("webhook_allow_http"),
    ),
    "SCIMSVC_WEBHOOK_TIMEOUT_SECONDS": (
        "a webhook delivery's connect and read timeouts",
        _default("webhook_timeout_seconds"),
    ),
    "SCIMSVC_WEBHOOK_RETRY_HOURS": (
        "a delivery is retried this long, then failed",
        _default("webhook_retry_hours"),
    ),
    "SCIMSVC_WEBHOOK_DISABLE_AFTER_HOURS": (
        "an endpoint failing this long without a success is disabled",
        _default("webhook_disable_after_hours"),
    ),
    "SCIMSVC_WEBHOOK_SECRET_OVERLAP_HOURS": (
        "after a secret rotation the previous secret also signs this long",
        _default("webhook_secret_overlap_hours"),
    ),
    "SCIMSVC_HEADER_READ_SECONDS": (
        "a request's line and headers must arrive within this, else the connection is closed",
        _default("header_read_seconds"),
    ),
    "SCIMSVC_BODY_READ_SECONDS": (
        "a request body must arrive within this of its headers, else 408 and closed",
        _default("body_read_seconds"),
    ),
    "SCIMSVC_KEEPALIVE_SECONDS": (
        "an idle kept-alive connection is closed this long after its last answer",
        _default("keepalive_seconds"),
    ),
    "SCIMSVC_QUEUE_DEGRADED_AFTER_SECONDS": (
        "oldest unapplied change older: degraded",
        _default("queue_degraded_after_seconds"),
    ),
    "SCIMSVC_QUEUE_STALLED_AFTER_SECONDS": (
        "oldest unapplied change older: stalled",
        _default("queue_stalled_after_seconds"),
    ),
    "SCIMSVC_WORKER_HEARTBEAT_STALE_SECONDS": (
        "a worker without a heartbeat this long is not counted alive",
        _default("worker_heartbeat_stale_seconds"),
    ),
    "SCIMSVC_WORKER_MAX_JOBS": ("jobs run at once", _default("worker_max_jobs")),
    "SCIMSVC_WORKER_SHUTDOWN_SECONDS": (
        "on SIGTERM/SIGINT, how long running jobs may finish",
        _default("worker_shutdown_seconds"),
    ),
    "SCIMSVC_SWEEP_AFTER_SECONDS": (
        "outbox rows unapplied this long are enqueued again",
        _default("sweep_after_seconds"),
    ),
    "SCIMSVC_PORTAL_SESSION_HOURS": (
        "an organization admin's portal session lasts this long",
        _default("portal_session_hours"),
    ),
    "SCIMSVC_PORTAL_LINK_MINUTES": (
        "a portal link expires this long after it is made, unless its maker says",
        _default("portal_link_minutes"),
    ),
    "SCIMSVC_SMTP_URL": ("smtp:// or smtps:// server for notices; empty: not sent", _default("smtp_url")),
    "SCIMSVC_SMTP_URL_FILE": _file_of("SCIMSVC_SMTP_URL"),
    "SCIMSVC_SMTP_FROM": ("sender of notices", _default("smtp_from")),
    "SCIMSVC_RETENTION_OUTBOX_DAYS": (
        "applied outbox rows are deleted this many days old; 0: kept",
        _default("retention_outbox_days"),
    ),
    "SCIMSVC_RETENTION_NOTICES_DAYS": (
        "finished notices and their attempts likewise",
        _default("retention_notices_days"),
    ),
    "SCIMSVC_RETENTION_AUDIT_DAYS": ("audit log rows likewise", _default("retention_audit_days")),
    "SCIMSVC_RETENTION_PROVISIONING_LOG_DAYS": (
        "provisioning log rows likewise",
        _default("retention_provisioning_log_days"),
    ),
    "SCIMSVC_RETENTION_EVENTS_DAYS": (
        "events, with their webhook deliveries, likewise",
        _default("retention_events_days"),
    ),
    "SCIMSVC_RETENTION_BATCH_SIZE": ("rows per delete statement", _default("retention_batch_size")),
    "SCIMSVC_WORKER_METRICS_PORT": (
        "port of this worker's Prometheus /metrics; 0: off",
        _default("worker_metrics_port"),
    ),
    "SCIMSVC_LOG_LEVEL": ("debug, info, warning, error or critical", DEFAULT_LOG_LEVEL),
    "SCIMSVC_LOG_FORMAT": ("json or text", "text for `up` or a terminal, else json"),
    "SCIMSVC_DATA_DIR": ("data of the embedded PostgreSQL and Redis, if started", embedded.DEFAULT_DATA_DIR),
    "SCIMSVC_EMBEDDED_POSTGRES_PORT": (
        "where PostgreSQL is looked for, and an embedded one listens",
        str(embedded.DEFAULT_POSTGRES_PORT),
    ),
    "SCIMSVC_EMBEDDED_REDIS_PORT": (
        "where Redis is looked for, and an embedded one listens",
        str(embedded.DEFAULT_REDIS_PORT),
    ),
}
_DATABASE = ("SCIMSVC_DATABASE_URL", "SCIMSVC_DATABASE_URL_FILE")
_STORES = (
    *_DATABASE,
    "SCIMSVC_DATABASE_POOLER",
    "SCIMSVC_DATABASE_DIRECT_URL",
    "SCIMSVC_DATABASE_DIRECT_URL_FILE",
    "SCIMSVC_REDIS_URL",
    "SCIMSVC_QUEUE_NAME",
)
_WEB = (
    "SCIMSVC_LIMITER_REDIS_URL",
    "SCIMSVC_LIMITER_REDIS_CLUSTER",
    "SCIMSVC_HOST",
    "SCIMSVC_PORT",
    "SCIMSVC_INTERNAL_PORT",
    "SCIMSVC_WEB_PROCESSES",
    "SCIMSVC_PUBLIC_URL",
    "SCIMSVC_ADMIN_KEY",
    "SCIMSVC_ADMIN_KEY_FILE",
    "SCIMSVC_PORTAL_SESSION_HOURS",
    "SCIMSVC_PORTAL_LINK_MINUTES",
    "SCIMSVC_DB_POOL_MIN",
    "SCIMSVC_DB_POOL_MAX",
    "SCIMSVC_DB_WAIT_SECONDS",
    "SCIMSVC_MAX_BODY_BYTES",
    "SCIMSVC_GROUP_MAX_BODY_BYTES",
    "SCIMSVC_GROUP_PATCH_MAX_BYTES",
    "SCIMSVC_GROUP_PATCH_MAX_MEMBER_OPS",
    "SCIMSVC_BULK_MAX_OPERATIONS",
    "SCIMSVC_BULK_MAX_PAYLOAD_BYTES",
    "SCIMSVC_RATE_LIMIT_ENABLED",
    "SCIMSVC_RATE_LIMIT_CREDITS_PER_30S",
    "SCIMSVC_RATE_LIMIT_ON_REDIS_ERROR",
    "SCIMSVC_RATE_LIMIT_PREFIX",
    "SCIMSVC_RATE_LIMIT_LEASE_MS",
    "SCIMSVC_AUTH_FAILURES_PER_MINUTE",
    "SCIMSVC_TRUSTED_PROXIES",
    "SCIMSVC_TOKEN_CACHE_SECONDS",
    "SCIMSVC_TOKEN_LAST_USED_SECONDS",
    "SCIMSVC_ACCESS_LOG",
    "SCIMSVC_PROVISIONING_LOG",
    "SCIMSVC_HEADER_READ_SECONDS",
    "SCIMSVC_BODY_READ_SECONDS",
    "SCIMSVC_KEEPALIVE_SECONDS",
)
_QUEUE_HEALTH = (  # /ops/queue in the web front end, and `scimsvc queue`
    "SCIMSVC_QUEUE_DEGRADED_AFTER_SECONDS",
    "SCIMSVC_QUEUE_STALLED_AFTER_SECONDS",
    "SCIMSVC_WORKER_HEARTBEAT_STALE_SECONDS",
)
_WORKER = (
    "SCIMSVC_WORKER_MAX_JOBS",
    "SCIMSVC_WORKER_SHUTDOWN_SECONDS",
    "SCIMSVC_SWEEP_AFTER_SECONDS",
    "SCIMSVC_SMTP_URL",
    "SCIMSVC_SMTP_URL_FILE",
    "SCIMSVC_SMTP_FROM",
    "SCIMSVC_RETENTION_OUTBOX_DAYS",
    "SCIMSVC_RETENTION_NOTICES_DAYS",
    "SCIMSVC_RETENTION_AUDIT_DAYS",
    "SCIMSVC_RETENTION_PROVISIONING_LOG_DAYS",
    "SCIMSVC_RETENTION_EVENTS_DAYS",
    "SCIMSVC_RETENTION_BATCH_SIZE",
    "SCIMSVC_WORKER_METRICS_PORT",
)
_WEBHOOKS = (  # events and webhooks: the web front end writes some events and registers endpoints
    "SCIMSVC_EVENTS",
    "SCIMSVC_WEBHOOK_SIGNING_KEY",
    "SCIMSVC_WEBHOOK_SIGNING_KEY_FILE",
    "SCIMSVC_WEBHOOK_ALLOWED_NETWORKS",
    "SCIMSVC_WEBHOOK_ALLOW_HTTP",
    "SCIMSVC_WEBHOOK_TIMEOUT_SECONDS",
    "SCIMSVC_WEBHOOK_RETRY_HOURS",
    "SCIMSVC_WEBHOOK_DISABLE_AFTER_HOURS",
    "SCIMSVC_WEBHOOK_SECRET_OVERLAP_HOURS",
)
_EMBEDDED = ("SCIMSVC_DATA_DIR", "SCIMSVC_EMBEDDED_POSTGRES_PORT", "SCIMSVC_EMBEDDED_REDIS_PORT")
_LOGS = ("SCIMSVC_LOG_LEVEL", "SCIMSVC_LOG_FORMAT")
# serve and up: without SCIMSVC_PUBLIC_URL, the address being served is the public one.
_SERVED = {"SCIMSVC_PUBLIC_URL": "http://HOST:PORT served"}
ENVIRONMENT: dict[str, tuple[str, ...]] = {
    "migrate": (
        *_DATABASE,
        "SCIMSVC_DATABASE_POOLER",
        "SCIMSVC_DATABASE_DIRECT_URL",
        "SCIMSVC_DATABASE_DIRECT_URL_FILE",
        "SCIMSVC_APP_ROLE_PASSWORD",
        "SCIMSVC_APP_ROLE_PASSWORD_FILE",
        *_LOGS,
    ),
    "serve": (*_STORES, *_WEB, *_QUEUE_HEALTH, *_WEBHOOKS, *_LOGS),
    "worker": (*_STORES, *_WORKER, *_WEBHOOKS, *_LOGS),
    "up": (*_STORES, *_WEB, *_QUEUE_HEALTH, *_WORKER, *_WEBHOOKS, *_EMBEDDED, *_LOGS),
    # Their actions are audited with their events; Redis only wakes the webhook deliverer.
    "tenant": (*_DATABASE, "SCIMSVC_PUBLIC_URL", "SCIMSVC_REDIS_URL", "SCIMSVC_QUEUE_NAME", "SCIMSVC_EVENTS"),
    "token": (*_DATABASE, "SCIMSVC_REDIS_URL", "SCIMSVC_QUEUE_NAME", "SCIMSVC_EVENTS"),
    "portal-link": (
        *_DATABASE,
        "SCIMSVC_PUBLIC_URL",
        "SCIMSVC_PORTAL_LINK_MINUTES",
        "SCIMSVC_REDIS_URL",
        "SCIMSVC_QUEUE_NAME",
        "SCIMSVC_EVENTS",
    ),
    "queue": (*_STORES, *_QUEUE_HEALTH),
}


def _epilog(command: str) -> str:
    """`environment:` and a line per variable the command reads: what it does and its default."""
    names = ENVIRONMENT.get(command, ())
    if not names:
        return ""
    defaults = _SERVED if command in ("serve", "up") else {}
    width = max(len(name) for name in names)
    lines = []
    for name in names:
        meaning, default = _VARIABLES[name]
        # "(default X)" stays on one line, so that a reader (or grep) finds it whole.
        shown = f"(default {defaults.get(name, default)})".replace(" ", "\0")
        wrapped = textwrap.fill(
            f"{meaning} {shown}",
            79,
            initial_indent=f"  {name:<{width}}  ",
            subsequent_indent=" " * (width + 4),
            break_long_words=False,
        )
        lines.append(wrapped.replace("\0", " "))
    return "environment:\n" + "\n".join(lines) + "\n\nEvery setting: README.md, Configuration."


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


def _processes(text: str) -> int:
    """argparse type of --processes."""
    if not text.isdigit() or len(text) > 4 or not 1 <= int(text) <= MAX_WEB_PROCESSES:
        raise argparse.ArgumentTypeError(f"a whole number from 1 to {MAX_WEB_PROCESSES}, got {text!r}")
    return int(text)


class _Parser(argparse.ArgumentParser):
    """argparse's parser, its usage errors one line (README.md, CLI) naming where the usage is: argparse
    prints the usage block first. Its subcommands' parsers are of this class too (`add_subparsers`)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (usage: {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The `scimsvc` argument parser: every subcommand with its options, defaults and variables."""
    parser = _Parser(
        prog="scimsvc",
        description=__doc__,
        epilog="Exit status: 0 done, 1 failed (PostgreSQL or Redis unreachable, nothing found), 2 bad "
        "setting or usage; `scimsvc queue`: 0 ok, 1 degraded, 2 stalled, 3 figures unreadable or a bad "
        "setting.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    migrate = _add_command(sub, "migrate", "create the database if needed and apply migrations")
    migrate.add_argument(
        "--app-role",
        type=_role_name,
        metavar="NAME",
        help="then create role NAME if missing and grant it the service's tables, nothing more; serve "
        "and worker log in as it (README.md, Least privilege; password: SCIMSVC_APP_ROLE_PASSWORD) "
        "(default: none)",
    )
    migrate.set_defaults(func=cmd_migrate)
    for name, func, helptext in (
        ("serve", cmd_serve, "run the web front end"),
        ("up", cmd_up, "migrate, print a demo tenant and token, run web + worker"),
    ):
        p = _add_command(sub, name, helptext)
        p.add_argument(
            "--host",
            help=f"address to listen on (default: SCIMSVC_HOST, else {DEFAULT_HOST})",
            metavar="HOST",
        )
        p.add_argument(
            "--port",
            type=_port,
            help=f"port to listen on (default: SCIMSVC_PORT, else {DEFAULT_PORT})",
            metavar="PORT",
        )
        p.add_argument(
            "--processes",
            type=_processes,
            help="web processes on the port, each with its own pools (README.md, Several processes) "
            "(default: SCIMSVC_WEB_PROCESSES, else 1)",
            metavar="N",
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
        "run the arq worker (jobs, the outbox sweeper, notices, webhooks, retention)",
        description="Run the arq worker: the jobs that apply changes to product state (writing their "
        "events) and send notices and webhooks, and its cron jobs: the outbox sweeper (re-enqueues what "
        "Redis lost), notice and webhook delivery and retention (deletes old applied outbox rows, notices, "
        "audit rows, provisioning log rows and events). It records a heartbeat "
        "for /ops/queue and serves Prometheus metrics if SCIMSVC_WORKER_METRICS_PORT is set. SIGTERM or "
        "SIGINT stops taking jobs and lets running ones finish for up to SCIMSVC_WORKER_SHUTDOWN_SECONDS, "
        "then exits 0.",
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
    tcreate.add_argument(
        "--label",
        default="",
        help="which identity provider connection uses it, up to 100 characters (default: none)",
    )
    tcreate.add_argument(
        "--expires-in-days",
        type=int,
        default=None,
        metavar="DAYS",
        help="refuse the token after this many days, 1 to 3650 (default: it never expires)",
    )
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

    plink = _add_command(
        sub,
        "portal-link",
        "print a single-use link to an organization's portal",
        description="Make a single-use link that signs its opener in to one organization's pages of the "
        "console (README.md, For organization admins) and print it (shown only now).",
    )
    plink.add_argument("tenant_id", type=UUID, help="the tenant's id")
    plink.add_argument("--email", help="the organization admin it is for (default: none)")
    plink.add_argument(
        "--minutes",
        type=int,
        help="minutes until it expires, 1 to 10080 (default: SCIMSVC_PORTAL_LINK_MINUTES)",
    )
    plink.set_defaults(func=cmd_portal_link)

    from scimsvc.ops.queue_view import add_queue_command  # imports rich only when the CLI is built

    add_queue_command(sub, epilog=_epilog("queue"))

    from scimsvc.tools.loadtest.command import add_loadtest_command  # its options live with the command

    add_loadtest_command(sub)
    return parser


def _settings_for(args: argparse.Namespace) -> Settings:
    """Settings from the environment; without SCIMSVC_PUBLIC_URL, the address being served is public."""
    settings = Settings.from_env()
    if hasattr(args, "port"):
        args.host = args.host or env_value("SCIMSVC_HOST") or DEFAULT_HOST
        if args.port is None:
            args.port = env_int("SCIMSVC_PORT", DEFAULT_PORT, maximum=65535)
        if not env_value("SCIMSVC_PUBLIC_URL"):
            settings = dataclasses.replace(settings, public_url=f"http://{args.host}:{args.port}")
    return settings


def _error(message: str) -> None:
    """One line on stderr, as argparse words its errors."""
    print(f"scimsvc: error: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run one `scimsvc` command; returns its exit status."""
    args = build_parser().parse_args(argv)  # usage errors: argparse prints them and exits 2
    settings: Settings | None = None
    bad_setting = getattr(args, "bad_setting_status", EXIT_USAGE)  # `scimsvc queue` has its own
    try:
        # `up` is what a person runs at a terminal; the services log JSON unless stderr is one.
        readable = args.command == "up" or sys.stderr.isatty()
        args.log_format = env_choice("SCIMSVC_LOG_FORMAT", logs.FORMATS, "text" if readable else "json")
        args.log_level = env_choice("SCIMSVC_LOG_LEVEL", logs.LEVELS, DEFAULT_LOG_LEVEL)
        logs.configure(level=args.log_level, fmt=args.log_format)
        settings = _settings_for(args)
        return int(args.func(settings, args))
    except SettingsError as exc:
        _error(str(exc))
        return bad_setting
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:
        from asyncpg import ClientConfigurationError

        from scimsvc.ops.connection_errors import one_line

        if isinstance(exc, ClientConfigurationError):  # what Settings.from_env does not check: parameters
            _error(f"SCIMSVC_DATABASE_URL cannot be used: {exc}")
            return bad_setting

        # loadtest talks to a SCIM URL, not to the stores, and words its own errors.
        direct = args.command == "migrate"  # it connects by SCIMSVC_DATABASE_DIRECT_URL when that is set
        line = None if args.command == "loadtest" else one_line(exc, settings or Settings(), direct=direct)
        if line is None:
            raise  # a bug: its traceback is what to report
        _error(line)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
