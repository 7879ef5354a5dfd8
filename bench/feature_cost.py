"""The cost of the parts a setting turns off, each measured on and off in alternating rounds in one run.

    .venv/bin/python bench/feature_cost.py [--quick] [--setting NAME ...] [--no-events]
        [--rounds 6] [--posts 3000] [--gets 3000] [--seed 100000] [--concurrency 32]
        [--event-rounds 4] [--event-users 20000]

For each `--setting` (default: all of them) two `scimsvc serve` processes on one database: one with the
part on (every other part as shipped, both with their stderr in a file, as a container runtime or
journald takes it) and one with it off:
- SCIMSVC_ACCESS_LOG: the access log, on / off;
- SCIMSVC_PROVISIONING_LOG: the provisioning log, on / off;
- SCIMSVC_TOKEN_LAST_USED_SECONDS: token last-used tracking writing every 1 s (the most often it can)
  against every 3600 s (never within a run).
Each round sends the same workload to both, one after the other, the first of the two alternating from
round to round, because this machine's speed drifts within minutes: `--posts` POST /Users into a tenant
of each's own, then `--gets` GET userName eq over a tenant of `--seed` users (bench/harness.py's seed)
that both read. No worker runs: the front end's cost is what these parts change. For each: req/s,
p50/p99, and the CPU per request of the web process and of the PostgreSQL backends serving it (each
side's connections carry an application_name of their own); the summary is the median over the rounds
of on/off, and of the CPU ratio off/on, which holds when other work on the machine makes the rates
swing. What the "on" side wrote (access lines, provisioning log rows) is counted against the requests.
Then, unless `--no-events`, the events (bench/events_cost.py): the worker's drain of a wave of
`--event-users` deactivations with SCIMSVC_EVENTS on and off, `--event-rounds` alternating rounds.
`--quick` is a smoke run of about a minute on a quiet machine (2 rounds of 1,000 requests over 20,000
users; 2 rounds of 5,000 deactivations; options given still apply). The targets (README.md,
Performance) are printed with pass/fail.

Everything runs on 127.0.0.1 against the machine's PostgreSQL and Redis, in a database and Redis key
prefix of this run's own (bench/harness.py's `Run`, removed at the end), with processes it starts and
stops by pid. Results go to bench/results/feature-cost-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

import events_cost  # noqa: E402
import run as run_bench  # noqa: E402  (a module: bench/run.py imports this one)
from harness import (  # noqa: E402
    Proc,
    Run,
    backends_cpu_seconds,
    backends_cpu_spent,
    drive,
    free_port,
    scim_headers,
    wait_http,
    with_application_name,
)

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Part:
    """A part a setting turns off: its name, the setting's value on and off, and its targets (on/off of
    each workload's req/s, median of the rounds)."""

    name: str
    on: str
    off: str
    goal: float


PARTS = {
    "SCIMSVC_ACCESS_LOG": Part("access log", "on", "off", 0.9),
    "SCIMSVC_PROVISIONING_LOG": Part("provisioning log", "on", "off", 0.9),
    "SCIMSVC_TOKEN_LAST_USED_SECONDS": Part("token last-used tracking", "1", "3600", 0.95),
}
EVENTS_GOAL = 0.85  # the drain with events on, over off (median of the rounds)
WORKLOADS = ("POST /Users", "GET userName eq")
COUNT_LOG_ROWS = """
SELECT count(*) FILTER (WHERE method = 'POST' AND endpoint = '/scim/v2/Users' AND status = 201) AS posts,
       count(*) FILTER (WHERE method = 'GET' AND endpoint = '/scim/v2/Users' AND status = 200) AS gets,
       avg(pg_column_size(p.*))::int AS bytes_per_row
FROM provisioning_log p
WHERE id > $1
"""


@dataclass
class Side:
    """One `scimsvc serve` of a comparison: its process, SCIM base URL and database application_name."""

    proc: Proc
    base: str
    app: str


async def serve(
    run: Run, http: aiohttp.ClientSession, name: str, port: int, env: dict[str, str], **options: Any
) -> Proc:
    """A `scimsvc serve` of this run on `port`, once it answers."""
    proc = await run.start(
        name, sys.executable, "-m", "scimsvc.cli", "serve", "--port", str(port), env=env, **options
    )
    await wait_http(http, f"http://127.0.0.1:{port}/ops/health")
    return proc


