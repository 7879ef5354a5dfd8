"""The per-request keys on a Redis of their own, and on a Redis Cluster (README.md, Running at scale,
Redis): the limiter's budget across replicas, a master killed during traffic, a shard lost, a node stopped,
the whole cluster restarted, a slot moved; page cursors; the arq queue stays where it was.

The cluster is this test's own (tests/redis_cluster.py): six redis-server processes on free ports.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from redis.cluster import key_slot

from scimsvc.ratelimit.limiter_redis import CLUSTER_CALL_SECONDS, REDIS_ERRORS, limiter_redis_client
from scimsvc.ratelimit.token_bucket import TokenBucket
from scimsvc.settings import Settings, SettingsError
from scimsvc.web.app import create_app
from scimsvc.web.keys import LIMITER_REDIS, REDIS
from tests.conftest import (
    QUEUE_NAME,
    REDIS_URL,
    Processes,
    Tenant,
    make_tenant,
    post_user,
    unique_email,
    user_body,
    wait_until,
)
from tests.redis_cluster import RedisClusterNodes
from tests.test_rate_limits import (
    assert_budget_and_refill,
    limited_tenant,
    own_prefix,
    replicas_admit_exactly_the_budget,
    send_alternately,
    serve_two,
)
from tests.test_users_list import list_users

WAIT_SECONDS = 60


def own_cluster(home: Path, *, masters: int, replicas: int) -> Iterator[RedisClusterNodes]:
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.skip("redis-server and redis-cli are not installed: this test builds a Redis Cluster")
    cluster = RedisClusterNodes(home, masters=masters, replicas=replicas)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def redis_cluster(tmp_path: Path) -> Iterator[RedisClusterNodes]:
    """A Redis Cluster of this test's own (3 masters, 3 replicas), every node killed at the end."""
    yield from own_cluster(tmp_path / "cluster", masters=3, replicas=1)


@pytest.fixture(params=[(1, 0), (3, 1)], ids=["one-master", "3-masters-3-replicas"])
def any_cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RedisClusterNodes]:
    """A cluster of one master alone, then one of 3 masters and 3 replicas."""
    masters, replicas = request.param
    yield from own_cluster(tmp_path / "cluster", masters=masters, replicas=replicas)


def on_cluster(cluster: RedisClusterNodes, **env: str) -> dict[str, str]:
    """The environment of a `scimsvc serve` whose per-request keys are on `cluster`."""
    return {"SCIMSVC_LIMITER_REDIS_URL": cluster.url, "SCIMSVC_LIMITER_REDIS_CLUSTER": "on", **env}


def bucket_key(prefix: str, tenant_id: str) -> str:
    """The key of a tenant's bucket (scimsvc/ratelimit/limiter.py: RateLimiter._key)."""
    return f"{prefix}:tenant:{{{tenant_id}}}"


async def closed_on_cluster(
    aiohttp_client: Any, settings: Settings, cluster: RedisClusterNodes, prefix: str
) -> tuple[Any, Tenant]:
    """A front end whose limiter is on `cluster`, closed on errors, asking the cluster on every request
    (no leases); a tenant it has answered once with rate-limit headers."""
    closed = dataclasses.replace(
        settings,
        limiter_redis_url=cluster.url,
        limiter_redis_cluster=True,
        rate_limit_prefix=prefix,
        rate_limit_on_redis_error="closed",
        rate_limit_lease_ms=0,
    )
    client = await aiohttp_client(create_app(closed))
    tenant = await make_tenant(client)
    resp = await client.get("/scim/v2/Users", headers=tenant.headers)
    assert resp.status == 200 and "RateLimit-Limit" in resp.headers
    return client, tenant


# --- where the keys live -------------------------------------------------------------------------------


async def test_by_default_the_limiter_shares_the_queue_client(aiohttp_client, settings):
    client = await aiohttp_client(create_app(settings))
    assert client.app[LIMITER_REDIS] is client.app[REDIS]  # one pool: no extra connection or round trip


