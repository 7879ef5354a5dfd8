"""Typed keys for what the app and each request carry."""

from __future__ import annotations

from uuid import UUID

import asyncpg
from aiohttp import web
from arq.connections import ArqRedis

from scimsvc.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
REDIS = web.AppKey("redis", ArqRedis)

# Request-scoped values (aiohttp requests are keyed by plain strings).
REQUEST_ID = "scimsvc.request_id"
TENANT_ID = "scimsvc.tenant_id"

__all__ = ["SETTINGS", "POOL", "REDIS", "REQUEST_ID", "TENANT_ID", "UUID"]
