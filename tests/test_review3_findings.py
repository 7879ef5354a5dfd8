"""Review findings on the events' snapshot-once change and the events API (README.md, What happened).

test_events_api_pages_in_transaction_order_across_a_digit_boundary and
test_a_log_entry_kept_past_its_outbox_rows_still_shows_its_events fail. The first: `ORDER BY tx` in
store/events.py:_SELECT_EVENTS sorts by the output column `tx::text AS tx`, so a page mixing transaction
ids of different lengths is in text order and its cursor skips the events left behind. The others pass
and pin what a webhook receiver gets for a user with several events in one batch.
"""

from __future__ import annotations

import dataclasses
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest

from scimsvc.product.events import EventType, NewEvent
from scimsvc.store.events import record_events
from tests.conftest import ADMIN_HEADERS, make_tenant, post_user, run_worker, wait_until
from tests.test_provisioning_log import log_of, logged
from tests.webhook_receiver import Receiver, register_endpoint, webhook_settings

TENANT_EVENTS = "/admin/v1/tenants/{tid}/events"


async def walk(client: Any, tenant_id: str, **query: Any) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    after = ""
    while True:
        resp = await client.get(
            TENANT_EVENTS.format(tid=tenant_id), params={"after": after, **query}, headers=ADMIN_HEADERS
        )
        assert resp.status == 200, await resp.text()
        page = await resp.json()
        if not page["events"]:
            return seen
        seen += page["events"]
        after = page["next_cursor"]


async def test_events_api_pages_in_transaction_order_across_a_digit_boundary(client, db):
    tenant = await make_tenant(client)
    now = int(await db.fetchval("SELECT pg_current_xact_id()::text"))
    boundary = 10 ** (len(str(now)) - 1)  # e.g. 100000 when now is 606462: both txs below are committed
    if boundary + 1 >= now or boundary < 100:
        pytest.skip("transaction ids too young for a digit boundary")
    # Two committed writing transactions, the older one's id a digit shorter than the newer one's (as on
    # any server whose transaction counter passes 10^k between two polls).
    await db.execute(
        """
        INSERT INTO events (tx, tenant_id, seq, type, data)
        VALUES ($1::text::xid8, $3, 1000001, 'user.updated', '{"n": 1}'),
               ($2::text::xid8, $3, 1000002, 'user.updated', '{"n": 2}')
        """,
        str(boundary - 5),
        str(boundary + 1),
        UUID(tenant.id),
    )
    listed = await walk(client, tenant.id, type="user.updated", limit=1)
    assert [e["data"]["n"] for e in listed] == [1, 2]


@pytest.fixture
async def receiver() -> Any:
    server = await Receiver().start()
    yield server
    await server.stop()


async def test_a_user_with_three_events_in_a_batch_is_delivered_whole_in_each(client, settings, db, receiver):
    tenant = await make_tenant(client)
    user = await post_user(client, tenant)
    await run_worker(dataclasses.replace(settings, webhook_signing_key=""))
    endpoint = await register_endpoint(
        db, tenant.id, receiver.url, event_types=["user.updated", "user.email_changed", "license.changed"]
    )
    uid = UUID(user["id"])
    async with db.transaction():
        await record_events(
            db,
            UUID(tenant.id),
            [
                NewEvent(EventType.USER_UPDATED, user_id=uid, request_id="r3-a"),
                NewEvent(EventType.USER_EMAIL_CHANGED, {"previous_user_name": "x@y"}, user_id=uid),
                NewEvent(EventType.LICENSE_CHANGED, {"from": "full", "to": "full"}, user_id=uid),
            ],
        )
    await run_worker(webhook_settings(settings))
    got = sorted(receiver.unique().values(), key=lambda e: e["sequence"])
    assert [e["type"] for e in got] == ["user.updated", "user.email_changed", "license.changed"]
    for event in got:
        assert event["data"]["user"]["userName"] == user["userName"], event
    assert got[1]["data"]["previous_user_name"] == "x@y" and got[2]["data"]["to"] == "full"
    assert endpoint


async def test_retention_deleting_a_batchs_first_event_leaves_later_deliveries_with_the_id_alone(
    client, settings, db: asyncpg.Connection, receiver
):
    """What README.md (What happened) says: the later events then show {"id"} alone — a receiver gets a
    body that is not the resource (a replay of an old event, or a delivery retried near the age)."""
    tenant = await make_tenant(client)
    user = await post_user(client, tenant)
    await run_worker(dataclasses.replace(settings, webhook_signing_key=""))
    await register_endpoint(db, tenant.id, receiver.url, event_types=["license.changed"])
    uid = UUID(user["id"])
    async with db.transaction():
        await record_events(
            db,
            UUID(tenant.id),
            [
                NewEvent(EventType.USER_UPDATED, user_id=uid, request_id=str(uuid4())),
                NewEvent(EventType.LICENSE_CHANGED, {"from": "full", "to": "full"}, user_id=uid),
            ],
        )
    first = await db.fetchval(
        "SELECT id FROM events WHERE tenant_id = $1 AND type = 'user.updated' ORDER BY id DESC LIMIT 1",
        UUID(tenant.id),
    )
    await db.execute("DELETE FROM events WHERE id = $1", first)
    await run_worker(webhook_settings(settings))
    (event,) = receiver.unique().values()
    assert event["data"]["user"] == {"id": user["id"]}


async def test_a_log_entry_kept_past_its_outbox_rows_still_shows_its_events(client, settings, db):
    """Fails since the merge: the log (30 days) outlives applied outbox rows (7 days); once they are
    purged the entry still says `applied` with its audit rows, but `events` (and `teams`) turn empty, as
    if the request had reached nothing. Before, the events were found by request id."""
    tenant = await make_tenant(client)
    user = await post_user(client, tenant)
    await logged(db, tenant, 1)
    await run_worker(settings)

    async def applied() -> dict[str, Any] | None:
        found = (await log_of(client, tenant, user=user["id"]))["entries"]
        return found[0] if found and found[0]["outcome"]["state"] == "applied" else None

    before = (await wait_until(applied, what="the POST's entry, applied"))["outcome"]
    assert before["events"] and before["audit"]
    # Retention of applied outbox rows (SCIMSVC_RETENTION_OUTBOX_DAYS), the log row kept.
    await db.execute(
        "DELETE FROM outbox WHERE id = ANY (SELECT unnest(outbox_ids) FROM provisioning_log "
        "WHERE tenant_id = $1::uuid)",
        tenant.id,
    )
    after = (await log_of(client, tenant, user=user["id"]))["entries"][0]["outcome"]
    assert after["state"] == "applied" and after["audit"] == before["audit"]
    assert after["events"] == before["events"]
