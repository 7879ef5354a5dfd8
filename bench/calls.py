"""Python calls and profiled time per request, scimsvc's web process against the bare baseline's.

    .venv/bin/python bench/calls.py [--workload NAME ...] [--requests 3000] [--warmup 300]
        [--concurrency 8] [--top 25]

Throughput on this machine swings by ±0.05 from run to run (README.md, Performance), more than most
single changes to the web process move it. Counts do not swing: for each workload, this runs `scimsvc
serve` and bench/baseline_app.py under Python's deterministic profiler (bench/profiled.py, the event
loop's thread only), sends each `--warmup` requests unprofiled and then `--requests` profiled, and prints
per request:
- the Python calls each side made: what each request does is counted exactly, whatever the machine is
  doing; what runs once an interval for all the requests of that interval (the worker's wake-up every
  50 ms, the provisioning log's writes every 0.2 s, token last-used writes every minute) is shared among
  them, so it moves a few calls with the rate the machine allows; and the time the profiler measured in
  them (inflated by the profiler, about 2×, and by a busy machine: compare sides of one run);
- where scimsvc's extra calls and time go, by module (by package outside the repository; `~` is
  built-ins and C functions), and its functions with the most extra time.
Workloads: GET userName eq, POST /Users, and bench/writes.py's PATCH Entra, PATCH deactivate, PUT and
DELETE, on users seeded by SQL. No worker runs (the web process's calls do not depend on it). The
baseline's database work is one statement; scimsvc's is its own; the figures are the web processes'.
Results go to bench/results/calls-<time>.json. Takes about a minute for all workloads.

Everything runs on 127.0.0.1 in a database and Redis prefix of this run's own (bench/harness.py's `Run`,
removed at the end), with processes it starts and stops by pid.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pstats
import random
import signal
import sys
import sysconfig
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

import writes  # noqa: E402
from harness import Proc, Request, Run, drive, scim_headers, start_baseline  # noqa: E402
from run import user_body  # noqa: E402

HERE = Path(__file__).resolve().parent
STDLIB = Path(sysconfig.get_paths()["stdlib"])
REPO = HERE.parent
RESULTS = HERE / "results"
PROFILED = HERE / "profiled.py"
WORKLOADS = ("GET eq", "POST", *writes.WORKLOADS)
JSON_HEADERS = {"Content-Type": "application/scim+json"}
BASELINE_USERS = "SELECT id::text, user_name FROM baseline_users ORDER BY id"


def where(path: str) -> str:
    """A profiled function's place: a file of the repository or of the standard library, else its package
    (`~`: built-in)."""
    if path == "~":
        return "~"
    file = Path(path)
    if file.is_relative_to(REPO) and ".venv" not in file.parts:
        return str(file.relative_to(REPO))
    parts = file.parts
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1].removesuffix(".py")
    return "stdlib:" + (str(file.relative_to(STDLIB)) if file.is_relative_to(STDLIB) else file.name)


def per_request(path: Path, requests: int) -> dict[tuple[str, str], tuple[float, float]]:
    """(place, function) -> (calls, profiled µs) per request."""
    stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    figures: dict[tuple[str, str], tuple[float, float]] = {}
    for (file, _line, name), (_primitive, calls, own, _cumulative, _callers) in stats.items():
        key = (where(file), name)
        before = figures.get(key, (0.0, 0.0))
        figures[key] = (before[0] + calls / requests, before[1] + own / requests * 1e6)
    return figures


async def profile(
    proc: Proc,
    out: Path,
    http: aiohttp.ClientSession,
    requests: Callable[[int], Request],
    *,
    warmup: int,
    count: int,
    concurrency: int,
    headers: dict[str, str],
) -> dict[tuple[str, str], tuple[float, float]]:
    """The workload's figures per request in `proc`, once `warmup` requests went unprofiled."""
    load = await drive(http, requests, warmup, concurrency=concurrency, headers=headers)
    if load.errors:
        raise SystemExit(f"{proc.name}: {load.errors} of {warmup} warm-up requests failed: {load.statuses}")
    proc.process.send_signal(signal.SIGUSR1)
    on = Path(f"{out}.on")
    await wait_for_file(proc, on)  # the handler runs between two of the loop's callbacks
    await asyncio.to_thread(on.unlink)
    load = await drive(http, lambda i: requests(warmup + i), count, concurrency=concurrency, headers=headers)
    proc.process.send_signal(signal.SIGUSR2)
    await wait_for_file(proc, out)
    if load.errors:
        raise SystemExit(f"{proc.name}: {load.errors} of {count} requests failed: {load.statuses}")
    return await asyncio.to_thread(taken, out, count)


async def wait_for_file(proc: Proc, path: Path) -> None:
    """Wait until `proc` has written `path` (bench/profiled.py's answer to a signal)."""
    deadline = time.monotonic() + 30
    while not await asyncio.to_thread(path.exists):
        if proc.process.returncode is not None:
            status = proc.process.returncode
            raise SystemExit(f"{proc.name} exited with status {status} before writing {path}")
        if time.monotonic() > deadline:
            raise SystemExit(f"{proc.name} wrote no {path} within 30 s")
        await asyncio.sleep(0.05)


def taken(out: Path, requests: int) -> dict[tuple[str, str], tuple[float, float]]:
    """`per_request` of the profile at `out`, removed: the next one is written there."""
    figures = per_request(out, requests)
    out.unlink()
    return figures


