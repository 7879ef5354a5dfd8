"""SCIM /Groups through HTTP: link by name, members, PATCH shapes, projections, ETags, limits, bad input.

What the worker does with these changes (the linked team's membership) is in test_group_sync.py.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from scimsvc.store.groups import PUSH_MEMBERS
from tests.conftest import ADMIN_HEADERS, PUBLIC_URL, unique_email, user_body

GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


async def make_team(client: Any, tenant: Any, name: str | None = None) -> dict[str, Any]:
    resp = await client.post(
        f"/admin/v1/tenants/{tenant.id}/teams",
        json={"name": name or "team-" + uuid.uuid4().hex[:6]},
        headers=ADMIN_HEADERS,
    )
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def make_user(client: Any, tenant: Any, **extra: Any) -> str:
    resp = await client.post(
        "/scim/v2/Users", json=user_body(unique_email(), **extra), headers=tenant.headers
    )
    assert resp.status == 201, await resp.text()
    return (await resp.json())["id"]


async def make_group(
    client: Any, tenant: Any, members: list[str] = (), name: str | None = None, **extra: Any
) -> dict[str, Any]:
    team = await make_team(client, tenant, name)
    body = {"schemas": [GROUP], "displayName": team["name"], "members": [{"value": m} for m in members]}
    resp = await client.post("/scim/v2/Groups", json={**body, **extra}, headers=tenant.headers)
    assert resp.status == 201, await resp.text()
    return await resp.json()


def patch(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


async def send_patch(client: Any, tenant: Any, group_id: str, *operations: dict[str, Any]) -> Any:
    return await client.patch(f"/scim/v2/Groups/{group_id}", json=patch(*operations), headers=tenant.headers)


async def desired(db: Any, group_id: str) -> set[str]:
    rows = await db.fetch("SELECT user_id::text FROM group_members WHERE group_id = $1::uuid", group_id)
    return {r[0] for r in rows}


async def snapshot(db: Any, tenant_id: str) -> tuple[Any, ...]:
    groups = await db.fetch(
        "SELECT id, display_name, version, resource::text FROM groups WHERE tenant_id = $1::uuid ORDER BY id",
        tenant_id,
    )
    members = await db.fetch(
        "SELECT gm.group_id, gm.user_id FROM group_members gm JOIN groups g ON g.id = gm.group_id "
        "WHERE g.tenant_id = $1::uuid ORDER BY 1, 2",
        tenant_id,
    )
    outbox = await db.fetchval("SELECT count(*) FROM outbox WHERE tenant_id = $1::uuid", tenant_id)
    return tuple(map(tuple, groups)), tuple(map(tuple, members)), outbox


# --- Link by name ------------------------------------------------------------------------------------


async def test_post_links_the_group_to_the_team_with_exactly_its_name(client, tenant, db):
    team = await make_team(client, tenant, "Sales EMEA")
    user = await make_user(client, tenant, displayName="Ada L.")
    resp = await client.post(
        "/scim/v2/Groups",
        json={
            "schemas": [GROUP],
            "displayName": "Sales EMEA",
            "externalId": "okta-1",
            "members": [{"value": user}],
        },
        headers=tenant.headers,
    )
    assert resp.status == 201, await resp.text()
    assert resp.content_type == "application/scim+json"
    group = await resp.json()
    assert group["schemas"] == [GROUP]
    assert group["displayName"] == "Sales EMEA" and group["externalId"] == "okta-1"
    # A member's display is filled in by the service and returned on request only.
    assert group["members"] == [{"value": user, "$ref": f"{PUBLIC_URL}/scim/v2/Users/{user}", "type": "User"}]
    url = f"/scim/v2/Groups/{group['id']}"
    asked = await client.get(f"{url}?attributes=members.display", headers=tenant.headers)
    assert (await asked.json())["members"] == [{"display": "Ada L."}]
    asked = await client.get(f"{url}?attributes=members", headers=tenant.headers)
    assert (await asked.json())["members"][0]["display"] == "Ada L."
    assert group["meta"]["resourceType"] == "Group"
    assert group["meta"]["location"] == f"{PUBLIC_URL}/scim/v2/Groups/{group['id']}"
    assert resp.headers["Location"] == group["meta"]["location"]
    assert resp.headers["ETag"] == group["meta"]["version"] == 'W/"1"'
    assert (
        await db.fetchval("SELECT team_id::text FROM groups WHERE id = $1::uuid", group["id"]) == team["id"]
    )
    resp = await client.get(f"/admin/v1/tenants/{tenant.id}/teams/{team['id']}", headers=ADMIN_HEADERS)
    assert (await resp.json())["group"] == {"id": group["id"], "displayName": "Sales EMEA"}


async def test_post_without_a_team_of_that_name_says_to_create_it_with_the_teams_api(client, tenant, db):
    await make_team(client, tenant, "sales")
    before = await snapshot(db, tenant.id)
    resp = await client.post(
        "/scim/v2/Groups", json={"schemas": [GROUP], "displayName": "Sales"}, headers=tenant.headers
    )
    assert resp.status == 400
    body = await resp.json()
    assert body["schemas"] == [ERROR] and body["status"] == "400" and body["scimType"] == "invalidValue"
    assert "'Sales'" in body["detail"]
    assert f"POST /admin/v1/tenants/{tenant.id}/teams" in body["detail"]
    assert "'sales'" in body["detail"] and "case" in body["detail"]  # the near miss is named
    assert await snapshot(db, tenant.id) == before


async def test_team_of_another_tenant_does_not_link(client, tenant, new_tenant):
    other = await new_tenant()
    await make_team(client, other, "Finance")
    resp = await client.post("/scim/v2/Groups", json={"displayName": "Finance"}, headers=tenant.headers)
    assert resp.status == 400


async def test_team_already_linked_to_another_group_is_409_uniqueness(client, tenant, db):
    first = await make_group(client, tenant, name="Support")
    resp = await client.post("/scim/v2/Groups", json={"displayName": "Support"}, headers=tenant.headers)
    assert resp.status == 409
    body = await resp.json()
    assert body["scimType"] == "uniqueness" and first["id"] in body["detail"]
    assert await db.fetchval("SELECT count(*) FROM groups WHERE tenant_id = $1::uuid", tenant.id) == 1


async def test_a_team_freed_by_deleting_its_group_can_be_linked_again(client, tenant):
    first = await make_group(client, tenant, name="Freed")
    assert (await client.delete(f"/scim/v2/Groups/{first['id']}", headers=tenant.headers)).status == 204
    resp = await client.post("/scim/v2/Groups", json={"displayName": "Freed"}, headers=tenant.headers)
    assert resp.status == 201


# --- Members must be users of the tenant ----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["unknown", "foreign", "malformed", "unlinked"])
async def test_bad_member_on_post_put_or_patch_is_400_naming_it_and_writes_nothing(
    client, tenant, new_tenant, db, kind
):
    other = await new_tenant()
    good = await make_user(client, tenant)
    if kind == "unknown":
        bad = str(uuid.uuid4())
    elif kind == "foreign":
        bad = await make_user(client, other)
    elif kind == "malformed":
        bad = "not-a-user-id"
    else:
        bad = await make_user(client, tenant)
        assert (await client.delete(f"/scim/v2/Users/{bad}", headers=tenant.headers)).status == 204
    group = await make_group(client, tenant, [good])
    team = await make_team(client, tenant)
    before = await snapshot(db, tenant.id)
    members = [{"value": good}, {"value": bad}]
    attempts = [
        client.post(
            "/scim/v2/Groups", json={"displayName": team["name"], "members": members}, headers=tenant.headers
        ),
        client.put(
            f"/scim/v2/Groups/{group['id']}",
            json={"displayName": group["displayName"], "members": members},
            headers=tenant.headers,
        ),
        send_patch(client, tenant, group["id"], {"op": "add", "path": "members", "value": members}),
        send_patch(client, tenant, group["id"], {"op": "replace", "path": "members", "value": members}),
    ]
    for attempt in attempts:
        resp = await attempt
        assert resp.status == 400, await resp.text()
        body = await resp.json()
        assert body["scimType"] == "invalidValue" and bad in body["detail"] and good not in body["detail"]
        if kind == "malformed":
            assert f"'{bad}' is not a User id of this service" in body["detail"]
    assert await snapshot(db, tenant.id) == before


async def insert_users(db: Any, tenant: Any, count: int) -> list[str]:
    """`count` SCIM-linked users of the tenant, written with SQL (a push of thousands needs them fast)."""
    rows = await db.fetch(
        "INSERT INTO users (tenant_id, user_name, resource) "
        "SELECT $1::uuid, n, jsonb_build_object('userName', n) "
        "FROM (SELECT 'many' || i || '-' || $2 || '@example.com' AS n FROM generate_series(1, $3) AS i) AS s "
        "RETURNING id::text",
        tenant.id,
        uuid.uuid4().hex[:8],
        count,
    )
    return [r[0] for r in rows]


BAD_AT = 6_500  # past the first member checked, as deep as a PATCH of members can reach


@pytest.mark.parametrize(
    "kind", ["malformed", "number", "group type", "no value", "unknown", "foreign", "unlinked", "later"]
)
async def test_one_bad_member_deep_in_a_push_of_10000_is_400_naming_it_and_writes_nothing(
    client, tenant, new_tenant, db, kind
):
    ids = await insert_users(db, tenant, 10_000)
    group = await make_group(client, tenant, ids[:5000])
    members: list[Any] = [{"value": i, "display": "Someone", "type": "User"} for i in ids]
    bad = {
        "malformed": "not-a-user-id",
        "number": 7,
        "group type": group["id"],
        "no value": None,
        "unknown": str(uuid.uuid4()),
        "foreign": await make_user(client, await new_tenant()),
        "unlinked": await make_user(client, tenant),
        "later": None,
    }[kind]
    if kind == "unlinked":
        assert (await client.delete(f"/scim/v2/Users/{bad}", headers=tenant.headers)).status == 204
    if kind == "group type":
        members[BAD_AT] = {"value": bad, "type": "Group"}
    elif kind == "no value":
        members[BAD_AT] = {"display": "Someone"}
    elif kind == "later":
        # A user the group already has, SCIM-deleted since: it left the group, so it is new, and refused.
        bad = ids[4_000]
        assert (await client.delete(f"/scim/v2/Users/{bad}", headers=tenant.headers)).status == 204
    else:
        members[BAD_AT] = {"value": bad}
    before = await snapshot(db, tenant.id)
    body = {"displayName": group["displayName"], "members": members}
    # A PATCH may change at most 8,000 members: Okta's push by PATCH sends the first 7,500.
    replace = {"op": "replace", "path": "members", "value": members[:7500]}
    for resp in [
        await client.put(f"/scim/v2/Groups/{group['id']}", json=body, headers=tenant.headers),
        await send_patch(client, tenant, group["id"], replace),
    ]:
        assert resp.status == 400, await resp.text()
        error = await resp.json()
        assert error["scimType"] == "invalidValue", error
        if kind in ("group type", "no value", "number"):
            assert f"[{BAD_AT}]" in error["detail"], error
        else:
            assert repr(bad) in error["detail"] and ids[0] not in error["detail"], error
    assert await snapshot(db, tenant.id) == before


async def test_a_push_of_10000_in_idp_shapes_makes_members_exactly_those_users(client, tenant, db):
    ids = await insert_users(db, tenant, 10_000)
    group = await make_group(client, tenant, ids[:6000])
    # Half the members change; ids in upper case, repeated, with display/type/$ref or bare objects.
    members: list[Any] = [{"value": i} for i in ids[3000:]]
    members[100] = {"value": ids[3100].upper(), "display": "Shown", "type": "User", "$ref": "ignored"}
    members.append({"value": ids[9999]})
    resp = await client.put(
        f"/scim/v2/Groups/{group['id']}?excludedAttributes=members",
        json={"displayName": group["displayName"], "members": members},
        headers=tenant.headers,
    )
    assert resp.status == 200, await resp.text()
    assert await desired(db, group["id"]) == set(ids[3000:])
    outbox = await db.fetch("SELECT change FROM outbox WHERE resource_id = $1::uuid ORDER BY id", group["id"])
    assert [r["change"] for r in outbox] == ["link", "push"]
    # The same list again changes no member, and still records the push (the team may have drifted).
    resp = await client.put(
        f"/scim/v2/Groups/{group['id']}",
        json={"displayName": group["displayName"], "members": members},
        headers=tenant.headers,
    )
    assert resp.status == 200, await resp.text()
    assert sorted(m["value"] for m in (await resp.json())["members"]) == sorted(ids[3000:])
    assert await desired(db, group["id"]) == set(ids[3000:])
    # And an empty list empties the group.
    resp = await client.put(
        f"/scim/v2/Groups/{group['id']}",
        json={"displayName": group["displayName"], "members": []},
        headers=tenant.headers,
    )
    assert resp.status == 200 and await desired(db, group["id"]) == set()


def plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every node of an EXPLAIN (FORMAT JSON) plan."""
    yield plan
    for child in plan.get("Plans", []):
        yield from plan_nodes(child)


