"""store/batches.py: writes submitted together go as one statement; a bad item fails alone."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from scimsvc.store.batches import Batcher
from scimsvc.store.db import create_pool
from tests.conftest import wait_until


@pytest.fixture
async def probe(database_url):
    """A pool and a table of the test's own: positive numbers, each once."""
    pool = await create_pool(database_url, min_size=1, max_size=4)
    await pool.execute(
        "DROP TABLE IF EXISTS batch_probe; CREATE TABLE batch_probe (n int PRIMARY KEY CHECK (n > 0))"
    )
    yield pool
    await pool.execute("DROP TABLE batch_probe")
    await pool.close()


class Calls:
    """The statements a batcher runs into the probe table, and what it asked of them."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.ones: list[int] = []
        self.gate = asyncio.Event()  # the first single item waits for it: the sender is busy meanwhile

    async def one(self, pool: asyncpg.Pool, n: int) -> int:
        self.ones.append(n)
        if len(self.ones) == 1:
            await self.gate.wait()
        return await pool.fetchval("INSERT INTO batch_probe VALUES ($1) RETURNING n", n)

    async def many(self, pool: asyncpg.Pool, ns: list[int]) -> list[int]:
        self.batches.append(list(ns))
        rows = await pool.fetch("INSERT INTO batch_probe SELECT unnest($1::int[]) RETURNING n", ns)
        return [r["n"] for r in rows]


async def submit_behind_a_busy_sender(batcher: Batcher, calls: Calls, items: list[int]) -> list:
    first = asyncio.create_task(batcher.submit(100))
    await wait_until(lambda: calls.ones, what="the first item to go out")
    rest = [asyncio.create_task(batcher.submit(n)) for n in items]
    await wait_until(lambda: len(batcher._pending) == len(items), what="the items to wait for the sender")
    calls.gate.set()
    assert await first == 100
    return await asyncio.gather(*rest, return_exceptions=True)


async def stored(pool: asyncpg.Pool) -> list[int]:
    return [r["n"] for r in await pool.fetch("SELECT n FROM batch_probe ORDER BY n")]


async def test_items_that_wait_for_a_busy_sender_go_in_one_statement(probe):
    pool = probe
    calls = Calls()
    batcher = Batcher(pool, one=calls.one, many=calls.many, key=lambda n: n, in_flight=1)
    assert await submit_behind_a_busy_sender(batcher, calls, [1, 2, 3]) == [1, 2, 3]
    assert calls.batches == [[1, 2, 3]]
    assert await stored(pool) == [1, 2, 3, 100]


async def test_a_batch_with_a_bad_item_is_retried_one_by_one_and_only_that_item_fails(probe):
    pool = probe
    calls = Calls()
    batcher = Batcher(pool, one=calls.one, many=calls.many, key=lambda n: n, in_flight=1)
    results = await submit_behind_a_busy_sender(batcher, calls, [1, 2, -3, 4])
    assert results[:2] == [1, 2] and results[3] == 4
    assert isinstance(results[2], asyncpg.CheckViolationError)
    # Tried together first (nothing of it was written), then each alone by the batch statement.
    assert calls.batches == [[1, 2, -3, 4], [1], [2], [-3], [4]]
    assert calls.ones == [100]
    assert await stored(pool) == [1, 2, 4, 100]


async def test_an_item_that_finds_its_row_locked_again_goes_by_the_single_statement(probe):
    pool = probe
    calls = Calls()

    async def two_is_locked(pool: asyncpg.Pool, ns: list[int]) -> list[int]:
        if 2 in ns:  # as the batch statement's lock timeout reports a row another transaction holds
            calls.batches.append(list(ns))
            raise asyncpg.LockNotAvailableError("canceling statement due to lock timeout")
        return await calls.many(pool, ns)

    batcher = Batcher(pool, one=calls.one, many=two_is_locked, key=lambda n: n, in_flight=1)
    assert await submit_behind_a_busy_sender(batcher, calls, [1, 2, 3]) == [1, 2, 3]
    assert calls.batches == [[1, 2, 3], [1], [2], [3]]
    assert calls.ones == [100, 2]  # only the locked item waits as long as any statement
    assert await stored(pool) == [1, 2, 3, 100]


async def test_items_with_one_key_never_share_a_batch(probe):
    pool = probe
    calls = Calls()
    batcher = Batcher(pool, one=calls.one, many=calls.many, key=lambda n: n % 10, in_flight=1)
    assert await submit_behind_a_busy_sender(batcher, calls, [1, 11, 2, 12, 3]) == [1, 11, 2, 12, 3]
    assert calls.batches == [[1, 2, 3], [11, 12]]


async def test_a_batch_that_finds_the_database_unreachable_fails_every_item_without_retrying(probe):
    pool = probe
    calls = Calls()
    lost = asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")

    async def unreachable(pool: asyncpg.Pool, ns: list[int]) -> list[int]:
        calls.batches.append(list(ns))
        raise lost

    batcher = Batcher(pool, one=calls.one, many=unreachable, key=lambda n: n, in_flight=1)
    assert await submit_behind_a_busy_sender(batcher, calls, [1, 2, 3]) == [lost, lost, lost]
    assert calls.ones == [100]  # a retry one by one would only meet the same outage
    assert await stored(pool) == [100]


async def test_a_lone_item_goes_at_once_by_its_single_statement(probe):
    pool = probe
    calls = Calls()
    calls.gate.set()
    batcher = Batcher(pool, one=calls.one, many=calls.many, key=lambda n: n, in_flight=2)
    assert [await batcher.submit(n) for n in (5, 6)] == [5, 6]
    assert calls.batches == [] and calls.ones == [5, 6]


async def test_an_item_whose_key_is_in_a_batch_now_out_waits_for_it_while_others_go(probe):
    pool = probe
    calls = Calls()
    batcher = Batcher(pool, one=calls.one, many=calls.many, key=lambda n: n % 10, in_flight=2)
    first = asyncio.create_task(batcher.submit(100))  # out, and held at the gate
    await wait_until(lambda: calls.ones, what="the first item to go out")
    same_key = asyncio.create_task(batcher.submit(10))
    other = asyncio.create_task(batcher.submit(5))
    assert await asyncio.wait_for(other, 120) == 5  # a second sender took it once the first was slow
    # That sender stops when it finds nothing it may send: then only the first can take `same_key`.
    await wait_until(lambda: batcher._sending == 1, what="the second sender to stop")
    assert not same_key.done(), "an item went out while its key was in a batch still out"
    calls.gate.set()
    assert (await first, await same_key) == (100, 10)
    assert calls.ones == [100, 5, 10]


async def test_items_behind_a_batch_out_wait_for_it_and_go_together_while_it_is_not_slow(probe):
    pool = probe
    calls = Calls()
    # The batch out is held at the gate, and never counts as slow: nothing goes beside it.
    batcher = Batcher(pool, one=calls.one, many=calls.many, key=lambda n: n, in_flight=2, overlap_after=3600)
    assert await submit_behind_a_busy_sender(batcher, calls, [1, 2, 3]) == [1, 2, 3]
    assert calls.ones == [100] and calls.batches == [[1, 2, 3]]
    assert await stored(pool) == [1, 2, 3, 100]


async def test_a_batch_out_past_overlap_after_lets_the_next_go_beside_it(probe):
    pool = probe
    calls = Calls()
    batcher = Batcher(pool, one=calls.one, many=calls.many, key=lambda n: n, in_flight=2, overlap_after=0)
    first = asyncio.create_task(batcher.submit(100))  # out, held at the gate: slow at once
    await wait_until(lambda: calls.ones, what="the first item to go out")
    assert await asyncio.wait_for(batcher.submit(5), 120) == 5
    assert not first.done()
    calls.gate.set()
    assert await first == 100
    assert calls.ones == [100, 5]
