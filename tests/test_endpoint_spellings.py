"""SCIM endpoints as IdPs and their sample suites spell them: any case, with a trailing slash."""

from __future__ import annotations

from scimsvc.ratelimit.levels import LEVELS
from scimsvc.web.keys import METRICS
from tests.conftest import make_tenant, post_user, unique_email, user_body


def remaining(resp) -> int:
    return int(resp.headers["X-RateLimit-Remaining"])


async def test_lower_case_and_trailing_slash_reach_the_same_handlers(client, tenant):
    user = await post_user(client, tenant)
    expected = await (await client.get(f"/scim/v2/Users/{user['id']}", headers=tenant.headers)).json()
    for path in (
        f"/scim/v2/users/{user['id']}",
        f"/scim/v2/Users/{user['id']}/",
        f"/scim/v2/USERS/{user['id']}/",
    ):
        resp = await client.get(path, headers=tenant.headers)
        assert resp.status == 200, path
        assert await resp.json() == expected

    resp = await client.post("/scim/v2/users/", json=user_body(unique_email()), headers=tenant.headers)
    assert resp.status == 201
    created = await resp.json()
    resp = await client.patch(
        f"/scim/v2/users/{created['id']}",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "active", "value": False}],
        },
        headers=tenant.headers,
    )
    assert resp.status == 200 and (await resp.json())["active"] is False
    resp = await client.get(
        '/scim/v2/users?filter=userName eq "' + created["userName"] + '"', headers=tenant.headers
    )
    assert resp.status == 200 and (await resp.json())["totalResults"] == 1
    for path in (
        "/scim/v2/groups/",
        "/scim/v2/serviceproviderconfig",
        "/scim/v2/schemas",
        "/scim/v2/resourcetypes/",
    ):
        resp = await client.get(path, headers=tenant.headers)
        assert resp.status == 200, path
    resp = await client.post(
        "/scim/v2/users/.SEARCH",
        json={"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "count": 1},
        headers=tenant.headers,
    )
    assert resp.status == 200
    resp = await client.delete(f"/scim/v2/users/{created['id']}/", headers=tenant.headers)
    assert resp.status == 204


async def test_other_spellings_cost_what_the_endpoint_costs_and_are_counted_under_its_route(client):
    tenant = await make_tenant(client, rate_limit={"preset": "strict"})
    first = await client.get("/scim/v2/Users", headers=tenant.headers)
    resp = await client.get("/scim/v2/groups/", headers=tenant.headers)  # L4, as GET /Groups
    assert resp.status == 200
    assert remaining(first) - remaining(resp) >= LEVELS["L4"] - 100  # less at most a second's refill
    registry = client.app[METRICS].registry
    count = registry.get_sample_value(
        "scimsvc_http_requests_total", {"route": "/scim/v2/Groups", "method": "GET", "status": "200"}
    )
    assert count == 1


async def test_unknown_endpoints_and_wrong_methods_are_still_refused(client, tenant):
    resp = await client.get("/scim/v2/nothing", headers=tenant.headers)
    assert resp.status == 404 and (await resp.json())["status"] == "404"
    resp = await client.delete("/scim/v2/users", headers=tenant.headers)
    assert resp.status == 405 and "GET" in resp.headers["Allow"] and "POST" in resp.headers["Allow"]
    resp = await client.get("/scim/v2/users", headers={"Authorization": "Bearer scim_wrong"})
    assert resp.status == 401  # another spelling is no way around authentication
