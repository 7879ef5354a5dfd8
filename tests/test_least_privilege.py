"""`scimsvc migrate --app-role`: `serve` and `worker` run as a role that reads and writes the service's
tables and can do nothing else; its password is stored as the SCRAM-SHA-256 verifier PostgreSQL itself
would make. Roles are cluster-wide: each test names its own and drops it."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import uuid
from collections.abc import AsyncIterator
from urllib.parse import quote, urlsplit, urlunsplit

import aiohttp
import asyncpg
import pytest

from scimsvc.store.app_role import PRIVILEGES as PRIVILEGES_SQL
from scimsvc.store.app_role import scram_verifier, set_up_app_role, verifier_matches
from scimsvc.store.migrations import migrate
from tests.conftest import (
    ADMIN_HEADERS,
    ADMIN_KEY,
    PROCESS_DEADLINE,
    RUN_ID,
    SERVER_URL,
    Processes,
    _drop_database,
    bare_env,
    make_tenant,
    service_env,
    unique_email,
    user_body,
    wait_until,
    with_database,
)
from tests.test_groups import GROUP, make_team

ATTRIBUTES = """
SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolinherit, rolreplication, rolbypassrls
FROM pg_roles WHERE rolname = $1
"""
LEAST = (True, False, False, False, False, False, False)


def as_role(url: str, role: str, password: str) -> str:
    """`url` with `role:password` as its user."""
    parts = urlsplit(url)
    netloc = f"{role}:{quote(password, safe='')}@{parts.hostname}:{parts.port or 5432}"
    return urlunsplit(parts._replace(netloc=netloc))


async def on(url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


@pytest.fixture
async def url_and_role() -> AsyncIterator[tuple[str, str]]:
    """A database (migrate creates it) and a role name of this test's own; both dropped at the end."""
    suffix = uuid.uuid4().hex[:8]
    url = with_database(SERVER_URL, f"scimsvc_test_{RUN_ID}_lp_{suffix}")
    role = f"scimsvc_app_{RUN_ID}_{suffix}"
    yield url, role
    await _drop_database(url)  # its grants and default privileges go with it
    quoted = (await on(SERVER_URL, "SELECT quote_ident($1)", role))[0][0]
    await on(SERVER_URL, f"DROP ROLE IF EXISTS {quoted}")


async def privileges(url: str) -> tuple[object, ...]:
    """Every privilege the app role set-up touches, as PostgreSQL stores them."""
    return tuple((await on(url, PRIVILEGES_SQL, "public"))[0])


async def stored_verifier(role: str) -> str | None:
    return (await on(SERVER_URL, "SELECT rolpassword FROM pg_authid WHERE rolname = $1", role))[0][0]


