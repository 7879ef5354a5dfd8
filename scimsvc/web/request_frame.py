"""What every request passes first: the access log's clock, the request id, the metrics' count and time.

One middleware, not three: each middleware is a call and a coroutine more on every request.
"""

from __future__ import annotations

import asyncio
import os
import re
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from scimsvc.ops import logs
from scimsvc.ops.metrics import CLIENT_CLOSED_REQUEST
from scimsvc.web.access_log import STARTED
from scimsvc.web.keys import REQUEST_ID
from scimsvc.web.request_metrics import REQUEST_COUNTS, client_gone

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


@web.middleware
async def request_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost, what every request passes through once: the access log's clock, the request id
    (`X-Request-Id` taken if it is sane, else made; echoed on the response) and the request's count and
    time in the metrics, by route template (so errors and 429s are counted)."""
    started = request[STARTED] = time.perf_counter()  # the access log's duration covers every middleware
    given = request.headers.get("X-Request-Id")
    # 32 random hex digits, as uuid4().hex gave, without building a UUID on every request.
    request_id = given if given and _REQUEST_ID.fullmatch(given) else os.urandom(16).hex()
    request[REQUEST_ID] = request_id
    token = logs.REQUEST_ID.set(request_id)  # every log line of this request carries it
    status = 500
    try:
        response = await handler(request)
        status = response.status
    except web.HTTPException as exc:
        status = exc.status
        exc.headers["X-Request-Id"] = request_id
        raise
    except asyncio.CancelledError:  # aiohttp cancels a handler whose client left mid-body
        status = CLIENT_CLOSED_REQUEST if client_gone(request) else 500
        raise
    finally:
        logs.REQUEST_ID.reset(token)
        counts = request.app.get(REQUEST_COUNTS)  # none in an app without metrics (tests' small apps)
        if counts is not None:
            counts.count(request, status, time.perf_counter() - started)
    response.headers["X-Request-Id"] = request_id
    return response
