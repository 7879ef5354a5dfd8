"""POST /Bulk (RFC 7644 §3.7): operations through the usual services, bulkId references, limits, prices."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from scimsvc.ratelimit.levels import LEVELS, bulk_credits
from scimsvc.scim.bulk import BULK_REQUEST, parse_bulk_request, plan
from scimsvc.web.app import create_app
from tests.conftest import create_team, make_tenant, post_user, run_worker, unique_email, user_body

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def bulk(*operations: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"schemas": [BULK_REQUEST], "Operations": list(operations), **extra}


async def post_bulk(client: Any, tenant: Any, body: Any) -> tuple[int, dict[str, Any]]:
    resp = await client.post("/scim/v2/Bulk", json=body, headers=tenant.headers)
    return resp.status, await resp.json()


async def test_group_with_members_created_in_the_same_request(client, tenant, db, settings):
    await create_team(client, tenant, "Bulk team")
    emails = [unique_email("bulk") for _ in range(2)]
    # The group comes first in the request: it waits for the users it references.
    status, body = await post_bulk(
        client,
        tenant,
        bulk(
            {
                "method": "POST",
                "path": "/Groups",
                "bulkId": "g",
                "data": {
                    "displayName": "Bulk team",
                    "members": [{"value": "bulkId:u0"}, {"value": "bulkId:u1"}],
                },
            },
            *(
                {"method": "POST", "path": "/Users", "bulkId": f"u{i}", "data": user_body(email)}
                for i, email in enumerate(emails)
            ),
        ),
    )
    assert status == 200
    ops = body["Operations"]
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:BulkResponse"]
    assert [(o["bulkId"], o["status"]) for o in ops] == [("g", "201"), ("u0", "201"), ("u1", "201")]
    assert all(o["version"] == 'W/"1"' and o["location"].startswith("http://scim.test/scim/v2/") for o in ops)
    group_id = ops[0]["location"].rsplit("/", 1)[1]
    user_ids = {o["location"].rsplit("/", 1)[1] for o in ops[1:]}
    rows = await db.fetch("SELECT user_id::text FROM group_members WHERE group_id = $1::uuid", group_id)
    assert {r["user_id"] for r in rows} == user_ids
    names = await db.fetch("SELECT user_name FROM users WHERE id = ANY($1::uuid[])", list(user_ids))
    assert {r["user_name"] for r in names} == set(emails)

    await run_worker(settings)
    team_members = await db.fetchval(
        "SELECT count(*) FROM team_members tm JOIN teams t ON t.id = tm.team_id "
        "WHERE t.tenant_id = $1::uuid AND t.name = 'Bulk team'",
        tenant.id,
    )
    assert team_members == 2


async def test_put_patch_delete_with_versions_and_per_operation_errors(client, tenant, db):
    user = await post_user(client, tenant)
    other = await post_user(client, tenant)
    uid = user["id"]
    status, body = await post_bulk(
        client,
        tenant,
        bulk(
            {
                "method": "PATCH",
                "path": f"/Users/{uid}",
                "version": 'W/"1"',
                "data": {
                    "schemas": [PATCH_OP],
                    "Operations": [{"op": "replace", "path": "title", "value": "A"}],
                },
            },
            {
                "method": "PUT",
                "path": f"/Users/{uid}",
                "version": 'W/"1"',
                "data": user_body(user["userName"]),
            },
            {"method": "DELETE", "path": f"/Users/{other['id']}", "version": 'W/"1"'},
            {"method": "DELETE", "path": "/Users/not-a-user"},
            {"method": "PUT", "path": f"/Users/{uid}", "data": {"userName": "not an email"}},
        ),
    )
    assert status == 200
    ops = body["Operations"]
    assert [o["status"] for o in ops] == ["200", "412", "204", "404", "400"]
    assert ops[0]["version"] == 'W/"2"'
    assert ops[1]["response"]["scimType"] == "preconditionFailed"
    assert ops[4]["response"]["scimType"] == "invalidValue"
    assert "response" not in ops[0]
    row = await db.fetchrow("SELECT version, resource->>'title' AS title FROM users WHERE id = $1::uuid", uid)
    assert (row["version"], row["title"]) == (2, "A")
    assert await db.fetchval("SELECT scim_linked FROM users WHERE id = $1::uuid", other["id"]) is False


async def test_fail_on_errors_stops_processing(client, tenant, db):
    tag = uuid.uuid4().hex[:8]
    ops = [
        {"method": "POST", "path": "/Users", "bulkId": "bad", "data": {"userName": "nope"}},
        {"method": "DELETE", "path": "/Users/unknown"},
        {"method": "POST", "path": "/Users", "bulkId": "late", "data": user_body(f"late.{tag}@example.com")},
    ]
    status, body = await post_bulk(client, tenant, bulk(*ops, failOnErrors=2))
    assert status == 200
    assert [o["status"] for o in body["Operations"]] == ["400", "404"]
    assert (
        await db.fetchval("SELECT count(*) FROM users WHERE user_name = $1", f"late.{tag}@example.com") == 0
    )
    status, body = await post_bulk(client, tenant, bulk(*ops))
    assert [o["status"] for o in body["Operations"]] == ["400", "404", "201"]


async def test_unresolvable_and_circular_bulk_ids_are_409(client, tenant, db):
    enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    a, b = unique_email("a"), unique_email("b")
    status, body = await post_bulk(
        client,
        tenant,
        bulk(
            {
                "method": "POST",
                "path": "/Users",
                "bulkId": "a",
                "data": user_body(a, **{enterprise: {"manager": {"value": "bulkId:b"}}}),
            },
            {
                "method": "POST",
                "path": "/Users",
                "bulkId": "b",
                "data": user_body(b, **{enterprise: {"manager": {"value": "bulkId:a"}}}),
            },
            {"method": "PATCH", "path": "/Groups/bulkId:nowhere", "data": {"Operations": []}},
            {"method": "POST", "path": "/Users", "bulkId": "c", "data": {"userName": "bad"}},
            {"method": "PUT", "path": "/Users/bulkId:c", "data": user_body(unique_email())},
        ),
    )
    assert status == 200
    ops = body["Operations"]
    assert [o["status"] for o in ops] == ["409", "409", "409", "400", "409"]
    assert all(o["response"]["scimType"] == "invalidValue" for i, o in enumerate(ops) if i != 3)
    assert "circular" in ops[0]["response"]["detail"] and "bulkId:nowhere" in ops[2]["response"]["detail"]
    assert await db.fetchval("SELECT count(*) FROM users WHERE user_name = ANY($1)", [a, b]) == 0


async def test_malformed_operations_are_their_own_400s(client, tenant):
    status, body = await post_bulk(
        client,
        tenant,
        bulk(
            "not an object",
            {"method": "GET", "path": "/Users"},
            {"method": "POST", "path": "/Widgets", "data": {}},
            {"method": "POST", "path": "/Users/123", "data": {}},
            {"method": "PATCH", "path": "/Users"},
            {"method": "PUT", "path": "/Users/x"},
            {"method": "POST", "path": "/Users", "bulkId": "dup", "data": user_body(unique_email())},
            {"method": "POST", "path": "/Users", "bulkId": "dup", "data": user_body(unique_email())},
        ),
    )
    assert status == 200
    assert [o["status"] for o in body["Operations"]] == ["400"] * 6 + ["201", "400"]


async def test_whole_request_errors(client, tenant):
    for raw, code, scim_type in (
        ([], 400, "invalidSyntax"),
        ({"schemas": ["urn:nope"], "Operations": []}, 400, "invalidSyntax"),
        ({"Operations": "x"}, 400, "invalidSyntax"),
        ({"Operations": [], "failOnErrors": 0}, 400, "invalidValue"),
    ):
        status, body = await post_bulk(client, tenant, raw)
        assert (status, body.get("scimType")) == (code, scim_type), raw
    status, body = await post_bulk(client, tenant, bulk())
    assert status == 200 and body["Operations"] == []


async def test_limits_are_advertised_and_enforced_with_413(aiohttp_client, settings):
    from dataclasses import replace

    small = replace(settings, bulk_max_operations=2, bulk_max_payload_bytes=600)
    client = await aiohttp_client(create_app(small))
    tenant = await make_tenant(client)
    resp = await client.get("/scim/v2/ServiceProviderConfig", headers=tenant.headers)
    config = await resp.json()
    assert config["bulk"] == {"supported": True, "maxOperations": 2, "maxPayloadSize": 600}
    three = bulk(*({"method": "DELETE", "path": f"/Users/{i}"} for i in range(3)))
    status, body = await post_bulk(client, tenant, three)
    assert status == 413 and body["status"] == "413" and "maxOperations" in body["detail"]
    big = bulk({"method": "POST", "path": "/Users", "bulkId": "x", "data": user_body("a" * 600 + "@x.com")})
    status, body = await post_bulk(client, tenant, big)
    assert status == 413 and "maxPayloadSize" in body["detail"]


async def test_a_bulk_refused_for_its_size_or_shape_gets_413_or_400_and_costs_nothing(
    aiohttp_client, settings
):
    from dataclasses import replace

    small = replace(settings, bulk_max_operations=2, bulk_max_payload_bytes=600)
    client = await aiohttp_client(create_app(small))
    tenant = await make_tenant(client, rate_limit={"preset": "strict"})  # 10,000 credits per 30 s
    # Priced as its operations, each of these would cost 1,500 credits: ten of them, 15,000.
    three = bulk(*({"method": "DELETE", "path": f"/Users/{i}"} for i in range(3)))
    for _ in range(10):
        resp = await client.post("/scim/v2/Bulk", json=three, headers=tenant.headers)
        assert resp.status == 413 and "Retry-After" not in resp.headers
        resp = await client.post("/scim/v2/Bulk", data=b"{not json", headers=tenant.headers)
        assert resp.status == 400
    resp = await client.get("/scim/v2/Users", headers=tenant.headers)
    assert resp.status == 200
    assert int(resp.headers["X-RateLimit-Remaining"]) == 10_000 - LEVELS["L1"]  # only this GET was charged


async def test_a_bulk_costs_the_sum_of_its_operations(client, new_tenant):
    tenant = await new_tenant(rate_limit={"credits_per_30s": 3000})
    user = await post_user(client, tenant)
    body = bulk(
        {"method": "POST", "path": "/Users", "bulkId": "n", "data": user_body(unique_email())},  # L1
        {"method": "PATCH", "path": f"/Users/{user['id']}", "data": {"Operations": []}},  # L2
        {"method": "DELETE", "path": f"/Users/{user['id']}"},  # L3
    )
    resp = await client.post("/scim/v2/Bulk", json=body, headers=tenant.headers)
    before = int(resp.headers["X-RateLimit-Remaining"])
    resp = await client.post("/scim/v2/Bulk", json=body, headers=tenant.headers)
    after = int(resp.headers["X-RateLimit-Remaining"])
    # L1 + L2 + L3, less what the bucket refilled between the two calls (0.1 credit per ms).
    assert 600 < before - after <= 50 + 100 + 500


def test_bulk_credits_price_each_operation_like_its_single_request():
    small_patch = {"Operations": [{"op": "add", "path": "members", "value": [{"value": "x"}]}]}
    big_patch = {"Operations": [{"op": "add", "path": "members", "value": [{"value": "x" * 40}] * 20}]}
    body = bulk(
        {"method": "POST", "path": "/Users", "data": {}},
        {"method": "put", "path": "/Users/1", "data": {}},
        {"method": "PATCH", "path": "/Groups/1", "data": small_patch},
        {"method": "PATCH", "path": "/Groups/bulkId:g", "data": big_patch},
        {"method": "POST", "path": "/Groups", "data": {}},
        {"method": "DELETE", "path": "/Groups/2"},
        "junk",
    )
    assert credits(body) == 50 + 100 + 100 + 2000 + 500 + 500 + 50
    assert credits(bulk()) == LEVELS["L1"]
    deep: object = "x"
    for _ in range(300):  # deeper than any SCIM body: refused by the parser, so priced as malformed
        deep = [deep]
    deep_patch = {"Operations": [{"op": "add", "path": "title", "value": deep}]}
    assert credits(bulk({"method": "PATCH", "path": "/Groups/1", "data": deep_patch})) == LEVELS["L1"]


def credits(body: dict) -> int:
    return bulk_credits(parse_bulk_request(body, max_operations=1000).operations)


def test_plan_runs_referenced_posts_first_and_keeps_request_order_otherwise():
    request = parse_bulk_request(
        bulk(
            {"method": "PATCH", "path": "/Groups/bulkId:g", "data": {"members": [{"value": "bulkId:u2"}]}},
            {
                "method": "POST",
                "path": "/Groups",
                "bulkId": "g",
                "data": {"members": [{"value": "bulkId:u1"}]},
            },
            {"method": "POST", "path": "/Users", "bulkId": "u1", "data": {}},
            {"method": "DELETE", "path": "/Users/x"},
            {"method": "POST", "path": "/Users", "bulkId": "u2", "data": {}},
        ),
        max_operations=10,
    )
    assert [op.index for op in plan(request.operations)] == [2, 1, 3, 4, 0]


operation = st.one_of(
    st.dictionaries(
        st.sampled_from(["method", "path", "bulkId", "version", "data", "METHOD", "Path"]),
        st.one_of(
            st.sampled_from(
                ["POST", "PUT", "PATCH", "DELETE", "get", "/Users", "/Groups", "/Users/bulkId:a"]
            ),
            st.sampled_from(["/Groups/bulkId:b", "bulkId:a", "a", "b", 'W/"1"']),
            st.dictionaries(
                st.sampled_from(["userName", "displayName", "Operations", "members"]),
                st.one_of(st.text(max_size=5), st.lists(st.just({"value": "bulkId:a"}))),
            ),
            st.integers(-(2**63), 2**63 - 1),
            st.none(),
        ),
        max_size=5,
    ),
    st.text(max_size=3),
    st.integers(-(2**63), 2**63 - 1),
)


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(operation, max_size=6), fail_on_errors=st.one_of(st.none(), st.integers(1, 3)))
async def test_any_bulk_body_gets_an_answer_never_a_500(client, tenant, ops, fail_on_errors):
    body: dict[str, Any] = bulk(*ops)
    if fail_on_errors is not None:
        body["failOnErrors"] = fail_on_errors
    resp = await client.post("/scim/v2/Bulk", data=orjson.dumps(body), headers=tenant.headers)
    assert resp.status == 200, await resp.text()
    answer = await resp.json()
    assert len(answer["Operations"]) <= len(ops)
    assert all(o["status"] != "500" for o in answer["Operations"]), answer


async def test_a_bulk_dearer_than_the_budget_costs_the_whole_budget(client, new_tenant):
    tenant = await new_tenant(rate_limit={"credits_per_30s": 2000})
    body = bulk(*({"method": "DELETE", "path": f"/Users/{uuid.uuid4()}"} for _ in range(10)))  # 10 x L3
    resp = await client.post("/scim/v2/Bulk", json=body, headers=tenant.headers)
    assert resp.status == 200 and int(resp.headers["X-RateLimit-Remaining"]) < 20
    resp = await client.post("/scim/v2/Bulk", json=body, headers=tenant.headers)
    assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 29
    assert "costs 2000" in (await resp.json())["detail"]
