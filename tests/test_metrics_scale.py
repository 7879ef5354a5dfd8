"""/metrics stays the same size however many organizations there are; per-organization figures are the
admin API's (`/admin/v1/tenants/{tid}/stats`, `/admin/v1/stats/tenants`)."""

from __future__ import annotations

import asyncio
from typing import Any

from scimsvc.web.app import create_app
from tests.conftest import (
    ADMIN_HEADERS,
    Tenant,
    create_team,
    make_tenant,
    run_worker,
    unique_email,
    user_body,
    wait_until,
)
from tests.test_metrics_logs import sample


def series(text: str) -> list[str]:
    """The series of a Prometheus text page (each sample line's name and labels)."""
    return sorted(line.rsplit(" ", 1)[0] for line in text.splitlines() if line and not line.startswith("#"))


async def traffic(client: Any, tenant: Tenant, *, refused: bool = True) -> None:
    """What an IdP does: create a user, look it up, read one that does not exist; then (`refused`) hit its
    rate limit."""
    resp = await client.post("/scim/v2/Users", json=user_body(unique_email()), headers=tenant.headers)
    assert resp.status == 201, await resp.text()
    user_id = (await resp.json())["id"]
    assert (await client.get(f"/scim/v2/Users/{user_id}", headers=tenant.headers)).status == 200
    assert (await client.get("/scim/v2/Users/none", headers=tenant.headers)).status == 404
    if not refused:
        return
    resp = await client.patch(
        f"/admin/v1/tenants/{tenant.id}",
        json={"rate_limit": {"credits_per_30s": 2000}},
        headers=ADMIN_HEADERS,
    )
    assert resp.status == 200
    while (await client.get("/scim/v2/Users", headers=tenant.headers)).status != 429:
        pass


async def test_metrics_have_the_same_series_with_1_and_200_organizations(aiohttp_client, own_database):
    client = await aiohttp_client(create_app(own_database))
    first = await make_tenant(client, seats=5)
    await traffic(client, first)
    await client.get("/metrics")  # the scrape's own series, from here on
    text = await (await client.get("/metrics")).text()
    with_one = series(text)
    assert sample(text, "scimsvc_tenants") == 1 and sample(text, "scimsvc_seats") == 5
    assert sample(text, "scimsvc_rate_limited_total", level="L1") == 1

    others = [await make_tenant(client, seats=5) for _ in range(199)]
    for batch in range(0, len(others), 20):  # every tenth one is refused a request too
        group = others[batch : batch + 20]
        await asyncio.gather(*(traffic(client, t, refused=i % 10 == 0) for i, t in enumerate(group)))
    text = await (await client.get("/metrics")).text()
    assert series(text) == with_one
    assert first.id not in text and all(t.id not in text for t in others)
    assert sample(text, "scimsvc_rate_limited_total", level="L1") == 1 + 20


async def test_seat_totals_count_every_organization(aiohttp_client, own_database):
    client = await aiohttp_client(create_app(own_database))
    full, over = await make_tenant(client, seats=2), await make_tenant(client, seats=3)
    for tenant, users in ((full, 2), (over, 3)):
        for _ in range(users):
            resp = await client.post("/scim/v2/Users", json=user_body(unique_email()), headers=tenant.headers)
            assert resp.status == 201
    await run_worker(own_database)
    resp = await client.patch(f"/admin/v1/tenants/{over.id}", json={"seats": 1}, headers=ADMIN_HEADERS)
    assert resp.status == 200
    # A new app: the totals are counted on its first scrape (later ones reuse them for a few seconds).
    fresh = await aiohttp_client(create_app(own_database))
    text = await (await fresh.get("/metrics")).text()
    assert sample(text, "scimsvc_tenants") == 2
    assert sample(text, "scimsvc_seats") == 3
    assert sample(text, "scimsvc_seats_used") == 5
    assert sample(text, "scimsvc_tenants_over_allocated") == 1


