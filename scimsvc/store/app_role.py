"""The application role: what `scimsvc serve` and `scimsvc worker` log in as, with the privileges to read
and write the service's tables and nothing else (README.md, Running at scale, Least privilege).

`scimsvc migrate --app-role NAME` creates it (or brings an existing one back to these attributes) and
grants it, under the migrations' lock, as the owner of the tables. Its password reaches PostgreSQL only as
a SCRAM-SHA-256 verifier computed here, never as plain text in a statement.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import stringprep
import unicodedata
from dataclasses import dataclass

import asyncpg

from scimsvc.store.migrations import MigrationError, migration_lock

# Lower-case unquoted identifiers, at most 63 bytes (PostgreSQL's NAMEDATALEN); pg_ names are reserved.
ROLE_NAME = re.compile(r"(?!pg_)[a-z_][a-z0-9_]{0,62}")

SCRAM_ITERATIONS = 4096  # PostgreSQL's default (scram_iterations)
SALT_BYTES = 16

# LOGIN, and none of the attributes that reach past the service's own tables. NOINHERIT: privileges of
# roles it may be made a member of later do not come with it.
ATTRIBUTES = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS"
ROLE = """
SELECT rolcanlogin AND NOT (rolsuper OR rolcreatedb OR rolcreaterole OR rolinherit OR rolreplication
       OR rolbypassrls) AS least
FROM pg_roles WHERE rolname = $1
"""
STORED_VERIFIER = "SELECT rolpassword FROM pg_authid WHERE rolname = $1"  # superusers only
# What no grant can take back: owning something of this database (an owner may alter, drop or truncate
# it whatever the grants say) and membership of other roles (SET ROLE reaches their rights, NOINHERIT
# or not).
HOLDS_MORE = """
SELECT (SELECT count(*) FROM pg_class WHERE relowner = r.oid)
     + (SELECT count(*) FROM pg_namespace WHERE nspowner = r.oid)
     + (SELECT count(*) FROM pg_proc WHERE proowner = r.oid)
     + (SELECT count(*) FROM pg_database WHERE datdba = r.oid AND datname = current_database()) AS owns,
       (SELECT array_agg(m.roleid::regrole::text ORDER BY m.roleid) FROM pg_auth_members m
        WHERE m.member = r.oid) AS member_of
FROM pg_roles r WHERE r.rolname = $1
"""

# (format() template, what its first %I names); the second %I is the role.
GRANTS = (
    ("GRANT CONNECT ON DATABASE %I TO %I", "database"),
    ("GRANT USAGE ON SCHEMA %I TO %I", "schema"),
    ("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO %I", "schema"),
    ("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA %I TO %I", "schema"),  # bigserial ids
    ("GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA %I TO %I", "schema"),  # in_time, the trigger functions
    # Tables, sequences and functions later migrations create (as this same owner) are granted alike.
    ("ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO %I", "schema"),
    ("ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT USAGE, SELECT ON SEQUENCES TO %I", "schema"),
    ("ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT EXECUTE ON FUNCTIONS TO %I", "schema"),
    # The app reads the ledger (/ops/ready: migrations pending); only migrate writes it.
    ("REVOKE INSERT, UPDATE, DELETE ON schema_migrations FROM %2$I", "schema"),
)
# No role may create objects in the service's schema but its owner (PostgreSQL 15 already starts so).
REVOKE_CREATE = "REVOKE CREATE ON SCHEMA %I FROM PUBLIC"
# Privileges an earlier grant may have given the role beyond GRANTS (a GRANT ALL): taken back. Revoking
# what it does not hold changes nothing, so a run that finds the role as it left it changes no ACL.
REVOKE_MORE = (
    ("REVOKE CREATE ON DATABASE %I FROM %I", "database"),
    ("REVOKE CREATE ON SCHEMA %I FROM %I", "schema"),
    ("REVOKE TRUNCATE, REFERENCES, TRIGGER ON ALL TABLES IN SCHEMA %I FROM %I", "schema"),
    ("REVOKE UPDATE ON ALL SEQUENCES IN SCHEMA %I FROM %I", "schema"),
)

# Every privilege this module sets, to tell whether a run changed any.
PRIVILEGES = """
SELECT (SELECT datacl::text FROM pg_database WHERE datname = current_database()),
       (SELECT nspacl::text FROM pg_namespace WHERE nspname = $1),
       (SELECT array_agg(relacl::text ORDER BY oid) FROM pg_class WHERE relnamespace = $1::regnamespace),
       (SELECT array_agg(proacl::text ORDER BY oid) FROM pg_proc WHERE pronamespace = $1::regnamespace),
       (SELECT array_agg(defaclacl::text ORDER BY oid) FROM pg_default_acl)
