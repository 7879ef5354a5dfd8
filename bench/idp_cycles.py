"""An identity provider's whole cycle, end to end, and an Okta deactivation wave.

    .venv/bin/python bench/idp_cycles.py [--quick] [--users N] [--peer-users N] [--no-peer]
                                         [--only entra,okta,wave] [--wave-users N]

**The cycles** run the requests Entra ID and Okta send when an application is first assigned to
thousands of users, against scimsvc (one `serve`, one `worker`, the clock stopping when the worker has
applied the last change: users provisioned, seats decided, team members added) and the bare baseline
(bench/baseline_app.py: one statement per request, nothing to apply later) in alternating rounds (the
ratio is the median of the rounds'; CPU ms per user of each process, of the PostgreSQL backends of the
run's database (`postgres_own`; `postgres` is all of PostgreSQL's, other work included) and of the
client are noted, as they survive a busy machine better than rates), then the peers scim2-server
(PyPI, in .bench-venv/ as bench/run.py makes it) and jelhub's scimgateway with its `loki` plugin (an
in-memory store; see `ensure_scimgateway`). Each system gets the same requests from the same aiohttp
client with CONCURRENCY requests in flight, in three phases:
1. groups: Entra looks each group up (`GET /Groups?filter=displayName eq "…"`, empty) and POSTs it;
   Okta's Group Push POSTs it (its SCIM 2.0 guide: create with POST /Groups, then membership by PATCH);
2. users: for each user `GET /Users?filter=userName eq "…"` (empty; Okta adds `startIndex=1&count=100`),
   then `POST /Users` with the IdP's body (Entra's with externalId and the enterprise extension, Okta's
   with `locale` and `groups: []`), each user's two requests in turn, CONCURRENCY users at a time;
3. memberships: `PATCH /Groups/{id}` adding the users in batches of MEMBER_BATCH (Entra writes the op
   `"Add"`, Okta `"add"` with `display`), the batches of all groups interleaved, CONCURRENCY at a time.
Every user is in the group "All staff" and in one of nine department groups (two memberships a user).
scimsvc's tenant has a team named like each group (a SCIM group links to the team of its exact name)
and seats for half of the users, so the worker decides seats and a waiting list too.

**The wave** (scimsvc only): an organization whose seats are all taken (WAVE users, applied) and with
WAVE // 2 more users waiting for a seat, all created through POST /Users and applied by the worker;
then Okta deactivates every seat holder (`PATCH /Users/{id}` `active` false, CONCURRENCY clients). It
reports the ack rate and the time from the last ack until every change is applied, every seat of a
deactivated user is freed and every waiting user is promoted (the target: ≤ 20 s). It runs twice: with
the worker applying as the acks come, and with the worker stopped until the last ack (the whole wave
left to drain after it, as when the worker has fallen behind).

Printed per system: total seconds, users/s end to end, p50 of lookups, POSTs and PATCHes, and the time
from the last ack until applied. Everything runs on 127.0.0.1 in a database, Redis prefix and queue of
its own (bench/harness.py's `Run`), with processes started and stopped by pid. JSON goes to
bench/results/idp-cycles-<time>.json. bench/run.py calls `bench_idp` and appends its rows and targets.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
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
    free_port,
    scim_headers,
    start_baseline,
    wait_http,
)

from scimsvc.tools.loadtest.stats import percentile  # noqa: E402

HERE = Path(__file__).resolve().parent
BENCH_NODE = Path(os.environ.get("SCIMSVC_BENCH_NODE_DIR", HERE.parent / ".bench-node"))
# jelhub/scimgateway is not on npm under a name we can use: its repository's newest release tag is
# packed with `npm pack` and that tarball installed (see ensure_scimgateway).
SCIMGATEWAY_REPO = "https://github.com/jelhub/scimgateway.git"
SCIMGATEWAY_REPO_DIR = os.environ.get("SCIMSVC_BENCH_SCIMGATEWAY_GIT")  # a local clone, if any

# Entra ID's provisioning service and Okta's Group Push both run requests in parallel; 32 in flight is
# what bench/run.py uses for every workload and within what either IdP sends one application.
CONCURRENCY = 32
# Members per group PATCH. Entra sends membership changes as PATCH /Groups/{id} with an "Add" operation
# of `members` (Microsoft's "Develop and plan provisioning for a SCIM endpoint", section "Update Group
# [Add Members]": learn.microsoft.com/entra/identity/app-provisioning/use-scim-to-provision-users-and-groups);
# Okta's SCIM 2.0 guide (developer.okta.com/docs/api/openapi/okta-scim/guides/scim-20) pushes membership
# by PATCH add/remove, in smaller PATCH operations since Okta's 2021.05 release (okta/okta-developer-docs
# PR 2105). Neither page states a number: 100 is the batch commonly observed from both and the cap
# SCIM services document (AWS IAM Identity Center: at most 100 membership changes per PATCH).
MEMBER_BATCH = 100
DEPARTMENTS = 9

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
PENDING = "SELECT count(*) FROM outbox WHERE tenant_id = $1::uuid AND applied_at IS NULL"
SEATS = """
SELECT count(*) FILTER (WHERE license = 'full' AND active) AS seated,
       count(*) FILTER (WHERE waiting_since IS NOT NULL AND active AND scim_linked) AS waiting,
       count(*) FILTER (WHERE license = 'full' AND NOT active) AS seated_inactive
