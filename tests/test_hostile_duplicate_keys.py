"""Generated: a JSON body that names one member twice in different case is refused, wherever the name is.

SCIM attribute names are case-insensitive (RFC 7643 §2.1), so `"userName"` and `"USERNAME"` in one object
are the same attribute given twice; `scimsvc.scim.body_shape` refuses such a body with a 400 before
anything runs (in /Bulk, the one operation that holds it). Admin payloads are case-sensitive and refuse
an unknown field, so the second spelling is a 400 there too. For every body kind the service reads as
JSON, each example takes a body the service accepts, picks a member at any depth, and adds a second
spelling of its name (letters flipped at random) with a value of its own, before or after it, as raw JSON
text (a dict cannot hold both). The answer is a SCIM error naming the name, never a 5xx, and the database
is unchanged. A /Bulk operation refused this way costs what runs: an operation that is not one (L1).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ADMIN_HEADERS, Tenant, create_team, post_user, unique_email, user_body
from tests.test_hostile_bodies import BULK_REQUEST, ERROR_SCHEMA, PATCH_OP, post_group, scim_error, unhandled

GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
ADMIN_JSON = {**ADMIN_HEADERS, "Content-Type": "application/json"}
CAPACITY = 2000  # the smallest budget a tenant can have: one L4 request
L1, L3 = 50, 500  # scimsvc.ratelimit.levels.LEVELS: a malformed /Bulk operation, a DELETE


def examples(n: int) -> settings:
    """Hypothesis settings of these tests: `n` examples, on fixtures made once per test."""
    return settings(
        max_examples=n, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )


# Every row a request could write, for the tenant it is about, and how many tenants there are.
SNAPSHOT = """
WITH t AS (SELECT $1::uuid AS id)
SELECT (SELECT count(*) FROM tenants),
       (SELECT md5(x::text) FROM tenants x, t WHERE x.id = t.id),
       (SELECT md5(string_agg(x::text, '|' ORDER BY x.id)) FROM scim_tokens x, t WHERE x.tenant_id = t.id),
       (SELECT md5(string_agg(x::text, '|' ORDER BY x.id)) FROM users x, t WHERE x.tenant_id = t.id),
       (SELECT md5(string_agg(x::text, '|' ORDER BY x.id)) FROM outbox x, t WHERE x.tenant_id = t.id),
       (SELECT md5(string_agg(x::text, '|' ORDER BY x.id)) FROM audit_log x, t WHERE x.tenant_id = t.id),
       (SELECT md5(string_agg(x::text, '|' ORDER BY x.id)) FROM notices x, t WHERE x.tenant_id = t.id),
       (SELECT md5(string_agg(x::text, '|' ORDER BY x.id)) FROM teams x, t WHERE x.tenant_id = t.id),
       (SELECT md5(string_agg(x::text, '|' ORDER BY x.id)) FROM boards x, t WHERE x.tenant_id = t.id),
       (SELECT md5(string_agg(x::text, '|' ORDER BY x.id)) FROM groups x, t WHERE x.tenant_id = t.id),
       (SELECT md5(string_agg(x::text, '|' ORDER BY x.team_id, x.user_id))
          FROM team_members x JOIN teams y ON y.id = x.team_id, t WHERE y.tenant_id = t.id),
       (SELECT md5(string_agg(x::text, '|' ORDER BY x.group_id, x.user_id))
          FROM group_members x JOIN groups y ON y.id = x.group_id, t WHERE y.tenant_id = t.id)
