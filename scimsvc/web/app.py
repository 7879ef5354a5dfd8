"""The aiohttp application: every resource with a lifetime and every middleware, in order."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web
from arq.connections import ArqRedis

from scimsvc.ops.metrics import WebMetrics
from scimsvc.ratelimit.limiter import RateLimiter
from scimsvc.ratelimit.limiter_redis import limiter_redis_client, warm_up
from scimsvc.services.wakeups import wakeups_sent
from scimsvc.settings import Settings, parse_networks
from scimsvc.store.db import create_pool
from scimsvc.store.new_users import new_user_inserts
from scimsvc.store.user_deletes import user_deletes
from scimsvc.store.user_reads import user_reads
from scimsvc.store.user_updates import user_updates
from scimsvc.web.access_log import access_log_writer, handler_args
from scimsvc.web.console import setup_console
from scimsvc.web.console.access import console_middleware
from scimsvc.web.keys import (
    LIMITER,
    LIMITER_REDIS,
    METRICS,
    NEW_USERS,
    POOL,
    REDIS,
    SETTINGS,
    TOKEN_CACHE,
    USER_DELETES,
    USER_READS,
    USER_UPDATES,
)
from scimsvc.web.listeners import listener_middleware
from scimsvc.web.middlewares import SCIM_PREFIX, auth_middleware, error_middleware
from scimsvc.web.openapi import setup_openapi
from scimsvc.web.provisioning_log import provisioning_log_middleware, provisioning_log_writer
from scimsvc.web.request_frame import request_middleware
from scimsvc.web.request_metrics import REQUEST_COUNTS, RequestCounts
from scimsvc.web.routes import (
    admin,
    admin_boards,
    admin_events,
    admin_log,
    admin_portal,
    admin_stats,
    admin_teams,
    admin_webhooks,
    discovery,
    ops,
    scim_bulk,
    scim_groups,
    scim_search,
    scim_users,
)
from scimsvc.web.routes.scim_paths import add_scim_path_aliases
from scimsvc.web.token_cache import TokenCache


async def pg_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    app[POOL] = await create_pool(
        settings.database_url,
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        wait_seconds=settings.db_wait_seconds,
        pooler=settings.database_pooler,
    )
    app[NEW_USERS] = new_user_inserts(app[POOL])
    app[USER_UPDATES] = user_updates(app[POOL])
    app[USER_DELETES] = user_deletes(app[POOL])
    app[USER_READS] = user_reads(app[POOL])
    app[TOKEN_CACHE] = TokenCache(
        app[POOL],
        settings.direct_url,  # LISTEN holds a session: never through a transaction pooler
        ttl=settings.token_cache_seconds,
        counted=app[METRICS].token_looked_up,
    )
    app[TOKEN_CACHE].start()
    yield
    await app[TOKEN_CACHE].stop()
    await app[POOL].close()


async def token_use_writer(app: web.Application) -> AsyncIterator[None]:
    """After `pg_context`: writes when SCIM tokens were last used, every `SCIMSVC_TOKEN_LAST_USED_SECONDS`
    in one statement, and once more before the pool closes (scimsvc/web/token_cache.py)."""
    cache, interval = app[TOKEN_CACHE], app[SETTINGS].token_last_used_seconds

    async def write_forever() -> None:
        while True:
            await asyncio.sleep(interval)
            await cache.write_uses()

    writer = asyncio.create_task(write_forever())
    yield
    writer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await writer
    await cache.write_uses()  # the last requests' uses


async def redis_context(app: web.Application) -> AsyncIterator[None]:
    # No connection is made here: the front end must start, and acknowledge writes, while Redis is down.
    app[REDIS] = ArqRedis.from_url(
        app[SETTINGS].redis_url, socket_connect_timeout=1, socket_timeout=2, retry_on_timeout=False
    )
    # The per-request keys (rate limits, failed-auth counters, page cursors): the same client when they
    # share the queue's Redis, else a Redis or Redis Cluster of their own (README.md, Running at scale,
    # Redis).
    app[LIMITER_REDIS] = limiter_redis_client(app[SETTINGS], queue=app[REDIS])
    app[LIMITER] = RateLimiter(app[LIMITER_REDIS], app[SETTINGS], app[METRICS])
    warming = asyncio.create_task(warm_up(app[LIMITER_REDIS]))
    yield
    warming.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await warming
    await wakeups_sent(app[REDIS])  # wake-ups of the last requests go out before the client closes
    if app[LIMITER_REDIS] is not app[REDIS]:
        await app[LIMITER_REDIS].aclose()
    await app[REDIS].aclose()


def create_app(settings: Settings) -> web.Application:
    """The web front end: SCIM under /scim/v2, the admin API under /admin/v1."""
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        handler_args=handler_args(settings.access_log),  # the access log (scimsvc/web/access_log.py), or none
        middlewares=[
            # First: the access log's clock (its duration covers every middleware), the request id, and
            # the metrics' count and time of every answer, errors and 429s included.
            request_middleware,
            # The provisioning log sees every SCIM answer, errors rendered (scimsvc/web/provisioning_log.py).
            *([provisioning_log_middleware] if settings.provisioning_log else []),
            error_middleware,
            # With an internal port: the operator's paths are 404 on the main one (scimsvc/web/listeners.py).
            *([listener_middleware] if settings.internal_port else []),
            auth_middleware,  # and a SCIM request's rate limit (scimsvc/web/rate_limiting.py:charged)
            console_middleware,  # /console/: sign-in, CSRF, errors as pages
        ],
    )
    parse_networks(settings.trusted_proxies)  # a bad SCIMSVC_TRUSTED_PROXIES stops start-up, not a request
    app[SETTINGS] = settings
    app[METRICS] = WebMetrics()
    app[REQUEST_COUNTS] = RequestCounts(app[METRICS])
    app.cleanup_ctx.append(pg_context)
    app.cleanup_ctx.append(token_use_writer)  # after pg_context: its last write goes before the pool closes
    app.cleanup_ctx.append(redis_context)
    app.cleanup_ctx.append(access_log_writer)
    app.cleanup_ctx.append(
        provisioning_log_writer
    )  # after pg_context: its last rows go before the pool closes
    app.add_routes(discovery.routes)
    app.add_routes(scim_users.routes)
    app.add_routes(scim_groups.routes)
    app.add_routes(scim_search.routes)
    app.add_routes(scim_bulk.routes)
    app.add_routes(admin.routes)
    app.add_routes(admin_teams.routes)
    app.add_routes(admin_boards.routes)
    app.add_routes(admin_webhooks.routes)
    app.add_routes(admin_log.routes)
    app.add_routes(admin_events.routes)
    app.add_routes(admin_portal.routes)
    app.add_routes(admin_stats.routes)
    app.add_routes(ops.routes)
    add_scim_path_aliases(app, SCIM_PREFIX)  # after the SCIM routes: /scim/v2/users, /Users/ reach them too
    setup_openapi(app)  # last: documents every route above, at start-up
    setup_console(app)  # HTML pages under /console/, after the API routes (not part of the API document)
    return app
