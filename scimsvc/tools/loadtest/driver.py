"""The driver (I/O): workers that send the mix at a base URL, pace it (--rate, Retry-After) and record
a `Sample` per request, until the duration, the request count or a refused token ends the run."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import aiohttp
import orjson

from scimsvc.tools.loadtest.mixes import GROUP_ACTIONS, MIX_STYLE, MIXES, choose_action
from scimsvc.tools.loadtest.payloads import (
    GROUP_SCHEMA,
    deactivate_patch,
    member_add_patch,
    member_remove_patch,
    profile_patch,
    request_cost,
    user_name_filter,
    user_resource,
    written,
)
from scimsvc.tools.loadtest.report import build_report
from scimsvc.tools.loadtest.samples import Sample, parse_limit, parse_retry_after

GROUP_BATCH = 8  # members per batched group PATCH: with display names, over 500 bytes (an L4 PATCH)
PAGE_SIZE = 100
SETUP_TRIES = 4  # the group lookup at the start waits out this many 429s before giving up


@dataclass(frozen=True)
class Options:
    """What `scimsvc loadtest` was asked to do."""

    base_url: str
    token: str
    duration: float = 30.0
    requests: int | None = None
    rate: float | None = None
    mix: str = "okta"
    concurrency: int = 16
    honour_retry_after: bool = True
    group: str = "scimsvc-loadtest"
    user_domain: str = "loadtest.example"
    seed: int | None = None
    timeout: float = 30.0
    log: str | None = None  # a file to write one JSON line per request to (`--log`)


class Reply(NamedTuple):
    """What came back for one request (status None: no response)."""

    status: int | None
    body: Any
    retry_after: float | None


class _Stop(Exception):
    """The run is over (time, request count, or a refused token): the worker ends."""


@dataclass
class _Pool:
    """The users this run created (id → userName), and which of them are in the group."""

    users: dict[str, str] = field(default_factory=dict)
    members: set[str] = field(default_factory=set)

    def pick(self, rng: random.Random) -> tuple[str, str]:
        uid = rng.choice(list(self.users))
        return uid, self.users[uid]


class Driver:
    """Runs the workers against one base URL and records a `Sample` per request."""

    def __init__(self, options: Options, session: aiohttp.ClientSession) -> None:
        self.o = options
        self.http = session
        self.mix = MIXES[options.mix]
        self.tag = uuid.uuid4().hex[:8]
        self.samples: list[Sample] = []
        self.counts = {"sent": 0, "admitted": 0, "429": 0, "errors": 0}
        self.pool = _Pool()
        self.group_id: str | None = None
        self.notes: list[str] = []
        self.serial = 0
        self.started = time.monotonic()
        self.deadline = self.started + options.duration
        self.stopped: str | None = None
        self._not_before: dict[int, float] = {}
        self._slot = 0
        self._reserved = 0
        self._last_done = self.started
        self.log: list[dict[str, Any]] | None = [] if options.log else None

    # -- sending

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def _stop(self, why: str) -> None:
        if self.stopped is None:
            self.stopped = why
        raise _Stop(why)

    async def _pace(self, worker: int) -> None:
        """Wait for this worker's Retry-After (if honoured) and for the next slot of the target rate."""
        if self.stopped:
            raise _Stop(self.stopped)
        not_before = self._not_before.get(worker, 0.0)
        if not_before > time.monotonic():
            if not_before >= self.deadline:
                raise _Stop("duration")
            await asyncio.sleep(not_before - time.monotonic())
        if self.o.requests is not None and self._reserved >= self.o.requests:
            self._stop("requests")
        self._reserved += 1  # before any wait, so that workers waiting for a slot never overshoot the count
        if self.o.rate:
            slot = self.started + self._slot / self.o.rate
            self._slot += 1
            if slot >= self.deadline:
                raise _Stop("duration")
            delay = slot - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        if time.monotonic() >= self.deadline:
            self._stop("duration")
        if self.stopped and self.stopped != "requests":  # a reserved request still counts towards --requests
            raise _Stop(self.stopped)

    async def call(
        self,
        worker: int,
        method: str,
        template: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        state: dict[str, Any] | None = None,
    ) -> Reply:
        """Send one request (after pacing), record it, and return its status, JSON body and Retry-After.

        `state`: the user attributes a write sets, written to the `--log` line with the request's own
        X-Request-Id, so that a run can be checked against the database afterwards."""
        await self._pace(worker)
        data = orjson.dumps(body) if body is not None else None
        cost = request_cost(method, template, len(data) if data is not None else 0)
        request_id = uuid.uuid4().hex
        sent_at = time.time()
        sent = time.monotonic()
        status: int | None = None
        payload: Any = None
        retry_after = limit = None
        try:
            async with self.http.request(
                method,
                self.o.base_url + path,
                data=data,
                params=params,
                headers={"X-Request-Id": request_id},
            ) as resp:
                raw = await resp.read()
                status = resp.status
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                limit = parse_limit(resp.headers.get("RateLimit-Limit"))
                with contextlib.suppress(orjson.JSONDecodeError):
                    payload = orjson.loads(raw) if raw else None
        except (aiohttp.ClientError, TimeoutError):
            pass
        done = time.monotonic()
        self._last_done = max(self._last_done, done)
        self.samples.append(
            Sample(
                worker=worker,
                route=f"{method} {template}",
                sent=sent - self.started,
                latency=done - sent,
                status=status,
                cost=cost,
                retry_after=retry_after if status == 429 else None,
                limit=limit,
            )
        )
        if self.log is not None:
            self.log.append(
                {
                    "sent_at": round(sent_at, 4),
                    "done_at": round(sent_at + done - sent, 4),
                    "worker": worker,
                    "route": f"{method} {template}",
                    "path": path,
                    "status": status,
                    "cost": cost,
                    "limit": limit,
                    "request_id": request_id,
                    "id": payload.get("id") if isinstance(payload, dict) else None,
                    "state": state,
                }
            )
        self.counts["sent"] += 1
        if status is None:
            self.counts["errors"] += 1
        elif status == 429:
            self.counts["429"] += 1
            if self.o.honour_retry_after:
                self._not_before[worker] = done + (retry_after if retry_after is not None else 1.0)
        else:
            self.counts["admitted"] += 1
        if status in (401, 403):
            detail = payload.get("detail") if isinstance(payload, dict) else None
            self.notes.append(f"stopped: the server answered {status} to {method} {template}: {detail}")
            self._stop("refused")
        return Reply(status, payload, retry_after)

    # -- actions

    def style(self, rng: random.Random) -> str:
        return MIX_STYLE.get(self.o.mix) or rng.choice(("okta", "entra"))

    def _next_serial(self) -> int:
        self.serial += 1
        return self.serial

    async def create(self, w: int, rng: random.Random) -> None:
        serial = self._next_serial()
        name = f"lt.{self.tag}.{serial}@{self.o.user_domain}"
        await self.call(w, "GET", "/Users", "/Users", params={"filter": user_name_filter(name)})
        resource = user_resource(name, style=self.style(rng), serial=serial)
        status, body, _ = await self.call(
            w, "POST", "/Users", "/Users", body=resource, state=written(resource)
        )
        if status == 201 and isinstance(body, dict):
            self.pool.users[body["id"]] = name
        elif status == 400 and not self.pool.users and isinstance(body, dict):
            self.notes.append(f"creates refused: {body.get('detail')}")
            self._stop("refused")

    async def lookup(self, w: int, rng: random.Random) -> None:
        _, name = self.pool.pick(rng)
        await self.call(w, "GET", "/Users", "/Users", params={"filter": user_name_filter(name)})

    async def get(self, w: int, rng: random.Random) -> None:
        uid, _ = self.pool.pick(rng)
        await self.call(w, "GET", "/Users/{id}", f"/Users/{uid}")

    async def put(self, w: int, rng: random.Random) -> None:
        uid, name = self.pool.pick(rng)
        body = user_resource(name, style="okta", serial=self._next_serial())
        await self.call(w, "PUT", "/Users/{id}", f"/Users/{uid}", body=body, state=written(body))

    async def patch(self, w: int, rng: random.Random) -> None:
        uid, _ = self.pool.pick(rng)
        body = profile_patch(style=self.style(rng), serial=self._next_serial())
        await self.call(w, "PATCH", "/Users/{id}", f"/Users/{uid}", body=body, state=written(body))

    async def deactivate(self, w: int, rng: random.Random) -> None:
        uid, _ = self.pool.pick(rng)
        body = deactivate_patch(style=self.style(rng))
        await self.call(w, "PATCH", "/Users/{id}", f"/Users/{uid}", body=body, state=written(body))

    async def page(self, w: int, rng: random.Random) -> None:
        start = 1 + PAGE_SIZE * rng.randrange(max(1, len(self.pool.users) // PAGE_SIZE + 1))
        params = {"startIndex": str(start), "count": str(PAGE_SIZE)}
        await self.call(w, "GET", "/Users", "/Users", params=params)

    async def group_member(self, w: int, rng: random.Random) -> None:
        uid, name = self.pool.pick(rng)
        style = self.style(rng)
        path = f"/Groups/{self.group_id}"
        if uid in self.pool.members:
            self.pool.members.discard(uid)
            await self.call(w, "PATCH", "/Groups/{id}", path, body=member_remove_patch(uid, style=style))
        else:
            self.pool.members.add(uid)
            await self.call(
                w, "PATCH", "/Groups/{id}", path, body=member_add_patch([(uid, name)], style=style)
            )

    async def group_batch(self, w: int, rng: random.Random) -> None:
        users = rng.sample(sorted(self.pool.users.items()), min(GROUP_BATCH, len(self.pool.users)))
        self.pool.members.update(uid for uid, _ in users)
        body = member_add_patch(users, style="okta")
        await self.call(w, "PATCH", "/Groups/{id}", f"/Groups/{self.group_id}", body=body)

    ACTIONS: dict[str, Callable[[Driver, int, random.Random], Awaitable[None]]] = {
        "create": create,
        "lookup": lookup,
        "get": get,
        "put": put,
        "patch": patch,
        "deactivate": deactivate,
        "list": page,
        "group_member": group_member,
        "group_batch": group_batch,
    }

    async def _setup_call(self, method: str, template: str, path: str, **kw: Any) -> Reply:
        """A setup request: after a 429 it waits Retry-After and tries again, whatever the mode."""
        for _ in range(SETUP_TRIES):
            reply = await self.call(0, method, template, path, **kw)
            wait = reply.retry_after or 1.0
            if reply.status != 429 or time.monotonic() + wait >= self.deadline:
                break
            await asyncio.sleep(wait)
        return reply

    async def find_group(self) -> None:
        """Link (or find) the group named `--group`; without one, group traffic is skipped and noted."""
        if not GROUP_ACTIONS & set(self.mix):
            return
        name = self.o.group
        body = {"schemas": [GROUP_SCHEMA], "displayName": name}
        reply = await self._setup_call("POST", "/Groups", "/Groups", body=body)
        if reply.status == 201 and isinstance(reply.body, dict):
            self.group_id = reply.body["id"]
            return
        if reply.status == 409:  # linked by an earlier run: find it
            params = {"filter": f'displayName eq "{name}"', "attributes": "id"}
            reply = await self._setup_call("GET", "/Groups", "/Groups", params=params)
            found = (
                reply.body.get("Resources") if reply.status == 200 and isinstance(reply.body, dict) else None
            )
            if found:
                self.group_id = found[0]["id"]
                return
        detail = reply.body.get("detail") if isinstance(reply.body, dict) else None
        hint = (
            f" Create a team named {name!r} with the admin Teams API to include group traffic."
            if reply.status == 400
            else ""
        )
        self.notes.append(
            f"group traffic skipped: no SCIM group {name!r} could be created or found "
            f"(HTTP {reply.status}: {detail}).{hint}"
        )

    async def worker(self, w: int) -> None:
        rng = random.Random(None if self.o.seed is None else self.o.seed * 1000 + w)
        try:
            while True:
                action = choose_action(
                    self.mix, rng, pool_size=len(self.pool.users), has_group=self.group_id is not None
                )
                await self.ACTIONS[action](self, w, rng)
        except _Stop:
            return

    async def run(self) -> None:
        self.started = time.monotonic()
        self.deadline = self.started + self.o.duration
        try:
            await self.find_group()
        except _Stop:
            return
        await asyncio.gather(*(self.worker(w) for w in range(self.o.concurrency)))

    def report(self) -> dict[str, Any]:
        settings = {
            "base_url": self.o.base_url,
            "mix": self.o.mix,
            "concurrency": self.o.concurrency,
            "rate": self.o.rate,
            "duration_s": self.o.duration,
            "max_requests": self.o.requests,
            "retry_after": "honoured" if self.o.honour_retry_after else "ignored",
            "group_id": self.group_id,
            "users_created": len(self.pool.users),
            "stopped_by": self.stopped or "duration",
        }
        return build_report(
            self.samples, elapsed=self._last_done - self.started, settings=settings, notes=self.notes
        )


async def run_loadtest(
    options: Options, *, progress: Callable[[Driver], Awaitable[None]] | None = None
) -> dict[str, Any]:
    """Run the load test and return the report; `progress` (if given) runs alongside until the end."""
    headers = {"Authorization": f"Bearer {options.token}", "Content-Type": "application/scim+json"}
    connector = aiohttp.TCPConnector(limit=options.concurrency + 1)
    timeout = aiohttp.ClientTimeout(total=options.timeout)
    async with aiohttp.ClientSession(headers=headers, connector=connector, timeout=timeout) as session:
        driver = Driver(options, session)
        watcher = asyncio.ensure_future(progress(driver)) if progress else None
        try:
            await driver.run()
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
        if driver.log is not None and options.log:
            await asyncio.to_thread(write_log, options.log, driver.log)
        return driver.report()


def write_log(path: str, lines: list[dict[str, Any]]) -> None:
    """The `--log` file: one JSON object per request, in the order the answers came."""
    with open(path, "wb") as f:
        f.writelines(orjson.dumps(line) + b"\n" for line in lines)
