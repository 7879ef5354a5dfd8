"""Webhook delivery (README.md, What happened, Webhook delivery): real receivers on 127.0.0.1, a real worker.

Events are recorded with `store/events.py:record_events` for users made through SCIM (as the worker does
when it applies them); endpoints are written by SQL (`tests/webhook_receiver.py:register_endpoint`). A
retry's wait is skipped by moving `next_attempt_at` to now (`make_due`), which is what time passing does.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import ipaddress
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from uuid import UUID

import asyncpg
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from arq.connections import RedisSettings, create_pool
from prometheus_client import REGISTRY
from rich.console import Console
from standardwebhooks import Webhook, WebhookVerificationError

from scimsvc.enqueue import enqueue_deliver_webhooks
from scimsvc.ops.queue_health import NO_SIGNING_KEY, queue_status
from scimsvc.ops.queue_view import show
from scimsvc.product.webhooks import endpoint_secret
from scimsvc.settings import Settings
from scimsvc.web.app import create_app
from tests.conftest import ADMIN_HEADERS, make_tenant, post_user, run_worker
from tests.test_console import signed_in
from tests.webhook_receiver import (
    SIGNING_KEY,
    Receiver,
    events_in_order,
    make_due,
    record_events_of_no_user,
    record_user_events,
    register_endpoint,
    webhook_settings,
)
from worker.webhook_client import CheckedResolver, RefusedTarget
from worker.webhooks import BATCH, LANES


@pytest.fixture(autouse=True)
async def forget_endpoints(database_url: str) -> AsyncIterator[None]:
    """Delete the endpoints a test made (their deliveries go with them), so no later worker sends them."""
    conn = await asyncpg.connect(database_url)
    try:
        before = {r[0] for r in await conn.fetch("SELECT id FROM webhook_endpoints")}
        yield
        made = [r[0] for r in await conn.fetch("SELECT id FROM webhook_endpoints") if r[0] not in before]
        await conn.execute("DELETE FROM webhook_endpoints WHERE id = ANY($1::uuid[])", made)
    finally:
        await conn.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = await Receiver().start()
    yield server
    await server.stop()


async def users_with_events(
    client: Any, db: asyncpg.Connection, tenant: Any, count: int, settings: Settings
) -> list[str]:
    """`count` users POSTed through SCIM and applied by a worker (with no signing key: nothing is sent
    yet), with their `user.created` events: the worker's own where it records them, else written here as
    it would (`tests/webhook_receiver.py:record_user_events`). Their ids."""
    ids = [(await post_user(client, tenant))["id"] for _ in range(count)]
    await run_worker(dataclasses.replace(settings, webhook_signing_key=""))
    recorded = await db.fetch(
        "SELECT user_id::text FROM events WHERE tenant_id = $1::uuid AND type = 'user.created'",
        tenant.id,
    )
    missing = [i for i in ids if i not in {r[0] for r in recorded}]
    if missing:
        await record_user_events(db, tenant.id, missing)
    return ids


async def deliveries(db: asyncpg.Connection, endpoint_id: UUID) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT id, state, attempts, next_attempt_at, finished_at, created_at FROM webhook_deliveries "
        "WHERE endpoint_id = $1 ORDER BY id",
        endpoint_id,
    )


async def attempts(db: asyncpg.Connection, endpoint_id: UUID) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT a.delivery_id, a.status, a.latency_ms, a.excerpt FROM webhook_attempts a "
        "JOIN webhook_deliveries d ON d.id = a.delivery_id WHERE d.endpoint_id = $1 ORDER BY a.id",
        endpoint_id,
    )


async def test_events_arrive_signed_and_verify_with_standardwebhooks(client, settings, db, receiver):
    tenant = await make_tenant(client)
    endpoint = await register_endpoint(db, tenant.id, receiver.url)
    user_ids = await users_with_events(client, db, tenant, 3, settings)
    counted = {"outcome": "delivered"}
    before = REGISTRY.get_sample_value("scimsvc_webhook_attempts_total", counted) or 0

    await run_worker(webhook_settings(settings))

    assert len(receiver.requests) == 3
    secret = endpoint_secret(SIGNING_KEY, endpoint, 1)
    for got in receiver.requests:
        assert Webhook(secret).verify(got.body, got.headers) == got.event
        assert got.headers["webhook-id"] == got.event["id"] and got.event["id"].startswith("evt_")
        assert got.headers["content-type"] == "application/json"
        assert got.headers["user-agent"].startswith("scimsvc-webhooks/")
        assert got.event["type"] == "user.created" and got.event["tenant_id"] == tenant.id
    assert {e["data"]["user"]["id"] for e in receiver.unique().values()} == set(user_ids)
    assert receiver.in_order() == await events_in_order(db, endpoint)
    rows = await deliveries(db, endpoint)
    assert [(r["state"], r["attempts"]) for r in rows] == [("delivered", 1)] * 3
    assert all(r["finished_at"] is not None for r in rows)
    tried = await attempts(db, endpoint)
    assert [(a["status"], a["excerpt"]) for a in tried] == [(200, "ok, thanks")] * 3
    assert all(a["latency_ms"] > 0 for a in tried)
    assert REGISTRY.get_sample_value("scimsvc_webhook_attempts_total", counted) == before + 3
    # Nothing that signs is kept: no attempt holds a header.
    assert not any("v1," in a["excerpt"] or SIGNING_KEY in a["excerpt"] for a in tried)


async def test_during_a_rotation_either_secret_verifies_and_after_it_only_the_new_one(
    client, settings, db, receiver
):
    tenant = await make_tenant(client)
    rotating = await register_endpoint(db, tenant.id, receiver.url, generation=2, previous_valid=True)
    await users_with_events(client, db, tenant, 1, settings)
    await run_worker(webhook_settings(settings))

    (got,) = receiver.requests
    assert len(got.headers["webhook-signature"].split()) == 2
    for generation in (1, 2):
        Webhook(endpoint_secret(SIGNING_KEY, rotating, generation)).verify(got.body, got.headers)

    # The overlap ends: only the new secret signs.
    await db.execute("UPDATE webhook_endpoints SET previous_until = now() WHERE id = $1", rotating)
    await users_with_events(client, db, tenant, 1, settings)
    await run_worker(webhook_settings(settings))
    later = receiver.requests[1]
    assert len(later.headers["webhook-signature"].split()) == 1
    Webhook(endpoint_secret(SIGNING_KEY, rotating, 2)).verify(later.body, later.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(endpoint_secret(SIGNING_KEY, rotating, 1)).verify(later.body, later.headers)


async def test_a_receiver_down_then_slow_then_failing_then_back_gets_every_event_in_order(
    client, settings, db
):
    receiver = Receiver()  # not started: connections are refused
    tenant = await make_tenant(client)
    endpoint = await register_endpoint(db, tenant.id, receiver.url)
    await users_with_events(client, db, tenant, 5, settings)
    worker = webhook_settings(settings)

    await run_worker(worker)  # down
    rows = await deliveries(db, endpoint)
    assert [(r["state"], r["attempts"]) for r in rows] == [("pending", 1)] * 5
    # Backed off: due again 5 s ± 20 % after the failed attempt (product/webhooks.py:retry_delay), both
    # times taken in the transaction that recorded it.
    waits = await db.fetch(
        "SELECT d.next_attempt_at - a.at AS wait FROM webhook_deliveries d "
        "JOIN webhook_attempts a ON a.delivery_id = d.id WHERE d.endpoint_id = $1",
        endpoint,
    )
    assert len(waits) == 5
    assert all(timedelta(seconds=4) <= w["wait"] <= timedelta(seconds=6) for w in waits), waits
    down = await attempts(db, endpoint)
    assert all(a["status"] is None and a["excerpt"].startswith("could not connect") for a in down)
    failing = "SELECT failing_since IS NOT NULL FROM webhook_endpoints WHERE id = $1"
    assert await db.fetchval(failing, endpoint)

    await receiver.start()
    try:
        receiver.mode = "slow"  # answers after the timeout (1 s)
        await make_due(db, endpoint)
        await run_worker(worker)
        slow = (await attempts(db, endpoint))[5:]
        assert len(slow) == 5
        # Timed out with no status; on a busy machine the connect itself may be what took too long.
        timed_out = {"no answer within 1 s", "could not connect within 1 s", "no complete answer within 2 s"}
        assert all(a["status"] is None and a["excerpt"] in timed_out for a in slow), slow

        receiver.mode = "fail"
        await make_due(db, endpoint)
        await run_worker(worker)
        failed = (await attempts(db, endpoint))[10:]
        assert [a["status"] for a in failed] == [500] * 5
        assert all(a["excerpt"].startswith("receiver broke: xxx") for a in failed)
        assert all(len(a["excerpt"]) == 200 for a in failed)

        receiver.mode = "ok"
        await make_due(db, endpoint)
        await run_worker(worker)
    finally:
        await receiver.stop()

    rows = await deliveries(db, endpoint)
    assert [(r["state"], r["attempts"]) for r in rows] == [("delivered", 4)] * 5
    # Every event arrived; duplicates (the slow attempts were received, then retried) dropped by
    # webhook-id; the order is rebuilt from the sequence numbers, with no gap.
    assert len(receiver.requests) > 5
    assert len(receiver.unique()) == 5
    assert receiver.in_order() == await events_in_order(db, endpoint)
    # A retry is the same message (same webhook-id, same body), signed again.
    secret = Webhook(endpoint_secret(SIGNING_KEY, endpoint, 1))
    for got in receiver.requests:
        assert secret.verify(got.body, got.headers) == receiver.unique()[got.headers["webhook-id"]]
    assert await db.fetchval("SELECT failing_since FROM webhook_endpoints WHERE id = $1", endpoint) is None


# Deliveries of an endpoint claimed by a worker and not yet recorded (none of these has failed before).
CLAIMED_NOT_RECORDED = """
SELECT count(*) FROM webhook_deliveries d
WHERE d.endpoint_id = $1 AND d.state = 'pending' AND d.attempts > 0
  AND NOT EXISTS (SELECT 1 FROM webhook_attempts a WHERE a.delivery_id = d.id)
