"""The rate limiter's cost and accuracy: added latency per request, and admitted/budget under 10x overload.

    .venv/bin/python bench/ratelimit.py [--requests 3000] [--overload-seconds 20]

(a) The same route, `GET /Users/{id}`, sent one at a time and interleaved to a tenant with `preset: off`
    (no bucket) and one with a budget it never reaches, on two `scimsvc serve` processes: one as
    deployed (leases: most requests admitted without a Redis round trip) and one with
    SCIMSVC_RATE_LIMIT_LEASE_MS=0 (every request runs the Lua script, as before leases): p50/p99 of each
    and the difference from the unlimited tenant on the same process.
(b) A tenant on the `strict` preset (10,000 credits per 30 s) driven by the `scimsvc loadtest` machinery
    with the okta mix at 10x its sustainable rate for ~20 s, ignoring and then honouring Retry-After:
    admitted credits / (budget + refill over the run).

Runs against the local PostgreSQL and Redis with its own database, queue and rate-limit key prefix (all
removed at the end) and its own two `scimsvc serve` processes (stopped by pid), on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import time
import uuid
from typing import Any

import aiohttp
import asyncpg
import redis.asyncio as aioredis
from harness import REDIS_URL, SERVER, free_port

from scimsvc.ratelimit.levels import STRICT_CREDITS, WINDOW_SECONDS
from scimsvc.store.migrations import migrate
from scimsvc.tools.loadtest.driver import Options, run_loadtest
from scimsvc.tools.loadtest.stats import latency_summary

HUGE_BUDGET = 1_000_000_000  # the schema's maximum: never reached, but every request is charged
# Mean credits per request of the okta mix, from its weights (scimsvc.tools.loadtest.mixes.MIXES) and levels:
# 100 actions = 115 requests costing 17,750 credits (a batched group PATCH alone is 2,000).
OKTA_MEAN_COST = 17_750 / 115


class Bench:
    """Serve processes on a fresh database (leases on, and off); tenants made through the admin API."""

    def __init__(self, http: aiohttp.ClientSession, port: int, exact_port: int, admin_key: str) -> None:
        self.http = http
        self.root = f"http://127.0.0.1:{port}"
        self.exact_root = f"http://127.0.0.1:{exact_port}"  # SCIMSVC_RATE_LIMIT_LEASE_MS=0
        self.admin = {"Authorization": f"Bearer {admin_key}"}

    async def wait_ready(self) -> None:
        for _ in range(200):
            try:
                async with (
                    self.http.get(f"{self.root}/ops/health") as resp,
                    self.http.get(f"{self.exact_root}/ops/health") as exact,
                ):
                    if resp.status == exact.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
        raise RuntimeError("scimsvc serve did not start")

    async def tenant(self, rate_limit: dict[str, Any], *, team: str | None = None) -> dict[str, str]:
        """A tenant with this rate_limit setting and a SCIM token (and a team, to link a group to)."""
        name = "bench-" + uuid.uuid4().hex[:6]
        async with self.http.post(
            f"{self.root}/admin/v1/tenants", json={"name": name, "rate_limit": rate_limit}, headers=self.admin
        ) as resp:
            assert resp.status == 201, await resp.text()
            tid = (await resp.json())["id"]
        async with self.http.post(
            f"{self.root}/admin/v1/tenants/{tid}/scim/tokens", headers=self.admin
        ) as resp:
            assert resp.status == 201, await resp.text()
            token = (await resp.json())["token"]
        if team:
            async with self.http.post(
                f"{self.root}/admin/v1/tenants/{tid}/teams", json={"name": team}, headers=self.admin
            ) as resp:
                assert resp.status == 201, await resp.text()
        return {"id": tid, "token": token}

    def scim(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}

    async def user(self, token: str) -> str:
        body = {"userName": f"lat.{uuid.uuid4().hex[:8]}@bench.example"}
        async with self.http.post(f"{self.root}/scim/v2/Users", json=body, headers=self.scim(token)) as resp:
            assert resp.status == 201, await resp.text()
            return (await resp.json())["id"]


LATENCY_TARGETS = (  # label, process, limited
    ("off", "leases", False),
    ("on", "leases", True),
    ("off_exact", "exact", False),
    ("on_exact", "exact", True),
)


async def limiter_latency(bench: Bench, requests: int) -> dict[str, Any]:
    """(a): GET /Users/{id} one at a time, in turn to an unlimited and a limited tenant on each process."""
    targets = {}
    for label, process, limited in LATENCY_TARGETS:
        t = await bench.tenant({"credits_per_30s": HUGE_BUDGET} if limited else {"preset": "off"})
        root = bench.root if process == "leases" else bench.exact_root
        targets[label] = (f"{root}/scim/v2/Users/{await bench.user(t['token'])}", bench.scim(t["token"]))
    latencies: dict[str, list[float]] = {label: [] for label in targets}
    warm_up = 200 * len(targets)  # connections, token caches, the script
    for i in range(requests * len(targets) + warm_up):
        # The first request after a switch of process pays for waking it: every other round the two
        # tenants of each process swap places, so that neither of them always pays it.
        j = i % len(targets)
        label, _, limited = LATENCY_TARGETS[j ^ 1 if (i // len(targets)) % 2 else j]
        url, headers = targets[label]
        started = time.perf_counter()
        async with bench.http.get(url, headers=headers) as resp:
            await resp.read()
            assert resp.status == 200, resp.status
            assert ("RateLimit-Limit" in resp.headers) == limited
        if i >= warm_up:
            latencies[label].append(time.perf_counter() - started)
    s = {label: latency_summary(values) for label, values in latencies.items()}
    return {
        "route": "GET /Users/{id}",
        "requests_each": requests,
        **s,
        "added_p50_ms": round(s["on"]["p50_ms"] - s["off"]["p50_ms"], 3),
        "added_p99_ms": round(s["on"]["p99_ms"] - s["off"]["p99_ms"], 3),
        "added_p50_ms_exact": round(s["on_exact"]["p50_ms"] - s["off_exact"]["p50_ms"], 3),
        "added_p99_ms_exact": round(s["on_exact"]["p99_ms"] - s["off_exact"]["p99_ms"], 3),
    }


async def overload(bench: Bench, seconds: float, *, honour: bool) -> dict[str, Any]:
    """(b): a strict tenant driven at 10x its sustainable rate with the okta mix."""
    tenant = await bench.tenant({"preset": "strict"}, team="scimsvc-loadtest")
    sustainable = STRICT_CREDITS / WINDOW_SECONDS / OKTA_MEAN_COST  # requests/s the refill pays for
    options = Options(
        base_url=f"{bench.root}/scim/v2",
        token=tenant["token"],
        duration=seconds,
        rate=10 * sustainable,
        mix="okta",
        concurrency=16,
        honour_retry_after=honour,
        seed=7,
    )
    report = await run_loadtest(options)
    return {
        "retry_after": report["retry_after"],
        "target_rate_per_s": round(10 * sustainable, 1),
        "sent_per_s": report["sent_per_s"],
        "admitted_per_s": report["admitted_per_s"],
        "elapsed_s": report["elapsed_s"],
        "share_429": report["share_429"],
        "early_admissions": report["early_admissions"]["count"],
        "group_traffic": report["group_id"] is not None,
        **report["credits"],
    }


async def main(requests: int, overload_seconds: float) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    db_url = f"{SERVER}/scimsvc_bench_{run}"
    port, exact_port = free_port(), free_port()
    admin_key = secrets.token_urlsafe(24)
    prefix = f"scimsvc:bench:{run}"
    env = {
        **os.environ,
        "SCIMSVC_DATABASE_URL": db_url,
        "SCIMSVC_REDIS_URL": REDIS_URL,
        "SCIMSVC_QUEUE_NAME": f"{prefix}:queue",
        "SCIMSVC_RATE_LIMIT_PREFIX": f"{prefix}:rl",
        "SCIMSVC_ADMIN_KEY": admin_key,
        "SCIMSVC_LOG_LEVEL": "WARNING",
        "SCIMSVC_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    await migrate(db_url)
    serves = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "scimsvc.cli",
            "serve",
            "--port",
            str(p),
            env={**env, "SCIMSVC_RATE_LIMIT_LEASE_MS": lease_ms},
            stdout=asyncio.subprocess.DEVNULL,
        )
        for p, lease_ms in ((port, env.get("SCIMSVC_RATE_LIMIT_LEASE_MS", "")), (exact_port, "0"))
    ]
    try:
        async with aiohttp.ClientSession() as http:
            bench = Bench(http, port, exact_port, admin_key)
            await bench.wait_ready()
            return {
                "latency": await limiter_latency(bench, requests),
                "overload_ignoring": await overload(bench, overload_seconds, honour=False),
                "overload_honouring": await overload(bench, overload_seconds, honour=True),
            }
    finally:
        for serve in serves:
            serve.terminate()
        for serve in serves:
            await serve.wait()
        admin = await asyncpg.connect(f"{SERVER}/postgres")
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "scimsvc_bench_{run}" WITH (FORCE)')
        finally:
            await admin.close()
        await forget_keys(prefix, f"{prefix}:queue")


async def forget_keys(prefix: str, queue: str) -> None:
    """Remove the bench's buckets, queue and the jobs nobody ran (no worker runs here)."""
    client = aioredis.from_url(REDIS_URL)
    try:
        keys = [b"arq:job:" + j for j in await client.zrange(queue, 0, -1)]
        keys += [k async for k in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def show(figures: dict[str, Any]) -> None:
    lat = figures["latency"]
    print(f"(a) limiter latency, {lat['route']}, {lat['requests_each']} sequential requests each")
    for process, suffix in (("leases", ""), ("no leases (SCIMSVC_RATE_LIMIT_LEASE_MS=0)", "_exact")):
        print(f"  {process}")
        for label in ("off", "on"):
            s = lat[label + suffix]
            print(
                f"    limits {label:<3}  p50 {s['p50_ms']:.3f} ms  p99 {s['p99_ms']:.3f} ms  "
                f"max {s['max_ms']:.1f} ms"
            )
        print(
            f"    added     p50 {lat['added_p50_ms' + suffix]:+.3f} ms  "
            f"p99 {lat['added_p99_ms' + suffix]:+.3f} ms"
        )
    for key in ("overload_ignoring", "overload_honouring"):
        o = figures[key]
        print(
            f"(b) strict tenant ({o['limit']} credits/30 s), okta mix at {o['target_rate_per_s']}/s, "
            f"Retry-After {o['retry_after']}: sent {o['sent_per_s']}/s, admitted {o['admitted_per_s']}/s, "
            f"429 share {o['share_429']:.1%}, offered {o['overload']}x the refill over {o['elapsed_s']} s"
        )
        print(
            f"    admitted {o['admitted_credits']} credits / allowed {o['allowed_over_run']} "
            f"= ratio {o['ratio']}; early admissions {o['early_admissions']}; "
            f"group traffic {o['group_traffic']}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=3000, help="per tenant in (a)")
    parser.add_argument("--overload-seconds", type=float, default=20.0)
    args = parser.parse_args()
    figures = asyncio.run(main(args.requests, args.overload_seconds))
    show(figures)
    print(json.dumps(figures))
