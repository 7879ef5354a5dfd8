"""A backlog spread over many organizations: how fast the worker's drains apply it.

    .venv/bin/python bench/backlog.py [--orgs 10000] [--per-org 2] [--drains 10] [--connections 5]
                                      [--together 50]

Each of `--orgs` organizations holds 20 applied users, with their applied outbox rows, when the outbox is
VACUUMed and analyzed (as autovacuum usually finds it: drained); then `--per-org` new users each arrive
with a pending `create` row, written by one SQL statement as the front end would have written them (no
HTTP, no Redis, so that only the drains are measured). `worker/user_drain.py:drain_tenant_users` then
applies every organization's rows, `--drains` at once on a pool of `--connections`, as a worker's jobs
would; with `--together N`, each drain takes N organizations at once, in one transaction, as the worker's
`drain_tenants` jobs do for organizations woken together (`worker/user_drain.py:drain_tenants_at_once`;
those it leaves are then drained on their own). Reported: rows applied per second, and the seconds.
What it guards: a drain reads its own organizations' pending rows only, whatever the planner believes
about how many are pending (store/outbox.py); when each drain read every organization's pending rows,
this rate fell as the backlog grew (550 users/s at 2 a organization; docs/performance-history.md, What
changed in this round: A backlog spread over many organizations).

Everything runs against the machine's PostgreSQL, in a database of this run's own (bench/harness.py's
`Run`, removed at the end). Results go to bench/results/backlog-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any
from uuid import UUID

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Run  # noqa: E402

from scimsvc.store.db import create_pool  # noqa: E402
from worker.user_drain import drain_tenant_users, drain_tenants_at_once  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
ORGS = """
INSERT INTO tenants (name, seats, flexible_licenses, default_license)
SELECT 'backlog-' || i, 0, true, 'free' FROM generate_series(1, $1) AS i
RETURNING id
"""
APPLIED = """
WITH u AS (
    INSERT INTO users (tenant_id, user_name, display_name, active, resource, license, provisioning_state)
    SELECT t, 'u' || i || '@backlog.example', 'User ' || i, true,
           jsonb_build_object('userName', 'u' || i || '@backlog.example', 'active', true),
           'free', 'provisioned'
    FROM unnest($1::uuid[]) AS t, generate_series(1, 20) AS i
    RETURNING id, tenant_id
)
INSERT INTO outbox (tenant_id, resource_type, resource_id, change, applied_at)
SELECT tenant_id, 'user', id, 'create', now() FROM u
"""
PENDING = """
WITH u AS (
    INSERT INTO users (tenant_id, user_name, display_name, active, resource)
    SELECT t, 'n' || i || '@backlog.example', 'New ' || i, true,
           jsonb_build_object('userName', 'n' || i || '@backlog.example', 'active', true)
    FROM unnest($1::uuid[]) AS t, generate_series(1, $2) AS i
    RETURNING id, tenant_id
)
INSERT INTO outbox (tenant_id, resource_type, resource_id, change, payload, request_id)
SELECT tenant_id, 'user', id, 'create', '{}', 'bench-' || id FROM u ORDER BY id
"""
UNAPPLIED = "SELECT count(*) FROM outbox WHERE applied_at IS NULL"


async def backlog(orgs: int, per_org: int, drains: int, connections: int, together: int) -> dict[str, Any]:
    async with Run() as run:
        tenants: list[UUID] = [r["id"] for r in await run.conn.fetch(ORGS, orgs)]
        await run.conn.execute(APPLIED, tenants)
        await run.conn.execute("VACUUM ANALYZE")
        await run.conn.execute(PENDING, tenants, per_org)
        pool = await create_pool(run.db_url, min_size=connections, max_size=connections)
        waiting = list(tenants)

        async def drain() -> int:
            applied = 0
            while waiting:
                if together > 1:
                    taken = [waiting.pop() for _ in range(min(together, len(waiting)))]
                    result = await drain_tenants_at_once(pool, taken)
                    applied += result.applied
                    for tenant in result.left:
                        applied += (await drain_tenant_users(pool, tenant)).applied
                else:
                    applied += (await drain_tenant_users(pool, waiting.pop())).applied
            return applied

        try:
            started = time.perf_counter()
            applied = sum(await asyncio.gather(*(drain() for _ in range(drains))))
            seconds = time.perf_counter() - started
        finally:
            await pool.close()
        left = await run.conn.fetchval(UNAPPLIED)
    return {
        "orgs": orgs,
        "per_org": per_org,
        "drains": drains,
        "connections": connections,
        "together": together,
        "applied": applied,
        "left_unapplied": left,
        "seconds": round(seconds, 2),
        "users_per_s": round(applied / seconds, 1),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orgs", type=int, default=10_000)
    parser.add_argument("--per-org", type=int, default=2)
    parser.add_argument("--drains", type=int, default=10)
    parser.add_argument("--connections", type=int, default=5)
    parser.add_argument("--together", type=int, default=0, help="organizations per drain (0: one)")
    args = parser.parse_args()
    result = asyncio.run(backlog(args.orgs, args.per_org, args.drains, args.connections, args.together))
    print(json.dumps(result), flush=True)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"backlog-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"JSON: {out}")


if __name__ == "__main__":
    main()
