"""`scimsvc queue`: the /ops/queue figures as a terminal table."""

from __future__ import annotations

import asyncio
import io
import os
import sys

from rich.console import Console

from scimsvc.app import create_app
from scimsvc.queue_view import show
from tests.conftest import make_tenant, post_user


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


async def test_queue_command_exits_with_the_status(database_url, settings):
    env = {
        **os.environ,
        "SCIMSVC_DATABASE_URL": database_url,
        "SCIMSVC_REDIS_URL": settings.redis_url,
        "SCIMSVC_QUEUE_NAME": settings.queue_name,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "scimsvc.cli", "queue", env=env, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    text = out.decode()
    status = text.split("status:", 1)[1].split()[0]
    assert "workers" in text
    assert proc.returncode == {"ok": 0, "degraded": 1, "stalled": 2}[status]
