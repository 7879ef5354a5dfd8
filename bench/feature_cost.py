"""The cost of a feature that a setting turns off (the access log, the provisioning log): POST /Users and
GET userName eq with it on and off, in alternating rounds.

    .venv/bin/python bench/feature_cost.py [--setting SCIMSVC_ACCESS_LOG|SCIMSVC_PROVISIONING_LOG]
        [--rounds 6] [--posts 3000] [--gets 3000] [--seed 100000]

Two `scimsvc serve` processes on one database: one as shipped (every feature on, its stderr into a file,
as a container runtime or journald takes it) and one with `--setting`=off. Each round sends the
same workload to both, one after the other, the first of the two alternating from round to round,
because this machine's speed drifts within minutes: `--posts` POST /Users into a tenant of each's own,
then `--gets` GET userName eq over a tenant of `--seed` users (bench/harness.py's seed) that both read.
No worker runs: the front end's cost is what the feature changes (the provisioning log is written by
the front end too). For each: req/s, p50/p99 and the web process's CPU ms per request; the summary is
the median over the rounds of on/off. At the end what the "on" process wrote (access lines, or
provisioning log rows) is counted against the requests it answered.

Everything runs on 127.0.0.1 against the machine's PostgreSQL and Redis, in a database and Redis key
prefix of this run's own (bench/harness.py's `Run`, removed at the end), with processes it starts and
stops by pid. Results go to bench/results/<feature>-<time>.json (access-log-..., provisioning-log-...).
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
from pathlib import Path
from typing import Any

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Proc, Run, drive, free_port, scim_headers, wait_http  # noqa: E402
from run import user_body, user_names  # noqa: E402

HERE = Path(__file__).resolve().parent
SETTINGS = {"SCIMSVC_ACCESS_LOG": "access log", "SCIMSVC_PROVISIONING_LOG": "provisioning log"}
COUNT_LOG_ROWS = """
SELECT count(*) FILTER (WHERE method = 'POST' AND endpoint = '/scim/v2/Users' AND status = 201) AS posts,
       count(*) FILTER (WHERE method = 'GET' AND endpoint = '/scim/v2/Users' AND status = 200) AS gets,
       avg(pg_column_size(p.*))::int AS bytes_per_row
FROM provisioning_log p
"""


async def serve(run: Run, http: aiohttp.ClientSession, name: str, port: int, **options: Any) -> Proc:
    """A `scimsvc serve` of this run on `port`, once it answers."""
    proc = await run.start(name, sys.executable, "-m", "scimsvc.cli", "serve", "--port", str(port), **options)
    await wait_http(http, f"http://127.0.0.1:{port}/ops/health")
    return proc


async def measure(
    http: aiohttp.ClientSession, proc: Proc, requests: Any, count: int, headers: dict[str, str], clients: int
) -> dict[str, Any]:
    """One workload on one process: its load figures and the process's CPU ms per request."""
    before = proc.cpu_seconds()
    load = await drive(http, requests, count, concurrency=clients, headers=headers)
    figures = load.figures()
    figures["web_cpu_ms"] = round(1000 * (proc.cpu_seconds() - before) / load.requests, 4)
    if load.errors:
        figures["statuses"] = load.statuses
    return figures


def access_lines(written: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(raw) for raw in written.splitlines() if b'"scimsvc.access"' in raw]


async def log_rows(run: Run) -> dict[str, Any]:
    """What the "on" process wrote to the provisioning log (the "off" one writes nothing)."""
    row = await run.conn.fetchrow(COUNT_LOG_ROWS)
    return {
        "counted": {"POST /Users 201": row["posts"], "GET /Users 200": row["gets"]},
        "bytes_per_row": row["bytes_per_row"],
    }


