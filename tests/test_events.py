"""Events (README.md, What happened): every change the worker applies is told once, in the transaction that
applies it, with a per-tenant sequence number; the events API pages them after a cursor, in order."""

from __future__ import annotations

import dataclasses
import json
import uuid
from typing import Any

import pytest

from scimsvc.contract import APPLY_OUTBOX, DRAIN_USERS
from scimsvc.product.events import EventType, NewEvent
from scimsvc.store.events import record_events, told_data
from tests.conftest import (
    ADMIN_HEADERS,
    create_team,
    make_tenant,
    post_user,
    run_worker,
    unique_email,
    user_body,
    wait_until,
)
from tests.test_groups import make_team, make_user, send_patch
from tests.webhook_receiver import Receiver, register_endpoint, webhook_settings

EVENTS = "/admin/v1/events"
TENANT_EVENTS = "/admin/v1/tenants/{tid}/events"


async def stored_events(db: Any, tenant_id: str) -> list[dict[str, Any]]:
    """The tenant's events as the table holds them, in sequence order, but for its first token's
    `token.created` (made with the tenant; tests/test_admin_audit.py tests those)."""
    rows = await db.fetch(
        f"SELECT seq, type, request_id, {told_data('e')} AS data FROM events e "  # noqa: S608
        "WHERE tenant_id = $1::uuid AND type <> 'token.created' ORDER BY seq",
        tenant_id,
    )
    return [
        {"seq": r["seq"], "type": r["type"], "request_id": r["request_id"], "data": r["data"]} for r in rows
    ]


async def db_with_json(db: Any) -> Any:
    await db.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    return db


def of_user(events: list[dict[str, Any]], user_id: str) -> list[dict[str, Any]]:
    return [e for e in events if e["data"].get("user", {}).get("id") == user_id]


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


async def patch_user(client: Any, tenant: Any, user_id: str, value: dict[str, Any]) -> str:
    """PATCH replace on a user; returns the request's X-Request-Id."""
    resp = await client.patch(
        f"/scim/v2/Users/{user_id}",
        json={"Operations": [{"op": "replace", "value": value}]},
        headers=tenant.headers,
    )
    assert resp.status == 200, await resp.text()
    return resp.headers["X-Request-Id"]


async def get_page(client: Any, path: str, **query: Any) -> dict[str, Any]:
    resp = await client.get(path, params=query, headers=ADMIN_HEADERS)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def listed(client: Any, tenant_id: str, want: int, **query: Any) -> list[dict[str, Any]]:
    """Every event of the tenant the API lists (walked page by page), once at least `want` are listed: a
    transaction still running anywhere on the server holds back what could sort after it."""

    async def walk() -> list[dict[str, Any]] | None:
        seen: list[dict[str, Any]] = []
        after = ""
        while True:
            page = await get_page(client, TENANT_EVENTS.format(tid=tenant_id), after=after, **query)
            if not page["events"]:
                assert page["next_cursor"] == (after or "0-0")
                return seen if len(seen) >= want else None
            seen += page["events"]
            after = page["next_cursor"]

    return await wait_until(walk, what=f"{want} events listed")


async def test_a_created_user_is_told_with_its_license_decided(client, new_tenant, db, settings):
    await db_with_json(db)
    tenant = await new_tenant(seats=1)
    resp = await client.post("/scim/v2/Users", json=user_body(unique_email()), headers=tenant.headers)
    user, request_id = await resp.json(), resp.headers["X-Request-Id"]
    await run_worker(settings)

    events = await stored_events(db, tenant.id)
    assert types(events) == ["user.created", "license.changed"]
    created, licensed = events
    assert created["seq"] == 2 and licensed["seq"] == 3  # after the tenant's token.created
    assert created["request_id"] == request_id == licensed["request_id"]
    told = created["data"]["user"]
    assert told["id"] == user["id"] and told["userName"] == user["userName"]
    assert told["active"] is True and told["license"] == "full" and told["provisioningState"] == "provisioned"
    assert licensed["data"]["from"] is None
    assert {k: licensed["data"][k] for k in ("to", "seat", "waiting")} == {
        "to": "full",
        "seat": True,
        "waiting": False,
    }


