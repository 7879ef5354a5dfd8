"""Two `scimsvc serve` replicas and three `scimsvc worker`s under concurrent writes to the same users and
groups: the end state is the serial application of the acknowledged requests in commit order."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from typing import Any

import aiohttp

from scimsvc.web.app import create_app
from tests.conftest import Processes, make_tenant, service_env, unique_email, user_body, wait_until
from tests.test_groups import GROUP, PATCH_OP, make_team

SEATS = 12
USERS = 30
HOT = 8  # users that every replica writes at once
PUTS_PER_USER = 16
GROUPS = 3
GROUP_WRITES = 30  # per group: pushes and member PATCHes, mixed


async def test_two_replicas_three_workers_end_where_serial_application_in_commit_order_ends(
    aiohttp_client, settings, db, database_url, own_redis, processes: Processes
):
    client = await aiohttp_client(create_app(dataclasses.replace(settings, redis_url=own_redis.url)))
    tenant = await make_tenant(client, seats=SEATS)
    teams = [await make_team(client, tenant) for _ in range(GROUPS)]
    env = service_env(database_url, redis_url=own_redis.url, SCIMSVC_SWEEP_AFTER_SECONDS="2")
    replicas = await asyncio.gather(processes.serve(env), processes.serve(env))
    for _ in range(3):
        await processes.worker(env)
    rng = random.Random(8)
    gate = asyncio.Semaphore(24)

    async with aiohttp.ClientSession(headers=tenant.headers) as http:

        async def call(i: int, method: str, path: str, body: Any) -> tuple[int, Any]:
            async with gate, http.request(method, f"{replicas[i % 2]}/scim/v2{path}", json=body) as resp:
                return resp.status, (await resp.json() if resp.status != 204 else None)

        created = await asyncio.gather(
            *(call(i, "POST", "/Users", user_body(unique_email(), userType="Full")) for i in range(USERS))
        )
        assert {s for s, _ in created} == {201}
        users = [body for _, body in created]
        ids = [u["id"] for u in users]
        made = await asyncio.gather(
            *(
                call(i, "POST", "/Groups", {"schemas": [GROUP], "displayName": t["name"], "members": []})
                for i, t in enumerate(teams)
            )
        )
        assert {s for s, _ in made} == {201}
        groups = [body for _, body in made]

        def put_user(user: dict[str, Any], k: int) -> dict[str, Any]:
            return user_body(
                user["userName"],
                displayName=f"put {k}",
                title=f"title {k}",
                active=rng.random() < 0.7,
                userType="Full",
            )

        def group_write(group: dict[str, Any]) -> tuple[str, dict[str, Any]]:
            picked = [{"value": v} for v in rng.sample(ids, rng.randint(0, 12))]
            roll = rng.random()
            if roll < 0.3:  # a push
                return "PUT", {"schemas": [GROUP], "displayName": group["displayName"], "members": picked}
            op = "add" if roll < 0.7 else "remove"
            if op == "remove" and not picked:
                picked = [{"value": ids[0]}]
            operation = {"op": op, "path": "members", "value": picked}
            return "PATCH", {"schemas": [PATCH_OP], "Operations": [operation]}

        writes: list[tuple[str, str, Any, str]] = []  # method, path, body, what
        for k in range(PUTS_PER_USER):
            writes += [("PUT", f"/Users/{u['id']}", put_user(u, k), "user") for u in users[:HOT]]
        for _ in range(GROUP_WRITES):
            for g in groups:
                method, body = group_write(g)
                writes.append((method, f"/Groups/{g['id']}", body, "group"))
        rng.shuffle(writes)
        answers = await asyncio.gather(*(call(i, m, p, b) for i, (m, p, b, _) in enumerate(writes)))
        assert {s for s, _ in answers} <= {200, 204}, {s for s, _ in answers}

        async def settled() -> bool:
            return not await db.fetchval(
                "SELECT count(*) FROM outbox WHERE tenant_id = $1::uuid AND applied_at IS NULL", tenant.id
            )

        await wait_until(settled, within=300, what="the three workers to apply every change", every=0.25)

        # Users: each ends as the acknowledged PUT with the highest version (the last one committed).
        for user in users[:HOT]:
            puts = [
                body
                for (m, p, _, _), (status, body) in zip(writes, answers, strict=True)
                if m == "PUT" and p == f"/Users/{user['id']}"
            ]
            last = max(puts, key=lambda b: int(b["meta"]["version"].strip('W/"')))
            status, now = await call(0, "GET", f"/Users/{user['id']}", None)
            assert status == 200
            fields = ("displayName", "title", "active", "userType", "userName")
            assert {f: now.get(f) for f in fields} == {f: last.get(f) for f in fields}
            assert now["meta"]["version"] == last["meta"]["version"]

        # Groups: each linked team is exactly the group's final members.
        for group in groups:
            status, now = await call(1, "GET", f"/Groups/{group['id']}", None)
            assert status == 200
            desired = {m["value"] for m in now.get("members", [])}
            team_id = await db.fetchval("SELECT team_id FROM groups WHERE id = $1::uuid", group["id"])
            rows = await db.fetch("SELECT user_id::text FROM team_members WHERE team_id = $1", team_id)
            assert {r[0] for r in rows} == desired

    # Seats: never over-allocated, every seat in use while someone waits, inactive users hold nothing.
    rows = await db.fetch(
        "SELECT active, license, waiting_since IS NOT NULL AS waiting FROM users WHERE tenant_id = $1::uuid",
        tenant.id,
    )
    active = [r for r in rows if r["active"]]
    full = sum(r["license"] == "full" for r in rows)
    assert full == min(SEATS, len(active))
    assert all(r["license"] is None for r in rows if not r["active"])
    assert sum(bool(r["waiting"]) for r in active) == len(active) - full
    # The audit trail adds up: seats handed out minus seats taken back is the seats held.
    net = await db.fetchval(
        "SELECT count(*) FILTER (WHERE detail->>'to' = 'full') "
        "- count(*) FILTER (WHERE detail->>'from' = 'full') FROM audit_log WHERE tenant_id = $1::uuid",
        tenant.id,
    )
    assert net == full
