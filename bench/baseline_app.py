"""The ceiling for this stack here: a minimal aiohttp + asyncpg app, one statement per request.

    python bench/baseline_app.py --port P --database-url URL

One process, uvloop, a pool of 10 connections, orjson, no auth, no validation, no outbox, no queue.
Routes shaped like the SCIM ones bench/run drives, each one round trip to PostgreSQL:
POST /Users (one INSERT), GET /Users?filter=userName eq "x" (one SELECT by the lower-cased name),
GET /Users?startIndex=&count= (one SELECT of a page), PATCH /Users/{id} (one UPDATE: of `active` for
`{"active": ...}`, else of the resource merged with the operations' values, as an IdP's `replace` of a
few attributes), PUT /Users/{id} (one UPDATE of the resource) and DELETE /Users/{id} (one DELETE).
Its table `baseline_users` lives in the bench run's own database.

Groups, for an IdP's whole cycle (bench/idp_cycles.py): POST /Groups (one INSERT), GET
/Groups?filter=displayName eq "x" (one SELECT), PATCH /Groups/{id} adding members (one INSERT ... SELECT
unnest of the member ids), in the tables `baseline_groups` and `baseline_group_members`.
"""

from __future__ import annotations

import argparse
import re

import asyncpg
import orjson
import uvloop
from aiohttp import web

POOL = web.AppKey("pool", asyncpg.Pool)
SCHEMA = """
CREATE TABLE IF NOT EXISTS baseline_users (
    id        uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_name text NOT NULL,
    active    boolean NOT NULL DEFAULT true,
    resource  jsonb NOT NULL,
    created   timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS baseline_users_name ON baseline_users (lower(user_name));
CREATE INDEX IF NOT EXISTS baseline_users_paging ON baseline_users (created, id);
"""
INSERT = "INSERT INTO baseline_users (user_name, resource) VALUES ($1, $2::jsonb) RETURNING id::text, created"
BY_NAME = "SELECT id::text, resource::text FROM baseline_users WHERE lower(user_name) = lower($1)"
PAGE = "SELECT id::text, resource::text FROM baseline_users ORDER BY created, id LIMIT $1 OFFSET $2"
SET_ACTIVE = "UPDATE baseline_users SET active = $2 WHERE id = $1::uuid RETURNING id::text"
# A PATCH of other attributes: the top-level keys its operations set, merged into the resource (a
# shallow merge: a `name.givenName` replaces `name` here, which costs no more than a deep one).
MERGE = """
UPDATE baseline_users SET resource = resource || $2::jsonb WHERE id = $1::uuid
RETURNING id::text, resource::text
"""
REPLACE = """
UPDATE baseline_users SET user_name = $2, active = $3, resource = $4::jsonb WHERE id = $1::uuid
RETURNING id::text
"""
DELETE = "DELETE FROM baseline_users WHERE id = $1::uuid RETURNING id"
EQ = re.compile(r'userName eq "([^"]*)"', re.IGNORECASE)

GROUP_SCHEMA = """
CREATE TABLE IF NOT EXISTS baseline_groups (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    display_name text NOT NULL,
    resource     jsonb NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS baseline_groups_name ON baseline_groups (lower(display_name));
CREATE TABLE IF NOT EXISTS baseline_group_members (
    group_id uuid NOT NULL REFERENCES baseline_groups (id),
    user_id  uuid NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
"""
INSERT_GROUP = (
    "INSERT INTO baseline_groups (display_name, resource) VALUES ($1, $2::jsonb) RETURNING id::text"
)
GROUP_BY_NAME = "SELECT id::text, resource::text FROM baseline_groups WHERE lower(display_name) = lower($1)"
ADD_MEMBERS = """
INSERT INTO baseline_group_members (group_id, user_id)
SELECT $1::uuid, unnest($2::uuid[]) ON CONFLICT DO NOTHING
"""
GROUP_EQ = re.compile(r'displayName eq "([^"]*)"', re.IGNORECASE)