"""


def role_name_problem(name: str) -> str | None:
    """Why `name` cannot be the app role's name, or None."""
    if ROLE_NAME.fullmatch(name):
        return None
    return (
        "must be a lower-case identifier: a letter or _, then letters, digits or _, at most 63, "
        f"not starting with pg_; got {name!r}"
    )


def _saslprep(password: str) -> str:
    """The password as PostgreSQL's SCRAM reads it: RFC 4013 SASLprep, or as given where that fails.

    ASCII passwords are left as they are (PostgreSQL skips them too); clients normalise alike.
    """
    if password.isascii():
        return password
    # Non-ASCII spaces become spaces first (U+200B is in both tables), then B.1 maps to nothing.
    mapped = "".join(
        " " if stringprep.in_table_c12(c) else "" if stringprep.in_table_b1(c) else c for c in password
    )
    normal = unicodedata.normalize("NFKC", mapped)
    prohibited = (
        stringprep.in_table_a1,
        stringprep.in_table_c12,
        stringprep.in_table_c21_c22,
        stringprep.in_table_c3,
        stringprep.in_table_c4,
        stringprep.in_table_c5,
        stringprep.in_table_c6,
        stringprep.in_table_c7,
        stringprep.in_table_c8,
        stringprep.in_table_c9,
    )
    if not normal or any(check(c) for c in normal for check in prohibited):
        return password
    if any(stringprep.in_table_d1(c) for c in normal) and (
        any(stringprep.in_table_d2(c) for c in normal)
        or not (stringprep.in_table_d1(normal[0]) and stringprep.in_table_d1(normal[-1]))
    ):
        return password
    return normal


