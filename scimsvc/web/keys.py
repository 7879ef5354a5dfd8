"""Typed keys for what the app and each request carry."""

from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import UUID

import asyncpg
from aiohttp import web
from arq.connections import ArqRedis

from scimsvc.ops.metrics import WebMetrics
from scimsvc.ratelimit.limiter import RateLimiter
from scimsvc.ratelimit.limiter_redis import LimiterRedis
from scimsvc.scim.errors import ScimError
from scimsvc.settings import Settings
from scimsvc.store.batches import Batcher
from scimsvc.web.token_cache import TokenCache

if TYPE_CHECKING:
    from scimsvc.web.provisioning_log import LogBuffer

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
REDIS = web.AppKey("redis", ArqRedis)  # the arq queue's
# The per-request keys' (ratelimit/limiter_redis.py): REDIS itself, another Redis or a Redis Cluster.
LIMITER_REDIS: web.AppKey[LimiterRedis] = web.AppKey("limiter_redis")
TOKEN_CACHE = web.AppKey("token_cache", TokenCache)
NEW_USERS = web.AppKey("new_users", Batcher)  # store.new_users.new_user_inserts of the POOL
USER_UPDATES = web.AppKey("user_updates", Batcher)  # store.user_updates.user_updates of the POOL
USER_DELETES = web.AppKey("user_deletes", Batcher)  # store.user_deletes.user_deletes of the POOL
USER_READS = web.AppKey("user_reads", Batcher)  # store.user_reads.user_reads of the POOL
LIMITER = web.AppKey("rate_limiter", RateLimiter)
METRICS = web.AppKey("metrics", WebMetrics)
# The provisioning log's rows waiting for their batch (web/provisioning_log.py); absent when it is off.
PROVISIONING_LOG: web.AppKey[LogBuffer] = web.AppKey("provisioning_log")

REQUEST_ID = web.RequestKey("request_id", str)
TENANT_ID = web.RequestKey("tenant_id", UUID)
# The tenant a valid token names, set before its SCIM-disabled check: the provisioning log records the
# 403 too. Only the log reads it; routes use TENANT_ID.
LOG_TENANT_ID = web.RequestKey("log_tenant_id", UUID)
ALLOWED_DOMAINS = web.RequestKey("allowed_domains", tuple)
RATE_LIMIT = web.RequestKey("rate_limit", dict)  # the tenant's rate_limit setting
RATE_HEADERS = web.RequestKey("rate_headers", dict)  # what its charge left in the tenant's bucket
# For the provisioning log (web/provisioning_log.py): the parsed body (read once, by the route), the
# refusal the error middleware rendered, and the outbox ids the request's writes recorded.
SCIM_BODY = web.RequestKey("scim_body", object)
REFUSAL = web.RequestKey("refusal", ScimError)
WRITTEN: web.RequestKey[list[int]] = web.RequestKey("written")