async def test_a_users_snapshot_is_stored_once_a_batch_and_every_reader_shows_it(
    client, new_tenant, db, settings
):
    await db_with_json(db)
    tenant = await new_tenant(seats=1)
    resp = await client.post("/scim/v2/Users", json=user_body(unique_email()), headers=tenant.headers)
    user = await resp.json()
    await run_worker(settings)

    stored = await db.fetch(
        "SELECT id, type, data, user_id, snapshot_id, (user_snapshot).user_name FROM events "
        "WHERE tenant_id = $1::uuid AND type <> 'token.created' "
        "ORDER BY seq",
        tenant.id,
    )
    created, licensed = stored
    # The first event of the user holds its snapshot as a row, `data` what the event says besides the user.
    assert created["snapshot_id"] is None and created["user_name"] == user["userName"]
    assert str(created["user_id"]) == user["id"] and created["data"] == {}
    # The license change names the user and points at the event holding the snapshot.
    assert licensed["snapshot_id"] == created["id"] and licensed["user_name"] is None
    assert str(licensed["user_id"]) == user["id"] and "user" not in licensed["data"]
    # Readers show the snapshot's JSON as it was stored before it was a row: every attribute, in JSON types.
    as_stored_before = await db.fetchval(
        "SELECT jsonb_build_object("
        "'id', u.id, 'userName', u.user_name, 'externalId', u.external_id, 'displayName', u.display_name, "
        "'name', u.resource -> 'name', 'emails', u.resource -> 'emails', 'active', u.active, "
        "'scimLinked', u.scim_linked, 'license', u.license, 'waitingSince', u.waiting_since, "
        "'provisioningState', u.provisioning_state) FROM users u WHERE u.id = $1::uuid",
        user["id"],
    )
    shown = {e["type"]: e for e in await listed(client, tenant.id, 2, type="user.created,license.changed")}
    assert shown["user.created"]["data"]["user"] == as_stored_before
    assert shown["license.changed"]["data"]["user"] == as_stored_before
    assert shown["license.changed"]["data"]["to"] == "full"

    # Retention may delete the snapshot's event first: the other then shows the user's id alone.
    await db.execute("DELETE FROM events WHERE id = $1", created["id"])
    page = await get_page(client, TENANT_EVENTS.format(tid=tenant.id), type="license.changed")
    assert [e["data"]["user"] for e in page["events"]] == [{"id": user["id"]}]


async def test_events_written_before_the_snapshot_was_a_row_read_as_they_did(client, new_tenant, db):
    """Rows of the earlier form (the user in `data`: the snapshot whole in the first event, {"id"} and a
    pointer in the later one; no `user_id`) are shown as they were written."""
    await db_with_json(db)
    tenant = await new_tenant()
    user = {"id": str(uuid.uuid4()), "userName": "earlier@example.com", "active": False, "license": None}
    first = await db.fetchval(
        "INSERT INTO events (tenant_id, seq, type, request_id, data) "
        "VALUES ($1::uuid, 101, 'user.deactivated', 'r-1', $2::jsonb) RETURNING id",
        tenant.id,
        {"user": user},
    )
    await db.execute(
        "INSERT INTO events (tenant_id, seq, type, request_id, data, snapshot_id) "
        "VALUES ($1::uuid, 102, 'license.changed', 'r-1', $2::jsonb, $3)",
        tenant.id,
        {"from": "full", "to": None, "seat": False, "waiting": False, "user": {"id": user["id"]}},
        first,
    )
    shown = await listed(client, tenant.id, 2, type="user.deactivated,license.changed")
    assert [(e["type"], e["data"]) for e in shown] == [
        ("user.deactivated", {"user": user}),
        ("license.changed", {"from": "full", "to": None, "seat": False, "waiting": False, "user": user}),
    ]