async def test_a_limiter_redis_of_its_own_holds_the_buckets_and_the_queue_stays(
    aiohttp_client, settings, own_redis, db
):
    prefix = own_prefix()
    app = create_app(dataclasses.replace(settings, limiter_redis_url=own_redis.url, rate_limit_prefix=prefix))
    client = await aiohttp_client(app)
    tenant = await make_tenant(client)
    resp = await client.post("/scim/v2/Users", json=user_body(unique_email()), headers=tenant.headers)
    assert resp.status == 201 and "RateLimit-Remaining" in resp.headers
    limiter, queue = aioredis.from_url(own_redis.url), aioredis.from_url(REDIS_URL)
    try:
        assert await limiter.exists(bucket_key(prefix, tenant.id)) == 1
        assert await queue.exists(bucket_key(prefix, tenant.id)) == 0
        assert await limiter.zcard(QUEUE_NAME) == 0  # the wake-up went to the queue's Redis

        async def woken() -> bool:
            jobs = [await queue.get(b"arq:job:" + job_id) for job_id in await queue.zrange(QUEUE_NAME, 0, -1)]
            return any(job and tenant.id.encode() in job for job in jobs)

        await wait_until(woken, what="the drain job on the queue's Redis", within=WAIT_SECONDS)
    finally:
        await limiter.aclose()
        await queue.aclose()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("", "SCIMSVC_LIMITER_REDIS_CLUSTER=on needs SCIMSVC_LIMITER_REDIS_URL"),
        ("redis://127.0.0.1:7000/3", "SCIMSVC_LIMITER_REDIS_URL must use database 0"),
        ("redis://127.0.0.1:7000?db=2", "SCIMSVC_LIMITER_REDIS_URL must use database 0"),
        (
            "unix:///run/redis.sock",
            "must start with redis:// or rediss:// when SCIMSVC_LIMITER_REDIS_CLUSTER",
        ),
    ],
)
def test_a_cluster_url_names_a_node_and_database_0(monkeypatch, url, expected):
    monkeypatch.setenv("SCIMSVC_LIMITER_REDIS_CLUSTER", "on")
    monkeypatch.setenv("SCIMSVC_LIMITER_REDIS_URL", url)
    with pytest.raises(SettingsError, match=expected):
        Settings.from_env()
    monkeypatch.setenv("SCIMSVC_LIMITER_REDIS_URL", "redis://127.0.0.1:7000/0")
    assert Settings.from_env().limiter_url == "redis://127.0.0.1:7000/0"


# --- on a Redis Cluster --------------------------------------------------------------------------------


async def test_two_replicas_admit_exactly_the_budget_on_a_cluster(
    client, database_url, processes, redis_cluster
):
    prefix = own_prefix()
    env = on_cluster(redis_cluster, SCIMSVC_RATE_LIMIT_PREFIX=prefix)
    tenant = await replicas_admit_exactly_the_budget(client, database_url, processes, **env)
    assert redis_cluster.keys(bucket_key(prefix, tenant.id))  # the bucket was the cluster's


async def tenants_on_one_master(
    client: Any, cluster: RedisClusterNodes, prefix: str, credits: int
) -> list[Any]:
    """Two tenants whose buckets are on one master: the first with the default budget, the second with
    `credits` (tenants are made until one lands there: each does with a chance of one in three)."""
    first = await make_tenant(client)
    master = cluster.master_of(bucket_key(prefix, first.id))
    for _ in range(40):
        second = await limited_tenant(client, credits)
        if cluster.master_of(bucket_key(prefix, second.id)) is master:
            return [first, second]
    raise AssertionError(f"40 tenants made and none had its bucket on the master at port {master.port}")


class Traffic:
    """GET /Users of one tenant, one request at a time to each replica, until stopped: every answer's
    status and headers, by replica."""

    def __init__(self, replicas: list[str], tenant: Any) -> None:
        self.replicas = replicas
        self.tenant = tenant
        self.answers: list[tuple[str, int, dict[str, str]]] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        async with aiohttp.ClientSession() as http:

            async def one_sender(n: int) -> None:
                while not self._stop.is_set():
                    base = self.replicas[n % len(self.replicas)]
                    url = f"{base}/scim/v2/Users?count=1"
                    async with http.get(url, headers=self.tenant.headers) as resp:
                        await resp.read()
                        self.answers.append((base, resp.status, dict(resp.headers)))

            await asyncio.gather(*(one_sender(n) for n in range(len(self.replicas))))

    def since(self, count: int) -> list[tuple[str, int, dict[str, str]]]:
        return self.answers[count:]

    async def stop(self) -> None:
        self._stop.set()
        assert self._task is not None
        await asyncio.wait_for(self._task, WAIT_SECONDS)


