"""Numbered SQL migrations (`migrations/NNNN_name.sql`), applied once each under an advisory lock.

A migration runs in one transaction with its ledger row, unless its first line is NO_TRANSACTION: then its
statements run one at a time outside any transaction (what `CREATE INDEX CONCURRENTLY` needs on a large
table) and the ledger row is written once the last one succeeded. The ledger keeps each file's checksum; a
run refuses to start when an applied file changed. The rules for writing one: ARCHITECTURE.md, How to add,
A migration.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

log = logging.getLogger(__name__)

# Any constant shared by all replicas; the advisory lock serializes concurrent `scimsvc migrate` runs.
MIGRATION_LOCK_ID = 727_001_001
# How often a run waiting for another one's lock tries again (see migration_lock: it must not block).
LOCK_POLL_SECONDS = 0.2

# The first line of a migration that runs outside a transaction, statement by statement.
NO_TRANSACTION = "-- scimsvc: no-transaction"

CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
# sha256 of the text each migration had when it was applied.
ADD_CHECKSUM = "ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS checksum text"
# Rows applied before the ledger had checksums take the file's current checksum on the first run that
# knows them: what was applied then cannot be known, and from then on a change of the file is seen.
FILL_CHECKSUM = "UPDATE schema_migrations SET checksum = $2 WHERE version = $1 AND checksum IS NULL"
APPLIED_CHECKSUMS = "SELECT version, checksum FROM schema_migrations"
RECORD_APPLIED = "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)"

# An index a failed `CREATE INDEX CONCURRENTLY` left behind: it exists, is INVALID, and IF NOT EXISTS would
# skip it for ever. The name is resolved as the statement resolves it (search_path).
INVALID_INDEX = """
SELECT c.oid::regclass::text
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE c.oid = to_regclass($1) AND NOT i.indisvalid
"""
CREATE_INDEX = re.compile(r"\bCREATE\s+(?:UNIQUE\s+)?INDEX\b", re.IGNORECASE)
CREATE_INDEX_RERUNNABLE = re.compile(
    r"\bCREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:CONCURRENTLY\s+)?IF\s+NOT\s+EXISTS\s+([\w$.\"]+)", re.IGNORECASE
)


class MigrationError(Exception):
    """The migrations cannot be applied as they are; the message is one line saying what to do."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def file(self) -> str:
        return f"{self.version:04d}_{self.name}.sql"

    @property
    def checksum(self) -> str:
        """sha256 of the file's text (UTF-8, newlines read as \\n), as the ledger keeps it."""
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()

    @property
    def in_transaction(self) -> bool:
        return self.sql.partition("\n")[0].strip() != NO_TRANSACTION

    def statements(self) -> list[str]:
        """The statements of a no-transaction migration, to be sent one at a time; MigrationError if the
        file breaks the rules that make that split sure (ARCHITECTURE.md, How to add, A migration).

        asyncpg runs a text of several statements in one implicit transaction, which CONCURRENTLY refuses.
        """
        statements: list[str] = []
        current: list[str] = []
        for number, line in enumerate(self.sql.splitlines(), start=1):
            code = line.partition("--")[0].rstrip()
            if not code.strip() and not current:
                continue  # blank lines and comments between statements
            where = f"{self.file} line {number}"
            if "$" in code:
                raise MigrationError(f"{where}: a no-transaction migration holds no $-quoted text")
            if ";" in code[:-1]:
                raise MigrationError(f"{where}: in a no-transaction migration ';' only ends a line")
            current.append(line)
            if code.endswith(";"):
                statements.append("\n".join(current))
                current = []
        if current:
            raise MigrationError(f"{self.file}: its last statement does not end with ';'")
        for statement in statements:
            if CREATE_INDEX.search(statement) and not CREATE_INDEX_RERUNNABLE.search(statement):
                raise MigrationError(
                    f"{self.file}: CREATE INDEX in a no-transaction migration must say IF NOT EXISTS "
                    "(a run after a crash runs it again)"
                )
        return statements


def available_migrations(folder: Path | None = None) -> list[Migration]:
    """The migrations in `folder` (default: the ones shipped with the package), in version order."""
    source: Traversable = folder or resources.files("scimsvc.store").joinpath("migrations")
    found = []
    for entry in source.iterdir():
        match = re.fullmatch(r"(\d{4})_(\w+)\.sql", entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.version)


