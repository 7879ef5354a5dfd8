"""The provisioning log (README.md, What happened): every SCIM request of a tenant, accepted or refused,
in the admin API and the console, with its outcome once the worker applied it."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scimsvc.ops.metrics import WebMetrics
from scimsvc.scim.summary import MAX_SUMMARY, summarize, user_name_of
from scimsvc.services import provisioning_log as provisioning_log_service
from scimsvc.store.provisioning_log import LogEntry
from scimsvc.web import provisioning_log
from scimsvc.web.app import create_app
from scimsvc.web.keys import METRICS, POOL
from tests.conftest import (
    ADMIN_HEADERS,
    Tenant,
    make_tenant,
    post_user,
    run_worker,
    unique_email,
    user_body,
    wait_until,
)
from tests.test_console import sign_in

OKTA = "Okta SCIM Client 1.0.0"


async def log_of(client: Any, tenant: Tenant, **query: Any) -> dict[str, Any]:
    resp = await client.get(
        f"/admin/v1/tenants/{tenant.id}/provisioning-log", params=query, headers=ADMIN_HEADERS
    )
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def logged(db: asyncpg.Connection, tenant: Tenant, count: int) -> int:
    """Wait until the tenant's log holds `count` rows (the writer flushes every 0.2 s)."""

    async def enough() -> bool:
        rows = await db.fetchval(
            "SELECT count(*) FROM provisioning_log WHERE tenant_id = $1::uuid", tenant.id
        )
        return rows >= count

    return await wait_until(enough, what=f"{count} provisioning log rows")


def okta(tenant: Tenant) -> dict[str, str]:
    return {**tenant.headers, "User-Agent": OKTA}


