"""The cost of events: the worker's drain rate of a wave of users with SCIMSVC_EVENTS on and off.

    .venv/bin/python bench/events_cost.py [--rounds 4] [--users 20000] [--wave deactivate|create]

Each round drains two waves of `--users` users, one with a worker whose events are on and one with a
worker whose events are off, the first of the two alternating from round to round, because this
machine's speed drifts within minutes. A wave is a tenant of its own whose pending user rows are written
by one SQL statement, as the front end would have written them (users and their outbox rows; no HTTP,
so that only the worker is measured):
- deactivate (an Okta deactivation wave): provisioned users, each with a license (a third of them full),
  set inactive with a `deactivate` row each: the worker applies the deactivation and frees the license
  (with events: user.deactivated and license.changed, two events a user);
- create: new users with a `create` row each, seats for half of them (user.created and license.changed).

The worker is started for its wave and sent one `drain_users` job, as the front end's wake-up would be;
the clock starts when its first batch has committed and stops when the last row is applied: users/s is
the rows applied in between over that time. The CPU per user of the worker and of the PostgreSQL
backends serving it (its connections carry an application_name of their own) is read from /proc over
the same span. The summary is the median over the rounds of on/off, and of the CPU ratio off/on: the
drain is one transaction at a time, worker and PostgreSQL in turn, so its rate follows that CPU, and the
CPU ratio holds when other work on the machine makes the rates swing (the target, README.md,
Performance: on ≥ 0.85 × off).

Everything runs on 127.0.0.1 against the machine's PostgreSQL and Redis, in a database and Redis key
prefix of this run's own (bench/harness.py's `Run`, removed at the end), with processes it starts and
stops by pid. Results go to bench/results/events-cost-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from arq.connections import RedisSettings, create_pool

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (  # noqa: E402
    PENDING,
    REDIS_URL,
    Proc,
    Run,
    backends_cpu_seconds,
    backends_cpu_spent,
    wait_http,
    with_application_name,
)

from scimsvc.enqueue import enqueue_drain_users  # noqa: E402

HERE = Path(__file__).resolve().parent
WORKER_APP = "bench_events_worker"  # the application_name of the worker's connections

# Provisioned users, each with a license (every third full), already applied.
SEED_PROVISIONED = """
INSERT INTO users (tenant_id, user_name, display_name, active, resource, license, provisioning_state)
SELECT $1::uuid, 'u' || i || '.' || $3 || '@bench.example', 'User ' || i, true,
       jsonb_build_object('userName', 'u' || i || '.' || $3 || '@bench.example', 'displayName', 'User ' || i,
                          'name', jsonb_build_object('givenName', 'Given' || i, 'familyName', 'Family' || i),
                          'active', true),
       CASE WHEN i % 3 = 0 THEN 'full' ELSE 'free_restricted' END, 'provisioned'
