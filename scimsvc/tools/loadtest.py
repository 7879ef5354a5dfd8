"""`scimsvc loadtest`: drive an IdP-like SCIM request mix at a base URL; report throughput, latency, 429s.

The pure parts come first (target check, mixes and request bodies, percentiles, the early-admission
check, report assembly and formatting); the driver that sends requests, paces them and shows progress
comes last. Costs are priced with `scimsvc.ratelimit.levels`, the same table the server charges from.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email.utils
import ipaddress
import math
import random
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple, TextIO
from urllib.parse import urlsplit

import aiohttp
import orjson

from scimsvc.ratelimit.levels import LEVELS, WINDOW_SECONDS, request_level

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
SCIM_PREFIX = "/scim/v2"  # the server's route templates, as `scimsvc.ratelimit.levels` prices them

# --- the target ------------------------------------------------------------------------------------


def is_loopback_host(host: str | None) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1: the only hosts a load test may hit without --allow-remote."""
    if not host:
        return False
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_target(base_url: str, *, allow_remote: bool) -> str:
    """The base URL without a trailing slash; ValueError when it is not http(s) or (unasked) not loopback."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"--base-url must be an http(s) URL such as http://127.0.0.1:8080/scim/v2, got {base_url!r}"
        )
    if not allow_remote and not is_loopback_host(parts.hostname):
        raise ValueError(
            f"refusing to load-test {parts.hostname!r}: it is not a loopback address (127.0.0.0/8, ::1, "
            "localhost). Pass --allow-remote if you own that server and mean it"
        )
    return base_url.rstrip("/")


# --- mixes: which actions an IdP sends, and how often ----------------------------------------------

# Each action is one IdP step of one or more requests (see `Driver.ACTIONS`). Weights are relative.
MIXES: dict[str, dict[str, int]] = {
    # Okta: look up by userName before creating, update with PUT, deactivate with PATCH active=false,
    # import by paging, push group members (single and batched).
    "okta": {
        "create": 15,
        "lookup": 20,
        "get": 10,
        "put": 25,
        "deactivate": 10,
        "list": 5,
        "group_member": 10,
        "group_batch": 5,
    },
    # Entra: many userName-eq probes, PATCH with "Replace" and string booleans, member add/remove.
    "entra": {"create": 10, "lookup": 35, "get": 5, "patch": 25, "deactivate": 10, "group_member": 15},
    "writes": {"create": 30, "put": 20, "patch": 25, "deactivate": 15, "group_member": 10},
    "reads": {"lookup": 45, "get": 40, "list": 15},
}
MIX_STYLE = {"okta": "okta", "entra": "entra"}  # other mixes alternate between the two IdPs' shapes
GROUP_ACTIONS = frozenset({"group_member", "group_batch"})
NEEDS_USER = frozenset({"lookup", "get", "put", "patch", "deactivate", "group_member", "group_batch"})
MIN_POOL = 5  # actions on an existing user create one instead until the run owns this many
GROUP_BATCH = 8  # members per batched group PATCH: with display names, over 500 bytes (an L4 PATCH)
PAGE_SIZE = 100
SETUP_TRIES = 4  # the group lookup at the start waits out this many 429s before giving up


def choose_action(mix: Mapping[str, int], rng: random.Random, *, pool_size: int, has_group: bool) -> str:
    """The next action of a worker: by weight; a create while the pool is small; no group without one."""
    weights = {a: w for a, w in mix.items() if has_group or a not in GROUP_ACTIONS}
    if not weights:
        weights = {"get": 1}
    action = rng.choices(list(weights), weights=list(weights.values()))[0]
    if action in NEEDS_USER and pool_size < MIN_POOL:
        return "create"
    return action


def user_resource(user_name: str, *, style: str, serial: int = 0) -> dict[str, Any]:
    """A User as the IdP sends it in POST (and Okta in PUT)."""
    body: dict[str, Any] = {
        "schemas": [USER_SCHEMA],
        "userName": user_name,
        "name": {"givenName": "Load", "familyName": f"Test{serial}"},
        "displayName": f"Load Test{serial}",
        "emails": [{"value": user_name, "type": "work", "primary": True}],
        "active": True,
    }
    if style == "entra":
        body["schemas"].append(ENTERPRISE)
        body["externalId"] = str(uuid.uuid5(uuid.NAMESPACE_URL, user_name))
        body[ENTERPRISE] = {"department": "Load"}
    else:
        body["title"] = f"Revision {serial}"
    return body


def patch_request(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def profile_patch(*, style: str, serial: int) -> dict[str, Any]:
    """A profile update PATCH: Entra's capitalised op names and dotted keys, or Okta's plain replace."""
    if style == "entra":
        return patch_request(
            {"op": "Replace", "path": "displayName", "value": f"Load Test {serial}"},
            {"op": "Replace", "path": "name.givenName", "value": f"Load{serial}"},
            {"op": "Replace", "path": f"{ENTERPRISE}:department", "value": f"Dept {serial % 7}"},
        )
    return patch_request({"op": "replace", "value": {"displayName": f"Load Test {serial}"}})


def deactivate_patch(*, style: str) -> dict[str, Any]:
    """Deactivation: Entra sends the string "False" on path active, Okta a no-path replace of active."""
    if style == "entra":
        return patch_request({"op": "Replace", "path": "active", "value": "False"})
    return patch_request({"op": "replace", "value": {"active": False}})


def member_add_patch(members: Sequence[tuple[str, str]], *, style: str) -> dict[str, Any]:
    """Add (id, userName) members to a group, with display names as Okta sends them."""
    op = "Add" if style == "entra" else "add"
    value: list[dict[str, str]] = [
        {"value": uid} if style == "entra" else {"value": uid, "display": name} for uid, name in members
    ]
    return patch_request({"op": op, "path": "members", "value": value})


def member_remove_patch(user_id: str, *, style: str) -> dict[str, Any]:
    op = "Remove" if style == "entra" else "remove"
    return patch_request({"op": op, "path": f'members[value eq "{user_id}"]'})


def user_name_filter(user_name: str) -> str:
    return f'userName eq "{user_name}"'


def request_cost(method: str, template: str, body_bytes: int | None) -> int:
    """Credits the server charges for a request, from its route template relative to the SCIM base."""
    return LEVELS[request_level(method, SCIM_PREFIX + template, body_bytes)]


# --- measurements ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One request: who sent it, when (seconds since the run started), what came back."""

    worker: int
    route: str  # "PATCH /Users/{id}"
    sent: float
    latency: float
    status: int | None  # None: no response (connection error or timeout)
    cost: int
    retry_after: float | None = None
    limit: int | None = None  # RateLimit-Limit, when the server announced one

    @property
    def admitted(self) -> bool:
        return self.status is not None and self.status != 429


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Retry-After in seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def parse_limit(value: str | None) -> int | None:
    """The budget from a RateLimit-Limit header ("10000", or a draft's "10000, 10000;w=30")."""
    if not value:
        return None
    head = value.split(",")[0].split(";")[0].strip()
    return int(head) if head.isdigit() else None


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of already sorted values (0 for none)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def latency_summary(latencies: Iterable[float]) -> dict[str, float]:
    """p50/p90/p99/max in milliseconds."""
    values = sorted(latencies)
    return {
        "p50_ms": round(percentile(values, 50) * 1000, 2),
        "p90_ms": round(percentile(values, 90) * 1000, 2),
        "p99_ms": round(percentile(values, 99) * 1000, 2),
        "max_ms": round((values[-1] if values else 0.0) * 1000, 2),
    }