def per_row_work(plan: dict[str, Any]) -> list[str]:
    """The steps of a plan that do work for each row times each element of an array or CTE: a filter that
    tests each row against a whole array, a subplan run again for each row, a nested loop whose inner side
    is not an index probe."""
    found = []
    for node in plan_nodes(plan):
        what = f"{node['Node Type']} {node.get('Relation Name', '')}".strip()
        conditions = [node.get("Filter", ""), node.get("Join Filter", "")]
        found += [f"{what}: filter {c}" for c in conditions if "ANY (" in c]
        found += [
            f"{what}: {e}"
            for e in [*conditions, *node.get("Output", [])]
            if re.search(r"(?<!hashed )SubPlan \d", e)
        ]
        inner = [c for c in node.get("Plans", []) if c.get("Parent Relationship") == "Inner"]
        if node["Node Type"] == "Nested Loop" and inner[0]["Node Type"] not in INDEX_PROBES:
            found.append(f"{what}: inner {inner[0]['Node Type']}")
    return found


INDEX_PROBES = ("Index Scan", "Index Only Scan", "Bitmap Heap Scan")


async def test_a_push_into_a_group_analyzed_while_empty_has_only_linear_steps(client, tenant, db):
    """Statistics taken while the group was empty guess it at a few rows: no step of a push may then
    compare each member with each other one (a 40,000 push took 6 s that way, instead of 0.3 s: the delete
    was an index scan of the group testing each row against the array of rows to delete)."""
    ids = await insert_users(db, tenant, 60_000)
    await make_group(client, tenant, ids[-5000:])  # another group, as the statistics know them
    group = await make_group(client, tenant)
    await db.execute("ANALYZE users, group_members")
    url = f"/scim/v2/Groups/{group['id']}?excludedAttributes=members"
    for members in (ids[:40_000], ids[20_000:]):  # the second push removes 20,000 and adds 20,000
        # The plan the push's statement gets now, with these statistics (EXPLAIN runs nothing).
        args = (uuid.UUID(tenant.id), uuid.UUID(group["id"]), [uuid.UUID(m) for m in members])
        plan = json.loads(await db.fetchval("EXPLAIN (VERBOSE, FORMAT JSON) " + PUSH_MEMBERS, *args))
        assert per_row_work(plan[0]["Plan"]) == []
        body = {"displayName": group["displayName"], "members": [{"value": m} for m in members]}
        resp = await client.put(url, json=body, headers=tenant.headers)
        assert resp.status == 200, await resp.text()
        assert await desired(db, group["id"]) == set(members)


