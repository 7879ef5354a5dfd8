"""Prometheus metrics of the web front end, served at /metrics.

Counters and histograms are per replica (Prometheus sums them). The outbox, webhook and seat gauges are read
from PostgreSQL, so every replica reports the same values: aggregate them with max(). No series has a
tenant label: the scrape has the same series however many organizations there are; per-organization
figures are the admin API's (`GET /admin/v1/tenants/{tid}/stats`). The seat totals count over every user,
so they are refreshed at most every SEAT_TOTALS_SECONDS, not on each scrape.
Workers expose their job metrics on their own port (`worker.telemetry`).

With `scimsvc serve --processes N` (N > 1), the processes write their values to files in
PROMETHEUS_MULTIPROC_DIR (prometheus_client's multiprocess mode, set up by the parent) and any of them
answers a scrape with the sum over all of them (README.md, Several processes). A single process keeps its
values in memory even when the variable is set (scimsvc/ops/metrics_folder.py).
"""

from __future__ import annotations

import os
import time
from typing import Final

import asyncpg
from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from scimsvc.ops.metrics_folder import MULTIPROCESS_DIR
from scimsvc.store import ops, webhook_deliveries

# How stale the seat totals may be: counting every full license is a scan of an index over all users.
SEAT_TOTALS_SECONDS = 10.0
# The multiprocess mode of the database gauges: every process reads the same values, the newest wins.
SHARED: Final = "mostrecent"
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class WebMetrics:
    """One app's metrics, in their own registry (several apps can live in one process, as in tests)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "scimsvc_http_requests",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "scimsvc_http_request_duration_seconds",
            "Time to answer, by route template and method",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.rate_limited = Counter(
            "scimsvc_rate_limited",
            "Requests refused with 429, by level (per organization: the admin API's stats)",
            ["level"],
            registry=r,
        )
        self.rate_limit_redis_errors = Counter(
            "scimsvc_rate_limit_redis_errors", "Rate-limit checks that could not reach Redis", registry=r
        )
        self.token_lookups = Counter(
            "scimsvc_token_lookups",
            "SCIM bearer tokens looked up in PostgreSQL (not answered from memory), by outcome",
            ["outcome"],
            registry=r,
        )
        self.provisioning_log_dropped = Counter(
            "scimsvc_provisioning_log_dropped_rows",
            "Provisioning log rows lost: the buffer was full, or their batch could not be written",
            ["reason"],
            registry=r,
        )
        self.outbox_pending = Gauge(
            "scimsvc_outbox_pending_rows", "Outbox rows not yet applied", registry=r, multiprocess_mode=SHARED
        )
        self.outbox_lag = Gauge(
            "scimsvc_outbox_lag_seconds",
            "Age of the oldest unapplied outbox row (0 when none)",
            registry=r,
            multiprocess_mode=SHARED,
        )
        # Webhooks, across every tenant (no tenant or endpoint label: the series stay few).
        self.webhook_pending = Gauge(
            "scimsvc_webhook_deliveries_pending",
            "Webhook deliveries not yet delivered nor given up",
            registry=r,
            multiprocess_mode=SHARED,
        )
        self.webhook_oldest = Gauge(
            "scimsvc_webhook_oldest_undelivered_seconds",
            "Age of the oldest pending webhook delivery (0 when none)",
            registry=r,
            multiprocess_mode=SHARED,
        )
        self.webhook_due_wait = Gauge(
            "scimsvc_webhook_due_wait_seconds",
            "How long the longest-due webhook delivery has waited for a worker (0 when none)",
            registry=r,
            multiprocess_mode=SHARED,
        )
        self.webhook_failing = Gauge(
            "scimsvc_webhook_endpoints_failing",
            "Enabled webhook endpoints whose attempts fail",
            registry=r,
            multiprocess_mode=SHARED,
        )
        self.webhook_disabled = Gauge(
            "scimsvc_webhook_endpoints_disabled",
            "Disabled webhook endpoints",
            registry=r,
            multiprocess_mode=SHARED,
        )
        # Totals over every organization (one series each, whatever their number).
        self.tenants = Gauge("scimsvc_tenants", "Organizations", registry=r, multiprocess_mode=SHARED)
        self.seats = Gauge(
            "scimsvc_seats",
            "Seats of every organization's subscription",
            registry=r,
            multiprocess_mode=SHARED,
        )
        self.seats_used = Gauge(
            "scimsvc_seats_used",
            "Full licenses held, in every organization",
            registry=r,
            multiprocess_mode=SHARED,
        )
        self.tenants_over_allocated = Gauge(
            "scimsvc_tenants_over_allocated",
            "Organizations whose full licenses exceed their seats (seats lowered below use)",
            registry=r,
            multiprocess_mode=SHARED,
        )
        self._seat_totals_at = float("-inf")  # the first scrape counts

    def token_looked_up(self, found: bool) -> None:
        """Count one token lookup in PostgreSQL: found (valid) or refused (unknown or revoked)."""
        self.token_lookups.labels("found" if found else "refused").inc()

    async def collect_database(self, pool: asyncpg.Pool) -> None:
        """Refresh the gauges that come from PostgreSQL (called on each scrape)."""
        lag = await ops.outbox_lag(pool, limit=0)
        self.outbox_pending.set(lag.pending_rows)
        self.outbox_lag.set(lag.oldest_age_seconds or 0)
        hooks = await webhook_deliveries.backlog(pool)
        self.webhook_pending.set(hooks.pending)
        self.webhook_oldest.set(hooks.oldest_age_seconds or 0)
        self.webhook_due_wait.set(hooks.oldest_due_seconds or 0)
        self.webhook_failing.set(hooks.failing_endpoints)
        self.webhook_disabled.set(hooks.disabled_endpoints)
        now = time.monotonic()
        if now - self._seat_totals_at >= SEAT_TOTALS_SECONDS:
            totals = await ops.seat_totals(pool)
            self._seat_totals_at = now
            self.tenants.set(totals["tenants"])
            self.seats.set(totals["seats"])
            self.seats_used.set(totals["used"])
            self.tenants_over_allocated.set(totals["over_allocated"])

    def render(self) -> web.Response:
        """The Prometheus text: this registry, or every process's values in multiprocess mode."""
        registry = self.registry
        folder = os.environ.get(MULTIPROCESS_DIR)
        if folder:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=folder)
        response = web.Response(body=generate_latest(registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response


# nginx's "client closed request": what metrics and the access log count when the client left before
# its answer, so that 5xx mean server faults.
CLIENT_CLOSED_REQUEST = 499
