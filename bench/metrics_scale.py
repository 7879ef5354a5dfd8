"""/metrics as organizations grow: scrape bytes, series and time at 1, 100 and 10,000 organizations.

    .venv/bin/python bench/metrics_scale.py [--sizes 1,100,10000] [--scrapes 20] [--json out.json]
    .venv/bin/python bench/metrics_scale.py --quick        # 1 and 100 organizations

One `scimsvc serve` (rate limits on) on a database of its own. For each size, organizations are added
up to it straight in PostgreSQL for speed (one INSERT ... SELECT for the tenants, one for their tokens,
whose sha256 is what scimsvc stores, and `USERS_PER_TENANT` users each, a third of them holding a full
license); then every organization sends traffic through HTTP, as an IdP would: a POST /Users; every
tenth also a lookup and a read of a user that does not exist, and every hundredth runs into its rate
limit (429). Then the scrape: `--scrapes` GET /metrics one after the other. The first scrape of a size
counts the seat totals, the next ones (within 10 s) reuse them: both are reported.
Everything is removed at the end (database, Redis keys, the process).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import sys
import time
from typing import Any

import aiohttp
from harness import Run, scim_headers

from scimsvc.store.tenants import hash_token, new_token

USERS_PER_TENANT = 10
ADD_TENANTS = """
INSERT INTO tenants (name, seats, rate_limit)
SELECT 'scale-' || i, 5, CASE WHEN i % 100 = 1 THEN $3::jsonb ELSE $4::jsonb END
FROM generate_series($1::int + 1, $2::int) AS i
RETURNING id, name
"""
ADD_TOKENS = "INSERT INTO scim_tokens (tenant_id, token_hash) SELECT * FROM unnest($1::uuid[], $2::bytea[])"
ADD_USERS = """
INSERT INTO users (tenant_id, user_name, display_name, active, resource, license, provisioning_state)
SELECT t, 'seed' || i || '@scale.example', 'Seed ' || i, true,
       jsonb_build_object('userName', 'seed' || i || '@scale.example'),
       CASE WHEN i % 3 = 0 THEN 'full' ELSE 'free_restricted' END, 'provisioned'
FROM unnest($1::uuid[]) AS t, generate_series(1, $2::int) AS i
"""
# A budget a few requests exhaust: every hundredth organization gets it, and so a 429.
TIGHT = json.dumps({"credits_per_30s": 2000})
LOOSE = json.dumps({"preset": "off"})
CLIENTS = 32


def count_series(text: str) -> int:
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


async def add_tenants(run: Run, have: int, want: int) -> list[tuple[str, str, bool]]:
    """Organizations `have`+1 .. `want`, each with a token and seeded users: (id, token, tight budget).
    Every hundredth (the first included) gets a budget a few requests exhaust."""
    rows = await run.conn.fetch(ADD_TENANTS, have, want, TIGHT, LOOSE)
    ids = [str(r["id"]) for r in rows]
    tokens = [new_token() for _ in ids]
    await run.conn.execute(ADD_TOKENS, ids, [hash_token(t) for t in tokens])
    await run.conn.execute(ADD_USERS, ids, USERS_PER_TENANT)
    await run.conn.execute("VACUUM ANALYZE tenants, scim_tokens, users")
    tight = [int(r["name"].removeprefix("scale-")) % 100 == 1 for r in rows]
    return list(zip(ids, tokens, tight, strict=True))


async def traffic(
    run: Run, http: aiohttp.ClientSession, tenants: list[tuple[str, str, bool]]
) -> dict[int, int]:
    """Each organization's IdP calls; the statuses seen."""
    statuses: dict[int, int] = {}
    queue = iter(enumerate(tenants))

    async def call(method: str, url: str, headers: dict[str, str], body: Any = None) -> int:
        async with http.request(method, url, json=body, headers=headers) as resp:
            await resp.read()
            statuses[resp.status] = statuses.get(resp.status, 0) + 1
            return resp.status

    async def client() -> None:
        for number, (tenant_id, token, tight) in queue:
            headers = scim_headers(token)
            body = {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": f"idp-{tenant_id[:8]}@scale.example",
            }
            await call("POST", f"{run.scim_base}/Users", headers, body)
            if number % 10 == 0:
                await call("GET", f'{run.scim_base}/Users?filter=userName eq "{body["userName"]}"', headers)
                await call("GET", f"{run.scim_base}/Users/00000000-0000-0000-0000-000000000000", headers)
            for _ in range(200 if tight else 0):
                if await call("GET", f"{run.scim_base}/Users?count=1", headers) == 429:
                    break

    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    return statuses


async def scrape(http: aiohttp.ClientSession, url: str, times: int) -> dict[str, Any]:
    seconds: list[float] = []
    text = ""
    for _ in range(times):
        started = time.perf_counter()
        async with http.get(url) as resp:
            text = await resp.text()
        seconds.append(time.perf_counter() - started)
    return {
        "bytes": len(text.encode()),
        "series": count_series(text),
        "first_ms": round(seconds[0] * 1000, 1),
        "median_ms": round(statistics.median(seconds[1:] or seconds) * 1000, 1),
    }


async def measure(sizes: list[int], *, scrapes: int = 20) -> dict[str, Any]:
    """The scrape at each size (organizations), in increasing order."""
    results: list[dict[str, Any]] = []
    async with Run(rate_limit=True) as run, aiohttp.ClientSession() as http:
        serve = await run.start_serve(http)
        have = 0
        for size in sorted(sizes):
            started = time.perf_counter()
            tenants = await add_tenants(run, have, size)
            seeded = time.perf_counter() - started
            async with aiohttp.ClientSession() as fresh:  # a pooled connection may have idled out meanwhile
                statuses = await traffic(run, fresh, tenants)
            have = size
            cpu_before = serve.cpu_seconds()
            async with aiohttp.ClientSession() as fresh:
                figures = await scrape(fresh, f"{run.root}/metrics", scrapes)
            figures["web_cpu_ms_per_scrape"] = round((serve.cpu_seconds() - cpu_before) * 1000 / scrapes, 1)
            figures |= {
                "organizations": size,
                "seed_seconds": round(seeded, 1),
                "traffic_statuses": {str(k): v for k, v in sorted(statuses.items())},
                "web_rss_mb": round(serve.rss_mb(), 1),
            }
            print(json.dumps(figures), flush=True)
            results.append(figures)
    return {"sizes": results, "load_1min": _load()}


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
    parser.add_argument(
        "--sizes", default="1,100,10000", help="organizations at each step (default: %(default)s)"
    )
    parser.add_argument("--quick", action="store_true", help="1 and 100 organizations only")
    parser.add_argument("--scrapes", type=int, default=20, help="scrapes at each size (default: %(default)s)")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    sizes = [1, 100] if args.quick else [int(x) for x in args.sizes.split(",")]
    result = asyncio.run(measure(sizes, scrapes=args.scrapes))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
