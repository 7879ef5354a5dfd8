"""A user looked up by id is found through the primary key, even in a tenant the statistics do not know yet.

An organization's first import is the case: its users arrive faster than ANALYZE runs, and a plan that
read the tenant's users to find one of them made each lookup, and each event the worker wrote, cost as
much as the tenant's size (scimsvc/store/by_key.py).

Likewise the worker's statements on pending outbox rows read only the rows of the tenant or resources they
name, whatever the planner believes about how many rows are pending (scimsvc/store/outbox.py): a backlog
spread over thousands of organizations was read whole by every drain.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from scimsvc.product.events import EventType, NewEvent
from scimsvc.store import events, licenses, outbox, provisioning_log, tenant_stats, user_states, users
from scimsvc.store.migrations import available_migrations, migrate
from tests.conftest import RUN_ID, SERVER_URL, _drop_database, with_database

NEW_TENANT_USERS = 2_000
APPLIED_AT_STATISTICS = "SELECT count(*) FROM pg_stats WHERE tablename = 'outbox' AND attname = 'applied_at'"
# A tenant's next batch: its oldest pending rows, then every pending row of their resources.
BATCH_INDEXES = {"outbox_tenant_pending", "outbox_resource"}


def _record_events_args(tenant: uuid.UUID, user: uuid.UUID) -> tuple[Any, ...]:
    return events.record_args([(tenant, NewEvent(EventType.USER_CREATED, {}, user_id=user))])


LOOKUPS = {
    "users.SELECT_USER": (users.SELECT_USER, lambda t, u: (t, u)),
    "users.UPDATE_USER": (users.UPDATE_USER, lambda t, u: (t, u, "x@example.com", None, None, True, {})),
    "licenses.SELECT_USERS_LICENSING": (licenses.SELECT_USERS_LICENSING, lambda t, u: ([t], [u])),
    "licenses.SELECT_USER_IN_TENANT": (licenses.SELECT_USER_IN_TENANT, lambda t, u: (t, u)),
    "provisioning_log.SELECT_USER_BY_ID": (provisioning_log.SELECT_USER_BY_ID, lambda t, u: (t, u)),
    "events.RECORD_EVENTS": (events.RECORD_EVENTS, _record_events_args),
    "user_states.APPLY_USER_STATES": (user_states.APPLY_USER_STATES, lambda t, u: ([u], ["full"], [None])),
}


async def tenant_with(db: asyncpg.Connection, rows: str, count: int) -> uuid.UUID:
    """A new tenant, and `count` rows written for it by `rows` ($1: the tenant, $2: the count)."""
    tenant = await db.fetchval("INSERT INTO tenants (name) VALUES ($1) RETURNING id", f"plans-{uuid.uuid4()}")
    await db.execute(rows, tenant, count)
    return tenant


USERS = (
    "INSERT INTO users (tenant_id, user_name, resource) "
    "SELECT $1, gen_random_uuid() || '@plans.example', '{}' FROM generate_series(1, $2::int)"
)

PENDING_ROWS = (
    "INSERT INTO outbox (tenant_id, resource_type, resource_id, change) "
    "SELECT $1, 'user', gen_random_uuid(), 'create' FROM generate_series(1, $2::int)"
)


@pytest.fixture
async def new_tenant_user(db: asyncpg.Connection) -> tuple[uuid.UUID, uuid.UUID]:
    """A user of a tenant whose users all arrived after the statistics were taken."""
    await tenant_with(db, USERS, 500)
    await db.execute("ANALYZE users")
    tenant = await tenant_with(db, USERS, NEW_TENANT_USERS)
    user = await db.fetchval(
        "SELECT id FROM users WHERE tenant_id = $1 ORDER BY id OFFSET 1000 LIMIT 1", tenant
    )
    return tenant, user


@pytest.mark.parametrize("name", sorted(LOOKUPS))
async def test_a_new_tenants_user_is_found_by_primary_key(
    db: asyncpg.Connection, new_tenant_user: tuple[uuid.UUID, uuid.UUID], name: str
) -> None:
    sql, args = LOOKUPS[name]
    await db.set_type_codec(
        "jsonb", encoder=lambda v: orjson.dumps(v).decode(), decoder=orjson.loads, schema="pg_catalog"
    )
    plan = orjson.loads(await db.fetchval("EXPLAIN (FORMAT JSON) " + sql, *args(*new_tenant_user)))
    scans = [
        n for n in _nodes(plan[0]["Plan"]) if n.get("Relation Name") == "users" and "Scan" in n["Node Type"]
    ]
    assert scans and all(n.get("Index Name") == "users_pkey" for n in scans), [
        (n["Node Type"], n.get("Index Name")) for n in scans
    ]


def _literal(value: Any) -> str:
    """A test value (uuid, number, text without quotes, or a list of those) as an SQL literal."""
    text = "{" + ",".join(map(str, value)) + "}" if isinstance(value, list) else str(value)
    return f"'{text}'"


def _nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [node, *(n for child in node.get("Plans", []) for n in _nodes(child))]


async def test_the_next_batch_of_a_tenant_is_found_among_pending_rows_only(db: asyncpg.Connection) -> None:
    # The statistics were taken while the tenant's import was pending; most of it is applied since. The
    # batch must not walk the applied rows (the retention keeps days of them) to find the pending ones.
    tenant = await tenant_with(db, PENDING_ROWS, 3000)
    await db.execute("ANALYZE outbox")
    await db.execute(
        "UPDATE outbox SET applied_at = now() WHERE id IN "
        "(SELECT id FROM outbox WHERE tenant_id = $1 ORDER BY id LIMIT 2900)",
        tenant,
    )
    plan = orjson.loads(
        await db.fetchval("EXPLAIN (FORMAT JSON) " + outbox.SELECT_TENANT_BATCH, tenant, "user", 10, [])
    )
    indexes = {n.get("Index Name") for n in _nodes(plan[0]["Plan"]) if n.get("Relation Name") == "outbox"}
    assert indexes == BATCH_INDEXES, indexes  # led by tenant or resource, then applied_at: pending rows only


# The drain's statements on pending rows, each with the only index that reads none of another tenant's
# rows, nor the applied history. Arguments from (tenant, [(id, resource_id)] of its pending rows).
PENDING_READS = {
    "outbox.SELECT_TENANT_BATCH": (
        outbox.SELECT_TENANT_BATCH,
        lambda t, rows: (t, "user", 500, []),
        BATCH_INDEXES,
    ),
    "outbox.SELECT_TENANTS_BATCH": (
        outbox.SELECT_TENANTS_BATCH,
        lambda t, rows: ([t], "user", 10, []),
        BATCH_INDEXES,
    ),
    "outbox.TENANTS_WITH_UNAPPLIED": (
        outbox.TENANTS_WITH_UNAPPLIED,
        lambda t, rows: ([r[0] for r in rows],),
        {"outbox_pkey"},
    ),
    "outbox.SELECT_PENDING": (
        outbox.SELECT_PENDING,
        lambda t, rows: ("user", rows[0][1]),
        {"outbox_resource"},
    ),
    "outbox.SELECT_PENDING_OF": (
        outbox.SELECT_PENDING_OF,
        lambda t, rows: ("user", [r[1] for r in rows]),
        {"outbox_resource"},
    ),
    "licenses.SELECT_UNAPPLIED_USERS": (
        licenses.SELECT_UNAPPLIED_USERS,
        lambda t, rows: ([r[1] for r in rows],),
        {"outbox_resource"},
    ),
    "outbox.SELECT_STALE": (outbox.SELECT_STALE, lambda t, rows: (60.0, 1000), {"outbox_pending_age"}),
    "tenant_stats.TENANT_STATS": (
        tenant_stats.TENANT_STATS,
        lambda t, rows: (t, 3600.0),
        {"outbox_tenant_pending"},
    ),
    "outbox.ANY_UNAPPLIED": (outbox.ANY_UNAPPLIED, lambda t, rows: ([r[0] for r in rows],), {"outbox_pkey"}),
    "outbox.MARK_APPLIED": (outbox.MARK_APPLIED, lambda t, rows: ([r[0] for r in rows],), {"outbox_pkey"}),
}
BACKLOG = """
WITH t AS (
    INSERT INTO tenants (name) SELECT 'backlog-' || gen_random_uuid() FROM generate_series(1, 2000)
    RETURNING id
)
INSERT INTO outbox (tenant_id, resource_type, resource_id, change)
SELECT t.id, 'user', gen_random_uuid(), 'create' FROM t, generate_series(1, 2)
"""


@pytest.fixture(scope="module", params=["analyzed_drained", "never_analyzed"])
def backlog(request: pytest.FixtureRequest) -> Iterator[tuple[str, uuid.UUID, list[tuple[int, uuid.UUID]]]]:
    """A database whose outbox the planner knows only as drained (VACUUM ANALYZE after the worker had applied
    everything, the usual state) or as it was before any row (never analyzed, a new deployment), then a
    backlog of two pending rows in each of 2,000 tenants: organizations writing at once. Its own database,
    so that no other test's rows reach its statistics. Yields its URL, a tenant, and (id, resource_id) of
    the tenant's pending rows."""
    url = with_database(SERVER_URL, f"scimsvc_test_{RUN_ID}_plans_{uuid.uuid4().hex[:8]}")

    async def build() -> tuple[uuid.UUID, list[tuple[int, uuid.UUID]]]:
        await migrate(url)
        conn = await asyncpg.connect(url)
        try:
            drained = await tenant_with(conn, PENDING_ROWS, 1_000)
            await conn.execute("UPDATE outbox SET applied_at = now() WHERE tenant_id = $1", drained)
            if request.param == "analyzed_drained":
                await conn.execute("VACUUM ANALYZE outbox")
            await conn.execute(BACKLOG)
            tenant = await tenant_with(conn, PENDING_ROWS, 3)
            rows = await conn.fetch("SELECT id, resource_id FROM outbox WHERE tenant_id = $1", tenant)
            return tenant, [(r["id"], r["resource_id"]) for r in rows]
        finally:
            await conn.close()

    tenant, rows = asyncio.run(build())
    yield url, tenant, rows
    asyncio.run(_drop_database(url))