"""


async def snapshot(db: Any, tenant: Tenant) -> tuple[Any, ...]:
    return tuple(await db.fetchrow(SNAPSHOT, tenant.id))


@dataclass(frozen=True)
class World:
    """A tenant with what every body kind refers to."""

    tenant: Tenant
    user: dict[str, Any]  # PUT, PATCH, license, owns boards
    member: dict[str, Any]  # goes into groups
    team: dict[str, Any]  # no group links it yet: POST /Groups links it, the Teams API renames it
    group: dict[str, Any]  # linked to a team of its own


@pytest.fixture
async def world(client: Any, tenant: Tenant) -> World:
    user, member = await post_user(client, tenant), await post_user(client, tenant)
    team = await create_team(client, tenant, "free-" + unique_email("t").split("@")[0])
    return World(tenant, user, member, team, await post_group(client, tenant))


# --- Bodies the service accepts, one per kind: (method, path, body) --------------------------------


def new_user(w: World) -> dict[str, Any]:
    return user_body(
        unique_email(),
        title="Engineer",
        **{ENTERPRISE: {"department": "R&D", "manager": {"value": w.member["id"]}}},
    )


def user_patch(w: World) -> dict[str, Any]:
    return {
        "schemas": [PATCH_OP],
        "Operations": [
            {"op": "replace", "path": "title", "value": "Lead"},
            {"op": "add", "value": {"name": {"givenName": "Grace"}, ENTERPRISE: {"department": "Ops"}}},
        ],
    }


def group_patch(w: World) -> dict[str, Any]:
    return {
        "schemas": [PATCH_OP],
        "Operations": [
            {"op": "add", "path": "members", "value": [{"value": w.member["id"]}, {"value": w.user["id"]}]},
            {"op": "replace", "path": "externalId", "value": "ext-1"},
        ],
    }


def search(filter_text: str, sort_by: str) -> dict[str, Any]:
    return {
        "schemas": [SEARCH_REQUEST],
        "filter": filter_text,
        "attributes": ["id", "meta"],
        "sortBy": sort_by,
        "sortOrder": "descending",
        "startIndex": 1,
        "count": 5,
    }


Kind = Callable[[World], tuple[str, str, Any]]

RESOURCE_KINDS: dict[str, Kind] = {
    "POST /Users": lambda w: ("POST", "/Users", new_user(w)),
    "PUT /Users": lambda w: ("PUT", f"/Users/{w.user['id']}", user_body(w.user["userName"], title="Lead")),
    "PATCH /Users": lambda w: ("PATCH", f"/Users/{w.user['id']}", user_patch(w)),
    "POST /Groups": lambda w: (
        "POST",
        "/Groups",
        {"schemas": [GROUP], "displayName": w.team["name"], "members": [{"value": w.member["id"]}]},
    ),
    "PUT /Groups": lambda w: (
        "PUT",
        f"/Groups/{w.group['id']}",
        {
            "schemas": [GROUP],
            "displayName": w.group["displayName"],
            "members": [{"value": w.member["id"], "display": w.member["userName"]}],
        },
    ),
    "PATCH /Groups": lambda w: ("PATCH", f"/Groups/{w.group['id']}", group_patch(w)),
}
SEARCH_KINDS: dict[str, Kind] = {
    "POST /Users/.search": lambda w: ("POST", "/Users/.search", search('userName sw "user."', "userName")),
    "POST /Groups/.search": lambda w: (
        "POST",
        "/Groups/.search",
        search('displayName pr and not (displayName eq "x")', "displayName"),
    ),
    "POST /.search": lambda w: ("POST", "/.search", search('meta.created gt "2000-01-01T00:00:00Z"', "id")),
}


def tid(w: World) -> str:
    return f"/admin/v1/tenants/{w.tenant.id}"


ADMIN_KINDS: dict[str, Kind] = {
    "POST tenants": lambda w: (
        "POST",
        "/admin/v1/tenants",
        {
            "name": "t-" + unique_email("t").split("@")[0],
            "seats": 5,
            "flexible_licenses": False,
            "allowed_domains": ["example.com"],
            "rate_limit": {"preset": "default"},
        },
    ),
    "PATCH tenant": lambda w: (
        "PATCH",
        tid(w),
        {"seats": 7, "default_license": "free", "rate_limit": {"credits_per_30s": 400_000}},
    ),
    "PUT tenant scim": lambda w: ("PUT", f"{tid(w)}/scim", {"enabled": True}),
    "PUT user license": lambda w: ("PUT", f"{tid(w)}/users/{w.user['id']}/license", {"license": "free"}),
    "POST teams": lambda w: ("POST", f"{tid(w)}/teams", {"name": "new-" + unique_email("t").split("@")[0]}),
    "PATCH team": lambda w: ("PATCH", f"{tid(w)}/teams/{w.team['id']}", {"name": w.team["name"] + "-2"}),
    "POST boards": lambda w: (
        "POST",
        f"{tid(w)}/boards",
        {"title": "Roadmap", "team_id": w.team["id"], "owner_id": w.user["id"]},
    ),
}


def bulk_of(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [BULK_REQUEST], "failOnErrors": 1, "Operations": list(operations)}


def bulk_operation(kind: str, w: World) -> dict[str, Any]:
    """One /Bulk operation: a resource kind's request, or a DELETE of the user."""
    if kind == "DELETE /Users":
        return {"method": "DELETE", "path": f"/Users/{w.user['id']}"}
    method, path, data = RESOURCE_KINDS[kind](w)
    return {"method": method, "path": path, **({"bulkId": "new"} if method == "POST" else {}), "data": data}


BULK_OPERATION_KINDS = [*RESOURCE_KINDS, "DELETE /Users"]
BULK_LEVELS: dict[str, Callable[[Where], bool]] = {
    "the request": lambda at: at == (),
    "an operation": lambda at: at == ("Operations", 0),
    "its data": lambda at: at[:3] == ("Operations", 0, "data"),
}