def scram_verifier(password: str, *, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS) -> str:
    """PostgreSQL's stored form of a SCRAM-SHA-256 password (RFC 5803):
    `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, base64; a random salt unless given."""
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    salted = hashlib.pbkdf2_hmac("sha256", _saslprep(password).encode("utf-8"), salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode("ascii")

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def verifier_matches(stored: str | None, password: str) -> bool:
    """Whether a stored SCRAM-SHA-256 verifier is the one of `password` (its own salt and iterations)."""
    match = re.fullmatch(r"SCRAM-SHA-256\$(\d+):([^$]+)\$[^:]+:.+", stored or "")
    if not match:
        return False
    try:
        salt = base64.b64decode(match[2], validate=True)
    except ValueError:
        return False
    return hmac.compare_digest(scram_verifier(password, salt=salt, iterations=int(match[1])), stored or "")


@dataclass(frozen=True)
class AppRoleResult:
    """What a run changed; all False when the role and its privileges were already as they should be."""

    created: bool = False
    restricted: bool = False  # an existing role's attributes brought down to ATTRIBUTES
    password_set: bool = False
    granted: bool = False  # some privilege changed

    def summary(self) -> str:
        done = [
            text
            for flag, text in (
                (self.created, "created"),
                (self.restricted, "attributes restricted"),
                (self.password_set, "password set"),
                (self.granted, "privileges granted"),
            )
            if flag
        ]
        return ", ".join(done) or "up to date"


async def _sql(conn: asyncpg.Connection, template: str, *args: str) -> None:
    """Run a statement that cannot take bind parameters, its values quoted by PostgreSQL's format()."""
    placeholders = ", ".join(f"${i}::text" for i in range(2, len(args) + 2))
    await conn.execute(await conn.fetchval(f"SELECT format($1, {placeholders})", template, *args))


async def _password_differs(conn: asyncpg.Connection, name: str, password: str) -> bool:
    """Whether the role's stored password is not `password`; True when it cannot be read (not a
    superuser): then it is set again, to the same password under a new salt."""
    try:
        stored = await conn.fetchval(STORED_VERIFIER, name)
    except asyncpg.InsufficientPrivilegeError:
        return True
    return not verifier_matches(stored, password)


async def _set_up(conn: asyncpg.Connection, name: str, password: str) -> AppRoleResult:
    if name == await conn.fetchval("SELECT current_user"):
        raise MigrationError(
            f"--app-role {name} is the role migrate connects as (SCIMSVC_DATABASE_URL's user): the app "
            "role must be another one"
        )
    least = await conn.fetchval(ROLE, name)
    created = restricted = password_set = False
    if least is None:
        # A new role logs in; without a password, only by a method that needs none (peer, cert, trust)
        # until a run with SCIMSVC_APP_ROLE_PASSWORD sets one.
        if password:
            await _sql(conn, f"CREATE ROLE %I {ATTRIBUTES} PASSWORD %L", name, scram_verifier(password))
        else:
            await _sql(conn, f"CREATE ROLE %I {ATTRIBUTES}", name)
        created, password_set = True, bool(password)
    else:
        holds = await conn.fetchrow(HOLDS_MORE, name)
        if holds["owns"] or holds["member_of"]:
            what = f"owns {holds['owns']} object(s) of this database" if holds["owns"] else ""
            if holds["member_of"]:
                what += (" and " if what else "") + f"is a member of {', '.join(holds['member_of'])}"
            raise MigrationError(
                f"--app-role {name} {what}: no grant can hold it to reading and writing the tables; name a "
                f"new role, or first REASSIGN OWNED BY {name} TO the owner and revoke its memberships"
            )
        if not least:
            await _sql(conn, f"ALTER ROLE %I {ATTRIBUTES}", name)
            restricted = True
        if password and await _password_differs(conn, name, password):
            await _sql(conn, "ALTER ROLE %I PASSWORD %L", name, scram_verifier(password))
            password_set = True
    schema = await conn.fetchval("SELECT current_schema()")
    database = await conn.fetchval("SELECT current_database()")
    before = await conn.fetchrow(PRIVILEGES, schema)
    async with conn.transaction():
        for template, target in (*REVOKE_MORE, *GRANTS):
            await _sql(conn, template, database if target == "database" else schema, name)
        await _sql(conn, REVOKE_CREATE, schema)
    granted = await conn.fetchrow(PRIVILEGES, schema) != before
    return AppRoleResult(created, restricted, password_set, granted)


async def set_up_app_role(database_url: str, name: str, *, password: str = "") -> AppRoleResult:
    """Create or restrict the application role `name` and grant it the service's tables (idempotent).

    `database_url` is the migrating owner's (it needs CREATEROLE, or to be a superuser); `password`, if
    any, is set as a SCRAM-SHA-256 verifier, and an existing role keeps its password without one.
    """
    problem = role_name_problem(name)
    if problem:
        raise MigrationError(f"--app-role {problem}")
    conn = await asyncpg.connect(database_url)
    try:
        async with migration_lock(conn):
            try:
                return await _set_up(conn, name, password)
            except asyncpg.DuplicateObjectError:
                # Roles belong to the whole cluster, the lock to one database: a migrate of another
                # database created the role at the same moment. It exists now: bring it to this set.
                return await _set_up(conn, name, password)
    except asyncpg.InsufficientPrivilegeError as exc:
        raise MigrationError(
            f"cannot set up the app role {name}: {exc} (migrate as the owner of the tables, with CREATEROLE)"
        ) from None
    finally:
        await conn.close()
