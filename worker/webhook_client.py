"""Sending one webhook over HTTP, with the outbound rules of `scimsvc/product/webhooks.py` enforced.

Outbound safety (README.md, What happened, Webhook delivery): the URL is checked (`url_problem`), and every
address the host resolves to is checked (`address_problem`) right before the connection, by the session's own
resolver, so a name that now resolves somewhere private is refused even if it was public when the endpoint was
registered, and the connection only ever goes to an address that was checked. An IP literal in the URL never
reaches a resolver (aiohttp connects to it as is), so it is checked here first. Redirects are not followed,
connect and read are bounded by the timeout, and at most `MAX_ANSWER_BYTES` of an answer are read. The session
keeps no cookies and reads no proxy from the environment.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from scimsvc import __version__
from scimsvc.product.webhooks import Network, address_problem, delivered, excerpt, host_form, url_problem

log = logging.getLogger(__name__)

MAX_ANSWER_BYTES = 64 * 1024
USER_AGENT = f"scimsvc-webhooks/{__version__}"
# Connections kept per worker process: deliveries to one receiver reuse theirs.
CONNECTIONS = 100
# Threads resolving receivers' names per worker process (BoundedResolver): one per name being looked up.
DNS_THREADS = 8


class RefusedTarget(OSError):
    """The URL or an address it resolves to may not be reached; nothing was sent."""


class CheckedResolver(AbstractResolver):
    """Resolves (`BoundedResolver`), then refuses the name if ANY of its addresses is one a delivery may
    not reach; the connector only ever gets checked addresses."""

    def __init__(self, allowed: Iterable[Network], *, timeout_seconds: float) -> None:
        self._allowed = tuple(allowed)
        self._resolver: AbstractResolver = BoundedResolver(timeout_seconds=timeout_seconds)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The host's addresses, all checked; raises `RefusedTarget` naming the first refused one."""
        results = await self._resolver.resolve(host, port, family)
        for result in results:
            problem = address_problem(result["host"], allowed=self._allowed)
            if problem:
                raise RefusedTarget(f"{host}: {problem}")
        return results

    async def close(self) -> None:
        await self._resolver.close()


Lookup = Callable[..., list[tuple[Any, ...]]]


class BoundedResolver(AbstractResolver):
    """getaddrinfo in threads of its own, each lookup bounded by the timeout, one lookup per name at once.

    aiohttp's ThreadedResolver runs on the event loop's default executor, a few threads shared with
    everything else: a receiver's slow DNS, looked up once per delivery, would hold every one of them
    and stall the deliveries to everyone else. Here concurrent lookups of one name share one thread, and
    an attempt waits for its name at most the timeout (the thread runs on until the system resolver
    gives up, which is why the threads are this resolver's own).
    """

    def __init__(self, *, timeout_seconds: float, lookup: Lookup = socket.getaddrinfo) -> None:
        self._timeout = timeout_seconds
        self._lookup = lookup
        self._threads = ThreadPoolExecutor(max_workers=DNS_THREADS, thread_name_prefix="webhook-dns")
        self._running: dict[tuple[str, int, int], asyncio.Future[list[ResolveResult]]] = {}

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The host's addresses (IPv4 and IPv6 as asked); an `OSError` when none came within the timeout."""
        key = (host, port, int(family))
        lookup = self._running.get(key)
        if lookup is None:
            lookup = asyncio.get_running_loop().run_in_executor(
                self._threads, self._addresses, host, port, family
            )
            self._running[key] = lookup
            lookup.add_done_callback(lambda done: self._done(key, done))
        try:
            async with asyncio.timeout(self._timeout):
                return await asyncio.shield(lookup)  # one waiter's timeout does not end the others' lookup
        except TimeoutError:
            raise OSError(f"{host}: no address within {self._timeout:g} s") from None

    def _done(self, key: tuple[str, int, int], lookup: asyncio.Future[list[ResolveResult]]) -> None:
        if self._running.get(key) is lookup:
            del self._running[key]
        if not lookup.cancelled():
            lookup.exception()  # retrieved: every waiter may have timed out already

    def _addresses(self, host: str, port: int, family: socket.AddressFamily) -> list[ResolveResult]:
        try:
            infos = self._lookup(host, port, family, socket.SOCK_STREAM, 0, socket.AI_ADDRCONFIG)
        except UnicodeError:  # a name getaddrinfo cannot encode (an empty label, one over 63 characters)
            raise OSError(f"{host}: not a name that can be looked up") from None
        return [
            ResolveResult(
                hostname=host,
                host=_host_of(address),
                port=int(address[1]),
                family=found,
                proto=proto,
                flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            )
            for found, _, proto, _, address in infos
            if found in (socket.AF_INET, socket.AF_INET6)
        ]

    async def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)


def _host_of(address: tuple[Any, ...]) -> str:
    # A scoped IPv6 address (link-local) is reached through its interface: keep the scope, as aiohttp's
    # own resolver does (address_problem reads the address without it).
    if len(address) >= 4 and address[3]:
        return f"{address[0]}%{address[3]}"
    return str(address[0])


def new_session(*, resolver: CheckedResolver, timeout_seconds: int) -> aiohttp.ClientSession:
    """The worker process's one HTTP session for webhooks (create it in a running event loop). The
    session does not close `resolver` (aiohttp closes only a resolver it made): its owner does."""
    connector = aiohttp.TCPConnector(
        resolver=resolver,
        use_dns_cache=False,  # every attempt resolves and checks again
        limit=CONNECTIONS,
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(
            total=2 * timeout_seconds, sock_connect=timeout_seconds, sock_read=timeout_seconds
        ),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,  # a small compressed answer must not inflate past the read cap
        trust_env=False,
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
    )


