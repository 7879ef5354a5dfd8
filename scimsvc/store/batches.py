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
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import asyncpg

from scimsvc.store.db import unavailable

Item = TypeVar("Item")
Result = TypeVar("Result")


class Batcher(Generic[Item, Result]):
    """Runs submitted items through `many` (a list in, a result per item out, in order) in batches.

    `one` runs a single item: a batch of one, and each item of a batch that failed for a reason other than
    the database being unreachable (a batch is one statement, so nothing of it was written; run one by
    one, and side by side, only the item at fault fails or waits). An item whose `key` is in a batch now
    out, or already in the one being formed, waits for the next: one key is never written twice at once.
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
        self._pending: list[_Entry[Item, Result]] = []
        self._out: set[Hashable] = set()  # keys of the items in batches now out
        self._sending = 0  # senders running; one stops as soon as it finds nothing to send
        self._senders: set[asyncio.Task[None]] = set()  # references keep the tasks alive

    async def submit(self, item: Item) -> Result:
        """The item's result once its batch has committed (or the exception its statement raised)."""
        loop = asyncio.get_running_loop()
        entry = _Entry(item, self._key(item), loop.create_future())
        self._pending.append(entry)
        if self._sending < self._in_flight:
            self._sending += 1
            sender = loop.create_task(self._send())
            self._senders.add(sender)
            sender.add_done_callback(self._senders.discard)
        return await entry.future

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
                try:
                    await self._run(batch)
                except Exception as exc:  # a defect here must not strand the batch's requests
                    _settle(batch, exc)
                except BaseException as exc:  # cancelled at shutdown: nobody waits for ever
                    _settle(batch, exc)
                    raise
                finally:
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
                await asyncio.gather(*(self._run_one(entry) for entry in batch))
            return
        for entry, result in zip(batch, results, strict=True):
            if not entry.future.done():
                entry.future.set_result(result)

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
