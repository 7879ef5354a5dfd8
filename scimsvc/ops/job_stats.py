"""Job outcomes and worker heartbeats kept in Redis, so every replica sees the totals of all workers.

Workers write (`count_job`, `beat`); `/ops/queue` and `scimsvc queue` read (`jobs_last_hour`,
`workers`). Counters are per minute and expire after two hours; a heartbeat is a field of one hash
per queue, dropped by readers once it is older than `FORGET_AFTER_SECONDS`.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from redis.asyncio import Redis

OUTCOMES = ("started", "succeeded", "failed", "retried")
KEEP_SECONDS = 7200
FORGET_AFTER_SECONDS = 600


def _minute(now: float) -> int:
    return int(now // 60)


def _counter_key(queue: str, outcome: str, minute: int) -> str:
    return f"{queue}:stats:{outcome}:{minute}"


def _workers_key(queue: str) -> str:
    return f"{queue}:workers"


async def count_job(redis: Redis, queue: str, outcome: str, *, now: float | None = None) -> None:
    """Add one job outcome to this minute's counter."""
    key = _counter_key(queue, outcome, _minute(time.time() if now is None else now))
    async with redis.pipeline(transaction=False) as pipe:
        pipe.incr(key)
        pipe.expire(key, KEEP_SECONDS)
        await pipe.execute()


async def jobs_last_hour(redis: Redis, queue: str, *, now: float | None = None) -> dict[str, int]:
    """Each outcome's count over the last 60 minutes (this one included), one MGET per outcome."""
    current = _minute(time.time() if now is None else now)
    totals = {}
    for outcome in OUTCOMES:
        values = await redis.mget([_counter_key(queue, outcome, m) for m in range(current - 59, current + 1)])
        totals[outcome] = sum(int(v) for v in values if v is not None)
    return totals


async def beat(redis: Redis, queue: str, worker_id: str, info: dict[str, Any]) -> None:
    """Record that `worker_id` is alive now, with what it wants operators to see."""
    value = orjson.dumps({**info, "beat": time.time()}).decode()
    await redis.hset(_workers_key(queue), worker_id, value)  # type: ignore[misc]


async def forget(redis: Redis, queue: str, worker_id: str) -> None:
    """A worker that stops cleanly removes its heartbeat."""
    await redis.hdel(_workers_key(queue), worker_id)  # type: ignore[misc]


async def workers(redis: Redis, queue: str, *, now: float | None = None) -> list[dict[str, Any]]:
    """Heartbeats with their age in seconds, freshest first; long-dead ones are removed."""
    now = time.time() if now is None else now
    found, dead = [], []
    beats: dict[Any, bytes] = await redis.hgetall(_workers_key(queue))  # type: ignore[misc]
    for worker_id, raw in beats.items():
        info = orjson.loads(raw)
        age = now - float(info.get("beat", 0))
        if age > FORGET_AFTER_SECONDS:
            dead.append(worker_id)
            continue
        name = worker_id.decode() if isinstance(worker_id, bytes) else worker_id
        found.append({**info, "id": name, "age_seconds": round(age, 1)})
    if dead:
        await redis.hdel(_workers_key(queue), *dead)  # type: ignore[misc]
    return sorted(found, key=lambda w: w["age_seconds"])
