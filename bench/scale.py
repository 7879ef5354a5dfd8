"""How cost grows with the work: the same workloads at more users in one organization, and at more
organizations, with plots.

    bench/scale.py [--users 10000,100000,1000000] [--orgs 1,100,10000] [--quick] [--no-plots]

Users series: one organization filled up to each size in turn; orgs series (a database of its own):
organizations added up to each count, each with a SCIM token, a team, `--org-users` users and its
rate-limit state (one request through its token), the first one also holding the users of the group
push. Users are filled by PostgreSQL directly (one INSERT ... SELECT generate_series per step, no HTTP
and no worker), as the worker leaves an applied user (provisioned, a license, no outbox row); everything
else goes through HTTP on top of the fill, with `scimsvc serve` and one `scimsvc worker` applying.

At each size: POST /Users ack rate and p50 (64 clients; across the organizations in the orgs series),
the worker's drain rate (posted users / seconds from the first POST until the last is applied), GET
`userName eq` rate and p50, a page of 100 at a random startIndex p50 (one client; and while one user a
second is POSTed to the organization), a walk of pages from startIndex=1 p50, a PUT of a group with
min(50,000, users) members (ack, applied; a new group each round), web RSS (VmRSS), Redis memory per
organization (MEMORY USAGE of the keys naming it under the run's prefix) and PostgreSQL bytes per user
(pg_total_relation_size of users and outbox / users). Right after a fill the deep page is also read
before VACUUM, to show what the visibility map is worth. POSTs, lookups and pushes are the median of 3
rounds (1 with --quick): one round's rate swings with the machine.

Targets (README.md, Performance), at the largest size against the smallest: every latency within
1.5 x, every rate within 0.67 x (the push against the smallest size with the same member count), web
RSS <= 150 MB. Writes JSON and PNG plots under bench/results/ (matplotlib from the `bench` extra).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import shutil
import signal
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Run, scim_headers  # noqa: E402

from scimsvc.store import pages  # noqa: E402
from scimsvc.store.tenants import hash_token, new_token  # noqa: E402
from scimsvc.tools.loadtest.stats import percentile  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
CLIENTS = 64
PUSH_MAX = 50_000
LATENCY_SLACK = 1.5
RATE_SLACK = 0.67
RSS_LIMIT_MB = 150

FULL = {
    "users": [10_000, 100_000, 1_000_000],
    "orgs": [1, 100, 10_000],
    "org_users": 20,
    "org_push": 10_000,
    "posts": 4_000,
    "gets": 3_000,
    "pages": 40,
    "walk": 50,
    "page_seconds": 20.0,
    "rounds": 3,  # GET eq, POST and the push: the median of this many rounds (one swings with the machine)
}
QUICK = {
    "users": [2_000, 20_000],
    "orgs": [1, 10, 100],
    "org_users": 10,
    "org_push": 2_000,
    "posts": 500,
    "gets": 500,
    "pages": 15,
    "walk": 15,
    "page_seconds": 5.0,
    "rounds": 1,
}

# An applied user as the worker leaves it: provisioned, a license, emails, no outbox row; written two
# hours ago (an import long done, not one still under way). $1 tenants, users $2 < i <= $3 of each.
FILL_USERS = """
INSERT INTO users (tenant_id, user_name, display_name, active, resource, license, provisioning_state,
                   provisioned_at, created_at, updated_at)
SELECT t, 'u' || i || '@scale.example', 'User ' || i, true,
       jsonb_build_object(
           'userName', 'u' || i || '@scale.example',
           'displayName', 'User ' || i,
           'name', jsonb_build_object('givenName', 'Given' || i, 'familyName', 'Family' || i),
           'emails', jsonb_build_array(jsonb_build_object('value', 'u' || i || '@scale.example',
                                                          'type', 'work', 'primary', true)),
           'active', true
       ),
       'free', 'provisioned', ago, ago, ago
FROM unnest($1::uuid[]) AS t, generate_series($2::int + 1, $3::int) AS i,
     (SELECT now() - interval '2 hours') AS a(ago)