def request_of(kind: str, w: World) -> tuple[str, str, Any, dict[str, str]]:
    """(method, URL path, body, headers) of a kind's accepted body."""
    if kind in ADMIN_KINDS:
        return *ADMIN_KINDS[kind](w), ADMIN_JSON
    method, path, body = (RESOURCE_KINDS | SEARCH_KINDS)[kind](w)
    return method, "/scim/v2" + path, body, w.tenant.headers


async def ready_for(client: Any, kind: str, w: World, *, scim: bool = False) -> None:
    """Put the tenant in the state a kind's body is accepted in: licenses are set by hand only while
    SCIM is off (else the IdP owns them); `scim` turns SCIM back on."""
    if kind == "PUT user license":
        resp = await client.put(f"{tid(w)}/scim", json={"enabled": scim}, headers=ADMIN_HEADERS)
        assert resp.status == 200, await resp.text()


# --- A second spelling of a name, spliced into the JSON text ----------------------------------------

Where = tuple[str | int, ...]  # the keys and indexes from the body to an object


def members(value: Any, at: Where = ()) -> Iterator[tuple[Where, str]]:
    """Every (object, member name) in `value`, at any depth."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield at, key
            yield from members(item, (*at, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from members(item, (*at, i))


def object_at(value: Any, at: Where) -> dict[str, Any]:
    for step in at:
        value = value[step]
    return value


def spliced(value: Any, at: Where, twin: tuple[str, Any], position: int, here: Where = ()) -> str:
    """`value` as JSON text, with the member `twin` (name, value) added to the object at `at`, as its
    `position`th member."""
    if isinstance(value, dict):
        parts = [f"{json.dumps(k)}:{spliced(v, at, twin, position, (*here, k))}" for k, v in value.items()]
        if here == at:
            parts.insert(position, f"{json.dumps(twin[0])}:{json.dumps(twin[1])}")
        return "{" + ",".join(parts) + "}"
    if isinstance(value, list):
        return "[" + ",".join(spliced(v, at, twin, position, (*here, i)) for i, v in enumerate(value)) + "]"
    return json.dumps(value)


def flipped(name: str, flips: list[bool]) -> str:
    """`name` with the letters `flips` marks in the other case; at least one letter always flips."""
    out = "".join(c.swapcase() if flip else c for c, flip in zip(name, flips, strict=False))
    if out == name:
        i = next(i for i, c in enumerate(name) if c.swapcase() != c)
        out = name[:i] + name[i].swapcase() + name[i + 1 :]
    return out


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**31), max_value=2**31),
    st.text(alphabet="aZ09 -_@.:", max_size=8),
)


@dataclass(frozen=True)
class Twin:
    at: Where
    name: str  # the name as the body spells it
    spelling: str  # the second spelling
    text: bytes  # the body with both


def with_twin(data: st.DataObject, body: Any, within: Callable[[Where], bool] = lambda at: True) -> Twin:
    """`body` with a second spelling of one of its members' names (of an object `within` accepts), drawn."""
    at, name = data.draw(st.sampled_from([m for m in members(body) if within(m[0])]), label="the name")
    obj = object_at(body, at)
    spelling = flipped(name, data.draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name))))
    value = data.draw(st.one_of(st.just(obj[name]), SCALARS, st.just({}), st.just([])), label="its value")
    position = data.draw(st.integers(min_value=0, max_value=len(obj)), label="its position")
    return Twin(at, name, spelling, spliced(body, at, (spelling, value), position).encode())


def names_both(error: dict[str, Any], twin: Twin, *, scim: bool) -> None:
    assert error["scimType"] in ("invalidSyntax", "invalidValue"), error
    assert twin.spelling in error["detail"], error
    if scim:  # SCIM names are case-insensitive: the detail shows both spellings and says why
        assert f'"{twin.name}"' in error["detail"] and "case-insensitive" in error["detail"], error


# --- The generators -----------------------------------------------------------------------------------


@examples(25)
@given(data=st.data())
@pytest.mark.parametrize("kind", [*RESOURCE_KINDS, *SEARCH_KINDS, *ADMIN_KINDS])
async def test_a_body_naming_a_member_twice_in_different_case_is_a_400_and_changes_nothing(
    client, world, db, caplog, kind, data
):
    method, path, body, headers = request_of(kind, world)
    twin = with_twin(data, body)
    await ready_for(client, kind, world)
    before = await snapshot(db, world.tenant)
    resp = await client.request(method, path, data=twin.text, headers=headers)
    names_both(await scim_error(resp, 400), twin, scim=kind not in ADMIN_KINDS)
    assert await snapshot(db, world.tenant) == before
    assert not unhandled(caplog)


