"""PATCH, PUT and DELETE /Users against the bare baseline, in alternating rounds, with the worker applying.

    python bench/writes.py [--quick] [--users N] [--per-round N] [--rounds N] [--concurrency 32]

The writes IdPs make most after the first import, each measured on scimsvc (one `serve`, one `worker`
applying as the acks come) and then on bench/baseline_app.py doing the same single-row statement, round
after round, so both meet the machine at the same moment:
- PATCH Entra: a `Replace` of displayName, name.givenName, title and the enterprise department;
- PATCH deactivate: Okta's `{"op": "replace", "value": {"active": false}}`, each round on users not yet
  deactivated;
- PUT: Okta's full user (same userName, a new title each round);
- DELETE /Users/{id}, each round on users not yet deleted.
Both hold the same `--users` users (seeded with SQL). Each round reports req/s, p50/p99, CPU ms per
request of each process (web, worker, PostgreSQL, this client; for scimsvc until the worker applied the
round's outbox rows) and, for scimsvc, the outbox rows the round wrote and how long after the last ack
the worker had applied them all. The target (README.md, Performance): the median of the rounds' ratios
ours/baseline ≥ 0.8 for each. bench/run.py calls `write_rounds` with its own processes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (  # noqa: E402
    Proc,
    Run,
    cpu_ms_per_request,
    cpu_seconds_of,
    cpu_snapshot,
    drive,
    scim_headers,
    start_baseline,
)

HERE = Path(__file__).resolve().parent
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
WORKLOADS = ("PATCH Entra", "PATCH deactivate", "PUT", "DELETE")
TARGET = 0.8
FULL = {"users": 20_000, "per_round": 2_000, "rounds": 3}
QUICK = {"users": 2_000, "per_round": 250, "rounds": 3}
# The baseline's users, shaped as bench/run.py fills its table for reads (names of their own, so that
# its fill still finds its names free).
SEED_BASELINE = """
INSERT INTO baseline_users (user_name, resource)
SELECT 'writes' || i || '@bench.example',
       jsonb_build_object('userName', 'writes' || i || '@bench.example', 'displayName', 'User ' || i,
           'name', jsonb_build_object('givenName', 'Given' || i, 'familyName', 'Family' || i))
