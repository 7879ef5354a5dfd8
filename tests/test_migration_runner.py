"""The migration runner on migrations for large tables: a migration that runs outside a transaction
(`CREATE INDEX CONCURRENTLY`), a re-run after it failed half way, checksums that refuse an applied file
that changed, and concurrent runs. Each test has a database of its own; most use migrations of their own
in `tmp_path`."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from scimsvc.store.migrations import NO_TRANSACTION, MigrationError, available_migrations, migrate
from tests.conftest import RUN_ID, SERVER_URL, Processes, _drop_database, bare_env, with_database

BASE = """
CREATE TABLE items (id bigserial PRIMARY KEY, k int NOT NULL, v text NOT NULL);
INSERT INTO items (k, v) SELECT n, 'value ' || n FROM generate_series(1, 5000) AS n;
"""
TWIN = "INSERT INTO items (k, v) VALUES (7, 'twin');\n"  # k 7 twice: no unique index on k can be built
# Two indexes built without blocking writes; the second is unique on k.
CONCURRENT = f"""{NO_TRANSACTION}
-- Built without blocking writes to items.
CREATE INDEX CONCURRENTLY IF NOT EXISTS items_v
    ON items (v);
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS items_k ON items (k);
"""

INDEXES = """
SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = 'items'::regclass AND NOT i.indisprimary ORDER BY 1
"""


@pytest.fixture
async def url() -> AsyncIterator[str]:
    """The URL of a database of this test's own (migrate creates it), dropped at the end."""
    url = with_database(SERVER_URL, f"scimsvc_test_{RUN_ID}_mig_{uuid.uuid4().hex[:8]}")
    yield url
    await _drop_database(url)


def write(folder: Path, **files: str) -> Path:
    """Migration files `name=text` (as `0001_name.sql`, numbered in the order given) in `folder`."""
    folder.mkdir(exist_ok=True)
    for number, (name, text) in enumerate(files.items(), start=1):
        (folder / f"{number:04d}_{name}.sql").write_text(text, encoding="utf-8")
    return folder


