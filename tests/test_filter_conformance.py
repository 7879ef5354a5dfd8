"""RFC 7644 §3.4.2.2 filters through HTTP: extension URNs, meta dates, not, caseExact, booleans, errors;
and the filters IdPs send are served by indexes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest

from scimsvc.services import groups as group_service
from scimsvc.services import users as user_service
from tests.conftest import create_team, post_user, unique_email

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


async def ids(client: Any, tenant: Any, filter_text: str, resource: str = "Users") -> set[str]:
    resp = await client.get(f"/scim/v2/{resource}?filter={quote(filter_text)}", headers=tenant.headers)
    assert resp.status == 200, await resp.text()
    return {r["id"] for r in (await resp.json())["Resources"]}


async def test_enterprise_attributes_by_full_urn(client, new_tenant):
    tenant = await new_tenant()
    boss = await post_user(client, tenant)
    seven = await post_user(
        client, tenant, **{ENTERPRISE: {"employeeNumber": "7", "department": "R&D", "manager": boss["id"]}}
    )
    await post_user(client, tenant, **{ENTERPRISE: {"employeeNumber": "8"}})
    assert await ids(client, tenant, f'{ENTERPRISE}:employeeNumber eq "7"') == {seven["id"]}
    assert await ids(client, tenant, f'{ENTERPRISE}:manager.value eq "{boss["id"]}"') == {seven["id"]}
    assert await ids(client, tenant, f'{ENTERPRISE}:department co "r&d"') == {seven["id"]}
    assert await ids(
        client, tenant, f"{ENTERPRISE}:employeeNumber pr and not ({ENTERPRISE}:department pr)"
    ) == (await ids(client, tenant, f'{ENTERPRISE}:employeeNumber eq "8"'))


async def test_meta_dates_compare_as_instants_with_date_literals(client, new_tenant):
    tenant = await new_tenant()
    first = await post_user(client, tenant)
    second = await post_user(client, tenant)
    created = first["meta"]["created"]
    assert await ids(client, tenant, f'meta.created gt "{created}"') == {second["id"]}
    assert await ids(client, tenant, f'meta.created le "{created}"') == {first["id"]}
    assert await ids(client, tenant, 'meta.created gt "2000-01-01"') == {first["id"], second["id"]}
    assert await ids(client, tenant, 'meta.lastModified lt "2000-01-01T00:00:00+02:00"') == set()
    patch = {"Operations": [{"op": "replace", "path": "title", "value": "x"}]}
    resp = await client.patch(f"/scim/v2/Users/{first['id']}", json=patch, headers=tenant.headers)
    modified = (await resp.json())["meta"]["lastModified"]
    assert await ids(client, tenant, f'meta.lastModified ge "{modified}"') == {first["id"]}


async def test_case_rules_come_from_the_schema(client, new_tenant):
    tenant = await new_tenant()
    name = unique_email("MiXeD")
    user = await post_user(client, tenant, name, externalId="AbC-1")
    assert await ids(client, tenant, f'userName eq "{name.upper()}"') == {user["id"]}
    assert await ids(client, tenant, 'externalId eq "AbC-1"') == {user["id"]}
    assert await ids(client, tenant, 'externalId eq "abc-1"') == set()  # caseExact
    assert await ids(client, tenant, f'emails.value eq "{name.lower()}"') == {user["id"]}
    assert await ids(client, tenant, f'emails[type eq "work" and value co "{name[2:8].upper()}"]') == {
        user["id"]
    }


async def test_booleans_not_and_precedence(client, new_tenant):
    tenant = await new_tenant()
    a = await post_user(client, tenant, title="a")
    b = await post_user(client, tenant, title="b")
    patch = {"Operations": [{"op": "replace", "value": {"active": "False"}}]}
    await client.patch(f"/scim/v2/Users/{b['id']}", json=patch, headers=tenant.headers)
    assert await ids(client, tenant, "active eq false") == {b["id"]}
    assert await ids(client, tenant, "not (active eq false)") == {a["id"]}
    assert await ids(client, tenant, 'title eq "a" or title eq "b" and active eq true') == {a["id"]}
    assert await ids(client, tenant, '(title eq "a" or title eq "b") and active eq false') == {b["id"]}


@pytest.mark.parametrize("resource", ["Users", "Groups"])
@pytest.mark.parametrize(
    "bad", ['shoeSize eq "9"', "userName eq", 'name eq "x"', 'meta.created gt "soon"', "emails[value[x]]"]
)
async def test_bad_filters_are_400_invalid_filter(client, tenant, resource, bad):
    if resource == "Groups" and bad == 'name eq "x"':
        bad = 'members eq "x" and name pr'
    resp = await client.get(f"/scim/v2/{resource}?filter={quote(bad)}", headers=tenant.headers)
    assert resp.status == 400
    assert (await resp.json())["scimType"] == "invalidFilter"


async def test_group_filters_idps_send(client, new_tenant):
    tenant = await new_tenant()
    user = await post_user(client, tenant)
    await create_team(client, tenant, "Ops")
    resp = await client.post(
        "/scim/v2/Groups",
        json={"displayName": "Ops", "externalId": "ext-OPS", "members": [{"value": user["id"]}]},
        headers=tenant.headers,
    )
    group = await resp.json()
    assert await ids(client, tenant, 'displayName eq "ops"', "Groups") == {group["id"]}
    assert await ids(client, tenant, 'externalId eq "ext-OPS"', "Groups") == {group["id"]}
    assert await ids(client, tenant, f'members[value eq "{user["id"]}"]', "Groups") == {group["id"]}
    assert await ids(client, tenant, f'meta.lastModified ge "{group["meta"]["lastModified"]}"', "Groups") == {
        group["id"]
    }


SINCE = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()  # an incremental import's "changed since"
USER_FILTERS = [
    ('userName eq "a@example.com"', "users_tenant_user_name"),
    ('externalId eq "0a21f0f2"', "users_tenant_external_id"),
    ('displayName eq "Ada"', "users_tenant_display_name"),
    ('emails.value eq "a@example.com"', "users_email_values"),
    ('emails eq "a@example.com"', "users_email_values"),
    (f'meta.lastModified gt "{SINCE}"', "users_tenant_updated"),
    (f'id eq "{uuid.uuid4()}"', "users_pkey"),
]
GROUP_FILTERS = [
    ('displayName eq "Ops"', "groups_tenant_display_name"),
    ('externalId eq "x"', "groups_tenant_external_id"),
    (f'meta.lastModified gt "{SINCE}"', "groups_tenant_updated"),
    (f'id eq "{uuid.uuid4()}"', "groups_pkey"),
]


SEED_TENANT = """
INSERT INTO tenants (name) VALUES ('index test') RETURNING id
"""
SEED_USERS = """
INSERT INTO users (tenant_id, user_name, external_id, display_name, created_at, updated_at, resource)
SELECT $1, 'u' || n || '@example.com', 'ext-' || n, 'User ' || n,
       now() - interval '2 days' + n * interval '1 s', now() - interval '2 days' + n * interval '1 s',
       jsonb_build_object(
           'userName', 'u' || n || '@example.com',
           'emails', jsonb_build_array(jsonb_build_object('value', 'u' || n || '@example.com'))
       )
