"""Hostile request bodies: nesting up to the parser's limit and names given twice in different case get
a 4xx SCIM error, never a 500 or a traceback, and change nothing they were refused for."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from scimsvc.scim.body_shape import MAX_DEPTH, shape_error
from tests.conftest import create_team, post_user, unique_email, user_body

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
PARSER_LIMIT = 1024  # orjson's nesting limit: a deeper body is not JSON to it (400 already)


def nested(depth: int) -> bytes:
    """A JSON value of `depth` nested arrays around a string."""
    return b"[" * depth + b'"x"' + b"]" * depth


def patch_body(value: bytes) -> bytes:
    return b'{"schemas":["%s"],"Operations":[{"op":"add","path":"title","value":%s}]}' % (
        PATCH_OP.encode(),
        value,
    )


def unhandled(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("scimsvc")]


async def scim_error(resp: Any, status: int, *words: str) -> dict[str, Any]:
    text = await resp.text()
    assert resp.status == status, text
    assert "Traceback" not in text
    error = orjson.loads(text)
    assert error["schemas"] == [ERROR_SCHEMA] and error["status"] == str(status), error
    for word in words:
        assert word in error["detail"], error
    return error


async def user_row(db: Any, user_id: str) -> tuple[Any, ...]:
    row = await db.fetchrow("SELECT version, resource::text FROM users WHERE id = $1::uuid", user_id)
    return tuple(row)


async def post_group(client: Any, tenant: Any) -> dict[str, Any]:
    name = await create_team(client, tenant, "team-" + unique_email("g").split("@")[0])
    resp = await client.post(
        "/scim/v2/Groups",
        json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": name["name"]},
        headers=tenant.headers,
    )
    assert resp.status == 201, await resp.text()
    return await resp.json()


# --- nesting ------------------------------------------------------------------------------------


@pytest.mark.parametrize("resource", ["Users", "Groups"])
async def test_a_patch_nested_500_deep_is_a_400_naming_the_limit(client, tenant, db, caplog, resource):
    target = await post_user(client, tenant) if resource == "Users" else await post_group(client, tenant)
    version = {
        "Users": "SELECT version FROM users WHERE id = $1::uuid",
        "Groups": "SELECT version FROM groups WHERE id = $1::uuid",
    }[resource]
    before = await db.fetchval(version, target["id"])
    resp = await client.patch(
        f"/scim/v2/{resource}/{target['id']}", data=patch_body(nested(500)), headers=tenant.headers
    )
    error = await scim_error(resp, 400, str(MAX_DEPTH), "levels deep")
    assert error["scimType"] == "invalidSyntax"
    assert await db.fetchval(version, target["id"]) == before
    assert not unhandled(caplog)


async def test_a_user_nested_deep_is_a_400_and_not_created(client, tenant, db, caplog):
    name = unique_email()
    body = orjson.dumps(user_body(name, title="PLACEHOLDER")).replace(b'"PLACEHOLDER"', nested(600))
    resp = await client.post("/scim/v2/Users", data=body, headers=tenant.headers)
    await scim_error(resp, 400, str(MAX_DEPTH))
    assert await db.fetchval("SELECT count(*) FROM users WHERE user_name = $1", name) == 0
    assert not unhandled(caplog)


async def test_a_deep_bulk_operation_is_its_own_400_after_an_earlier_create(client, tenant, db, caplog):
    first, second = unique_email(), unique_email()
    body = orjson.dumps(
        {
            "schemas": [BULK_REQUEST],
            "Operations": [
                {"method": "POST", "path": "/Users", "bulkId": "a", "data": user_body(first)},
                {"method": "POST", "path": "/Users", "bulkId": "b", "data": user_body(second, title="DEEP")},
            ],
        }
    ).replace(b'"DEEP"', nested(500))
    resp = await client.post("/scim/v2/Bulk", data=body, headers=tenant.headers)
    assert resp.status == 200, await resp.text()
    answer = await resp.json()
    a, b = answer["Operations"]
    assert a["status"] == "201" and a["bulkId"] == "a", a
    assert b["status"] == "400" and b["bulkId"] == "b", b
    assert b["response"]["schemas"] == [ERROR_SCHEMA] and str(MAX_DEPTH) in b["response"]["detail"]
    assert "Operations[1]" in b["response"]["detail"]
    names = await db.fetch("SELECT id::text, user_name FROM users WHERE tenant_id = $1::uuid", tenant.id)
    assert {(r["id"], r["user_name"]) for r in names} == {(a["location"].rsplit("/", 1)[1], first)}
    assert not unhandled(caplog)


async def test_a_bulk_patch_nested_260_deep_on_a_rate_limited_tenant_is_not_a_500(
    client, new_tenant, db, caplog
):
    tenant = await new_tenant(rate_limit={"preset": "strict"})
    user = await post_user(client, tenant)
    before = await user_row(db, user["id"])
    op = b'{"method":"PATCH","path":"/Users/%s","data":%s}' % (user["id"].encode(), patch_body(nested(260)))
    body = b'{"Operations":[%s]}' % op
    resp = await client.post("/scim/v2/Bulk", data=body, headers=tenant.headers)
    assert resp.status == 200, await resp.text()
    (result,) = (await resp.json())["Operations"]
    assert result["status"] == "400" and str(MAX_DEPTH) in result["response"]["detail"], result
    assert await user_row(db, user["id"]) == before
    assert not unhandled(caplog)


async def test_a_body_at_the_depth_limit_is_accepted(client, tenant, db):
    user, manager = await post_user(client, tenant), await post_user(client, tenant)
    # {"Operations": [{"value": {"urn...:User": {"manager": {"value": id}}}}]}: 6 levels, well inside.
    value = {
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"manager": {"value": manager["id"]}}
    }
    body = {"schemas": [PATCH_OP], "Operations": [{"op": "add", "value": value}]}
    resp = await client.patch(f"/scim/v2/Users/{user['id']}", json=body, headers=tenant.headers)
    assert resp.status == 200, await resp.text()
    # A body exactly MAX_DEPTH deep is past the checks (then refused by the schema, not by its depth).
    title = nested(MAX_DEPTH - 3)  # body {"Operations": [{"value": ...}]} adds three levels
    resp = await client.patch(f"/scim/v2/Users/{user['id']}", data=patch_body(title), headers=tenant.headers)
    assert resp.status == 400 and "levels deep" not in (await resp.json())["detail"]
    resp = await client.patch(
        f"/scim/v2/Users/{user['id']}", data=patch_body(nested(MAX_DEPTH - 2)), headers=tenant.headers
    )
    await scim_error(resp, 400, "levels deep")


deep_enough = st.integers(min_value=1, max_value=PARSER_LIMIT)


@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(depth=deep_enough, where=st.sampled_from(["patch", "bulk", "user"]))
async def test_no_nesting_up_to_the_parsers_limit_is_a_5xx(client, tenant, depth, where):
    value = nested(depth)
    if where == "patch":
        user = await post_user(client, tenant)
        resp = await client.patch(
            f"/scim/v2/Users/{user['id']}", data=patch_body(value), headers=tenant.headers
        )
    elif where == "bulk":
        user = await post_user(client, tenant)
        op = b'{"method":"PATCH","path":"/Users/%s","data":%s}' % (user["id"].encode(), patch_body(value))
        resp = await client.post("/scim/v2/Bulk", data=b'{"Operations":[%s]}' % op, headers=tenant.headers)
    else:
        body = orjson.dumps(user_body(unique_email(), title="V")).replace(b'"V"', value)
        resp = await client.post("/scim/v2/Users", data=body, headers=tenant.headers)
    text = await resp.text()
    assert resp.status < 500, text
    assert '"500"' not in text and "Traceback" not in text


# --- names given twice in different case ----------------------------------------------------------


async def test_a_bulk_operation_naming_path_twice_is_its_own_400_and_priced_as_such(client, new_tenant, db):
    tenant = await new_tenant(rate_limit={"credits_per_30s": 2000})  # one group push (L4) empties it
    group = await post_group(client, tenant)
    before = await db.fetchval("SELECT version FROM groups WHERE id = $1::uuid", group["id"])
    push = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": group["displayName"]}
    body = {
        "Operations": [
            {"method": "PUT", "path": f"/Groups/{group['id']}", "Path": "/x", "data": push},
        ]
    }
    # Priced as what runs, a malformed operation (L1): three in a row fit the budget. Priced as the push
    # it used to run as, the second would wait for a full bucket (429).
    for _ in range(3):
        resp = await client.post("/scim/v2/Bulk", json=body, headers=tenant.headers)
        assert resp.status == 200, await resp.text()
        (result,) = (await resp.json())["Operations"]
        assert result["status"] == "400", result
        detail = result["response"]["detail"]
        assert '"path" and "Path"' in detail and "Operations[0]" in detail and "case-insensitive" in detail
    assert await db.fetchval("SELECT version FROM groups WHERE id = $1::uuid", group["id"]) == before


async def test_a_bulk_request_naming_operations_twice_is_a_400(client, tenant, db):
    name = unique_email()
    op = {"method": "POST", "path": "/Users", "data": user_body(name)}
    body = {"schemas": [BULK_REQUEST], "Operations": [op], "operations": [op]}
    resp = await client.post("/scim/v2/Bulk", json=body, headers=tenant.headers)
    await scim_error(resp, 400, '"Operations" and "operations"')
    assert await db.fetchval("SELECT count(*) FROM users WHERE user_name = $1", name) == 0


async def test_bulk_data_naming_an_attribute_twice_is_that_operations_400(client, tenant, db):
    first, second = unique_email(), unique_email()
    body = {
        "Operations": [
            {"method": "POST", "path": "/Users", "data": user_body(first)},
            {"method": "POST", "path": "/Users", "data": {**user_body(second), "UserName": unique_email()}},
        ]
    }
    resp = await client.post("/scim/v2/Bulk", json=body, headers=tenant.headers)
    a, b = (await resp.json())["Operations"]
    assert a["status"] == "201" and b["status"] == "400", b
    assert '"userName" and "UserName"' in b["response"]["detail"]
    names = await db.fetch("SELECT user_name FROM users WHERE tenant_id = $1::uuid", tenant.id)
    assert {r["user_name"] for r in names} == {first}


async def test_a_patch_operation_naming_value_twice_is_a_400(client, tenant, db):
    user = await post_user(client, tenant)
    before = await user_row(db, user["id"])
    body = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "path": "title", "value": "a", "Value": "b"}],
    }
    resp = await client.patch(f"/scim/v2/Users/{user['id']}", json=body, headers=tenant.headers)
    error = await scim_error(resp, 400, '"value" and "Value"', "Operations[0]")
    assert error["scimType"] == "invalidSyntax"
    assert await user_row(db, user["id"]) == before


async def test_a_user_naming_an_attribute_twice_is_a_400(client, tenant, db):
    name = unique_email()
    body = {**user_body(name), "name": {"givenName": "Ada", "GivenName": "Eve"}}
    resp = await client.post("/scim/v2/Users", json=body, headers=tenant.headers)
    await scim_error(resp, 400, '"givenName" and "GivenName"', "in name")
    assert await db.fetchval("SELECT count(*) FROM users WHERE user_name = $1", name) == 0


# --- the check itself (pure) ----------------------------------------------------------------------


def test_the_shape_check_is_iterative_and_names_where_the_problem_is():
    deep: list[Any] = []
    inner = deep
    for _ in range(100_000):  # far past the recursion limit: the check must not recurse
        inner.append([])
        inner = inner[0]
    error = shape_error(deep)
    assert error is not None and error.scim_type == "invalidSyntax" and "32 levels deep" in error.detail
    twice = shape_error({"a": [{"b": {"x": 1, "X": 2}}]})
    assert twice is not None and '"x" and "X" in a[0].b' in twice.detail
    assert shape_error({"a": {"x": 1, "X": 2}}, names=False) is None
    assert shape_error(orjson.loads(nested(MAX_DEPTH))) is None  # exactly at the limit
    assert shape_error(orjson.loads(nested(MAX_DEPTH + 1))) is not None
    # Flat objects in a list (a push's members) are checked in place: names twice, two or more members.
    pair = shape_error({"members": [{"value": "a"}, {"value": "b", "Value": "c"}]})
    assert pair is not None and '"value" and "Value" in members[1]' in pair.detail
    three = shape_error({"members": [{"value": "a", "display": "A", "DISPLAY": "B"}]})
    assert three is not None and "members[0]" in three.detail
    assert shape_error({"members": [{"value": "a", "display": "A"}] * 1000}) is None
    # A flat object in a list counts its levels like any other: at the limit accepted, one past refused.
    at_limit = orjson.loads(nested(MAX_DEPTH - 2).replace(b'"x"', b'[{"a": 1}]', 1))
    past_limit = orjson.loads(nested(MAX_DEPTH - 1).replace(b'"x"', b'[{"a": 1}]', 1))
    assert shape_error(at_limit) is None and shape_error(past_limit) is not None