@pytest.mark.parametrize("mode", ["open", "closed"])
async def test_a_master_killed_during_traffic_never_gives_a_500_and_the_limit_is_exact_after_failover(
    client, database_url, processes: Processes, redis_cluster: RedisClusterNodes, mode: str
):
    """Two `scimsvc serve` processes with traffic of one tenant; its bucket's master is killed, and its
    replica held back from taking over until both processes have met the error (so each request in
    between is one the open or closed rule decides). Then the replica takes over, both processes use the
    bucket again, and another tenant's fresh budget on that master is exact across them."""
    cluster = redis_cluster
    prefix = own_prefix()
    busy, fresh = await tenants_on_one_master(client, cluster, prefix, 5000)
    replicas = await serve_two(
        processes,
        database_url=database_url,
        **on_cluster(cluster, SCIMSVC_RATE_LIMIT_PREFIX=prefix, SCIMSVC_RATE_LIMIT_ON_REDIS_ERROR=mode),
    )
    master = cluster.master_of(bucket_key(prefix, busy.id))
    replica = cluster.replica_of(master)
    replica.ask("CONFIG", "SET", "cluster-replica-no-failover", "yes")  # until the errors are seen

    traffic = Traffic(replicas, busy)
    traffic.start()

    def limited_by_redis_on_each_replica(since: int) -> bool:
        answered = {base for base, status, headers in traffic.since(since) if "RateLimit-Limit" in headers}
        return answered == set(replicas)

    await wait_until(
        lambda: limited_by_redis_on_each_replica(0),
        what="both replicas to answer with rate-limit headers",
        within=WAIT_SECONDS,
    )
    await asyncio.to_thread(cluster.kill, master)

    def logged_on_each_replica() -> bool:
        procs = processes.procs
        return all("rate limiter cannot reach Redis" in processes.stderr(proc) for proc in procs)

    await wait_until(
        logged_on_each_replica, what="both replicas to log that Redis cannot be reached", within=WAIT_SECONDS
    )
    replica.ask("CONFIG", "SET", "cluster-replica-no-failover", "no")
    await asyncio.to_thread(cluster.wait_taken_over, replica)
    after_failover = len(traffic.answers)
    await wait_until(
        lambda: limited_by_redis_on_each_replica(after_failover),
        what="both replicas to answer from the bucket again after the failover",
        within=WAIT_SECONDS,
    )
    await traffic.stop()

    statuses = [status for _, status, _ in traffic.answers]
    assert 500 not in statuses
    if mode == "open":
        assert set(statuses) == {200}, sorted(set(statuses))
        # Some were admitted without a bucket's word (no rate-limit headers) while the master was gone.
        assert any("RateLimit-Limit" not in headers for _, _, headers in traffic.answers)
    else:
        assert set(statuses) == {200, 503}, sorted(set(statuses))
        refused = [headers for _, status, headers in traffic.answers if status == 503]
        assert all(int(headers["Retry-After"]) >= 1 for headers in refused)

    # A fresh budget on the master that took over: exactly the budget (+ refill), across both replicas.
    statuses, elapsed = await send_alternately(replicas, fresh, 400)
    assert_budget_and_refill(statuses, elapsed, credits=5000)
    assert replica.ask("EXISTS", bucket_key(prefix, fresh.id)) == 1


async def test_a_walk_through_start_index_reads_by_key_on_a_cluster(aiohttp_client, settings, redis_cluster):
    """The cursor of each page is kept on the cluster (and not on the queue's Redis); a user deleted
    behind the walk neither shifts its next page nor changes its total (by OFFSET both would)."""
    on = dataclasses.replace(settings, limiter_redis_url=redis_cluster.url, limiter_redis_cluster=True)
    client = await aiohttp_client(create_app(on))
    tenant = await make_tenant(client)
    ids = [(await post_user(client, tenant))["id"] for _ in range(250)]
    queue = aioredis.from_url(REDIS_URL)
    pattern = f"{QUEUE_NAME}:cursor:{tenant.id}:*"

    async def hint_stored(offset: int) -> None:
        await wait_until(
            lambda: redis_cluster.keys(f"{pattern}:{offset}"),
            what=f"the cursor of the page at offset {offset} on the cluster",
            within=WAIT_SECONDS,
        )

    try:
        page = await list_users(client, tenant, "startIndex=1&count=100")
        assert [r["id"] for r in page["Resources"]] == ids[:100] and page["totalResults"] == 250
        await hint_stored(100)
        resp = await client.delete(f"/scim/v2/Users/{ids[1]}", headers=tenant.headers)
        assert resp.status == 204
        page = await list_users(client, tenant, "startIndex=101&count=100")
        assert [r["id"] for r in page["Resources"]] == ids[100:200] and page["totalResults"] == 250
        await hint_stored(200)
        page = await list_users(client, tenant, "startIndex=201&count=100")
        assert [r["id"] for r in page["Resources"]] == ids[200:] and page["totalResults"] == 250
        assert [k async for k in queue.scan_iter(match=pattern)] == []
    finally:
        await queue.aclose()