"""
# Each organization's rate limit is on with a budget no workload here reaches: the limiter's work is
# measured (buckets, leases), never its refusals (3 rounds of 4,000 POSTs would exceed the default's).
FILL_TENANTS = """
INSERT INTO tenants (name, seats, flexible_licenses, default_license, rate_limit)
SELECT 'scale-' || i, 0, true, 'free', '{"credits_per_30s": 1000000000}'
FROM generate_series($1::int + 1, $2::int) AS i
RETURNING id::text
"""
FILL_TEAMS = "INSERT INTO teams (tenant_id, name) SELECT t, 'team' FROM unnest($1::uuid[]) AS t"
BLOCKS = "SELECT blks_read, blks_hit FROM pg_stat_database WHERE datname = current_database()"
PG_BYTES = "SELECT pg_total_relation_size('users') + pg_total_relation_size('outbox')"

Req = tuple[str, str, bytes | None, dict[str, str]]


def user_body(tag: str, i: int) -> bytes:
    return orjson.dumps(
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": f"p{i}.{tag}@scale.example",
            "name": {"givenName": "P", "familyName": str(i)},
            "emails": [{"value": f"p{i}.{tag}@scale.example", "type": "work", "primary": True}],
            "active": True,
        }
    )


async def drive(
    http: aiohttp.ClientSession,
    requests: Callable[[int], Req],
    count: int,
    *,
    clients: int,
    seconds: float | None = None,
) -> dict[str, Any]:
    """Send requests(0..count-1) from `clients` at once (each with its own headers); rate and p50."""
    numbers = iter(range(count))
    deadline = None if seconds is None else time.perf_counter() + seconds
    latencies: list[float] = []
    errors = 0

    async def client() -> None:
        nonlocal errors
        for i in numbers:
            if deadline is not None and time.perf_counter() > deadline:
                return
            method, url, body, headers = requests(i)
            start = time.perf_counter()
            async with http.request(method, url, data=body, headers=headers) as resp:
                await resp.read()
                errors += not 200 <= resp.status < 300
            latencies.append(time.perf_counter() - start)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    took = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "per_s": round(len(latencies) / took, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 99) * 1000, 2),
        "mean_ms": round(sum(latencies) / max(1, len(latencies)) * 1000, 2),
        "errors": errors,
    }


def median_of(rounds: list[dict[str, Any]], key: str) -> float:
    return round(statistics.median(r[key] for r in rounds), 2)


class Org:
    """An organization of the run: its id, SCIM headers and how many filled users it has."""

    def __init__(self, tenant_id: str, token: str) -> None:
        self.id = tenant_id
        self.headers = scim_headers(token)
        self.filled = 0


class Scale:
    """One series (users or orgs) on one Run: fills, measures, and keeps a row per size."""

    def __init__(self, run: Run, http: aiohttp.ClientSession, sizes: dict[str, Any]) -> None:
        self.run, self.http, self.n = run, http, sizes
        self.profile = bool(sizes.get("profile"))
        self.orgs: list[Org] = []
        self.rows: list[dict[str, Any]] = []
        self.posted = 0

    async def add_orgs(self, count: int) -> None:
        """Organizations up to `count`, by SQL: tenant, token, team."""
        conn = self.run.conn
        ids = [r[0] for r in await conn.fetch(FILL_TENANTS, len(self.orgs), count)]
        tokens = [new_token() for _ in ids]
        await conn.copy_records_to_table(
            "scim_tokens",
            records=[(i, hash_token(t), "scale", "cli") for i, t in zip(ids, tokens, strict=True)],
            columns=["tenant_id", "token_hash", "label", "created_by"],
        )
        await conn.execute(FILL_TEAMS, ids)
        self.orgs += [Org(i, t) for i, t in zip(ids, tokens, strict=True)]

    async def fill(self, orgs: list[Org], upto: int) -> float:
        """Fill each of `orgs` to `upto` users (SQL, no HTTP); returns seconds taken."""
        start = time.perf_counter()
        by_filled: dict[int, list[str]] = {}
        for org in orgs:
            if org.filled < upto:
                by_filled.setdefault(org.filled, []).append(org.id)
                org.filled = upto
        for filled, ids in by_filled.items():
            await self.run.conn.execute(FILL_USERS, ids, filled, upto)
        return time.perf_counter() - start

    async def measure(self, label: str, size: int, push_org: Org, filled_s: float) -> dict[str, Any]:
        run, http, n, orgs = self.run, self.http, self.n, self.orgs
        base = run.scim_base
        row: dict[str, Any] = {"size": size, "series": label, "fill_s": round(filled_s, 1)}
        big = push_org
        # The deep page straight after the fill, before any VACUUM (autovacuum may not have come yet).
        row["page_before_vacuum_p50_ms"] = (await self.random_pages(big, n["pages"] // 3))["p50_ms"]
        paged = time.monotonic()
        await run.conn.execute("VACUUM (ANALYZE) users")
        # A pass that ran out of time before VACUUM (statement timeout) is tried again only after
        # REBUILD_SECONDS (store/pages.py): measure the state after it, not the pages read by OFFSET until.
        await asyncio.sleep(max(0.0, pages.REBUILD_SECONDS - (time.monotonic() - paged)))
        row["page_random_p50_ms"] = (await self.random_pages(big, n["pages"]))["p50_ms"]
        written = await self.random_pages_written(big, f"w{label}{size}")
        row["page_random_written_p50_ms"], row["page_random_written_mean_ms"] = (
            written["p50_ms"],
            written["mean_ms"],
        )
        await self.wait_all_applied()  # the POSTs below start from an empty outbox
        walk = await drive(
            http,
            lambda i: ("GET", f"{base}/Users?startIndex={i * 100 + 1}&count=100", None, big.headers),
            min(n["walk"], max(1, big.filled // 100)),
            clients=1,
        )
        row["walk_p50_ms"] = walk["p50_ms"]

        def lookup(i: int) -> Req:
            org = orgs[i % len(orgs)]
            u = random.randint(1, org.filled)
            url = f"{base}/Users?filter=userName%20eq%20%22u{u}@scale.example%22"
            return "GET", url, None, org.headers

        gets = [await drive(http, lookup, n["gets"], clients=CLIENTS) for _ in range(n["rounds"])]
        row["get_eq_per_s"], row["get_eq_p50_ms"] = median_of(gets, "per_s"), median_of(gets, "p50_ms")
        row["get_eq_per_s_rounds"] = [g["per_s"] for g in gets]

        blocks = await run.conn.fetchrow(BLOCKS)
        spies = await self.spy(f"{label}-{size}-post") if self.profile else []
        posts, drains, after_ack = [], [], []
        for turn in range(n["rounds"]):
            tag = f"{label}{size}r{turn}"
            first = time.perf_counter()
            posts.append(
                await drive(
                    http,
                    lambda i, tag=tag: (
                        "POST",
                        f"{base}/Users",
                        user_body(tag, i),
                        orgs[i % len(orgs)].headers,
                    ),
                    n["posts"],
                    clients=CLIENTS,
                )
            )
            acked = time.perf_counter()
            await self.wait_all_applied()
            applied = time.perf_counter()
            drains.append(round(n["posts"] / (applied - first), 1))
            after_ack.append(applied - acked)
        for spy in spies:
            spy.process.send_signal(signal.SIGINT)  # py-spy writes its profile when interrupted
            await spy.process.wait()
        row["post_per_s"], row["post_p50_ms"] = median_of(posts, "per_s"), median_of(posts, "p50_ms")
        row["post_errors"] = sum(p["errors"] for p in posts)
        row["post_per_s_rounds"] = [p["per_s"] for p in posts]
        row["drain_per_s"] = statistics.median(drains)
        row["drain_per_s_rounds"] = drains
        await asyncio.sleep(1)  # the backends' statistics reach pg_stat_database within a second
        read, hit = (
            after - before for after, before in zip(await run.conn.fetchrow(BLOCKS), blocks, strict=True)
        )
        # PostgreSQL buffer reads per POST (ack and apply): blocks not in shared_buffers, and all blocks.
        posted = n["posts"] * n["rounds"]
        row["post_blocks_read"], row["post_blocks_all"] = (
            round(read / posted, 1),
            round((read + hit) / posted),
        )
        row["applied_after_last_ack_s"] = round(max(after_ack), 2)
        row.update(await self.push(big, size))
        row["web_rss_mb"] = round(run.serve.rss_mb(), 1) if run.serve else None
        row["redis_bytes_per_org"] = await self.redis_per_org()
        users = await run.conn.fetchval("SELECT count(*) FROM users")
        row["pg_bytes_per_user"] = round(await run.conn.fetchval(PG_BYTES) / users)
        row["users_total"] = users
        row["load_avg"] = [round(x, 2) for x in os.getloadavg()]
        self.rows.append(row)
        print(json.dumps(row), flush=True)
        return row

    async def spy(self, name: str) -> list[Any]:
        """py-spy recording the web process and the worker (flame graphs under bench/results/profiles/)."""
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        out = RESULTS / "profiles"
        out.mkdir(parents=True, exist_ok=True)
        procs = [p for p in (self.run.serve, *self.run.workers) if p is not None]
        spies = [
            await self.run.start(
                "py-spy",
                spy,
                "record",
                "--pid",
                str(p.pid),
                "--rate",
                "200",
                "--nonblocking",
                "--output",
                str(out / f"scale-{name}-{p.name}.svg"),
            )
            for p in procs
        ]
        await asyncio.sleep(1)  # py-spy attaches
        return spies

    async def random_pages(self, org: Org, count: int) -> dict[str, Any]:
        last = max(1, org.filled - 100)
        return await drive(
            self.http,
            lambda i: (
                "GET",
                f"{self.run.scim_base}/Users?startIndex={random.randint(1, last)}&count=100",
                None,
                org.headers,
            ),
            count,
            clients=1,
            seconds=self.n["page_seconds"],
        )

    async def random_pages_written(self, org: Org, tag: str) -> dict[str, Any]:
        """Random pages for `page_seconds` (many writes, not a few pages between two) while one user a
        second is POSTed to `org`: each write makes a kept list of checkpoints stale, and store/pages.py
        passes over it again at most every 10 s."""

        async def write() -> None:
            for i in itertools.count():
                body = user_body(tag, i)
                async with self.http.post(f"{self.run.scim_base}/Users", data=body, headers=org.headers) as r:
                    await r.read()
                await asyncio.sleep(1)

        writer = asyncio.create_task(write())
        try:
            measured = await self.random_pages(org, 1_000_000)
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        return measured

    async def wait_all_applied(self, seconds: float = 300.0) -> None:
        deadline = time.monotonic() + seconds
        while await self.run.conn.fetchval("SELECT count(*) FROM outbox WHERE applied_at IS NULL"):  # noqa: ASYNC110
            if time.monotonic() > deadline:
                raise RuntimeError(f"outbox not applied after {seconds} s")
            await asyncio.sleep(0.05)

    async def push(self, org: Org, size: int) -> dict[str, Any]:
        """PUT a group with min(50,000, users) of the organization's users, once per round (each a new
        group linked to a new team); the median ack and applied seconds."""
        members = min(PUSH_MAX, org.filled)
        ids = await self.run.conn.fetch(
            "SELECT id::text FROM users WHERE tenant_id = $1::uuid ORDER BY created_at, id LIMIT $2",
            org.id,
            members,
        )
        acks, applied = [], []
        for turn in range(self.n["rounds"]):
            name = f"push-{size}-{turn}"
            await self.run.conn.execute(
                "INSERT INTO teams (tenant_id, name) VALUES ($1::uuid, $2)", org.id, name
            )
            async with self.http.post(
                f"{self.run.scim_base}/Groups", data=orjson.dumps({"displayName": name}), headers=org.headers
            ) as resp:
                assert resp.status == 201, await resp.text()
                group_id = (await resp.json())["id"]
            await self.wait_all_applied()
            body = orjson.dumps({"displayName": name, "members": [{"value": r[0]} for r in ids]})
            start = time.perf_counter()
            async with self.http.put(
                f"{self.run.scim_base}/Groups/{group_id}", data=body, headers=org.headers
            ) as resp:
                await resp.read()
                assert resp.status in (200, 204), resp.status
            acks.append(round((time.perf_counter() - start) * 1000, 1))
            await self.wait_all_applied()
            applied.append(round(time.perf_counter() - start, 2))
        return {
            "push_members": members,
            "push_ack_ms": statistics.median(acks),
            "push_applied_s": statistics.median(applied),
            "push_ack_ms_rounds": acks,
            "push_applied_s_rounds": applied,
        }

    async def redis_per_org(self) -> float:
        """Mean bytes of Redis keys naming an organization, under the run's prefix (a sample of 50)."""
        sample = random.sample(self.orgs, min(50, len(self.orgs)))
        sizes = []
        for org in sample:
            keys = [
                k async for k in self.run.redis.scan_iter(match=f"{self.run.prefix}:*{org.id}*", count=1000)
            ]
            sizes.append(sum([await self.run.redis.memory_usage(k) or 0 for k in keys]))
        return round(statistics.mean(sizes))

    async def prime(self, orgs: list[Org]) -> None:
        """One request through each organization's token: its rate-limit state and token cache exist."""
        await drive(
            self.http,
            lambda i: ("GET", f"{self.run.scim_base}/Users?count=1", None, orgs[i].headers),
            len(orgs),
            clients=CLIENTS,
        )