async def test_log_shows_refused_and_accepted_requests_with_their_outcome_after_the_worker_applies_them(
    client, settings, db
):
    tenant = await make_tenant(client, allowed_domains=["example.com"], seats=5)
    accepted = await client.post("/scim/v2/Users", json=user_body(unique_email()), headers=okta(tenant))
    assert accepted.status == 201
    user = await accepted.json()
    refused = await client.post(
        "/scim/v2/Users", json=user_body(unique_email(domain="elsewhere.test")), headers=okta(tenant)
    )
    assert refused.status == 400
    refusal = await refused.json()
    bad_patch = await client.patch(
        f"/scim/v2/Users/{user['id']}",
        json={"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "jump"}]},
        headers=okta(tenant),
    )
    assert bad_patch.status == 400
    patch_refusal = await bad_patch.json()
    group = await client.post(
        "/scim/v2/Groups",
        json={
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "Design",
            "members": [],
        },
        headers=okta(tenant),
    )
    assert group.status == 400  # no team "Design" yet (README.md, SCIM Groups and teams)
    group_refusal = await group.json()
    await logged(db, tenant, 4)

    entries = (await log_of(client, tenant))["entries"]
    assert [e["method"] + " " + e["endpoint"] for e in entries] == [
        "POST /scim/v2/Groups",
        "PATCH /scim/v2/Users/{id}",
        "POST /scim/v2/Users",
        "POST /scim/v2/Users",
    ]
    group_entry, patch_entry, refused_entry, accepted_entry = entries
    assert all(e["idp"] == "okta" for e in entries)
    assert accepted_entry["status"] == 201 and accepted_entry["scim_type"] is None
    assert accepted_entry["summary"] == f'POST user "{user["userName"]}"'
    assert accepted_entry["resource_type"] == "user" and accepted_entry["resource_id"] == user["id"]
    assert accepted_entry["user_name"] == user["userName"]
    assert accepted_entry["request_id"] == accepted.headers["X-Request-Id"]
    assert refused_entry["status"] == 400 and refused_entry["scim_type"] == refusal["scimType"]
    assert refused_entry["detail"] == refusal["detail"] and refused_entry["outcome"] is None
    assert refused_entry["resource_id"] is None
    assert patch_entry["status"] == 400 and patch_entry["resource_id"] == user["id"]
    assert patch_entry["summary"] == "PATCH jump" and patch_entry["scim_type"] == patch_refusal["scimType"]
    assert group_entry["status"] == 400 and group_entry["detail"] == group_refusal["detail"]
    assert group_entry["summary"] == 'POST group "Design" (0 members)'
    assert accepted_entry["outcome"]["state"] == "pending"

    await run_worker(settings)
    entries = (await log_of(client, tenant, status="2xx"))["entries"]
    assert len(entries) == 1
    outcome = entries[0]["outcome"]
    assert outcome["state"] == "applied" and outcome["applied_at"] and outcome["error"] is None
    assert outcome["license"] == "full"  # a seat was free: the audit row of its allocation says so
    assert "allocation" in [a["action"] for a in outcome["audit"]]


async def test_a_user_waiting_for_a_seat_shows_waiting_in_its_outcome(client, settings):
    tenant = await make_tenant(client, seats=0)
    user = await post_user(client, tenant, userType="Full")  # asks for a seat; none is free
    await run_worker(settings)

    async def entry() -> dict[str, Any] | None:
        found = (await log_of(client, tenant, user=user["id"]))["entries"]
        return found[0] if found and found[0]["outcome"]["state"] == "applied" else None

    outcome = (await wait_until(entry, what="the POST's entry, applied"))["outcome"]
    assert outcome["waiting"] is True and "waiting" in [a["action"] for a in outcome["audit"]]


async def test_two_posts_sharing_a_request_id_each_show_only_their_own_users_license(client, settings, db):
    tenant = await make_tenant(client, seats=1)
    shared = "reused-" + uuid.uuid4().hex
    users = []
    for _ in range(2):  # the first takes the only seat, the second waits for one
        resp = await client.post(
            "/scim/v2/Users",
            json={**user_body(unique_email()), "userType": "Full"},
            headers={**tenant.headers, "X-Request-Id": shared},
        )
        assert resp.status == 201 and resp.headers["X-Request-Id"] == shared
        users.append(await resp.json())
    await logged(db, tenant, 2)
    await run_worker(settings)
    seated, waiting = [(await log_of(client, tenant, user=u["id"]))["entries"][0]["outcome"] for u in users]
    assert seated["license"] == "full" and seated["waiting"] is False
    assert {a["user_id"] for a in seated["audit"]} == {users[0]["id"]}
    assert waiting["license"] != "full" and waiting["waiting"] is True
    assert {a["user_id"] for a in waiting["audit"]} == {users[1]["id"]}


async def test_a_seat_freed_by_one_users_request_shows_its_promotion_on_the_other_users_entry(
    client, settings, db
):
    tenant = await make_tenant(client, seats=1)
    leaving = await post_user(client, tenant, userType="Full")
    await run_worker(settings)
    waiting = await post_user(client, tenant, userType="Full")
    await run_worker(settings)
    resp = await client.delete(f"/scim/v2/Users/{leaving['id']}", headers=tenant.headers)
    assert resp.status == 204
    await run_worker(settings)
    promoted = await db.fetchval(
        "SELECT count(*) FROM audit_log WHERE tenant_id = $1::uuid AND user_id = $2::uuid "
        "AND action = 'promotion' AND request_id = $3",
        tenant.id,
        waiting["id"],
        resp.headers["X-Request-Id"],
    )
    assert promoted == 1  # the promotion carries the request id of the DELETE that freed the seat
    await logged(db, tenant, 3)
    deleted = (await log_of(client, tenant, user=leaving["id"]))["entries"][0]
    assert deleted["method"] == "DELETE"
    assert deleted["outcome"]["license"] != "full"
    assert {a["user_id"] for a in deleted["outcome"]["audit"]} <= {leaving["id"]}


async def test_a_reused_request_id_loads_a_bounded_number_of_audit_rows_per_entry(client, settings, db):
    tenant = await make_tenant(client)
    shared = "reused-" + uuid.uuid4().hex
    resp = await client.post(
        "/scim/v2/Groups",
        json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Any"},
        headers={**tenant.headers, "X-Request-Id": shared},
    )
    user = await post_user(client, tenant)
    await db.execute(
        "INSERT INTO audit_log (tenant_id, user_id, action, actor, request_id) "
        "SELECT $1::uuid, $2::uuid, 'noted', 'scim', $3 FROM generate_series(1, 200)",
        tenant.id,
        user["id"],
        shared,
    )
    resp = await client.delete(
        f"/scim/v2/Users/{user['id']}", headers={**tenant.headers, "X-Request-Id": shared}
    )
    assert resp.status == 204
    await logged(db, tenant, 3)
    deleted = (await log_of(client, tenant, user=user["id"]))["entries"][0]
    assert deleted["method"] == "DELETE" and deleted["outcome"] is not None
    assert 0 < len(deleted["outcome"]["audit"]) <= 50  # services/provisioning_log.py:MAX_OUTCOME_ROWS


async def test_a_patch_and_a_user_name_lookup_read_as_short_summaries(client, db):
    tenant = await make_tenant(client)
    user = await post_user(client, tenant)
    resp = await client.patch(
        f"/scim/v2/Users/{user['id']}",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "active", "value": False}],
        },
        headers=tenant.headers,
    )
    assert resp.status == 200
    resp = await client.get(
        "/scim/v2/Users", params={"filter": f'userName eq "{user["userName"]}"'}, headers=tenant.headers
    )
    assert resp.status == 200
    await logged(db, tenant, 3)
    entries = (await log_of(client, tenant))["entries"]
    assert entries[0]["summary"] == f'GET filter userName eq "{user["userName"]}"'
    assert entries[0]["user_name"] == user["userName"] and entries[0]["outcome"] is None
    assert entries[1]["summary"] == "PATCH replace active=false"
    assert entries[1]["outcome"]["state"] in ("pending", "applied")


async def test_filters_by_user_user_name_status_and_time_and_pages_by_cursor(client, db):
    tenant = await make_tenant(client)
    first = await post_user(client, tenant)
    second = await post_user(client, tenant)
    missing = await client.get(f"/scim/v2/Users/{uuid.uuid4()}", headers=tenant.headers)
    assert missing.status == 404
    resp = await client.get(f"/scim/v2/Users/{first['id']}", headers=tenant.headers)
    assert resp.status == 200
    await logged(db, tenant, 4)

    by_id = (await log_of(client, tenant, user=first["id"]))["entries"]
    assert [e["method"] for e in by_id] == ["GET", "POST"]
    by_name = (await log_of(client, tenant, user=second["userName"].upper()))["entries"]
    assert [e["resource_id"] for e in by_name] == [second["id"]]
    refused = (await log_of(client, tenant, status="4xx"))["entries"]
    assert [e["status"] for e in refused] == [404]
    assert len((await log_of(client, tenant, status="2xx"))["entries"]) == 3

    now = datetime.now(UTC)
    assert len((await log_of(client, tenant, since=(now - timedelta(hours=1)).isoformat()))["entries"]) == 4
    assert (await log_of(client, tenant, since=(now + timedelta(hours=1)).isoformat()))["entries"] == []
    assert (await log_of(client, tenant, until=(now - timedelta(hours=1)).isoformat()))["entries"] == []

    seen: list[int] = []
    page = await log_of(client, tenant, limit=3)
    seen += [e["id"] for e in page["entries"]]
    assert page["next_cursor"] == seen[-1]
    page = await log_of(client, tenant, limit=3, cursor=page["next_cursor"])
    seen += [e["id"] for e in page["entries"]]
    assert page["next_cursor"] is None
    assert len(seen) == 4 and seen == sorted(seen, reverse=True)


