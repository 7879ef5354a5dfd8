"""Writes that many requests make at the same moment, sent to PostgreSQL as one statement.

A single-row INSERT costs PostgreSQL a statement, a commit and a WAL flush, and the front end a round trip;
under load most of a POST's database time is that, not the row. A `Batcher` runs one batch at a time (a few
only when one is slow, `OVERLAP_AFTER`): a write that arrives while a batch is out waits for it and then goes
with everything else that arrived meanwhile, as one multi-row statement. A write that finds nothing in flight
goes at once, by its single-row statement: a lone request waits for nobody. Each row of a batch still commits
with its own outbox row (one statement is atomic), and a request answers only after the batch committed.

A batch statement opens with `waits(BATCH_LOCK_TIMEOUT)` and maps its rows back to the items with
`in_batch_order`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import asyncpg

from scimsvc.store.db import unavailable

# How long a batch waits for a row lock: a row in it that another transaction is writing right then (a
# front end inserting that name, a PATCH or the worker updating that user). Past it the batch fails with
# nothing written and its items go again one by one (`Batcher`), so only that item waits, and the batch is
# never the one a deadlock check (deadlock_timeout, 1 s) finds waiting.
BATCH_LOCK_TIMEOUT = "500ms"
# How long a batch is out before the next may go beside it (the `in_flight` a batcher allows): a batch
# waiting for a lock then holds back what arrives after it for no longer than this, while a batch that
# answers sooner (nearly all: a few milliseconds) is followed by one holding everything that arrived
# meanwhile. Sent at once instead, the second batch was often one or two items, a statement and a commit
# each: with 64 clients POSTing, 10-15 % fewer POSTs a second in one organization and across 10,000
# (bench/scale.py; docs/performance-history.md, What changed in this round: Batches wait).
OVERLAP_AFTER = 0.05


def waits(lock_timeout: str | None) -> str:
    """The body of a batch statement's first CTE, `waits` (AS MATERIALIZED, read by the next): the
    statement's own transaction waits at most `lock_timeout` for a lock (None: as long as any statement),
    with no BEGIN, SET and COMMIT round trips."""
    return f"SELECT set_config('lock_timeout', '{lock_timeout}', true)" if lock_timeout else "SELECT 1"


def in_batch_order(rows: Sequence[asyncpg.Record], count: int) -> list[asyncpg.Record | None]:
    """A batch statement's rows in the order of its `count` items, by their `batch_row` (1-based): None
    for an item that wrote or found no row."""
    found = {row["batch_row"]: row for row in rows}
    return [found.get(n) for n in range(1, count + 1)]


Item = TypeVar("Item")
Result = TypeVar("Result")


class Batcher(Generic[Item, Result]):
    """Runs submitted items through `many` (a list in, a result per item out, in order) in batches.

    `one` runs a single item: a batch of one. A batch that failed for a reason other than the database
    being unreachable wrote nothing (it is one statement): its items go again one by one, so only the
    item at fault fails or waits. Each first goes through `many` alone, so it waits for a lock no longer
    than the batch did; an item that found its row locked again then goes through `one`, which waits as
    long as any statement. At most `retries_at_once` of these run at a time (a quarter of the pool's
    connections unless told): a batch failed on rows a long transaction holds must not take every
    connection of the pool, nor the requests that need none of those rows wait for a connection.
    Up to `in_flight` batches are out at once, a further one only while every one out has been out for
    `overlap_after` seconds.
    An item whose `key` is in a batch now out, or already in the one being formed, waits for the next:
    one key is never written twice at once.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        one: Callable[[asyncpg.Pool, Item], Awaitable[Result]],
        many: Callable[[asyncpg.Pool, Sequence[Item]], Awaitable[Sequence[Result]]],
        key: Callable[[Item], Hashable],
        in_flight: int = 1,
        max_size: int = 256,
        retries_at_once: int | None = None,
        overlap_after: float = OVERLAP_AFTER,
    ) -> None:
        self._pool = pool
        self._one = one
        self._many = many
        self._key = key
        self._in_flight = in_flight
        self._max_size = max_size
        self._retries = asyncio.Semaphore(retries_at_once or max(1, pool.get_max_size() // 4))
        self._pending: list[_Entry[Item, Result]] = []
        self._out: set[Hashable] = set()  # keys of the items in batches now out
        self._overlap_after = overlap_after
        self._sending = 0  # senders running; one stops as soon as it finds nothing to send
        self._slow = 0  # senders whose batch has been out for `overlap_after`
        self._senders: set[asyncio.Task[None]] = set()  # references keep the tasks alive

    async def submit(self, item: Item) -> Result:
        """The item's result once its batch has committed (or the exception its statement raised)."""
        loop = asyncio.get_running_loop()
        entry = _Entry(item, self._key(item), loop.create_future())
        self._pending.append(entry)
        if self._sending == self._slow:  # none sending, or every batch out is slow
            self._start_sender()
        return await entry.future

    def _start_sender(self) -> None:
        if self._sending >= self._in_flight:
            return
        self._sending += 1
        sender = asyncio.get_running_loop().create_task(self._send())
        self._senders.add(sender)
        sender.add_done_callback(self._senders.discard)

    def _watch(self) -> Callable[[], None]:
        """Time a batch going out: past `overlap_after` it is slow, and what waits may go beside it. Returns
        what to call when the batch is done."""
        fired = False

        def slow() -> None:
            nonlocal fired
            fired = True
            self._slow += 1
            if self._pending and self._sending == self._slow:
                self._start_sender()

        timer = asyncio.get_running_loop().call_later(self._overlap_after, slow)

        def done() -> None:
            timer.cancel()
            if fired:
                self._slow -= 1

        return done

    def _take(self) -> list[_Entry[Item, Result]]:
        """The next batch, oldest first; its keys are then out until it is done."""
        batch: list[_Entry[Item, Result]] = []
        later: list[_Entry[Item, Result]] = []
        for entry in self._pending:
            if entry.future.done():  # its request was cancelled before the batch went out
                continue
            if len(batch) < self._max_size and entry.key not in self._out:
                self._out.add(entry.key)
                batch.append(entry)
            else:
                later.append(entry)
        self._pending = later
        return batch

    async def _send(self) -> None:
        try:
            # An item held back because its key was out is taken by the sender whose batch held the key,
            # on its next turn: no await between that batch's end and this loop's next _take.
            while batch := self._take():
                done = self._watch()
                try:
                    await self._run(batch)
                except Exception as exc:  # a defect here must not strand the batch's requests
                    _settle(batch, exc)
                except BaseException as exc:  # cancelled at shutdown: nobody waits for ever
                    _settle(batch, exc)
                    raise
                finally:
                    done()
                    self._out.difference_update(entry.key for entry in batch)
        finally:
            self._sending -= 1

    async def _run(self, batch: list[_Entry[Item, Result]]) -> None:
        if len(batch) == 1:
            await self._run_one(batch[0])
            return
        try:
            results = await self._many(self._pool, [entry.item for entry in batch])
        except Exception as exc:
            if unavailable(exc):
                _settle(batch, exc)
            else:
                found_locked = await asyncio.gather(*(self._retry_briefly(entry) for entry in batch))
                locked = [entry for entry, was in zip(batch, found_locked, strict=True) if was]
                await asyncio.gather(*(self._retry(entry) for entry in locked))
            return
        for entry, result in zip(batch, results, strict=True):
            if not entry.future.done():
                entry.future.set_result(result)

    async def _retry_briefly(self, entry: _Entry[Item, Result]) -> bool:
        """Run an item of a failed batch alone through `many`; whether it found a row locked (then it is
        not settled yet)."""
        if entry.future.done():
            return False
        async with self._retries:
            try:
                (result,) = await self._many(self._pool, [entry.item])
            except asyncpg.LockNotAvailableError:
                return True
            except Exception as exc:
                _settle([entry], exc)
            else:
                if not entry.future.done():
                    entry.future.set_result(result)
        return False

    async def _retry(self, entry: _Entry[Item, Result]) -> None:
        async with self._retries:
            await self._run_one(entry)

    async def _run_one(self, entry: _Entry[Item, Result]) -> None:
        if entry.future.done():
            return
        try:
            result = await self._one(self._pool, entry.item)
        except Exception as exc:
            _settle([entry], exc)
        else:
            if not entry.future.done():
                entry.future.set_result(result)


@dataclass(frozen=True)
class _Entry(Generic[Item, Result]):
    item: Item
    key: Hashable
    future: asyncio.Future[Result]


def _settle(batch: Sequence[_Entry[Any, Any]], exc: BaseException) -> None:
    for entry in batch:
        if entry.future.done():
            continue
        if isinstance(exc, asyncio.CancelledError):
            entry.future.cancel()
        else:
            entry.future.set_exception(exc)
