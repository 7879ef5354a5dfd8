"""Export N users as CSV through the admin API; report time, rows/s and the server's peak memory.

    .venv/bin/python bench/export_csv.py [--users 100000]

Shows that `GET users.csv` streams: the server's peak RSS should not grow with N. Uses its own
database (removed at the end) and its own `scimsvc serve` process (stopped by pid), on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid

import aiohttp
import asyncpg
from harness import SERVER, free_port, peak_rss_mb

from scimsvc.store.migrations import migrate

ADMIN_KEY = "bench-admin-key"

# Users with every exported attribute set, written in one statement.
SEED_USERS = """
INSERT INTO users (tenant_id, user_name, display_name, active, resource, license, provisioning_state)
SELECT $1, 'user' || i || '@bench.example', 'User, "' || i || '"', i % 10 <> 0,
       jsonb_build_object(
           'userName', 'user' || i || '@bench.example',
           'displayName', 'User, "' || i || '"',
           'name', jsonb_build_object('givenName', 'Given' || i, 'familyName', 'Family' || i),
           'userType', 'Employee',
           'roles', jsonb_build_array(jsonb_build_object('value', 'member', 'primary', true)),
           'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User',
               jsonb_build_object('employeeNumber', i::text, 'department', 'Dept ' || (i % 50))
       ),
       CASE WHEN i % 3 = 0 THEN 'full' ELSE 'free_restricted' END, 'provisioned'
FROM generate_series(1, $2) AS i
"""


async def main(users: int) -> dict[str, float]:
    run = uuid.uuid4().hex[:8]
    db_url = f"{SERVER}/scimsvc_bench_{run}"
    port = free_port()
    env = {
        **os.environ,
        "SCIMSVC_DATABASE_URL": db_url,
        "SCIMSVC_ADMIN_KEY": ADMIN_KEY,
        "SCIMSVC_QUEUE_NAME": f"scimsvc:bench:{run}:queue",
        "SCIMSVC_LOG_LEVEL": "WARNING",
    }
    await migrate(db_url)
    server = None
    try:
        conn = await asyncpg.connect(db_url)
        try:
            tenant_id = await conn.fetchval(
                "INSERT INTO tenants (name, seats) VALUES ('bench', $1) RETURNING id", users
            )
            started = time.perf_counter()
            await conn.execute(SEED_USERS, tenant_id, users)
            print(f"seeded {users} users in {time.perf_counter() - started:.1f} s")
        finally:
            await conn.close()
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "scimsvc.cli", "serve", "--port", str(port), env=env
        )
        base = f"http://127.0.0.1:{port}/admin/v1/tenants/{tenant_id}"
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                try:
                    async with http.get(base, headers=headers) as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            rss_before = peak_rss_mb(server.pid)
            started = time.perf_counter()
            size = lines = 0
            async with http.get(f"{base}/users.csv", headers=headers) as resp:
                assert resp.status == 200, await resp.text()
                async for chunk in resp.content.iter_chunked(1 << 16):
                    size += len(chunk)
                    lines += chunk.count(b"\n")
            elapsed = time.perf_counter() - started
        return {
            "users": users,
            "csv_lines": lines,  # header + one per user (quoted fields hold no newline here)
            "seconds": round(elapsed, 2),
            "rows_per_s": round(users / elapsed),
            "megabytes": round(size / 1e6, 1),
            "server_peak_rss_mb_before": round(rss_before, 1),
            "server_peak_rss_mb_after": round(peak_rss_mb(server.pid), 1),
        }
    finally:
        if server is not None and server.returncode is None:
            server.terminate()
            await server.wait()
        conn = await asyncpg.connect(f"{SERVER}/postgres")
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "scimsvc_bench_{run}" WITH (FORCE)')
        finally:
            await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=100_000)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.users)), indent=2))