async def test_a_users_entries_by_id_or_by_user_name_are_its_whole_history(client, db):
    tenant = await make_tenant(client)
    name = unique_email()
    lookup = await client.get(
        "/scim/v2/Users", params={"filter": f'userName eq "{name}"'}, headers=tenant.headers
    )
    assert lookup.status == 200
    user = await post_user(client, tenant, name)
    again = await client.post("/scim/v2/Users", json=user_body(name), headers=tenant.headers)
    assert again.status == 409
    patch = await client.patch(
        f"/scim/v2/Users/{user['id']}",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "active", "value": False}],
        },
        headers=tenant.headers,
    )
    assert patch.status == 200
    await post_user(client, tenant)  # someone else
    deleted = await client.delete(f"/scim/v2/Users/{user['id']}", headers=tenant.headers)
    assert deleted.status == 204
    await logged(db, tenant, 6)
    history = ["DELETE 204", "PATCH 200", "POST 409", "POST 201", "GET 200"]
    for who in (user["id"], name, name.upper()):
        entries = (await log_of(client, tenant, user=who))["entries"]
        assert [f"{e['method']} {e['status']}" for e in entries] == history, who
    page = await log_of(client, tenant, user=name, limit=2)
    assert [e["method"] for e in page["entries"]] == ["DELETE", "PATCH"]
    page = await log_of(client, tenant, user=user["id"], limit=2, cursor=page["next_cursor"])
    assert [e["status"] for e in page["entries"]] == [409, 201]


async def test_since_and_until_select_by_time_even_when_ids_are_out_of_time_order(client, db):
    tenant = await make_tenant(client)
    for _ in range(4):
        await post_user(client, tenant)
    await logged(db, tenant, 4)
    ids = [
        r["id"]
        for r in await db.fetch(
            "SELECT id FROM provisioning_log WHERE tenant_id = $1::uuid ORDER BY id", tenant.id
        )
    ]
    base = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    # the third row was written after the fourth though it is older: another web process's batch
    minutes = {ids[0]: 0, ids[1]: 10, ids[2]: 31, ids[3]: 30}
    for row_id, m in minutes.items():
        await db.execute(
            "UPDATE provisioning_log SET at = $1 WHERE id = $2", base + timedelta(minutes=m), row_id
        )

    async def between(since: int | None, until: int | None) -> list[int]:
        query = {}
        if since is not None:
            query["since"] = (base + timedelta(minutes=since)).isoformat()
        if until is not None:
            query["until"] = (base + timedelta(minutes=until)).isoformat()
        return [e["id"] for e in (await log_of(client, tenant, **query))["entries"]]

    assert await between(5, None) == [ids[3], ids[2], ids[1]]
    assert await between(31, None) == [ids[2]]
    assert await between(None, 31) == [ids[3], ids[1], ids[0]]
    assert await between(10, 31) == [ids[3], ids[1]]
    assert await between(None, 0) == []
    assert await between(32, None) == []
    assert await between(1, 9) == []


async def test_a_status_filter_looks_through_a_bounded_number_of_rows_per_page(client, db, monkeypatch):
    monkeypatch.setattr(provisioning_log_service, "STATUS_SCAN_ROWS", 2, raising=False)
    tenant = await make_tenant(client)
    missing = await client.get(f"/scim/v2/Users/{uuid.uuid4()}", headers=tenant.headers)
    assert missing.status == 404
    for _ in range(5):
        await post_user(client, tenant)
    await logged(db, tenant, 6)
    found: list[int] = []
    pages = 0
    page = await log_of(client, tenant, status="4xx", limit=10)
    while True:
        pages += 1
        assert len(page["entries"]) <= 10
        found += [e["status"] for e in page["entries"]]
        if page["next_cursor"] is None:
            break
        page = await log_of(client, tenant, status="4xx", limit=10, cursor=page["next_cursor"])
    assert found == [404] and pages == 3
    await sign_in(client)
    resp = await client.get(f"/console/tenants/{tenant.id}/log", params={"status": "4xx"})
    text = await resp.text()
    assert resp.status == 200 and "No match among the latest entries looked through" in text
    assert "Next page (older entries)" in text and "cursor=" in text


