"""Real webhook receivers for the tests: aiohttp servers on 127.0.0.1 that answer as told (ok, fail, slow,
redirect, an endless answer, hold the request open), record what they got, and drop duplicates by
`webhook-id` as a receiver should. Plus the test-side ways to make endpoints and events.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

import asyncpg
from aiohttp import web

from scimsvc.product.events import EventType, NewEvent
from scimsvc.settings import Settings
from scimsvc.store.events import record_events
from tests.conftest import free_port_outside_ephemeral

SIGNING_KEY = "test-webhook-signing-key"


def webhook_settings(settings: Settings, **changes: Any) -> Settings:
    """Settings of a worker that may deliver to the tests' receivers: plain http to 127.0.0.1 allowed, a
    short timeout (so a short lease, `product/webhooks.py:lease_seconds`)."""
    wanted: dict[str, Any] = {
        "webhook_signing_key": SIGNING_KEY,
        "webhook_allow_http": True,
        "webhook_allowed_networks": "127.0.0.1/32",
        "webhook_timeout_seconds": 1,
    }
    return dataclasses.replace(settings, **(wanted | changes))


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1. `mode`: ok (200), fail (500), slow (answers after `slow_seconds`),
    redirect (307 to `redirect_to`), endless (a 200 whose body never ends), stalls (a 200 whose body stops
    after a few bytes), hold (waits for `release`)."""

    port: int = field(default_factory=free_port_outside_ephemeral)
    mode: str = "ok"
    slow_seconds: float = 3.0
    redirect_to: str = ""
    requests: list[Received] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0  # the most requests it was answering at once
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        """Stop listening (connections are refused) and end the requests in progress."""
        if self._runner is not None:
            self.release.set()
            await self._runner.cleanup()
            self._runner = None

    def unique(self) -> dict[str, dict[str, Any]]:
        """The events received, one per `webhook-id` (duplicates dropped, as a receiver should)."""
        return {r.headers["webhook-id"]: r.event for r in self.requests}

    def in_order(self) -> list[str]:
        """The ids of the events received, duplicates dropped, in their tenant's order (by `sequence`)."""
        events = sorted(self.unique().values(), key=lambda e: (e["tenant_id"], e["sequence"]))
        return [e["id"] for e in events]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            return await self._answer(request)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(Received({k.lower(): v for k, v in request.headers.items()}, body))
        self.arrived.set()
        if self.mode == "fail":
            return web.Response(status=500, text="receiver broke: " + "x" * 500)
        if self.mode == "slow":
            await asyncio.sleep(self.slow_seconds)
        if self.mode == "redirect":
            return web.Response(status=307, headers={"Location": self.redirect_to})
        if self.mode == "hold":
            await self.release.wait()
        if self.mode == "stalls":  # the status and the start of the body, then nothing more
            response = web.StreamResponse(status=200)
            await response.prepare(request)
            await response.write(b"accepted; details follow")
            await self.release.wait()
            return response
        if self.mode == "endless":
            response = web.StreamResponse(status=200)
            await response.prepare(request)
            with contextlib.suppress(ConnectionError):
                while True:  # until the client hangs up
                    await response.write(b"y" * 65536)
            return response
        return web.Response(text="ok, thanks")


async def register_endpoint(
    db: asyncpg.Connection,
    tenant_id: str | None,
    url: str,
    *,
    event_types: list[str] | None = None,
    generation: int = 1,
    previous_valid: bool = False,
) -> UUID:
    """A webhook endpoint, written by SQL (the admin API (README.md, What happened) may make
    them instead), for `user.created` events unless told; `previous_valid`: mid-rotation, the previous
    secret still signs."""
    endpoint_id: UUID = await db.fetchval(
        """
        INSERT INTO webhook_endpoints (tenant_id, url, event_types, secret_generation, previous_until)
        VALUES ($1, $2, $3, $4, CASE WHEN $5 THEN now() + interval '1 hour' END)
        RETURNING id
        """,
        UUID(tenant_id) if tenant_id else None,
        url,
        ["user.created"] if event_types is None else event_types,
        generation,
        previous_valid,
    )
    return endpoint_id


async def record_user_events(db: asyncpg.Connection, tenant_id: str, user_ids: list[str]) -> int:
    """A `user.created` event per user, as the worker records them when it applies the users (written
    here directly, with `store/events.py:record_events`); returns the deliveries queued."""
    async with db.transaction():
        return await record_events(
            db,
            UUID(tenant_id),
            [
                NewEvent(EventType.USER_CREATED, {}, user_id=UUID(u), request_id=f"req-{u[:8]}")
                for u in user_ids
            ],
        )


async def record_events_of_no_user(db: asyncpg.Connection, tenant_id: str, count: int) -> int:
    """`count` `user.created` events about users that do not exist (no worker applies anything, so these
    are all the tenant's events); returns the deliveries queued."""
    async with db.transaction():
        return await record_events(
            db,
            UUID(tenant_id),
            [
                NewEvent(EventType.USER_CREATED, data={"user": {"id": str(uuid4()), "userName": f"u{n}"}})
                for n in range(count)
            ],
        )


async def events_in_order(db: asyncpg.Connection, endpoint_id: UUID) -> list[str]:
    """The ids of the events queued for the endpoint, in their tenant's order (what a receiver rebuilds)."""
    rows = await db.fetch(
        "SELECT e.id FROM webhook_deliveries d JOIN events e ON e.id = d.event_id "
        "WHERE d.endpoint_id = $1 ORDER BY e.tenant_id, e.seq",
        endpoint_id,
    )
    return [f"evt_{r['id']}" for r in rows]


async def make_due(db: asyncpg.Connection, endpoint_id: UUID) -> None:
    """Time passes: the endpoint's pending deliveries' next attempt is now (no real backoff wait)."""
    await db.execute(
        "UPDATE webhook_deliveries SET next_attempt_at = now() WHERE endpoint_id = $1 AND state = 'pending'",
        endpoint_id,
    )
