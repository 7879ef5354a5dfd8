"""The two hot paths alone, fast: POST /Users and GET userName eq against the bare baseline.

    python bench/hotpath.py [--rounds 4] [--post 2000] [--get 3000] [--seed 100000] [--profile DIR]
                            [--set KEY=VALUE ...] [--before DIR] [--parts-off]

The same alternating rounds as bench/run.py's `post_rounds` and `get_rounds` (scimsvc, then the
baseline, seconds apart; POST with scimsvc's worker applying), in a run of its own (database, queue,
Redis prefix, processes), with the CPU milliseconds per request of each process (web, worker, the
PostgreSQL backends of its database, this client) beside the ratios: throughput moves with the
machine's load, CPU per request much less. --profile DIR records the web process (and the worker
during POST) with py-spy, installed outside the project, during scimsvc's last round of each
workload, as speedscope files. --set KEY=VALUE sets an environment variable of scimsvc's processes
(SCIMSVC_ACCESS_LOG=off, ...). --parts-off runs, in the same rounds, a second `serve` on the same
database with every optional part a setting turns off (bench/feature_cost.py's PARTS: the access log,
the provisioning log, token last-used tracking) off: what the core costs against the baseline, and what
the parts add to it. Takes a minute or two.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from feature_cost import PARTS, serve  # noqa: E402
from harness import (  # noqa: E402
    Proc,
    Run,
    cpu_ms_per_request,
    cpu_seconds_of,
    drive,
    free_port,
    scim_headers,
    wait_http,
)
from run import SEED_BASELINE, Bench, user_body, user_names  # noqa: E402


def database_cpu_seconds(database: str) -> float:
    """CPU time used so far by the PostgreSQL backends connected to `database` (their process titles
    name it): on a machine other runs share, the part of PostgreSQL's CPU that is this run's. The WAL
    writer and checkpointer, shared by every database, are left out."""
    total = 0.0
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                title = f.read()
        except OSError:
            continue
        if title.startswith(b"postgres:") and f" {database} ".encode() in title:
            total += cpu_seconds_of(pid)
    return total


def cpu_snapshot(run: Run, procs: dict[str, Proc | None]) -> dict[str, float]:
    """harness.cpu_snapshot with PostgreSQL's share counted for this run's database only."""
    return {**harness.cpu_snapshot(procs), "postgres": database_cpu_seconds(run.database)}


class Profiler:
    """py-spy recording one process while a workload runs (nothing when no directory is given)."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self.spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))

    def record(self, proc: Proc, name: str) -> subprocess.Popen[bytes] | None:
        if self.directory is None or self.spy is None:
            return None
        self.directory.mkdir(parents=True, exist_ok=True)
        out = self.directory / f"{name}.speedscope.json"
        argv = [self.spy, "record", "--pid", str(proc.pid), "--format", "speedscope", "-o", str(out)]
        return subprocess.Popen([*argv, "--rate", "200", "--nonblocking"], stdout=subprocess.DEVNULL)

    @staticmethod
    def stop(spy: subprocess.Popen[bytes] | None) -> None:
        if spy is not None:
            spy.send_signal(2)  # SIGINT: py-spy writes its file and exits
            spy.wait(30)


@dataclass
class System:
    """One server the rounds drive: where it answers, with which headers, and its processes."""

    name: str
    base: str  # the URL /Users hangs from
    headers: dict[str, str]
    web: Proc
    worker: Proc | None = None
    post_headers: dict[str, str] | None = None  # scimsvc: a new tenant per round (see post_tenant)