@pytest.mark.parametrize(
    "query",
    [
        {"since": "9999-12-31T23:59:59-23:59"},
        {"since": "0001-01-01T00:30:00+01:00"},
        {"until": "9999-12-31T23:59:59-12:00"},
        {"status": "2xy"},
        {"since": "yesterday"},
        {"until": "2026-13-01"},
        {"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
        {"cursor": "-1"},
        {"cursor": "9" * 30},
        {"group": "not-a-uuid"},
        {"user": str(uuid.uuid4()), "group": str(uuid.uuid4())},
        {"user": "a\x00b"},
        {"limit": "many"},
    ],
)
async def test_a_bad_filter_is_a_400_naming_it(client, tenant, query):
    resp = await client.get(
        f"/admin/v1/tenants/{tenant.id}/provisioning-log", params=query, headers=ADMIN_HEADERS
    )
    assert resp.status == 400, await resp.text()
    body = await resp.json()
    assert body["status"] == "400" and body["scimType"] == "invalidValue" and body["detail"]


async def test_another_tenants_log_never_shows(client, db):
    mine = await make_tenant(client)
    theirs = await make_tenant(client)
    user = await post_user(client, mine)
    await logged(db, mine, 1)
    assert (await log_of(client, theirs))["entries"] == []
    assert (await log_of(client, theirs, user=user["id"]))["entries"] == []
    assert (await log_of(client, theirs, user=user["userName"]))["entries"] == []
    resp = await client.get(f"/admin/v1/tenants/{uuid.uuid4()}/provisioning-log", headers=ADMIN_HEADERS)
    assert resp.status == 404
    resp = await client.get(f"/admin/v1/tenants/{mine.id}/provisioning-log", headers=mine.headers)
    assert resp.status == 401  # a SCIM token is not the operator key


async def test_no_token_or_password_is_ever_logged(client, db):
    tenant = await make_tenant(client)
    secret = "S3cret-" + uuid.uuid4().hex
    user = await post_user(client, tenant, password=secret)
    resp = await client.patch(
        f"/scim/v2/Users/{user['id']}",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [
                {"op": "replace", "path": "password", "value": secret},
                {"op": "replace", "value": {"password": secret, "active": True}},
            ],
        },
        headers=tenant.headers,
    )
    assert resp.status == 400  # passwords are refused (README.md), and still logged without the value
    resp = await client.get(
        "/scim/v2/Users", params={"filter": f'password eq "{secret}"'}, headers=tenant.headers
    )
    await logged(db, tenant, 3)
    rows = await db.fetch(
        "SELECT p::text AS row FROM provisioning_log p WHERE tenant_id = $1::uuid", tenant.id
    )
    assert len(rows) == 3
    for row in rows:
        assert secret not in row["row"] and tenant.token not in row["row"]
    summaries = await db.fetch(
        "SELECT summary FROM provisioning_log WHERE tenant_id = $1::uuid ORDER BY id", tenant.id
    )
    assert (
        summaries[1]["summary"]
        == "PATCH replace password=(not shown); replace password=(not shown), active=true"
    )


async def test_a_password_under_a_long_urn_path_or_in_a_refused_filter_is_never_logged(client, db):
    tenant = await make_tenant(client)
    user = await post_user(client, tenant)
    secret = "S3cret-" + uuid.uuid4().hex
    resp = await client.patch(
        f"/scim/v2/Users/{user['id']}",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [
                {"op": "add", "path": "urn:ietf:params:scim:schemas:core:2.0:User:password", "value": secret}
            ],
        },
        headers=tenant.headers,
    )
    assert resp.status == 400
    resp = await client.get(
        "/scim/v2/Users", params={"filter": f"apiToken eq {secret}"}, headers=tenant.headers
    )
    assert (
        resp.status == 400 and secret in (await resp.json())["detail"]
    )  # the client is told; the log is not
    await logged(db, tenant, 3)
    rows = await db.fetch(
        "SELECT p::text AS row, summary, detail FROM provisioning_log p "
        "WHERE tenant_id = $1::uuid ORDER BY id",
        tenant.id,
    )
    for row in rows:
        assert secret not in row["row"]
    assert rows[1]["summary"] == "PATCH add urn:ietf:params:scim:schemas:core:2.0...=(not shown)"
    assert rows[2]["summary"] == "GET filter (not shown)" and rows[2]["detail"]


COUNT_ROWS = "SELECT count(*) FROM provisioning_log WHERE tenant_id = $1::uuid"
BATCHES_WAITING_ON_A_LOCK = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock'
  AND query LIKE '%INSERT INTO provisioning_log%'
"""


async def two_logged_tenants(client: Any, db: asyncpg.Connection) -> tuple[Tenant, Tenant]:
    """Two tenants with a logged request each (and so a row of tenant_request_minutes each)."""
    tenants = (await make_tenant(client), await make_tenant(client))
    for tenant in tenants:
        await post_user(client, tenant)
        await logged(db, tenant, 1)
    return tenants


def lookup(tenant_id: uuid.UUID) -> LogEntry:
    """The row of a GET /Users of a tenant, as the front end's buffer holds it."""
    return LogEntry(
        tenant_id,
        time.time(),
        "r",
        "other",
        "GET",
        "/scim/v2/Users",
        "user",
        None,
        None,
        "GET users",
        200,
        None,
        None,
        1.0,
    )


def lookups_of(*tenants: Tenant) -> list[LogEntry]:
    return [lookup(uuid.UUID(t.id)) for t in tenants]


async def test_a_deleted_tenants_log_goes_with_it_and_a_later_batch_skips_its_rows(client, db):
    gone, kept = await two_logged_tenants(client, db)
    await db.execute("DELETE FROM tenants WHERE id = $1::uuid", gone.id)
    assert (await db.fetchval(COUNT_ROWS, gone.id), await db.fetchval(COUNT_ROWS, kept.id)) == (0, 1)
    # A batch gathered before the deletion: the deleted tenant's row is skipped, the other's written.
    assert await provisioning_log_service.record_entries(client.app[POOL], lookups_of(gone, kept)) == 1
    assert (await db.fetchval(COUNT_ROWS, gone.id), await db.fetchval(COUNT_ROWS, kept.id)) == (0, 2)


async def test_a_batch_meeting_a_tenants_deletion_waits_for_it_and_writes_the_other_tenants_rows(client, db):
    gone, kept = await two_logged_tenants(client, db)
    async with client.app[POOL].acquire() as conn, conn.transaction():
        await conn.execute("DELETE FROM tenants WHERE id = $1::uuid", gone.id)  # with its minutes' rows
        rows = lookups_of(gone, kept)
        batch = asyncio.ensure_future(provisioning_log_service.record_entries(client.app[POOL], rows))

        async def waiting_for_the_deletion() -> bool:
            return await db.fetchval(BATCHES_WAITING_ON_A_LOCK) == 1

        await wait_until(waiting_for_the_deletion, what="the batch waiting for the tenant's deletion")
        assert not batch.done()
    assert await batch == 1  # not a foreign key violation that would lose the whole batch
    assert (await db.fetchval(COUNT_ROWS, gone.id), await db.fetchval(COUNT_ROWS, kept.id)) == (0, 2)