async def test_members_of_another_type_are_refused(client, tenant):
    group = await make_group(client, tenant)
    resp = await send_patch(
        client,
        tenant,
        group["id"],
        {"op": "add", "path": "members", "value": [{"value": group["id"], "type": "Group"}]},
    )
    assert resp.status == 400 and "groups do not nest" in (await resp.json())["detail"]


# --- Reading: by id, list, filters, paging, projections, ETags ------------------------------------------


async def test_get_by_id_and_unknown_or_malformed_id_is_404(client, tenant, new_tenant):
    group = await make_group(client, tenant)
    resp = await client.get(f"/scim/v2/Groups/{group['id']}", headers=tenant.headers)
    assert resp.status == 200 and (await resp.json())["displayName"] == group["displayName"]
    other = await new_tenant()
    for path, headers in [
        (f"/scim/v2/Groups/{uuid.uuid4()}", tenant.headers),
        ("/scim/v2/Groups/nope", tenant.headers),
        (f"/scim/v2/Groups/{group['id']}", other.headers),
    ]:
        resp = await client.get(path, headers=headers)
        assert resp.status == 404 and (await resp.json())["status"] == "404"


async def test_excluded_attributes_members_leaves_members_out(client, tenant):
    users = [await make_user(client, tenant) for _ in range(3)]
    group = await make_group(client, tenant, users)
    assert len(group["members"]) == 3
    resp = await client.get(
        f"/scim/v2/Groups/{group['id']}?excludedAttributes=members", headers=tenant.headers
    )
    body = await resp.json()
    assert "members" not in body and body["displayName"] == group["displayName"] and body["id"] == group["id"]
    assert body["meta"]["version"] == group["meta"]["version"]
    filt = f'displayName eq "{group["displayName"]}"'
    resp = await client.get(
        "/scim/v2/Groups", params={"filter": filt, "excludedAttributes": "members"}, headers=tenant.headers
    )
    listed = await resp.json()
    assert listed["totalResults"] == 1 and "members" not in listed["Resources"][0]


