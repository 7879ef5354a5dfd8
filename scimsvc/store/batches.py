"""Writes that many requests make at the same moment, sent to PostgreSQL as one statement.

A single-row INSERT costs PostgreSQL a statement, a commit and a WAL flush, and the front end a round trip;
under load most of a POST's database time is that, not the row. A `Batcher` runs one batch at a time
(or a few): a write that arrives while a batch is out waits for it and then goes with everything else
that arrived meanwhile, as one multi-row statement. A write that finds nothing in flight goes at once, by
its single-row statement: a lone request waits for nobody. Each row of a batch still commits with its own
outbox row (one statement is atomic), and a request answers only after the batch committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

import asyncpg

from scimsvc.store.db import unavailable

Item = TypeVar("Item")
Result = TypeVar("Result")


class Batcher(Generic[Item, Result]):
    """Runs submitted items through `many` (a list in, a result per item out, in order) in batches.

    `one` runs a single item: a batch of one, and each item again when a batch fails for a reason other
    than the database being unreachable (a batch is one statement, so nothing of it was written; run one
    by one, only the item at fault fails). Items with the same `key` never share a batch.
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
    ) -> None:
        self._pool = pool
        self._one = one
        self._many = many
        self._key = key
        self._in_flight = in_flight
        self._max_size = max_size
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._sending = 0  # senders running; one stops as soon as it finds nothing pending
        self._senders: set[asyncio.Task[None]] = set()  # references keep the tasks alive

    async def submit(self, item: Item) -> Result:
        """The item's result once its batch has committed (or the exception its statement raised)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self._pending.append((item, future))
        if self._sending < self._in_flight:
            self._sending += 1
            sender = loop.create_task(self._send())
            self._senders.add(sender)
            sender.add_done_callback(self._senders.discard)
        return await future

    def _take(self) -> list[tuple[Item, asyncio.Future[Result]]]:
        """The next batch, oldest first; an item whose key is already in it waits for the next one."""
        batch: list[tuple[Item, asyncio.Future[Result]]] = []
        later: list[tuple[Item, asyncio.Future[Result]]] = []
        keys: set[Hashable] = set()
        for entry in self._pending:
            if entry[1].done():  # its request was cancelled before the batch went out
                continue
            key = self._key(entry[0])
            if len(batch) < self._max_size and key not in keys:
                keys.add(key)
                batch.append(entry)
            else:
                later.append(entry)
        self._pending = later
        return batch

    async def _send(self) -> None:
        try:
            while batch := self._take():
                try:
                    await self._run(batch)
                except BaseException as exc:  # cancelled at shutdown: nobody waits for ever
                    _settle(batch, exc)
                    raise
        finally:
            # No await since the last _take found nothing: a submit from now on starts a new sender.
            self._sending -= 1

    async def _run(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        if len(batch) == 1:
            await self._run_one(*batch[0])
            return
        try:
            results = await self._many(self._pool, [item for item, _ in batch])
        except Exception as exc:
            if unavailable(exc):
                _settle(batch, exc)
                return
            for item, future in batch:
                await self._run_one(item, future)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def _run_one(self, item: Item, future: asyncio.Future[Result]) -> None:
        try:
            result = await self._one(self._pool, item)
        except Exception as exc:
            _settle([(item, future)], exc)
        else:
            if not future.done():
                future.set_result(result)


def _settle(batch: Sequence[tuple[object, asyncio.Future[Result]]], exc: BaseException) -> None:
    for _, future in batch:
        if future.done():
            continue
        if isinstance(exc, asyncio.CancelledError):
            future.cancel()
        else:
            future.set_exception(exc)