async def users_series(http: aiohttp.ClientSession, sizes: dict[str, Any]) -> list[dict[str, Any]]:
    async with Run(rate_limit=True) as run:
        scale = Scale(run, http, sizes)
        await scale.add_orgs(1)
        await run.start_serve(http)
        await run.start_workers(1)
        org = scale.orgs[0]
        await scale.prime([org])
        for size in sizes["users"]:
            took = await scale.fill([org], size)
            print(f"users: filled to {size:,} by SQL in {took:.1f} s", flush=True)
            await scale.measure("users", size, org, took)
        return scale.rows


async def orgs_series(http: aiohttp.ClientSession, sizes: dict[str, Any]) -> list[dict[str, Any]]:
    async with Run(rate_limit=True) as run:
        scale = Scale(run, http, sizes)
        await run.start_serve(http)
        await run.start_workers(1)
        for count in sizes["orgs"]:
            start = time.perf_counter()
            new_from = len(scale.orgs)
            await scale.add_orgs(count)
            await scale.fill(scale.orgs[:1], sizes["org_push"])
            await scale.fill(scale.orgs[new_from:], sizes["org_users"])
            await scale.prime(scale.orgs[new_from:])
            took = time.perf_counter() - start
            print(f"orgs: {count:,} organizations (SQL fill, one request each) in {took:.1f} s", flush=True)
            await scale.measure("orgs", count, scale.orgs[0], took)
        return scale.rows