async def measure(
    run: Run,
    http: aiohttp.ClientSession,
    side: Side,
    requests: Any,
    count: int,
    headers: dict[str, str],
    clients: int,
) -> dict[str, Any]:
    """One workload on one side: its load figures and the CPU ms per request of its web process and of
    the PostgreSQL backends serving it."""
    before, pg_before = side.proc.cpu_seconds(), await backends_cpu_seconds(run.conn, side.app)
    load = await drive(http, requests, count, concurrency=clients, headers=headers)
    pg = backends_cpu_spent(pg_before, await backends_cpu_seconds(run.conn, side.app))
    figures = load.figures()
    figures["web_cpu_ms"] = round(1000 * (side.proc.cpu_seconds() - before) / load.requests, 4)
    figures["postgres_cpu_ms"] = round(1000 * pg / load.requests, 4)
    figures["cpu_ms"] = round(figures["web_cpu_ms"] + figures["postgres_cpu_ms"], 4)
    if load.errors:
        figures["statuses"] = load.statuses
    return figures


def access_lines(written: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(raw) for raw in written.splitlines() if b'"scimsvc.access"' in raw]


def summary(rounds: list[dict[str, Any]], workload: str) -> dict[str, Any]:
    on = [r[workload]["on"] for r in rounds]
    off = [r[workload]["off"] for r in rounds]
    ratios = [a["per_s"] / b["per_s"] for a, b in zip(on, off, strict=True)]
    cpu_ratios = [b["cpu_ms"] / a["cpu_ms"] for a, b in zip(on, off, strict=True) if a["cpu_ms"]]

    def med(side: list[dict[str, Any]], key: str) -> float:
        return float(statistics.median(r[key] for r in side))

    return {
        "workload": workload,
        "on_per_s_median": round(med(on, "per_s"), 1),
        "off_per_s_median": round(med(off, "per_s"), 1),
        "ratio_median": round(statistics.median(ratios), 3),
        "ratios": [round(r, 3) for r in ratios],
        "cpu_off_over_on_median": round(statistics.median(cpu_ratios), 3) if cpu_ratios else None,
        "on_p50_ms_median": round(med(on, "p50_ms"), 2),
        "off_p50_ms_median": round(med(off, "p50_ms"), 2),
        "on_p99_ms_median": round(med(on, "p99_ms"), 2),
        "off_p99_ms_median": round(med(off, "p99_ms"), 2),
        "web_cpu_ms_on": round(med(on, "web_cpu_ms"), 4),
        "web_cpu_ms_off": round(med(off, "web_cpu_ms"), 4),
        "web_cpu_us_added": round(1000 * (med(on, "web_cpu_ms") - med(off, "web_cpu_ms")), 1),
        "postgres_cpu_ms_on": round(med(on, "postgres_cpu_ms"), 4),
        "postgres_cpu_ms_off": round(med(off, "postgres_cpu_ms"), 4),
        "postgres_cpu_us_added": round(1000 * (med(on, "postgres_cpu_ms") - med(off, "postgres_cpu_ms")), 1),
    }


