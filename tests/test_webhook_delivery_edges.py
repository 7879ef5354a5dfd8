"""Webhook delivery at its edges (README.md, What happened, Webhook delivery): an endpoint the HTTP client
cannot use, an endpoint deleted or disabled while its delivery is out, a recorder that outlived its lease,
a slow DNS, a job within arq's timeout, the operators' queries on their indexes.

Where two workers must race, the second one's job is `deliver_webhooks` run here on its own (`deliver_once`,
what an arq worker runs for it), so which worker takes which delivery is decided by the test, not by arq.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import threading
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from arq.connections import RedisSettings, create_pool

from scimsvc.settings import Settings
from scimsvc.store.db import create_pool as create_db_pool
from scimsvc.store.webhook_deliveries import BACKLOG, FAILING_ENDPOINTS, Attempt, claim_due, record_attempts
from scimsvc.web.app import create_app
from tests.conftest import ADMIN_HEADERS, make_tenant, wait_until
from tests.test_webhook_delivery import attempts, deliveries, forget_endpoints, receiver, users_with_events
from tests.webhook_receiver import Receiver, record_events_of_no_user, register_endpoint, webhook_settings
from worker.jobs import JOB_TIMEOUT_SECONDS
from worker.settings import worker_settings
from worker.webhook_client import BoundedResolver, CheckedResolver, new_session, post
from worker.webhooks import (
    NOT_SENT,
    batch_seconds,
    claim_seconds,
    deliver_webhooks,
    start_sending,
    stop_sending,
)

__all__ = ["forget_endpoints", "receiver"]  # fixtures of tests/test_webhook_delivery.py used here

LONG = 60  # a timeout no attempt here comes near: what a test waits for is an event, not a clock


async def deliver_once(settings: Settings) -> int:
    """One `deliver_webhooks` job of a worker process of its own (pool, HTTP session); how many it
    delivered. Its exceptions are the test's."""
    ctx: dict[str, Any] = {
        "settings": settings,
        "pool": await create_db_pool(settings.database_url, min_size=1, max_size=4),
        "redis": await create_pool(RedisSettings.from_dsn(settings.redis_url)),
    }
    try:
        await start_sending(ctx)
        return await deliver_webhooks(ctx)
    finally:
        await stop_sending(ctx)
        await ctx["pool"].close()
        await ctx["redis"].aclose()


async def test_an_endpoint_url_the_client_cannot_use_fails_its_own_attempts_and_never_stops_the_others(
    client, settings, db, receiver
):
    tenant = await make_tenant(client)
    good = await register_endpoint(db, tenant.id, receiver.url)
    # Written before registration refused them: a soft hyphen the HTTP client's URL parser refuses, and a
    # name with an empty label that getaddrinfo cannot encode.
    soft_hyphen = await register_endpoint(db, tenant.id, "https://ex\u00adample.com/hook")
    empty_label = await register_endpoint(db, tenant.id, "https://hooks..example.com/hook")
    await users_with_events(client, db, tenant, 3, settings)

    assert await deliver_once(webhook_settings(settings)) == 3  # raised, before: every lane stopped

    assert [(r["state"], r["attempts"]) for r in await deliveries(db, good)] == [("delivered", 1)] * 3
    for bad, reason in [
        (soft_hyphen, "refused, not sent: the URL's host must be written in ASCII"),
        (empty_label, "could not connect: hooks..example.com: not a name that can be looked up"),
    ]:
        # Failed like any attempt, recorded, retried later (not every lease, unrecorded, forever).
        assert [(r["state"], r["attempts"]) for r in await deliveries(db, bad)] == [("pending", 1)] * 3
        tried = await attempts(db, bad)
        assert [a["status"] for a in tried] == [None] * 3
        assert all(a["excerpt"].startswith(reason) for a in tried), tried
    assert len(receiver.requests) == 3


async def test_an_error_of_ours_while_sending_is_a_failed_attempt_not_an_exception(receiver):
    allowed = [ipaddress.ip_network("127.0.0.1/32")]
    resolver = CheckedResolver(allowed, timeout_seconds=LONG)
    session = new_session(resolver=resolver, timeout_seconds=LONG)
    try:
        sent = await post(
            session,
            receiver.url,
            body=b"{}",
            headers={"webhook-id": "evt_1\r\nX-Injected: yes"},  # a header aiohttp refuses to write
            allowed=allowed,
            allow_http=True,
            timeout_seconds=LONG,
        )
    finally:
        await session.close()
        await resolver.close()
    assert (sent.status, sent.excerpt, sent.delivered) == (None, "internal error: ValueError", False)
    assert receiver.requests == []


