"""Push SCIM groups of 1k, 10k and 50k members and report acknowledgement latency and apply time.

    .venv/bin/python bench/groups.py [--sizes 1000,10000,50000] [--rounds 3]

For each size: a team and its group are created, then the group is pushed (PUT with the full member
list) `--rounds` times, alternating two overlapping member lists (half the members change each time),
and a PATCH adds and removes 4,000 members. Reported per size: the PUT acknowledgement latency (HTTP
round trip), the time until the worker has applied it (from the acknowledgement until the outbox row is
stamped applied), and the same for the PATCH; the team is checked to equal the group afterwards.

Runs against the local PostgreSQL and Redis with its own database and queue (both removed at the end),
its own `scimsvc serve` and `scimsvc worker` processes (stopped by pid at the end), on 127.0.0.1 only.
Users are inserted with SQL (this measures groups, not user provisioning; see bench/provision.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
import time
import uuid
from typing import Any

import aiohttp
import asyncpg
import orjson
import redis.asyncio as aioredis
from harness import REDIS_URL, SERVER, forget_keys, free_port

from scimsvc.store.migrations import migrate

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
PATCH_MEMBERS = 4000


async def wait_applied(conn: asyncpg.Connection, group_id: str, *, since: float) -> float:
    """Seconds from `since` until no outbox row of the group is unapplied."""
    while await conn.fetchval(  # noqa: ASYNC110
        "SELECT count(*) FROM outbox WHERE resource_id = $1::uuid AND applied_at IS NULL", group_id
    ):
        await asyncio.sleep(0.01)
    return time.perf_counter() - since


async def timed(
    http: aiohttp.ClientSession, method: str, url: str, body: Any, headers: dict[str, str]
) -> float:
    data = orjson.dumps(body)
    start = time.perf_counter()
    async with http.request(method, url, data=data, headers=headers) as resp:
        await resp.read()
        assert resp.status in (200, 201, 204), (resp.status, await resp.text())
    return time.perf_counter() - start


async def bench_size(
    http: aiohttp.ClientSession,
    conn: asyncpg.Connection,
    *,
    base: str,
    admin: str,
    headers: dict[str, str],
    admin_headers: dict[str, str],
    user_ids: list[str],
    size: int,
    rounds: int,
) -> dict[str, Any]:
    name = f"bench-{size}"
    async with http.post(f"{admin}/teams", json={"name": name}, headers=admin_headers) as resp:
        assert resp.status == 201, await resp.text()
        team_id = (await resp.json())["id"]
    async with http.post(f"{base}/Groups", json={"displayName": name}, headers=headers) as resp:
        assert resp.status == 201, await resp.text()
        group_id = (await resp.json())["id"]
    # Two member lists that share half their users: each push adds size/2 and removes size/2.
    lists = [user_ids[:size], user_ids[size // 2 : size // 2 + size]]
    acks: list[float] = []
    applies: list[float] = []
    url = f"{base}/Groups/{group_id}?excludedAttributes=members"
    for i in range(rounds):
        members = [{"value": m} for m in lists[i % 2]]
        ack = await timed(http, "PUT", url, {"displayName": name, "members": members}, headers)
        applies.append(await wait_applied(conn, group_id, since=time.perf_counter()) + ack)
        acks.append(ack)
    current = lists[(rounds - 1) % 2]
    in_current = set(current)
    outside = [u for u in user_ids if u not in in_current][: PATCH_MEMBERS // 2]
    patch = {
        "schemas": [PATCH_OP],
        "Operations": [
            {"op": "add", "path": "members", "value": [{"value": m} for m in outside]},
            {
                "op": "remove",
                "path": "members",
                "value": [{"value": m} for m in current[: PATCH_MEMBERS // 2]],
            },
        ],
    }
    patch_ack = await timed(http, "PATCH", f"{base}/Groups/{group_id}", patch, headers)
    patch_apply = await wait_applied(conn, group_id, since=time.perf_counter()) + patch_ack
    get_start = time.perf_counter()
    async with http.get(f"{base}/Groups/{group_id}", headers=headers) as resp:
        full = await resp.read()
    get_full = time.perf_counter() - get_start
    differs = await conn.fetchval(
        """
        SELECT count(*) FROM (
            (SELECT user_id FROM group_members WHERE group_id = $1::uuid
             EXCEPT SELECT user_id FROM team_members WHERE team_id = $2::uuid)
            UNION ALL
            (SELECT user_id FROM team_members WHERE team_id = $2::uuid
             EXCEPT SELECT user_id FROM group_members WHERE group_id = $1::uuid)
        ) d
        """,
        group_id,
        team_id,
    )
    assert differs == 0, f"team and group differ by {differs} users"
    return {
        "members": size,
        "put_body_kb": round(len(orjson.dumps({"members": [{"value": m} for m in lists[0]]})) / 1024),
        "put_ack_ms_median": round(statistics.median(acks) * 1000, 1),
        "put_ack_ms_max": round(max(acks) * 1000, 1),
        "put_applied_s_median": round(statistics.median(applies), 3),
        "put_applied_s_max": round(max(applies), 3),
        "patch_4000_ack_ms": round(patch_ack * 1000, 1),
        "patch_4000_applied_s": round(patch_apply, 3),
        "get_with_members_ms": round(get_full * 1000, 1),
        "get_body_kb": round(len(full) / 1024),
    }


async def main(sizes: list[int], rounds: int) -> list[dict[str, Any]]:
    run = uuid.uuid4().hex[:8]
    db_url = f"{SERVER}/scimsvc_bench_{run}"
    port = free_port()
    admin_key = secrets.token_urlsafe(16)
    env = {
        **os.environ,
        "SCIMSVC_DATABASE_URL": db_url,
        "SCIMSVC_REDIS_URL": REDIS_URL,
        "SCIMSVC_QUEUE_NAME": f"scimsvc:bench:{run}:queue",
        "SCIMSVC_LOG_LEVEL": "WARNING",
        "SCIMSVC_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "SCIMSVC_ADMIN_KEY": admin_key,
        "SCIMSVC_RATE_LIMIT_ENABLED": "false",
    }
    await migrate(db_url)
    procs = []
    try:
        out = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "scimsvc.cli",
            "tenant",
            "create",
            "bench",
            env=env,
            stdout=asyncio.subprocess.PIPE,
        )
        text = (await out.communicate())[0].decode()
        token = next(line.split()[-1] for line in text.splitlines() if line.startswith("SCIM token:"))
        tenant_id = next(line.split()[-1] for line in text.splitlines() if line.startswith("tenant id:"))
        total_users = max(sizes) + max(sizes) // 2 + PATCH_MEMBERS
        conn = await asyncpg.connect(db_url)
        rows = await conn.fetch(
            """
            INSERT INTO users (tenant_id, user_name, display_name, resource)
            SELECT $1::uuid, n, 'Bench ' || i, jsonb_build_object('userName', n, 'displayName', 'Bench ' || i)
            FROM (SELECT i, 'u' || i || '@bench.example' AS n FROM generate_series(1, $2) AS i) AS s
            RETURNING id::text
            """,
            tenant_id,
            total_users,
        )
        user_ids = [r[0] for r in rows]
        procs.append(
            await asyncio.create_subprocess_exec(
                sys.executable, "-m", "scimsvc.cli", "serve", "--port", str(port), env=env
            )
        )
        procs.append(
            await asyncio.create_subprocess_exec(sys.executable, "-m", "scimsvc.cli", "worker", env=env)
        )
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
        admin_headers = {"Authorization": f"Bearer {admin_key}"}
        base = f"http://127.0.0.1:{port}/scim/v2"
        admin = f"http://127.0.0.1:{port}/admin/v1/tenants/{tenant_id}"
        results = []
        try:
            async with aiohttp.ClientSession() as http:
                for _ in range(100):
                    try:
                        async with http.get(f"{base}/ServiceProviderConfig", headers=headers) as resp:
                            if resp.status == 200:
                                break
                    except aiohttp.ClientError:
                        await asyncio.sleep(0.1)
                for size in sizes:
                    results.append(
                        await bench_size(
                            http,
                            conn,
                            base=base,
                            admin=admin,
                            headers=headers,
                            admin_headers=admin_headers,
                            user_ids=user_ids,
                            size=size,
                            rounds=rounds,
                        )
                    )
        finally:
            await conn.close()
        return results
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            await proc.wait()
        admin_conn = await asyncpg.connect(f"{SERVER}/postgres")
        try:
            await admin_conn.execute(f'DROP DATABASE IF EXISTS "scimsvc_bench_{run}" WITH (FORCE)')
        finally:
            await admin_conn.close()
        client = aioredis.from_url(REDIS_URL)
        try:
            await forget_keys(client, f"scimsvc:bench:{run}")
        finally:
            await client.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000,10000,50000")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    figures = asyncio.run(main([int(s) for s in args.sizes.split(",")], args.rounds))
    for row in figures:
        print("  ".join(f"{k}={v}" for k, v in row.items()))
    print(json.dumps(figures))
