"""`scimsvc serve` with 1 and with 2 processes: POST /Users and GET `userName eq` with 32 clients.

    .venv/bin/python bench/processes.py [--rounds 3] [--posts 2000] [--gets 4000] [--json out.json]
    .venv/bin/python bench/processes.py --quick

Two `scimsvc serve` on one database of their own, one with `--processes 1` and one with `--processes 2`,
and one worker applying the POSTs as they come. In alternating rounds (a few seconds apart, so a loaded
or shared machine slows both alike), each gets the same POSTs and then the same lookups of seeded users;
the figure is the median of the rounds' ratios (2 processes / 1), with the CPU ms per request of the web
processes (all children of the 2-process `serve`) and of PostgreSQL. On a 2-core machine shared by the
client, the worker and PostgreSQL, little gain is expected: the second process mostly competes with them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import sys
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from harness import (
    Proc,
    Run,
    cpu_seconds_of,
    drive,
    free_port,
    postgres_cpu_seconds,
    scim_headers,
    wait_http,
)

CLIENTS = 32


def children_of(pid: int) -> list[int]:
    """The pids whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


class Served:
    """One `scimsvc serve --processes N` of the run, its base URL and the CPU of all its processes."""

    def __init__(self, run: Run, processes: int) -> None:
        self.run = run
        self.processes = processes
        self.port = free_port()
        self.root = f"http://127.0.0.1:{self.port}"
        self.proc: Proc | None = None

    async def start(self, http: aiohttp.ClientSession) -> None:
        argv = (sys.executable, "-m", "scimsvc.cli", "serve", "--port", str(self.port))
        argv += ("--processes", str(self.processes))
        self.proc = await self.run.start(f"web×{self.processes}", *argv, quiet=False)
        await wait_http(http, f"{self.root}/ops/health")

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        pids = [self.proc.pid, *children_of(self.proc.pid)]
        return sum(cpu_seconds_of(pid) for pid in pids)


async def post_users(http: aiohttp.ClientSession, served: Served, token: str, count: int) -> Any:
    tag = uuid.uuid4().hex[:8]

    def request(i: int) -> tuple[str, str, bytes]:
        body = {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": f"p{tag}-{i}@x.example",
        }
        return "POST", f"{served.root}/scim/v2/Users", json.dumps(body).encode()

    return await drive(http, request, count, concurrency=CLIENTS, headers=scim_headers(token))


async def get_eq(http: aiohttp.ClientSession, served: Served, token: str, count: int, users: int) -> Any:
    def request(i: int) -> tuple[str, str, None]:
        name = f"user{i % users + 1}@bench.example"
        return "GET", f'{served.root}/scim/v2/Users?filter=userName eq "{name}"', None

    return await drive(http, request, count, concurrency=CLIENTS, headers=scim_headers(token))


async def measure(
    *, rounds: int = 3, posts: int = 2000, gets: int = 4000, users: int = 10_000
) -> dict[str, Any]:
    """Alternating rounds on 1 and 2 processes; their per-round figures and the median ratios."""
    async with Run() as run, aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CLIENTS)) as http:
        one, two = Served(run, 1), Served(run, 2)
        await one.start(http)
        await two.start(http)
        run.root = one.root  # the admin API of either
        await run.start_workers(1)
        tenant, token = await run.tenant(http)
        await run.seed_users(tenant, users)
        per_round: list[dict[str, Any]] = []
        for _ in range(rounds):
            figures: dict[str, Any] = {}
            for served in (one, two) if len(per_round) % 2 == 0 else (two, one):
                for name, work in (
                    ("post", lambda s=served: post_users(http, s, token, posts)),
                    ("get_eq", lambda s=served: get_eq(http, s, token, gets, users)),
                ):
                    web, pg = served.cpu_seconds(), postgres_cpu_seconds()
                    load = await work()
                    if name == "post":
                        await run.wait_applied(tenant)
                    figures[f"{name}_{served.processes}"] = load.figures() | {
                        "web_cpu_ms": round((served.cpu_seconds() - web) * 1000 / load.requests, 3),
                        "postgres_cpu_ms": round((postgres_cpu_seconds() - pg) * 1000 / load.requests, 3),
                    }
            per_round.append(figures)
            print(json.dumps(figures), flush=True)
        ratios = {
            name: round(
                statistics.median(r[f"{name}_2"]["per_s"] / r[f"{name}_1"]["per_s"] for r in per_round), 3
            )
            for name in ("post", "get_eq")
        }
    return {"ratios_2_over_1": ratios, "rounds": per_round, "clients": CLIENTS, "load_1min": _load()}


def _load() -> float:
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def _interrupted(*_: object) -> None:
    raise KeyboardInterrupt  # asyncio.run cancels the run: its database, keys and processes are removed


def main() -> None:
    signal.signal(signal.SIGTERM, _interrupted)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default: %(default)s)")
    parser.add_argument(
        "--posts", type=int, default=2000, help="POSTs per round and side (default: %(default)s)"
    )
    parser.add_argument(
        "--gets", type=int, default=4000, help="lookups per round and side (default: %(default)s)"
    )
    parser.add_argument("--quick", action="store_true", help="2 rounds of 500 POSTs and 1,000 lookups")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.posts, args.gets = 2, 500, 1000
    result = asyncio.run(measure(rounds=args.rounds, posts=args.posts, gets=args.gets))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