async def test_deactivation_frees_a_seat_and_the_waiting_user_is_promoted(client, new_tenant, db, settings):
    await db_with_json(db)
    tenant = await new_tenant(seats=1)
    holder = await post_user(client, tenant)
    await run_worker(settings)
    waiter = await post_user(client, tenant, userType="Full")
    await run_worker(settings)
    waited = of_user(await stored_events(db, tenant.id), waiter["id"])
    assert types(waited) == ["user.created", "license.changed"]
    assert waited[1]["data"]["to"] == "free_restricted" and waited[1]["data"]["waiting"] is True

    before = len(await stored_events(db, tenant.id))
    request_id = await patch_user(client, tenant, holder["id"], {"active": False})
    await run_worker(settings)

    new = (await stored_events(db, tenant.id))[before:]
    assert [(e["type"], e["data"]["user"]["id"]) for e in new] == [
        ("user.deactivated", holder["id"]),
        ("license.changed", holder["id"]),
        ("license.changed", waiter["id"]),
    ]
    assert all(e["request_id"] == request_id for e in new)  # the promotion is owed to the deactivation
    released, promoted = new[1]["data"], new[2]["data"]
    assert released["from"] == "full" and released["seat"] is False and released["waiting"] is False
    assert released["to"] == released["user"]["license"] and released["user"]["active"] is False
    assert promoted["from"] == "free_restricted" and promoted["to"] == "full"
    assert promoted["seat"] is True and promoted["waiting"] is False
    assert promoted["user"]["license"] == "full" and promoted["user"]["waitingSince"] is None


async def test_user_name_change_is_told_with_the_previous_name(client, tenant, db, settings):
    await db_with_json(db)
    user = await post_user(client, tenant)
    await run_worker(settings)
    new_name = unique_email("renamed")
    request_id = await patch_user(client, tenant, user["id"], {"userName": new_name})
    await run_worker(settings)

    events = of_user(await stored_events(db, tenant.id), user["id"])
    assert types(events)[-2:] == ["user.updated", "user.email_changed"]
    changed = events[-1]
    assert changed["request_id"] == request_id
    assert changed["data"]["previous_user_name"] == user["userName"]
    assert changed["data"]["user"]["userName"] == new_name


async def test_reactivation_and_scim_delete_are_told(client, tenant, db, settings):
    await db_with_json(db)
    user = await post_user(client, tenant)
    await run_worker(settings)
    await patch_user(client, tenant, user["id"], {"active": False})
    await run_worker(settings)
    await patch_user(client, tenant, user["id"], {"active": True})
    await run_worker(settings)
    resp = await client.delete(f"/scim/v2/Users/{user['id']}", headers=tenant.headers)
    assert resp.status == 204
    await run_worker(settings)

    told = [
        t for t in types(of_user(await stored_events(db, tenant.id), user["id"])) if t.startswith("user.")
    ]
    assert told == ["user.created", "user.deactivated", "user.reactivated", "user.deleted"]