async def test_deleting_an_endpoint_while_its_delivery_is_being_sent_loses_no_other_attempt(
    client, settings, db
):
    held, other = await Receiver(mode="hold").start(), await Receiver().start()
    try:
        tenant = await make_tenant(client)
        doomed = await register_endpoint(db, tenant.id, held.url)
        kept = await register_endpoint(db, tenant.id, other.url)
        await record_events_of_no_user(db, tenant.id, 2)  # a delivery of each event to each endpoint
        sending = asyncio.create_task(deliver_once(webhook_settings(settings, webhook_timeout_seconds=LONG)))
        await wait_until(lambda: len(held.requests) == 2 or sending.done(), what="the held deliveries")

        url = f"/admin/v1/tenants/{tenant.id}/webhooks/{doomed}"
        assert (await client.delete(url, headers=ADMIN_HEADERS)).status == 204
        held.release.set()  # answered now: the attempts are recorded after their deliveries were deleted

        assert await asyncio.wait_for(sending, LONG) == 4  # raised, before: a foreign key violation
    finally:
        await held.stop()
        await other.stop()
    assert [(r["state"], r["attempts"]) for r in await deliveries(db, kept)] == [("delivered", 1)] * 2
    assert [a["status"] for a in await attempts(db, kept)] == [200, 200]
    assert await db.fetchval("SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1", doomed) == 0


async def test_a_delivery_answered_2xx_while_its_endpoint_was_being_disabled_is_delivered(
    client, settings, db, receiver
):
    worker = webhook_settings(settings, webhook_timeout_seconds=LONG)
    receiver.mode = "hold"
    tenant = await make_tenant(client)
    endpoint = await register_endpoint(db, tenant.id, receiver.url)
    await db.execute(
        "UPDATE webhook_endpoints SET failing_since = now() - interval '121 hours' WHERE id = $1", endpoint
    )
    await record_events_of_no_user(db, tenant.id, 1)
    first = asyncio.create_task(deliver_once(worker))  # sends the first event, and waits for the answer
    await wait_until(lambda: len(receiver.requests) == 1 or first.done(), what="the first event to be held")

    # Meanwhile another worker sends the next event, gets a 500, and disables the endpoint (failing for
    # longer than the limit): what it had pending is failed, the first event's delivery too.
    receiver.mode = "fail"
    await record_events_of_no_user(db, tenant.id, 1)
    await deliver_once(worker)
    assert await db.fetchval("SELECT enabled FROM webhook_endpoints WHERE id = $1", endpoint) is False
    assert [r["state"] for r in await deliveries(db, endpoint)] == ["failed", "failed"]

    receiver.release.set()  # the first event is answered 200 after all
    assert await asyncio.wait_for(first, LONG) == 1

    held_one, failed_one = await deliveries(db, endpoint)
    assert (held_one["state"], failed_one["state"]) == ("delivered", "failed")  # the receiver has it
    assert [a["status"] for a in await attempts(db, endpoint) if a["delivery_id"] == held_one["id"]] == [
        None,  # not sent: the endpoint is disabled (it had been sent)
        200,
    ]


async def test_a_recorder_that_outlived_its_lease_leaves_the_new_claim_alone(own_database, aiohttp_client):
    settings = own_database  # claims here take every due delivery of the database
    client = await aiohttp_client(create_app(settings))
    own_db = await asyncpg.connect(settings.database_url)
    pool = await create_db_pool(settings.database_url, min_size=1, max_size=2)
    try:
        tenant = await make_tenant(client)
        endpoint = await register_endpoint(own_db, tenant.id, "https://hooks.example.com/in")
        await record_events_of_no_user(own_db, tenant.id, 1)
        (late,) = await claim_due(pool, limit=10, lease_seconds=1, not_sent=NOT_SENT)
        # Its lease ends before it records (a stalled worker): another worker claims the delivery again.
        await own_db.execute(
            "UPDATE webhook_deliveries SET next_attempt_at = now() WHERE endpoint_id = $1", endpoint
        )
        (again,) = await claim_due(pool, limit=10, lease_seconds=3600, not_sent=NOT_SENT)
        assert (late["id"], late["attempts"], again["attempts"]) == (again["id"], 1, 2)
        leased = await own_db.fetchval(
            "SELECT next_attempt_at FROM webhook_deliveries WHERE id = $1", late["id"]
        )

        failure = Attempt(
            late["id"], late["attempts"], endpoint, None, 5.0, "no answer within 10 s", False, 5.0
        )
        await record_attempts(
            pool, [failure], retry_hours=72, disable_after_hours=120, disabled_reason="x", not_sent=NOT_SENT
        )

        row = await own_db.fetchrow(
            "SELECT state, attempts, next_attempt_at FROM webhook_deliveries WHERE id = $1", late["id"]
        )
        # The attempt happened and is recorded; the delivery is the second claim's, with its hour's lease,
        # not due again in 5 s while that worker is sending it.
        assert (row["state"], row["attempts"], row["next_attempt_at"]) == ("pending", 2, leased)
        assert leased - await own_db.fetchval("SELECT now()") > timedelta(minutes=30)
        assert [a["excerpt"] for a in await attempts(own_db, endpoint)] == ["no answer within 10 s"]

        # That worker's own outcome still counts.
        success = Attempt(again["id"], again["attempts"], endpoint, 200, 5.0, "ok", True, 5.0)
        await record_attempts(
            pool, [success], retry_hours=72, disable_after_hours=120, disabled_reason="x", not_sent=NOT_SENT
        )
        assert [r["state"] for r in await deliveries(own_db, endpoint)] == ["delivered"]
    finally:
        await pool.close()
        await own_db.close()


