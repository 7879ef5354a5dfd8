"""A client that leaves before its answer is a disconnect (499), never a 5xx or "database unavailable"."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from scimsvc.web.keys import METRICS
from scimsvc.web.middlewares import error_middleware
from scimsvc.web.request_frame import request_middleware
from tests.conftest import wait_until


def requests_counted(client, route: str, status: str) -> float:
    value = client.app[METRICS].registry.get_sample_value(
        "scimsvc_http_requests_total", {"route": route, "method": "POST", "status": status}
    )
    return value or 0.0


async def test_a_client_that_closes_mid_body_is_a_disconnect_not_a_server_fault(client, tenant, db, caplog):
    caplog.set_level(logging.INFO)
    users_before = await db.fetchval("SELECT count(*) FROM users WHERE tenant_id = $1::uuid", tenant.id)
    server = client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    head = (
        "POST /scim/v2/Users HTTP/1.1\r\n"
        f"Host: {server.host}\r\n"
        f"Authorization: Bearer {tenant.token}\r\n"
        "Content-Type: application/scim+json\r\n"
        "Content-Length: 1000\r\n\r\n"
    )
    writer.write(head.encode() + b'{"userName": "half')  # 18 of the 1,000 bytes announced
    await writer.drain()
    writer.close()
    await writer.wait_closed()

    statuses = ("499", "500", "503")
    await wait_until(
        lambda: sum(requests_counted(client, "/scim/v2/Users", s) for s in statuses) >= 1,
        what="the request to end",
    )
    assert [requests_counted(client, "/scim/v2/Users", s) for s in statuses] == [1, 0, 0]
    messages = [r.getMessage() for r in caplog.records]
    assert any("client closed the connection before the answer" in m for m in messages)
    assert not any("database unavailable" in m or "unhandled error" in m for m in messages)
    users_after = await db.fetchval("SELECT count(*) FROM users WHERE tenant_id = $1::uuid", tenant.id)
    assert users_after == users_before


async def test_a_streamed_answer_that_fails_after_it_began_is_cut_short_not_followed_by_an_error_body(
    aiohttp_client, caplog
):
    """A CSV export whose database goes away mid-stream: the client gets a broken transfer (it can tell),
    never a second status line written inside the 200's body; the failure is one warning line, counted
    as 503."""

    async def export(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/csv"})
        await response.prepare(request)
        await response.write(b"id,userName\n" * 1000)
        raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")

    app = web.Application(middlewares=[request_middleware, error_middleware])
    app.router.add_get("/export", export)
    client = await aiohttp_client(app)
    with caplog.at_level(logging.WARNING, logger="scimsvc.web.middlewares"):
        resp = await client.get("/export")
        assert resp.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()
    lines = [r for r in caplog.records if r.name == "scimsvc.web.middlewares"]
    assert [r.levelname for r in lines] == ["WARNING"] and "broke off" in lines[0].getMessage()
    assert all(r.exc_info is None for r in lines)
