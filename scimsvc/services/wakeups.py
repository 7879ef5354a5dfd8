"""Waking the worker: the front end's waker sends the jobs that drain outbox rows without holding a response.

Redis only carries wake-up calls (`scimsvc.enqueue`): every change is committed to the outbox first, and
the worker's sweeper re-enqueues whatever a lost wake-up leaves behind. So the front end sends wake-ups in
the background, coalesced: one job for the user rows of the tenants woken together (the worker drains them
in one transaction; a tenant alone gets a job of its own, which drains its users in batches), one job per
other resource.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Iterable
from uuid import UUID

from arq.connections import ArqRedis

from scimsvc.contract import ResourceType, Wakeup
from scimsvc.enqueue import enqueue_apply, enqueue_user_drains

MAX_WAKE_IDS = 1000  # a wake-up for more rows than this drains unconditionally
LINGER_SECONDS = 0.05  # a round carries the next 50 ms of wake-ups: one job per tenant, not per write


async def send_wakeups(
    redis: ArqRedis, wakeups: Iterable[Wakeup], *, queue_name: str, wait: float = 1.0
) -> None:
    """Enqueue the jobs these rows need: for user rows one drain of the tenants woken (or of the tenant, if
    only one), one job per other resource."""
    user_rows: dict[UUID, list[int]] = {}
    others: dict[tuple[ResourceType, UUID], None] = {}
    for w in wakeups:
        if w.resource_type == ResourceType.USER:
            user_rows.setdefault(w.tenant_id, []).append(w.outbox_id)
        else:
            others[(w.resource_type, w.resource_id)] = None
    tenants = [(t, ids if len(ids) <= MAX_WAKE_IDS else None) for t, ids in user_rows.items()]
    await asyncio.gather(
        enqueue_user_drains(redis, queue_name=queue_name, wakeups=tenants, wait=wait),
        *(
            enqueue_apply(redis, queue_name=queue_name, resource_type=kind, resource_id=rid, wait=wait)
            for kind, rid in others
        ),
    )


class Waker:
    """Sends wake-ups in the background; while one round of enqueues is out, the next one gathers."""

    def __init__(self, redis: ArqRedis, *, queue_name: str, wait: float = 1.0) -> None:
        self.redis = redis
        self.queue_name = queue_name
        self.wait = wait
        self._pending: list[Wakeup] = []
        self._task: asyncio.Task[None] | None = None  # the sender; a reference keeps it alive

    def wake(self, wakeups: Iterable[Wakeup]) -> None:
        """Queue wake-ups for the sender; returns at once."""
        self._pending.extend(wakeups)
        if self._pending and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self._send())

    async def _send(self) -> None:
        while self._pending:
            await asyncio.sleep(LINGER_SECONDS)
            batch, self._pending = self._pending, []
            await send_wakeups(self.redis, batch, queue_name=self.queue_name, wait=self.wait)

    async def sent(self) -> None:
        """Wait until every wake-up queued so far has been sent (or given up on)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)


_wakers: weakref.WeakKeyDictionary[ArqRedis, Waker] = weakref.WeakKeyDictionary()


def waker_for(redis: ArqRedis, *, queue_name: str, wait: float = 1.0) -> Waker:
    """The one waker of this Redis client (made on first use, in the running event loop)."""
    waker = _wakers.get(redis)
    if waker is None or waker.queue_name != queue_name:
        waker = _wakers[redis] = Waker(redis, queue_name=queue_name, wait=wait)
    return waker


async def wakeups_sent(redis: ArqRedis) -> None:
    """Wait for this Redis client's queued wake-ups to be sent; call before closing the client."""
    waker = _wakers.get(redis)
    if waker is not None:
        await waker.sent()
