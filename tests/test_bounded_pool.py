"""The web's pool (store/db.py:BoundedPool): a wait for a busy pool is bounded, a free connection is
taken at once, and the pool serves on after a wait ran out."""

from __future__ import annotations

import pytest

from scimsvc.store.db import create_pool


async def test_a_wait_for_a_busy_pool_runs_out_and_the_pool_serves_on(database_url: str) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=1, wait_seconds=1)
    try:
        async with pool.acquire() as held:
            assert await held.fetchval("SELECT 1") == 1
            with pytest.raises(TimeoutError):
                async with pool.acquire():
                    pass  # never reached: the one connection is held
            with pytest.raises(TimeoutError):
                await pool.acquire()
        # The held connection is back, free: the next statements take it.
        assert await pool.fetchval("SELECT 2") == 2
        conn = await pool.acquire()
        assert await conn.fetchval("SELECT 3") == 3
        await pool.release(conn)
        assert pool.get_idle_size() == 1
    finally:
        await pool.close()


async def test_a_transaction_left_open_is_rolled_back_as_its_connection_goes_back(database_url: str) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=1, wait_seconds=5)
    try:
        async with pool.acquire() as conn:
            await conn.execute("BEGIN")
            await conn.execute("CREATE TEMP TABLE left_open (x int)")
        async with pool.acquire() as conn:
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT to_regclass('pg_temp.left_open')") is None
    finally:
        await pool.close()
