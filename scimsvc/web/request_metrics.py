"""Every request counted and timed by its route template, for /metrics (scimsvc/ops/metrics.py)."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from scimsvc.ops.metrics import CLIENT_CLOSED_REQUEST
from scimsvc.web.keys import METRICS
from scimsvc.web.route_template import UNMATCHED, route_template

# Methods counted by name; any other (a client may send any token as a method) is counted as `other`, so
# that no client can add series to /metrics.
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
OTHER_METHOD = "other"


def client_gone(request: web.BaseRequest) -> bool:
    """Whether the client has closed its connection (no answer can reach it)."""
    transport = request.transport
    return transport is None or transport.is_closing()


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count and time every request by route template (outermost, so errors and 429s are counted)."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except asyncio.CancelledError:  # aiohttp cancels a handler whose client left mid-body
        status = CLIENT_CLOSED_REQUEST if client_gone(request) else 500
        raise
    finally:
        metrics = request.app[METRICS]
        route = route_template(request) or UNMATCHED
        method = request.method if request.method in METHODS else OTHER_METHOD
        metrics.requests.labels(route, method, str(status)).inc()
        metrics.latency.labels(route, method).observe(time.perf_counter() - started)
