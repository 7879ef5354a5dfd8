"""sortBy/sortOrder, attributes/excludedAttributes on every User response, ETags, and POST searches."""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests.conftest import create_team, post_user, unique_email

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PRODUCT = "urn:scimsvc:schemas:extension:product:2.0:User"
SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"


async def names(resp: Any, key: str = "userName") -> list[str]:
    assert resp.status == 200, await resp.text()
    return [r.get(key) for r in (await resp.json())["Resources"]]


async def test_users_sort_by_user_name_ignores_case_both_ways(client, new_tenant):
    tenant = await new_tenant()
    tag = uuid.uuid4().hex[:6]
    for local in ("bob", "Alice", "carol"):
        await post_user(client, tenant, f"{local}.{tag}@example.com")
    resp = await client.get("/scim/v2/Users?sortBy=userName", headers=tenant.headers)
    assert [n.split(".")[0] for n in await names(resp)] == ["Alice", "bob", "carol"]
    resp = await client.get("/scim/v2/Users?sortBy=USERNAME&sortOrder=Descending", headers=tenant.headers)
    assert [n.split(".")[0] for n in await names(resp)] == ["carol", "bob", "Alice"]


async def test_users_without_the_sort_value_come_last_ascending_first_descending(client, new_tenant):
    tenant = await new_tenant()
    with_title = [await post_user(client, tenant, title=t) for t in ("b", "a")]
    without = await post_user(client, tenant)
    resp = await client.get("/scim/v2/Users?sortBy=title", headers=tenant.headers)
    ids = await names(resp, "id")
    assert ids == [with_title[1]["id"], with_title[0]["id"], without["id"]]
    resp = await client.get("/scim/v2/Users?sortBy=title&sortOrder=descending", headers=tenant.headers)
    assert await names(resp, "id") == [without["id"], with_title[0]["id"], with_title[1]["id"]]


async def test_sort_by_multi_valued_uses_the_primary_value_then_paging_is_stable(client, new_tenant):
    tenant = await new_tenant()
    a = await post_user(
        client,
        tenant,
        emails=[{"value": "z@example.com"}, {"value": "a-primary@example.com", "primary": True}],
    )
    b = await post_user(client, tenant, emails=[{"value": "m@example.com"}, {"value": "b@example.com"}])
    resp = await client.get("/scim/v2/Users?sortBy=emails", headers=tenant.headers)
    assert await names(resp, "id") == [a["id"], b["id"]]
    resp = await client.get("/scim/v2/Users?sortBy=emails.value&startIndex=2&count=1", headers=tenant.headers)
    assert await names(resp, "id") == [b["id"]]
    resp = await client.get(f"/scim/v2/Users?sortBy={ENTERPRISE}:department", headers=tenant.headers)
    assert resp.status == 200


async def test_sort_by_unknown_attribute_or_order_is_400_invalid_value(client, tenant):
    for query in ("sortBy=shoeSize", "sortBy=name", "sortBy=userName&sortOrder=up"):
        resp = await client.get(f"/scim/v2/Users?{query}", headers=tenant.headers)
        assert resp.status == 400, query
        assert (await resp.json())["scimType"] == "invalidValue"
    resp = await client.get("/scim/v2/Groups?sortBy=members", headers=tenant.headers)
    assert resp.status == 400 and (await resp.json())["scimType"] == "invalidValue"


async def test_groups_sort_by_display_name(client, new_tenant):
    tenant = await new_tenant()
    for name in ("beta", "Alpha", "gamma"):
        await create_team(client, tenant, name)
        resp = await client.post(
            "/scim/v2/Groups", json={"displayName": name, "members": []}, headers=tenant.headers
        )
        assert resp.status == 201
    resp = await client.get("/scim/v2/Groups?sortBy=displayName&sortOrder=descending", headers=tenant.headers)
    assert await names(resp, "displayName") == ["gamma", "beta", "Alpha"]