async def test_group_changes_tell_exactly_who_joined_and_left_the_team(client, tenant, db, settings):
    await db_with_json(db)
    a, b, c = [await make_user(client, tenant) for _ in range(3)]
    team = await make_team(client, tenant)
    await run_worker(settings)
    start = len(await stored_events(db, tenant.id))

    def team_events(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
        return [(e["type"], e["data"].get("user", {}).get("id", "")) for e in events]

    body = {"displayName": team["name"], "members": [{"value": a}]}
    resp = await client.post("/scim/v2/Groups", json=body, headers=tenant.headers)
    assert resp.status == 201
    group = await resp.json()
    await run_worker(settings)
    events = (await stored_events(db, tenant.id))[start:]
    assert team_events(events) == [("group.linked", ""), ("team.member_added", a)]
    linked = {
        "group": {"id": group["id"], "displayName": team["name"]},
        "team": {"id": team["id"], "name": team["name"]},
    }
    assert events[0]["data"] == linked
    assert events[1]["data"]["team"] == linked["team"]

    start += len(events)
    resp = await send_patch(
        client,
        tenant,
        group["id"],
        {"op": "add", "path": "members", "value": [{"value": b}]},
        {"op": "remove", "path": f'members[value eq "{a}"]'},
    )
    assert resp.status == 204
    await run_worker(settings)
    events = (await stored_events(db, tenant.id))[start:]
    assert team_events(events) == [("team.member_removed", a), ("team.member_added", b)]

    start += len(events)  # adding a member the team has already changes nothing: nothing is told
    resp = await send_patch(
        client, tenant, group["id"], {"op": "add", "path": "members", "value": [{"value": b}]}
    )
    assert resp.status == 204
    await run_worker(settings)
    assert (await stored_events(db, tenant.id))[start:] == []

    resp = await client.put(
        f"/scim/v2/Groups/{group['id']}",
        json={"displayName": team["name"], "members": [{"value": b}, {"value": c}]},
        headers=tenant.headers,
    )
    assert resp.status == 200
    await run_worker(settings)
    events = (await stored_events(db, tenant.id))[start:]
    assert team_events(events) == [("team.member_added", c)]

    start += len(events)
    resp = await client.delete(f"/scim/v2/Groups/{group['id']}", headers=tenant.headers)
    assert resp.status == 204
    await run_worker(settings)
    events = (await stored_events(db, tenant.id))[start:]
    assert (
        types(events) == ["group.unlinked"] and events[0]["data"] == linked
    )  # the team and its members stay


async def test_joining_a_domain_team_is_told(client, tenant, db, settings):
    await db_with_json(db)
    team = await create_team(client, tenant, "Everyone at corp")
    resp = await client.patch(
        f"/admin/v1/tenants/{tenant.id}",
        json={"domain_teams": {"corp.example": [team["id"]]}},
        headers=ADMIN_HEADERS,
    )
    assert resp.status == 200, await resp.text()
    user = await post_user(client, tenant, unique_email(domain="corp.example"))
    await run_worker(settings)
    events = of_user(await stored_events(db, tenant.id), user["id"])
    assert types(events) == ["user.created", "license.changed", "team.member_added"]
    assert events[-1]["data"]["team"] == {"id": team["id"], "name": "Everyone at corp"}


async def test_running_the_worker_and_the_sweeper_again_tells_nothing_twice(client, tenant, db, settings):
    await db_with_json(db)
    users = [await post_user(client, tenant) for _ in range(3)]
    group_body = {
        "displayName": (await make_team(client, tenant))["name"],
        "members": [{"value": users[0]["id"]}],
    }
    resp = await client.post("/scim/v2/Groups", json=group_body, headers=tenant.headers)
    group = await resp.json()
    await run_worker(settings)
    await patch_user(client, tenant, users[1]["id"], {"active": False})
    await run_worker(settings)
    told = await stored_events(db, tenant.id)
    assert len(told) == 3 * 2 + 2 + 2  # created + license each, linked + joined, deactivated + license

    # Duplicate wake-ups for rows already applied, and the sweeper's (it runs at start-up), find nothing.
    redis = await _arq(settings)
    try:
        await redis.enqueue_job(DRAIN_USERS, tenant.id, None, _queue_name=settings.queue_name)
        await redis.enqueue_job(APPLY_OUTBOX, "group", group["id"], _queue_name=settings.queue_name)
        await redis.enqueue_job(APPLY_OUTBOX, "user", users[0]["id"], _queue_name=settings.queue_name)
    finally:
        await redis.aclose()
    await run_worker(settings)
    await run_worker(settings)
    assert await stored_events(db, tenant.id) == told


async def _arq(settings: Any) -> Any:
    from arq.connections import RedisSettings, create_pool

    return await create_pool(RedisSettings.from_dsn(settings.redis_url))


async def test_sequence_numbers_count_each_tenant_without_gaps_and_rebuild_the_order(
    client, new_tenant, db, settings
):
    one, two = await new_tenant(seats=2), await new_tenant(seats=1)
    for round_ in range(3):
        users = [await post_user(client, t) for t in (one, two, one)]
        await run_worker(settings)
        await patch_user(client, one, users[round_ % 2 * 2]["id"], {"displayName": f"round {round_}"})
        await patch_user(client, two, users[1]["id"], {"active": False})
        await run_worker(settings)
    for tenant in (one, two):
        seqs = [
            r["seq"] for r in await db.fetch("SELECT seq FROM events WHERE tenant_id = $1::uuid", tenant.id)
        ]
        assert sorted(seqs) == list(range(1, len(seqs) + 1))
        # Commit order, as the API lists it, is sequence order: the sequence rebuilds it.
        in_order = await listed(client, tenant.id, len(seqs))
        assert [e["sequence"] for e in in_order] == sorted(seqs)
        assert {e["tenant_id"] for e in in_order} == {tenant.id}


async def test_cursor_paging_lists_each_event_exactly_once(client, tenant, db, settings):
    for _ in range(4):
        await post_user(client, tenant)
    await run_worker(settings)
    # The tenant's token, made with it, was its first event.
    everything = await listed(client, tenant.id, 9, limit=1000)
    assert len(everything) == 9
    assert everything[0]["type"] == "token.created"
    stored = await db.fetch("SELECT id FROM events WHERE tenant_id = $1::uuid ORDER BY seq", tenant.id)
    assert [e["id"] for e in everything] == [f"evt_{r['id']}" for r in stored]
    first = everything[0]
    assert set(first) == {"id", "type", "tenant_id", "sequence", "occurred_at", "request_id", "data"}

    pages, after = [], ""
    while True:
        page = await get_page(client, TENANT_EVENTS.format(tid=tenant.id), after=after, limit=3)
        if not page["events"]:
            assert page["next_cursor"] == after  # nothing new: the same cursor comes back
            break
        assert len(page["events"]) <= 3
        pages.append(page["events"])
        after = page["next_cursor"]
    assert [e for p in pages for e in p] == everything

    await post_user(client, tenant)  # events written later come after the last cursor
    await run_worker(settings)

    async def newer() -> list[dict[str, Any]]:
        return (await get_page(client, TENANT_EVENTS.format(tid=tenant.id), after=after))["events"]

    later = await wait_until(newer, what="the new user's events after the last cursor")
    assert [e["type"] for e in later] == ["user.created", "license.changed"]
    assert [e["sequence"] for e in later] == [10, 11]


async def test_paging_follows_transaction_order_across_a_digit_boundary(client, db):
    """Pages go in transaction id order, not in the order of its text: a page ending on a longer id must
    not skip the events of a shorter one (as on any server whose transaction counter passes 10^k)."""
    tenant = await make_tenant(client)
    now = int(await db.fetchval("SELECT pg_current_xact_id()::text"))
    boundary = 10 ** (len(str(now)) - 1)  # e.g. 100000 when now is 606462: both txs below are committed
    if boundary + 1 >= now or boundary < 100:
        pytest.skip("transaction ids too young for a digit boundary")
    await db.execute(
        """
        INSERT INTO events (tx, tenant_id, seq, type, data)
        VALUES ($1::text::xid8, $3, 1000001, 'user.updated', '{"n": 1}'),
               ($2::text::xid8, $3, 1000002, 'user.updated', '{"n": 2}')
        """,
        str(boundary - 5),
        str(boundary + 1),
        uuid.UUID(tenant.id),
    )
    seen = await listed(client, tenant.id, 2, type="user.updated", limit=1)
    assert [e["data"]["n"] for e in seen] == [1, 2]


async def test_events_filter_by_type_and_tenant(client, new_tenant, settings):
    one, other = await new_tenant(), await new_tenant()
    user = await post_user(client, one)
    await post_user(client, other)
    await run_worker(settings)
    await patch_user(client, one, user["id"], {"active": False})
    await run_worker(settings)
    await listed(client, one.id, 4)
    await listed(client, other.id, 2)

    page = await get_page(client, EVENTS, tenant=one.id, type="user.created")
    assert [(e["type"], e["tenant_id"]) for e in page["events"]] == [("user.created", one.id)]
    resp = await client.get(
        EVENTS,
        params=[("tenant", one.id), ("type", "user.created"), ("type", "user.deactivated")],
        headers=ADMIN_HEADERS,
    )
    assert [e["type"] for e in (await resp.json())["events"]] == ["user.created", "user.deactivated"]
    page = await get_page(client, EVENTS, tenant=one.id, type="user.deactivated,license.changed")
    assert [e["type"] for e in page["events"]] == ["license.changed", "user.deactivated", "license.changed"]

    # A tenant's list holds its own events only; the operator's list holds every tenant's.
    own = await get_page(client, TENANT_EVENTS.format(tid=one.id), limit=1000)
    assert {e["tenant_id"] for e in own["events"]} == {one.id}
    everyone: set[str] = set()
    after = ""
    while (page := await get_page(client, EVENTS, after=after, limit=1000))["events"]:
        everyone |= {e["tenant_id"] for e in page["events"]}
        after = page["next_cursor"]
    assert {one.id, other.id} <= everyone


async def test_bad_events_queries_get_a_clear_400_and_unknown_tenants_404(client, tenant):
    tenant_events = TENANT_EVENTS.format(tid=tenant.id)
    bad = [
        (EVENTS, {"type": "user.exploded"}, "unknown event type 'user.exploded'"),
        (tenant_events, {"type": "user.created,nope"}, "unknown event type 'nope'"),
        (EVENTS, {"after": "yesterday"}, "after must be a cursor"),
        (tenant_events, {"after": "1-2-3"}, "after must be a cursor"),
        (EVENTS, {"after": "99999999999999999999999-1"}, "after must be a cursor"),
        (EVENTS, {"tenant": "not-a-tenant"}, "tenant must be a tenant id"),
        (EVENTS, {"limit": "many"}, "limit must be a whole number"),
    ]
    for path, query, detail in bad:
        resp = await client.get(path, params=query, headers=ADMIN_HEADERS)
        assert resp.status == 400, (query, await resp.text())
        body = await resp.json()
        assert body["status"] == "400" and body["scimType"] == "invalidValue" and detail in body["detail"]

    unknown = str(uuid.uuid4())
    for path, query in ((EVENTS, {"tenant": unknown}), (TENANT_EVENTS.format(tid=unknown), {})):
        resp = await client.get(path, params=query, headers=ADMIN_HEADERS)
        assert resp.status == 404, await resp.text()
        assert unknown in (await resp.json())["detail"]


async def test_only_the_operator_reads_events(client, tenant):
    for path in (EVENTS, TENANT_EVENTS.format(tid=tenant.id)):
        assert (await client.get(path)).status == 401
        resp = await client.get(path, headers={"Authorization": f"Bearer {tenant.token}"})
        assert resp.status == 401


async def test_events_off_records_none(client, tenant, db, settings):
    before = await db.fetchval("SELECT count(*) FROM events WHERE tenant_id = $1::uuid", tenant.id)
    user = await post_user(client, tenant)
    await run_worker(dataclasses.replace(settings, events=False))
    state = await db.fetchval("SELECT provisioning_state FROM users WHERE id = $1::uuid", user["id"])
    assert state == "provisioned"
    assert await db.fetchval("SELECT count(*) FROM events WHERE tenant_id = $1::uuid", tenant.id) == before


async def test_an_operators_assignment_and_the_promotion_it_allows_are_told(client, new_tenant, db, settings):
    await db_with_json(db)
    tenant = await new_tenant(seats=1)
    holder = await post_user(client, tenant)
    await run_worker(settings)
    waiter = await post_user(client, tenant, userType="Full")
    await run_worker(settings)
    resp = await client.put(
        f"/admin/v1/tenants/{tenant.id}/scim", json={"enabled": False}, headers=ADMIN_HEADERS
    )
    assert resp.status == 200
    before = len(await stored_events(db, tenant.id))

    resp = await client.put(
        f"/admin/v1/tenants/{tenant.id}/users/{holder['id']}/license",
        json={"license": "free"},
        headers={**ADMIN_HEADERS, "X-Request-Id": "assign-free-1"},
    )
    assert resp.status == 202
    await run_worker(settings)

    licensed = [e for e in (await stored_events(db, tenant.id))[before:] if e["type"] == "license.changed"]
    assert [
        (e["data"]["user"]["id"], e["data"]["from"], e["data"]["to"], e["request_id"]) for e in licensed
    ] == [
        (holder["id"], "full", "free", "assign-free-1"),
        (waiter["id"], "free_restricted", "full", "assign-free-1"),
    ]


async def test_raising_seats_tells_each_promotion(client, new_tenant, db, settings):
    await db_with_json(db)
    tenant = await new_tenant(seats=1)
    await post_user(client, tenant)
    await run_worker(settings)
    waiting = [await post_user(client, tenant, userType="Full") for _ in range(2)]
    await run_worker(settings)
    before = len(await stored_events(db, tenant.id))

    resp = await client.patch(
        f"/admin/v1/tenants/{tenant.id}",
        json={"seats": 2},
        headers={**ADMIN_HEADERS, "X-Request-Id": "seats-2"},
    )
    assert resp.status == 200
    await run_worker(settings)
    new = [e for e in (await stored_events(db, tenant.id))[before:] if e["type"] == "license.changed"]
    assert [
        (e["data"]["user"]["id"], e["data"]["to"], e["data"]["waiting"], e["request_id"]) for e in new
    ] == [(waiting[0]["id"], "full", False, "seats-2")]


async def test_a_group_deleted_before_the_worker_applied_its_link_tells_both_and_no_members(
    client, tenant, db, settings
):
    await db_with_json(db)
    user = await make_user(client, tenant)
    team = await make_team(client, tenant)
    await run_worker(settings)
    start = len(await stored_events(db, tenant.id))
    body = {"displayName": team["name"], "members": [{"value": user}]}
    group = await (await client.post("/scim/v2/Groups", json=body, headers=tenant.headers)).json()
    resp = await client.delete(f"/scim/v2/Groups/{group['id']}", headers=tenant.headers)
    assert resp.status == 204
    await run_worker(settings)

    events = (await stored_events(db, tenant.id))[start:]
    assert types(events) == ["group.linked", "group.unlinked"]  # the user never joined the team
    told = {
        "group": {"id": group["id"], "displayName": team["name"]},
        "team": {"id": team["id"], "name": team["name"]},
    }
    assert events[0]["data"] == told and events[1]["data"] == told


@pytest.fixture
async def receiver() -> Any:
    server = await Receiver().start()
    yield server
    await server.stop()


async def test_a_user_with_three_events_in_a_batch_is_delivered_whole_in_each(client, settings, db, receiver):
    """The user's snapshot is stored once a batch (0028): every delivery still carries the whole user."""
    tenant = await make_tenant(client)
    user = await post_user(client, tenant)
    await run_worker(dataclasses.replace(settings, webhook_signing_key=""))
    await register_endpoint(
        db, tenant.id, receiver.url, event_types=["user.updated", "user.email_changed", "license.changed"]
    )
    uid = uuid.UUID(user["id"])
    async with db.transaction():
        await record_events(
            db,
            uuid.UUID(tenant.id),
            [
                NewEvent(EventType.USER_UPDATED, {}, user_id=uid, request_id="three-a"),
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