def summary(rounds: list[dict[str, Any]], workload: str) -> dict[str, Any]:
    on = [r[workload]["on"] for r in rounds]
    off = [r[workload]["off"] for r in rounds]
    ratios = [a["per_s"] / b["per_s"] for a, b in zip(on, off, strict=True)]
    cpu_on = statistics.median(r["web_cpu_ms"] for r in on)
    cpu_off = statistics.median(r["web_cpu_ms"] for r in off)
    return {
        "workload": workload,
        "on_per_s_median": round(statistics.median(r["per_s"] for r in on), 1),
        "off_per_s_median": round(statistics.median(r["per_s"] for r in off), 1),
        "ratio_median": round(statistics.median(ratios), 3),
        "ratios": [round(r, 3) for r in ratios],
        "on_p50_ms_median": round(statistics.median(r["p50_ms"] for r in on), 2),
        "off_p50_ms_median": round(statistics.median(r["p50_ms"] for r in off), 2),
        "on_p99_ms_median": round(statistics.median(r["p99_ms"] for r in on), 2),
        "off_p99_ms_median": round(statistics.median(r["p99_ms"] for r in off), 2),
        "web_cpu_ms_on": round(cpu_on, 4),
        "web_cpu_ms_off": round(cpu_off, 4),
        "web_cpu_us_added": round(1000 * (cpu_on - cpu_off), 1),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    started = time.time()
    load_before = [round(x, 2) for x in os.getloadavg()]
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http, Run() as run:
        feature = SETTINGS[args.setting]
        # Both write their stderr to a file: only the feature measured differs (the access log's lines of
        # the "off" side, when it is another feature, cost what they cost on the "on" side).
        with tempfile.TemporaryFile() as log_file, tempfile.TemporaryFile() as off_log_file:
            on = await serve(run, http, f"web ({feature} on)", run.port, stderr=log_file)
            off_port = free_port()
            off_env = {**run.env, args.setting: "off"}
            off = await serve(run, http, f"web ({feature} off)", off_port, env=off_env, stderr=off_log_file)
            roots = {"on": run.scim_base, "off": f"http://127.0.0.1:{off_port}/scim/v2"}
            procs = {"on": on, "off": off}
            writers = {side: scim_headers((await run.tenant(http))[1]) for side in roots}
            reader_id, reader_token = await run.tenant(http)
            await run.seed_users(reader_id, args.seed)
            reader = scim_headers(reader_token)
            names = user_names(args.seed, args.gets)
            rounds: list[dict[str, Any]] = []
            for number in range(args.rounds):
                order = ("on", "off") if number % 2 == 0 else ("off", "on")
                tag = uuid.uuid4().hex[:6]
                done: dict[str, Any] = {"first": order[0], "POST /Users": {}, "GET userName eq": {}}
                for side in order:
                    base = roots[side]
                    done["POST /Users"][side] = await measure(
                        http,
                        procs[side],
                        lambda i, base=base, tag=f"{tag}{side}": ("POST", f"{base}/Users", user_body(i, tag)),
                        args.posts,
                        writers[side],
                        args.concurrency,
                    )
                for side in order:
                    base = roots[side]
                    done["GET userName eq"][side] = await measure(
                        http,
                        procs[side],
                        lambda i, base=base: ("GET", f'{base}/Users?filter=userName eq "{names[i]}"', None),
                        args.gets,
                        reader,
                        args.concurrency,
                    )
                rounds.append(done)
                print(json.dumps({"round": number + 1, **done}), file=sys.stderr)
            await on.stop()  # its last lines (and log rows) are written before it exits
            log_file.seek(0)
            written = log_file.read()
        lines = access_lines(written)
        rows = await log_rows(run) if args.setting == "SCIMSVC_PROVISIONING_LOG" else None
        counted = {
            "POST /Users 201": sum(
                1 for x in lines if (x["method"], x["route"], x["status"]) == ("POST", "/scim/v2/Users", 201)
            ),
            "GET /Users 200": sum(
                1 for x in lines if (x["method"], x["route"], x["status"]) == ("GET", "/scim/v2/Users", 200)
            ),
        }
        sent = {"POST /Users 201": args.posts * args.rounds, "GET /Users 200": args.gets * args.rounds}
    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 1),
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
        "options": vars(args),
        "feature": feature,
        "summary": [summary(rounds, "POST /Users"), summary(rounds, "GET userName eq")],
        "access_lines": {
            "counted": counted,
            "sent": sent,
            "bytes_per_line": round(len(written) / max(1, len(lines))),
        },
        "provisioning_log_rows": rows and {**rows, "sent": sent},
        "rounds": rounds,
    }


def show(report: dict[str, Any]) -> None:
    print(
        f"\n{report['feature']} on/off, {report['options']['rounds']} alternating rounds, "
        f"concurrency {report['options']['concurrency']}, {report['seconds']:.0f} s, "
        f"load average before {report['load_before']} after {report['load_after']}"
    )
    head = (
        f"{'workload':<18} {'on req/s':>9} {'off req/s':>9} {'on/off':>7}  {'p50 on/off ms':>14} "
        f"{'p99 on/off ms':>14} {'web CPU µs/req on/off (+)':>26}"
    )
    print(head)
    print("-" * len(head))
    for s in report["summary"]:
        print(
            f"{s['workload']:<18} {s['on_per_s_median']:>9,.0f} {s['off_per_s_median']:>9,.0f} "
            f"{s['ratio_median']:>7.3f}  {s['on_p50_ms_median']:>6.2f}/{s['off_p50_ms_median']:<7.2f} "
            f"{s['on_p99_ms_median']:>6.2f}/{s['off_p99_ms_median']:<7.2f} "
            f"{1000 * s['web_cpu_ms_on']:>8.0f}/{1000 * s['web_cpu_ms_off']:<6.0f} "
            f"({s['web_cpu_us_added']:+.0f})"
        )
        print(f"{'':<18} ratios by round: {s['ratios']}")
    lines = report["access_lines"]
    print(f"access lines written / requests sent: {lines['counted']} / {lines['sent']}")
    print(f"bytes per line: {lines['bytes_per_line']}")
    rows = report["provisioning_log_rows"]
    if rows:
        print(f"provisioning log rows written / requests sent: {rows['counted']} / {rows['sent']}")
        print(f"bytes per row: {rows['bytes_per_row']}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--setting", choices=sorted(SETTINGS), default="SCIMSVC_ACCESS_LOG", help="the feature's switch"
    )
    parser.add_argument("--rounds", type=int, default=6, help="alternating rounds (default 6)")
    parser.add_argument("--posts", type=int, default=3000, help="POST /Users per system a round (3000)")
    parser.add_argument("--gets", type=int, default=3000, help="GET userName eq per system a round (3000)")
    parser.add_argument(
        "--seed", type=int, default=100_000, help="users of the tenant the GETs read (100000)"
    )
    parser.add_argument("--concurrency", type=int, default=32, help="requests at once (32)")
    report = asyncio.run(main(parser.parse_args()))
    show(report)
    name = report["feature"].replace(" ", "-")
    out = HERE / "results" / f"{name}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str))
    print(f"\nJSON: {out}")