FROM generate_series(1, 3000) AS n
"""
SEED_GROUPS = """
INSERT INTO groups (tenant_id, display_name, external_id, updated_at, resource)
SELECT $1, 'Group ' || n, 'ext-' || n, now() - interval '2 days' + n * interval '1 s',
       jsonb_build_object('displayName', 'Group ' || n)
FROM generate_series(1, 3000) AS n
"""
_seeded: dict[str, Any] = {}


async def big_tenant(db: Any) -> Any:
    """A tenant with thousands of users and groups (analyzed), so plans are those of a real tenant."""
    if "id" not in _seeded:
        tenant_id = await db.fetchval(SEED_TENANT)
        await db.execute(SEED_USERS, tenant_id)
        await db.execute(SEED_GROUPS, tenant_id)
        await db.execute("ANALYZE users")
        await db.execute("ANALYZE groups")
        _seeded["id"] = tenant_id
    return _seeded["id"]


async def plan(db: Any, table: str, where: str, params: list[Any]) -> str:
    alias = table[0]
    linked = " AND u.scim_linked" if alias == "u" else ""
    # Only catalog names are in `where` (compiled by filters.sql.compile_filter); the values are parameters.
    sql = f"EXPLAIN SELECT 1 FROM {table} {alias} WHERE {alias}.tenant_id = $1{linked} AND ({where})"  # noqa: S608
    return "\n".join(r[0] for r in await db.fetch(sql, *params))


@pytest.mark.parametrize(("text", "index"), USER_FILTERS)
async def test_user_filters_idps_send_use_their_index(db, text, index):
    params: list[Any] = [await big_tenant(db)]
    where = user_service.user_filter_sql(text, params)
    assert index in await plan(db, "users", where, params)


@pytest.mark.parametrize(("text", "index"), GROUP_FILTERS)
async def test_group_filters_idps_send_use_their_index(db, text, index):
    params: list[Any] = [await big_tenant(db)]
    where = group_service.group_filter_sql(text, params)
    assert index in await plan(db, "groups", where, params)
