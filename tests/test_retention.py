"""Retention: finished rows past their age are deleted by the worker's cron, in bounded batches."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from prometheus_client import REGISTRY

import worker.retention
from scimsvc.product.events import EventType, NewEvent
from scimsvc.settings import Settings
from scimsvc.store import retention
from scimsvc.store.db import create_pool
from scimsvc.store.events import record_events
from tests.conftest import (
    ADMIN_HEADERS,
    Tenant,
    free_port,
    make_tenant,
    post_user,
    run_worker,
    unique_email,
    wait_until,
)
from worker.retention import purge_expired
from worker.settings import worker_settings


def deleted_total(table: str) -> float:
    """This process's `scimsvc_retention_rows_deleted_total{table}`."""
    value = REGISTRY.get_sample_value("scimsvc_retention_rows_deleted_total", {"table": table})
    return value or 0.0


@pytest.fixture
def retained(settings: Settings) -> Settings:
    """Settings with the documented windows and batches of 2 rows, so every run deletes in many batches."""
    return dataclasses.replace(
        settings,
        retention_outbox_days=7,
        retention_notices_days=30,
        retention_audit_days=400,
        retention_batch_size=2,
    )


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(settings.database_url, min_size=1, max_size=4)
    yield pool
    await pool.close()


async def purge(pool: asyncpg.Pool, settings: Settings) -> dict[str, int]:
    """Run the cron job once, as a worker would (the job reads only its pool and settings)."""
    return await purge_expired({"pool": pool, "settings": settings, "redis": None})


async def applied_users(client: Any, tenant: Tenant, settings: Settings, count: int) -> list[str]:
    """POST `count` users and let the worker apply them; their ids."""
    users = [(await post_user(client, tenant))["id"] for _ in range(count)]
    await run_worker(settings)
    return users


async def age_outbox(db: asyncpg.Connection, user_ids: list[str], *, applied_days_ago: int) -> None:
    await db.execute(
        "UPDATE outbox SET created_at = now() - make_interval(days => $2 + 1),"
        " applied_at = now() - make_interval(days => $2)"
        " WHERE resource_id = ANY($1::uuid[])",
        user_ids,
        applied_days_ago,
    )


async def outbox_rows(db: asyncpg.Connection, user_ids: list[str]) -> int:
    return await db.fetchval("SELECT count(*) FROM outbox WHERE resource_id = ANY($1::uuid[])", user_ids)


async def test_applied_outbox_rows_past_the_window_go_and_newer_or_unapplied_ones_stay(
    client, tenant, db, retained, pool
):
    old = await applied_users(client, tenant, retained, 5)
    recent = await applied_users(client, tenant, retained, 2)
    fresh = await applied_users(client, tenant, retained, 1)
    await age_outbox(db, old, applied_days_ago=8)
    await age_outbox(db, recent, applied_days_ago=6)
    # Written long ago and never applied (a worker that keeps failing on it): never deleted.
    stuck = [(await post_user(client, tenant))["id"]]
    await db.execute(
        "UPDATE outbox SET created_at = now() - interval '90 days' WHERE resource_id = $1::uuid", stuck[0]
    )
    counted_before = deleted_total("outbox")

    removed = await purge(pool, retained)

    assert await outbox_rows(db, old) == 0
    assert await outbox_rows(db, recent) == 2 and await outbox_rows(db, fresh) == 1
    assert await db.fetchval("SELECT applied_at IS NULL FROM outbox WHERE resource_id = $1::uuid", stuck[0])
    assert removed["outbox"] >= 5  # in batches of 2: the job went on past full batches
    assert deleted_total("outbox") - counted_before == removed["outbox"]
    # The users themselves are untouched: only the change log of what was applied goes.
    resp = await client.get(f"/scim/v2/Users/{old[0]}", headers=tenant.headers)
    assert resp.status == 200


async def test_audit_rows_past_the_window_go_and_rows_within_it_stay(client, tenant, db, retained, pool):
    old = await applied_users(client, tenant, retained, 3)
    kept = await applied_users(client, tenant, retained, 2)
    audited = "SELECT count(*) FROM audit_log WHERE user_id = ANY($1::uuid[])"
    assert await db.fetchval(audited, old) >= 3 and await db.fetchval(audited, kept) >= 2
    kept_rows = await db.fetchval(audited, kept)
    await db.execute(
        "UPDATE audit_log SET created_at = now() - interval '401 days' WHERE user_id = ANY($1::uuid[])", old
    )
    await db.execute(
        "UPDATE audit_log SET created_at = now() - interval '399 days' WHERE user_id = ANY($1::uuid[])", kept
    )
    counted_before = deleted_total("audit_log")

    removed = await purge(pool, retained)

    assert await db.fetchval(audited, old) == 0
    assert await db.fetchval(audited, kept) == kept_rows
    assert removed["audit_log"] >= 3
    assert deleted_total("audit_log") - counted_before == removed["audit_log"]
    # What the operator reads: the tenant's audit log holds the kept users' rows and none of the old ones.
    resp = await client.get(f"/admin/v1/tenants/{tenant.id}/audit?limit=1000", headers=ADMIN_HEADERS)
    assert resp.status == 200
    shown = [item["user_id"] for item in (await resp.json())["items"]]
    assert not set(old) & set(shown) and shown.count(kept[0]) + shown.count(kept[1]) == kept_rows