FROM users WHERE tenant_id = $1::uuid
"""
TEAM_MEMBERS = """
SELECT count(*) FROM team_members m JOIN teams t ON t.id = m.team_id WHERE t.tenant_id = $1::uuid
"""

# The peers keep users in memory and answer a userName filter by a scan: at 20,000 users a cycle there
# would take 5-10 minutes, so they run 5,000 (their rate only falls as they grow: the ratio is conservative).
FULL = {"users": 20_000, "peer_users": 5_000, "wave": 20_000, "rounds": 2}
# A smoke run (bench/run.py --quick stays within about 5 minutes with these).
QUICK = {"users": 1_000, "peer_users": 500, "wave": 1_000, "rounds": 1}


# --- what the IdPs send ----------------------------------------------------------------------------


def entra_user(name: str, i: int) -> dict[str, Any]:
    return {
        "schemas": [CORE_USER, ENTERPRISE],
        "externalId": str(uuid.UUID(int=i + 1)),
        "userName": name,
        "active": True,
        "displayName": f"User {i}",
        "emails": [{"primary": True, "type": "work", "value": name}],
        "name": {"formatted": f"Given{i} Family{i}", "familyName": f"Family{i}", "givenName": f"Given{i}"},
        ENTERPRISE: {"department": f"Dept {i % DEPARTMENTS}", "employeeNumber": str(i)},
    }


def okta_user(name: str, i: int) -> dict[str, Any]:
    return {
        "schemas": [CORE_USER],
        "userName": name,
        "name": {"givenName": f"Given{i}", "familyName": f"Family{i}"},
        "emails": [{"primary": True, "value": name, "type": "work"}],
        "displayName": f"Given{i} Family{i}",
        "locale": "en-US",
        "externalId": f"00u{i:017d}",
        "groups": [],
        "active": True,
    }


def entra_add(members: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "Add", "path": "members", "value": [{"value": uid} for uid, _ in members]}],
    }


def okta_add(members: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "schemas": [PATCH_OP],
        "Operations": [
            {"op": "add", "path": "members", "value": [{"value": uid, "display": n} for uid, n in members]}
        ],
    }


@dataclass(frozen=True)
class Idp:
    name: str
    looks_up_groups: bool
    user_body: Callable[[str, int], dict[str, Any]]
    add_body: Callable[[list[tuple[str, str]]], dict[str, Any]]
    lookup_query: str  # after the filter

    def user_lookup(self, base: str, user_name: str) -> str:
        return f'{base}/Users?filter=userName eq "{user_name}"{self.lookup_query}'


ENTRA = Idp("Entra", True, entra_user, entra_add, "")
OKTA = Idp("Okta", False, okta_user, okta_add, "&startIndex=1&count=100")


# --- the systems --------------------------------------------------------------------------------------


@dataclass
class Target:
    """One system under test: its SCIM base URL, headers, process, and how to wait until it applied."""

    name: str
    base: str
    headers: dict[str, str]
    proc: Proc | None
    applied: Callable[[], Awaitable[dict[str, Any]]] | None = None  # None: applied when acknowledged
    teams: Callable[[list[str]], Awaitable[None]] | None = None  # scimsvc: the teams groups link to


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    statuses: dict[str, dict[int, int]] = field(default_factory=dict)

    def note(self, kind: str, seconds: float, status: int) -> None:
        self.latencies.setdefault(kind, []).append(seconds)
        by_status = self.statuses.setdefault(kind, {})
        by_status[status] = by_status.get(status, 0) + 1

    def p50_ms(self, kind: str) -> float | None:
        values = sorted(self.latencies.get(kind, []))
        return round(percentile(values, 50) * 1000, 2) if values else None

    def errors(self, ok: Callable[[str, int], bool]) -> dict[str, dict[int, int]]:
        return {
            kind: {s: n for s, n in by.items() if not ok(kind, s)}
            for kind, by in self.statuses.items()
            if any(not ok(kind, s) for s in by)
        }


async def call(
    http: aiohttp.ClientSession,
    stats: Stats,
    kind: str,
    method: str,
    url: str,
    headers: dict[str, str],
    body: Any = None,
) -> tuple[int, Any]:
    data = None if body is None else orjson.dumps(body)
    started = time.perf_counter()
    try:
        async with http.request(method, url, data=data, headers=headers) as resp:
            raw = await resp.read()
            status = resp.status
    except aiohttp.ClientError:
        status, raw = 0, b""
    stats.note(kind, time.perf_counter() - started, status)
    try:
        return status, orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return status, None


async def in_parallel(items: list[Any], work: Callable[[Any], Awaitable[None]], concurrency: int) -> None:
    queue = iter(items)

    async def client() -> None:
        for item in queue:
            await work(item)

    await asyncio.gather(*(client() for _ in range(concurrency)))


def ok_status(kind: str, status: int) -> bool:
    # A lookup answers 200 with nothing found; POSTs 201; a PATCH 200 or 204.
    return 200 <= status < 300


async def cycle(
    http: aiohttp.ClientSession, target: Target, idp: Idp, users: int, *, concurrency: int = CONCURRENCY
) -> dict[str, Any]:
    """One IdP's initial cycle for `users` users against `target`, end to end."""
    tag = uuid.uuid4().hex[:6]
    base, headers = target.base, target.headers
    groups = [f"All staff {tag}"] + [f"Dept {d} {tag}" for d in range(DEPARTMENTS)]
    if target.teams is not None:
        await target.teams(groups)
    stats = Stats()
    group_ids: dict[str, str] = {}
    user_ids: list[tuple[str, str] | None] = [None] * users

    async def make_group(name: str) -> None:
        if idp.looks_up_groups:
            url = f'{base}/Groups?excludedAttributes=members&filter=displayName eq "{name}"'
            await call(http, stats, "group lookup", "GET", url, headers)
        body = {"schemas": [CORE_GROUP], "displayName": name, "members": []}
        if idp is ENTRA:
            body["externalId"] = str(uuid.uuid4())
        status, answer = await call(http, stats, "group POST", "POST", f"{base}/Groups", headers, body)
        if status == 201 and answer:
            group_ids[name] = answer["id"]

    async def make_user(i: int) -> None:
        name = f"{idp.name.lower()}{i}.{tag}@idp.example"
        await call(http, stats, "lookup", "GET", idp.user_lookup(base, name), headers)
        status, answer = await call(
            http, stats, "POST", "POST", f"{base}/Users", headers, idp.user_body(name, i)
        )
        if status == 201 and answer:
            user_ids[i] = (answer["id"], name)

    started = time.perf_counter()
    await in_parallel(groups, make_group, concurrency)
    groups_done = time.perf_counter()
    await in_parallel(list(range(users)), make_user, concurrency)
    users_done = time.perf_counter()

    # Every user in "All staff" and in one department; each group's members in batches, interleaved.
    members: dict[str, list[tuple[str, str]]] = {name: [] for name in groups}
    for i, created in enumerate(user_ids):
        if created is not None:
            members[groups[0]].append(created)
            members[groups[1 + i % DEPARTMENTS]].append(created)
    batches = [
        [(name, chunk[k : k + MEMBER_BATCH]) for name, chunk in members.items() if k < len(chunk)]
        for k in range(0, max(len(m) for m in members.values()), MEMBER_BATCH)
    ]
    patches = [(name, chunk) for row in batches for name, chunk in row if name in group_ids]

    async def add_members(item: tuple[str, list[tuple[str, str]]]) -> None:
        name, chunk = item
        url = f"{base}/Groups/{group_ids[name]}"
        await call(http, stats, "group PATCH", "PATCH", url, headers, idp.add_body(chunk))

    await in_parallel(patches, add_members, concurrency)
    last_ack = time.perf_counter()
    check = await target.applied() if target.applied is not None else {}
    done = time.perf_counter()
    total = done - started
    made = sum(1 for u in user_ids if u is not None)
    return {
        "workload": f"{idp.name} cycle, {users} users",
        "system": target.name,
        "users": users,
        "users_created": made,
        "groups_created": len(group_ids),
        "member_patches": len(patches),
        "total_s": round(total, 2),
        "per_s": round(users / total, 1),
        "unit": "users/s end to end",
        "groups_s": round(groups_done - started, 2),
        "users_s": round(users_done - groups_done, 2),
        "memberships_s": round(last_ack - users_done, 2),
        "applied_after_last_ack_s": round(done - last_ack, 2),
        "lookup_p50_ms": stats.p50_ms("lookup"),
        "post_p50_ms": stats.p50_ms("POST"),
        "patch_p50_ms": stats.p50_ms("group PATCH"),
        "group_lookup_p50_ms": stats.p50_ms("group lookup"),
        "errors": stats.errors(ok_status),
        **check,
    }