def reply(body: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/scim+json")


async def create(request: web.Request) -> web.Response:
    data = orjson.loads(await request.read())
    row = await request.app[POOL].fetchrow(INSERT, data["userName"], orjson.dumps(data).decode())
    return reply({**data, "id": row[0], "meta": {"created": row[1].isoformat()}}, 201)


async def search(request: web.Request) -> web.Response:
    pool = request.app[POOL]
    if found := EQ.search(request.query.get("filter", "")):
        rows = await pool.fetch(BY_NAME, found.group(1))
    else:
        count = int(request.query.get("count", "100"))
        rows = await pool.fetch(PAGE, count, int(request.query.get("startIndex", "1")) - 1)
    resources = [{**orjson.loads(r[1]), "id": r[0]} for r in rows]
    return reply({"totalResults": len(resources), "Resources": resources})


async def patch(request: web.Request) -> web.Response:
    data = orjson.loads(await request.read())
    operations = data["Operations"]
    pool, user_id = request.app[POOL], request.match_info["id"]
    first = operations[0]
    if len(operations) == 1 and "path" not in first and set(first["value"]) == {"active"}:
        active = bool(first["value"]["active"])
        row = await pool.fetchrow(SET_ACTIVE, user_id, active)
        if row is None:
            raise web.HTTPNotFound()
        return reply({"id": row[0], "active": active})
    changes: dict[str, object] = {}
    for op in operations:
        if "path" in op:
            changes[op["path"].rsplit(":", 1)[-1].split(".", 1)[0]] = op["value"]
        else:
            changes.update(op["value"])
    row = await pool.fetchrow(MERGE, user_id, orjson.dumps(changes).decode())
    if row is None:
        raise web.HTTPNotFound()
    return reply({**orjson.loads(row[1]), "id": row[0]})


async def replace(request: web.Request) -> web.Response:
    data = orjson.loads(await request.read())
    row = await request.app[POOL].fetchrow(
        REPLACE,
        request.match_info["id"],
        data["userName"],
        bool(data.get("active", True)),
        orjson.dumps(data).decode(),
    )
    if row is None:
        raise web.HTTPNotFound()
    return reply({**data, "id": row[0]})


async def delete(request: web.Request) -> web.Response:
    if await request.app[POOL].fetchval(DELETE, request.match_info["id"]) is None:
        raise web.HTTPNotFound()
    return web.Response(status=204)


async def create_group(request: web.Request) -> web.Response:
    data = orjson.loads(await request.read())
    data.pop("members", None)
    group_id = await request.app[POOL].fetchval(
        INSERT_GROUP, data["displayName"], orjson.dumps(data).decode()
    )
    return reply({**data, "id": group_id}, 201)


async def search_groups(request: web.Request) -> web.Response:
    found = GROUP_EQ.search(request.query.get("filter", ""))
    rows = await request.app[POOL].fetch(GROUP_BY_NAME, found.group(1)) if found else []
    resources = [{**orjson.loads(r[1]), "id": r[0]} for r in rows]
    return reply({"totalResults": len(resources), "Resources": resources})


async def patch_group(request: web.Request) -> web.Response:
    """Only what IdPs send to add members: every `add` of `members`, in one statement."""
    data = orjson.loads(await request.read())
    ids = [m["value"] for op in data["Operations"] if op["op"].lower() == "add" for m in op["value"]]
    await request.app[POOL].execute(ADD_MEMBERS, request.match_info["id"], ids)
    return web.Response(status=204)


def create_app(database_url: str) -> web.Application:
    app = web.Application()

    async def pool_context(app: web.Application):  # type: ignore[no-untyped-def]
        pool = await asyncpg.create_pool(database_url, min_size=10, max_size=10)
        await pool.execute(SCHEMA)
        await pool.execute(GROUP_SCHEMA)
        app[POOL] = pool
        yield
        await pool.close()

    app.cleanup_ctx.append(pool_context)
    app.router.add_post("/Users", create)
    app.router.add_get("/Users", search)
    app.router.add_patch("/Users/{id}", patch)
    app.router.add_put("/Users/{id}", replace)
    app.router.add_delete("/Users/{id}", delete)
    app.router.add_post("/Groups", create_group)
    app.router.add_get("/Groups", search_groups)
    app.router.add_patch("/Groups/{id}", patch_group)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", required=True)
    args = parser.parse_args()
    uvloop.install()
    web.run_app(create_app(args.database_url), host="127.0.0.1", port=args.port, print=None, access_log=None)