async def compare(
    run: Run,
    http: aiohttp.ClientSession,
    setting: str,
    *,
    reader: dict[str, str],
    names: list[str],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """One part on and off in alternating rounds: its summary, what it wrote and the rounds."""
    part = PARTS[setting]
    first_log_id = await run.conn.fetchval("SELECT coalesce(max(id), 0) FROM provisioning_log")
    # Both write their stderr to a file: only the part measured differs (the access log's lines of the
    # "off" side, when it is another part, cost what they cost on the "on" side).
    with tempfile.TemporaryFile() as log_file, tempfile.TemporaryFile() as off_log_file:
        sides: dict[str, Side] = {}
        for side, value, out in (("on", part.on, log_file), ("off", part.off, off_log_file)):
            port = free_port()
            app = f"bench_{side}_{uuid.uuid4().hex[:6]}"
            env = {**run.env, setting: value, "SCIMSVC_DATABASE_URL": with_application_name(run.db_url, app)}
            proc = await serve(run, http, f"web ({part.name} {side})", port, env, stderr=out)
            sides[side] = Side(proc, f"http://127.0.0.1:{port}/scim/v2", app)
        writers = {side: scim_headers((await run.tenant(http))[1]) for side in sides}
        rounds: list[dict[str, Any]] = []
        for number in range(args.rounds):
            order = ("on", "off") if number % 2 == 0 else ("off", "on")
            tag = uuid.uuid4().hex[:6]
            done: dict[str, Any] = {"first": order[0], "POST /Users": {}, "GET userName eq": {}}
            for side in order:
                base = sides[side].base
                done["POST /Users"][side] = await measure(
                    run,
                    http,
                    sides[side],
                    lambda i, base=base, tag=f"{tag}{side}": (
                        "POST",
                        f"{base}/Users",
                        run_bench.user_body(i, tag),
                    ),
                    args.posts,
                    writers[side],
                    args.concurrency,
                )
            for side in order:
                base = sides[side].base
                done["GET userName eq"][side] = await measure(
                    run,
                    http,
                    sides[side],
                    lambda i, base=base: ("GET", f'{base}/Users?filter=userName eq "{names[i]}"', None),
                    args.gets,
                    reader,
                    args.concurrency,
                )
            rounds.append(done)
            print(json.dumps({"part": part.name, "round": number + 1, **done}), file=sys.stderr)
        for side in sides.values():  # their last lines (and log rows) are written before they exit
            await side.proc.stop()
            run.procs.remove(side.proc)
        log_file.seek(0)
        written = log_file.read()
    sent = {"POST /Users 201": args.posts * args.rounds, "GET /Users 200": args.gets * args.rounds}
    report: dict[str, Any] = {
        "part": part.name,
        "setting": setting,
        "values": {"on": part.on, "off": part.off},
        "goal": part.goal,
        "summary": [summary(rounds, w) for w in WORKLOADS],
    }
    if setting == "SCIMSVC_ACCESS_LOG":
        lines = access_lines(written)
        report["access_lines"] = {
            "counted": {
                "POST /Users 201": sum(
                    1
                    for x in lines
                    if (x["method"], x["route"], x["status"]) == ("POST", "/scim/v2/Users", 201)
                ),
                "GET /Users 200": sum(
                    1
                    for x in lines
                    if (x["method"], x["route"], x["status"]) == ("GET", "/scim/v2/Users", 200)
                ),
            },
            "sent": sent,
            "bytes_per_line": round(len(written) / max(1, len(lines))),
        }
    if setting == "SCIMSVC_PROVISIONING_LOG":  # only the "on" side wrote rows since `first_log_id`
        row = await run.conn.fetchrow(COUNT_LOG_ROWS, first_log_id)
        report["provisioning_log_rows"] = {
            "counted": {"POST /Users 201": row["posts"], "GET /Users 200": row["gets"]},
            "sent": sent,
            "bytes_per_row": row["bytes_per_row"],
        }
    report["rounds"] = rounds
    return report


async def main(args: argparse.Namespace) -> dict[str, Any]:
    started = time.time()
    load_before = [round(x, 2) for x in os.getloadavg()]
    parts: list[dict[str, Any]] = []
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=300)
    if args.setting:
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http, Run() as run:
            # The admin API (tenants) on the run's port, idle while the sides are measured.
            await serve(run, http, "web (admin)", run.port, run.env)
            reader_id, reader_token = await run.tenant(http)
            await run.seed_users(reader_id, args.seed)
            names = run_bench.user_names(args.seed, args.gets)
            for setting in args.setting:
                parts.append(
                    await compare(
                        run, http, setting, reader=scim_headers(reader_token), names=names, args=args
                    )
                )
    events = None
    if args.events:
        events = await events_cost.measure(rounds=args.event_rounds, users=args.event_users)
    report = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 1),
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
        "options": vars(args),
        "parts": parts,
        "events": events,
    }
    report["targets"] = targets(report)
    return report


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Each part's targets (README.md, Performance) next to the measured median ratio on/off."""
    listed = []
    for part in report["parts"]:
        for s in part["summary"]:
            listed.append(
                {
                    "target": f"{part['part']}: {s['workload']} on ≥ {part['goal']} × off (median of rounds)",
                    "measured": s["ratio_median"],
                    "pass": s["ratio_median"] >= part["goal"],
                    "cpu_off_over_on": s["cpu_off_over_on_median"],
                }
            )
    if report["events"]:
        s = report["events"]["summary"]
        listed.append(
            {
                "target": f"events: drain of {s['users']:,} on ≥ {EVENTS_GOAL} × off (median of rounds)",
                "measured": s["on_over_off_median"],
                "pass": s["on_over_off_median"] >= EVENTS_GOAL,
                "cpu_off_over_on": s["cpu_off_over_on_median"],
            }
        )
    return listed


def rows_of(report: dict[str, Any]) -> list[dict[str, Any]]:
    """bench/run's table rows of a report: one per target, its median ratio on/off and its CPU ratio."""
    return [
        {
            "workload": f"on/off: {t['target']}",
            "system": "scimsvc on/off",
            "ratio_median": t["measured"],
            "cpu_off_over_on": t["cpu_off_over_on"],
            "pass": t["pass"],
        }
        for t in report["targets"]
    ]


def run_targets(rows: list[dict[str, Any]]) -> list[tuple[str, float | None, bool | None]]:
    """bench/run's targets from its rows (`rows_of`)."""
    return [
        (r["workload"].removeprefix("on/off: "), r["ratio_median"], r["pass"])
        for r in rows
        if r["system"] == "scimsvc on/off"
    ]