@dataclass(frozen=True)
class Sent:
    """What one attempt got: the status (None: no answer, or refused before sending), the time it took,
    and a short excerpt of the answer or of the error."""

    status: int | None
    latency_ms: float
    excerpt: str
    refused: bool = False

    @property
    def delivered(self) -> bool:
        return self.status is not None and delivered(self.status)

    @property
    def outcome(self) -> str:
        """delivered, refused (not sent) or failed, as the metrics count it."""
        return "delivered" if self.delivered else "refused" if self.refused else "failed"


async def post(
    session: aiohttp.ClientSession,
    url: str,
    *,
    body: bytes,
    headers: dict[str, str],
    allowed: Iterable[Network],
    allow_http: bool,
    timeout_seconds: int,
) -> Sent:
    """POST `body` to `url` once; never raises: what the receiver or the network does is an attempt's
    outcome, and so is a fault of ours (`internal_error`), so one endpoint can never stop the others."""
    started = time.perf_counter()
    try:
        return await _post(
            session,
            url,
            body=body,
            headers=headers,
            allowed=allowed,
            allow_http=allow_http,
            timeout_seconds=timeout_seconds,
        )
    except Exception as exc:
        return internal_error(exc, latency_ms=round((time.perf_counter() - started) * 1000, 1))


def internal_error(exc: BaseException, *, latency_ms: float = 0.0) -> Sent:
    """A failed attempt for an error of ours (a bug, a URL a library refuses): recorded and retried like
    any failure. Only the error's type is kept and logged: its message may quote the URL, whose path or
    query may hold a receiver's token."""
    log.error("webhook attempt failed with an internal error: %s", type(exc).__name__)
    return Sent(None, latency_ms, f"internal error: {type(exc).__name__}")


async def _post(
    session: aiohttp.ClientSession,
    url: str,
    *,
    body: bytes,
    headers: dict[str, str],
    allowed: Iterable[Network],
    allow_http: bool,
    timeout_seconds: int,
) -> Sent:
    problem = target_problem(url, allowed=allowed, allow_http=allow_http)
    if problem:
        return Sent(None, 0.0, excerpt(f"refused, not sent: {problem}"), refused=True)
    started = time.perf_counter()

    def took() -> float:
        return round((time.perf_counter() - started) * 1000, 1)

    try:
        async with asyncio.timeout(2 * timeout_seconds + 1):  # the session's bounds, and a net under them
            async with session.post(url, data=body, headers=headers, allow_redirects=False) as resp:
                latency = took()
                answer = await _read_capped(resp)
                if 300 <= resp.status < 400:
                    where = resp.headers.get("Location", "")
                    return Sent(resp.status, latency, excerpt(f"redirect not followed (Location: {where})"))
                return Sent(resp.status, latency, excerpt(answer[:1024].decode("utf-8", "replace")))
    except aiohttp.ClientConnectorError as exc:
        refused = _refusal(exc)
        if refused is not None:
            return Sent(None, took(), excerpt(f"refused, not sent: {refused}"), refused=True)
        return Sent(None, took(), excerpt(f"could not connect: {exc.os_error.strerror or exc.os_error}"))
    except aiohttp.ConnectionTimeoutError:
        return Sent(None, took(), f"could not connect within {timeout_seconds} s")
    except aiohttp.SocketTimeoutError:
        return Sent(None, took(), f"no answer within {timeout_seconds} s")
    except TimeoutError:
        return Sent(None, took(), f"no complete answer within {2 * timeout_seconds} s")
    except aiohttp.ClientError as exc:
        return Sent(None, took(), excerpt(f"failed: {type(exc).__name__}: {exc}"))
    except OSError as exc:
        return Sent(None, took(), excerpt(f"failed: {exc.strerror or exc}"))


def target_problem(url: str, *, allowed: Iterable[Network], allow_http: bool) -> str | None:
    """Why this URL may not be reached before anything is resolved: its form (`url_problem`, which also
    makes sure the HTTP client reads the same host), or its host when the host is an IP address (a name's
    addresses are checked by `CheckedResolver`)."""
    problem = url_problem(url, allow_http=allow_http)
    if problem:
        return problem
    host = host_form(urlsplit(url).hostname or "")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    return address_problem(host, allowed=allowed)


async def _read_capped(resp: aiohttp.ClientResponse) -> bytes:
    """At most `MAX_ANSWER_BYTES` of the answer; a longer answer's connection is closed, not drained.

    The status decides the attempt; the body only gives the excerpt. A body that stops coming (past the
    read timeout) or breaks off keeps what came, and its connection is closed.
    """
    chunks: list[bytes] = []
    size = 0
    try:
        while size < MAX_ANSWER_BYTES:
            chunk = await resp.content.read(MAX_ANSWER_BYTES - size)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            size += len(chunk)
    except (TimeoutError, aiohttp.ClientError):
        pass
    resp.close()
    return b"".join(chunks)


def _refusal(exc: BaseException) -> str | None:
    """The refusal of `CheckedResolver` behind an aiohttp connection error, if that is what it was."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, RefusedTarget):
            return str(seen)
        seen = getattr(seen, "os_error", None) or seen.__cause__
    return None
