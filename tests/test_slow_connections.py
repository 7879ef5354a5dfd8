"""A client that is slow to send a request, or idle between requests, loses its connection at a bound
(SCIMSVC_HEADER_READ_SECONDS, SCIMSVC_BODY_READ_SECONDS, SCIMSVC_KEEPALIVE_SECONDS; README.md,
Configuration), while a client sending at a reasonable pace is served as before.

Each test runs a real `scimsvc serve` with small bounds and talks raw HTTP/1.1 over sockets. A closed
connection is seen as the end of the stream (a read returning nothing), never assumed after a sleep; the
only timed assertion is the generous upper bound that is the feature (several times the setting).
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

import orjson

from tests.conftest import (
    WAITING_ON_LOCKS,
    Tenant,
    hold_user_name,
    service_env,
    unique_email,
    user_body,
    wait_until,
)

BOUND = 10  # times the setting within which the server must have closed: only a hang fails it
PACE = 0.1  # seconds between the pieces a slow-but-reasonable client sends


def _env(database_url: str, *, head: int = 60, body: int = 60, keepalive: int = 60) -> dict[str, str]:
    # The bounds a test does not exercise stay far above the one it does, so only that one can close.
    return service_env(
        database_url,
        SCIMSVC_HEADER_READ_SECONDS=str(head),
        SCIMSVC_BODY_READ_SECONDS=str(body),
        SCIMSVC_KEEPALIVE_SECONDS=str(keepalive),
        SCIMSVC_LOG_LEVEL="INFO",
        SCIMSVC_ACCESS_LOG="off",
    )


async def _connect(base: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    parts = urlsplit(base)
    return await asyncio.open_connection(parts.hostname, parts.port)


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    """Everything the server sends until it closes the connection, which must happen within `seconds`."""
    received = b""
    async with asyncio.timeout(seconds):
        while chunk := await _read(reader):
            received += chunk
    return received


async def _read(reader: asyncio.StreamReader) -> bytes:
    """The next bytes the server sends; b"" once it has closed the connection (a reset too: bytes a test
    wrote after the server closed are answered with one)."""
    try:
        return await reader.read(65536)
    except ConnectionResetError:
        return b""


async def _answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 answer with a Content-Length: status, headers (lower case), body."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 60)
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
    body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 60)
    return int(status_line.split()[1]), headers, body


def _user_request(tenant: Tenant, body: bytes, *, length: int | None = None) -> bytes:
    return (
        "POST /scim/v2/Users HTTP/1.1\r\n"
        "Host: scim.test\r\n"
        f"Authorization: Bearer {tenant.token}\r\n"
        "Content-Type: application/scim+json\r\n"
        f"Content-Length: {len(body) if length is None else length}\r\n\r\n"
    ).encode() + body


async def test_a_connection_that_never_finishes_its_headers_is_closed(processes, settings):
    base = await processes.serve(_env(settings.database_url, head=1))
    silent_reader, silent = await _connect(base)  # sends nothing at all
    reader, writer = await _connect(base)
    writer.write(b"GET /ops/health HTTP/1.1\r\nHost: scim.test\r\nX-Slow: ")
    await writer.drain()

    assert await _closed_within(reader, BOUND * 1) == b""  # no answer: there is no request to answer
    assert await _closed_within(silent_reader, BOUND * 1) == b""
    writer.close()
    silent.close()
    proc = processes.procs[-1]
    await processes.until_line(proc, "SCIMSVC_HEADER_READ_SECONDS")
    assert "Traceback" not in processes.stderr(proc)


async def test_headers_sent_a_byte_at_a_time_are_cut_at_the_bound_not_kept_alive_by_each_byte(
    processes, settings
):
    base = await processes.serve(_env(settings.database_url, head=1))
    reader, writer = await _connect(base)
    started = time.monotonic()
    request = b"GET /ops/health HTTP/1.1\r\nHost: scim.test\r\nX-Slow: " + b"a" * 10_000
    for byte in request:
        writer.write(bytes([byte]))
        try:
            assert await asyncio.wait_for(_read(reader), PACE) == b""
            break  # closed
        except TimeoutError:
            pass  # still open: the next byte
    else:
        raise AssertionError("the server kept a connection whose headers never ended")
    assert time.monotonic() - started < BOUND * 1
    writer.close()


async def test_two_hundred_stalled_connections_are_all_closed_and_others_are_served(processes, settings):
    base = await processes.serve(_env(settings.database_url, head=2))
    stalled = []
    for _ in range(200):
        reader, writer = await _connect(base)
        writer.write(b"POST /scim/v2/Users HTTP/1.1\r\nHost: scim.test\r\n")
        stalled.append((reader, writer))

    reader, writer = await _connect(base)  # meanwhile a client sending at once is answered
    writer.write(b"GET /ops/health HTTP/1.1\r\nHost: scim.test\r\n\r\n")
    status, _, _ = await _answer(reader)
    assert status == 200
    writer.close()

    answers = await asyncio.gather(*(_closed_within(r, BOUND * 2) for r, _ in stalled))
    assert answers == [b""] * 200
    for _, w in stalled:
        w.close()


async def test_a_body_that_trickles_in_is_answered_408_and_the_connection_closed(
    processes, settings, tenant, db
):
    proc_env = _env(settings.database_url, body=2)
    base = await processes.serve(proc_env)
    reader, writer = await _connect(base)
    user_name = unique_email()
    body = orjson.dumps(user_body(user_name)) + b" " * 100_000  # far more than the trickle can send
    request = _user_request(tenant, body)
    head_end = request.index(b"\r\n\r\n") + 4
    writer.write(request[:head_end])
    started = time.monotonic()
    sent = head_end
    while True:  # a byte per PACE until the server answers: it must not wait for the rest
        writer.write(request[sent : sent + 1])
        sent += 1
        try:
            first = await asyncio.wait_for(_read(reader), PACE)
            break
        except TimeoutError:
            assert time.monotonic() - started < BOUND * 2, "no answer to a body that never ends"

    answer = first + await _closed_within(reader, BOUND * 2)
    head, _, error = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), answer[:300]
    assert orjson.loads(error)["status"] == "408"
    assert "did not arrive within 2 s" in orjson.loads(error)["detail"]
    writer.close()
    users = await db.fetchval("SELECT count(*) FROM users WHERE tenant_id = $1::uuid", tenant.id)
    assert users == 0
    proc = processes.procs[-1]
    await processes.until_line(proc, "SCIMSVC_BODY_READ_SECONDS")
    assert "Traceback" not in processes.stderr(proc)


async def test_an_idle_kept_alive_connection_is_closed_after_the_keepalive_bound(processes, settings):
    base = await processes.serve(_env(settings.database_url, keepalive=1))
    reader, writer = await _connect(base)
    writer.write(b"GET /ops/health HTTP/1.1\r\nHost: scim.test\r\n\r\n")
    status, headers, _ = await _answer(reader)
    assert status == 200 and headers.get("connection", "").lower() != "close"

    assert await _closed_within(reader, BOUND * 1) == b""
    writer.close()


async def test_requests_sent_piece_by_piece_at_a_reasonable_pace_are_served_on_one_connection(
    processes, settings, tenant, db
):
    base = await processes.serve(_env(settings.database_url, head=5, body=5, keepalive=5))
    reader, writer = await _connect(base)
    for _ in range(2):  # the second on the kept-alive connection: its bounds start anew
        user_name = unique_email()
        request = _user_request(tenant, orjson.dumps(user_body(user_name)))
        size = len(request) // 6 + 1
        pieces = [request[i : i + size] for i in range(0, len(request), size)]
        for piece in pieces:  # head and body each in several writes, PACE apart
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(PACE)
        status, _, answer = await _answer(reader)
        assert status == 201, answer
        assert orjson.loads(answer)["userName"] == user_name
    writer.close()
    users = await db.fetchval("SELECT count(*) FROM users WHERE tenant_id = $1::uuid", tenant.id)
    assert users == 2


async def test_a_request_answered_slowly_is_not_cut_by_the_read_bounds(processes, settings, tenant, db):
    base = await processes.serve(_env(settings.database_url, head=1, body=1, keepalive=1))
    user_name = unique_email("slow-answer")
    holder, tx = await hold_user_name(settings.database_url, tenant, user_name)  # the POST waits on it
    try:
        reader, writer = await _connect(base)
        writer.write(_user_request(tenant, orjson.dumps(user_body(user_name))))
        await wait_until(
            lambda: db.fetchval(WAITING_ON_LOCKS), what="the POST to wait for the user name's lock"
        )
        # A connection opened now and closed by the server shows that the bounds have passed since.
        idle_reader, idle = await _connect(base)
        assert await _closed_within(idle_reader, BOUND * 1) == b""
        idle.close()
        await tx.rollback()
        status, _, answer = await _answer(reader)
        assert status == 201, answer
        assert orjson.loads(answer)["userName"] == user_name
        writer.close()
    finally:
        await holder.close()


async def test_stalled_connections_do_not_hold_up_a_graceful_stop(processes, settings):
    base = await processes.serve(_env(settings.database_url))  # bounds of 60 s: all still open at the stop
    stalled = [await _connect(base) for _ in range(50)]
    for _, writer in stalled[:25]:
        writer.write(b"GET /ops/health HTTP/1.1\r\nHost: scim.test\r\n")
    proc = processes.procs[-1]
    assert await processes.stop(proc) == 0
    assert "Traceback" not in processes.stderr(proc)
    for _, writer in stalled:
        writer.close()


UNPARSABLE = {
    # A NUL in a header value (any client can send one).
    "nul": (b"GET /ops/health HTTP/1.1\r\nHost: scim.test\r\nX-Broken: a\x00b\r\n\r\n", "not valid HTTP/1.1"),
    # A filter too long for the URL (aiohttp's limit is 8190 bytes a line): its text must not come back.
    "long": (
        b"GET /scim/v2/Users?filter="
        + b"userName%20eq%20%22secret-" * 400
        + b" HTTP/1.1\r\nHost: scim.test\r\n\r\n",
        "POST /scim/v2/Users/.search",
    ),
    "twice": (
        b"POST /scim/v2/Users HTTP/1.1\r\nHost: scim.test\r\nContent-Type: application/scim+json\r\n"
        b"Content-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}",
        "Duplicate 'Content-Type' header",
    ),
}


async def test_a_request_aiohttp_cannot_parse_is_a_scim_400_and_no_traceback(processes, settings):
    # aiohttp answers these before any middleware, in plain text quoting the request, and logs a traceback
    # at ERROR; scimsvc/web/read_deadlines.py renders them as SCIM errors, and
    # scimsvc/ops/logs.py:OneLineBadRequests makes the log one DEBUG line; the access log keeps the 400.
    env = {**_env(settings.database_url), "SCIMSVC_ACCESS_LOG": "on"}
    base = await processes.serve(env)
    for name, (request, detail) in UNPARSABLE.items():
        reader, writer = await _connect(base)
        writer.write(request)
        await writer.drain()
        answer = await _closed_within(reader, 60)
        writer.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith((b"HTTP/1.0 400", b"HTTP/1.1 400")), (name, answer[:80])
        error = orjson.loads(body)
        assert error["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"], name
        assert error["status"] == "400" and detail in error["detail"], (name, error)
        assert b"secret" not in body, name
    proc = processes.procs[-1]
    await processes.until_line(proc, " 400 ")
    assert "Traceback" not in processes.stderr(proc)
    assert '"level":"error"' not in processes.stderr(proc)
