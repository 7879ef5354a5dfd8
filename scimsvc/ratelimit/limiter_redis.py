"""The Redis of the per-request keys (README.md, Running at scale, Redis): rate-limit buckets and leases,
failed-auth counters, page cursors. One Redis, or a Redis Cluster (`SCIMSVC_LIMITER_REDIS_CLUSTER`); the
arq queue stays on `SCIMSVC_REDIS_URL`, which arq needs to be a single Redis.

A request never waits long for these keys: their callers fail open or closed (`limiter.py`) or read
without them (`services/page_cursors.py`) on any error in `REDIS_ERRORS`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import SSLConnection, parse_url
from redis.exceptions import RedisClusterException, RedisError

from scimsvc.settings import Settings

log = logging.getLogger(__name__)

LimiterRedis = Redis | RedisCluster
# What a call may raise when the keys cannot be read or written: redis-py's errors, a socket's, the
# cluster client's own (no reachable node, a slot no node serves), which are not RedisErrors, uvloop's
# RuntimeError for a write on a transport that closed under it (a node killed while the cluster client
# reconnects; seen by the scale-out rehearsal, bench/rehearsal.py), and an AttributeError: a cluster call
# that fails closes every node's connections (`aclose`), under the calls still in flight, and one between
# its connect and its write finds the writer gone (`None.writelines`; seen by the rehearsal as a 500, and
# by tests/test_redis_cluster.py). Only Redis calls are guarded by it.
REDIS_ERRORS = (RedisError, RedisClusterException, OSError, RuntimeError, AttributeError)
# The same short timeouts as the queue's client (scimsvc/web/app.py): a request never hangs on Redis.
CONNECT_SECONDS = 1
READ_SECONDS = 2
# The longest one call to a cluster may take in all: it may read the topology again and retry once.
CLUSTER_CALL_SECONDS = 3


class LimiterCluster(RedisCluster):
    """A Redis Cluster client that always finds the cluster again from the node its URL names.

    redis-py drops a node a call failed on from the nodes it reads the topology from, and learns them
    again only from a topology it could read: a cluster whose every node it dropped that way (a master
    alone, restarted) would never be found again.
    """

    def __init__(self, *, host: str, port: int, **kwargs: Any) -> None:
        super().__init__(host=host, port=port, **kwargs)
        self._seed = (host, port)

    async def initialize(self) -> RedisCluster:
        if self._initialize:
            host, port = self._seed
            seed = ClusterNode(host, port, **self.connection_kwargs)
            self.nodes_manager.startup_nodes.setdefault(seed.name, seed)  # tried after the known nodes
        return await super().initialize()


def limiter_redis_client(settings: Settings, *, queue: Redis) -> LimiterRedis:
    """The client of the per-request keys: `queue` itself when they share its Redis (no second pool, no
    extra round trip), else a client of `settings.limiter_url`; no connection is made here."""
    url = settings.limiter_url
    if not settings.limiter_redis_cluster:
        if url == settings.redis_url:
            return queue
        return Redis.from_url(
            url, socket_connect_timeout=CONNECT_SECONDS, socket_timeout=READ_SECONDS, retry_on_timeout=False
        )
    options: dict[str, Any] = dict(
        socket_connect_timeout=CONNECT_SECONDS,
        socket_timeout=READ_SECONDS,
        # A shard without a master fails only its own keys (when the servers allow it), not every call.
        require_full_coverage=False,
        # A refused node is not retried where it is: the topology is read again and the call retried once
        # (MOVED and ASK redirections are followed apart from this).
        connection_error_retry_attempts=0,
        cluster_error_retry_attempts=1,
    )
    # As RedisCluster.from_url reads a URL (the query's options win), less the database: settings.py
    # lets only 0 through with a cluster.
    parsed: dict[str, Any] = dict(parse_url(url))
    if parsed.pop("connection_class", None) is SSLConnection:
        parsed["ssl"] = True
    parsed.pop("db", None)
    return LimiterCluster(**{"port": 6379, **options, **parsed})  # type: ignore[abstract]


async def warm_up(client: LimiterRedis) -> None:
    """Read a cluster's topology before the first request needs it (a page cursor waits 50 ms at most);
    a cluster out of reach is only logged: the first requests read it again."""
    if not isinstance(client, RedisCluster):
        return
    try:
        async with asyncio.timeout(CLUSTER_CALL_SECONDS):
            await client.initialize()
    except REDIS_ERRORS as exc:
        log.warning("the Redis Cluster of the per-request keys cannot be reached yet (%r)", exc)