async def ensure_database(database_url: str) -> bool:
    """Create the database named in `database_url` if it does not exist; True if it was created."""
    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    if not name:
        return False
    try:
        conn = await asyncpg.connect(database_url)
    except asyncpg.InvalidCatalogNameError:
        pass
    else:
        await conn.close()
        return False
    admin = await asyncpg.connect(urlunsplit(parts._replace(path="/postgres")))
    try:
        # Identifiers cannot be bind parameters; quote it as PostgreSQL's quote_ident would.
        quoted = await admin.fetchval("SELECT quote_ident($1)", name)
        await admin.execute(f"CREATE DATABASE {quoted}")
    except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
        return False  # another replica created it at the same moment
    finally:
        await admin.close()
    return True


async def pending_migrations(conn: asyncpg.Connection, folder: Path | None = None) -> list[Migration]:
    """Migrations not yet applied to the database `conn` is connected to."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    applied = set()
    if exists:
        applied = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
    return [m for m in available_migrations(folder) if m.version not in applied]


@asynccontextmanager
async def migration_lock(conn: asyncpg.Connection) -> AsyncIterator[None]:
    """Hold the migrations' session advisory lock: one `scimsvc migrate` at a time, across replicas.

    A run waits by trying again, idle between tries: a backend blocked in pg_advisory_lock holds a
    snapshot, and the holder's CREATE INDEX CONCURRENTLY waits for every older snapshot to end, so the two
    would deadlock.
    """
    locked = False
    while not locked:
        locked = await conn.fetchval("SELECT pg_try_advisory_lock($1)", MIGRATION_LOCK_ID)
        if not locked:
            await asyncio.sleep(LOCK_POLL_SECONDS)
    try:
        yield
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)


async def _changed_files(conn: asyncpg.Connection, available: list[Migration]) -> list[str]:
    """The applied migrations whose file is not the text that was applied (checksums in the ledger)."""
    await conn.execute(ADD_CHECKSUM)
    await conn.executemany(FILL_CHECKSUM, [(m.version, m.checksum) for m in available])
    recorded = {r["version"]: r["checksum"] for r in await conn.fetch(APPLIED_CHECKSUMS)}
    return [m.file for m in available if recorded.get(m.version, m.checksum) != m.checksum]


async def _apply_outside_transaction(conn: asyncpg.Connection, migration: Migration) -> None:
    """Each statement on its own; a re-run after a crash mid-way first drops the INVALID index that an
    interrupted CREATE INDEX CONCURRENTLY left, which IF NOT EXISTS would otherwise keep."""
    for statement in migration.statements():
        created = CREATE_INDEX_RERUNNABLE.search(statement)
        invalid = created and await conn.fetchval(INVALID_INDEX, created[1])
        if invalid:
            log.warning("dropping invalid index %s left by an interrupted run of %s", invalid, migration.file)
            await conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {invalid}")  # regclass text: quoted
        await conn.execute(statement)
    await conn.execute(RECORD_APPLIED, migration.version, migration.name, migration.checksum)


async def migrate(database_url: str, *, folder: Path | None = None) -> list[Migration]:
    """Create the database if needed and apply pending migrations; safe to run from many replicas.

    Raises MigrationError, applying nothing, when an applied migration's file changed or a pending
    no-transaction migration breaks its rules. `folder`: tests' own migrations (default: the package's).
    """
    await ensure_database(database_url)
    conn = await asyncpg.connect(database_url)
    try:
        async with migration_lock(conn):
            await conn.execute(CREATE_LEDGER)
            available = available_migrations(folder)
            changed = await _changed_files(conn, available)
            if changed:
                raise MigrationError(
                    f"applied migration(s) changed since they were applied: {', '.join(changed)}; restore "
                    "the released text and put the change in a new migration (nothing was applied)"
                )
            pending = await pending_migrations(conn, folder)
            for migration in pending:
                if not migration.in_transaction:
                    migration.statements()  # refused before anything is applied
            applied = []
            for migration in pending:
                if migration.in_transaction:
                    async with conn.transaction():
                        await conn.execute(migration.sql)
                        await conn.execute(
                            RECORD_APPLIED, migration.version, migration.name, migration.checksum
                        )
                else:
                    await _apply_outside_transaction(conn, migration)
                applied.append(migration)
            return applied
    finally:
        await conn.close()