async def stats(client: Any, tenant_id: str) -> dict[str, Any]:
    resp = await client.get(f"/admin/v1/tenants/{tenant_id}/stats", headers=ADMIN_HEADERS)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_tenant_stats_count_its_own_users_seats_tokens_and_requests(client, db, settings):
    busy, quiet = await make_tenant(client, seats=1), await make_tenant(client, seats=4)
    for _ in range(2):
        resp = await client.post("/scim/v2/Users", json=user_body(unique_email()), headers=busy.headers)
        assert resp.status == 201
    await create_team(client, busy, "Sales")
    group = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Sales"}
    resp = await client.post("/scim/v2/Groups", json=group, headers=busy.headers)
    assert resp.status == 201, await resp.text()
    await run_worker(settings)
    await traffic(client, busy)  # one more user, and a 429

    got = await wait_until(
        lambda: _with_429(client, busy.id), what="the 429 in the provisioning log", within=30
    )
    assert got["users"] == 3 and got["active_users"] == 3
    assert got["seats"] == 1 and got["seats_used"] == 1 and got["seats_free"] == 0
    assert got["waiting"] == await db.fetchval(
        "SELECT count(*) FROM users WHERE tenant_id = $1 AND waiting_since IS NOT NULL", busy.id
    )
    assert got["groups"] == 1 and got["active_tokens"] == 1
    assert got["outbox_pending_rows"] == await db.fetchval(
        "SELECT count(*) FROM outbox WHERE tenant_id = $1 AND applied_at IS NULL", busy.id
    )
    requests = await db.fetchval("SELECT count(*) FROM provisioning_log WHERE tenant_id = $1", busy.id)
    assert got["last_hour"]["requests"] == requests >= 6
    assert got["last_hour"]["rate_limited"] == 1 and got["last_hour"]["server_errors"] == 0

    other = await stats(client, quiet.id)  # nothing of the busy tenant's
    assert other["users"] == other["seats_used"] == other["groups"] == 0 and other["seats_free"] == 4
    assert other["last_hour"] == {"requests": 0, "rate_limited": 0, "server_errors": 0}

    resp = await client.get("/admin/v1/stats/tenants?by=rate_limited&limit=100", headers=ADMIN_HEADERS)
    assert resp.status == 200
    top = (await resp.json())["tenants"]
    assert top[0]["last_hour"]["rate_limited"] >= 1
    assert [t["last_hour"]["rate_limited"] for t in top] == sorted(
        (t["last_hour"]["rate_limited"] for t in top), reverse=True
    )
    assert quiet.id not in [t["tenant_id"] for t in top]


async def _with_429(client: Any, tenant_id: str) -> dict[str, Any] | None:
    got = await stats(client, tenant_id)
    return got if got["last_hour"]["rate_limited"] else None


async def test_top_tenants_by_requests_is_bounded_and_ordered(aiohttp_client, own_database):
    client = await aiohttp_client(create_app(own_database))
    tenants = [await make_tenant(client) for _ in range(3)]
    for calls, tenant in enumerate(tenants, start=1):
        for _ in range(calls):
            assert (await client.get("/scim/v2/Users", headers=tenant.headers)).status == 200

    async def top() -> list[dict[str, Any]] | None:
        resp = await client.get("/admin/v1/stats/tenants?limit=2", headers=ADMIN_HEADERS)
        body = (await resp.json())["tenants"]
        return body if body and body[0]["last_hour"]["requests"] == 3 and len(body) == 2 else None

    listed = await wait_until(top, what="the requests in the provisioning log", within=30)
    assert [t["tenant_id"] for t in listed] == [tenants[2].id, tenants[1].id]
    assert [t["last_hour"]["requests"] for t in listed] == [3, 2]


async def test_stats_refuse_a_bad_query_and_an_unknown_tenant(client):
    resp = await client.get("/admin/v1/stats/tenants?by=seats", headers=ADMIN_HEADERS)
    assert resp.status == 400 and (await resp.json())["scimType"] == "invalidValue"
    assert "by: must be one of requests, rate_limited, server_errors" in (await resp.json())["detail"]
    resp = await client.get("/admin/v1/stats/tenants?limit=101", headers=ADMIN_HEADERS)
    assert resp.status == 400 and "1 to 100" in (await resp.json())["detail"]
    resp = await client.get(
        "/admin/v1/tenants/00000000-0000-0000-0000-000000000000/stats", headers=ADMIN_HEADERS
    )
    assert resp.status == 404
    assert (await client.get("/admin/v1/stats/tenants")).status == 401


async def test_top_list_limit_is_a_whole_number_from_1_to_100_however_written(client):
    for limit in ("0000010000000", "00000" + "1" * 5000, "%C2%B2", "1_0", "+5", "0", "-1", "2.0", "", "ten"):
        resp = await client.get(f"/admin/v1/stats/tenants?limit={limit}", headers=ADMIN_HEADERS)
        assert resp.status == 400, (limit[:20], resp.status, await resp.text())
        body = await resp.json()
        assert body["scimType"] == "invalidValue"
        assert body["detail"] == "limit: must be a whole number from 1 to 100", body
    for limit in ("1", "100", "007"):
        resp = await client.get(f"/admin/v1/stats/tenants?limit={limit}&other=x", headers=ADMIN_HEADERS)
        assert resp.status == 200, (limit, await resp.text())
        assert (await resp.json())["by"] == "requests"


async def test_no_client_adds_series_with_methods_of_its_own(client):
    # WebDAV's methods reach the app (the HTTP parser knows them); refused before routing: 401.
    for method in ("PROPFIND", "MKCOL", "LOCK"):
        assert (await client.request(method, "/scim/v2/Users")).status == 401
    text = await (await client.get("/metrics")).text()
    assert not any(method in text for method in ("PROPFIND", "MKCOL", "LOCK"))
    assert sample(text, "scimsvc_http_requests_total", method="other", status="401") == 3
