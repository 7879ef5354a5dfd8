"""GET /Users: filters, paging, totals."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any
from urllib.parse import quote

import pytest
import redis.asyncio as aioredis

from scimsvc.web.app import create_app
from tests.conftest import (
    ADMIN_HEADERS,
    QUEUE_NAME,
    REDIS_URL,
    free_port,
    make_tenant,
    post_user,
    user_body,
    wait_until,
)


async def list_users(client: Any, tenant: Any, query: str) -> dict[str, Any]:
    resp = await client.get(f"/scim/v2/Users?{query}", headers=tenant.headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


def filter_query(expr: str) -> str:
    return "filter=" + quote(expr)


@pytest.fixture
async def people(client, tenant) -> dict[str, dict[str, Any]]:
    """Four users with varied attributes, in one fresh tenant."""
    tag = uuid.uuid4().hex[:6]
    specs = {
        "ada": user_body(
            f"ada.{tag}@example.com",
            externalId="EXT-ada",
            displayName="Ada Lovelace",
            name={"givenName": "Ada", "familyName": "Lovelace"},
        ),
        "bob": user_body(
            f"bob.{tag}@example.org",
            externalId="EXT-bob",
            displayName="Bob Builder",
            name={"givenName": "Bob", "familyName": "Builder"},
            active=False,
        ),
        "cy": user_body(
            f"cy.{tag}@example.com",
            displayName="Cy Twombly",
            name={"givenName": "Cy", "familyName": "Twombly"},
            emails=[
                {"value": f"cy.{tag}@example.com", "type": "work"},
                {"value": f"cy.home.{tag}@mail.test", "type": "home"},
            ],
        ),
        "dee": user_body(f"dee.{tag}@example.net", name={"givenName": "Dee", "familyName": "Dee"}),
    }
    out = {}
    for key, body in specs.items():
        resp = await client.post("/scim/v2/Users", json=body, headers=tenant.headers)
        assert resp.status == 201, await resp.text()
        out[key] = await resp.json()
    return out


def names(result: dict[str, Any]) -> set[str]:
    return {r["userName"].split(".")[0] for r in result["Resources"]}


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('userName eq "{ada}"', {"ada"}),
        ('userName eq "{ADA}"', {"ada"}),  # userName is case-insensitive
        ('userName ne "{ada}"', {"bob", "cy", "dee"}),
        ('userName co "example.com"', {"ada", "cy"}),
        ('userName sw "bob."', {"bob"}),
        ('userName ew "example.net"', {"dee"}),
        ('externalId eq "EXT-ada"', {"ada"}),
        ('externalId eq "ext-ada"', set()),  # externalId is case-exact
        ("externalId pr", {"ada", "bob"}),
        ("not (externalId pr)", {"cy", "dee"}),
        ('displayName eq "bob builder"', {"bob"}),
        ("active eq false", {"bob"}),
        ("active eq true", {"ada", "cy", "dee"}),
        ('emails.value co "mail.test"', {"cy"}),
        ('emails[type eq "home" and value co "cy.home"]', {"cy"}),
        ('name.givenName eq "Ada" or name.familyName eq "Dee"', {"ada", "dee"}),
        ('name.familyName sw "B" and active eq false', {"bob"}),
        ('(userName sw "ada" or userName sw "bob") and not (active eq false)', {"ada"}),
        ('meta.lastModified gt "2000-01-01T00:00:00Z"', {"ada", "bob", "cy", "dee"}),
        ('meta.created lt "2000-01-01T00:00:00Z"', set()),
        ('displayName ne "Ada Lovelace"', {"bob", "cy", "dee"}),  # users without a displayName match ne
    ],
)
async def test_filter_matrix(client, tenant, people, expr, expected):
    subs = {k: v["userName"] for k, v in people.items()} | {
        k.upper(): v["userName"].upper() for k, v in people.items()
    }
    result = await list_users(client, tenant, filter_query(expr.format(**subs)))
    assert names(result) == expected
    assert result["totalResults"] == len(expected)


async def test_unknown_user_filter_is_an_empty_list_not_404(client, tenant):
    result = await list_users(client, tenant, filter_query('userName eq "nobody@example.com"'))
    assert result == {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": 0,
        "startIndex": 1,
        "itemsPerPage": 0,
        "Resources": [],
    }


async def test_paging_walks_every_user_once_in_a_stable_order(client, new_tenant):
    tenant = await new_tenant()
    created = []
    for i in range(23):
        resp = await client.post(
            "/scim/v2/Users", json=user_body(f"p{i:02d}.{uuid.uuid4().hex[:4]}@x.com"), headers=tenant.headers
        )
        created.append((await resp.json())["id"])
    seen = []
    start = 1
    while True:
        page = await list_users(client, tenant, f"startIndex={start}&count=5")
        assert page["totalResults"] == 23
        assert page["startIndex"] == start
        if not page["Resources"]:
            break
        assert page["itemsPerPage"] == len(page["Resources"]) <= 5
        seen.extend(r["id"] for r in page["Resources"])
        start += 5
    assert seen == created  # creation order, no skip, no repeat
    past_end = await list_users(client, tenant, "startIndex=100&count=5")
    assert past_end["totalResults"] == 23 and past_end["Resources"] == []
    counted = await list_users(client, tenant, "count=0")
    assert counted["totalResults"] == 23 and counted["Resources"] == []


async def test_count_is_capped_and_defaults_apply(client, new_tenant):
    tenant = await new_tenant()
    for i in range(3):
        await client.post(
            "/scim/v2/Users", json=user_body(f"c{i}.{uuid.uuid4().hex[:4]}@x.com"), headers=tenant.headers
        )
    page = await list_users(client, tenant, "startIndex=0&count=100000")
    assert page["startIndex"] == 1 and page["itemsPerPage"] == 3
    page = await list_users(client, tenant, "")
    assert page["totalResults"] == 3


async def test_lists_never_show_another_tenants_users(client, tenant, new_tenant):
    other = await new_tenant()
    await client.post(
        "/scim/v2/Users", json=user_body(f"mine.{uuid.uuid4().hex[:6]}@x.com"), headers=tenant.headers
    )
    resp = await client.post(
        "/scim/v2/Users", json=user_body(f"theirs.{uuid.uuid4().hex[:6]}@x.com"), headers=other.headers
    )
    theirs = await resp.json()
    mine = await list_users(client, tenant, "count=1000")
    assert theirs["id"] not in {r["id"] for r in mine["Resources"]}
    result = await list_users(client, tenant, filter_query(f'userName eq "{theirs["userName"]}"'))
    assert result["totalResults"] == 0


async def test_filter_on_product_provisioning_state(client, tenant, people, settings):
    from tests.conftest import run_worker

    state = "urn:scimsvc:schemas:extension:product:2.0:User:provisioningState"
    pending = await list_users(client, tenant, filter_query(f'{state} eq "pending"'))
    assert names(pending) == {"ada", "bob", "cy", "dee"}
    await run_worker(settings)
    done = await list_users(client, tenant, filter_query(f'{state} eq "deprovisioned"'))
    assert names(done) == {"bob"}


async def test_total_follows_creates_deletes_relinks_and_hard_deletes(client, new_tenant):
    tenant = await new_tenant()
    users = [await post_user(client, tenant) for _ in range(7)]
    assert (await list_users(client, tenant, "count=2"))["totalResults"] == 7
    resp = await client.delete(f"/scim/v2/Users/{users[0]['id']}", headers=tenant.headers)
    assert resp.status == 204
    assert (await list_users(client, tenant, "count=2"))["totalResults"] == 6
    assert (await list_users(client, tenant, "count=0"))["totalResults"] == 6
    await post_user(client, tenant, users[0]["userName"])  # the IdP assigns the user again: linked again
    assert (await list_users(client, tenant, "count=2"))["totalResults"] == 7
    resp = await client.delete(f"/admin/v1/tenants/{tenant.id}/users/{users[1]['id']}", headers=ADMIN_HEADERS)
    assert resp.status == 200, await resp.text()
    page = await list_users(client, tenant, "count=2")
    assert page["totalResults"] == 6 and len(page["Resources"]) == 2


async def wait_for_hint(tenant: Any, offset: int | None = None) -> None:
    """Until a page served has left its hint for the next one, at `offset` if given (written in the
    background)."""
    redis = aioredis.from_url(REDIS_URL)
    pattern = f"{QUEUE_NAME}:cursor:{tenant.id}:*" + ("" if offset is None else f":{offset}")
    try:

        async def stored() -> bool:
            return bool([k async for k in redis.scan_iter(match=pattern)])

        await wait_until(stored, what="the page's cursor to be stored")
    finally:
        await redis.aclose()


async def test_a_walk_goes_on_after_the_last_user_it_saw(client, new_tenant):
    tenant = await new_tenant()
    ids = [(await post_user(client, tenant))["id"] for _ in range(9)]
    page = await list_users(client, tenant, "startIndex=1&count=3")
    assert [r["id"] for r in page["Resources"]] == ids[:3]
    await wait_for_hint(tenant, offset=3)
    # A user the IdP has already read goes away: by OFFSET the next page would skip ids[3].
    resp = await client.delete(f"/scim/v2/Users/{ids[1]}", headers=tenant.headers)
    assert resp.status == 204
    page = await list_users(client, tenant, "startIndex=4&count=3")
    assert [r["id"] for r in page["Resources"]] == ids[3:6]
    assert page["totalResults"] == 9 and page["startIndex"] == 4  # the walk's total, from its first page
    await wait_for_hint(tenant, offset=6)
    page = await list_users(client, tenant, "startIndex=7&count=3")
    assert [r["id"] for r in page["Resources"]] == ids[6:9]
    # A page nobody walked to is read by OFFSET (8 users: the 8th is ids[8]) and counted; a sorted walk
    # uses no hint.
    page = await list_users(client, tenant, "startIndex=8&count=3")
    assert [r["id"] for r in page["Resources"]] == ids[8:9] and page["totalResults"] == 8
    page = await list_users(client, tenant, "startIndex=4&count=3&sortBy=meta.created")
    assert [r["id"] for r in page["Resources"]] == ids[4:7]


async def test_a_filtered_walk_keeps_to_its_filter(client, new_tenant):
    tenant = await new_tenant()
    ids = [(await post_user(client, tenant, active=i % 2 == 0))["id"] for i in range(10)]
    seen, start = [], 1
    while True:
        page = await list_users(
            client, tenant, f"{filter_query('active eq true')}&startIndex={start}&count=2"
        )
        assert page["totalResults"] == 5
        if not page["Resources"]:
            break
        seen += [r["id"] for r in page["Resources"]]
        if len(page["Resources"]) == 2:
            await wait_for_hint(tenant, offset=start + 1)
        start += 2
    assert seen == ids[::2]


async def test_lists_are_read_without_hints_while_redis_is_down(aiohttp_client, settings, new_tenant):
    down = await aiohttp_client(
        create_app(dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    )
    tenant = await make_tenant(down)
    ids = [(await post_user(down, tenant))["id"] for _ in range(5)]
    seen = []
    for start in (1, 3, 5):
        page = await list_users(down, tenant, f"startIndex={start}&count=2")
        assert page["totalResults"] == 5
        seen += [r["id"] for r in page["Resources"]]
    assert seen == ids


async def test_a_walk_keeps_the_total_of_its_first_page(client, new_tenant):
    tenant = await new_tenant()
    ids = [(await post_user(client, tenant))["id"] for _ in range(9)]
    assert (await list_users(client, tenant, "startIndex=1&count=4"))["totalResults"] == 9
    await wait_for_hint(tenant, offset=4)
    resp = await client.delete(f"/scim/v2/Users/{ids[0]}", headers=tenant.headers)
    assert resp.status == 204
    page = await list_users(client, tenant, "startIndex=5&count=4")
    assert [r["id"] for r in page["Resources"]] == ids[4:8] and page["totalResults"] == 9
    await wait_for_hint(tenant, offset=8)
    # The last page of the walk: one user, still the walk's bound (not startIndex - 1 + 1, not a recount).
    page = await list_users(client, tenant, "startIndex=9&count=4")
    assert [r["id"] for r in page["Resources"]] == ids[8:] and page["totalResults"] == 9
    # A new walk counts again.
    assert (await list_users(client, tenant, "startIndex=1&count=4"))["totalResults"] == 8