async def test_projection_applies_to_every_user_response(client, tenant):
    email = unique_email()
    body = {"userName": email, "displayName": "P", "emails": [{"value": email}], "title": "T"}
    resp = await client.post("/scim/v2/Users?attributes=userName", json=body, headers=tenant.headers)
    assert resp.status == 201
    created = await resp.json()
    assert set(created) == {"schemas", "id", "userName"}
    url = f"/scim/v2/Users/{created['id']}"

    resp = await client.get(f"{url}?excludedAttributes=emails,title,id", headers=tenant.headers)
    got = await resp.json()
    assert "emails" not in got and "title" not in got and got["id"] == created["id"]
    assert got["displayName"] == "P" and "meta" in got

    resp = await client.put(f"{url}?attributes=displayName", json=body, headers=tenant.headers)
    assert set(await resp.json()) == {"schemas", "id", "displayName"}

    patch = {"Operations": [{"op": "replace", "path": "title", "value": "U"}]}
    resp = await client.patch(f"{url}?attributes=title,name.givenName", json=patch, headers=tenant.headers)
    assert await resp.json() == {"schemas": created["schemas"], "id": created["id"], "title": "U"}

    resp = await client.get(
        f'/scim/v2/Users?attributes={PRODUCT}:provisioningState&filter=id eq "{created["id"]}"',
        headers=tenant.headers,
    )
    [listed] = (await resp.json())["Resources"]
    assert set(listed) == {"schemas", "id", PRODUCT}

    # `attributes` replaces the default set (RFC 7644 §3.9): naming only what a User does not have returns
    # what is always returned, not every attribute.
    resp = await client.get(f"{url}?attributes=nosuch,members", headers=tenant.headers)
    assert resp.status == 200 and await resp.json() == {"schemas": created["schemas"], "id": created["id"]}
    resp = await client.get(f"{url}?attributes=,", headers=tenant.headers)
    assert "userName" in await resp.json()  # nothing named: the default set


async def test_user_etags_on_patch_and_delete_compare_weakly(client, tenant, db):
    created = await post_user(client, tenant)
    url = f"/scim/v2/Users/{created['id']}"
    patch = {"Operations": [{"op": "replace", "path": "title", "value": "x"}]}
    resp = await client.patch(url, json=patch, headers={**tenant.headers, "If-Match": '"7"'})
    assert resp.status == 412 and (await resp.json())["scimType"] == "preconditionFailed"
    resp = await client.delete(url, headers={**tenant.headers, "If-Match": 'W/"7"'})
    assert resp.status == 412
    assert await db.fetchval("SELECT scim_linked FROM users WHERE id = $1::uuid", created["id"]) is True
    # The strong form of the current tag matches the weak one (RFC 7232 weak comparison).
    resp = await client.patch(url, json=patch, headers={**tenant.headers, "If-Match": '"1"'})
    assert resp.status == 200 and resp.headers["ETag"] == 'W/"2"'
    assert (await resp.json())["meta"]["version"] == 'W/"2"'
    resp = await client.get(url, headers={**tenant.headers, "If-None-Match": 'W/"1"'})
    assert resp.status == 200
    resp = await client.get(url, headers={**tenant.headers, "If-None-Match": 'W/"2"'})
    assert resp.status == 304
    resp = await client.delete(url, headers={**tenant.headers, "If-Match": 'W/"2"'})
    assert resp.status == 204


async def test_users_search_takes_a_search_request_body(client, new_tenant):
    tenant = await new_tenant()
    tag = uuid.uuid4().hex[:6]
    for local in ("b", "a", "c"):
        await post_user(client, tenant, f"{local}.{tag}@example.com", title="t" if local != "c" else "other")
    body = {
        "schemas": [SEARCH],
        "filter": 'title eq "t"',
        "sortBy": "userName",
        "sortOrder": "descending",
        "attributes": ["userName"],
        "startIndex": 1,
        "count": 10,
    }
    resp = await client.post("/scim/v2/Users/.search", json=body, headers=tenant.headers)
    got = await resp.json()
    assert resp.status == 200 and got["totalResults"] == 2
    assert [r["userName"].split(".")[0] for r in got["Resources"]] == ["b", "a"]
    assert all(set(r) == {"schemas", "id", "userName"} for r in got["Resources"])


