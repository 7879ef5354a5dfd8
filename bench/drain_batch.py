"""One drain batch with events on and off, in this process: what the events add to a batch, steadily.

    .venv/bin/python bench/drain_batch.py [--rounds 20] [--users 20000] [--batch 500]

bench/events_cost.py measures the target (README.md, Performance: events on ≥ 0.85 × off): whole waves
drained by worker processes, whose rounds swing with the machine (0.56 to 0.90 in one run). This is the
tool for comparing changes to the events path: the same batch of a deactivation wave (bench/events_cost.py's
`SEED_PROVISIONED` and `DEACTIVATE_WAVE`) applied by the worker's own `apply_user_rows` on one connection
of this process, with events on and with events off, each rolled back, the first of the two alternating
from round to round, so that both sides meet the same rows at the same moment. It reports the medians of
wall time, this process's CPU and the PostgreSQL backend's CPU per user, and off/on of wall time.

It runs against the machine's PostgreSQL in a database of its own (bench/harness.py's `Run`, removed at the
end); no Redis, no other process. Results go to bench/results/drain-batch-<time>.json.
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
from uuid import UUID

sys.path.insert(0, str(Path(__file__).resolve().parent))

from events_cost import DEACTIVATE_WAVE, SEED_PROVISIONED  # noqa: E402
from harness import Run, cpu_seconds_of  # noqa: E402

from scimsvc.contract import ResourceType  # noqa: E402
from scimsvc.store import licenses, outbox  # noqa: E402
from scimsvc.store.db import create_pool  # noqa: E402
from worker.user_drain import TenantRows, apply_user_rows  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


async def batch(pool: Any, tenant_id: UUID, backend: int, size: int, *, events: bool) -> dict[str, float]:
    """One batch applied and rolled back: its wall time, this process's CPU and the backend's, in seconds."""
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            wall, own, server = time.perf_counter(), time.process_time(), cpu_seconds_of(backend)
            licensing = await licenses.lock_tenant_licensing(conn, tenant_id)
            rows = await outbox.tenant_batch(conn, tenant_id, ResourceType.USER, limit=size, skip=[])
            await apply_user_rows(conn, [TenantRows(tenant_id, licensing, rows)], events=events)
            return {
                "wall": time.perf_counter() - wall,
                "python": time.process_time() - own,
                "postgres": cpu_seconds_of(backend) - server,
            }
        finally:
            await transaction.rollback()


async def measure(*, rounds: int, users: int, size: int) -> dict[str, Any]:
    """Alternating rounds of one batch with events on and off; the summary and every round."""
    load_before = [round(x, 2) for x in os.getloadavg()]
    done: list[dict[str, dict[str, float]]] = []
    async with Run() as run:
        tenant_id = await run.conn.fetchval(
            "INSERT INTO tenants (name, seats) VALUES ('drain batch', $1) RETURNING id", users
        )
        await run.conn.execute(SEED_PROVISIONED, tenant_id, users, "batch")
        await run.conn.execute(DEACTIVATE_WAVE, tenant_id)
        await run.conn.execute("VACUUM ANALYZE users")
        await run.conn.execute("VACUUM ANALYZE outbox")
        pool = await create_pool(run.db_url, min_size=1, max_size=1)
        try:
            async with pool.acquire() as conn:
                backend = await conn.fetchval("SELECT pg_backend_pid()")
            for events in (True, False):  # warm: statement caches, buffers
                await batch(pool, tenant_id, backend, size, events=events)
            for n in range(rounds):
                figures = {}
                for events in (True, False) if n % 2 == 0 else (False, True):
                    figures["on" if events else "off"] = await batch(
                        pool, tenant_id, backend, size, events=events
                    )
                done.append(figures)
                print(json.dumps({"round": n + 1, **figures}), file=sys.stderr, flush=True)
        finally:
            await pool.close()

    def per_user(side: str, key: str) -> float:
        return round(1e6 * statistics.median(r[side][key] for r in done) / size, 1)

    ratios = [r["off"]["wall"] / r["on"]["wall"] for r in done]
    summary = {
        "users": users,
        "batch": size,
        "rounds": rounds,
        "off_over_on_wall_median": round(statistics.median(ratios), 3),
        "off_over_on_wall_quartiles": [round(q, 3) for q in statistics.quantiles(ratios, n=4)],
        "us_per_user": {
            side: {k: per_user(side, k) for k in ("wall", "python", "postgres")} for side in ("on", "off")
        },
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }
    return {"summary": summary, "rounds": done}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    if args.rounds < 2 or args.batch < 1 or args.users < args.batch:
        parser.error("--rounds must be 2 or more, --batch 1 or more and --users at least --batch")
    result = asyncio.run(measure(rounds=args.rounds, users=args.users, size=args.batch))
    print(json.dumps(result["summary"], indent=2))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"drain-batch-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"JSON: {out}")


if __name__ == "__main__":
    main()