async def renamed_user(client: Any, tenant: Tenant) -> str:
    """A user whose email changed: two notices (old and new address), still pending."""
    user = await post_user(client, tenant)
    patch = {"Operations": [{"op": "replace", "path": "userName", "value": unique_email("renamed")}]}
    resp = await client.patch(f"/scim/v2/Users/{user['id']}", json=patch, headers=tenant.headers)
    assert resp.status == 200, await resp.text()
    return user["id"]


async def notice_state(db: asyncpg.Connection, user_id: str) -> tuple[list[str], int]:
    """The user's notices' statuses and how many delivery attempts they have."""
    statuses = await db.fetch("SELECT status FROM notices WHERE user_id = $1::uuid ORDER BY id", user_id)
    attempts = await db.fetchval(
        "SELECT count(*) FROM notice_attempts a JOIN notices n ON n.id = a.notice_id"
        " WHERE n.user_id = $1::uuid",
        user_id,
    )
    return [r["status"] for r in statuses], attempts


async def test_finished_notices_go_with_their_attempts_and_ones_still_retried_stay(
    client, tenant, db, retained, pool
):
    dead_smtp = f"smtp://127.0.0.1:{free_port()}"  # nobody listens: every delivery fails
    given_up = await renamed_user(client, tenant)
    await run_worker(dataclasses.replace(retained, smtp_url=dead_smtp, notice_max_attempts=1))
    not_sent, recent = await renamed_user(client, tenant), await renamed_user(client, tenant)
    await run_worker(dataclasses.replace(retained, smtp_url=""))
    # Last, so no other run of the worker above gives these up: they wait for their next attempt.
    retrying = await renamed_user(client, tenant)
    await run_worker(dataclasses.replace(retained, smtp_url=dead_smtp))
    assert await notice_state(db, given_up) == (["failed", "failed"], 2)
    assert await notice_state(db, not_sent) == (["not_sent", "not_sent"], 2)
    statuses, attempts = await notice_state(db, retrying)
    assert statuses == ["pending", "pending"] and attempts >= 2  # each failed once (more on a slow run)
    await db.execute(
        "UPDATE notices SET created_at = now() - interval '31 days' WHERE user_id = ANY($1::uuid[])",
        [given_up, not_sent, retrying],
    )
    await db.execute(
        "UPDATE notices SET created_at = now() - interval '29 days' WHERE user_id = $1::uuid", recent
    )
    before = {table: deleted_total(table) for table in ("notices", "notice_attempts")}
    kept = {user: await notice_state(db, user) for user in (retrying, recent)}

    removed = await purge(pool, retained)

    assert await notice_state(db, given_up) == ([], 0)
    assert await notice_state(db, not_sent) == ([], 0)
    assert {user: await notice_state(db, user) for user in (retrying, recent)} == kept
    assert kept[recent] == (["not_sent", "not_sent"], 2)
    assert removed["notices"] >= 4 and removed["notice_attempts"] >= 4
    for table in ("notices", "notice_attempts"):
        assert deleted_total(table) - before[table] == removed[table]


async def test_request_counts_a_day_old_go_and_the_last_days_stay(client, tenant, db, retained, pool):
    await db.execute(
        "INSERT INTO tenant_request_minutes (tenant_id, minute, requests, rate_limited, server_errors)"
        " SELECT $1::uuid, date_trunc('minute', now()) - make_interval(mins => m), 1, 0, 0"
        " FROM unnest(ARRAY[0, 5, 60 * 23, 60 * 25, 60 * 24 * 30]) AS m",
        tenant.id,
    )

    removed = await purge(pool, retained)

    assert removed["tenant_request_minutes"] >= 2
    left = await db.fetch(
        "SELECT (extract(epoch FROM date_trunc('minute', now()) - minute) / 60)::int AS ago"
        " FROM tenant_request_minutes WHERE tenant_id = $1::uuid ORDER BY minute DESC",
        tenant.id,
    )
    assert [r["ago"] for r in left] == [0, 5, 60 * 23]
    resp = await client.get(f"/admin/v1/tenants/{tenant.id}/stats", headers=ADMIN_HEADERS)
    assert (await resp.json())["last_hour"]["requests"] == 2  # the minutes of the last hour only