def compare(
    ours: dict[tuple[str, str], tuple[float, float]],
    base: dict[tuple[str, str], tuple[float, float]],
    top: int,
) -> dict[str, Any]:
    totals = {
        "calls": [round(sum(v[0] for v in side.values()), 1) for side in (ours, base)],
        "profiled_us": [round(sum(v[1] for v in side.values()), 1) for side in (ours, base)],
    }
    by_place: Counter[str] = Counter()
    time_by_place: Counter[str] = Counter()
    extra = []
    for key in ours.keys() | base.keys():
        calls, us = ours.get(key, (0.0, 0.0))
        base_calls, base_us = base.get(key, (0.0, 0.0))
        by_place[key[0]] += calls - base_calls
        time_by_place[key[0]] += us - base_us
        extra.append((us - base_us, calls - base_calls, f"{key[0]}:{key[1]}"))
    extra.sort(reverse=True)
    return {
        **totals,
        "extra_by_place": [
            {"place": place, "calls": round(calls, 1), "profiled_us": round(time_by_place[place], 1)}
            for place, calls in sorted(by_place.items(), key=lambda kv: -time_by_place[kv[0]])
            if abs(calls) >= 0.5 or abs(time_by_place[place]) >= 1
        ],
        "extra_functions": [
            {"function": name, "calls": round(calls, 2), "profiled_us": round(us, 1)}
            for us, calls, name in extra[:top]
        ],
    }


def show(workload: str, figures: dict[str, Any]) -> None:
    (calls, base_calls), (us, base_us) = figures["calls"], figures["profiled_us"]
    print(f"\n{workload}: Python calls per request scimsvc {calls:,.0f}, baseline {base_calls:,.0f}")
    print(f"  profiled µs per request {us:,.0f} and {base_us:,.0f}")
    print("  scimsvc's extra, by module:")
    for row in figures["extra_by_place"]:
        print(f"    {row['calls']:8.1f} calls {row['profiled_us']:8.1f} µs  {row['place']}")
    print("  scimsvc's functions with the most extra time:")
    for row in figures["extra_functions"]:
        print(f"    {row['calls']:8.2f} calls {row['profiled_us']:8.1f} µs  {row['function']}")


async def main(args: argparse.Namespace) -> None:
    unknown = set(args.workload or ()) - set(WORKLOADS)
    if unknown:
        raise SystemExit(f"unknown workload {sorted(unknown)}: choose among {', '.join(WORKLOADS)}")
    chosen = [w for w in WORKLOADS if not args.workload or w in args.workload]
    per_side = args.warmup + args.requests
    results: dict[str, Any] = {"requests": args.requests, "warmup": args.warmup, "workloads": {}}
    with tempfile.TemporaryDirectory() as tmp:
        ours_out, base_out = Path(tmp) / "scimsvc.prof", Path(tmp) / "baseline.prof"
        async with Run() as run, aiohttp.ClientSession() as http:
            # One process (the profiler runs in it); the access log as shipped, its lines to /dev/null (its
            # writer thread is not profiled: `log`, on the event loop, is).
            run.env["SCIMSVC_WEB_PROCESSES"] = "1"
            web = await run.start_serve(http, wrapper=(str(PROFILED), str(ours_out)), quiet=True)
            baseline, base_root = await start_baseline(run, http, wrapper=(str(PROFILED), str(base_out)))
            tenant_id, token = await run.tenant(http)
            # Users for every workload: each write workload takes its own slice, once each.
            ids = await run.seed_users(tenant_id, per_side * (1 + len(writes.WORKLOADS)))
            names = dict(await run.conn.fetch("SELECT id::text, user_name FROM users"))
            ours_users = [(i, names[i]) for i in ids]
            await run.conn.execute(writes.SEED_BASELINE, len(ours_users))
            base_users = [tuple(r) for r in await run.conn.fetch(BASELINE_USERS)]
            rng = random.Random(7)
            for workload in chosen:
                sides = []
                for side, root, users in ((0, run.scim_base, ours_users), (1, base_root, base_users)):
                    if workload == "GET eq":
                        picks = [rng.randrange(len(users)) for _ in range(per_side)]
                        url = f"{root}/Users?filter="

                        def make(i: int, users: Any = users, picks: Any = picks, url: str = url) -> Request:
                            return "GET", url + quote(f'userName eq "{users[picks[i]][1]}"'), None

                    elif workload == "POST":

                        def make(i: int, root: str = root, tag: str = f"calls{side}") -> Request:
                            return "POST", f"{root}/Users", user_body(i, tag)

                    else:
                        first = per_side * (1 + writes.WORKLOADS.index(workload))
                        picks = list(range(first, first + per_side))
                        make = writes.requests_for(workload, root, users, picks, 1)
                    sides.append(make)
                ours, base = [
                    await profile(
                        proc,
                        out,
                        http,
                        make,
                        warmup=args.warmup,
                        count=args.requests,
                        concurrency=args.concurrency,
                        headers=headers,
                    )
                    for proc, out, make, headers in (
                        (web, ours_out, sides[0], scim_headers(token)),
                        (baseline, base_out, sides[1], JSON_HEADERS),
                    )
                ]
                figures = results["workloads"][workload] = compare(ours, base, args.top)
                show(workload, figures)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"calls-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    out.write_text(json.dumps(results, indent=1))
    print(f"\nJSON: {out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workload", action="append", help=f"one of: {', '.join(WORKLOADS)} (repeatable)")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--top", type=int, default=25)
    asyncio.run(main(parser.parse_args()))