async def query(url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def ledger(url: str) -> dict[int, str]:
    """version -> checksum of what schema_migrations records as applied."""
    return {
        r["version"]: r["checksum"]
        for r in await query(url, "SELECT version, checksum FROM schema_migrations")
    }


async def test_a_no_transaction_migration_builds_its_indexes_concurrently_and_valid(url, tmp_path):
    folder = write(tmp_path / "m", base=BASE, items_indexes=CONCURRENT)
    applied = await migrate(url, folder=folder)
    assert [m.file for m in applied] == ["0001_base.sql", "0002_items_indexes.sql"]
    assert [tuple(r) for r in await query(url, INDEXES)] == [("items_k", True), ("items_v", True)]
    sha = hashlib.sha256(CONCURRENT.encode()).hexdigest()
    assert (await ledger(url))[2] == sha
    assert await migrate(url, folder=folder) == []


async def test_a_run_that_failed_half_way_is_not_recorded_and_a_rerun_completes(url, tmp_path):
    folder = write(tmp_path / "m", base=BASE + TWIN)
    await migrate(url, folder=folder)
    write(tmp_path / "m", base=BASE + TWIN, items_indexes=CONCURRENT)

    # The second statement fails (k 7 twice): the first index is built, the second left INVALID.
    with pytest.raises(asyncpg.UniqueViolationError):
        await migrate(url, folder=folder)
    assert 2 not in await ledger(url)
    assert [tuple(r) for r in await query(url, INDEXES)] == [("items_k", False), ("items_v", True)]

    # The data fixed (not the file), a re-run drops the invalid index, builds both and records it.
    await query(url, "DELETE FROM items WHERE v = 'twin'")
    applied = await migrate(url, folder=folder)
    assert [m.file for m in applied] == ["0002_items_indexes.sql"]
    assert [tuple(r) for r in await query(url, INDEXES)] == [("items_k", True), ("items_v", True)]
    assert 2 in await ledger(url)


async def test_an_applied_file_that_changed_is_refused_and_nothing_is_applied(url, tmp_path):
    folder = write(tmp_path / "m", base=BASE)
    await migrate(url, folder=folder)
    write(tmp_path / "m", base=BASE + "-- edited after release\n", more="CREATE TABLE more (id int);")
    with pytest.raises(MigrationError) as refused:
        await migrate(url, folder=folder)
    message = str(refused.value)
    assert "\n" not in message and "0001_base.sql" in message and "new migration" in message
    assert list(await ledger(url)) == [1]
    assert (await query(url, "SELECT to_regclass('more') IS NULL AS absent"))[0]["absent"]


async def test_migrate_refuses_a_changed_applied_migration_in_one_line_exit_1(url, processes: Processes):
    await migrate(url)
    # As if 0005's file had been edited after it was applied, and 0013 were new in this release.
    await query(url, "UPDATE schema_migrations SET checksum = 'released text' WHERE version = 5")
    await query(url, "DELETE FROM schema_migrations WHERE version = 13")
    await query(url, "DROP FUNCTION in_time(timestamptz)")

    out = await processes.run("migrate", env=bare_env(SCIMSVC_DATABASE_URL=url))
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [
        "scimsvc: error: applied migration(s) changed since they were applied: 0005_teams.sql; restore the "
        "released text and put the change in a new migration (nothing was applied)"
    ]
    assert 13 not in await ledger(url)
    assert (await query(url, "SELECT to_regproc('in_time') IS NULL AS absent"))[0]["absent"]


async def test_rows_applied_before_checksums_take_the_files_checksum(url):
    await migrate(url)
    await query(url, "ALTER TABLE schema_migrations DROP COLUMN checksum")
    assert await migrate(url) == []
    assert await ledger(url) == {m.version: m.checksum for m in available_migrations()}


async def test_concurrent_runs_serialize_on_a_no_transaction_migration(url, tmp_path):
    """A run waiting for the lock must not hold a snapshot: the index build would wait for it for ever."""
    folder = write(tmp_path / "m", base=BASE, items_indexes=CONCURRENT)
    results = await asyncio.wait_for(asyncio.gather(*(migrate(url, folder=folder) for _ in range(3))), 120)
    assert sorted(len(r) for r in results) == [0, 0, 2]
    assert [tuple(r) for r in await query(url, INDEXES)] == [("items_k", True), ("items_v", True)]
    assert list(await ledger(url)) == [1, 2]


@pytest.mark.parametrize(
    ("text", "refusal"),
    [
        ("CREATE INDEX CONCURRENTLY IF NOT EXISTS a ON items (v); SELECT 1;", "line 2: in a no-transaction"),
        ("CREATE INDEX CONCURRENTLY a ON items (v);", "must say IF NOT EXISTS"),
        ("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;", "no $-quoted text"),
        ("CREATE INDEX CONCURRENTLY IF NOT EXISTS a ON items (v)", "does not end with ';'"),
    ],
)
async def test_a_no_transaction_migration_it_cannot_split_surely_is_refused_before_anything(
    url, tmp_path, text, refusal
):
    folder = write(tmp_path / "m", base=BASE, bad=f"{NO_TRANSACTION}\n{text}\n")
    with pytest.raises(MigrationError, match=refusal.replace("$", r"\$")):
        await migrate(url, folder=folder)
    assert await ledger(url) == {}  # not even 0001, which came before it


async def test_outbox_rows_applied_before_the_upgrade_get_the_transaction_that_wrote_their_events(
    url, tmp_path
):
    """The provisioning log finds an entry's events through `outbox.applied_tx`: the migration adding it
    fills it for the rows still kept from the events their request wrote when they were applied (same
    `now()`), and leaves NULL (events unknown) where no event matches."""
    shipped = available_migrations()
    cut = next(i for i, m in enumerate(shipped) if m.name == "outbox_applied_tx")
    folder = tmp_path / "m"
    folder.mkdir()
    for m in shipped[:cut]:
        (folder / f"{m.version:04d}_{m.name}.sql").write_text(m.sql, encoding="utf-8")
    await migrate(url, folder=folder)
    conn = await asyncpg.connect(url)
    try:
        tenant = await conn.fetchval("INSERT INTO tenants (name) VALUES ('old') RETURNING id")
        async with conn.transaction():  # as the worker applied one: the row and its events in one transaction
            traced = await conn.fetchval(
                "INSERT INTO outbox (tenant_id, resource_type, resource_id, change, request_id, applied_at)"
                " VALUES ($1, 'user', gen_random_uuid(), 'create', 'req-1', now()) RETURNING id",
                tenant,
            )
            await conn.execute(
                "INSERT INTO events (tenant_id, seq, type, request_id, data)"
                " VALUES ($1, 1, 'user.created', 'req-1', '{}'), ($1, 2, 'license.changed', 'req-1', '{}')",
                tenant,
            )
            tx = await conn.fetchval("SELECT pg_current_xact_id()::text")
        untraced = await conn.fetchval(
            "INSERT INTO outbox (tenant_id, resource_type, resource_id, change, request_id, applied_at)"
            " VALUES ($1, 'user', gen_random_uuid(), 'update', 'req-2', now()) RETURNING id",
            tenant,
        )
        pending = await conn.fetchval(
            "INSERT INTO outbox (tenant_id, resource_type, resource_id, change, request_id)"
            " VALUES ($1, 'user', gen_random_uuid(), 'update', 'req-1') RETURNING id",
            tenant,
        )
    finally:
        await conn.close()
    for m in shipped[cut:]:
        (folder / f"{m.version:04d}_{m.name}.sql").write_text(m.sql, encoding="utf-8")
    await migrate(url, folder=folder)
    rows = await query(url, "SELECT id, applied_tx::text AS applied_tx FROM outbox ORDER BY id")
    assert {r["id"]: r["applied_tx"] for r in rows} == {traced: tx, untraced: None, pending: None}
