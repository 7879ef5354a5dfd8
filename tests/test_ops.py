"""Operators' endpoints: /ops/health, /ops/ready, /ops/queue (and its verdict)."""

from __future__ import annotations

import dataclasses

import pytest

from scimsvc.ops.queue_health import queue_status
from scimsvc.services.wakeups import wakeups_sent
from scimsvc.web.app import create_app
from scimsvc.web.keys import REDIS
from tests.conftest import (
    ADMIN_HEADERS,
    free_port,
    make_tenant,
    service_env,
    unique_email,
    user_body,
    wait_until,
)


async def test_health_answers_without_credentials(client):
    resp = await client.get("/ops/health")
    assert resp.status == 200 and await resp.json() == {"status": "ok"}


async def test_ready_checks_postgres_and_migrations(client):
    resp = await client.get("/ops/ready")
    assert resp.status == 200
    assert await resp.json() == {"status": "ready", "checks": {"postgres": "ok"}}


async def test_ready_without_redis_while_the_queue_reports_it_unreachable(aiohttp_client, settings):
    """Writes are accepted while Redis is down, so the replica stays ready; /ops/queue says what is wrong."""
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    app = create_app(dataclasses.replace(settings, redis_url=dead, enqueue_timeout_seconds=0.2))
    client = await aiohttp_client(app)
    resp = await client.get("/ops/ready")
    assert resp.status == 200
    assert await resp.json() == {"status": "ready", "checks": {"postgres": "ok"}}

    tenant = await make_tenant(client)
    resp = await client.post("/scim/v2/Users", json=user_body(unique_email()), headers=tenant.headers)
    assert resp.status == 201  # what readiness promises: SCIM writes are accepted

    report = await queue_report(client)
    assert report["status"] == "stalled" and report["queue"] is None and report["live_workers"] == 0
    assert "Error" in report["redis_error"] and report["reasons"][0].startswith("Redis cannot be reached")


async def test_queue_needs_the_operator_key(client):
    resp = await client.get("/ops/queue")
    assert resp.status == 401
    resp = await client.get("/ops/queue", headers={"Authorization": "Bearer wrong"})
    assert resp.status == 401
    resp = await client.get("/ops/queue", headers=ADMIN_HEADERS)
    assert resp.status == 200


@pytest.mark.parametrize(
    ("figures", "status"),
    [
        ({"pending_rows": 0, "oldest_age_seconds": None, "live_workers": 1, "failed_last_hour": 0}, "ok"),
        ({"pending_rows": 3, "oldest_age_seconds": 2.0, "live_workers": 1, "failed_last_hour": 0}, "ok"),
        ({"pending_rows": 3, "oldest_age_seconds": 2.0, "live_workers": 0, "failed_last_hour": 0}, "stalled"),
        (
            {"pending_rows": 3, "oldest_age_seconds": 90.0, "live_workers": 2, "failed_last_hour": 0},
            "degraded",
        ),
        (
            {"pending_rows": 3, "oldest_age_seconds": 400.0, "live_workers": 2, "failed_last_hour": 0},
            "stalled",
        ),
        (
            {"pending_rows": 0, "oldest_age_seconds": None, "live_workers": 1, "failed_last_hour": 4},
            "degraded",
        ),
        (
            {"pending_rows": 0, "oldest_age_seconds": None, "live_workers": 0, "failed_last_hour": 0},
            "degraded",
        ),
    ],
)
def test_queue_verdict(figures, status):
    got, reasons = queue_status(**figures, degraded_after=60, stalled_after=300)
    assert got == status
    assert bool(reasons) == (status != "ok")


async def queue_report(client):
    resp = await client.get("/ops/queue", headers=ADMIN_HEADERS)
    assert resp.status == 200
    return await resp.json()


async def test_queue_turns_stalled_without_workers_and_ok_once_one_drains(
    aiohttp_client, own_database, processes
):
    settings = own_database  # /ops/queue reads the whole outbox and queue
    client = await aiohttp_client(create_app(settings))
    tenant = await make_tenant(client)
    for _ in range(3):
        resp = await client.post("/scim/v2/Users", json=user_body(unique_email()), headers=tenant.headers)
        assert resp.status == 201
    await wakeups_sent(client.app[REDIS])  # the front end sends wake-ups after answering

    report = await queue_report(client)
    assert report["status"] == "stalled" and report["live_workers"] == 0
    assert report["outbox"]["pending_rows"] == 3
    assert report["outbox"]["oldest_by_tenant"][0]["tenant_id"] == tenant.id
    assert report["queue"]["queued"] >= 1
    assert "no worker is alive" in report["reasons"][0]

    worker = await processes.worker(
        service_env(settings.database_url, redis_url=settings.redis_url, queue_name=settings.queue_name)
    )

    async def drained() -> dict | None:
        report = await queue_report(client)
        return report if report["status"] == "ok" and report["outbox"]["pending_rows"] == 0 else None

    report = await wait_until(drained, what="the worker to drain the outbox", every=0.2)
    assert report["live_workers"] == 1
    assert report["workers"][0]["pid"] == worker.pid
    assert report["jobs_last_hour"]["succeeded"] >= 1 and report["jobs_last_hour"]["failed"] == 0
    await processes.stop(worker)
    report = await queue_report(client)
    # It said goodbye (an in-process worker of an earlier test may still show, stale, until forgotten).
    assert report["live_workers"] == 0 and report["status"] == "degraded"
    assert all(w["pid"] != worker.pid for w in report["workers"])