async def test_requests_without_a_valid_token_are_not_in_any_tenants_log(client, tenant, db):
    resp = await client.get("/scim/v2/Users", headers={"Authorization": "Bearer nope"})
    assert resp.status == 401
    await post_user(client, tenant)
    await logged(db, tenant, 1)
    assert (
        await db.fetchval("SELECT count(*) FROM provisioning_log WHERE tenant_id = $1::uuid", tenant.id) == 1
    )


async def test_a_rate_limited_request_is_logged_with_its_429(client, db):
    tenant = await make_tenant(client)
    resp = await client.patch(  # the smallest budget there is: 40 reads, then about one a second
        f"/admin/v1/tenants/{tenant.id}",
        json={"rate_limit": {"credits_per_30s": 2000}},
        headers=ADMIN_HEADERS,
    )
    assert resp.status == 200, await resp.text()
    statuses = []
    while 429 not in statuses:
        resp = await client.get("/scim/v2/Users", headers=tenant.headers)
        assert resp.status in (200, 429)
        statuses.append(resp.status)
    await logged(db, tenant, len(statuses))
    refused = (await log_of(client, tenant, status="4xx"))["entries"]
    assert [e["status"] for e in refused] == [429]


async def test_a_request_refused_because_scim_is_disabled_is_logged_with_its_403(client, db):
    tenant = await make_tenant(client)
    resp = await client.patch(
        f"/admin/v1/tenants/{tenant.id}", json={"scim_enabled": False}, headers=ADMIN_HEADERS
    )
    assert resp.status == 200, await resp.text()

    async def refused() -> bool:  # every web process forgets the cached token when the change lands
        resp = await client.get("/scim/v2/Users", headers=tenant.headers)
        return resp.status == 403

    await wait_until(refused, what="SCIM refused with 403")
    await logged(db, tenant, 1)
    entries = (await log_of(client, tenant, status="4xx"))["entries"]
    assert entries and all(e["status"] == 403 for e in entries)
    assert "turned off" in entries[0]["detail"] and entries[0]["endpoint"] == "/scim/v2/Users"
    assert entries[0]["reason"] == "scim_disabled"


async def test_with_the_log_off_nothing_is_logged(aiohttp_client, settings, db):
    client = await aiohttp_client(create_app(dataclasses.replace(settings, provisioning_log=False)))
    tenant = await make_tenant(client)
    await post_user(client, tenant)
    await client.get("/scim/v2/Users", headers=tenant.headers)
    await client.close()  # the app stops: a writer, had there been one, flushes now
    assert (
        await db.fetchval("SELECT count(*) FROM provisioning_log WHERE tenant_id = $1::uuid", tenant.id) == 0
    )


async def test_rows_still_buffered_are_written_when_the_app_stops(aiohttp_client, settings, db):
    client = await aiohttp_client(create_app(settings))
    tenant = await make_tenant(client)
    await post_user(client, tenant)
    await client.close()
    assert (
        await db.fetchval("SELECT count(*) FROM provisioning_log WHERE tenant_id = $1::uuid", tenant.id) == 1
    )


PER_MINUTE_FROM_THE_LOG = """
SELECT date_trunc('minute', at) AS minute, count(*) AS requests,
       count(*) FILTER (WHERE status = 429) AS rate_limited,
       count(*) FILTER (WHERE status >= 500) AS server_errors
FROM provisioning_log WHERE tenant_id = $1::uuid GROUP BY 1 ORDER BY 1
"""
PER_MINUTE_COUNTED = """
SELECT minute, requests, rate_limited, server_errors
FROM tenant_request_minutes WHERE tenant_id = $1::uuid ORDER BY minute
"""


async def test_two_web_processes_count_each_tenants_requests_per_minute_with_its_log(
    aiohttp_client, settings, db
):
    # Two apps on one database, as two processes of `serve --processes 2` are: each adds its batches' counts
    # to the same rows, while the other does.
    small = dataclasses.replace(settings, db_pool_min=1, db_pool_max=3)
    first = await aiohttp_client(create_app(small))
    second = await aiohttp_client(create_app(small))
    tenants = [await make_tenant(first) for _ in range(2)]
    resp = await first.patch(  # the smallest budget there is, for some 429s
        f"/admin/v1/tenants/{tenants[0].id}",
        json={"rate_limit": {"credits_per_30s": 2000}},
        headers=ADMIN_HEADERS,
    )
    assert resp.status == 200, await resp.text()

    limited = asyncio.Event()

    async def traffic(client: Any, tenant: Tenant) -> list[int]:
        # 60 rounds each; the small budget's traffic goes on until one of its requests is refused (on a
        # busy machine a Redis call can time out, and the limiter then admits everything for
        # REDIS_RETRY_SECONDS), at most 5,000 rounds.
        statuses: list[int] = []
        rounds = 0
        while rounds < 60 or (tenant is tenants[0] and not limited.is_set() and rounds < 5000):
            for path in ("/scim/v2/Users", "/scim/v2/Users/nobody"):
                statuses.append((await client.get(path, headers=tenant.headers)).status)
                if statuses[-1] == 429 and tenant is tenants[0]:
                    limited.set()
            rounds += 1
        return statuses

    sent = await asyncio.gather(*(traffic(c, t) for c in (first, second) for t in tenants))
    await first.close()  # stopping writes what each still buffers
    await second.close()

    assert 429 in sent[0] + sent[2]
    for n, tenant in enumerate(tenants):
        answered = sent[n] + sent[n + 2]
        counted = [tuple(r) for r in await db.fetch(PER_MINUTE_COUNTED, tenant.id)]
        assert counted == [tuple(r) for r in await db.fetch(PER_MINUTE_FROM_THE_LOG, tenant.id)]
        assert sum(r[1] for r in counted) == len(answered)
        assert sum(r[2] for r in counted) == answered.count(429)