# What each index must be narrowed by (its Index Cond), not merely scanned and filtered.
KEYS = {
    "outbox_resource": "resource_id",
    "outbox_tenant_pending": "tenant_id",
    "outbox_pkey": "id",
    "outbox_pending_age": "created_at",
}


@pytest.mark.parametrize("plan_mode", ["force_custom_plan", "force_generic_plan"])
@pytest.mark.parametrize("name", sorted(PENDING_READS))
async def test_pending_rows_are_read_through_their_own_index_whatever_analyze_saw(
    backlog: tuple[str, uuid.UUID, list[tuple[int, uuid.UUID]]], name: str, plan_mode: str
) -> None:
    # The worker's statements are prepared: after five runs PostgreSQL may plan them without their values.
    url, tenant, rows = backlog
    sql, args, expected = PENDING_READS[name]
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"SET plan_cache_mode = {plan_mode}")
        await conn.execute(f"PREPARE read AS {sql}")
        values = ", ".join(_literal(v) for v in args(tenant, rows))  # EXECUTE takes no bound parameters
        plan = orjson.loads(await conn.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE read({values})"))
    finally:
        await conn.close()
    # Index scans of the outbox (a bitmap's is its Bitmap Index Scan), each narrowed by its key, and no other.
    nodes = _nodes(plan[0]["Plan"])
    found = [(n["Node Type"], n.get("Index Name"), n.get("Index Cond"), n.get("Filter")) for n in nodes]
    scans = [n for n in nodes if n.get("Index Name", "").startswith("outbox_")]
    others = [n for n in nodes if n.get("Relation Name") == "outbox" and n["Node Type"].endswith("Scan")]
    assert {n["Index Name"] for n in scans} == expected, found
    assert all(n["Node Type"] in ("Index Scan", "Index Only Scan", "Bitmap Heap Scan") for n in others), found
    assert all(KEYS[n["Index Name"]] in n.get("Index Cond", "") for n in scans), found


async def test_the_outbox_keeps_no_statistics_of_what_is_pending(tmp_path: Path) -> None:
    # Statistics an earlier ANALYZE took are removed by the migration, and no later ANALYZE takes any.
    url = with_database(SERVER_URL, f"scimsvc_test_{RUN_ID}_stats_{uuid.uuid4().hex[:8]}")
    try:
        for m in available_migrations():
            if m.version < 34:  # up to the one before outbox_pending_estimate
                (tmp_path / f"{m.version:04d}_{m.name}.sql").write_text(m.sql, encoding="utf-8")
        await migrate(url, folder=tmp_path)
        conn = await asyncpg.connect(url)
        try:
            await tenant_with(conn, PENDING_ROWS, 100)
            await conn.execute("ANALYZE outbox")
            assert await conn.fetchval(APPLIED_AT_STATISTICS) == 1
            assert [m.name for m in await migrate(url)][:1] == ["outbox_pending_estimate"]
            assert await conn.fetchval(APPLIED_AT_STATISTICS) == 0
            await conn.execute("ANALYZE outbox")
            assert await conn.fetchval(APPLIED_AT_STATISTICS) == 0
        finally:
            await conn.close()
    finally:
        await _drop_database(url)


class RolledBack(Exception):
    pass


def _parameter(value: Any) -> str:
    """A parameter of `store/events.py:record_args` as an SQL literal for EXECUTE: an array (of numbers, ids
    or names, NULLs as NULL), NULL, or a text (a column's array text, a JSON array)."""
    if value is None:
        return "NULL"
    if isinstance(value, list):
        return "'{" + ",".join("NULL" if v is None else f'"{v}"' for v in value) + "}'"
    return f"$json${value}$json$"


@pytest.mark.parametrize("plan_mode", ["force_custom_plan", "force_generic_plan"])
async def test_events_of_a_batch_read_their_ids_and_webhook_endpoints_once(
    db: asyncpg.Connection, new_tenant_user: tuple[uuid.UUID, uuid.UUID], plan_mode: str
) -> None:
    # Inlined into the join with the events, the batch's ids were aggregated and the endpoints looked up
    # again for every event: a drain's 1,000 events took 320 ms instead of 11 (scimsvc/store/events.py);
    # joined to each event, the aggregated ids were read (and their array copied) once per event. The
    # worker's statements are prepared: after five runs PostgreSQL may plan them without their values.
    tenant, user = new_tenant_user
    batch = [(tenant, NewEvent(EventType.USER_UPDATED, {"n": n % 3}, user_id=user)) for n in range(200)]
    values = ", ".join(_parameter(v) for v in events.record_args(batch))  # EXECUTE takes no bound parameters
    explained = ""
    await db.execute(f"PREPARE record_events AS {events.RECORD_EVENTS}")
    try:
        with pytest.raises(RolledBack):  # the events written go with the transaction
            async with db.transaction():
                await db.execute(f"SET LOCAL plan_cache_mode = {plan_mode}")
                explained = await db.fetchval(
                    f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE record_events({values})"
                )
                assert await db.fetchval("SELECT count(*) FROM events WHERE tenant_id = $1", tenant) == 200
                raise RolledBack
    finally:
        await db.execute("DEALLOCATE record_events")
    nodes = _nodes(orjson.loads(explained)[0]["Plan"])
    endpoints = [n for n in nodes if n.get("Relation Name") == "webhook_endpoints"]
    assert endpoints and all(n["Actual Loops"] == 1 for n in endpoints), endpoints
    assert all(n["Actual Loops"] == 1 for n in nodes if n["Node Type"] == "Aggregate")
    # Read again for each event, the batch's array of ids was copied each time: 50,000 events took 1 s.
    assert all(n["Actual Loops"] == 1 for n in nodes if n.get("CTE Name") == "ids"), nodes
    # The batch's request ids and distinct data are JSON texts parsed once a statement (in `told` when the
    # plan is generic), not once an event.
    told = [n for n in nodes if n.get("CTE Name") == "told"]
    assert told and all(n["Actual Loops"] <= 1 for n in told), nodes
