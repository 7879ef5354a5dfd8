"""`scimsvc queue [--watch]`: the figures of /ops/queue as a terminal table, read straight from the stores."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from arq.connections import ArqRedis
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from scimsvc.ops.queue_health import queue_health
from scimsvc.settings import Settings
from scimsvc.store.db import create_pool

STATUS_STYLE = {"ok": "bold green", "degraded": "bold yellow", "stalled": "bold red"}


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def render(report: dict[str, Any]) -> Group:
    """The report as rich renderables: verdict, queue and outbox figures, tenants waiting, workers."""
    status = Text(f"status: {report['status']}", style=STATUS_STYLE.get(report["status"], "bold"))
    reasons = Text("\n".join(f"  - {r}" for r in report["reasons"]))

    figures = Table(title="queue and outbox", show_header=False)
    queue = report["queue"] or {}
    jobs = report["jobs_last_hour"] or {}
    outbox = report["outbox"]
    for label, value in (
        ("queued jobs", queue.get("queued", "?")),
        ("in progress", queue.get("in_progress", "?")),
        ("retrying", queue.get("retrying", "?")),
        ("outbox rows pending", outbox["pending_rows"]),
        ("outbox rows failing", outbox["failing_rows"]),
        ("oldest unapplied change", _age(outbox["oldest_age_seconds"])),
        ("jobs succeeded (1 h)", jobs.get("succeeded", "?")),
        ("jobs retried (1 h)", jobs.get("retried", "?")),
        ("jobs failed (1 h)", jobs.get("failed", "?")),
    ):
        figures.add_row(label, str(value))

    hooks = report["webhooks"]
    for label, value in (
        ("webhook deliveries pending", hooks["pending_deliveries"]),
        ("webhook deliveries due", hooks["due_deliveries"]),
        ("oldest undelivered event", _age(hooks["oldest_undelivered_age_seconds"])),
        ("webhook endpoints failing", hooks["failing_endpoints"]),
        ("webhook endpoints disabled", hooks["disabled_endpoints"]),
    ):
        figures.add_row(label, str(value))

    endpoints = Table(title="webhook endpoints failing longest")
    for column in ("endpoint", "tenant", "host", "pending", "failing for", "state"):
        endpoints.add_column(column)
    for e in hooks["endpoints_failing_longest"]:
        endpoints.add_row(
            e["id"],
            e["tenant_name"] or "(every tenant)",
            e["host"],
            str(e["pending_deliveries"]),
            _age(e["failing_for_seconds"]),
            "enabled" if e["enabled"] else f"disabled: {e['disabled_reason'] or ''}",
        )

    tenants = Table(title="tenants waiting longest")
    for column in ("tenant", "name", "pending", "oldest"):
        tenants.add_column(column)
    for t in outbox["oldest_by_tenant"]:
        tenants.add_row(t["tenant_id"], t["name"], str(t["pending_rows"]), _age(t["oldest_age_seconds"]))

    workers = Table(title=f"workers ({report['live_workers']} alive)")
    for column in ("worker", "pid", "last heartbeat"):
        workers.add_column(column)
    for w in report["workers"]:
        workers.add_row(w["id"], str(w.get("pid", "")), f"{_age(w['age_seconds'])} ago")

    parts: list[Any] = [status]
    if report["reasons"]:
        parts.append(reasons)
    if "redis_error" in report:
        parts.append(Text(f"Redis: {report['redis_error']}", style="red"))
    if hooks["endpoints_failing_longest"]:
        return Group(*parts, figures, tenants, endpoints, workers)
    return Group(*parts, figures, tenants, workers)


UNREADABLE = "unreadable"


async def show(settings: Settings, *, watch: bool, interval: float, console: Console | None = None) -> str:
    """Print the report once, or refresh it every `interval` seconds until interrupted.

    Returns the status, or `unreadable` when Redis could not be read (the verdict then says stalled, as
    /ops/queue does, but the queue and the workers are unknown).
    """
    console = console or Console()
    pool = await create_pool(settings.database_url, min_size=1, max_size=2, pooler=settings.database_pooler)
    redis = ArqRedis.from_url(settings.redis_url, socket_connect_timeout=1, socket_timeout=2)
    try:
        report = await queue_health(pool, redis, settings)
        if not watch:
            console.print(render(report))
            return UNREADABLE if "redis_error" in report else str(report["status"])
        with Live(render(report), console=console, refresh_per_second=4) as live:
            while True:
                await asyncio.sleep(interval)
                report = await queue_health(pool, redis, settings)
                live.update(render(report))
    finally:
        await redis.aclose()
        await pool.close()


# `scimsvc queue` exit statuses, for scripts and monitoring checks (as Nagios plugins count them).
EXIT_STATUS = {"ok": 0, "degraded": 1, "stalled": 2}
EXIT_UNREADABLE = 3  # PostgreSQL or Redis could not be read, or a setting is bad: the verdict is unknown


def add_queue_command(sub: Any, *, epilog: str = "") -> None:
    """Register `scimsvc queue` on the CLI's subcommands."""
    parser = sub.add_parser(
        "queue",
        help="show queue health (what /ops/queue reports) as a table",
        description="Show queue health, the figures of /ops/queue, read from PostgreSQL and Redis. Exit "
        "status: 0 ok, 1 degraded, 2 stalled, 3 the figures could not be read (a bad setting, PostgreSQL "
        "or Redis unreachable).",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--watch", action="store_true", help="refresh until Ctrl-C (default: print once)")
    parser.add_argument(
        "--interval",
        type=_refresh_seconds,
        default=2.0,
        metavar="S",
        help=f"seconds between refreshes, {MIN_INTERVAL:g} to {MAX_INTERVAL:g} (default: 2)",
    )
    # A bad setting is 3 too: 2 would read as "stalled" to a monitoring check.
    parser.set_defaults(func=cmd_queue, bad_setting_status=EXIT_UNREADABLE)


MIN_INTERVAL = 0.5  # each refresh reads PostgreSQL and Redis: no busy loop
MAX_INTERVAL = 3600.0


def _refresh_seconds(text: str) -> float:
    """--interval: a number of seconds a refresh may wait, within MIN_INTERVAL..MAX_INTERVAL."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not MIN_INTERVAL <= seconds <= MAX_INTERVAL:  # NaN too
        raise argparse.ArgumentTypeError(
            f"must be a number of seconds from {MIN_INTERVAL:g} to {MAX_INTERVAL:g}, got {text!r}"
        )
    return seconds


def cmd_queue(settings: Settings, args: argparse.Namespace) -> int:
    """Exit status 0 when ok, 1 when degraded, 2 when stalled, 3 when the figures could not be read."""
    from scimsvc.ops.connection_errors import address, one_line

    try:
        status = asyncio.run(show(settings, watch=args.watch, interval=args.interval))
    except KeyboardInterrupt:
        return 0
    except Exception as exc:
        line = one_line(exc, settings)
        if line is None:
            raise
        print(f"scimsvc: error: cannot read the queue figures: {line}", file=sys.stderr)
        return EXIT_UNREADABLE
    if status == UNREADABLE:  # the outbox figures were printed; the queue's and the workers' are unknown
        where = address(settings.redis_url, 6379)
        print(
            f"scimsvc: error: cannot read the queue figures: cannot connect to Redis at {where} "
            "(SCIMSVC_REDIS_URL)",
            file=sys.stderr,
        )
        return EXIT_UNREADABLE
    return EXIT_STATUS.get(status, EXIT_STATUS["stalled"])
