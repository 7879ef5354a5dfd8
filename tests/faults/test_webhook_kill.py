"""A worker killed with SIGKILL in the middle of sending webhooks: once the claim's lease ends, another
worker sends them again, so no event is lost (a receiver may get one twice and drops it by webhook-id).
The lease's end is made to come (`make_due`, what time passing does) rather than waited for."""

from __future__ import annotations

import dataclasses
from typing import Any

import asyncpg

from scimsvc.web.app import create_app
from tests.conftest import OwnRedis, Processes, make_tenant, service_env
from tests.webhook_receiver import (
    SIGNING_KEY,
    Receiver,
    events_in_order,
    make_due,
    record_events_of_no_user,
    register_endpoint,
)

EVENTS = 5
# Long enough that the held requests are still waiting for their answer when the worker is killed, however
# slow the machine: the kill, not a timeout, is what ends them.
TIMEOUT_SECONDS = 60


def worker_env(database_url: str, redis: OwnRedis) -> dict[str, str]:
    return service_env(
        database_url,
        redis_url=redis.url,
        SCIMSVC_WEBHOOK_SIGNING_KEY=SIGNING_KEY,
        SCIMSVC_WEBHOOK_ALLOW_HTTP="true",
        SCIMSVC_WEBHOOK_ALLOWED_NETWORKS="127.0.0.1/32",
        SCIMSVC_WEBHOOK_TIMEOUT_SECONDS=str(TIMEOUT_SECONDS),
    )


async def states(db: asyncpg.Connection, endpoint: Any) -> list[tuple[str, int]]:
    rows = await db.fetch(
        "SELECT state, attempts FROM webhook_deliveries WHERE endpoint_id = $1 ORDER BY id", endpoint
    )
    return [(r["state"], r["attempts"]) for r in rows]


async def attempts_recorded(db: asyncpg.Connection, endpoint: Any) -> list[int | None]:
    rows = await db.fetch(
        "SELECT a.status FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id "
        "WHERE d.endpoint_id = $1 ORDER BY a.id",
        endpoint,
    )
    return [r["status"] for r in rows]


async def test_a_worker_killed_mid_delivery_loses_no_event(
    aiohttp_client, settings, db, database_url, own_redis, processes: Processes
):
    # A private Redis: the killed worker's job stays "in progress" there, out of every other test's queue.
    client = await aiohttp_client(create_app(dataclasses.replace(settings, redis_url=own_redis.url)))
    receiver = await Receiver(mode="hold").start()  # takes each request and never answers
    try:
        tenant = await make_tenant(client)
        endpoint = await register_endpoint(db, tenant.id, receiver.url)
        await record_events_of_no_user(db, tenant.id, EVENTS)

        first = await processes.worker(worker_env(database_url, own_redis))
        await processes.until(first, lambda: len(receiver.requests) == EVENTS, what="every event to be sent")
        await processes.kill(first)

        # Mid-delivery: every delivery claimed once, no attempt recorded, none delivered.
        assert await states(db, endpoint) == [("pending", 1)] * EVENTS
        assert await attempts_recorded(db, endpoint) == []

        receiver.mode = "ok"
        receiver.release.set()
        await make_due(
            db, endpoint
        )  # the claim's lease ends (3 x 60 + 5 s, product/webhooks.py:lease_seconds)
        second = await processes.worker(worker_env(database_url, own_redis))

        async def all_delivered() -> bool:
            return await states(db, endpoint) == [("delivered", 2)] * EVENTS

        await processes.until(second, all_delivered, what="the events to be delivered again")
    finally:
        await receiver.stop()

    # Each event arrived twice (the killed attempt was received): one per webhook-id once deduplicated,
    # in the tenant's order once sorted by sequence.
    assert len(receiver.requests) == 2 * EVENTS
    assert len(receiver.unique()) == EVENTS
    assert receiver.in_order() == await events_in_order(db, endpoint)
    assert await attempts_recorded(db, endpoint) == [200] * EVENTS
