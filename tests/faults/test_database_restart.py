"""PostgreSQL restarting under load (through the tests' own proxy): 503 with Retry-After, never a 500, never
half a write, and the service recovers by itself."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Any

import asyncpg
import pytest
from aiohttp import web

from scimsvc.scim.errors import ERROR_SCHEMA
from scimsvc.services import bulk as bulk_service
from scimsvc.web.app import create_app
from scimsvc.web.middlewares import error_middleware
from scimsvc.web.request_frame import request_middleware
from tests.conftest import make_tenant, proxied_url, unique_email, user_body, wait_until
from tests.test_bulk import bulk

UNAVAILABLE_ERRORS = [
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.InterfaceError("cannot call Connection.fetch(): connection is closed"),
    asyncpg.CannotConnectNowError("the database system is starting up"),
    asyncpg.TooManyConnectionsError("sorry, too many clients already"),
    asyncpg.AdminShutdownError("terminating connection due to administrator command"),
    ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)"),
    OSError("Multiple exceptions: [Errno 111] Connect call failed"),
    TimeoutError(),  # connect or pool acquire that did not finish in time
]


def app_raising(exc: BaseException) -> web.Application:
    async def handler(request: web.Request) -> web.Response:
        raise exc

    app = web.Application(middlewares=[request_middleware, error_middleware])
    app.router.add_get("/scim/v2/Users", handler)
    return app


@pytest.mark.parametrize("exc", UNAVAILABLE_ERRORS, ids=lambda e: type(e).__name__)
async def test_database_unavailable_is_a_503_scim_error_with_retry_after(aiohttp_client, exc):
    client = await aiohttp_client(app_raising(exc))
    resp = await client.get("/scim/v2/Users")
    assert resp.status == 503
    assert int(resp.headers["Retry-After"]) > 0
    assert resp.headers["Content-Type"].startswith("application/scim+json")
    body = await resp.json()
    assert body["schemas"] == [ERROR_SCHEMA] and body["status"] == "503"


@pytest.mark.parametrize(
    "exc",
    [asyncpg.InterfaceError("cannot perform operation: another operation is in progress"), ValueError("bug")],
    ids=["interface misuse", "a bug"],
)
async def test_other_errors_stay_500(aiohttp_client, exc):
    client = await aiohttp_client(app_raising(exc))
    resp = await client.get("/scim/v2/Users")
    assert resp.status == 500 and "Retry-After" not in resp.headers


async def test_an_outage_logs_one_warning_per_interval_not_a_traceback_per_request(aiohttp_client, caplog):
    client = await aiohttp_client(app_raising(asyncpg.ConnectionDoesNotExistError("gone")))
    with caplog.at_level(logging.WARNING, logger="scimsvc.web.middlewares"):
        for _ in range(20):
            assert (await client.get("/scim/v2/Users")).status == 503
    records = [r for r in caplog.records if r.name == "scimsvc.web.middlewares"]
    assert len(records) <= 1 and all(r.exc_info is None for r in records)


async def test_a_bulk_operation_that_loses_the_database_answers_503(client, tenant, monkeypatch):
    async def lost(*args: Any, **kwargs: Any) -> Any:
        raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")

    _, *rest = bulk_service.SERVICES["Users"]
    monkeypatch.setitem(bulk_service.SERVICES, "Users", (lost, *rest))
    body = bulk(
        {"method": "POST", "path": "/Users", "bulkId": "a", "data": user_body(unique_email())},
    )
    resp = await client.post("/scim/v2/Bulk", json=body, headers=tenant.headers)
    assert resp.status == 200
    (result,) = (await resp.json())["Operations"]
    assert result["status"] == "503" and result["response"]["status"] == "503"


async def test_postgres_restart_under_load_gives_503_then_recovers_without_half_writes(
    aiohttp_client, settings, db, pg_proxy
):
    own = dataclasses.replace(settings, database_url=proxied_url(pg_proxy, settings.database_url))
    client = await aiohttp_client(create_app(own))
    tenant = await make_tenant(client)
    statuses: list[int] = []
    created: list[str] = []
    unavailable: list[tuple[str | None, dict[str, Any]]] = []
    stop = asyncio.Event()

    async def load() -> None:
        while not stop.is_set():
            resp = await client.post("/scim/v2/Users", json=user_body(unique_email()), headers=tenant.headers)
            body = await resp.json()
            statuses.append(resp.status)
            if resp.status == 201:
                created.append(body["id"])
            elif resp.status == 503:
                unavailable.append((resp.headers.get("Retry-After"), body))

    clients = [asyncio.create_task(load()) for _ in range(16)]
    try:
        await wait_until(lambda: len(created) >= 100, what="load to start")
        await pg_proxy.cut()  # PostgreSQL "restarts": every connection dies, in the middle of requests
        await pg_proxy.refuse()
        refused_at = time.monotonic()
        await wait_until(lambda: len(unavailable) >= 20, what="503s")
        await asyncio.sleep(max(0.0, 3 - (time.monotonic() - refused_at)))  # down for 3 s
        await pg_proxy.forward()
        back = len(statuses)
        # The service recovers by itself: the same app, the same pool, later requests succeed.
        await wait_until(lambda: statuses[back:].count(201) >= 100, what="recovery")
    finally:
        stop.set()
        await asyncio.gather(*clients)

    assert set(statuses) <= {201, 503}, {s: statuses.count(s) for s in set(statuses)}
    assert unavailable and all(
        retry is not None and int(retry) > 0 and body["status"] == "503" and body["schemas"] == [ERROR_SCHEMA]
        for retry, body in unavailable
    )
    # Never half a write: every user in the database (a 503'd write may have committed) has its outbox
    # row, and every acknowledged user is there.
    rows = await db.fetch(
        "SELECT u.id::text AS id, count(o.id) AS changes FROM users u "
        "LEFT JOIN outbox o ON o.resource_id = u.id AND o.resource_type = 'user' AND o.change = 'create' "
        "WHERE u.tenant_id = $1::uuid GROUP BY u.id",
        tenant.id,
    )
    assert all(r["changes"] == 1 for r in rows)
    assert set(created) <= {r["id"] for r in rows}
    orphans = await db.fetchval(
        "SELECT count(*) FROM outbox o WHERE o.tenant_id = $1::uuid AND o.resource_type = 'user' "
        "AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = o.resource_id)",
        tenant.id,
    )
    assert orphans == 0