async def test_a_cluster_restarted_whole_answers_503_meanwhile_and_is_found_again(
    aiohttp_client, settings, any_cluster: RedisClusterNodes, monkeypatch
):
    """Every node down: 503 with Retry-After (closed), never a 500; every node back on its port: the
    limiter finds the cluster again, though each node failed once (redis-py forgets a node that failed
    from those it reads the topology from; scimsvc/ratelimit/limiter_redis.py: LimiterCluster)."""
    cluster = any_cluster
    # Each request asks the cluster, none skips it for a while after an error: the first finds the
    # connection gone, the next ones no node at all.
    monkeypatch.setattr("scimsvc.ratelimit.limiter.REDIS_RETRY_SECONDS", 0)
    client, tenant = await closed_on_cluster(aiohttp_client, settings, cluster, own_prefix())
    await asyncio.to_thread(cluster.stop)
    for _ in range(3):
        resp = await client.get("/scim/v2/Users", headers=tenant.headers)
        assert resp.status == 503 and "Retry-After" in resp.headers, await resp.text()
    await asyncio.to_thread(cluster.restart)

    async def limited_again() -> bool:
        resp = await client.get("/scim/v2/Users", headers=tenant.headers)
        assert resp.status in (200, 503), await resp.text()
        return resp.status == 200 and "RateLimit-Limit" in resp.headers

    await wait_until(limited_again, what="the limiter to reach the restarted cluster", within=WAIT_SECONDS)


async def test_a_master_that_answers_nothing_costs_a_request_a_bounded_wait_then_503(
    aiohttp_client, settings, redis_cluster: RedisClusterNodes
):
    """A master that accepts connections and answers nothing (SIGSTOP): each call to it ends at its
    timeouts (ratelimit/limiter_redis.py), the request gets 503 with Retry-After (closed), not a hang or a
    500; once the node is back (or its replica took over) the bucket answers again."""
    cluster = redis_cluster
    prefix = own_prefix()
    client, tenant = await closed_on_cluster(aiohttp_client, settings, cluster, prefix)
    master = cluster.master_of(bucket_key(prefix, tenant.id))
    # Its replica held back from taking over while the master is silent: on a slow machine the failover
    # (tests/redis_cluster.py:NODE_TIMEOUT_MS) could come before the request's timeouts and answer it.
    replica = cluster.replica_of(master)
    replica.ask("CONFIG", "SET", "cluster-replica-no-failover", "yes")
    cluster.pause(master)
    try:
        # Bounded by the client's own deadline only to fail rather than hang if the bound were lost.
        resp = await client.get(
            "/scim/v2/Users", headers=tenant.headers, timeout=aiohttp.ClientTimeout(total=WAIT_SECONDS)
        )
        assert resp.status == 503 and "Retry-After" in resp.headers, await resp.text()
    finally:
        cluster.resume(master)
        replica.ask("CONFIG", "SET", "cluster-replica-no-failover", "no")

    async def limited_again() -> bool:
        resp = await client.get("/scim/v2/Users", headers=tenant.headers)
        assert resp.status in (200, 503), await resp.text()
        return resp.status == 200 and "RateLimit-Limit" in resp.headers

    await wait_until(limited_again, what="the bucket to answer again", within=WAIT_SECONDS)


async def test_a_bucket_moved_to_another_master_during_traffic_stays_exact(
    aiohttp_client, settings, redis_cluster: RedisClusterNodes
):
    """Its slot moved under traffic (resharding): requests find the bucket through ASK while it moves and
    MOVED after, every one decided by the bucket (no Redis error, so nothing admitted unlimited), and the
    budget is exact."""
    cluster = redis_cluster
    prefix = own_prefix()
    every_request_asks = dataclasses.replace(
        settings,
        limiter_redis_url=cluster.url,
        limiter_redis_cluster=True,
        rate_limit_prefix=prefix,
        rate_limit_lease_ms=0,
    )
    client = await aiohttp_client(create_app(every_request_asks))
    tenant = await limited_tenant(client, 5000)  # 100 L1 requests
    key = bucket_key(prefix, tenant.id)
    slot = key_slot(key.encode())
    source = cluster.master_of(key)
    target = next(
        n for n in cluster.nodes if n is not source and n.info("replication").get("role") == "master"
    )
    answers = []

    async def send(requests: int) -> None:
        for _ in range(requests):
            resp = await client.get("/scim/v2/Users?count=1", headers=tenant.headers)
            answers.append((resp.status, "RateLimit-Limit" in resp.headers))

    started = time.monotonic()
    await send(30)
    await asyncio.to_thread(cluster.begin_moving, slot, source, target)
    await send(30)  # the bucket is still on the source
    assert await asyncio.to_thread(cluster.move_keys, slot, source, target) == 1
    await send(30)  # ASK: the source no longer has it
    await asyncio.to_thread(cluster.end_moving, slot, target)
    await send(30)  # MOVED: the slot is the target's
    elapsed = time.monotonic() - started

    assert all(limited for _, limited in answers), "a request was not decided by the bucket"
    assert_budget_and_refill([status for status, _ in answers], elapsed, credits=5000)
    assert {status for status, _ in answers} == {200, 429}
    assert target.ask("EXISTS", key) == 1
    assert source.ask("CLUSTER", "COUNTKEYSINSLOT", str(slot)) == 0
    redirected = source.info("errorstats")  # the source answered ASK, then MOVED, and both were followed
    assert "errorstat_ASK" in redirected and "errorstat_MOVED" in redirected, redirected