FROM generate_series(1, $2) AS i
"""
# What a PATCH active=false leaves for the worker, for every user of the tenant in one statement.
DEACTIVATE_WAVE = """
WITH u AS (
    UPDATE users SET active = false, resource = resource || '{"active": false}', version = version + 1,
                     updated_at = now(), provisioning_state = 'pending'
    WHERE tenant_id = $1::uuid
    RETURNING id, tenant_id
)
INSERT INTO outbox (tenant_id, resource_type, resource_id, change, payload, request_id)
SELECT tenant_id, 'user', id, 'deactivate', '{}', 'bench-' || id FROM u ORDER BY id
"""
# What POST /Users leaves for the worker: new users, pending, with a `create` row each.
CREATE_WAVE = """
WITH u AS (
    INSERT INTO users (tenant_id, user_name, display_name, active, resource)
    SELECT $1::uuid, 'n' || i || '.' || $3 || '@bench.example', 'User ' || i, true,
           jsonb_build_object(
               'userName', 'n' || i || '.' || $3 || '@bench.example',
               'name', jsonb_build_object('givenName', 'Given' || i, 'familyName', 'Family' || i),
               'active', true)
    FROM generate_series(1, $2) AS i
    RETURNING id, tenant_id
)
INSERT INTO outbox (tenant_id, resource_type, resource_id, change, payload, request_id)
SELECT tenant_id, 'user', id, 'create', '{}', 'bench-' || id FROM u ORDER BY id
"""


async def wave(
    run: Run, http: aiohttp.ClientSession, arq: Any, *, kind: str, users: int, events: bool
) -> dict[str, Any]:
    """One wave drained by a worker of its own; its rate and the worker's CPU."""
    tenant_id, _ = await run.tenant(http, seats=users // 2 if kind == "create" else users)
    tag = tenant_id[:8]
    if kind == "deactivate":
        await run.conn.execute(SEED_PROVISIONED, tenant_id, users, tag)
        await run.conn.execute(DEACTIVATE_WAVE, tenant_id)
    else:
        await run.conn.execute(CREATE_WAVE, tenant_id, users, tag)
    await run.conn.execute("VACUUM ANALYZE users")  # as autovacuum would: plans see the new rows
    await run.conn.execute("VACUUM ANALYZE outbox")

    env = {
        **run.env,
        "SCIMSVC_EVENTS": "on" if events else "off",
        "SCIMSVC_DATABASE_URL": with_application_name(run.db_url, WORKER_APP),
    }
    worker = await run.start("worker", sys.executable, "-m", "scimsvc.cli", "worker", env=env)
    try:
        await enqueue_drain_users(arq, queue_name=run.queue, tenant_id=tenant_id, wait=10)
        while (pending := await run.conn.fetchval(PENDING, tenant_id)) == users:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        started, cpu = time.perf_counter(), worker.cpu_seconds()
        pg_before = await backends_cpu_seconds(run.conn, WORKER_APP)
        while await run.conn.fetchval(PENDING, tenant_id):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        seconds = time.perf_counter() - started
        cpu = worker.cpu_seconds() - cpu
        pg_cpu = backends_cpu_spent(pg_before, await backends_cpu_seconds(run.conn, WORKER_APP))
    finally:
        await stop(run, worker)
    told = await run.conn.fetchval("SELECT count(*) FROM events WHERE tenant_id = $1::uuid", tenant_id)
    return {
        "events": "on" if events else "off",
        "users_per_s": round(pending / seconds, 1),
        "seconds": round(seconds, 2),
        "worker_cpu_ms_per_user": round(1000 * cpu / pending, 4),
        "postgres_cpu_ms_per_user": round(1000 * pg_cpu / pending, 4),
        "cpu_ms_per_user": round(1000 * (cpu + pg_cpu) / pending, 4),
        "events_written": told,
    }


async def stop(run: Run, worker: Proc) -> None:
    await worker.stop()
    run.procs.remove(worker)


async def measure(*, rounds: int = 4, users: int = 20_000, kind: str = "deactivate") -> dict[str, Any]:
    """Alternating rounds of a wave drained with events on and off, in a run of its own; the summary
    (medians over the rounds) and the rounds."""
    done: list[dict[str, Any]] = []
    started = time.time()
    load_before = [round(x, 2) for x in os.getloadavg()]
    async with Run() as run, aiohttp.ClientSession() as http:
        # Only for the admin API (tenants); its access log stays out of this run's output.
        await run.start("web", sys.executable, "-m", "scimsvc.cli", "serve", "--port", str(run.port))
        await wait_http(http, f"{run.root}/ops/health")
        arq = await create_pool(RedisSettings.from_dsn(REDIS_URL))
        try:
            for n in range(rounds):
                order = (True, False) if n % 2 == 0 else (False, True)
                figures = {}
                for events in order:
                    result = await wave(run, http, arq, kind=kind, users=users, events=events)
                    figures[result["events"]] = result
                    print(json.dumps({"round": n + 1, **result}), file=sys.stderr, flush=True)
                done.append(figures)
        finally:
            await arq.aclose()

    def med(side: str, key: str) -> float:
        return round(statistics.median(r[side][key] for r in done), 4)

    ratios = [r["on"]["users_per_s"] / r["off"]["users_per_s"] for r in done]
    cpu_ratios = [r["off"]["cpu_ms_per_user"] / r["on"]["cpu_ms_per_user"] for r in done]
    summary = {
        "wave": kind,
        "users": users,
        "on_users_per_s_median": med("on", "users_per_s"),
        "off_users_per_s_median": med("off", "users_per_s"),
        "on_over_off_median": round(statistics.median(ratios), 3),
        "ratios": [round(r, 3) for r in ratios],
        "cpu_off_over_on_median": round(statistics.median(cpu_ratios), 3),
        "cpu_ratios": [round(r, 3) for r in cpu_ratios],
        "worker_cpu_ms_per_user_on": med("on", "worker_cpu_ms_per_user"),
        "worker_cpu_ms_per_user_off": med("off", "worker_cpu_ms_per_user"),
        "postgres_cpu_ms_per_user_on": med("on", "postgres_cpu_ms_per_user"),
        "postgres_cpu_ms_per_user_off": med("off", "postgres_cpu_ms_per_user"),
        "seconds": round(time.time() - started, 1),
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }
    return {"summary": summary, "rounds": done}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--wave", choices=("deactivate", "create"), default="deactivate")
    args = parser.parse_args()
    report = await measure(rounds=args.rounds, users=args.users, kind=args.wave)
    print(json.dumps(report["summary"], indent=2))
    out = HERE / "results" / f"events-cost-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