async def scimsvc_target(run: Run, http: aiohttp.ClientSession, users: int) -> Target:
    """A fresh tenant of scimsvc with seats for half of the users (the rest wait)."""
    tenant, token = await run.tenant(http, seats=users // 2)

    async def teams(names: list[str]) -> None:
        for name in names:
            await run.team(http, tenant, name)

    async def applied() -> dict[str, Any]:
        await run.wait_applied(tenant, seconds=600)
        seats = await run.conn.fetchrow(SEATS, tenant)
        return {
            "seated": seats["seated"],
            "waiting": seats["waiting"],
            "team_members": await run.conn.fetchval(TEAM_MEMBERS, tenant),
        }

    assert run.serve is not None
    return Target("scimsvc", run.scim_base, scim_headers(token), run.serve, applied, teams)


async def baseline_target(run: Run, http: aiohttp.ClientSession) -> Target:
    proc, root = await start_baseline(run, http)
    return Target("baseline", root, {"Content-Type": "application/json"}, proc)


async def scim2_server_target(run: Run, http: aiohttp.ClientSession) -> Target:
    """scim2-server with a listen backlog of 1024 (bench/peer_server.py), fresh and empty."""
    from run import ensure_peer_venv  # bench/run.py's venv of peers

    python = ensure_peer_venv()
    port, token = free_port(), uuid.uuid4().hex
    args = ["--hostname", "127.0.0.1", "--port", str(port), "--bearer-token", token]
    proc = await run.start(
        "peer", str(python), str(HERE / "peer_server.py"), "--backlog", "1024", "--", *args
    )
    root = f"http://127.0.0.1:{port}/v2"
    await wait_http(http, f"{root}/ServiceProviderConfig")
    return Target("scim2-server", root, scim_headers(token), proc)


def _run(*argv: str, cwd: Path | str | None = None) -> None:
    subprocess.run(list(argv), cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def ensure_scimgateway() -> Path:
    """.bench-node/ with scimgateway and tsx installed (made on first use; never a project dependency).

    scimgateway's release is packed from its repository (the newest tag, `git archive` into a temporary
    folder, `npm pack`), and the tarball installed with npm without its install scripts (its postinstall
    runs with bun, and only copies the plugins and configs, which `start_scimgateway` writes itself).
    It declares Node ≥ 22.6 to run its TypeScript natively; on Node 20 the `tsx` it depends on loads it
    (`node --import tsx`), as its index.ts's comment says for Node.js.
    """
    plugin = BENCH_NODE / "node_modules" / "scimgateway" / "lib" / "plugin-loki.ts"
    if plugin.exists():
        return BENCH_NODE
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise RuntimeError("node and npm are needed for scimgateway and are not on PATH")
    with tempfile.TemporaryDirectory(prefix="scimgateway-") as tmp:
        repo = SCIMGATEWAY_REPO_DIR
        if repo is None:
            repo = f"{tmp}/repo.git"
            _run("git", "clone", "-q", "--bare", "--filter=blob:none", SCIMGATEWAY_REPO, repo)
        tags = subprocess.run(
            ["git", f"--git-dir={repo}", "tag", "--sort=-v:refname"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        release = tags[0] if tags else "HEAD"
        tree = Path(tmp) / "tree"
        tree.mkdir()
        archive = subprocess.run(
            ["git", f"--git-dir={repo}", "archive", release], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        _run("npm", "pack", "--ignore-scripts", "--pack-destination", tmp, cwd=tree)
        tarball = next(Path(tmp).glob("scimgateway-*.tgz"))
        BENCH_NODE.mkdir(exist_ok=True)
        (BENCH_NODE / "package.json").write_text(
            '{"name": "bench-node", "private": true, "type": "module"}\n'
        )
        _run(
            "npm",
            "install",
            "--ignore-scripts",
            "--legacy-peer-deps",
            "--no-audit",
            "--no-fund",
            str(tarball),
            cwd=BENCH_NODE,
        )
    return BENCH_NODE


async def scimgateway_target(run: Run, http: aiohttp.ClientSession) -> Target:
    """scimgateway's loki plugin (in memory), its config written for this run: port, bearer token."""
    folder = ensure_scimgateway()
    port, token = free_port(), uuid.uuid4().hex
    shipped = folder / "node_modules" / "scimgateway"
    (folder / "lib").mkdir(exist_ok=True)
    (folder / "config").mkdir(exist_ok=True)
    shutil.copyfile(shipped / "lib" / "plugin-loki.ts", folder / "lib" / "plugin-loki.ts")
    config = json.loads((shipped / "config" / "plugin-loki.json").read_text())
    gateway = config["scimgateway"]
    gateway["port"] = port
    gateway["localhostonly"] = True
    gateway["log"]["loglevel"] = {"file": "error", "console": "error"}
    gateway["auth"]["basic"] = []
    gateway["auth"]["bearerToken"] = [{"token": token, "readOnly": False, "baseEntities": []}]
    for entity in config["endpoint"]["entity"].values():
        entity["persistence"] = False
    (folder / "config" / "plugin-loki.json").write_text(json.dumps(config, indent=2))
    process = await asyncio.create_subprocess_exec(
        "node",
        "--import",
        "tsx",
        "lib/plugin-loki.ts",
        cwd=folder,
        # It asks the machine's id for its key seed unless SEED is set (none in a container).
        env={**os.environ, "SEED": "bench-" + token[:8]},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    proc = Proc("scimgateway", process)
    run.procs.append(proc)
    root = f"http://127.0.0.1:{port}"
    await wait_http(http, f"{root}/ServiceProviderConfig", seconds=60)
    return Target("scimgateway", root, scim_headers(token), proc)


async def own_postgres_seconds(run: Run) -> float:
    """CPU time used so far by the PostgreSQL backends connected to this run's database: unlike all of
    PostgreSQL's (harness.postgres_cpu_seconds), other work on the machine does not count. Pools keep
    their connections, so a cycle's backends live through it (one that exits takes its time along)."""
    pids = await run.conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", run.database)
    return sum(cpu_seconds_of(r["pid"]) for r in pids)


# --- the wave --------------------------------------------------------------------------------------


async def deactivation_wave(
    run: Run,
    http: aiohttp.ClientSession,
    seated: int,
    *,
    worker_behind: bool = False,
    concurrency: int = CONCURRENCY,
) -> dict[str, Any]:
    """`seated` users holding every seat and seated // 2 waiting, then Okta deactivates the seated.

    worker_behind: the worker is stopped while the acks come and started at the last one, so the whole
    wave is left to apply after it (as when the worker has fallen behind or was down): the clock then
    measures the drain of every deactivation, seat release and promotion."""
    waiting = seated // 2
    tenant, token = await run.tenant(http, seats=seated)
    headers, base, tag = scim_headers(token), run.scim_base, uuid.uuid4().hex[:6]
    stats = Stats()

    async def post(i: int) -> None:
        name = f"w{i}.{tag}@idp.example"
        await call(http, stats, "POST", "POST", f"{base}/Users", headers, okta_user(name, i))

    started = time.perf_counter()
    await in_parallel(list(range(seated)), post, concurrency)
    await run.wait_applied(tenant, seconds=600)  # the first `seated` take every seat
    await in_parallel(list(range(seated, seated + waiting)), post, concurrency)
    await run.wait_applied(tenant, seconds=600)
    setup_s = time.perf_counter() - started
    before = await run.conn.fetchrow(SEATS, tenant)
    holders = [
        str(r[0])
        for r in await run.conn.fetch(
            "SELECT id FROM users WHERE tenant_id = $1::uuid AND license = 'full' AND active", tenant
        )
    ]
    await run.conn.execute("VACUUM ANALYZE users")  # as autovacuum would after the fill
    body = {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": False}}]}

    async def deactivate(user_id: str) -> None:
        await call(http, stats, "PATCH", "PATCH", f"{base}/Users/{user_id}", headers, body)

    if worker_behind:
        await run.stop_workers()
    cpu_before = sum(w.cpu_seconds() for w in run.workers)
    wave_started = time.perf_counter()
    await in_parallel(holders, deactivate, concurrency)
    last_ack = time.perf_counter()
    if worker_behind:
        await run.start_workers(1)  # a new process: its CPU counts from 0
    expected = min(len(holders), before["waiting"])
    while True:
        if not await run.conn.fetchval(PENDING, tenant):
            seats = await run.conn.fetchrow(SEATS, tenant)
            if seats["seated_inactive"] == 0 and seats["seated"] >= expected:
                break
        if time.perf_counter() - last_ack > 600:
            raise RuntimeError("the wave was not applied in 600 s")
        await asyncio.sleep(0.02)
    done = time.perf_counter()
    worker_cpu = sum(w.cpu_seconds() for w in run.workers) - cpu_before
    acks = len(holders)
    return {
        "workload": f"Okta deactivation wave, {acks} seat holders, {before['waiting']} waiting"
        + (", worker started at the last ack" if worker_behind else ""),
        "system": "scimsvc",
        "setup_s": round(setup_s, 1),
        "per_s": round(acks / (last_ack - wave_started), 1),
        "unit": "acks/s",
        "p50_ms": stats.p50_ms("PATCH"),
        "applied_after_last_ack_s": round(done - last_ack, 2),
        "promoted": seats["seated"],
        "waiting_left": seats["waiting"],
        "worker_cpu_ms_per_user": round(1000 * worker_cpu / acks, 3) if acks else None,
        "errors": stats.errors(ok_status),
    }


# --- the whole bench ---------------------------------------------------------------------------------

Factory = Callable[[Run, aiohttp.ClientSession], Awaitable[Target]]


async def bench_idp(
    run: Run,
    http: aiohttp.ClientSession,
    *,
    quick: bool,
    with_peer: bool = True,
    only: tuple[str, ...] = ("entra", "okta", "wave"),
    users: int | None = None,
    peer_users: int | None = None,
    wave_users: int | None = None,
    rounds: int | None = None,
) -> dict[str, Any]:
    """Each IdP's cycle on scimsvc and on the baseline in alternating rounds (this machine's speed
    drifts within minutes: the ratio is the median of the rounds'), then the wave, then the peers.
    scimsvc's serve and one worker are started if the run has none (bench/run.py stops its worker
    before the baseline), and that worker is stopped at the end."""
    sizes = QUICK if quick else FULL
    n_users = users or sizes["users"]
    n_peer = peer_users or sizes["peer_users"]
    n_rounds = rounds or sizes["rounds"]
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    if run.serve is None:
        await run.start_serve(http)
    started_worker = not run.workers
    if started_worker:
        await run.start_workers(1)
    idps = [idp for idp in (ENTRA, OKTA) if idp.name.lower() in only]
    baseline = await baseline_target(run, http)
    try:
        for idp in idps:
            for n in range(n_rounds):
                for system in ("scimsvc", "baseline"):
                    target = await scimsvc_target(run, http, n_users) if system == "scimsvc" else baseline
                    procs = {
                        "web": target.proc,
                        **({"worker": run.workers[0]} if system == "scimsvc" else {}),
                    }
                    before = {**cpu_snapshot(procs), "postgres_own": await own_postgres_seconds(run)}
                    row = await cycle(http, target, idp, n_users)
                    row["round"] = n + 1
                    after = {**cpu_snapshot(procs), "postgres_own": await own_postgres_seconds(run)}
                    cpu = cpu_ms_per_request(before, after, n_users)
                    # The total counts this run's backends, not all of PostgreSQL's (other work's too).
                    cpu["total"] = round(cpu["total"] - cpu["postgres"], 3)
                    row["cpu_ms_per_user"] = cpu
                    rows.append(row)
                    print(json.dumps(row), flush=True)
        await baseline.proc.stop()  # type: ignore[union-attr]
        run.procs.remove(baseline.proc)  # type: ignore[arg-type]
        if "wave" in only:
            wave = wave_users or sizes["wave"]
            for behind in (False, True):
                rows.append(await deactivation_wave(run, http, wave, worker_behind=behind))
                print(json.dumps(rows[-1]), flush=True)
        if started_worker:
            await run.stop_workers()
        peers: list[tuple[str, Factory]] = [
            ("scim2-server", scim2_server_target),
            ("scimgateway", scimgateway_target),
        ]
        for name, factory in peers if with_peer else []:
            try:
                target = await factory(run, http)
            except Exception as exc:  # a peer that cannot run is skipped, and why is said
                skipped.append(f"{name}: could not start: {exc!r}")
                print(f"skipped {skipped[-1]}", flush=True)
                continue
            try:
                for idp in idps:
                    rows.append(await cycle(http, target, idp, n_peer))
                    print(json.dumps(rows[-1]), flush=True)
            finally:
                if target.proc is not None:
                    await target.proc.stop()
                    run.procs.remove(target.proc)
    finally:
        if started_worker and run.workers:
            await run.stop_workers()
    return {"rows": rows, "skipped": skipped, "comparisons": comparisons(rows)}


def comparisons(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """scimsvc's end-to-end users/s over each other system's, per IdP: against the baseline the median of
    the alternating rounds' ratios, against a peer scimsvc's median rate over the peer's (cycles of
    different sizes are compared as rates, and say so)."""
    out = []
    for idp in ("Entra", "Okta"):
        cycle = f"{idp} cycle"  # not "Okta deactivation wave", whose rate is acks/s
        ours = [r for r in rows if r["system"] == "scimsvc" and r["workload"].startswith(cycle)]
        if not ours:
            continue
        base = [r for r in rows if r["system"] == "baseline" and r["workload"].startswith(cycle)]
        ratios = [o["per_s"] / b["per_s"] for o, b in zip(ours, base, strict=False) if b["per_s"]]
        ours_per_s = statistics.median(o["per_s"] for o in ours)
        if ratios:
            out.append(
                {
                    "cycle": idp,
                    "against": "baseline",
                    "ours_per_s": ours_per_s,
                    "theirs_per_s": statistics.median(b["per_s"] for b in base),
                    "ratio": round(statistics.median(ratios), 2),
                    "rounds": [round(r, 2) for r in ratios],
                    "sizes": f"{ours[0]['users']} / {base[0]['users']} users",
                }
            )
        for row in rows:
            if row["workload"].startswith(cycle) and row["system"] not in ("scimsvc", "baseline"):
                out.append(
                    {
                        "cycle": idp,
                        "against": row["system"],
                        "ours_per_s": ours_per_s,
                        "theirs_per_s": row["per_s"],
                        "ratio": round(ours_per_s / row["per_s"], 2) if row["per_s"] else None,
                        "sizes": f"{ours[0]['users']} / {row['users']} users",
                    }
                )
    return out


def targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The cycle's figures (no goal: measured) and the wave's target, for bench/run.py's list."""
    listed: list[dict[str, Any]] = []
    for comp in comparisons(rows):
        listed.append(
            {
                "target": f"{comp['cycle']} cycle end to end, ours/{comp['against']} (measured, no goal)",
                "measured": comp["ratio"],
                "pass": None,
            }
        )
    for wave in (r for r in rows if r["workload"].startswith("Okta deactivation wave")):
        value = wave["applied_after_last_ack_s"]
        behind = ", worker behind" if "worker started" in wave["workload"] else ""
        listed.append(
            {
                "target": f"deactivation wave{behind}: seats freed, waiting promoted ≤ 20 s after last ack",
                "measured": value,
                "pass": value <= 20 and not wave["waiting_left"],
            }
        )
    return listed


def show(report: dict[str, Any]) -> None:
    print(f"\nbench/idp_cycles.py, load average before {report['load_before']} after {report['load_after']}")
    head = (
        f"{'workload':<44} {'system':<13} {'total s':>8} {'users/s':>8} {'lookup':>7} {'POST':>7} "
        f"{'PATCH':>7} {'applied':>8} {'CPU':>6}"
    )
    print(head + "  (p50 ms; applied: s after the last ack; CPU: ms per user, web+worker+own PG+client)")
    print("-" * len(head))
    for r in report["rows"]:
        print(
            f"{r['workload']:<44} {r['system']:<13} {r.get('total_s', '-')!s:>8} {r['per_s']!s:>8} "
            f"{r.get('lookup_p50_ms', '-')!s:>7} {r.get('post_p50_ms', '-')!s:>7} "
            f"{r.get('patch_p50_ms', r.get('p50_ms', '-'))!s:>7} {r['applied_after_last_ack_s']!s:>8} "
            f"{r.get('cpu_ms_per_user', {}).get('total', '-')!s:>6}"
            + (f"  errors {r['errors']}" if r.get("errors") else "")
        )
    for line in report["skipped"]:
        print(f"skipped {line}")
    print("\nratios, users/s end to end")
    for c in report["comparisons"]:
        rounds = f", rounds {c['rounds']}" if "rounds" in c else ""
        print(f"  {c['cycle']:<6} ours/{c['against']:<12} {c['ratio']}  ({c['sizes']}{rounds})")
    print("\ntargets")
    for t in targets(report["rows"]):
        verdict = {True: "PASS", False: "FAIL", None: "    "}[t["pass"]]
        print(f"  {verdict:<5} {t['target']:<70} measured {t['measured']}")


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1,000 users, 500 on peers, 1 round")
    parser.add_argument("--users", type=int, help="users a cycle on scimsvc and the baseline")
    parser.add_argument("--peer-users", type=int, help="users a cycle on the peers (default: --users)")
    parser.add_argument("--wave-users", type=int, help="seat holders the wave deactivates")
    parser.add_argument("--rounds", type=int, help="alternating rounds of scimsvc and the baseline (2)")
    parser.add_argument("--no-peer", dest="peer", action="store_false", help="skip the peers")
    parser.add_argument("--only", default="entra,okta,wave", help="a comma list of entra, okta, wave")
    args = parser.parse_args()
    load_before = [round(x, 2) for x in os.getloadavg()]
    connector = aiohttp.TCPConnector(limit=0)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=300)) as http,
        Run() as run,
    ):
        report = await bench_idp(
            run,
            http,
            quick=args.quick,
            with_peer=args.peer,
            only=tuple(args.only.split(",")),
            users=args.users,
            peer_users=args.peer_users or args.users,
            wave_users=args.wave_users,
            rounds=args.rounds,
        )
    report.update(
        started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        load_before=load_before,
        load_after=[round(x, 2) for x in os.getloadavg()],
    )
    show(report)
    out = HERE / "results" / f"idp-cycles-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str))
    print(f"\nJSON: {out}")


if __name__ == "__main__":
    asyncio.run(main())