async def test_a_slow_name_holds_one_dns_thread_and_its_attempts_give_up_after_the_timeout():
    release = threading.Event()
    looked_up: list[str] = []

    def getaddrinfo(host: str, port: int, *args: Any) -> list[tuple[Any, ...]]:  # the system resolver
        looked_up.append(host)
        if host == "slow.example.com":
            release.wait(LONG)  # a tenant's DNS that does not answer
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.7", port))]

    resolver = BoundedResolver(timeout_seconds=1, lookup=getaddrinfo)
    try:
        slow = [asyncio.create_task(resolver.resolve("slow.example.com", 443)) for _ in range(50)]
        await wait_until(lambda: looked_up, what="the slow lookup to start")
        # Fifty deliveries to the slow name wait on one lookup: the other names' lookups are not held up
        # (aiohttp's resolver would have given each its own thread of the loop's few shared ones).
        for n in range(20):
            (found,) = await resolver.resolve(f"fast{n}.example.com", 443)
            assert found["host"] == "192.0.2.7" and found["port"] == 443
        results = await asyncio.gather(*slow, return_exceptions=True)
        assert looked_up.count("slow.example.com") == 1
        assert all(isinstance(r, OSError) for r in results)
        assert {str(r) for r in results} == {"slow.example.com: no address within 1 s"}
    finally:
        release.set()
        await resolver.close()


@pytest.mark.parametrize("timeout", [1, 10, 30, 60, 120])  # SCIMSVC_WEBHOOK_TIMEOUT_SECONDS: 1 to 120
def test_a_delivery_job_claims_its_last_batch_early_enough_to_end_well_within_arqs_job_timeout(
    settings, timeout
):
    assert worker_settings(settings)["job_timeout"] == JOB_TIMEOUT_SECONDS
    # A batch claimed at the last moment takes its slowest attempt (2 x the timeout and a second) and
    # its recording; the job still ends at least 30 s before arq would cancel it.
    assert batch_seconds(timeout) >= 2 * timeout + 1
    assert 0 < claim_seconds(timeout) <= 60
    assert claim_seconds(timeout) + batch_seconds(timeout) <= JOB_TIMEOUT_SECONDS - 30


def index_scans(plan: dict[str, Any]) -> set[str]:
    """The indexes a JSON plan reads."""
    found = {plan["Index Name"]} if "Index Name" in plan else set()
    for child in plan.get("Plans", []):
        found |= index_scans(child)
    return found


async def test_the_operators_webhook_queries_read_only_the_pending_deliveries_index(
    aiohttp_client, own_database
):
    settings = own_database
    client = await aiohttp_client(create_app(settings))
    own_db = await asyncpg.connect(settings.database_url)
    try:
        tenant = await make_tenant(client)
        endpoint = await register_endpoint(own_db, tenant.id, "https://hooks.example.com/in")
        await own_db.execute("UPDATE webhook_endpoints SET failing_since = now() WHERE id = $1", endpoint)
        await record_events_of_no_user(own_db, tenant.id, 2000)
        # Most deliveries are long done, as they are once a deployment has run for a while.
        await own_db.execute(
            "UPDATE webhook_deliveries SET state = 'delivered' WHERE id % 100 <> 0 AND endpoint_id = $1",
            endpoint,
        )
        await own_db.execute("VACUUM ANALYZE webhook_deliveries")  # what autovacuum does meanwhile

        async def plan(sql: str, *args: Any) -> set[str]:
            (row,) = await own_db.fetch(f"EXPLAIN (FORMAT JSON) {sql}", *args)
            return index_scans(json.loads(row[0])[0]["Plan"])

        assert "webhook_deliveries_pending_age" in await plan(BACKLOG)
        assert "webhook_deliveries_pending_endpoint" in await plan(FAILING_ENDPOINTS, 10)
        assert "webhook_deliveries_endpoint" not in await plan(FAILING_ENDPOINTS, 10)
    finally:
        await own_db.close()
