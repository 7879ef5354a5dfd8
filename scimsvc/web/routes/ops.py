"""Operators' endpoints: liveness, readiness, and queue health (the last needs the operator key)."""

from __future__ import annotations

from aiohttp import web
from aiohttp_apigami import docs, response_schema

from schemas.messages import HealthSchema, QueueHealthSchema, ReadySchema
from scimsvc.ops.queue_health import queue_health
from scimsvc.services.readiness import postgres_check
from scimsvc.web.keys import METRICS, POOL, REDIS, SETTINGS
from scimsvc.web.routes.responses import json_response

routes = web.RouteTableDef()
READY_TIMEOUT_SECONDS = 2


@routes.get("/ops/health")
@docs(tags=["Operations"], summary="Liveness (no I/O)")
@response_schema(HealthSchema, 200)
async def health(_: web.Request) -> web.Response:
    """Liveness: the process answers. No I/O, so a slow database never gets a web replica killed."""
    return json_response({"status": "ok"})


@routes.get("/ops/ready")
@docs(tags=["Operations"], summary="Readiness: PostgreSQL reachable with every migration applied")
@response_schema(ReadySchema, 200)
@response_schema(ReadySchema, 503, description="Not ready: the checks say why")
async def ready(request: web.Request) -> web.Response:
    """Readiness: this replica can accept SCIM writes, i.e. PostgreSQL is reachable and fully migrated.

    Redis is not checked: writes are accepted while it is down (the worker's sweeper queues them later),
    so a Redis outage must not take every replica out of the load balancer. /ops/queue reports Redis.
    """
    postgres = await postgres_check(request.app[POOL], within_seconds=READY_TIMEOUT_SECONDS)
    ok = postgres == "ok"
    body = {"status": "ready" if ok else "not ready", "checks": {"postgres": postgres}}
    return json_response(body, status=200 if ok else 503)


@routes.get("/ops/queue")
@docs(tags=["Operations"], summary="Queue health: queue, outbox lag, workers, verdict")
@response_schema(QueueHealthSchema, 200)
async def queue(request: web.Request) -> web.Response:
    """Queue health for operators (operator key): queue, outbox lag, workers and a verdict."""
    app = request.app
    return json_response(await queue_health(app[POOL], app[REDIS], app[SETTINGS]))


@routes.get("/metrics")
@docs(
    tags=["Operations"],
    summary="Prometheus metrics",
    responses={
        200: {
            "description": "Prometheus text format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format; the database gauges are read now."""
    app = request.app
    await app[METRICS].collect_database(app[POOL])
    return app[METRICS].render()
