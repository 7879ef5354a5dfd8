"""The two hot paths alone, fast: POST /Users and GET userName eq against the bare baseline.

    python bench/hotpath.py [--rounds 4] [--post 2000] [--get 3000] [--seed 100000] [--profile DIR]

The same alternating rounds as bench/run.py's `post_rounds` and `get_rounds` (scimsvc, then the
baseline, seconds apart; POST with scimsvc's worker applying), in a run of its own (database, queue,
Redis prefix, processes), with the CPU milliseconds per request of each process (web, worker,
PostgreSQL, this client) beside the ratios: throughput moves with the machine's load, CPU per request
much less. --profile DIR records the web process with py-spy (installed outside the project) during
scimsvc's rounds, a speedscope file per workload; --set KEY=VALUE (repeatable) sets an environment
variable of scimsvc's processes (SCIMSVC_ACCESS_LOG=off, ...). Takes a minute or two.
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
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Proc, Run, cpu_ms_per_request, cpu_snapshot, drive, scim_headers  # noqa: E402
from run import SEED_BASELINE, Bench, user_body, user_names  # noqa: E402


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


async def get_rounds(bench: Bench, names: list[str], rounds: int, count: int, profiler: Profiler) -> dict:
    base, headers = bench.reads
    root = bench.baseline_root
    web, baseline = bench.web, bench.baseline_proc
    assert web is not None and baseline is not None

    def by_name(url: str) -> Any:
        return lambda i: ("GET", f'{url}/Users?filter=userName eq "{names[i % len(names)]}"', None)

    ratios, ours_cpu, base_cpu = [], [], []
    for r in range(rounds):
        spy = profiler.record(web, "get") if r == rounds - 1 else None
        before = cpu_snapshot({"web": web})
        ours = await drive(bench.http, by_name(base), count, concurrency=bench.c, headers=headers)
        ours_cpu.append(cpu_ms_per_request(before, cpu_snapshot({"web": web}), count))
        Profiler.stop(spy)
        assert not ours.errors, ours.statuses
        before = cpu_snapshot({"web": baseline})
        theirs = await drive(
            bench.http,
            by_name(root),
            count,
            concurrency=bench.c,
            headers={"Content-Type": "application/json"},
        )
        base_cpu.append(cpu_ms_per_request(before, cpu_snapshot({"web": baseline}), count))
        ratios.append(ours.per_s / theirs.per_s)
        print(
            f"  GET round {r + 1}: {ours.per_s:,.0f} / {theirs.per_s:,.0f} per s = {ratios[-1]:.2f}",
            flush=True,
        )
    return {"ratios": ratios, "ours_cpu": ours_cpu, "baseline_cpu": base_cpu}


async def post_rounds(bench: Bench, rounds: int, count: int, profiler: Profiler) -> dict:
    run = bench.run
    web, worker, baseline = bench.web, bench.worker, bench.baseline_proc
    assert web is not None and worker is not None and baseline is not None
    ratios, ours_cpu, base_cpu = [], [], []
    for r in range(rounds):
        spy = profiler.record(web, "post") if r == rounds - 1 else None
        wspy = profiler.record(worker, "post-worker") if r == rounds - 1 else None
        ours = {"web": web, "worker": worker}
        before = cpu_snapshot(ours)
        tenant, live = await bench.post_ours(count)
        await run.wait_applied(tenant)
        ours_cpu.append(cpu_ms_per_request(before, cpu_snapshot(ours), count))
        Profiler.stop(spy)
        Profiler.stop(wspy)
        assert not live.errors, live.statuses
        before = cpu_snapshot({"web": baseline})
        theirs = await bench.post_baseline(count)
        base_cpu.append(cpu_ms_per_request(before, cpu_snapshot({"web": baseline}), count))
        ratios.append(live.per_s / theirs.per_s)
        print(
            f"  POST round {r + 1}: {live.per_s:,.0f} / {theirs.per_s:,.0f} per s = {ratios[-1]:.2f}",
            flush=True,
        )
    return {"ratios": ratios, "ours_cpu": ours_cpu, "baseline_cpu": base_cpu}


def summary(name: str, figures: dict) -> None:
    def median_parts(parts: list[dict[str, float]]) -> str:
        keys = parts[0].keys()
        return ", ".join(f"{k} {statistics.median(p[k] for p in parts):.3f}" for k in keys)

    ratios = figures["ratios"]
    each = ", ".join(f"{x:.2f}" for x in ratios)
    print(f"{name}: median ours/baseline {statistics.median(ratios):.2f} ({each})")
    print(f"  CPU ms per request, ours:     {median_parts(figures['ours_cpu'])}")
    print(f"  CPU ms per request, baseline: {median_parts(figures['baseline_cpu'])}")


async def main(args: argparse.Namespace) -> None:
    print(f"load average before: {os.getloadavg()}", flush=True)
    profiler = Profiler(Path(args.profile) if args.profile else None)
    connector = aiohttp.TCPConnector(limit=0)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=300)) as http,
        Run(rate_limit=True) as run,
    ):
        run.env.update(dict(setting.split("=", 1) for setting in args.set))
        bench = Bench(run, http, {"post_round": args.post}, args.concurrency)
        bench.web = await run.start_serve(http)
        bench.worker = (await run.start_workers(1))[0]
        await bench.start_baseline()
        tenant, token = await run.tenant(http)
        await run.seed_users(tenant, args.seed)
        bench.reads = (run.scim_base, scim_headers(token))
        await run.conn.execute(SEED_BASELINE, args.seed)
        await run.conn.execute("VACUUM ANALYZE baseline_users")
        names = user_names(args.seed, args.get)
        # Warm both (connections, caches) before the rounds count.
        await get_rounds(bench, names[:500], 1, 500, Profiler(None))
        await drive(
            http,
            lambda i: ("POST", f"{run.scim_base}/Users", user_body(i, uuid.uuid4().hex[:6])),
            200,
            concurrency=bench.c,
            headers=scim_headers(token),
        )
        got = await get_rounds(bench, names, args.rounds, args.get, profiler)
        posted = await post_rounds(bench, args.rounds, args.post, profiler)
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
    parser.add_argument("--profile", help="a directory for py-spy's speedscope files of the web process")
    asyncio.run(main(parser.parse_args()))