async def test_the_console_log_page_filters_and_links_users_to_their_entries(client, db):
    tenant = await make_tenant(client)
    user = await post_user(client, tenant)
    refused = await client.post("/scim/v2/Users", json={"schemas": []}, headers=tenant.headers)
    assert refused.status == 400
    # An id of no user of the organization: its entry links to its entries, not to an audit page that
    # would answer 404 for it.
    nobody = "01a25264-0000-7000-8000-000000000abc"
    missing = await client.get(f"/scim/v2/Users/{nobody}", headers=tenant.headers)
    assert missing.status == 404
    await logged(db, tenant, 3)
    await sign_in(client)
    resp = await client.get(f"/console/tenants/{tenant.id}/log")
    assert resp.status == 200
    page = await resp.text()
    assert f"POST user &#34;{user['userName']}&#34;" in page or f'POST user "{user["userName"]}"' in page
    assert "invalidValue" in page or "invalidSyntax" in page
    assert f"/console/tenants/{tenant.id}/audit?user={user['id']}" in page
    assert f"/console/tenants/{tenant.id}/log?user={nobody}" in page
    assert f"/console/tenants/{tenant.id}/audit?user={nobody}" not in page
    resp = await client.get(f"/console/tenants/{tenant.id}/log", params={"user": user["id"]})
    rows = (await resp.text()).split("<tbody>")[1].split("</tbody>")[0]
    assert resp.status == 200 and rows.count("<tr>") == 1 and user["userName"] in rows
    resp = await client.get(f"/console/tenants/{tenant.id}/log", params={"status": "4xx"})
    rows = (await resp.text()).split("<tbody>")[1].split("</tbody>")[0]
    assert rows.count("<tr>") == 2 and user["userName"] not in rows
    resp = await client.get(f"/console/tenants/{tenant.id}/log", params={"since": "soon"})
    assert resp.status == 400 and "ISO 8601" in await resp.text()
    resp = await client.get(
        f"/console/tenants/{tenant.id}/log", params={"until": "9999-12-31T23:59:59-12:00"}
    )
    assert resp.status == 400 and "9999" in await resp.text()
    users = await (await client.get(f"/console/tenants/{tenant.id}/users")).text()
    assert f"/console/tenants/{tenant.id}/log?user={user['id']}" in users
    assert f"/console/tenants/{tenant.id}/audit?user={user['id']}" in users


async def test_the_console_log_page_sends_a_stranger_to_sign_in(client, tenant):
    resp = await client.get(f"/console/tenants/{tenant.id}/log", allow_redirects=False)
    assert resp.status in (302, 303) and "/console/login" in resp.headers["Location"]


async def test_retention_deletes_old_log_rows_and_old_events_with_their_deliveries(client, settings, db):
    from worker.retention import purge_expired

    tenant = await make_tenant(client)
    await post_user(client, tenant)
    await logged(db, tenant, 1)
    await db.execute(
        "UPDATE provisioning_log SET at = now() - interval '40 days' WHERE tenant_id = $1::uuid", tenant.id
    )
    await post_user(client, tenant)
    await logged(db, tenant, 2)
    endpoint = await db.fetchval(
        "INSERT INTO webhook_endpoints (tenant_id, url) VALUES ($1::uuid, 'https://hooks.example/x') "
        "RETURNING id",
        tenant.id,
    )
    for days in (40, 1):
        event = await db.fetchval(
            """INSERT INTO events (tenant_id, seq, type, occurred_at, data)
               VALUES ($1::uuid, $2, 'user.created', now() - make_interval(days => $3), '{}') RETURNING id""",
            tenant.id,
            10_000 + days,  # far past the sequence numbers the tenant's own events took
            days,
        )
        delivery = await db.fetchval(
            "INSERT INTO webhook_deliveries (endpoint_id, event_id, tenant_id, state) "
            "VALUES ($1, $2, $3::uuid, 'delivered') RETURNING id",
            endpoint,
            event,
            tenant.id,
        )
        await db.execute(
            "INSERT INTO webhook_attempts (delivery_id, status, latency_ms) VALUES ($1, 200, 5)", delivery
        )
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        # Retention reads events along (tx, id), oldest written first: this test backdates events written
        # just now, so its window takes in every event of the test database.
        wide = dataclasses.replace(settings, retention_batch_size=1_000_000)
        removed = await purge_expired({"settings": wide, "pool": pool})
    finally:
        await pool.close()
    assert removed["provisioning_log"] >= 1 and removed["events"] >= 1
    assert removed["webhook_deliveries"] >= 1 and removed["webhook_attempts"] >= 1
    assert (
        await db.fetchval("SELECT count(*) FROM provisioning_log WHERE tenant_id = $1::uuid", tenant.id) == 1
    )
    kept = await db.fetchval(
        "SELECT array_agg(seq ORDER BY seq) FROM events WHERE tenant_id = $1::uuid", tenant.id
    )
    assert 10_040 not in kept and 10_001 in kept
    assert (
        await db.fetchval("SELECT count(*) FROM webhook_deliveries WHERE tenant_id = $1::uuid", tenant.id)
        == 1
    )