async def test_attributes_selects_what_is_returned(client, tenant):
    user = await make_user(client, tenant)
    group = await make_group(client, tenant, [user], externalId="x-1")
    resp = await client.get(f"/scim/v2/Groups/{group['id']}?attributes=displayName", headers=tenant.headers)
    body = await resp.json()
    assert set(body) == {"schemas", "id", "displayName"}
    resp = await client.get(
        f"/scim/v2/Groups/{group['id']}?attributes=members.value,externalId", headers=tenant.headers
    )
    body = await resp.json()
    assert body["members"] == [{"value": user}] and body["externalId"] == "x-1" and "displayName" not in body
    resp = await client.get(
        f"/scim/v2/Groups/{group['id']}?excludedAttributes=members.display,id", headers=tenant.headers
    )
    body = await resp.json()
    assert body["id"] == group["id"]  # id is always returned
    assert body["members"][0]["value"] == user and "display" not in body["members"][0]


async def test_filters_by_display_name_external_id_and_member(client, tenant, new_tenant):
    alice, bob = await make_user(client, tenant), await make_user(client, tenant, displayName="Bob Builder")
    one = await make_group(client, tenant, [alice], name="Alpha One", externalId="ext-A")
    two = await make_group(client, tenant, [alice, bob], name="Beta Two", externalId="ext-B")
    await make_group(client, tenant, [], name="Gamma")
    other = await new_tenant()
    await make_group(client, other, [await make_user(client, other)], name="Alpha One")

    async def ids(filt: str) -> list[str]:
        resp = await client.get("/scim/v2/Groups", params={"filter": filt}, headers=tenant.headers)
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        assert body["totalResults"] == len(body["Resources"])
        return sorted(r["id"] for r in body["Resources"])

    assert await ids('displayName eq "alpha one"') == [one["id"]]  # displayName is not caseExact
    assert await ids('externalId eq "ext-B"') == [two["id"]]
    assert await ids('externalId eq "ext-b"') == []  # externalId is caseExact
    assert await ids(f'members.value eq "{bob}"') == [two["id"]]
    assert await ids(f'members.value eq "{alice}"') == sorted([one["id"], two["id"]])
    assert await ids(f'members[value eq "{bob}"]') == [two["id"]]
    assert await ids(f'members eq "{bob}"') == [two["id"]]
    # Entra's membership check.
    assert await ids(f'id eq "{two["id"]}" and members eq "{bob}"') == [two["id"]]
    assert await ids(f'id eq "{one["id"]}" and members eq "{bob}"') == []
    assert len(await ids("members pr")) == 2
    assert len(await ids("not (members pr)")) == 1
    assert await ids('displayName sw "Be" or displayName ew "One"') == sorted([one["id"], two["id"]])
    assert await ids(f'members.value eq "{uuid.uuid4()}"') == []
    assert await ids('members.value eq "not-a-uuid"') == []
    assert await ids('members.display co "builder"') == [two["id"]]
    assert await ids('members[type eq "User" and display sw "Bob"]') == [two["id"]]
    resp = await client.get(
        "/scim/v2/Groups", params={"filter": 'members.$ref eq "x"'}, headers=tenant.headers
    )
    assert resp.status == 400 and (await resp.json())["scimType"] == "invalidFilter"


