"""Every request counted and timed by its route template, for /metrics (scimsvc/ops/metrics.py)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from scimsvc.ops.metrics import WebMetrics
from scimsvc.web.route_template import UNMATCHED, route_template

# Methods counted by name; any other (a client may send any token as a method) is counted as `other`, so
# that no client can add series to /metrics.
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
OTHER_METHOD = "other"


def client_gone(request: web.BaseRequest) -> bool:
    """Whether the client has closed its connection (no answer can reach it)."""
    transport = request.transport
    return transport is None or transport.is_closing()


class RequestCounts:
    """The request counter's and the latency histogram's series of each route template, method and
    status, looked up once: prometheus_client's `labels` converts, checks and takes a lock on every call.
    Bounded like the series themselves (route templates, METHODS and `other`, HTTP statuses)."""

    def __init__(self, metrics: WebMetrics) -> None:
        self.metrics = metrics
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def count(self, request: web.Request, status: int, seconds: float) -> None:
        """Count one answered (or given up) request and its time from the first middleware on."""
        route = route_template(request) or UNMATCHED
        method = request.method if request.method in METHODS else OTHER_METHOD
        key = (route, method, status)
        series = self._series.get(key)
        if series is None:
            metrics = self.metrics
            series = self._series[key] = (
                metrics.requests.labels(route, method, str(status)),
                metrics.latency.labels(route, method),
            )
        series[0].inc()
        series[1].observe(seconds)


REQUEST_COUNTS = web.AppKey("request_counts", RequestCounts)  # the app's, over its METRICS