FROM generate_series(1, $1) AS i
"""

Request = tuple[str, str, bytes | None]
BACKENDS = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"


async def snapshot(run: Run, procs: dict[str, Proc]) -> dict[str, float]:
    """`cpu_snapshot`, with PostgreSQL's CPU counted over the backends of this run's database only (other
    work on the machine's PostgreSQL stays out; its WAL writer and checkpointer are shared, left out)."""
    figures = cpu_snapshot(procs)
    pids = [r[0] for r in await run.conn.fetch(BACKENDS)]
    figures["postgres"] = sum(cpu_seconds_of(pid) for pid in pids)
    return figures


def entra_patch(i: int, round_no: int) -> bytes:
    """Entra's PATCH of a few attributes (its capitalised `Replace`, one operation per attribute)."""
    tag = f"{i}.{round_no}"
    return orjson.dumps(
        {
            "schemas": [PATCH_OP],
            "Operations": [
                {"op": "Replace", "path": "displayName", "value": f"User {tag}"},
                {"op": "Replace", "path": "name.givenName", "value": f"Given {tag}"},
                {"op": "Replace", "path": "title", "value": f"Title {round_no}"},
                {"op": "Replace", "path": f"{ENTERPRISE}:department", "value": f"Dept {round_no}"},
            ],
        }
    )


DEACTIVATE = orjson.dumps(
    {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": False}}]}
)


def okta_put(user_name: str, i: int, round_no: int) -> bytes:
    """Okta's PUT: the whole user, its userName unchanged."""
    return orjson.dumps(
        {
            "schemas": [USER_SCHEMA],
            "userName": user_name,
            "name": {"givenName": f"Given{i}", "familyName": f"Family{i}"},
            "displayName": f"Given{i} Family{i}",
            "emails": [{"primary": True, "value": user_name, "type": "work"}],
            "title": f"Title {round_no}",
            "active": True,
        }
    )


def plan(users: list[tuple[str, str]], per_round: int, rounds: int) -> dict[str, Callable[[int], list[int]]]:
    """Which users (indexes into `users`) each workload's round writes: PATCH Entra and PUT the same
    slices every round (new values each time); deactivations and deletes fresh ones every round."""
    n, total = per_round, len(users)
    if 2 * n + 2 * rounds * n > total:
        raise SystemExit(f"{total} users cannot hold {rounds} rounds of {n}: at least {2 * n * (1 + rounds)}")
    return {
        "PATCH Entra": lambda r: list(range(0, n)),
        "PUT": lambda r: list(range(n, 2 * n)),
        "PATCH deactivate": lambda r: list(range(2 * n + r * n, 2 * n + (r + 1) * n)),
        "DELETE": lambda r: list(range(total - (r + 1) * n, total - r * n)),
    }


def requests_for(
    workload: str, root: str, users: list[tuple[str, str]], picks: list[int], round_no: int
) -> Callable[[int], Request]:
    def make(i: int) -> Request:
        user_id, user_name = users[picks[i]]
        url = f"{root}/Users/{user_id}"
        if workload == "PATCH Entra":
            return "PATCH", url, entra_patch(picks[i], round_no)
        if workload == "PATCH deactivate":
            return "PATCH", url, DEACTIVATE
        if workload == "PUT":
            return "PUT", url, okta_put(user_name, picks[i], round_no)
        return "DELETE", url, None

    return make


async def write_rounds(
    run: Run,
    http: aiohttp.ClientSession,
    *,
    web: Proc,
    worker: Proc,
    baseline: Proc,
    baseline_root: str,
    users: int,
    per_round: int,
    rounds: int,
    concurrency: int,
) -> list[dict[str, Any]]:
    """Seed `users` users on both, run the alternating rounds; rows for bench/run.py's table: one per
    workload, system and round, then per workload the ratios and the median round's CPU per request."""
    tenant, token = await run.tenant(http)
    ours_headers = scim_headers(token)
    await run.seed_users(tenant, users)
    ours_users = [
        (str(r["id"]), r["user_name"])
        for r in await run.conn.fetch(
            "SELECT id, user_name FROM users WHERE tenant_id = $1::uuid "
            "ORDER BY length(user_name), user_name",
            tenant,
        )
    ]
    await run.conn.execute(SEED_BASELINE, users)
    await run.conn.execute("VACUUM ANALYZE baseline_users")
    base_users = [
        (str(r["id"]), r["user_name"])
        for r in await run.conn.fetch(
            "SELECT id, user_name FROM baseline_users WHERE user_name LIKE 'writes%@bench.example' "
            "ORDER BY length(user_name), user_name"
        )
    ]
    picks = plan(ours_users, per_round, rounds)
    base_headers = {"Content-Type": "application/scim+json"}
    ours_procs = {"web": web, "worker": worker}
    rows: list[dict[str, Any]] = []
    per: dict[str, list[dict[str, Any]]] = {w: [] for w in WORKLOADS}
    for round_no in range(rounds):
        for workload in WORKLOADS:
            chosen = picks[workload](round_no)
            last_outbox = await run.conn.fetchval("SELECT coalesce(max(id), 0) FROM outbox")
            before = await snapshot(run, ours_procs)
            ours = await drive(
                http,
                requests_for(workload, run.scim_base, ours_users, chosen, round_no),
                len(chosen),
                concurrency=concurrency,
                headers=ours_headers,
            )
            last_ack = time.perf_counter()
            await run.wait_applied(tenant, seconds=120)
            applied_after = time.perf_counter() - last_ack
            ours_cpu = cpu_ms_per_request(before, await snapshot(run, ours_procs), len(chosen))
            written = await run.conn.fetchval(
                "SELECT count(*) FROM outbox WHERE tenant_id = $1::uuid AND id > $2", tenant, last_outbox
            )
            before = await snapshot(run, {"web": baseline})
            base = await drive(
                http,
                requests_for(workload, baseline_root, base_users, chosen, round_no),
                len(chosen),
                concurrency=concurrency,
                headers=base_headers,
            )
            base_cpu = cpu_ms_per_request(before, await snapshot(run, {"web": baseline}), len(chosen))
            figures = {
                "round": round_no + 1,
                "ours": ours.figures(),
                "baseline": base.figures(),
                "ratio": round(ours.per_s / base.per_s, 3) if base.per_s else None,
                "ours_cpu_ms": ours_cpu,
                "baseline_cpu_ms": base_cpu,
                "outbox_rows": written,
                "applied_after_last_ack_s": round(applied_after, 2),
            }
            if ours.errors or base.errors:
                figures["statuses"] = {"ours": ours.statuses, "baseline": base.statuses}
            per[workload].append(figures)
            rows.append(
                {
                    "workload": f"{workload} /Users, round {round_no + 1}",
                    "system": "scimsvc",
                    **ours.figures(),
                    "outbox_rows": written,
                    "applied_after_last_ack_s": figures["applied_after_last_ack_s"],
                    **{f"cpu_{k}_ms": v for k, v in ours_cpu.items()},
                }
            )
            rows.append(
                {
                    "workload": f"{workload} /Users, round {round_no + 1}",
                    "system": "baseline",
                    **base.figures(),
                    **{f"cpu_{k}_ms": v for k, v in base_cpu.items()},
                }
            )
    # The baseline's table as it was: bench/run.py reads and pages it next.
    await run.conn.execute("DELETE FROM baseline_users WHERE user_name LIKE 'writes%@bench.example'")
    for workload, figures in per.items():
        ratios = [f["ratio"] for f in figures if f["ratio"]]
        median = sorted(figures, key=lambda f: f["ours_cpu_ms"]["total"])[len(figures) // 2]
        median_base = sorted(figures, key=lambda f: f["baseline_cpu_ms"]["total"])[len(figures) // 2]
        rows.append(
            {
                "workload": f"{workload} /Users, {len(figures)} alternating rounds",
                "system": "scimsvc/baseline",
                "ratio_median": round(statistics.median(ratios), 2) if ratios else None,
                "ratios": [round(r, 2) for r in ratios],
                "all_applied": all(f["outbox_rows"] == f["ours"]["requests"] for f in figures),
                "errors": sum(f["ours"]["errors"] + f["baseline"]["errors"] for f in figures),
                "cpu_ms_ours": median["ours_cpu_ms"],
                "cpu_ms_baseline": median_base["baseline_cpu_ms"],
                "unit": f"{per_round} requests per round each, {concurrency} clients",
            }
        )
    return rows


def targets(rows: list[dict[str, Any]]) -> list[tuple[str, float | None, bool | None]]:
    """(target, measured, pass) for each workload: the median of its rounds' ratios ≥ TARGET, with every
    outbox row applied and no error."""
    out = []
    for workload in WORKLOADS:
        row = next(
            (r for r in rows if r["workload"].startswith(f"{workload} /Users,") and "ratio_median" in r), None
        )
        measured = row and row["ratio_median"]
        ok = None if measured is None else measured >= TARGET and row["all_applied"] and not row["errors"]
        out.append((f"{workload} /Users ≥ {TARGET} × baseline, worker applying (median)", measured, ok))
    return out


def show(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        if "ratio_median" in row:
            print(
                f"{row['workload']:<44} median {row['ratio_median']} rounds {row['ratios']} "
                f"all applied {row['all_applied']} errors {row['errors']}"
            )
            print(f"    CPU ms/request ours {row['cpu_ms_ours']}")
            print(f"    CPU ms/request base {row['cpu_ms_baseline']}")
        else:
            extra = (
                f" outbox {row['outbox_rows']} applied +{row['applied_after_last_ack_s']} s"
                if "outbox_rows" in row
                else ""
            )
            print(
                f"{row['workload']:<34} {row['system']:<9} {row['per_s']:>8,.0f}/s p50 {row['p50_ms']:>6} "
                f"p99 {row['p99_ms']:>6} err {row['errors']} cpu {row['cpu_total_ms']} ms{extra}"
            )
    for target, measured, ok in targets(rows):
        print(f"  {({True: 'PASS', False: 'FAIL', None: 'n/a'})[ok]:<5} {target:<60} measured {measured}")


async def main(sizes: dict[str, int], concurrency: int) -> dict[str, Any]:
    started = time.time()
    load_before = [round(x, 2) for x in os.getloadavg()]
    connector = aiohttp.TCPConnector(limit=0)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=300)) as http,
        Run() as run,
    ):
        web = await run.start_serve(http)
        worker = (await run.start_workers(1))[0]
        baseline, root = await start_baseline(run, http)
        rows = await write_rounds(
            run,
            http,
            web=web,
            worker=worker,
            baseline=baseline,
            baseline_root=root,
            concurrency=concurrency,
            **sizes,
        )
    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 1),
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "sizes": sizes,
        "concurrency": concurrency,
        "rows": rows,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--users", type=int)
    parser.add_argument("--per-round", type=int)
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    sizes = dict(QUICK if args.quick else FULL)
    for key in ("users", "per_round", "rounds"):
        if getattr(args, key):
            sizes[key] = getattr(args, key)
    report = asyncio.run(main(sizes, args.concurrency))
    show(report["rows"])
    print(f"load average before {report['load_before']} after {report['load_after']}, {report['seconds']} s")
    out = HERE / "results" / f"writes-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str))
    print(f"JSON: {out}")