async def test_list_pages_with_exact_totals(client, tenant):
    made = [await make_group(client, tenant) for _ in range(5)]
    resp = await client.get(
        "/scim/v2/Groups?startIndex=2&count=2&excludedAttributes=members", headers=tenant.headers
    )
    body = await resp.json()
    assert body["totalResults"] == 5 and body["startIndex"] == 2 and body["itemsPerPage"] == 2
    assert [r["id"] for r in body["Resources"]] == [g["id"] for g in made[1:3]]
    resp = await client.get("/scim/v2/Groups?startIndex=99", headers=tenant.headers)
    body = await resp.json()
    assert body["totalResults"] == 5 and body["Resources"] == []


async def test_etags_if_match_and_if_none_match(client, tenant):
    group = await make_group(client, tenant)
    url = f"/scim/v2/Groups/{group['id']}"
    etag = group["meta"]["version"]
    resp = await client.get(url, headers={**tenant.headers, "If-None-Match": etag})
    assert resp.status == 304 and resp.headers["ETag"] == etag
    stale = {**tenant.headers, "If-Match": 'W/"999"'}
    op = {"op": "replace", "path": "displayName", "value": "Renamed"}
    for resp in [
        await client.patch(url, json=patch(op), headers=stale),
        await client.put(url, json={"displayName": "Renamed"}, headers=stale),
        await client.delete(url, headers=stale),
    ]:
        assert resp.status == 412 and (await resp.json())["scimType"] == "preconditionFailed"
    resp = await client.patch(url, json=patch(op), headers={**tenant.headers, "If-Match": etag})
    assert resp.status == 204 and resp.headers["ETag"] == 'W/"2"'
    resp = await client.get(url, headers={**tenant.headers, "If-None-Match": etag})
    assert resp.status == 200 and (await resp.json())["meta"]["version"] == 'W/"2"'


# --- Writes: PUT, PATCH shapes, DELETE -------------------------------------------------------------------


async def test_put_makes_members_exactly_the_list_and_renames_only_the_group(client, tenant, db):
    a, b, c = [await make_user(client, tenant) for _ in range(3)]
    group = await make_group(client, tenant, [a, b])
    resp = await client.put(
        f"/scim/v2/Groups/{group['id']}",
        json={
            "schemas": [GROUP],
            "displayName": "New name",
            "members": [{"value": b}, {"value": c}, {"value": c}],
        },
        headers=tenant.headers,
    )
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["displayName"] == "New name" and {m["value"] for m in body["members"]} == {b, c}
    assert await desired(db, group["id"]) == {b, c}
    assert (
        await db.fetchval(
            "SELECT t.name FROM teams t JOIN groups g ON g.team_id = t.id WHERE g.id = $1::uuid", group["id"]
        )
        == group["displayName"]
    )
    resp = await client.put(
        f"/scim/v2/Groups/{group['id']}", json={"displayName": "New name"}, headers=tenant.headers
    )
    assert resp.status == 200 and "members" not in await resp.json()
    assert await desired(db, group["id"]) == set()


async def test_put_answers_with_its_members_as_a_get_shows_them(client, tenant, db):
    ids = await insert_users(db, tenant, 300)
    group = await make_group(client, tenant, ids[:200])
    url = f"/scim/v2/Groups/{group['id']}"
    # Upper-case ids and a repeated one: the answer names each member once, canonical, by id.
    members = [{"value": i.upper() if n % 7 == 0 else i} for n, i in enumerate(ids[100:])]
    body = {"displayName": group["displayName"], "members": [*members, {"value": ids[150]}]}
    queries = ["", "?attributes=members", "?attributes=members.display", "?excludedAttributes=displayName"]
    for query in queries:
        resp = await client.put(url + query, json=body, headers=tenant.headers)
        assert resp.status == 200, await resp.text()
        put = await resp.json()
        got = await (await client.get(url + query, headers=tenant.headers)).json()
        assert put["members"] == got["members"] and len(put["members"]) == 200, query
        assert {k: v for k, v in put.items() if k != "meta"} == {k: v for k, v in got.items() if k != "meta"}
        # A member's display is returned on request (naming it or members): it is read from the users.
        assert ("display" in put["members"][0]) == ("attributes=members" in query), query
    assert [m["value"] for m in put["members"]] == sorted(ids[100:])