def show(report: dict[str, Any]) -> None:
    o = report["options"]
    print(
        f"\nparts on/off, {o['rounds']} alternating rounds of {o['posts']} POST and {o['gets']} GET, "
        f"concurrency {o['concurrency']}, {report['seconds']:.0f} s, "
        f"load average before {report['load_before']} after {report['load_after']}"
    )
    head = (
        f"{'part':<25} {'workload':<16} {'on req/s':>9} {'off req/s':>9} {'on/off':>7} {'CPU off/on':>10} "
        f"{'p50 on/off ms':>14} {'web µs on/off (+)':>18} {'PG µs on/off (+)':>18}"
    )
    print(head)
    print("-" * len(head))
    for part in report["parts"]:
        for s in part["summary"]:
            print(
                f"{part['part']:<25} {s['workload']:<16} {s['on_per_s_median']:>9,.0f} "
                f"{s['off_per_s_median']:>9,.0f} {s['ratio_median']:>7.3f} "
                f"{s['cpu_off_over_on_median'] or 0:>10.3f} "
                f"{s['on_p50_ms_median']:>6.2f}/{s['off_p50_ms_median']:<7.2f} "
                f"{us(s['web_cpu_ms_on'], s['web_cpu_ms_off'], s['web_cpu_us_added'])} "
                f"{us(s['postgres_cpu_ms_on'], s['postgres_cpu_ms_off'], s['postgres_cpu_us_added'])}"
            )
            print(f"{'':<25} {'':<16} ratios by round: {s['ratios']}")
        for key in ("access_lines", "provisioning_log_rows"):
            if key in part:
                w = part[key]
                size = w.get("bytes_per_line") or w.get("bytes_per_row")
                name = key.replace("_", " ")
                print(f"{'':<25} {name} written / sent: {w['counted']} / {w['sent']}, {size} bytes each")
    if report["events"]:
        s = report["events"]["summary"]
        print(
            f"events: drain of {s['users']:,} ({s['wave']}), users/s on/off "
            f"{s['on_users_per_s_median']:,.0f} / {s['off_users_per_s_median']:,.0f}, "
            f"median on/off {s['on_over_off_median']} (rounds {s['ratios']}), "
            f"CPU off/on {s['cpu_off_over_on_median']} (rounds {s['cpu_ratios']})"
        )
        for side in ("on", "off"):
            worker, pg = s[f"worker_cpu_ms_per_user_{side}"], s[f"postgres_cpu_ms_per_user_{side}"]
            print(f"  events {side}: worker + PostgreSQL CPU µs a user {1000 * worker:.0f} + {1000 * pg:.0f}")
    print("\ntargets (README.md, Performance)")
    for t in report["targets"]:
        verdict = "PASS" if t["pass"] else "FAIL"
        print(
            f"  {verdict:<5} {t['target']:<70} measured {t['measured']} (CPU off/on {t['cpu_off_over_on']})"
        )


def us(on: float, off: float, added: float) -> str:
    """CPU ms per request on/off as µs, and the difference."""
    return f"{1000 * on:>5.0f}/{1000 * off:<5.0f}({added:+.0f})"


QUICK = {"rounds": 2, "posts": 1000, "gets": 1000, "seed": 20_000, "event_rounds": 2, "event_users": 5000}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--setting", choices=sorted(PARTS), action="append", help="a part's switch (repeat; default: all)"
    )
    parser.add_argument("--no-events", dest="events", action="store_false", help="skip the events' drain")
    parser.add_argument("--quick", action="store_true", help="a smoke run of about a minute")
    parser.add_argument("--rounds", type=int, default=6, help="alternating rounds (default 6)")
    parser.add_argument("--posts", type=int, default=3000, help="POST /Users per side a round (3000)")
    parser.add_argument("--gets", type=int, default=3000, help="GET userName eq per side a round (3000)")
    parser.add_argument(
        "--seed", type=int, default=100_000, help="users of the tenant the GETs read (100000)"
    )
    parser.add_argument("--concurrency", type=int, default=32, help="requests at once (32)")
    parser.add_argument("--event-rounds", type=int, default=4, help="alternating rounds of the drain (4)")
    parser.add_argument("--event-users", type=int, default=20_000, help="users of a drained wave (20000)")
    args = parser.parse_args(argv)
    if args.quick:  # smaller sizes, but for the options given
        for key, value in QUICK.items():
            if getattr(args, key) == parser.get_default(key):
                setattr(args, key, value)
    if args.setting is None:
        args.setting = sorted(PARTS)
    return args


def save(report: dict[str, Any]) -> Path:
    out = HERE / "results" / f"feature-cost-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str))
    return out


if __name__ == "__main__":
    result = asyncio.run(main(parse_args()))
    show(result)
    print(f"\nJSON: {save(result)}")