async def test_zero_days_keeps_rows_forever(client, tenant, db, retained, pool):
    users = await applied_users(client, tenant, retained, 2)
    await age_outbox(db, users, applied_days_ago=3650)
    await db.execute(
        "UPDATE audit_log SET created_at = now() - interval '3650 days' WHERE user_id = ANY($1::uuid[])",
        users,
    )
    audit_rows = await db.fetchval("SELECT count(*) FROM audit_log WHERE user_id = ANY($1::uuid[])", users)
    keep_all = dataclasses.replace(
        retained,
        retention_outbox_days=0,
        retention_notices_days=0,
        retention_audit_days=0,
        retention_provisioning_log_days=0,
        retention_events_days=0,
    )

    # Console sessions and portal links have a fixed window of their own (nothing of theirs here).
    # So have the per-minute request counts.
    fixed = {"console_sessions": 0, "portal_links": 0, "tenant_request_minutes": 0}
    assert await purge(pool, keep_all) == fixed
    assert await outbox_rows(db, users) == 2
    assert (
        await db.fetchval("SELECT count(*) FROM audit_log WHERE user_id = ANY($1::uuid[])", users)
        == audit_rows
    )

    await purge(pool, retained)  # the same rows under the default windows: gone
    assert await outbox_rows(db, users) == 0


async def test_a_run_stops_at_its_batch_cap_and_the_next_runs_finish(
    client, tenant, db, retained, pool, monkeypatch
):
    old = await applied_users(client, tenant, retained, 7)
    await age_outbox(db, old, applied_days_ago=30)
    monkeypatch.setattr(worker.retention, "MAX_BATCHES", 2)

    removed = await purge(pool, retained)

    # Two full batches of 2, whatever else is past its age: a run's work is bounded.
    assert removed["outbox"] == 4
    assert await outbox_rows(db, old) >= 3
    for _ in range(10):
        if await outbox_rows(db, old) == 0:
            break
        await purge(pool, retained)
    assert await outbox_rows(db, old) == 0


async def test_two_runs_at_once_delete_each_row_once(client, tenant, db, retained, pool):
    old = await applied_users(client, tenant, retained, 10)
    await age_outbox(db, old, applied_days_ago=30)
    counted_before = deleted_total("outbox")

    runs = await asyncio.gather(purge(pool, retained), purge(pool, retained))

    assert await outbox_rows(db, old) == 0
    together = sum(run.get("outbox", 0) for run in runs)
    assert together >= 10
    assert deleted_total("outbox") - counted_before == together


async def test_a_run_skips_rows_another_transaction_holds_instead_of_waiting(
    client, tenant, db, retained, pool, database_url
):
    old = await applied_users(client, tenant, retained, 3)
    await age_outbox(db, old, applied_days_ago=30)
    holder = await asyncpg.connect(database_url)
    try:
        async with holder.transaction():
            await holder.execute("SELECT id FROM outbox WHERE resource_id = $1::uuid FOR UPDATE", old[0])
            # The deadline only bounds a hang: a run that waited for the held row would not end before it.
            await asyncio.wait_for(purge(pool, retained), timeout=120)
            assert await outbox_rows(db, old) == 1
        await purge(pool, retained)  # released: the next run takes it
        assert await outbox_rows(db, old) == 0
    finally:
        await holder.close()


@pytest.mark.parametrize(
    ("sql", "index", "age"),
    [
        (retention.DELETE_APPLIED_OUTBOX, "outbox_applied_age", "applied_at"),
        (retention.DELETE_FINISHED_NOTICES, "notices_done_age", "created_at"),
        (retention.DELETE_OLD_AUDIT, "audit_log_age", "created_at"),
        (retention.DELETE_OLD_REQUEST_MINUTES, "tenant_request_minutes_age", "minute"),
    ],
)
async def test_each_batch_finds_its_rows_through_an_age_index(db, sql, index, age):
    # A generic plan (what a prepared statement ends up with) must be able to use the index; sequential
    # scans are priced out so a small test table cannot hide a predicate the index does not serve.
    async with db.transaction():
        await db.execute("SET LOCAL enable_seqscan = off")
        await db.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        await db.execute(f"PREPARE retention_batch (int, int) AS {sql}")
        plan = "\n".join(r[0] for r in await db.fetch("EXPLAIN EXECUTE retention_batch (7, 1000)"))
        await db.execute("DEALLOCATE retention_batch")
    # The index is entered at the oldest row and left after a batch, not read whole.
    assert f"Index Scan using {index} " in plan and f"Index Cond: ({age} < " in plan, plan