async def test_entra_patch_shapes(client, tenant, db):
    a, b, c = [await make_user(client, tenant) for _ in range(3)]
    group = await make_group(client, tenant, [])
    gid = group["id"]
    # As Microsoft documents them: Add members with a value array ($ref null), Remove with a value array.
    resp = await send_patch(
        client,
        tenant,
        gid,
        {"op": "Add", "path": "members", "value": [{"$ref": None, "value": a}, {"$ref": None, "value": b}]},
    )
    assert resp.status == 204 and await resp.read() == b""
    assert await desired(db, gid) == {a, b}
    resp = await send_patch(
        client, tenant, gid, {"op": "Remove", "path": "members", "value": [{"$ref": None, "value": a}]}
    )
    assert resp.status == 204 and await desired(db, gid) == {b}
    resp = await send_patch(
        client, tenant, gid, {"op": "Replace", "path": "displayName", "value": "Entra renamed"}
    )
    assert resp.status == 204
    assert await db.fetchval("SELECT display_name FROM groups WHERE id = $1::uuid", gid) == "Entra renamed"
    # Several operations in one request, applied in order.
    resp = await send_patch(
        client,
        tenant,
        gid,
        {"op": "Add", "path": "members", "value": [{"value": a}, {"value": c}]},
        {"op": "Remove", "path": "members", "value": [{"value": b}, {"value": c}]},
        {"op": "Add", "path": "members", "value": [{"value": c}]},
    )
    assert resp.status == 204 and await desired(db, gid) == {a, c}
    changes = await db.fetch(
        "SELECT change, payload FROM outbox WHERE resource_type = 'group' AND resource_id = $1::uuid "
        "ORDER BY id",
        gid,
    )
    assert changes[-1]["change"] == "members"
    payload = json.loads(changes[-1]["payload"])
    assert set(payload["add"]) == {a, c} and payload["remove"] == [b]


async def test_remove_with_a_value_filter_path(client, tenant, db):
    a, b, c = [await make_user(client, tenant) for _ in range(3)]
    group = await make_group(client, tenant, [a, b, c])
    resp = await send_patch(client, tenant, group["id"], {"op": "remove", "path": f'members[value eq "{a}"]'})
    assert resp.status == 204 and await desired(db, group["id"]) == {b, c}
    resp = await send_patch(
        client, tenant, group["id"], {"op": "remove", "path": f'members[value eq "{b}" or value eq "{c}"]'}
    )
    assert resp.status == 204 and await desired(db, group["id"]) == set()
    resp = await send_patch(client, tenant, group["id"], {"op": "remove", "path": 'members[display eq "x"]'})
    assert resp.status == 400 and (await resp.json())["scimType"] == "invalidFilter"


async def test_okta_patch_shapes(client, tenant, db):
    a, b, c = [await make_user(client, tenant) for _ in range(3)]
    group = await make_group(client, tenant, [a])
    gid = group["id"]
    # Okta sends its path-less replace of id and displayName with every membership update.
    resp = await send_patch(
        client,
        tenant,
        gid,
        {"op": "replace", "value": {"id": gid, "displayName": group["displayName"]}},
        {"op": "add", "path": "members", "value": [{"value": b, "display": "b@x.com"}]},
    )
    assert resp.status == 204 and await desired(db, gid) == {a, b}
    resp = await send_patch(
        client,
        tenant,
        gid,
        {"op": "replace", "value": {"id": gid, "displayName": "Okta renamed"}},
        {"op": "remove", "path": f'members[value eq "{a}"]'},
    )
    assert resp.status == 204 and await desired(db, gid) == {b}
    assert await db.fetchval("SELECT display_name FROM groups WHERE id = $1::uuid", gid) == "Okta renamed"
    # Okta's push: replace members with the full list.
    resp = await send_patch(
        client, tenant, gid, {"op": "replace", "path": "members", "value": [{"value": c}]}
    )
    assert resp.status == 204 and await desired(db, gid) == {c}
    last = await db.fetchval(
        "SELECT change FROM outbox WHERE resource_id = $1::uuid ORDER BY id DESC LIMIT 1", gid
    )
    assert last == "push"


async def test_patch_nothing_changes_writes_nothing(client, tenant, db):
    group = await make_group(client, tenant)
    before = await snapshot(db, tenant.id)
    resp = await send_patch(
        client,
        tenant,
        group["id"],
        {"op": "replace", "value": {"id": group["id"], "displayName": group["displayName"]}},
    )
    assert resp.status == 204
    assert await snapshot(db, tenant.id) == before