@dataclass(frozen=True)
class EarlyAdmission:
    worker: int
    route: str
    sent: float
    not_before: float  # the refused request's send time + its Retry-After


def early_admissions(samples: Iterable[Sample]) -> tuple[list[EarlyAdmission], int]:
    """Admissions sent before a previous 429's Retry-After had passed, per worker; and how many 429s had one.

    The announced time is measured from when the refused request was *sent*, which is before the server
    decided: an admission before it is early whatever the network added.
    """
    by_worker: dict[int, list[Sample]] = defaultdict(list)
    for s in samples:
        by_worker[s.worker].append(s)
    early: list[EarlyAdmission] = []
    announced = 0
    for worker, own in by_worker.items():
        not_before = -math.inf
        for s in sorted(own, key=lambda s: s.sent):
            if s.status == 429 and s.retry_after is not None:
                announced += 1
                not_before = max(not_before, s.sent + s.retry_after)
            elif s.admitted and s.sent < not_before:
                early.append(EarlyAdmission(worker, s.route, round(s.sent, 3), round(not_before, 3)))
    return early, announced


def credit_accounting(samples: Sequence[Sample], elapsed: float) -> dict[str, Any]:
    """Admitted credits against what the announced budget allows over the run: limit + refill."""
    limits = [s.limit for s in samples if s.limit is not None]
    limit = max(limits) if limits else None
    admitted = sum(s.cost for s in samples if s.admitted and s.limit is not None)
    allowed = limit + limit * elapsed / WINDOW_SECONDS if limit else None
    offered = sum(s.cost for s in samples)
    refill = limit * elapsed / WINDOW_SECONDS if limit and elapsed > 0 else None
    return {
        "offered_credits": offered,
        # the offered credit rate over the sustainable one (the refill): 10 is a 10x overload
        "overload": round(offered / refill, 2) if refill else None,
        "admitted_credits": admitted,
        "limit": limit,
        "window_s": WINDOW_SECONDS,
        "allowed_over_run": round(allowed, 1) if allowed is not None else None,
        "ratio": round(admitted / allowed, 4) if allowed else None,
    }


