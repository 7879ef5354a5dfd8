"""A user looked up by id is found through the primary key, even in a tenant the statistics do not know yet.

An organization's first import is the case: its users arrive faster than ANALYZE runs, and a plan that
read the tenant's users to find one of them made each lookup, and each event the worker wrote, cost as
much as the tenant's size (scimsvc/store/by_key.py).
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import orjson
import pytest

from scimsvc.store import events, licenses, outbox, provisioning_log, users

NEW_TENANT_USERS = 2_000


def _record_events_args(tenant: uuid.UUID, user: uuid.UUID) -> tuple[Any, ...]:
    batch: list[dict[str, Any]] = [
        {"type": "user.created", "user_id": str(user), "request_id": None, "data": {}, "first": True}
    ]
    return (tenant, orjson.dumps(batch).decode(), 1)


LOOKUPS = {
    "users.SELECT_USER": (users.SELECT_USER, lambda t, u: (t, u)),
    "users.UPDATE_USER": (users.UPDATE_USER, lambda t, u: (t, u, "x@example.com", None, None, True, {})),
    "licenses.SELECT_USERS_LICENSING": (licenses.SELECT_USERS_LICENSING, lambda t, u: (t, [u])),
    "licenses.SELECT_USER_IN_TENANT": (licenses.SELECT_USER_IN_TENANT, lambda t, u: (t, u)),
    "provisioning_log.SELECT_USER_BY_ID": (provisioning_log.SELECT_USER_BY_ID, lambda t, u: (t, u)),
    "events.RECORD_EVENTS": (events.RECORD_EVENTS, _record_events_args),
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
    assert indexes and all(i and "unapplied" in i for i in indexes), indexes  # partial: pending rows only