async def test_retention_deletes_an_old_event_with_its_deliveries_even_one_still_pending(
    client, settings, db
):
    """Retention wins: an event past its age goes with every delivery of it, one still being retried too
    (only a replay of old events makes one), so a pending delivery never holds the events table back."""
    from worker.retention import purge_expired

    tenant = await make_tenant(client)
    endpoint = await db.fetchval(
        "INSERT INTO webhook_endpoints (tenant_id, url) VALUES ($1::uuid, 'https://hooks.example/x') "
        "RETURNING id",
        tenant.id,
    )
    events = {}
    for state in ("pending", "failed"):
        events[state] = await db.fetchval(
            """INSERT INTO events (tenant_id, seq, type, occurred_at, data)
               VALUES ($1::uuid, $2, 'user.created', now() - interval '40 days', '{}') RETURNING id""",
            tenant.id,
            20_000 + len(events),
        )
        await db.execute(
            "INSERT INTO webhook_deliveries (endpoint_id, event_id, tenant_id, state) "
            "VALUES ($1, $2, $3::uuid, $4)",
            endpoint,
            events[state],
            tenant.id,
            state,
        )
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        # Retention reads the oldest events written first: a window that takes in every event of the
        # test database, since these were backdated.
        wide = dataclasses.replace(settings, retention_batch_size=1_000_000)
        await purge_expired({"settings": wide, "pool": pool})
    finally:
        await pool.close()
    kept = await db.fetch(
        "SELECT e.id, d.state FROM events e JOIN webhook_deliveries d ON d.event_id = e.id "
        "WHERE e.tenant_id = $1::uuid",
        tenant.id,
    )
    assert [(r["id"], r["state"]) for r in kept] == []
    assert (
        await db.fetchval("SELECT count(*) FROM events WHERE id = ANY ($1::bigint[])", list(events.values()))
        == 0
    )


# --- the summary (pure) -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "endpoint", "body", "query", "summary"),
    [
        (
            "POST",
            "/scim/v2/Users",
            {"userName": "barbara@example.com"},
            {},
            'POST user "barbara@example.com"',
        ),
        (
            "PATCH",
            "/scim/v2/Users/{id}",
            {"Operations": [{"op": "replace", "path": "active", "value": False}]},
            {},
            "PATCH replace active=false",
        ),
        (
            "PATCH",
            "/scim/v2/Groups/{id}",
            {"Operations": [{"op": "add", "path": "members", "value": [{"value": "a"}] * 3}]},
            {},
            "PATCH add members (3)",
        ),
        (
            "PUT",
            "/scim/v2/Groups/{id}",
            {"displayName": "Design", "members": [{"value": str(i)} for i in range(1204)]},
            {},
            'PUT group "Design" (1,204 members)',
        ),
        ("GET", "/scim/v2/Users", None, {"filter": 'userName eq "x@y"'}, 'GET filter userName eq "x@y"'),
        ("GET", "/scim/v2/Users", None, {}, "GET users"),
        ("DELETE", "/scim/v2/Users/{id}", None, {}, "DELETE user"),
        ("POST", "/scim/v2/Bulk", {"Operations": [{}] * 12}, {}, "POST /Bulk (12 operations)"),
        ("POST", "/scim/v2/Bulk", {"Operations": [{}]}, {}, "POST /Bulk (1 operation)"),
        ("GET", "/scim/v2/ServiceProviderConfig", None, {}, "GET ServiceProviderConfig"),
        ("POST", "/scim/v2/Users", ["not", "an", "object"], {}, "POST user (none)"),
    ],
)
def test_summary_examples(method, endpoint, body, query, summary):
    assert summarize(method, endpoint, body=body, query=query) == summary


def test_user_name_comes_from_the_body_or_a_user_name_filter():
    assert user_name_of("/scim/v2/Users", body={"UserName": "a@b"}) == "a@b"
    assert user_name_of("/scim/v2/Users", query={"filter": 'userName eq "c@d"'}) == "c@d"
    assert user_name_of("/scim/v2/Users", query={"filter": 'userName co "c"'}) is None
    assert user_name_of("/scim/v2/Groups", body={"userName": "a@b"}) is None


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=300),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=20), inner, max_size=6),
    max_leaves=40,
)
ENDPOINTS = st.sampled_from(
    [
        "/scim/v2/Users",
        "/scim/v2/Users/{id}",
        "/scim/v2/Users/.search",
        "/scim/v2/Groups",
        "/scim/v2/Groups/{id}",
        "/scim/v2/Bulk",
        "/scim/v2/.search",
        "unmatched",
        "",
    ]
)
METHODS = st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "get"])


@given(METHODS, ENDPOINTS, JSON, st.dictionaries(st.sampled_from(["filter", "count"]), st.text(max_size=300)))
def test_summary_never_raises_and_stays_short(method, endpoint, body, query):
    text = summarize(method, endpoint, body=body, query=query)
    assert isinstance(text, str) and 0 < len(text) <= MAX_SUMMARY
    name = user_name_of(endpoint, body=body, query=query)
    assert name is None or (isinstance(name, str) and len(name) <= 256)


SECRET = "hunter2-very-secret"
SECRET_NAMES = [
    "password",
    "Password",
    "urn:x:password",
    "name.secretWord",
    "apiToken",
    "urn:ietf:params:scim:schemas:core:2.0:User:password",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:secretAnswer",
    'emails[type eq "work" and value pr].credential',
]


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_a_patch_of_a_secret_never_shows_its_value_however_long_its_path(name):
    for endpoint in ("/scim/v2/Users/{id}", "/scim/v2/Groups/{id}"):
        body = {"Operations": [{"op": "add", "path": name, "value": SECRET}, {"op": "remove", "path": name}]}
        text = summarize("PATCH", endpoint, body=body)
        assert SECRET not in text and text.startswith("PATCH add ") and "=(not shown); remove " in text