async def test_serve_and_worker_run_as_the_app_role_which_can_change_no_schema(
    url_and_role, processes: Processes
):
    url, role = url_and_role
    password = "pw-" + uuid.uuid4().hex
    migrate_env = bare_env(SCIMSVC_DATABASE_URL=url, SCIMSVC_APP_ROLE_PASSWORD=password)
    out = await processes.run("migrate", "--app-role", role, env=migrate_env)
    assert out.returncode == 0, out.stderr
    assert f"app role {role}: created, password set, privileges granted" in out.stdout
    assert password not in out.stdout + out.stderr

    # The password is stored as a SCRAM verifier, the one of this password.
    stored = await stored_verifier(role)
    assert stored is not None and stored.startswith("SCRAM-SHA-256$4096:")
    assert verifier_matches(stored, password) and not verifier_matches(stored, password + "x")
    assert tuple((await on(url, ATTRIBUTES, role))[0]) == LEAST

    # Running it again changes nothing: no privilege, not the verifier (not even its salt).
    granted = await privileges(url)
    out = await processes.run("migrate", "--app-role", role, env=migrate_env)
    assert out.returncode == 0, out.stderr
    assert f"app role {role}: up to date" in out.stdout
    assert await privileges(url) == granted
    assert await stored_verifier(role) == stored

    # The service, as the role: a tenant, users the worker licenses, a group push, a revoked token.
    role_url = as_role(url, role, password)
    env = service_env(role_url, SCIMSVC_ADMIN_KEY=ADMIN_KEY)
    base = await processes.serve(env)
    await processes.worker(env)
    async with aiohttp.ClientSession(base_url=base) as http:
        async with http.get("/ops/ready") as resp:  # reads schema_migrations
            assert resp.status == 200, await resp.text()
        tenant = await make_tenant(http, seats=1)
        team = await make_team(http, tenant)
        ids = []
        for _ in range(2):
            async with http.post(
                "/scim/v2/Users", json=user_body(unique_email()), headers=tenant.headers
            ) as r:
                assert r.status == 201, await r.text()
                ids.append((await r.json())["id"])

        async def licensed() -> list[str] | None:
            rows = await on(url, "SELECT license FROM users WHERE tenant_id = $1::uuid", tenant.id)
            found = sorted(r["license"] for r in rows if r["license"])
            return found if len(found) == 2 else None

        assert await wait_until(licensed, what="the worker to license both users") == [
            "free_restricted",
            "full",
        ]

        group = {"schemas": [GROUP], "displayName": team["name"], "members": []}
        async with http.post("/scim/v2/Groups", json=group, headers=tenant.headers) as resp:
            assert resp.status == 201, await resp.text()
            group_id = (await resp.json())["id"]
        group["members"] = [{"value": i} for i in ids]
        async with http.put(f"/scim/v2/Groups/{group_id}", json=group, headers=tenant.headers) as resp:
            assert resp.status == 200, await resp.text()

        async def team_is_the_group() -> bool:
            rows = await on(url, "SELECT user_id::text FROM team_members WHERE team_id = $1", team["id"])
            return {r[0] for r in rows} == set(ids)

        await wait_until(team_is_the_group, what="the worker to apply the group push to its team")

        revoke = f"/admin/v1/tenants/{tenant.id}/scim/tokens/{tenant.token_id}"
        async with http.delete(revoke, headers=ADMIN_HEADERS) as resp:
            assert resp.status == 204, await resp.text()

        async def refused() -> bool:
            async with http.get("/scim/v2/Users", headers=tenant.headers) as resp:
                return resp.status == 401

        await wait_until(refused, what="the revoked token to get 401")
    # The service's processes are connected as the role (their URL names no other).
    logins = await on(
        SERVER_URL, "SELECT usename FROM pg_stat_activity WHERE datname = $1", urlsplit(url).path[1:]
    )
    assert role in {r[0] for r in logins}

    # What the role may not do: change the schema, empty a table, write the ledger, make objects.
    conn = await asyncpg.connect(role_url)
    try:
        for statement in (
            "CREATE TABLE intruder (id int)",
            "DROP TABLE users",
            "ALTER TABLE users ADD COLUMN x int",
            "CREATE INDEX intruder ON users (created_at)",
            "TRUNCATE users",
            "TRUNCATE outbox",
            "CREATE SCHEMA intruder",
            "INSERT INTO schema_migrations (version, name) VALUES (9999, 'intruder')",
            "DROP FUNCTION in_time(timestamptz)",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(statement)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(f"CREATE ROLE intruder_{uuid.uuid4().hex[:8]}")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(f"CREATE DATABASE intruder_{uuid.uuid4().hex[:8]}")
    finally:
        await conn.close()
    await processes.stop_all()


async def test_an_existing_role_is_brought_down_to_least_privilege_and_keeps_its_password(
    url_and_role, processes: Processes
):
    url, role = url_and_role
    conn = await asyncpg.connect(SERVER_URL)
    try:
        template = "CREATE ROLE %I LOGIN CREATEDB CREATEROLE INHERIT PASSWORD %L"
        statement = await conn.fetchval(
            "SELECT format($1, $2::text, $3::text)", template, role, scram_verifier("the old one")
        )
        await conn.execute(statement)
    finally:
        await conn.close()
    before = await stored_verifier(role)

    out = await processes.run("migrate", "--app-role", role, env=bare_env(SCIMSVC_DATABASE_URL=url))
    assert out.returncode == 0, out.stderr
    assert f"app role {role}: attributes restricted, privileges granted" in out.stdout
    assert tuple((await on(url, ATTRIBUTES, role))[0]) == LEAST
    assert await stored_verifier(role) == before


@pytest.mark.parametrize("more", ["owns a table", "is a member of a role", "may truncate"])
async def test_a_role_that_can_do_more_than_its_grants_is_refused_or_brought_down(
    url_and_role, processes: Processes, more
):
    url, role = url_and_role
    await migrate(url)
    quoted = (await on(url, "SELECT quote_ident($1)", role))[0][0]
    await on(url, f"CREATE ROLE {quoted} LOGIN")
    if more == "owns a table":
        await on(url, f"CREATE TABLE extra_{RUN_ID} (id int)")
        await on(url, f"ALTER TABLE extra_{RUN_ID} OWNER TO {quoted}")
    elif more == "is a member of a role":
        await on(url, f"GRANT pg_read_all_data TO {quoted}")
    else:
        await on(url, f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {quoted}")

    out = await processes.run("migrate", "--app-role", role, env=bare_env(SCIMSVC_DATABASE_URL=url))
    if more == "may truncate":  # a privilege: taken back
        assert out.returncode == 0, out.stderr
        refused = await on(url, "SELECT has_table_privilege($1, 'users', 'TRUNCATE')", role)
        assert refused[0][0] is False
        assert (await on(url, "SELECT has_table_privilege($1, 'users', 'DELETE')", role))[0][0] is True
    else:  # no grant can take ownership or membership back: refused, one line, nothing changed
        assert out.returncode == 1, out.stderr
        line = out.stderr.strip()
        assert "\n" not in line and f"--app-role {role} {more.split()[0]}" in line, line
        assert "REASSIGN OWNED BY" in line
    if more == "owns a table":
        await on(url, f"DROP TABLE extra_{RUN_ID}")
    elif more == "is a member of a role":
        await on(url, f"REVOKE pg_read_all_data FROM {quoted}")


async def test_concurrent_set_ups_create_the_role_once_and_without_a_password_it_has_none(url_and_role):
    url, role = url_and_role
    await migrate(url)
    results = await asyncio.wait_for(
        asyncio.gather(*(set_up_app_role(url, role) for _ in range(3))), PROCESS_DEADLINE
    )
    assert sorted(r.summary() for r in results) == ["created, privileges granted", "up to date", "up to date"]
    assert tuple((await on(url, ATTRIBUTES, role))[0]) == LEAST
    assert await stored_verifier(role) is None


@pytest.mark.parametrize(
    ("role", "status", "line"),
    [
        ("Bad-Name", 2, "argument --app-role: must be a lower-case identifier"),
        ("pg_app", 2, "not starting with pg_"),
        ("postgres", 1, "--app-role postgres is the role migrate connects as"),
    ],
)
async def test_a_role_name_it_cannot_use_is_one_line(url_and_role, processes: Processes, role, status, line):
    url, _ = url_and_role
    out = await processes.run("migrate", "--app-role", role, env=bare_env(SCIMSVC_DATABASE_URL=url))
    assert out.returncode == status, out.stderr
    assert "Traceback" not in out.stderr
    assert line in out.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "password",
    ["s3cret", "pässwörd", "ﬁne\u00a0day", "\u0627\u0644\u0633\u0631", "é\u0007bell", "\u200bzero width"],
)
async def test_the_verifier_is_the_one_postgresql_makes_of_the_same_password(password):
    """PostgreSQL hashes the password itself (SASLprep and all); ours, with its salt, must be the same."""
    role = f"scimsvc_scram_{RUN_ID}_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(SERVER_URL)
    try:
        await conn.execute("SET password_encryption = 'scram-sha-256'")
        await conn.execute(
            await conn.fetchval(
                "SELECT format('CREATE ROLE %I PASSWORD %L', $1::text, $2::text)", role, password
            )
        )
        try:
            stored = await conn.fetchval("SELECT rolpassword FROM pg_authid WHERE rolname = $1", role)
        finally:
            await conn.execute(await conn.fetchval("SELECT format('DROP ROLE %I', $1::text)", role))
    finally:
        await conn.close()
    assert verifier_matches(stored, password)
    assert not verifier_matches(stored, password + " ")


def test_the_verifier_authenticates_the_rfc_7677_exchange():
    """RFC 7677's SCRAM-SHA-256 example (user, pencil): a server holding our verifier accepts the client's
    proof and answers the server signature the RFC shows."""
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    verifier = scram_verifier("pencil", salt=salt)
    stored_key, server_key = (base64.b64decode(k) for k in verifier.rpartition("$")[2].split(":"))
    nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    auth_message = (
        f"n=user,r=rOprNGfwEbeRWgbNEkqO,r={nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r={nonce}"
    ).encode()
    proof = base64.b64decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    client_signature = hmac.digest(stored_key, auth_message, "sha256")
    client_key = bytes(a ^ b for a, b in zip(proof, client_signature, strict=True))
    assert hashlib.sha256(client_key).digest() == stored_key
    server_signature = base64.b64encode(hmac.digest(server_key, auth_message, "sha256")).decode()
    assert server_signature == "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