async def test_path_less_add_or_replace_with_members_key(client, tenant, db):
    a, b = await make_user(client, tenant), await make_user(client, tenant)
    group = await make_group(client, tenant, [a])
    resp = await send_patch(client, tenant, group["id"], {"op": "add", "value": {"members": [{"value": b}]}})
    assert resp.status == 204 and await desired(db, group["id"]) == {a, b}
    resp = await send_patch(
        client, tenant, group["id"], {"op": "replace", "value": {"Members": [{"value": a}]}}
    )
    assert resp.status == 204 and await desired(db, group["id"]) == {a}


async def test_patch_with_attributes_answers_200_with_the_group(client, tenant):
    a = await make_user(client, tenant)
    group = await make_group(client, tenant)
    resp = await client.patch(
        f"/scim/v2/Groups/{group['id']}?attributes=members",
        json=patch({"op": "add", "path": "members", "value": [{"value": a}]}),
        headers=tenant.headers,
    )
    assert resp.status == 200
    body = await resp.json()
    assert [m["value"] for m in body["members"]] == [a] and "displayName" not in body


async def test_remove_members_without_value_removes_everyone(client, tenant, db):
    users = [await make_user(client, tenant) for _ in range(2)]
    group = await make_group(client, tenant, users)
    resp = await send_patch(client, tenant, group["id"], {"op": "remove", "path": "members"})
    assert resp.status == 204 and await desired(db, group["id"]) == set()


async def test_delete_removes_the_group_and_keeps_the_team(client, tenant, db):
    user = await make_user(client, tenant)
    group = await make_group(client, tenant, [user])
    team_id = await db.fetchval("SELECT team_id FROM groups WHERE id = $1::uuid", group["id"])
    resp = await client.delete(f"/scim/v2/Groups/{group['id']}", headers=tenant.headers)
    assert resp.status == 204
    assert (await client.get(f"/scim/v2/Groups/{group['id']}", headers=tenant.headers)).status == 404
    assert (await client.delete(f"/scim/v2/Groups/{group['id']}", headers=tenant.headers)).status == 404
    assert await db.fetchval("SELECT count(*) FROM teams WHERE id = $1", team_id) == 1


async def test_deleted_user_disappears_from_its_groups(client, tenant, db):
    a, b = await make_user(client, tenant), await make_user(client, tenant)
    group = await make_group(client, tenant, [a, b])
    assert (await client.delete(f"/scim/v2/Users/{a}", headers=tenant.headers)).status == 204
    resp = await client.get(f"/scim/v2/Groups/{group['id']}", headers=tenant.headers)
    body = await resp.json()
    assert [m["value"] for m in body["members"]] == [b]
    assert body["meta"]["version"] != group["meta"]["version"]
    assert await desired(db, group["id"]) == {b}


# --- Limits -----------------------------------------------------------------------------------------------


async def test_patch_over_the_member_operation_limit_is_413(aiohttp_client, settings, db):
    from dataclasses import replace

    from scimsvc.web.app import create_app
    from tests.conftest import make_tenant

    client = await aiohttp_client(create_app(replace(settings, group_patch_max_member_ops=3)))
    tenant = await make_tenant(client)
    group = await make_group(client, tenant)
    before = await snapshot(db, tenant.id)
    ids = [{"value": str(uuid.uuid4())} for _ in range(4)]
    resp = await send_patch(client, tenant, group["id"], {"op": "add", "path": "members", "value": ids})
    assert resp.status == 413
    body = await resp.json()
    assert body["status"] == "413" and "at most 3" in body["detail"] and "PUT" in body["detail"]
    assert await snapshot(db, tenant.id) == before


async def test_patch_over_the_byte_limit_is_413_and_put_takes_large_bodies(client, tenant, settings, db):
    group = await make_group(client, tenant)
    filler = "x" * (settings.group_patch_max_bytes + 10)
    resp = await send_patch(
        client, tenant, group["id"], {"op": "replace", "path": "displayName", "value": filler}
    )
    assert resp.status == 413
    body = await resp.json()
    assert body["schemas"] == [ERROR] and "split" in body["detail"] and "PUT" in body["detail"]
    # PUT and POST of groups take bodies past the app-wide 1 MiB limit (a large push); other routes do not.
    big = {"displayName": group["displayName"], "ignored": "y" * (settings.max_body_bytes + 100)}
    resp = await client.put(f"/scim/v2/Groups/{group['id']}", json=big, headers=tenant.headers)
    assert resp.status == 200, await resp.text()
    resp = await client.post(
        "/scim/v2/Users",
        json=user_body(unique_email(), title="y" * (settings.max_body_bytes + 100)),
        headers=tenant.headers,
    )
    assert resp.status == 413


# --- Bad input: a SCIM error, never a 500 -----------------------------------------------------------------