def build_report(
    samples: Sequence[Sample], *, elapsed: float, settings: Mapping[str, Any], notes: Sequence[str] = ()
) -> dict[str, Any]:
    """Everything the command prints, as one JSON-ready dict."""
    elapsed = max(elapsed, 1e-9)
    statuses = Counter("error" if s.status is None else str(s.status) for s in samples)
    admitted = [s for s in samples if s.admitted]
    rejected = statuses.get("429", 0)
    routes: dict[str, dict[str, Any]] = {}
    for route in sorted({s.route for s in samples}):
        own = [s for s in samples if s.route == route]
        ok = [s.latency for s in own if s.admitted]
        routes[route] = {
            "sent": len(own),
            "admitted": len(ok),
            "429": sum(1 for s in own if s.status == 429),
            **latency_summary(ok),
        }
    early, announced = early_admissions(samples)
    return {
        **settings,
        "elapsed_s": round(elapsed, 3),
        "sent": len(samples),
        "admitted": len(admitted),
        "sent_per_s": round(len(samples) / elapsed, 1),
        "admitted_per_s": round(len(admitted) / elapsed, 1),
        "status_counts": dict(sorted(statuses.items())),
        "rejected_429": rejected,
        "share_429": round(rejected / len(samples), 4) if samples else 0.0,
        "latency_admitted": latency_summary(s.latency for s in admitted),
        "latency_429": latency_summary(s.latency for s in samples if s.status == 429),
        "routes": routes,
        "early_admissions": {
            "count": len(early),
            "rejections_with_retry_after": announced,
            "examples": [vars(e) for e in early[:5]],
        },
        "credits": credit_accounting(samples, elapsed),
        "notes": list(notes),
    }