"""


async def test_many_wake_ups_at_once_claim_no_more_than_a_worker_sends_so_none_times_out_waiting(
    client, settings, db, receiver
):
    # Were each of the eleven jobs below to claim its own 100 deliveries, 800 would be claimed at once and
    # wait for the session's 100 connections. A claimed delivery not yet recorded is pending with an
    # attempt counted and no attempt row: sampled while the worker runs, never more than 100 of those.
    # (A sample may miss the peak, never invent one; the timeout is generous, so no attempt fails.)
    receiver.mode, receiver.slow_seconds = "slow", 0.4
    tenant = await make_tenant(client)
    endpoint = await register_endpoint(db, tenant.id, receiver.url)
    await record_events_of_no_user(db, tenant.id, 800)
    worker = webhook_settings(settings, webhook_timeout_seconds=60)
    redis = await create_pool(RedisSettings.from_dsn(worker.redis_url))
    try:
        for _ in range(10):  # ten wake-ups at once, and the cron's run at start-up
            assert await enqueue_deliver_webhooks(redis, queue_name=worker.queue_name)
    finally:
        await redis.aclose()
    claimed_at_once: list[int] = []
    watcher = await asyncpg.connect(worker.database_url)

    async def watch() -> None:
        while True:
            claimed_at_once.append(await watcher.fetchval(CLAIMED_NOT_RECORDED, endpoint))
            await asyncio.sleep(0.02)

    watching = asyncio.create_task(watch())
    try:
        await run_worker(worker)
    finally:
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
        await watcher.close()

    assert [r["state"] for r in await deliveries(db, endpoint)] == ["delivered"] * 800
    assert len(receiver.unique()) == 800
    assert receiver.most_in_flight <= LANES * BATCH == 100
    assert claimed_at_once and max(claimed_at_once) <= 100


async def test_a_delivery_still_failing_after_the_retry_period_is_given_up(client, settings, db, receiver):
    receiver.mode = "fail"
    tenant = await make_tenant(client)
    endpoint = await register_endpoint(db, tenant.id, receiver.url)
    await users_with_events(client, db, tenant, 2, settings)
    # One delivery was queued 73 hours ago (the retry period is 72 hours); the other just now.
    await db.execute(
        "UPDATE webhook_deliveries SET created_at = now() - interval '73 hours' WHERE id = "
        "(SELECT min(id) FROM webhook_deliveries WHERE endpoint_id = $1)",
        endpoint,
    )
    await run_worker(webhook_settings(settings))

    old, new = await deliveries(db, endpoint)
    assert (old["state"], old["attempts"]) == ("failed", 1) and old["finished_at"] is not None
    assert (new["state"], new["attempts"]) == ("pending", 1) and new["finished_at"] is None


async def test_an_endpoint_failing_past_the_limit_is_disabled_audited_and_its_deliveries_stopped(
    client, settings, db, receiver
):
    receiver.mode = "fail"
    tenant = await make_tenant(client)
    endpoint = await register_endpoint(db, tenant.id, receiver.url)
    await users_with_events(client, db, tenant, 3, settings)
    # Failing for 121 hours (the limit is 120); one delivery is due, two wait for their retry.
    await db.execute(
        "UPDATE webhook_endpoints SET failing_since = now() - interval '121 hours' WHERE id = $1", endpoint
    )
    await db.execute(
        "UPDATE webhook_deliveries SET next_attempt_at = now() + interval '1 hour' WHERE endpoint_id = $1 "
        "AND id > (SELECT min(id) FROM webhook_deliveries WHERE endpoint_id = $1)",
        endpoint,
    )
    # The worker's counter: not `..._endpoints_disabled`, the web front end's gauge of those off now.
    disablings = "scimsvc_webhook_endpoint_disablings_total"
    before = REGISTRY.get_sample_value(disablings) or 0
    await run_worker(webhook_settings(settings))

    row = await db.fetchrow("SELECT enabled, disabled_reason FROM webhook_endpoints WHERE id = $1", endpoint)
    assert row["enabled"] is False and row["disabled_reason"] == "every attempt failed for 120 hours"
    assert REGISTRY.get_sample_value(disablings) == before + 1
    audit = await db.fetch(
        "SELECT tenant_id, actor, detail::text FROM audit_log WHERE action = 'webhook_disabled' "
        "AND detail ->> 'endpoint_id' = $1",
        str(endpoint),
    )
    assert [(str(a["tenant_id"]), a["actor"]) for a in audit] == [(tenant.id, "worker")]
    assert len(receiver.requests) == 1
    assert [r["state"] for r in await deliveries(db, endpoint)] == ["failed"] * 3
    tried = await attempts(db, endpoint)
    assert [a["status"] for a in tried] == [500, None, None]
    assert all(a["excerpt"] == "not sent: the endpoint is disabled" for a in tried[1:])

    # A new event for a disabled endpoint queues nothing.
    await users_with_events(client, db, tenant, 1, settings)
    assert len(await deliveries(db, endpoint)) == 3


async def test_an_operators_endpoint_failing_past_the_limit_is_audited_without_a_tenant(
    client, settings, db, receiver
):
    receiver.mode = "fail"
    tenant = await make_tenant(client)
    endpoint = await register_endpoint(db, None, receiver.url)
    await db.execute(
        "UPDATE webhook_endpoints SET failing_since = now() - interval '121 hours' WHERE id = $1", endpoint
    )
    await users_with_events(client, db, tenant, 1, settings)
    await run_worker(webhook_settings(settings))

    assert await db.fetchval("SELECT enabled FROM webhook_endpoints WHERE id = $1", endpoint) is False
    audit = await db.fetch(
        "SELECT tenant_id, actor FROM audit_log WHERE action = 'webhook_disabled' "
        "AND detail ->> 'endpoint_id' = $1",
        str(endpoint),
    )
    assert [(a["tenant_id"], a["actor"]) for a in audit] == [(None, "worker")]


async def test_a_success_ends_an_endpoints_failing_streak(client, settings, db, receiver):
    tenant = await make_tenant(client)
    endpoint = await register_endpoint(db, tenant.id, receiver.url)
    await db.execute(
        "UPDATE webhook_endpoints SET failing_since = now() - interval '100 hours' WHERE id = $1", endpoint
    )
    await users_with_events(client, db, tenant, 1, settings)
    await run_worker(webhook_settings(settings))
    row = await db.fetchrow("SELECT enabled, failing_since FROM webhook_endpoints WHERE id = $1", endpoint)
    assert row["enabled"] is True and row["failing_since"] is None


async def test_deliveries_of_an_endpoint_disabled_by_hand_are_not_sent(client, settings, db, receiver):
    tenant = await make_tenant(client)
    endpoint = await register_endpoint(db, tenant.id, receiver.url)
    await users_with_events(client, db, tenant, 2, settings)
    await db.execute(
        "UPDATE webhook_endpoints SET enabled = false, disabled_reason = 'paused by the admin' WHERE id = $1",
        endpoint,
    )
    await run_worker(webhook_settings(settings))

    assert receiver.requests == []
    assert [(r["state"], r["attempts"]) for r in await deliveries(db, endpoint)] == [("failed", 0)] * 2
    assert [a["excerpt"] for a in await attempts(db, endpoint)] == [
        "not sent: the endpoint is disabled (paused by the admin)"
    ] * 2


@pytest.mark.parametrize(
    "target",
    [
        "https://10.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]:{port}/hook",
        "https://[::ffff:169.254.169.254]/hook",
        "http://127.0.0.1:{port}/hook",  # a receiver that listens, on a loopback network not allowed
        "http://localhost:{port}/hook",  # a name: refused once resolved
    ],
)
async def test_private_loopback_and_link_local_targets_are_refused_and_nothing_is_sent(
    client, settings, db, receiver, target
):
    tenant = await make_tenant(client)
    endpoint = await register_endpoint(db, tenant.id, target.format(port=receiver.port))
    await users_with_events(client, db, tenant, 1, settings)

    await run_worker(webhook_settings(settings, webhook_allowed_networks=""))

    assert receiver.requests == []
    (tried,) = await attempts(db, endpoint)
    assert tried["status"] is None
    assert tried["excerpt"].startswith("refused, not sent: ")
    assert "private, loopback, link-local or reserved" in tried["excerpt"]
    # Refused like a failure: retried later (the address may change), the endpoint counted as failing.
    ((state, count),) = [(r["state"], r["attempts"]) for r in await deliveries(db, endpoint)]
    assert (state, count) == ("pending", 1)


async def test_a_name_whose_every_address_is_allowed_is_reached_by_its_name(client, settings, db, receiver):
    tenant = await make_tenant(client)
    endpoint = await register_endpoint(db, tenant.id, f"http://localhost:{receiver.port}/hook")
    await users_with_events(client, db, tenant, 1, settings)

    await run_worker(webhook_settings(settings, webhook_allowed_networks="127.0.0.0/8, ::1/128"))

    (got,) = receiver.requests
    assert got.headers["host"] == f"localhost:{receiver.port}"  # the name, not the address connected to
    assert [r["state"] for r in await deliveries(db, endpoint)] == ["delivered"]


async def test_one_refused_address_among_a_names_addresses_refuses_the_name():
    class TwoAddresses(AbstractResolver):
        async def resolve(self, host: str, port: int = 0, family: Any = 0) -> list[ResolveResult]:
            return [
                ResolveResult(hostname=host, host=ip, port=port, family=2, proto=6, flags=0)
                for ip in ("127.0.0.1", "10.0.0.1")
            ]

        async def close(self) -> None:
            return None

    resolver = CheckedResolver([ipaddress.ip_network("127.0.0.1/32")], timeout_seconds=1)
    resolver._resolver = TwoAddresses()  # DNS answering a public-looking name with two addresses
    with pytest.raises(RefusedTarget, match="hooks.example.com: 10.0.0.1 is a private"):
        await resolver.resolve("hooks.example.com", 443)


async def test_plain_http_is_refused_without_the_development_setting(client, settings, db, receiver):
    tenant = await make_tenant(client)
    endpoint = await register_endpoint(db, tenant.id, receiver.url)
    await users_with_events(client, db, tenant, 1, settings)

    await run_worker(webhook_settings(settings, webhook_allow_http=False))

    assert receiver.requests == []
    (tried,) = await attempts(db, endpoint)
    assert tried["excerpt"].startswith("refused, not sent: the URL must start with https://")


async def test_a_redirect_is_not_followed(client, settings, db, receiver):
    elsewhere = await Receiver().start()
    try:
        receiver.mode, receiver.redirect_to = "redirect", elsewhere.url
        tenant = await make_tenant(client)
        endpoint = await register_endpoint(db, tenant.id, receiver.url)
        await users_with_events(client, db, tenant, 1, settings)

        await run_worker(webhook_settings(settings))

        assert len(receiver.requests) == 1 and elsewhere.requests == []
        (tried,) = await attempts(db, endpoint)
        assert tried["status"] == 307
        assert tried["excerpt"] == f"redirect not followed (Location: {elsewhere.url})"
        assert [r["state"] for r in await deliveries(db, endpoint)] == ["pending"]
    finally:
        await elsewhere.stop()


async def test_an_endless_answer_is_read_only_up_to_the_cap(client, settings, db, receiver):
    receiver.mode = "endless"  # a 200 whose body never ends: read whole, it would time out
    tenant = await make_tenant(client)
    endpoint = await register_endpoint(db, tenant.id, receiver.url)
    await users_with_events(client, db, tenant, 1, settings)

    await run_worker(webhook_settings(settings, webhook_timeout_seconds=5))

    assert [r["state"] for r in await deliveries(db, endpoint)] == ["delivered"]
    (tried,) = await attempts(db, endpoint)
    assert tried["status"] == 200 and len(tried["excerpt"]) == 200 and tried["excerpt"].startswith("yyyy")


async def test_a_2xx_whose_body_stalls_is_delivered_with_what_came(client, settings, db, receiver):
    receiver.mode = "stalls"
    tenant = await make_tenant(client)
    endpoint = await register_endpoint(db, tenant.id, receiver.url)
    await users_with_events(client, db, tenant, 1, settings)

    await run_worker(webhook_settings(settings))

    assert [r["state"] for r in await deliveries(db, endpoint)] == ["delivered"]
    (tried,) = await attempts(db, endpoint)
    assert (tried["status"], tried["excerpt"]) == (200, "accepted; details follow")


async def test_without_a_signing_key_deliveries_wait(client, settings, db, receiver):
    tenant = await make_tenant(client)
    endpoint = await register_endpoint(db, tenant.id, receiver.url)
    await users_with_events(client, db, tenant, 1, settings)

    await run_worker(webhook_settings(settings, webhook_signing_key=""))

    assert receiver.requests == []
    assert [(r["state"], r["attempts"]) for r in await deliveries(db, endpoint)] == [("pending", 0)]
    assert await attempts(db, endpoint) == []


async def test_an_endpoint_gets_only_the_event_types_it_wants(client, settings, db, receiver):
    tenant = await make_tenant(client)
    await register_endpoint(db, tenant.id, receiver.url, event_types=["user.deleted"])
    other = await make_tenant(client)
    await register_endpoint(db, other.id, receiver.url)
    await users_with_events(client, db, tenant, 1, settings)

    await run_worker(webhook_settings(settings))

    assert receiver.requests == []  # not the type it wants; the other tenant's endpoint hears nothing


async def test_ops_queue_shows_the_webhook_backlog_and_the_failing_endpoint(aiohttp_client, own_database, db):
    settings = own_database  # /ops/queue counts every tenant's deliveries
    client = await aiohttp_client(create_app(settings))
    own_db = await asyncpg.connect(settings.database_url)
    try:
        down = Receiver()  # never started
        tenant = await make_tenant(client)
        endpoint = await register_endpoint(own_db, tenant.id, down.url)
        await users_with_events(client, own_db, tenant, 2, settings)
        await run_worker(webhook_settings(settings))

        resp = await client.get("/ops/queue", headers=ADMIN_HEADERS)
        assert resp.status == 200
        webhooks = (await resp.json())["webhooks"]
        assert webhooks["pending_deliveries"] == 2
        assert webhooks["oldest_undelivered_age_seconds"] is not None
        assert webhooks["failing_endpoints"] == 1 and webhooks["disabled_endpoints"] == 0
        (failing,) = webhooks["endpoints_failing_longest"]
        assert failing["id"] == str(endpoint) and failing["tenant_id"] == tenant.id
        assert failing["host"] == "127.0.0.1" and failing["pending_deliveries"] == 2
        assert "/hook" not in str(failing)  # the host only: a URL's path may hold the receiver's token

        # The web front end has no signing key here: the report says why deliveries would wait.
        assert NO_SIGNING_KEY in (await resp.json())["reasons"]

        metrics = await (await client.get("/metrics")).text()
        assert "scimsvc_webhook_deliveries_pending 2.0" in metrics
        assert "scimsvc_webhook_endpoints_failing 1.0" in metrics

        await signed_in(client)  # the console's queue page
        page = await (await client.get("/console/queue")).text()
        assert "Webhook deliveries" in page and "Endpoints failing longest" in page and str(endpoint) in page

        out = io.StringIO()  # `scimsvc queue`
        await show(settings, watch=False, interval=1, console=Console(file=out, width=200))
        table = out.getvalue()
        for label in ("webhook deliveries pending", "oldest undelivered event", "webhook endpoints failing"):
            assert label in table
        assert str(endpoint) in table
    finally:
        await own_db.close()


@pytest.mark.parametrize(
    ("due_for", "status"), [(None, "ok"), (30.0, "ok"), (90.0, "degraded"), (4000.0, "degraded")]
)
def test_deliveries_due_longer_than_the_limit_make_the_queue_degraded_never_stalled(due_for, status):
    got, reasons = queue_status(
        pending_rows=0,
        oldest_age_seconds=None,
        live_workers=1,
        failed_last_hour=0,
        degraded_after=60,
        stalled_after=300,
        webhooks_due_seconds=due_for,
    )
    assert got == status
    assert any("webhook" in r for r in reasons) == (status == "degraded")
