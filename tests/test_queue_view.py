"""`scimsvc queue`: the /ops/queue figures as a terminal table."""

from __future__ import annotations

import io

from rich.console import Console

from scimsvc.ops.queue_view import show
from scimsvc.web.app import create_app
from tests.conftest import Processes, make_tenant, post_user, service_env


async def test_queue_table_shows_the_verdict_and_the_waiting_tenant(aiohttp_client, own_database):
    settings = own_database  # the table shows the ten tenants waiting longest in the whole database
    client = await aiohttp_client(create_app(settings))
    tenant = await make_tenant(client)
    await post_user(client, tenant)
    out = io.StringIO()
    status = await show(settings, watch=False, interval=1, console=Console(file=out, width=160))
    text = out.getvalue()
    assert status in ("ok", "degraded", "stalled")
    assert f"status: {status}" in text
    for label in ("queued jobs", "outbox rows pending", "oldest unapplied change", "tenants waiting longest"):
        assert label in text
    assert tenant.id in text  # the tenant waits: its row is not applied yet


async def test_queue_command_exits_with_the_status(database_url, settings, processes: Processes):
    env = service_env(database_url, redis_url=settings.redis_url, queue_name=settings.queue_name)
    out = await processes.run("queue", env=env)
    status = out.stdout.split("status:", 1)[1].split()[0]
    assert "workers" in out.stdout
    assert out.returncode == {"ok": 0, "degraded": 1, "stalled": 2}[status]