LATENCIES = ("get_eq_p50_ms", "page_random_p50_ms", "walk_p50_ms", "post_p50_ms", "push_ack_ms")
RATES = ("post_per_s", "drain_per_s")


def targets(rows: list[dict[str, Any]], series: str) -> list[dict[str, Any]]:
    """At the largest size against the smallest: latencies within 1.5 x, rates within 0.67 x, RSS."""
    mine = [r for r in rows if r["series"] == series]
    if len(mine) < 2:
        return []
    small, large = mine[0], mine[-1]
    out = []
    for key in LATENCIES:
        ref = small
        if key == "push_ack_ms":  # a push is compared with one of the same member count
            ref = next((r for r in mine if r["push_members"] == large["push_members"]), small)
        ratio = large[key] / ref[key] if ref[key] else None
        out.append(
            {
                "target": f"{series}: {key} at {large['size']:,} ≤ {LATENCY_SLACK} × at {ref['size']:,}",
                "measured": None if ratio is None else round(ratio, 2),
                "pass": None if ratio is None else ratio <= LATENCY_SLACK,
            }
        )
    for key in RATES:
        ratio = large[key] / small[key] if small[key] else None
        out.append(
            {
                "target": f"{series}: {key} at {large['size']:,} ≥ {RATE_SLACK} × at {small['size']:,}",
                "measured": None if ratio is None else round(ratio, 2),
                "pass": None if ratio is None else ratio >= RATE_SLACK,
            }
        )
    rss = max(r["web_rss_mb"] or 0 for r in mine)
    out.append(
        {"target": f"{series}: web RSS ≤ {RSS_LIMIT_MB} MB", "measured": rss, "pass": rss <= RSS_LIMIT_MB}
    )
    return out