def test_the_worker_runs_retention_on_a_cron(settings):
    crons = {job.name: job for job in worker_settings(settings)["cron_jobs"]}
    assert f"cron:purge_expired@{settings.queue_name}" in crons


async def test_an_event_holding_a_users_snapshot_goes_only_with_the_events_pointing_at_it(
    client, settings, db, pool
):
    """A batch's later events of a user show the snapshot its first event holds (0028): retention keeps
    that event while one of them is kept, so the events API (a delivery, a replay) shows the whole user."""
    tenant = await make_tenant(client)
    user = await post_user(client, tenant)
    uid = uuid.UUID(user["id"])
    async with db.transaction():
        await record_events(
            db,
            uuid.UUID(tenant.id),
            [
                NewEvent(EventType.USER_UPDATED, {}, user_id=uid, request_id=str(uuid.uuid4())),
                NewEvent(EventType.LICENSE_CHANGED, {"from": "full", "to": "full"}, user_id=uid),
            ],
        )
    first, later = sorted(
        r["id"]
        for r in await db.fetch(
            "SELECT id FROM events WHERE tenant_id = $1::uuid"
            " AND type IN ('user.updated', 'license.changed')",
            tenant.id,
        )
    )
    # As when a batch's window ends between the two: only the snapshot's event is past the age.
    await db.execute("UPDATE events SET occurred_at = now() - interval '40 days' WHERE id = $1", first)
    wide = dataclasses.replace(settings, retention_events_days=30, retention_batch_size=1_000_000)
    await purge(pool, wide)
    assert await db.fetchval("SELECT count(*) FROM events WHERE id = ANY ($1::bigint[])", [first, later]) == 2
    resp = await client.get(
        f"/admin/v1/tenants/{tenant.id}/events", params={"type": "license.changed"}, headers=ADMIN_HEADERS
    )
    assert resp.status == 200, await resp.text()
    (shown,) = [e for e in (await resp.json())["events"] if e["id"].endswith(f"_{later}")]
    assert shown["data"]["user"]["userName"] == user["userName"]
    # Once the later event is past the age too, both go.
    await db.execute("UPDATE events SET occurred_at = now() - interval '40 days' WHERE id = $1", later)
    await purge(pool, wide)
    assert await db.fetchval("SELECT count(*) FROM events WHERE id = ANY ($1::bigint[])", [first, later]) == 0


async def test_a_young_log_row_at_the_head_does_not_stop_the_run(client, settings, db, pool):
    """Log rows are read in the order written: a row written late (young) among the oldest makes each
    batch short, and the run goes on past it."""
    tenant = await make_tenant(client)
    for _ in range(5):
        await post_user(client, tenant)
    ours = await wait_logged(db, tenant, 5)
    head = await db.fetchval("SELECT min(id) FROM provisioning_log")
    # Every row up to ours is aged but the oldest, which stays young (as one written late would).
    await db.execute(
        "UPDATE provisioning_log SET at = now() - interval '40 days' WHERE id <= $1 AND id <> $2",
        max(ours),
        head,
    )
    # Batches short enough to be many, whatever the other tests left in the table (a run stops after
    # worker/retention.py:MAX_BATCHES): each deletes all it read but the young head.
    rows = await db.fetchval("SELECT count(*) FROM provisioning_log WHERE id <= $1", max(ours))
    batch = max(2, rows // 50 + 2)
    small = dataclasses.replace(settings, retention_provisioning_log_days=30, retention_batch_size=batch)
    await purge(pool, small)
    left = await db.fetchval("SELECT count(*) FROM provisioning_log WHERE id = ANY ($1::bigint[])", ours)
    assert left == (1 if head in ours else 0)
    assert await db.fetchval("SELECT count(*) FROM provisioning_log WHERE id = $1", head) == 1


async def wait_logged(db: asyncpg.Connection, tenant: Tenant, count: int) -> list[int]:
    """The ids of the tenant's log rows, once it holds `count` (the writer flushes every 0.2 s)."""

    async def enough() -> list[int] | None:
        ids = await db.fetchval(
            "SELECT array_agg(id ORDER BY id) FROM provisioning_log WHERE tenant_id = $1::uuid", tenant.id
        )
        return ids if ids and len(ids) >= count else None

    found: list[int] = await wait_until(enough, what=f"{count} provisioning log rows")
    return found