def format_report(report: Mapping[str, Any]) -> str:
    """The report as text for a terminal."""
    c = report["credits"]
    early = report["early_admissions"]
    lines = [
        f"target      {report['base_url']}  mix={report['mix']}  concurrency={report['concurrency']}  "
        f"rate={str(report['rate']) + '/s' if report['rate'] else 'unlimited'}  "
        f"Retry-After {report['retry_after']}",
        f"elapsed     {report['elapsed_s']:.1f} s",
        f"sent        {report['sent']}  ({report['sent_per_s']}/s)",
        f"admitted    {report['admitted']}  ({report['admitted_per_s']}/s)",
        f"429s        {report['rejected_429']}  ({report['share_429']:.1%} of sent)",
        "statuses    " + "  ".join(f"{k}: {v}" for k, v in report["status_counts"].items()),
        f"early       {early['count']} admission(s) before a previous 429's Retry-After "
        f"(of {early['rejections_with_retry_after']} 429s with one)",
    ]
    if c["limit"] is None:
        lines.append(f"credits     {c['admitted_credits']} admitted; the server announced no RateLimit-Limit")
    else:
        lines.append(
            f"credits     {c['admitted_credits']} admitted / {c['allowed_over_run']} allowed "
            f"(limit {c['limit']} + refill over {report['elapsed_s']:.1f} s) = ratio {c['ratio']}; "
            f"offered {c['offered_credits']} = {c['overload']}x the refill"
        )
    lines += [
        "",
        "per route (latency of admitted requests; a 429 is answered before any work is done):",
        f"{'route':<22}{'sent':>7}{'ok':>7}{'429':>6}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}",
    ]
    for route, r in report["routes"].items():
        keys = ("p50_ms", "p90_ms", "p99_ms", "max_ms")
        cells = "".join(f"{r[k]:>9.1f}" if r["admitted"] else f"{'-':>9}" for k in keys)
        lines.append(f"{route:<22}{r['sent']:>7}{r['admitted']:>7}{r['429']:>6}{cells}")
    lines += [f"note: {n}" for n in report["notes"]]
    return "\n".join(lines)


def progress_line(counts: Mapping[str, int], *, elapsed: float, duration: float) -> str:
    """One line of live progress."""
    rate = counts["sent"] / elapsed if elapsed > 0 else 0.0
    return (
        f"{elapsed:5.1f}/{duration:.0f} s  sent {counts['sent']} ({rate:.0f}/s)  "
        f"admitted {counts['admitted']}  429 {counts['429']}  errors {counts['errors']}"
    )