PLOTS = [
    (
        "reads, p50 ms",
        (
            "get_eq_p50_ms",
            "page_random_p50_ms",
            "page_random_written_p50_ms",
            "page_before_vacuum_p50_ms",
            "walk_p50_ms",
        ),
    ),
    ("writes, p50 ms", ("post_p50_ms", "push_ack_ms")),
    ("per second", ("post_per_s", "drain_per_s", "get_eq_per_s")),
    ("web RSS, MB", ("web_rss_mb",)),
    ("Redis bytes per organization", ("redis_bytes_per_org",)),
    ("PostgreSQL bytes per user", ("pg_bytes_per_user",)),
]


def short(n: int) -> str:
    return (
        f"{n // 1_000_000}M"
        if n >= 1_000_000 and not n % 1_000_000
        else f"{n // 1000}k"
        if n >= 1000
        else str(n)
    )


def plot(rows: list[dict[str, Any]], series: str, stamp: str) -> Path | None:
    """One PNG of every curve of a series (log x), or None (one line said) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no plots: matplotlib is missing (pip install -e '.[bench]')")
        return None
    mine = [r for r in rows if r["series"] == series]
    if not mine:
        return None
    xs = [r["size"] for r in mine]
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.4))
    for ax, (title, keys) in zip(axes.flat, PLOTS, strict=True):
        for key in keys:
            ax.plot(xs, [r.get(key) for r in mine], marker="o", label=key)
        ax.set_xscale("log")
        ax.set_xticks(xs, [short(x) for x in xs])
        ax.minorticks_off()
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("users in the organization" if series == "users" else "organizations", fontsize=8)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=6)
        ax.tick_params(labelsize=7)
    fig.suptitle(f"bench/scale.py, {series} series, {stamp} (load avg {mine[-1]['load_avg'][0]})", fontsize=9)
    fig.tight_layout()
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"scale-{series}.png"
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


async def main(sizes: dict[str, Any], *, plots: bool = True) -> dict[str, Any]:
    """Both series (a list left empty skips it); returns the report with its targets."""
    started = time.time()
    load_before = [round(x, 2) for x in os.getloadavg()]
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=600)
    ) as http:
        rows = []
        if sizes["users"]:
            rows += await users_series(http, sizes)
        if sizes["orgs"]:
            rows += await orgs_series(http, sizes)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started))
    report = {
        "started": stamp,
        "seconds": round(time.time() - started),
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "fill": "users filled by PostgreSQL directly (INSERT ... SELECT generate_series), not through HTTP",
        "sizes": sizes,
        "rows": rows,
        "targets": targets(rows, "users") + targets(rows, "orgs"),
        "plots": [str(p) for s in ("users", "orgs") if plots and (p := plot(rows, s, stamp))],
    }
    return report


def show(report: dict[str, Any]) -> None:
    print(
        f"\nbench/scale.py at {report['started']}, {report['seconds']} s, load average before "
        f"{report['load_before']} after {report['load_after']}; {report['fill']}"
    )
    keys = [
        "size",
        "post_per_s",
        "post_p50_ms",
        "drain_per_s",
        "get_eq_p50_ms",
        "page_random_p50_ms",
        "page_random_written_p50_ms",
        "page_before_vacuum_p50_ms",
        "walk_p50_ms",
        "push_members",
        "push_ack_ms",
        "push_applied_s",
        "web_rss_mb",
        "redis_bytes_per_org",
        "pg_bytes_per_user",
        "post_blocks_read",
        "post_blocks_all",
    ]
    for series in ("users", "orgs"):
        mine = [r for r in report["rows"] if r["series"] == series]
        if mine:
            print(f"\n{series}: " + " | ".join(keys))
            for r in mine:
                print("  " + " | ".join(str(r.get(k)) for k in keys))
    print("\ntargets")
    for t in report["targets"]:
        verdict = {True: "PASS", False: "FAIL", None: "n/a"}[t["pass"]]
        print(f"  {verdict:<5} {t['target']:<60} measured {t['measured']}")
    for p in report["plots"]:
        print(f"plot: {p}")


def numbers(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, about a minute")
    parser.add_argument(
        "--users", type=numbers, help="users in one organization, e.g. 10000,100000 ('' skips)"
    )
    parser.add_argument("--orgs", type=numbers, help="organization counts, e.g. 1,100,10000 ('' skips)")
    parser.add_argument("--no-plots", dest="plots", action="store_false")
    parser.add_argument(
        "--profile", action="store_true", help="py-spy flame graphs of web and worker during each POST load"
    )
    args = parser.parse_args()
    chosen = dict(QUICK if args.quick else FULL)
    if args.users is not None:
        chosen["users"] = args.users
    if args.orgs is not None:
        chosen["orgs"] = args.orgs
    chosen["profile"] = args.profile
    result = asyncio.run(main(chosen, plots=args.plots))
    show(result)
    out = RESULTS / f"scale-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    print(f"JSON: {out}")