@examples(50)
@given(data=st.data(), kind=st.sampled_from(BULK_OPERATION_KINDS), level=st.sampled_from(list(BULK_LEVELS)))
async def test_a_bulk_naming_a_member_twice_anywhere_is_refused_and_changes_nothing(
    client, world, db, caplog, data, kind, level
):
    if kind == "DELETE /Users" and level == "its data":
        level = "an operation"  # a DELETE has no data
    body = bulk_of(bulk_operation(kind, world))
    twin = with_twin(data, body, BULK_LEVELS[level])
    before = await snapshot(db, world.tenant)
    resp = await client.post("/scim/v2/Bulk", data=twin.text, headers=world.tenant.headers)
    if twin.at == ():  # the BulkRequest itself: the whole request is refused
        names_both(await scim_error(resp, 400), twin, scim=True)
    else:  # inside an operation (or its data): that operation's own 400
        text = await resp.text()
        assert resp.status == 200, text
        (result,) = json.loads(text)["Operations"]
        assert result["status"] == "400", result
        error = result["response"]
        assert error["schemas"] == [ERROR_SCHEMA] and error["status"] == "400"
        names_both(error, twin, scim=True)
        assert "Operations[0]" in error["detail"], error
    assert await snapshot(db, world.tenant) == before
    assert not unhandled(caplog)


@examples(25)
@given(
    data=st.data(),
    kinds=st.lists(st.sampled_from(BULK_OPERATION_KINDS), min_size=1, max_size=3),
    with_delete=st.booleans(),
    at_top=st.booleans(),
)
async def test_a_bulk_naming_a_member_twice_costs_only_what_runs(
    client, world, new_tenant, db, data, kinds, with_delete, at_top
):
    # A fresh tenant with the smallest budget: its bucket is full, so RateLimit-Remaining after one
    # request is exactly the budget less that request's price. The operations name the world's
    # resources (another tenant's): they never run, so only their price matters.
    tenant = await new_tenant(rate_limit={"credits_per_30s": CAPACITY})
    ambiguous = [with_twin(data, bulk_operation(kind, world)).text.decode() for kind in kinds]
    # A DELETE of a user this tenant does not have runs (404) and is priced as a DELETE.
    runs = ['{"method":"DELETE","path":"/Users/00000000-0000-4000-8000-000000000000"}'] if with_delete else []
    operations = ",".join(ambiguous + runs).encode()
    if at_top:
        text = b'{"Operations":[%s],"OPERATIONS":[]}' % operations
    else:
        text = b'{"schemas":["%s"],"Operations":[%s]}' % (BULK_REQUEST.encode(), operations)
    before = await snapshot(db, world.tenant)
    resp = await client.post("/scim/v2/Bulk", data=text, headers=tenant.headers)
    if at_top:
        # Refused as a whole before it is priced: the bucket is untouched, as the next request shows.
        await scim_error(resp, 400, '"Operations" and "OPERATIONS"')
        assert "RateLimit-Remaining" not in resp.headers
        resp = await client.get("/scim/v2/Users", params={"count": "1"}, headers=tenant.headers)
        assert resp.status == 200, await resp.text()
        assert resp.headers["RateLimit-Remaining"] == str(CAPACITY - L1)
    else:
        assert resp.status == 200, await resp.text()
        results = (await resp.json())["Operations"]
        assert [r["status"] for r in results] == ["400"] * len(kinds) + ["404"] * len(runs), results
        price = L1 * len(kinds) + L3 * len(runs)
        assert resp.headers["RateLimit-Remaining"] == str(CAPACITY - price), (results, price)
    assert await snapshot(db, world.tenant) == before


# --- The bodies above are accepted as they are: each refusal is the second spelling's ---------------


async def test_every_body_kind_is_accepted_without_the_second_spelling(client, world):
    for kind in [*SEARCH_KINDS, *RESOURCE_KINDS, *ADMIN_KINDS]:  # searches first: the others change data
        method, path, body, headers = request_of(kind, world)
        await ready_for(client, kind, world)
        resp = await client.request(method, path, data=json.dumps(body), headers=headers)
        assert resp.status in (200, 201, 202, 204), (kind, await resp.text())
        await ready_for(client, kind, world, scim=True)
    for kind in BULK_OPERATION_KINDS:
        op = bulk_operation(kind, world)
        if kind == "POST /Groups":  # its team is linked now: link a new one
            team = await create_team(client, world.tenant, "bulk-" + unique_email("t").split("@")[0])
            op["data"]["displayName"] = team["name"]
        resp = await client.post("/scim/v2/Bulk", json=bulk_of(op), headers=world.tenant.headers)
        assert resp.status == 200, await resp.text()
        (result,) = (await resp.json())["Operations"]
        assert result["status"] in ("200", "201", "204"), (kind, result)