# --- the driver (I/O) ------------------------------------------------------------------------------


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
    ) -> Reply:
        """Send one request (after pacing), record it, and return its status, JSON body and Retry-After."""
        await self._pace(worker)
        data = orjson.dumps(body) if body is not None else None
        cost = request_cost(method, template, len(data) if data is not None else 0)
        sent = time.monotonic()
        status: int | None = None
        payload: Any = None
        retry_after = limit = None
        try:
            async with self.http.request(method, self.o.base_url + path, data=data, params=params) as resp:
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
        status, body, _ = await self.call(
            w, "POST", "/Users", "/Users", body=user_resource(name, style=self.style(rng), serial=serial)
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
        await self.call(w, "PUT", "/Users/{id}", f"/Users/{uid}", body=body)

    async def patch(self, w: int, rng: random.Random) -> None:
        uid, _ = self.pool.pick(rng)
        body = profile_patch(style=self.style(rng), serial=self._next_serial())
        await self.call(w, "PATCH", "/Users/{id}", f"/Users/{uid}", body=body)

    async def deactivate(self, w: int, rng: random.Random) -> None:
        uid, _ = self.pool.pick(rng)
        await self.call(
            w, "PATCH", "/Users/{id}", f"/Users/{uid}", body=deactivate_patch(style=self.style(rng))
        )

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
        return driver.report()


async def live_progress(driver: Driver) -> None:
    """A progress line redrawn four times a second (rich), for a terminal."""
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    def line() -> Text:
        return Text(progress_line(driver.counts, elapsed=driver.elapsed(), duration=driver.o.duration))

    with Live(line(), console=Console(), refresh_per_second=4, transient=True) as live:
        try:
            while True:
                await asyncio.sleep(0.25)
                live.update(line())
        finally:
            live.update(line())


def plain_progress(out: TextIO, every: float = 5.0) -> Callable[[Driver], Awaitable[None]]:
    """A progress line every few seconds, for logs and pipes."""

    async def watch(driver: Driver) -> None:
        while True:
            await asyncio.sleep(every)
            print(
                progress_line(driver.counts, elapsed=driver.elapsed(), duration=driver.o.duration), file=out
            )
            out.flush()

    return watch


# --- the command -----------------------------------------------------------------------------------


def add_loadtest_command(sub: Any) -> None:
    """Register `scimsvc loadtest` on the CLI's subparsers."""
    p = sub.add_parser("loadtest", help="drive an IdP-like SCIM request mix at a base URL and report")
    p.add_argument(
        "--base-url", required=True, help="SCIM base URL, e.g. http://127.0.0.1:8080/scim/v2 (required)"
    )
    p.add_argument("--token", required=True, help="the tenant's SCIM bearer token (required)")
    p.add_argument(
        "--rate", type=float, help="target requests per second (default: as fast as the workers go)"
    )
    p.add_argument("--duration", type=float, default=30.0, help="seconds to run (default: 30)")
    p.add_argument(
        "--requests",
        type=int,
        help="stop after this many requests (default: no limit; the duration still applies)",
    )
    p.add_argument(
        "--mix",
        choices=sorted(MIXES),
        default="okta",
        help="the request mix: an IdP's, or only writes or reads (default: okta)",
    )
    p.add_argument(
        "--concurrency", type=int, default=16, help="workers, each one request at a time (default: 16)"
    )
    honour = p.add_mutually_exclusive_group()
    honour.add_argument(
        "--honour-retry-after",
        dest="honour_retry_after",
        action="store_true",
        default=True,
        help="after a 429 a worker waits Retry-After before its next request (default)",
    )
    honour.add_argument(
        "--ignore-retry-after",
        dest="honour_retry_after",
        action="store_false",
        help="keep sending after a 429, as a misbehaving client would (default: off)",
    )
    p.add_argument(
        "--group",
        default="scimsvc-loadtest",
        help="displayName of the group to PATCH, which needs a team (default: scimsvc-loadtest)",
    )
    p.add_argument(
        "--user-domain",
        default="loadtest.example",
        help="domain of the created userNames (default: loadtest.example)",
    )
    p.add_argument(
        "--seed", type=int, help="seed the workers' choices for a repeatable mix (default: random)"
    )
    p.add_argument(
        "--json", action="store_true", help="print the report as one JSON object (default: a table)"
    )
    p.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a base URL that is not loopback (default: loopback only)",
    )
    p.set_defaults(func=cmd_loadtest)


def cmd_loadtest(_settings: Any, args: argparse.Namespace) -> int:
    """Check the target, run, print the report; 1 when no request got a response."""
    try:
        base_url = check_target(args.base_url, allow_remote=args.allow_remote)
    except ValueError as exc:
        print(f"scimsvc loadtest: {exc}", file=sys.stderr)
        return 2
    for name in ("duration", "concurrency", "requests", "rate"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            print(f"scimsvc loadtest: --{name} must be positive", file=sys.stderr)
            return 2
    options = Options(
        base_url=base_url,
        token=args.token,
        duration=args.duration,
        requests=args.requests,
        rate=args.rate,
        mix=args.mix,
        concurrency=args.concurrency,
        honour_retry_after=args.honour_retry_after,
        group=args.group,
        user_domain=args.user_domain,
        seed=args.seed,
    )
    progress = live_progress if sys.stdout.isatty() and not args.json else plain_progress(sys.stderr)
    report = asyncio.run(run_loadtest(options, progress=progress))
    if args.json:
        sys.stdout.write(orjson.dumps(report).decode() + "\n")
    else:
        print(format_report(report))
    responded = sum(n for k, n in report["status_counts"].items() if k != "error")
    return 0 if responded else 1
