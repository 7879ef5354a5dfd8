"""worker/user_drain.py:_while_running: a drain builds its events while its previous statement runs; an
error or a cancellation meanwhile leaves no statement running on the drain's connection."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from worker.user_drain import _while_running


async def test_work_runs_while_the_statement_runs_and_both_results_come_back(db: asyncpg.Connection) -> None:
    assert await _while_running(db.fetchval("SELECT 41 + 1"), lambda: "built") == (42, "built")


async def test_an_error_in_the_work_goes_up_once_the_statement_has_ended(db: asyncpg.Connection) -> None:
    await db.execute("CREATE TEMP TABLE overlap_probe (n int)")

    def failing() -> None:
        raise ValueError("a defect while building the events")

    with pytest.raises(ValueError, match="a defect"):
        await _while_running(db.execute("INSERT INTO overlap_probe VALUES (1)"), failing)
    # The statement ran to its end before the error went up: its row is there, and the connection is free.
    assert await db.fetchval("SELECT count(*) FROM overlap_probe") == 1


async def test_a_drain_cancelled_as_its_statement_goes_out_leaves_the_connection_free(
    db: asyncpg.Connection,
) -> None:
    await db.execute("CREATE TEMP TABLE overlap_probe (n int)")
    started = asyncio.Event()

    def work() -> None:
        started.set()

    # The statement takes a moment, so that it is still running when the drain is cancelled.
    statement = db.execute("SELECT pg_sleep(0.05); INSERT INTO overlap_probe VALUES (1)")
    drain = asyncio.create_task(_while_running(statement, work))
    await asyncio.sleep(0)  # the drain sends its statement and yields once before its work
    assert not started.is_set()
    drain.cancel()
    with pytest.raises(asyncio.CancelledError):
        await drain
    assert not started.is_set()
    # Not left running on the connection (a later statement would find "another operation in progress").
    assert await db.fetchval("SELECT count(*) FROM overlap_probe") == 1