async def post_tenant(bench: Bench, count: int) -> tuple[str, dict[str, str]]:
    """A new tenant for one round of `count` POSTs, seats for half of them (as bench/run.py's)."""
    tenant, token = await bench.run.tenant(bench.http, seats=count // 2)
    return tenant, scim_headers(token)


async def rounds(
    bench: Bench,
    systems: list[System],
    workload: str,
    *,
    count: int,
    rounds: int,
    profiler: Profiler,
    names: list[str],
) -> dict[str, list[Any]]:
    """`rounds` rounds of `count` requests of `workload` ("get" or "post") on each system in turn, the
    order rotated a place each round; per system, each round's rate and CPU ms per request (a POST round
    waits until its users are applied, so the worker's CPU counts)."""
    figures: dict[str, list[Any]] = {s.name: [] for s in systems}
    for r in range(rounds):
        line = []
        # Each round starts with the next system: whichever runs first in a round measures a few per cent
        # slower (seen on GET eq), so each takes each place in turn.
        for system in systems[r % len(systems) :] + systems[: r % len(systems)]:
            procs = {"web": system.web, "worker": system.worker}
            last = r == rounds - 1 and system is systems[0]
            spies = [profiler.record(p, f"{workload}-{n}") for n, p in procs.items() if p and last]
            tenant, headers = None, system.headers
            if workload == "post" and system.worker is not None:
                tenant, headers = await post_tenant(bench, count)
            tag = uuid.uuid4().hex[:6]
            if workload == "get":
                requests = by_name(system.base, names)
            else:
                requests = by_post(system.base, tag)
            before = cpu_snapshot(bench.run, procs)
            load = await drive(bench.http, requests, count, concurrency=bench.c, headers=headers)
            if tenant is not None:
                await bench.run.wait_applied(tenant)
            cpu = cpu_ms_per_request(before, cpu_snapshot(bench.run, procs), count)
            for spy in spies:
                Profiler.stop(spy)
            if load.errors:  # counted in the rate like any answer; shown: such a run is not to be trusted
                print(f"  {system.name}: answers other than 2xx: {load.statuses}", flush=True)
            figures[system.name].append({"per_s": load.per_s, "cpu": cpu})
            line.append(f"{system.name} {load.per_s:,.0f}/s web {cpu['web']:.3f} ms")
        print(f"  {workload} round {r + 1}: " + ", ".join(line), flush=True)
    return figures


@dataclass
class Beside:
    """A second `serve` of the run: its process and SCIM base URL."""

    proc: Proc
    base: str


async def serve_beside(
    run: Run, http: aiohttp.ClientSession, name: str, env: dict[str, str], *, cwd: str | None = None
) -> Beside:
    """Another `scimsvc serve` on this run's database and queue (bench/feature_cost.py's `serve`), with
    `env` over the run's, started in `cwd` (`python -m` puts the working directory first on sys.path)."""
    port = free_port()
    proc = await serve(run, http, f"web ({name})", port, {**run.env, **env}, cwd=cwd)
    return Beside(proc, f"http://127.0.0.1:{port}/scim/v2")


def by_name(base: str, names: list[str]) -> Any:
    return lambda i: ("GET", f'{base}/Users?filter=userName eq "{names[i % len(names)]}"', None)


def by_post(base: str, tag: str) -> Any:
    return lambda i: ("POST", f"{base}/Users", user_body(i, tag))


def summary(workload: str, figures: dict[str, list[Any]], *, baseline: str = "baseline") -> None:
    print(f"{workload}:")
    theirs = figures[baseline]
    for name, ours in figures.items():
        ratios = [o["per_s"] / t["per_s"] for o, t in zip(ours, theirs, strict=True)]
        web = [o["cpu"]["web"] / t["cpu"]["web"] for o, t in zip(ours, theirs, strict=True)]
        parts = ours[0]["cpu"].keys()
        cpu = ", ".join(f"{k} {statistics.median(o['cpu'][k] for o in ours):.3f}" for k in parts)
        print(
            f"  {name:<9} rate/baseline median {statistics.median(ratios):.2f} "
            f"({', '.join(f'{x:.2f}' for x in ratios)}); web CPU/baseline's median "
            f"{statistics.median(web):.2f}; CPU ms per request (medians): {cpu}"
        )


async def main(args: argparse.Namespace) -> None:
    print(f"load average before: {os.getloadavg()}", flush=True)
    profiler = Profiler(Path(args.profile) if args.profile else None)
    connector = aiohttp.TCPConnector(limit=0)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=300)) as http,
        Run(rate_limit=True) as run,
    ):
        run.env.update(dict(setting.split("=", 1) for setting in args.set))
        bench = Bench(run, http, {}, args.concurrency)
        # Each server's output (the access log's lines among it) goes to /dev/null alike.
        web = run.serve = await run.start(
            "web", sys.executable, "-m", "scimsvc.cli", "serve", "--port", str(run.port)
        )
        await wait_http(http, f"{run.root}/ops/health")
        worker = (await run.start_workers(1))[0]
        baseline = await bench.start_baseline()
        tenant, token = await run.tenant(http)
        await run.seed_users(tenant, args.seed)
        await run.conn.execute(SEED_BASELINE, args.seed)
        await run.conn.execute("VACUUM ANALYZE baseline_users")
        reads = scim_headers(token)
        systems = [System("scimsvc", run.scim_base, reads, web, worker)]
        if args.before:
            # The same server from another source tree (the code before a change), on this database.
            before = await serve_beside(run, http, "before", {"PYTHONPATH": args.before}, cwd=args.before)
            systems.append(System("before", before.base, reads, before.proc, worker))
        if args.parts_off:
            off = {setting: part.off for setting, part in PARTS.items()}
            core = await serve_beside(run, http, "parts off", off)
            systems.append(System("parts off", core.base, reads, core.proc, worker))
        plain = {"Content-Type": "application/json"}
        systems.append(System("baseline", bench.baseline_root, plain, baseline))
        names = user_names(args.seed, args.get)
        # Warm every server (connections, statement caches) before the rounds count.
        await rounds(bench, systems, "get", count=300, rounds=1, profiler=Profiler(None), names=names)
        await rounds(bench, systems, "post", count=200, rounds=1, profiler=Profiler(None), names=names)
        got = await rounds(
            bench, systems, "get", count=args.get, rounds=args.rounds, profiler=profiler, names=names
        )
        posted = await rounds(
            bench, systems, "post", count=args.post, rounds=args.rounds, profiler=profiler, names=names
        )
    print(f"load average after: {os.getloadavg()}")
    summary("GET userName eq", got)
    summary("POST /Users, worker applying", posted)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--post", type=int, default=2_000, help="POSTs per round")
    parser.add_argument("--get", type=int, default=3_000, help="GETs per round")
    parser.add_argument("--seed", type=int, default=100_000, help="users the GETs look up among")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE for scimsvc's processes")
    parser.add_argument(
        "--before", help="a source tree of scimsvc to run beside (e.g. a git archive of main)"
    )
    parser.add_argument("--profile", help="a directory for py-spy's speedscope files of the web process")
    parser.add_argument("--parts-off", action="store_true", help="also a serve with the optional parts off")
    arguments = parser.parse_args()
    if arguments.before:
        arguments.before = str(Path(arguments.before).resolve())
    asyncio.run(main(arguments))
