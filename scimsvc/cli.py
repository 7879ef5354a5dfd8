"""The `scimsvc` command: migrate, serve, worker, up, tenant and token management, loadtest."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import os
import signal
import subprocess
import sys
from collections.abc import Coroutine
from typing import Any
from uuid import UUID

from scimsvc import logs
from scimsvc.settings import Settings


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
    web.run_app(app, host=args.host, port=args.port, loop=loop)  # access log: create_app's handler_args
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
        print("invalid tenant: " + "; ".join(flatten_errors(exc.messages)), file=sys.stderr)
        return 2
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
        print(f"no tenant {args.tenant_id}", file=sys.stderr)
        return 1
    print(f"SCIM token id: {created[0]}")
    print(f"SCIM token:    {created[1]}")
    return 0


def cmd_token_revoke(settings: Settings, args: argparse.Namespace) -> int:
    from scimsvc.store import tenants

    revoked = _run(
        _with_conn(settings, lambda conn: tenants.revoke_token(conn, args.tenant_id, args.token_id))
    )
    if not revoked:
        print(f"no active token {args.token_id} for tenant {args.tenant_id}", file=sys.stderr)
        return 1
    print(f"revoked {args.token_id}")
    return 0


def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    """Migrate, create a demo tenant, then run the worker (child process) and the web front end.

    Without a database or Redis URL and with nothing answering on the default ports, it first starts
    an embedded PostgreSQL and Redis (scimsvc.embedded) and stops them on exit.
    """
    from scimsvc.embedded import embedded_services

    with embedded_services(settings) as settings:
        cmd_migrate(settings, args)
        if not args.no_demo:
            row, token_id, token = _run(_create_tenant(settings, "demo", {"seats": 10}, reuse=True))
            print("\n== demo tenant ==")
            _print_tenant(settings, row, token_id, token)
        print(f"Swagger UI:    {settings.public_url}/api/docs")
        print(f"Console:       {settings.public_url}/console/ (sign in with SCIMSVC_ADMIN_KEY)\n")
        worker = subprocess.Popen([sys.executable, "-m", "scimsvc.cli", "worker"], env=os.environ.copy())
        try:
            return cmd_serve(settings, args)
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scimsvc", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("migrate", help="create the database if needed and apply migrations").set_defaults(
        func=cmd_migrate
    )
    for name, func, helptext in (
        ("serve", cmd_serve, "run the web front end"),
        ("up", cmd_up, "migrate, print a demo tenant and token, run web + worker"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--host", default=os.environ.get("SCIMSVC_HOST", "127.0.0.1"))
        p.add_argument("--port", type=int, default=int(os.environ.get("SCIMSVC_PORT", "8080")))
        if name == "up":
            p.add_argument("--no-demo", action="store_true", help="do not create a demo tenant")
        p.set_defaults(func=func)
    sub.add_parser("worker", help="run the arq worker").set_defaults(func=cmd_worker)

    tenant = sub.add_parser("tenant", help="manage tenants").add_subparsers(
        dest="tenant_command", required=True
    )
    create = tenant.add_parser("create", help="create a tenant and print its id and a SCIM token")
    create.add_argument("name")
    create.add_argument("--seats", type=int)
    create.add_argument("--flexible", action="store_true", help="flexible licenses")
    create.add_argument("--default-license", choices=["free", "free_restricted"])
    create.add_argument("--fallback-license", choices=["free_restricted", "none"])
    create.add_argument("--allowed-domain", action="append", default=[], metavar="DOMAIN")
    create.set_defaults(func=cmd_tenant_create)

    token = sub.add_parser("token", help="manage SCIM tokens").add_subparsers(
        dest="token_command", required=True
    )
    tcreate = token.add_parser("create", help="issue a new SCIM token for a tenant (shown once)")
    tcreate.add_argument("tenant_id", type=UUID)
    tcreate.set_defaults(func=cmd_token_create)
    trevoke = token.add_parser("revoke", help="revoke a SCIM token")
    trevoke.add_argument("tenant_id", type=UUID)
    trevoke.add_argument("token_id", type=UUID)
    trevoke.set_defaults(func=cmd_token_revoke)

    from scimsvc.queue_view import add_queue_command  # imports rich only when the CLI is built

    add_queue_command(sub)

    from scimsvc.loadtest import add_loadtest_command  # its options live with the command

    add_loadtest_command(sub)
    return parser


def _settings_for(args: argparse.Namespace) -> Settings:
    """Settings from the environment; without SCIMSVC_PUBLIC_URL, the address being served is public."""
    settings = Settings.from_env()
    if not os.environ.get("SCIMSVC_PUBLIC_URL") and getattr(args, "port", None):
        settings = dataclasses.replace(settings, public_url=f"http://{args.host}:{args.port}")
    return settings


def main(argv: list[str] | None = None) -> int:
    logs.configure(
        level=os.environ.get("SCIMSVC_LOG_LEVEL", "INFO"), fmt=os.environ.get("SCIMSVC_LOG_FORMAT", "json")
    )
    args = build_parser().parse_args(argv)
    return args.func(_settings_for(args), args)


if __name__ == "__main__":
    sys.exit(main())