async def test_search_bodies_that_are_wrong_get_scim_errors(client, tenant):
    for body, scim_type in (
        ([1], "invalidSyntax"),
        ({"schemas": ["urn:nope"]}, "invalidSyntax"),
        ({"count": "ten"}, "invalidValue"),
        ({"attributes": [1]}, "invalidValue"),
        ({"filter": "userName eq"}, "invalidFilter"),
        ({"filter": 'shoeSize eq "9"'}, "invalidFilter"),
    ):
        for path in ("/scim/v2/Users/.search", "/scim/v2/.search"):
            resp = await client.post(path, json=body, headers=tenant.headers)
            assert resp.status == 400, (path, body)
            assert (await resp.json())["scimType"] == scim_type, (path, body)


async def test_groups_search_and_root_search_page_across_both_types(client, new_tenant):
    tenant = await new_tenant()
    users = [await post_user(client, tenant) for _ in range(3)]
    groups = []
    for i in range(2):
        await create_team(client, tenant, f"team-{i}")
        resp = await client.post(
            "/scim/v2/Groups",
            json={"displayName": f"team-{i}", "members": [{"value": users[0]["id"]}]},
            headers=tenant.headers,
        )
        groups.append(await resp.json())

    resp = await client.post(
        "/scim/v2/Groups/.search",
        json={"schemas": [SEARCH], "filter": 'displayName eq "team-1"', "excludedAttributes": ["members"]},
        headers=tenant.headers,
    )
    got = await resp.json()
    assert got["totalResults"] == 1 and got["Resources"][0]["id"] == groups[1]["id"]
    assert "members" not in got["Resources"][0]

    seen = []
    for start in (1, 3, 5):
        resp = await client.post(
            "/scim/v2/.search", json={"startIndex": start, "count": 2}, headers=tenant.headers
        )
        page = await resp.json()
        assert page["totalResults"] == 5 and page["startIndex"] == start
        seen += [(r["meta"]["resourceType"], r["id"]) for r in page["Resources"]]
    assert seen == [("User", u["id"]) for u in users] + [("Group", g["id"]) for g in groups]

    # A filter only one type can take searches that type; one that fits neither is a 400.
    resp = await client.post(
        "/scim/v2/.search", json={"filter": f'userName eq "{users[1]["userName"]}"'}, headers=tenant.headers
    )
    assert [r["id"] for r in (await resp.json())["Resources"]] == [users[1]["id"]]
    resp = await client.post(
        "/scim/v2/.search",
        json={"filter": 'displayName sw "team-"', "sortBy": "displayName", "sortOrder": "descending"},
        headers=tenant.headers,
    )
    assert [r["id"] for r in (await resp.json())["Resources"]] == [groups[1]["id"], groups[0]["id"]]


def _paths() -> list[str]:
    from schemas.group import GROUP_RESOURCE
    from schemas.user import USER_RESOURCE

    names = []
    for rtype in (USER_RESOURCE, GROUP_RESOURCE):
        for schema in rtype.schemas:
            prefix = f"{schema.id}:" if schema is not rtype.core else ""
            for attr in schema.attributes:
                names.append(prefix + attr.name)
                names += [f"{prefix}{attr.name}.{sub.name}" for sub in attr.sub_attributes]
    return names


_NAMES = st.one_of(st.sampled_from(_paths()), st.text(max_size=12))


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(["/scim/v2/Users/.search", "/scim/v2/Groups/.search", "/scim/v2/.search"]),
    sort_by=_NAMES,
    sort_order=st.one_of(st.none(), st.sampled_from(["ascending", "DESCENDING", "sideways", ""])),
    attributes=st.lists(_NAMES, max_size=3),
    excluded=st.lists(_NAMES, max_size=3),
)
async def test_any_sort_and_projection_is_answered_never_a_500(
    client, tenant, path, sort_by, sort_order, attributes, excluded
):
    body = {
        "sortBy": sort_by,
        "sortOrder": sort_order,
        "attributes": attributes,
        "excludedAttributes": excluded,
    }
    resp = await client.post(path, json=body, headers=tenant.headers)
    assert resp.status in (200, 400), await resp.text()
    if resp.status == 400:
        assert (await resp.json())["scimType"] == "invalidValue"