@given(
    METHODS,
    ENDPOINTS,
    st.sampled_from(SECRET_NAMES),
    JSON,
)
def test_summary_never_shows_a_password_value(method, endpoint, name, noise):
    bodies = [
        {"userName": "u@x", name: SECRET, "other": noise},
        {
            "Operations": [
                {"op": "replace", "path": name, "value": SECRET},
                {"op": "add", "value": {name: SECRET}},
            ]
        },
        {"Operations": [{"op": "replace", "value": {name: SECRET, "x": noise}}]},
        {"filter": f'{name} eq "{SECRET}"'},
    ]
    for body in bodies:
        assert SECRET not in summarize(method, endpoint, body=body, query={"filter": f'{name} eq "{SECRET}"'})


async def test_a_bulk_request_is_one_entry_whose_outcome_covers_every_operation(client, settings, db):
    tenant = await make_tenant(client)
    operations = [
        {"method": "POST", "path": "/Users", "bulkId": str(n), "data": user_body(unique_email())}
        for n in range(2)
    ]
    resp = await client.post(
        "/scim/v2/Bulk",
        json={"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": operations},
        headers=tenant.headers,
    )
    assert resp.status == 200, await resp.text()
    await logged(db, tenant, 1)
    assert (
        await db.fetchval(
            "SELECT cardinality(outbox_ids) FROM provisioning_log WHERE tenant_id = $1::uuid", tenant.id
        )
        == 2
    )
    await run_worker(settings)
    (entry,) = (await log_of(client, tenant))["entries"]
    assert entry["summary"] == "POST /Bulk (2 operations)" and entry["status"] == 200
    assert entry["outcome"]["state"] == "applied" and entry["outcome"]["license"] == "full"


async def test_hostile_text_never_costs_the_batch_its_rows(client, db):
    tenant = await make_tenant(client)
    hostile = "nul\x00and\ud800surrogate@example.com"
    raw = orjson.dumps(user_body("x@example.com")).replace(
        b'"x@example.com"', b'"nul\\u0000x@example.com"', 1
    )
    refused = await client.post("/scim/v2/Users", data=raw, headers=tenant.headers)
    assert refused.status == 400
    await client.get(
        "/scim/v2/Users", params={"filter": f'userName eq "{hostile[:12]}"'}, headers=tenant.headers
    )
    user = await post_user(client, tenant)  # in the same batch, most likely
    await logged(db, tenant, 3)
    rows = await db.fetch(
        "SELECT user_name, summary FROM provisioning_log WHERE tenant_id = $1::uuid ORDER BY id", tenant.id
    )
    assert rows[2]["user_name"] == user["userName"]
    assert all("\x00" not in (r["summary"] + (r["user_name"] or "")) for r in rows)


def dropped(metrics: WebMetrics, reason: str) -> float:
    value = metrics.registry.get_sample_value(
        "scimsvc_provisioning_log_dropped_rows_total", {"reason": reason}
    )
    return value or 0.0


def test_past_its_bound_the_buffer_drops_rows_and_counts_them(monkeypatch):
    monkeypatch.setattr(provisioning_log, "MAX_ROWS", 2)
    metrics = WebMetrics()
    buffer = provisioning_log.LogBuffer(metrics)
    entry = lookup(uuid.uuid4())
    for _ in range(3):
        buffer.add(entry)
    assert buffer.take() == [entry, entry] and dropped(metrics, "buffer_full") == 1


async def test_a_batch_that_cannot_be_written_is_counted_and_the_log_goes_on(client, tenant, db, monkeypatch):
    real = provisioning_log.record_entries
    calls = []

    async def failing_once(pool: Any, entries: list[LogEntry]) -> int:
        calls.append(len(entries))
        if len(calls) == 1:
            raise RuntimeError("PostgreSQL said no")
        return await real(pool, entries)

    monkeypatch.setattr(provisioning_log, "record_entries", failing_once)
    await post_user(client, tenant)
    metrics = client.app[METRICS]
    await wait_until(lambda: dropped(metrics, "write_failed") == 1, what="the failed batch counted")
    await post_user(client, tenant)
    await logged(db, tenant, 1)


async def test_a_log_entry_kept_past_its_outbox_rows_says_its_events_are_unknown(client, settings, db):
    """The log (30 days) outlives applied outbox rows (7 days), which say which transaction wrote the
    entry's events: once they are purged the entry is still `applied` with its audit rows, and its events
    and teams are unknown (null), never an empty list that would read as "reached nothing"."""
    tenant = await make_tenant(client)
    user = await post_user(client, tenant)
    await logged(db, tenant, 1)
    await run_worker(settings)

    async def applied() -> dict[str, Any] | None:
        found = (await log_of(client, tenant, user=user["id"]))["entries"]
        return found[0] if found and found[0]["outcome"]["state"] == "applied" else None

    before = (await wait_until(applied, what="the POST's entry, applied"))["outcome"]
    assert before["events"] and before["audit"] and before["teams"] == []
    # Retention of applied outbox rows (SCIMSVC_RETENTION_OUTBOX_DAYS), the log row kept.
    await db.execute(
        "DELETE FROM outbox WHERE id = ANY (SELECT unnest(outbox_ids) FROM provisioning_log "
        "WHERE tenant_id = $1::uuid)",
        tenant.id,
    )
    after = (await log_of(client, tenant, user=user["id"]))["entries"][0]["outcome"]
    assert after["state"] == "applied" and after["audit"] == before["audit"]
    assert after["events"] is None and after["teams"] is None
    await sign_in(client)
    resp = await client.get(f"/console/tenants/{tenant.id}/log", params={"user": user["id"]})
    assert resp.status == 200 and "; teams and events no longer kept" in await resp.text()