async def test_a_shard_lost_whole_gives_503_for_every_tenant_not_a_500(
    aiohttp_client, settings, redis_cluster: RedisClusterNodes
):
    """A master and its replica both gone: the cluster is down (CLUSTERDOWN, by the servers' default
    cluster-require-full-coverage), also for tenants on the masters still running; closed: 503 with
    Retry-After, never a 500."""
    cluster = redis_cluster
    prefix = own_prefix()
    client, tenant = await closed_on_cluster(aiohttp_client, settings, cluster, prefix)
    served = cluster.master_of(bucket_key(prefix, tenant.id))
    lost = next(n for n in cluster.nodes if n is not served and n.info("replication").get("role") == "master")
    lost_replica = cluster.replica_of(lost)
    await asyncio.to_thread(cluster.kill, lost_replica)
    await asyncio.to_thread(cluster.kill, lost)
    await asyncio.to_thread(cluster.wait_ok, [n for n in cluster.nodes if n.alive], "fail")
    resp = await client.get("/scim/v2/Users", headers=tenant.headers)
    assert resp.status == 503 and "Retry-After" in resp.headers, await resp.text()


async def test_what_a_cluster_call_raises_while_a_master_dies_is_a_redis_error(
    settings, redis_cluster: RedisClusterNodes
):
    """The limiter fails open or closed on `REDIS_ERRORS` and lets anything else through (a 500): so
    whatever redis-py's cluster client raises when a master dies must be in it. 64 bucket calls at a time
    for tenants on every master, no pause after an error; a master killed three times. The client then
    closes every node's connections under the calls in flight, and one caught half connected finds its
    writer gone (an AttributeError, not a RedisError)."""
    cluster = redis_cluster
    redis = limiter_redis_client(
        dataclasses.replace(settings, limiter_redis_url=cluster.url, limiter_redis_cluster=True), queue=None
    )
    bucket = TokenBucket(redis)
    prefix = own_prefix()
    tenants = [f"{prefix}:tenant:{{{uuid.uuid4()}}}" for _ in range(300)]
    answered: list[int] = []
    raised: list[BaseException] = []
    stop = asyncio.Event()

    async def caller(n: int) -> None:
        while not stop.is_set():
            try:
                async with asyncio.timeout(CLUSTER_CALL_SECONDS):
                    await bucket.take(tenants[(n * 7 + len(answered)) % len(tenants)], capacity=10**9, cost=1)
                answered.append(n)
            except Exception as exc:  # noqa: BLE001 - what the test is about
                raised.append(exc)
                await asyncio.sleep(0.01)

    async def answers(more: int) -> None:
        counted = len(answered)
        await wait_until(lambda: len(answered) >= counted + more, what=f"{more} answers", within=WAIT_SECONDS)

    callers = [asyncio.create_task(caller(n)) for n in range(64)]
    try:
        for round_ in range(3):
            await answers(500)
            masters = [n for n in cluster.nodes if n.alive and n.info("replication").get("role") == "master"]
            victim = masters[round_ % len(masters)]
            replica = cluster.replica_of(victim)
            await asyncio.to_thread(cluster.kill, victim)
            await asyncio.to_thread(cluster.wait_taken_over, replica)
            await asyncio.to_thread(cluster.restart)  # the killed node comes back as a replica
        await answers(500)
    finally:
        stop.set()
        await asyncio.gather(*callers)
        await redis.aclose()
    assert raised, "no call failed while its master was down"
    others = {repr(exc) for exc in raised if not isinstance(exc, REDIS_ERRORS)}
    assert not others, sorted(others)