BAD_PATCHES: list[tuple[str, Any, str]] = [
    ("not json object", [1, 2], "invalidSyntax"),
    ("no operations", {"schemas": [PATCH_OP]}, "invalidSyntax"),
    ("bad op", patch({"op": "merge", "path": "members", "value": []}), "invalidSyntax"),
    ("remove without path", patch({"op": "remove"}), "noTarget"),
    ("path-less with non-object", patch({"op": "replace", "value": "x"}), "invalidSyntax"),
    (
        "member without value",
        patch({"op": "add", "path": "members", "value": [{"display": "x"}]}),
        "invalidValue",
    ),
    (
        "member value not a string",
        patch({"op": "add", "path": "members", "value": [{"value": 7}]}),
        "invalidValue",
    ),
    ("members.value path", patch({"op": "add", "path": "members.value", "value": "x"}), "invalidPath"),
    ("unknown attribute path", patch({"op": "replace", "path": "nope", "value": "x"}), "invalidPath"),
    ("unclosed filter", patch({"op": "remove", "path": 'members[value eq "x"'}), "invalidPath"),
    ("bad filter", patch({"op": "remove", "path": "members[value eq]"}), "invalidFilter"),
    ("remove displayName", patch({"op": "remove", "path": "displayName"}), "invalidValue"),
    ("empty displayName", patch({"op": "replace", "path": "displayName", "value": ""}), "invalidValue"),
    (
        "displayName not a string",
        patch({"op": "replace", "path": "displayName", "value": {"a": 1}}),
        "invalidValue",
    ),
    (
        "NUL in displayName",
        patch({"op": "replace", "path": "displayName", "value": "a\u0000b"}),
        "invalidValue",
    ),
    ("readOnly id", patch({"op": "replace", "path": "id", "value": "x"}), "mutability"),
]


@pytest.mark.parametrize("name,body,scim_type", BAD_PATCHES, ids=[c[0] for c in BAD_PATCHES])
async def test_bad_patch_is_a_scim_400_and_changes_nothing(client, tenant, db, name, body, scim_type):
    group = await make_group(client, tenant, [await make_user(client, tenant)])
    before = await snapshot(db, tenant.id)
    resp = await client.patch(f"/scim/v2/Groups/{group['id']}", json=body, headers=tenant.headers)
    assert resp.status == 400, await resp.text()
    error = await resp.json()
    assert error["schemas"] == [ERROR] and error["status"] == "400" and error["scimType"] == scim_type
    assert await snapshot(db, tenant.id) == before


BAD_BODIES: list[tuple[str, Any, str]] = [
    ("malformed json", b'{"displayName": ', "invalidSyntax"),
    ("empty body", b"", "invalidSyntax"),
    ("array body", [1], "invalidValue"),
    ("no displayName", {"members": []}, "invalidValue"),
    ("displayName a list", {"displayName": ["x"]}, "invalidValue"),
    ("displayName too long", {"displayName": "x" * 513}, "invalidValue"),
    ("externalId too long", {"displayName": "x", "externalId": "x" * 513}, "invalidValue"),
    ("members not a list of objects", {"displayName": "x", "members": [[1]]}, "invalidValue"),
    ("members a number", {"displayName": "x", "members": 3}, "invalidValue"),
    ("externalId object", {"displayName": "x", "externalId": {"a": 1}}, "invalidValue"),
]


@pytest.mark.parametrize("name,body,scim_type", BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
async def test_bad_post_or_put_body_is_a_scim_400(client, tenant, db, name, body, scim_type):
    group = await make_group(client, tenant)
    before = await snapshot(db, tenant.id)
    kwargs = {"data": body} if isinstance(body, bytes) else {"json": body}
    for resp in [
        await client.post("/scim/v2/Groups", headers=tenant.headers, **kwargs),
        await client.put(f"/scim/v2/Groups/{group['id']}", headers=tenant.headers, **kwargs),
    ]:
        assert resp.status == 400, await resp.text()
        error = await resp.json()
        assert error["schemas"] == [ERROR] and error["scimType"] == scim_type
    assert await snapshot(db, tenant.id) == before


@pytest.mark.parametrize(
    "query",
    [
        "filter=displayName eq",
        'filter=nope eq "x"',
        'filter=members[value eq "x"',
        "filter=members.value",
        'filter=meta.created gt "yesterday"',
        "startIndex=x",
        "count=1e9",
    ],
)
async def test_bad_list_queries_are_400(client, tenant, query):
    resp = await client.get(f"/scim/v2/Groups?{query}", headers=tenant.headers)
    assert resp.status == 400, await resp.text()
    assert (await resp.json())["schemas"] == [ERROR]


async def test_groups_need_a_token(client):
    resp = await client.get("/scim/v2/Groups")
    assert resp.status == 401 and (await resp.json())["schemas"] == [ERROR]


async def test_discovery_describes_groups(client, tenant):
    resp = await client.get("/scim/v2/ResourceTypes/Group", headers=tenant.headers)
    assert resp.status == 200
    rt = await resp.json()
    assert rt["endpoint"] == "/Groups" and rt["schema"] == GROUP
    resp = await client.get(f"/scim/v2/Schemas/{GROUP}", headers=tenant.headers)
    attrs = {a["name"]: a for a in (await resp.json())["attributes"]}
    assert attrs["displayName"]["required"] is True
    assert attrs["members"]["multiValued"] is True
    assert {s["name"] for s in attrs["members"]["subAttributes"]} == {"value", "$ref", "display", "type"}
